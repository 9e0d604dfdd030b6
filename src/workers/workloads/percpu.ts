/**
 * Workloads of the interrupt and workqueue tests: work items that count their
 * runs, an interrupt handler that queues work from hardirq context, and the
 * raise/take/flush steps a multi-CPU test drives.
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, I32, per_cpu_ptr, staticInit, theArena } from "../../shared/arena.js";
import { defineKernelFn } from "../../shared/functab.js";
import { defineStruct } from "../../shared/struct.js";
import { sched_op_point } from "../../sched/sched_point.js";
import { DEFINE_SPINLOCK, spin_lock_irqsave, spin_unlock_irqrestore } from "../../locks/spinlock.js";
import { in_atomic, in_interrupt, in_irq, irqs_disabled } from "../../percpu/preempt.js";
import { kstat_cpu_irqs_sum, raise_irq_on, request_irq } from "../../kernel/irq.js";
import { smp_processor_id, this_cpu_ptr } from "../../shared/smp.js";
import {
  INIT_WORK,
  WORK_STRUCT,
  flush_scheduled_work,
  flush_work,
  run_pending_work,
  schedule_work,
  schedule_work_on,
} from "../../kernel/workqueue.js";
import { defineWorkload } from "../workload.js";

/** The line the selftest handler is installed on. */
export const PERCPU_SELFTEST_IRQ = 3;
/** Work items each CPU owns (and alone queues). */
export const NR_SELFTEST_WORKS = 8;

const SELFTEST_CPU = defineStruct("percpu_selftest_cpu", [
  { name: "works", type: WORK_STRUCT, count: NR_SELFTEST_WORKS },
  /** Queued by the interrupt handler on the interrupted CPU. */
  { name: "irq_work", type: WORK_STRUCT },
  /** Nonzero while this CPU is inside a spin_lock_irqsave region (no interrupt may be taken there). */
  { name: "in_irqsave", type: "i32", guard: "owner" },
]);
const selftest_cpu = DEFINE_PER_CPU("percpu_selftest_cpu", SELFTEST_CPU);

/** The lock of the storm's irqsave regions (unit tests borrow it for theirs). */
export const percpu_selftest_lock = DEFINE_SPINLOCK("percpu_selftest_lock");

/** Work item `i` of CPU `cpu` (unit tests re-INIT_WORK them with their own functions). */
export function percpuSelftestWork(cpu: number, i: number): number {
  return per_cpu_ptr(selftest_cpu, cpu) + SELFTEST_CPU.off.works + i * WORK_STRUCT.size;
}

const SELFTEST_STATS = defineStruct("percpu_selftest", [
  { name: "work_ran", type: "i32", guard: "atomic" },
  { name: "irq_work_queued", type: "i32", guard: "atomic" },
  { name: "irq_work_ran", type: "i32", guard: "atomic" },
  { name: "irqs_handled", type: "i32", guard: "atomic" },
  /** Runs in the wrong context: a work item not in process context, a handler not in hardirq. */
  { name: "bad_context", type: "i32", guard: "atomic" },
  /** Nonzero: the handler stops queueing work (the final flush then catches everything). */
  { name: "quiesce", type: "i32", guard: "atomic" },
]);
const stats = DEFINE_GLOBAL("percpu_selftest", SELFTEST_STATS);
const S = SELFTEST_STATS.off;

function statInc(off: number): void {
  Atomics.add(I32, (stats.ptr + off) >> 2, 1);
}

/** A work item must run in process context, preemptible, interrupts on. */
function checkProcessContext(): void {
  if (in_interrupt() || in_atomic() || irqs_disabled()) statInc(S.bad_context);
}

const selftest_work_fn = defineKernelFn("percpu_selftest_work_fn", () => {
  checkProcessContext();
  statInc(S.work_ran);
});

const selftest_irq_work_fn = defineKernelFn("percpu_selftest_irq_work_fn", () => {
  checkProcessContext();
  statInc(S.irq_work_ran);
});

