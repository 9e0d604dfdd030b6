/**
 * Simulated interrupts: request_irq/free_irq/synchronize_irq (kernel/irq/manage.c),
 * the flow from the interrupt controller to the handler (__handle_domain_irq in
 * kernel/irq/irqdesc.c, handle_fasteoi_irq in kernel/irq/chip.c) and the per-CPU
 * interrupt statistics (kstat), v4.19.
 *
 * The machine has NR_IRQS lines. A driver (a workload) installs a handler on a
 * line with request_irq; the handler is a kernel function (defineKernelFn), so
 * every CPU resolves it to its own copy of the same code.
 *
 * An interrupt becomes pending on a CPU in one of two ways:
 * - a device raises it: at each sched point, with probability config.irqRate,
 *   one of the requested lines becomes pending on this CPU. Rather than a draw
 *   at every point, the gap to the next arrival is drawn (geometric, the same
 *   law) from a PRNG stream seeded from (seed, cpu), and one more draw picks
 *   the line: a seed reproduces the positions, and a point costs a decrement;
 * - a CPU or the main thread raises it on CPU k with raise_irq_on (an IPI).
 * A pending interrupt is taken at the CPU's next sched point at which local
 * interrupts are enabled and it is not already in hardirq context. As on real
 * hardware, an interrupt raised while they are masked waits: it is not lost.
 * The handler runs between irq_enter and irq_exit with interrupts masked, so
 * in_irq() and in_interrupt() are true and interrupts do not nest.
 *
 * do_irq(irq) takes a line's interrupt right now on this CPU; runInIrq(fn)
 * runs harness code the same way (vmsim exec's "irq": true operations).
 */
