/**
 * preempt_count and the interrupt flag of each CPU (include/linux/preempt.h,
 * v4.19 bit layout), so in_interrupt(), in_atomic() and irqs_disabled() are real.
 * What changes the softirq and hardirq bits — irq_enter/irq_exit,
 * local_bh_disable/local_bh_enable — is in softirq.ts: it may run softirqs.
 */
import { DEFINE_PER_CPU, I32 } from "../shared/arena.js";
import { defineStruct } from "../shared/struct.js";
import { onSetCurrentCpu, this_cpu_ptr } from "../shared/smp.js";
import { HARDIRQ_MASK, NMI_MASK, SOFTIRQ_MASK } from "../shared/preempt_mask.js";
import { kcsanRegisterInTask } from "../sched/kcsan.js";

/** Per-CPU execution context. Only its own CPU writes it. */
export const CPU_CONTEXT = defineStruct("cpu_context", [
  { name: "preempt_count", type: "i32", guard: "owner" },
  /** DAIF.I: 1 while local interrupts are masked. */
  { name: "irqs_off", type: "i32", guard: "owner" },
]);
const cpu_context = DEFINE_PER_CPU("cpu_context", CPU_CONTEXT);

/* I32 index of this CPU's words, cached: they are read on every lock operation. */
let pc = 0;
let irqf = 0;
onSetCurrentCpu(() => {
  const p = this_cpu_ptr(cpu_context);
  pc = (p + CPU_CONTEXT.off.preempt_count) >> 2;
  irqf = (p + CPU_CONTEXT.off.irqs_off) >> 2;
});

export function preempt_count(): number {
  return I32[pc]!;
}
export function preempt_count_add(n: number): void {
  I32[pc] = I32[pc]! + n;
}
export function preempt_count_sub(n: number): void {
  I32[pc] = I32[pc]! - n;
}
export function preempt_disable(): void {
  I32[pc] = I32[pc]! + 1;
}
export function preempt_enable(): void {
  I32[pc] = I32[pc]! - 1;
}
export function in_irq(): boolean {
  return (I32[pc]! & HARDIRQ_MASK) !== 0;
}
export function in_softirq(): boolean {
  return (I32[pc]! & SOFTIRQ_MASK) !== 0;
}
export function in_interrupt(): boolean {
  return (I32[pc]! & (HARDIRQ_MASK | SOFTIRQ_MASK | NMI_MASK)) !== 0;
}
// KCSAN tells a task's access from an interrupt's (its report's "by task" / "by interrupt").
kcsanRegisterInTask(() => !in_interrupt());
/** in_atomic(): preemption off for any reason (a spinlock, bh, irq). */
export function in_atomic(): boolean {
  return I32[pc]! !== 0;
}
export function irqs_disabled(): boolean {
  return I32[irqf]! !== 0;
}
/**
 * trace_hardirqs_on / trace_softirqs_on (kernel/locking/lockdep.c, v4.19):
 * lockdep, a floor above, registers what to do when a CPU turns interrupts
 * (`hardirq` true) or softirqs back on — mark the locks it holds as taken with
 * them enabled. Called before the flag changes, as the kernel's irqflags
 * tracing does.
 */
let trace_irqs_on: ((hardirq: boolean) => void) | null = null;

/** Lockdep registers its trace_hardirqs_on/trace_softirqs_on; null while lockdep is off on this thread. */
export function registerIrqsOnTracer(fn: ((hardirq: boolean) => void) | null): void {
  trace_irqs_on = fn;
}

export function local_irq_disable(): void {
  I32[irqf] = 1;
}
export function local_irq_enable(): void {
  if (I32[irqf] !== 0 && trace_irqs_on !== null) trace_irqs_on(true);
  I32[irqf] = 0;
}
/** local_irq_save: returns the previous flag for local_irq_restore. */
export function local_irq_save(): number {
  const f = I32[irqf]!;
  I32[irqf] = 1;
  return f;
}
export function local_irq_restore(flags: number): void {
  if (flags === 0 && I32[irqf] !== 0 && trace_irqs_on !== null) trace_irqs_on(true);
  I32[irqf] = flags;
}
/** trace_softirqs_on (v4.19): softirqs are about to be enabled again (local_bh_enable calls it). */
export function trace_softirqs_on(): void {
  if (trace_irqs_on !== null) trace_irqs_on(false);
}