const selftest_irq_handler = defineKernelFn("percpu_selftest_irq_handler", () => {
  if (!in_irq() || !irqs_disabled() || I32[(this_cpu_ptr(selftest_cpu) + SELFTEST_CPU.off.in_irqsave) >> 2] !== 0)
    statInc(S.bad_context);
  statInc(S.irqs_handled);
  if (Atomics.load(I32, (stats.ptr + S.quiesce) >> 2) !== 0) return;
  if (schedule_work(this_cpu_ptr(selftest_cpu) + SELFTEST_CPU.off.irq_work)) statInc(S.irq_work_queued);
});

staticInit(() => {
  for (let cpu = 0; cpu < theArena().config.cpus; cpu++) {
    const p = per_cpu_ptr(selftest_cpu, cpu);
    for (let i = 0; i < NR_SELFTEST_WORKS; i++)
      INIT_WORK(p + SELFTEST_CPU.off.works + i * WORK_STRUCT.size, selftest_work_fn);
    INIT_WORK(p + SELFTEST_CPU.off.irq_work, selftest_irq_work_fn);
  }
});

/** Installs the selftest handler (which queues this CPU's irq_work) on PERCPU_SELFTEST_IRQ; returns request_irq's result. */
defineWorkload("percpu_irq_request", () =>
  request_irq(PERCPU_SELFTEST_IRQ, selftest_irq_handler, "percpu_selftest", 0),
);

/** raise_irq_on(cpu, PERCPU_SELFTEST_IRQ) from this CPU. */
defineWorkload("percpu_irq_raise", (a: { cpu: number }) => raise_irq_on(a.cpu, PERCPU_SELFTEST_IRQ));

/** This CPU's interrupt count before and after one sched point. */
defineWorkload("percpu_irq_take_next", () => {
  const before = kstat_cpu_irqs_sum(smp_processor_id());
  sched_op_point();
  return [before, kstat_cpu_irqs_sum(smp_processor_id())];
});

/**
 * Random work traffic: each round queues one of this CPU's work items on this
 * CPU or (cross) a random one inside a spin_lock_irqsave region, sometimes
 * flushes one, then passes a safe point. Ends by flushing its own items
 * (flushAtEnd). Returns how many queueings succeeded.
 */
defineWorkload(
  "percpu_wq_storm",
  (a: { rounds: number; cross: boolean; flushEvery: number; flushAtEnd: boolean }, ctx) => {
    const rng = ctx.prng(0x77);
    const cpus = theArena().config.cpus;
    const works = this_cpu_ptr(selftest_cpu) + SELFTEST_CPU.off.works;
    const work = (i: number) => works + i * WORK_STRUCT.size;
    const region = (this_cpu_ptr(selftest_cpu) + SELFTEST_CPU.off.in_irqsave) >> 2;
    let queued = 0;
    for (let r = 0; r < a.rounds; r++) {
      const w = work(rng.int(0, NR_SELFTEST_WORKS - 1));
      const flags = spin_lock_irqsave(percpu_selftest_lock.ptr);
      I32[region] = 1;
      if (schedule_work_on(a.cross ? rng.int(0, cpus - 1) : ctx.cpu, w)) queued++;
      I32[region] = 0;
      spin_unlock_irqrestore(percpu_selftest_lock.ptr, flags);
      if (a.flushEvery > 0 && r % a.flushEvery === 0) flush_work(work(rng.int(0, NR_SELFTEST_WORKS - 1)));
      sched_op_point();
    }
    if (a.flushAtEnd) for (let i = 0; i < NR_SELFTEST_WORKS; i++) flush_work(work(i));
    return queued;
  },
);

/** This CPU's kworker runs its pending work; returns how many items ran. */
defineWorkload("percpu_run_pending_work", () => run_pending_work());

/** Stops the handler queueing work, then flush_scheduled_work: afterwards nothing is pending anywhere. */
defineWorkload("percpu_quiesce_flush", () => {
  Atomics.store(I32, (stats.ptr + S.quiesce) >> 2, 1);
  flush_scheduled_work();
});

/** The selftest counters. */
defineWorkload("percpu_selftest_stats", () => {
  const r = (off: number) => Atomics.load(I32, (stats.ptr + off) >> 2);
  return {
    workRan: r(S.work_ran),
    irqWorkQueued: r(S.irq_work_queued),
    irqWorkRan: r(S.irq_work_ran),
    irqsHandled: r(S.irqs_handled),
    badContext: r(S.bad_context),
  };
});