import {
  DEFINE_GLOBAL,
  DEFINE_PER_CPU,
  I32,
  onMachineReset,
  per_cpu_ptr,
  readCString,
  staticInit,
  theArena,
  writeCString,
} from "../shared/arena.js";
import { callKernelFn } from "../shared/functab.js";
import { Prng } from "../shared/prng.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_IRQ, sched_point } from "../sched/sched_point.js";
import { sched_wait } from "../sched/sched_det.js";
import { SPINLOCK_T, spin_lock_init, spin_lock_irqsave, spin_unlock_irqrestore } from "../locks/spinlock.js";
import { lock_wait_check } from "../locks/lock_wait.js";
import { might_sleep } from "../locks/might_sleep.js";
import { in_irq, irq_enter, irq_exit, irqs_disabled, local_irq_restore, local_irq_save } from "../percpu/preempt.js";
import { onSetCurrentCpu, smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { trace_irq_handler_entry, trace_irq_handler_exit, tracing } from "../trace/trace.js";

/** Interrupt lines of the machine (one pending bit each in an i32). */
export const NR_IRQS = 16;
const IRQ_NAME_LEN = 16;
const EINVAL = 22;
const EBUSY = 16;
/** PRNG stream of interrupt arrivals, apart from the workload streams (cpu * 1024 + n). */
const IRQ_PRNG_STREAM = 0x100000;

/*** Interrupt descriptors ***/

/** struct irq_desc with its one irqaction (no shared lines), reduced to what a simulated line needs. */
export const IRQ_DESC = defineStruct("irq_desc", [
  /** Serializes request_irq and free_irq of this line. */
  { name: "lock", type: SPINLOCK_T },
  /** action->handler, a kernel function id; 0 for a free line. Published last, cleared first. */
  { name: "handler", type: "i32", guard: "atomic" },
  /** action->dev_id, the handler's argument; written before the handler is published. */
  { name: "dev_id", type: "ptr", guard: "init" },
  /** Handlers of this line running now, all CPUs (IRQD_IRQ_INPROGRESS as a count). */
  { name: "in_progress", type: "i32", guard: "atomic" },
  /** action->name. */
  { name: "name", type: "u32", count: IRQ_NAME_LEN / 4, guard: "init" },
]);
const D = IRQ_DESC.off;

/** The static irq_desc[NR_IRQS] of a !SPARSE_IRQ kernel, with the arch's error count. */
export const IRQ_DESC_TABLE = defineStruct("irq_desc_table", [
  /** Lines that have a handler, one bit each: where a random device interrupt can arrive. */
  { name: "requested", type: "i32", guard: "atomic" },
  /** irq_err_count (arch/arm64): interrupts taken on a line with no handler. */
  { name: "irq_err_count", type: "i32", guard: "atomic" },
  { name: "desc", type: IRQ_DESC, count: NR_IRQS },
]);
const irq_desc = DEFINE_GLOBAL("irq_desc", IRQ_DESC_TABLE);

staticInit(() => {
  for (let irq = 0; irq < NR_IRQS; irq++) spin_lock_init(irq_to_desc(irq) + D.lock, "&desc->lock");
});

/** irq_to_desc (v4.19): the descriptor of line `irq`. */
export function irq_to_desc(irq: number): number {
  return irq_desc.ptr + IRQ_DESC_TABLE.off.desc + irq * IRQ_DESC.size;
}

/** Per-CPU interrupt state: what is pending here and what was taken (kernel_stat). */
export const IRQ_CPUSTAT = defineStruct("irq_cpustat", [
  /** Lines raised on this CPU and not yet taken, one bit each: any CPU sets, the owner takes. */
  { name: "pending", type: "i32", guard: "atomic" },
  /** kstat_cpu(cpu).irqs_sum: interrupts taken, runInIrq included. */
  { name: "irqs_sum", type: "i32", guard: "owner" },
  /** kstat_irqs_cpu(irq, cpu): interrupts taken per line. */
  { name: "kstat_irqs", type: "i32", count: NR_IRQS, guard: "owner" },
]);
const irq_stat = DEFINE_PER_CPU("irq_stat", IRQ_CPUSTAT);

/* I32 indexes of this CPU's words (sched points read `pending`). */
let pendingIdx = 0;
let irqsSumIdx = 0;
let kstatIdx = 0;
onSetCurrentCpu(() => {
  const p = this_cpu_ptr(irq_stat);
  pendingIdx = (p + IRQ_CPUSTAT.off.pending) >> 2;
  irqsSumIdx = (p + IRQ_CPUSTAT.off.irqs_sum) >> 2;
  kstatIdx = (p + IRQ_CPUSTAT.off.kstat_irqs) >> 2;
});

function checkIrq(irq: number): void {
  if (!Number.isInteger(irq) || irq < 0 || irq >= NR_IRQS) throw new RangeError(`no IRQ ${irq} (0..${NR_IRQS - 1})`);
}

/**
 * request_irq(irq, handler, flags, name, dev) (v4.19, no flags: lines are not
 * shared): installs `handler` (a defineKernelFn id, called with `dev`) on line
 * `irq`. Returns 0, -EINVAL for a NULL handler or -EBUSY for a taken line.
 */
export function request_irq(irq: number, handler: number, name: string, dev: number): number {
  checkIrq(irq);
  if (handler === 0) return -EINVAL;
  const desc = irq_to_desc(irq);
  const flags = spin_lock_irqsave(desc + D.lock);
  if (Atomics.load(I32, (desc + D.handler) >> 2) !== 0) {
    spin_unlock_irqrestore(desc + D.lock, flags);
    return -EBUSY;
  }
  I32[(desc + D.dev_id) >> 2] = dev;
  writeCString(desc + D.name, IRQ_NAME_LEN, name);
  // Publish dev_id and name before the handler: a CPU that loads the handler sees both.
  Atomics.store(I32, (desc + D.handler) >> 2, handler);
  Atomics.or(I32, (irq_desc.ptr + IRQ_DESC_TABLE.off.requested) >> 2, 1 << irq);
  spin_unlock_irqrestore(desc + D.lock, flags);
  return 0;
}

/**
 * free_irq(irq, dev_id) (v4.19): removes the handler, then waits until no CPU
 * runs it any more (synchronize_irq), so `dev` may be freed on return.
 */
export function free_irq(irq: number, dev: number): void {
  checkIrq(irq);
  const desc = irq_to_desc(irq);
  const flags = spin_lock_irqsave(desc + D.lock);
  if (Atomics.load(I32, (desc + D.handler) >> 2) === 0 || I32[(desc + D.dev_id) >> 2] !== dev) {
    spin_unlock_irqrestore(desc + D.lock, flags);
    reportBug("WARN", `WARNING: Trying to free already-free IRQ ${irq}`);
    return;
  }
  Atomics.and(I32, (irq_desc.ptr + IRQ_DESC_TABLE.off.requested) >> 2, ~(1 << irq));
  Atomics.store(I32, (desc + D.handler) >> 2, 0);
  spin_unlock_irqrestore(desc + D.lock, flags);
  synchronize_irq(irq);
}

/**
 * synchronize_irq(irq) (v4.19): waits until no CPU is inside a handler of
 * `irq`. A handler that loaded the old pointer has already counted itself in
 * in_progress (generic_handle_irq), so after this returns none can run it.
 */
export function synchronize_irq(irq: number): void {
  might_sleep();
  const w = (irq_to_desc(irq) + D.in_progress) >> 2;
  for (;;) {
    const v = Atomics.load(I32, w);
    if (v === 0) return;
    // Handlers are short and nobody notifies: sleep in 1 ms slices.
    sched_wait(w, v, 1, irq_to_desc(irq));
    lock_wait_check(irq, () => `synchronize_irq(${irq}): a handler of IRQ ${irq} still runs`);
  }
}

/*** Taking an interrupt ***/

/**
 * generic_handle_irq(irq) through handle_fasteoi_irq (v4.19): counts the
 * interrupt and runs the line's handler. Called in hardirq context.
 */
export function generic_handle_irq(irq: number): void {
  const desc = irq_to_desc(irq);
  const ip = (desc + D.in_progress) >> 2;
  I32[kstatIdx + irq] = I32[kstatIdx + irq]! + 1;
  sched_point(SP_IRQ);
  // Count ourselves in before loading the handler: free_irq clears it first, then waits for in_progress 0.
  Atomics.add(I32, ip, 1);
  const handler = Atomics.load(I32, (desc + D.handler) >> 2);
  if (tracing) trace_irq_handler_entry(irq, handler);
  if (handler !== 0) callKernelFn(handler, I32[(desc + D.dev_id) >> 2]!);
  else Atomics.add(I32, (irq_desc.ptr + IRQ_DESC_TABLE.off.irq_err_count) >> 2, 1); // handle_bad_irq
  if (tracing) trace_irq_handler_exit(irq);
  Atomics.sub(I32, ip, 1);
}

/**
 * Runs `fn` on this CPU as an interrupt handler runs: local interrupts masked,
 * between irq_enter and irq_exit (HARDIRQ bits of preempt_count), counted in
 * this CPU's irqs_sum.
 */
export function runInIrq<T>(fn: () => T): T {
  const flags = local_irq_save();
  irq_enter();
  I32[irqsSumIdx] = I32[irqsSumIdx]! + 1;
  try {
    return fn();
  } finally {
    irq_exit();
    local_irq_restore(flags);
  }
}

/** do_irq(irq): __handle_domain_irq (v4.19) — takes interrupt `irq` on this CPU now. */
export function do_irq(irq: number): void {
  checkIrq(irq);
  runInIrq(() => generic_handle_irq(irq));
}

/**
 * raise_irq_on(cpu, irq): makes `irq` pending on CPU `cpu` (an IPI, or a
 * device routed there); that CPU takes it at its next sched point with
 * interrupts enabled. Any CPU, and the main thread, may call it.
 */
export function raise_irq_on(cpu: number, irq: number): void {
  checkIrq(irq);
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= theArena().config.cpus) throw new RangeError(`no CPU ${cpu}`);
  sched_point(SP_IRQ);
  Atomics.or(I32, (per_cpu_ptr(irq_stat, cpu) + IRQ_CPUSTAT.off.pending) >> 2, 1 << irq);
}

