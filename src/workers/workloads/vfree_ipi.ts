/**
 * The same-CPU race of vfree_deferred (scenario demo:irq-vfree-work): CPU 0
 * vfrees from its own interrupts and its kworker runs free_work; the other CPUs vmalloc
 * areas, post them to a mailbox and raise an interrupt on CPU 0 (an IPI),
 * whose handler vfrees them there — deferred: __vfree_deferred llist_adds
 * them to CPU 0's vfree_deferred list. Where CPU 0 takes the interrupt is the
 * scheduler's choice (when the raising CPU runs), so explore can put the
 * handler's llist_add inside free_work, between its llist_del_all and the
 * __vunmap of what it took. v4.19 is correct there: the list has one consumer
 * and interrupt producers, and an add to the emptied list queues free_work
 * again. The handler counts where it landed (vfree_ipi_stats).
 */
import { DEFINE_GLOBAL, I32, staticInit } from "../../shared/arena.js";
import { PAGE_SIZE } from "../../shared/config.js";
import { kernelFnName } from "../../shared/functab.js";
import { KernelBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { sched_op_point } from "../../sched/sched_point.js";
import { defineKernelFn } from "../../shared/functab.js";
import { smp_processor_id } from "../../shared/smp.js";
import { llist_empty } from "../../lib/llist.js";
import { raise_irq_on, request_irq, runInIrq } from "../../kernel/irq.js";
import { workqueueCurrentFunc } from "../../kernel/workqueue.js";
import { vfree, vfree_deferred_list, vmalloc } from "../../mm/vmalloc.js";
import { defineWorkload } from "../workload.js";

/** The interrupt line of the IPI (no other workload of this scenario requests it). */
const VFREE_IPI_IRQ = 9;
/** Areas in flight at most: (CPUs − 1) × ops of a run. */
const VFREE_IPI_SLOTS = 64;

export const VFREE_IPI_MAILBOX = defineStruct("vfree_ipi_mailbox", [
  /** An area a CPU posted for CPU 0's handler to vfree; the handler exchanges it with 0. */
  { name: "slot", type: "ptr", count: VFREE_IPI_SLOTS, guard: "atomic" },
  /** Handler runs that interrupted free_work on CPU 0. */
  { name: "in_free_work", type: "i32", guard: "atomic" },
  /** … of them, those that found the list emptied: after free_work's llist_del_all, before its frees ended. */
  { name: "after_del_all", type: "i32", guard: "atomic" },
]);
const M = VFREE_IPI_MAILBOX.off;
const vfree_ipi_mailbox = DEFINE_GLOBAL("vfree_ipi_mailbox", VFREE_IPI_MAILBOX);
staticInit(() => {
  I32.fill(0, vfree_ipi_mailbox.ptr >> 2, (vfree_ipi_mailbox.ptr + VFREE_IPI_MAILBOX.size) >> 2);
});

const slotIdx = (i: number) => ((vfree_ipi_mailbox.ptr + M.slot) >> 2) + i;

/** The IPI's handler on CPU 0: vfree every posted area (deferred: in_interrupt()). */
const vfree_ipi_handler = defineKernelFn("vfree_ipi_handler", () => {
  if (kernelFnName(workqueueCurrentFunc()) === "free_work") {
    Atomics.add(I32, (vfree_ipi_mailbox.ptr + M.in_free_work) >> 2, 1);
    if (llist_empty(vfree_deferred_list(smp_processor_id())))
      Atomics.add(I32, (vfree_ipi_mailbox.ptr + M.after_del_all) >> 2, 1);
  }
  for (let i = 0; i < VFREE_IPI_SLOTS; i++) {
    const p = Atomics.exchange(I32, slotIdx(i), 0);
    if (p !== 0) vfree(p);
  }
});

/** Setup, on CPU 0: the IPI's handler. */
defineWorkload("vfree_ipi_setup", (): number => request_irq(VFREE_IPI_IRQ, vfree_ipi_handler, "vfree_ipi", 0));

interface VfreeIpiArgs {
  readonly ops: number;
  readonly skip: readonly number[];
}

/**
 * CPU 0: per operation, vmalloc a page, vfree it from an interrupt of its own
 * (queued on vfree_deferred), pass a safe point (its kworker runs free_work). Another CPU: per operation,
 * vmalloc a page, post it, raise the IPI on CPU 0. Returns the operations done.
 */
defineWorkload("vfree_ipi", (a: VfreeIpiArgs, ctx): number => {
  if (ctx.cpu > 0 && (ctx.cpu - 1) * a.ops + a.ops > VFREE_IPI_SLOTS)
    throw new KernelBug(`vfree_ipi: more than ${VFREE_IPI_SLOTS} areas in flight`);
  const skip = new Set(a.skip);
  let n = 0;
  for (let i = 0; i < a.ops; i++) {
    if (skip.has(i)) continue;
    const p = vmalloc(PAGE_SIZE);
    if (p === 0) throw new KernelBug(`vfree_ipi: vmalloc #${i} failed`);
    // CPU 0's kworker runs free_work at the safe point below (workqueue "auto").
    if (ctx.cpu === 0) {
      runInIrq(() => vfree(p));
    } else {
      Atomics.store(I32, slotIdx((ctx.cpu - 1) * a.ops + i), p);
      raise_irq_on(0, VFREE_IPI_IRQ);
    }
    n++;
    sched_op_point();
  }
  return n;
});

/** CPU 0, after every CPU is done: take the last IPIs, let the kworker run free_work until nothing is left. */
defineWorkload("vfree_ipi_drain", (): void => {
  const list = vfree_deferred_list(smp_processor_id());
  for (;;) {
    sched_op_point();
    let posted = false;
    for (let i = 0; i < VFREE_IPI_SLOTS && !posted; i++) posted = Atomics.load(I32, slotIdx(i)) !== 0;
    if (!posted && llist_empty(list)) return;
  }
});

/** Where CPU 0's handler landed in the run since the machine's snapshot (a run restores it). */
defineWorkload("vfree_ipi_stats", () => ({
  inFreeWork: Atomics.load(I32, (vfree_ipi_mailbox.ptr + M.in_free_work) >> 2),
  afterDelAll: Atomics.load(I32, (vfree_ipi_mailbox.ptr + M.after_del_all) >> 2),
}));
