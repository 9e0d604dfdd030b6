/**
 * Softirqs (kernel/softirq.c, v4.19): each CPU's pending mask, open_softirq
 * and raise_softirq, and the two places they run — at irq_exit when the
 * interrupt did not land in a softirq or another hardirq (invoke_softirq), and
 * at local_bh_enable when it turns them back on (do_softirq). A vector's action
 * runs in softirq context (SOFTIRQ_OFFSET) with interrupts on, so an interrupt
 * may land in it, and regardless of spinlocks the interrupted code holds: what
 * a softirq shares with process context needs _bh or _irqsave locking.
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, I32, per_cpu_ptr } from "../shared/arena.js";
import { callKernelFn } from "../shared/functab.js";
import { HARDIRQ_OFFSET, SOFTIRQ_DISABLE_OFFSET, SOFTIRQ_MASK, SOFTIRQ_OFFSET } from "../shared/preempt_mask.js";
import { defineStruct } from "../shared/struct.js";
import { onSetCurrentCpu, this_cpu_ptr } from "../shared/smp.js";
import {
  in_interrupt,
  local_irq_disable,
  local_irq_enable,
  local_irq_restore,
  local_irq_save,
  preempt_count,
  preempt_count_add,
  preempt_count_sub,
  trace_softirqs_on,
} from "./preempt.js";

/** The softirq vectors (enum in include/linux/interrupt.h, v4.19); vmsim opens RCU_SOFTIRQ. */
export const NR_SOFTIRQS = 10;
export const RCU_SOFTIRQ = 9;
/** __do_softirq's MAX_SOFTIRQ_RESTART (v4.19): rounds before the rest is left for later. */
const MAX_SOFTIRQ_RESTART = 10;

/** softirq_vec[NR_SOFTIRQS] (v4.19): each vector's action, a kernel function id (0: not opened). */
export const SOFTIRQ_VEC = defineStruct("softirq_vec", [
  { name: "action", type: "i32", count: NR_SOFTIRQS, guard: "init" },
]);
const softirq_vec = DEFINE_GLOBAL("softirq_vec", SOFTIRQ_VEC);

/** A CPU's softirq state: irq_stat's __softirq_pending and kstat_cpu's softirqs counts. */
export const SOFTIRQ_CPUSTAT = defineStruct("softirq_cpustat", [
  /** Vectors raised on this CPU and not yet run; only this CPU touches it, with interrupts off or from one. */
  { name: "pending", type: "i32", guard: "owner" },
  /** kstat_softirqs_cpu(nr, cpu): actions run per vector. */
  { name: "softirqs", type: "i32", count: NR_SOFTIRQS, guard: "owner" },
]);
const softirq_stat = DEFINE_PER_CPU("softirq_stat", SOFTIRQ_CPUSTAT);

let pendingIdx = 0;
let countIdx = 0;
onSetCurrentCpu(() => {
  const p = this_cpu_ptr(softirq_stat);
  pendingIdx = (p + SOFTIRQ_CPUSTAT.off.pending) >> 2;
  countIdx = (p + SOFTIRQ_CPUSTAT.off.softirqs) >> 2;
});

/** open_softirq(nr, action) (v4.19): at boot, `action` (a defineKernelFn id) becomes vector `nr`'s. */
export function open_softirq(nr: number, action: number): void {
  I32[((softirq_vec.ptr + SOFTIRQ_VEC.off.action) >> 2) + nr] = action;
}

/** local_softirq_pending (v4.19): the vectors raised on this CPU and not yet run. */
export function local_softirq_pending(): number {
  return I32[pendingIdx]!;
}

/**
 * raise_softirq(nr) (v4.19): mark vector `nr` pending on this CPU. It runs at
 * the next irq_exit or local_bh_enable that may run softirqs (vmsim has no
 * ksoftirqd: the scheduling-clock tick is the next such irq_exit).
 */
export function raise_softirq(nr: number): void {
  I32[pendingIdx] = I32[pendingIdx]! | (1 << nr);
}

/** kstat_softirqs_cpu(nr, cpu) (v4.19): how many times CPU `cpu` ran vector `nr`. */
export function kstat_softirqs_cpu(nr: number, cpu: number): number {
  return I32[((per_cpu_ptr(softirq_stat, cpu) + SOFTIRQ_CPUSTAT.off.softirqs) >> 2) + nr]!;
}

/**
 * __do_softirq (v4.19): run the pending vectors in softirq context with
 * interrupts enabled; vectors raised meanwhile run in further rounds, up to
 * MAX_SOFTIRQ_RESTART, the rest wait for the next chance. Entered and left
 * with interrupts off.
 */
function __do_softirq(): void {
  let restart = MAX_SOFTIRQ_RESTART;
  const actions = (softirq_vec.ptr + SOFTIRQ_VEC.off.action) >> 2;
  preempt_count_add(SOFTIRQ_OFFSET);
  try {
    for (;;) {
      let pending = I32[pendingIdx]!;
      I32[pendingIdx] = 0;
      local_irq_enable();
      while (pending !== 0) {
        const bit = pending & -pending;
        pending ^= bit;
        const nr = 31 - Math.clz32(bit);
        I32[countIdx + nr] = I32[countIdx + nr]! + 1;
        const action = I32[actions + nr]!;
        if (action !== 0) callKernelFn(action, nr);
      }
      local_irq_disable();
      if (I32[pendingIdx] === 0 || --restart === 0) break;
    }
  } finally {
    preempt_count_sub(SOFTIRQ_OFFSET);
  }
}

/** do_softirq (v4.19): run pending softirqs now, unless this CPU is already in interrupt context. */
export function do_softirq(): void {
  if (in_interrupt()) return;
  const flags = local_irq_save();
  if (I32[pendingIdx] !== 0) __do_softirq();
  local_irq_restore(flags);
}

/** irq_enter (v4.19): a hardirq handler starts (HARDIRQ bits of preempt_count). */
export function irq_enter(): void {
  preempt_count_add(HARDIRQ_OFFSET);
}

/**
 * irq_exit (v4.19): the handler is done; unless the interrupt landed in a
 * softirq or (never on arm64) another hardirq, pending softirqs run now
 * (invoke_softirq: on the interrupt's stack, whatever locks the interrupted
 * code holds).
 */
export function irq_exit(): void {
  preempt_count_sub(HARDIRQ_OFFSET);
  if (!in_interrupt() && I32[pendingIdx] !== 0) {
    const flags = local_irq_save();
    __do_softirq();
    local_irq_restore(flags);
  }
}

/** local_bh_disable (v4.19): softirqs off (SOFTIRQ_DISABLE_OFFSET, twice SOFTIRQ_OFFSET). */
export function local_bh_disable(): void {
  preempt_count_add(SOFTIRQ_DISABLE_OFFSET);
}

/**
 * local_bh_enable (v4.19, __local_bh_enable_ip): softirqs back on; the ones
 * raised while they were off run now, still with preemption off, unless this
 * CPU is in interrupt context.
 */
export function local_bh_enable(): void {
  if ((preempt_count() & SOFTIRQ_MASK) === SOFTIRQ_DISABLE_OFFSET) trace_softirqs_on();
  preempt_count_sub(SOFTIRQ_DISABLE_OFFSET - 1);
  if (!in_interrupt() && I32[pendingIdx] !== 0) do_softirq();
  preempt_count_sub(1);
}