/* This CPU's arrival process, per thread (a CPU is a thread): sched points left until the next arrival. */
let arrivals: Prng | null = null;
let logNoArrival = 0;
let untilArrival = 0;
let online = false;
// A restored snapshot replays the arrivals from the start of this CPU's stream.
onMachineReset(() => {
  if (online) irqCpuOnline();
});

/** Sched points up to and including the next arrival: geometric with success chance irqRate per point. */
function irq_next_gap(): number {
  return 1 + Math.floor(Math.log1p(-arrivals!.next()) / logNoArrival);
}

/** Harness: this CPU's random device interrupts, from config.irqRate and a PRNG stream of (seed, cpu). */
export function irqCpuOnline(): void {
  online = true;
  const c = theArena().config;
  arrivals = c.irqRate > 0 ? new Prng(c.seed, IRQ_PRNG_STREAM + smp_processor_id()) : null;
  // irqRate 1: log(0) is -Infinity and every gap is 1.
  logNoArrival = Math.log1p(-c.irqRate);
  untilArrival = arrivals !== null ? irq_next_gap() : 0;
}

/** A device raises one of the requested lines on this CPU; `r` (a PRNG draw) picks which. */
function irq_arrive(r: number): void {
  let mask = Atomics.load(I32, (irq_desc.ptr + IRQ_DESC_TABLE.off.requested) >> 2);
  if (mask === 0) return; // no device, no interrupt
  let k = r % popcount(mask);
  while (k-- > 0) mask &= mask - 1;
  // Called from the sched-point hook itself, so no sched point of its own here.
  Atomics.or(I32, pendingIdx, mask & -mask);
}

function popcount(x: number): number {
  let n = 0;
  for (; x !== 0; x &= x - 1) n++;
  return n;
}

/**
 * The interrupt half of this CPU's sched-point hook: a device interrupt may
 * arrive, and pending interrupts are taken, lowest line first, when local
 * interrupts are enabled and this CPU is not in a hardirq handler.
 */
export function irqSchedPoint(): number | undefined {
  if (arrivals !== null && --untilArrival === 0) {
    irq_arrive(arrivals.u32());
    untilArrival = irq_next_gap();
  }
  // Every point while interrupts can happen at all; otherwise the hook's long default period.
  // Plain peeks (READ_ONCE): a bit another CPU set is seen a little later at worst.
  const every = arrivals !== null || I32[(irq_desc.ptr + IRQ_DESC_TABLE.off.requested) >> 2] !== 0 ? 1 : undefined;
  if (I32[pendingIdx] === 0 || irqs_disabled() || in_irq()) return every;
  // Take every pending line at once; one raised again meanwhile waits for the next sched point.
  let p = Atomics.exchange(I32, pendingIdx, 0);
  while (p !== 0) {
    const bit = p & -p;
    p ^= bit;
    do_irq(31 - Math.clz32(bit));
  }
  return every;
}

/*** Statistics ***/

/** kstat_cpu_irqs_sum(cpu) (v4.19): interrupts CPU `cpu` has taken (read it while that CPU is parked). */
export function kstat_cpu_irqs_sum(cpu: number): number {
  return I32[(per_cpu_ptr(irq_stat, cpu) + IRQ_CPUSTAT.off.irqs_sum) >> 2]!;
}

/** kstat_irqs_cpu(irq, cpu) (v4.19): interrupts of line `irq` CPU `cpu` has taken. */
export function kstat_irqs_cpu(irq: number, cpu: number): number {
  checkIrq(irq);
  return I32[((per_cpu_ptr(irq_stat, cpu) + IRQ_CPUSTAT.off.kstat_irqs) >> 2) + irq]!;
}

/** irq_err_count (arch/arm64, v4.19): interrupts taken on a line that had no handler. */
export function irq_err_count(): number {
  return Atomics.load(I32, (irq_desc.ptr + IRQ_DESC_TABLE.off.irq_err_count) >> 2);
}

/**
 * /proc/interrupts (show_interrupts, kernel/irq/proc.c, v4.19): the count of
 * each line that has a handler or was taken, per CPU, then the error count.
 * Read it while the CPUs are parked.
 */
export function show_interrupts(): string {
  const cpus = theArena().config.cpus;
  const col = (s: string | number) => String(s).padStart(11);
  const rows = [`    ${Array.from({ length: cpus }, (_, cpu) => col(`CPU${cpu}`)).join("")}`];
  for (let irq = 0; irq < NR_IRQS; irq++) {
    const counts = Array.from({ length: cpus }, (_, cpu) => kstat_irqs_cpu(irq, cpu));
    const desc = irq_to_desc(irq);
    const named = Atomics.load(I32, (desc + D.handler) >> 2) !== 0;
    if (!named && counts.every((n) => n === 0)) continue;
    const name = named ? readCString(desc + D.name, IRQ_NAME_LEN) : "-";
    rows.push(`${String(irq).padStart(3)}:${counts.map(col).join("")}  vmsim  ${name}`);
  }
  rows.push(`Err:${col(irq_err_count())}`);
  return rows.join("\n");
}
