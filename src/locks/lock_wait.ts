/**
 * How a CPU waits for a lock, and the watchdogs that end a wait that never ends.
 *
 * arm64 waits with WFE: `smp_cond_load_acquire` (arch/arm64/include/asm/
 * barrier.h, v4.19) arms the exclusive monitor on the lock word and sleeps the
 * core until that word is written. Atomics.wait is the same idea for a thread:
 * sleep until the word is notified. So a waiter here spins briefly (a handoff
 * within a few hundred sched points is common), then sleeps on the word in
 * bounded slices; between slices it checks the machine-stop word and the
 * soft-lockup watchdog, so no wait can hang the run.
 *
 * Unlike WFE, Atomics.wait is woken only by an explicit notify, so every lock
 * keeps a `sleepers` count that a releasing CPU reads (after its release, both
 * with Atomics: sequentially consistent) to decide whether to notify.
 */
import { DEFINE_PER_CPU, F64, I32, machineStopping, per_cpu_ptr, theArena } from "../shared/arena.js";
import { KernelBug, MachineStopped, reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_SPIN, sched_point } from "../sched/sched_point.js";
import { schedDeterministic, sched_wait, waitDescriber } from "../sched/sched_det.js";
import { softlockup_check } from "../sched/watchdog.js";
import { monotonicMs, watchdogExpired } from "../sched/watchdog_clock.js";
import { smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { MAX_LOCK_CLASSES, heldLocksOf, lockdep_class_name, lockdepOn, waitingLocksOf } from "./lockdep.js";

/**
 * Sched points a waiter spins through (~40 µs) before it sleeps on the lock word.
 * Measured with fix_size_alloc_test on 2 CPUs of a 2-core host: 256 tries gave
 * 21 µs per pair (most handoffs paid a futex wake), 4096 gave 6.3 µs, 32768 no
 * better; with 4 CPUs on 2 cores 4096 still beat 256 (237–374 vs 403–472 µs).
 */
export const SPIN_TRIES = 4096;
/** A sleeping waiter wakes at least this often to check machine stop and the watchdog. */
export const WAIT_SLICE_MS = 50;

/*** Lock wait time (CONFIG_LOCK_STAT's waittime, per CPU) ***/

/**
 * Per CPU: time spent waiting for contended locks — what CONFIG_LOCK_STAT sums
 * per lock class as waittime-total, here per CPU, in all and per class. Only the
 * slow path (a lock found taken) writes it, so an uncontended lock costs
 * nothing more. Timing every spin would put a ~60 ns clock read inside each
 * contended handoff; instead every wait counts its spin tries, one wait in
 * {@link LOCK_WAIT_SAMPLE} is timed to price a try under the same contention,
 * and sleeps (a futex wake is far dearer than a clock read) are always timed.
 * The class arrays are indexed by lockdep class id - 1 (ids start at 1).
 */
const LOCK_WAIT_TIME = defineStruct("lock_wait_time", [
  /** Waits that found the lock taken. */
  { name: "waits", type: "f64", guard: "owner" },
  /** Spin tries of every wait. */
  { name: "spins", type: "f64", guard: "owner" },
  /** Spin tries and their ns, of the timed waits only. */
  { name: "timed_spins", type: "f64", guard: "owner" },
  { name: "timed_ns", type: "f64", guard: "owner" },
  /** ns asleep in Atomics.wait, every wait. */
  { name: "sleep_ns", type: "f64", guard: "owner" },
  /** waits, spins and sleep_ns again, per lock class (lock_class_stats). */
  { name: "class_waits", type: "f64", count: MAX_LOCK_CLASSES, guard: "owner" },
  { name: "class_spins", type: "f64", count: MAX_LOCK_CLASSES, guard: "owner" },
  { name: "class_sleep_ns", type: "f64", count: MAX_LOCK_CLASSES, guard: "owner" },
]);
const lock_wait_time = DEFINE_PER_CPU("lock_wait_time", LOCK_WAIT_TIME);
const LW = LOCK_WAIT_TIME.off;

/** One contended wait in this many has its spin phase timed (the first of each CPU included). */
const LOCK_WAIT_SAMPLE = 8;
/** This thread's contended waits so far: picks the timed ones (harness state, not kernel state). */
let waitTick = 0;

/** The F64 index of class `cls`'s entry in the per-class array at `off` of this CPU's counters. */
function classSlot(off: number, cls: number): number {
  return (this_cpu_ptr(lock_wait_time) + off + (cls - 1) * 8) >> 3;
}

/** A class id the per-class arrays hold (0, "unknown", is counted only in the totals). */
const hasSlot = (cls: number) => cls >= 1 && cls <= MAX_LOCK_CLASSES;

/**
 * Starts a contended wait for a lock of class `cls`: counts it; returns the
 * start time if this wait is timed, else -1.
 */
export function lock_wait_start(cls: number): number {
  const p = this_cpu_ptr(lock_wait_time);
  F64[(p + LW.waits) >> 3]++;
  if (hasSlot(cls)) F64[classSlot(LW.class_waits, cls)]++;
  return waitTick++ % LOCK_WAIT_SAMPLE === 0 ? monotonicMs() : -1;
}

/** Ends a wait's spin phase after `tries` tries; `t0` is what {@link lock_wait_start} returned. */
export function lock_wait_spun(cls: number, tries: number, t0: number): void {
  const p = this_cpu_ptr(lock_wait_time);
  F64[(p + LW.spins) >> 3] += tries;
  if (hasSlot(cls)) F64[classSlot(LW.class_spins, cls)] += tries;
  if (t0 < 0) return;
  F64[(p + LW.timed_spins) >> 3] += tries;
  F64[(p + LW.timed_ns) >> 3] += (monotonicMs() - t0) * 1e6;
}

/** Ends a wait's sleep phase, begun at `t0` (monotonicMs()); returns its ms. */
export function lock_wait_slept(cls: number, t0: number): number {
  const ms = monotonicMs() - t0;
  F64[(this_cpu_ptr(lock_wait_time) + LW.sleep_ns) >> 3] += ms * 1e6;
  if (hasSlot(cls)) F64[classSlot(LW.class_sleep_ns, cls)] += ms * 1e6;
  return ms;
}

/** Lock waits of one CPU since the last {@link resetLockWaitTime}. */
export interface LockWaitTime {
  /** Waits that found the lock taken. */
  readonly waits: number;
  /** Estimated ns waiting: every spin try at the timed waits' price, plus every sleep. */
  readonly ns: number;
  /** The same estimate per lock class that was waited for, by class name ("vmap_area_lock"). */
  readonly byLock: Readonly<Record<string, number>>;
}

/**
 * Each CPU's lock waits. Read from the main thread while the CPUs are parked.
 * The price of a try is the machine's (all CPUs' timed waits): a CPU whose few
 * waits were none of them timed is priced like the others.
 */
export function lockWaitTime(): LockWaitTime[] {
  const cpus = theArena().config.cpus;
  const at = (cpu: number, off: number) => F64[(per_cpu_ptr(lock_wait_time, cpu) + off) >> 3]!;
  let spins = 0;
  let ns = 0;
  for (let cpu = 0; cpu < cpus; cpu++) {
    spins += at(cpu, LW.timed_spins);
    ns += at(cpu, LW.timed_ns);
  }
  const perTry = spins > 0 ? ns / spins : 0;
  return Array.from({ length: cpus }, (_, cpu) => {
    const byLock: Record<string, number> = {};
    for (let i = 0; i < MAX_LOCK_CLASSES; i++)
      if (at(cpu, LW.class_waits + i * 8) > 0)
        byLock[lockdep_class_name(i + 1)] =
          at(cpu, LW.class_spins + i * 8) * perTry + at(cpu, LW.class_sleep_ns + i * 8);
    return { waits: at(cpu, LW.waits), ns: at(cpu, LW.spins) * perTry + at(cpu, LW.sleep_ns), byLock };
  });
}

/** Zeroes every CPU's lock wait counters. Main thread, CPUs parked. */
export function resetLockWaitTime(): void {
  const cpus = theArena().config.cpus;
  for (let cpu = 0; cpu < cpus; cpu++) {
    const p = per_cpu_ptr(lock_wait_time, cpu) >> 3;
    F64.fill(0, p, p + (LOCK_WAIT_TIME.size >> 3));
  }
}

/*** Waiting ***/

/** Names a lock and who holds it, for a watchdog report: "vmap_area_lock, held by CPU#1 (which holds: …)". */
export type LockHolderFn = (lock: number) => string;

/**
 * The usual holder text: "<class>, held by CPU#<owner> (which holds: <its held
 * lock classes>)", and "; waits for <class>" when the holder is itself stuck.
 */
export function lock_holder_text(cls: number, owner: number, how = "held"): string {
  let held = "?";
  if (!lockdepOn) held = "lockdep off";
  else if (owner >= 0) {
    const waits = waitingLocksOf(owner);
    held = `${heldLocksOf(owner).join(", ") || "(none)"}${waits.length ? `; waits for ${waits.join(", ")}` : ""}`;
  }
  return `${lockdep_class_name(cls)}, ${how} by CPU#${owner} (which holds: ${held})`;
}

const describerIds = new Map<LockHolderFn, number>();

/**
 * Registers a lock type's holder text (at module load) so that a deadlock
 * found by the deterministic scheduler names the lock and its holder; returns
 * the id for sched_wait.
 */
export function registerLockHolder(fn: LockHolderFn): number {
  const id = waitDescriber(fn);
  describerIds.set(fn, id);
  return id;
}

/** The id {@link registerLockHolder} gave `holder` (-1: none), for sched_wait's deadlock report. */
export function describerOf(holder: LockHolderFn): number {
  return describerIds.get(holder) ?? -1;
}

/** The condition a waiter waits for, on the value of the lock word (`arg`: its ticket, a mask …). */
export type LockCondFn = (v: number, arg: number) => boolean;

/**
 * smp_cond_load_acquire (v4.19) on the I32 word `w` of `lock`, a lock of
 * lockdep class `cls`: returns the first value `v` seen with `cond(v, arg)`.
 * `sl` is the I32 index of the lock's sleepers count; `holder` describes the
 * lock for the soft-lockup report.
 */
export function smp_cond_load_acquire(
  lock: number,
  cls: number,
  w: number,
  sl: number,
  cond: LockCondFn,
  arg: number,
  holder: LockHolderFn,
): number {
  const t0 = lock_wait_start(cls);
  // Under the deterministic scheduler nobody else runs while we spin: block at once.
  const tries = schedDeterministic ? 0 : SPIN_TRIES;
  for (let i = 0; i < tries; i++) {
    sched_point(SP_SPIN);
    const v = Atomics.load(I32, w);
    if (cond(v, arg)) {
      lock_wait_spun(cls, i + 1, t0);
      return v;
    }
  }
  lock_wait_spun(cls, tries, t0);
  const slept = monotonicMs();
  // Count ourselves before re-reading the word: a release after this add sees us and notifies.
  Atomics.add(I32, sl, 1);
  try {
    for (;;) {
      const v = Atomics.load(I32, w);
      if (cond(v, arg)) return v;
      // Sleeps only while the word still holds v: a release in between makes wait return at once.
      sched_wait(w, v, WAIT_SLICE_MS, lock, describerOf(holder));
      lock_wait_check(lock, holder);
    }
  } finally {
    Atomics.sub(I32, sl, 1);
    lock_wait_slept(cls, slept);
  }
}

/**
 * Between two wait slices: a sched point, the machine-stop check, and the
 * soft-lockup check (src/sched/watchdog.ts) naming what the CPU waits for.
 */
export function lock_wait_check(lock: number, holder: LockHolderFn): void {
  sched_point(SP_SPIN);
  if (machineStopping()) throw new MachineStopped();
  softlockup_check(() => `waiting for ${holder(lock)}`);
}

/**
 * The same check for a sleeping lock (a mutex): a task blocked that long is
 * what kernel/hung_task.c reports; here it also stops the machine, since the
 * CPU would otherwise never come back. `start` is monotonicMs() when the
 * task blocked; the limit scales with the host's load (src/sched/watchdog_clock.ts).
 * Deterministic runs have no clock: a wait that cannot end is their deadlock verdict.
 */
export function hung_task_check(lock: number, start: number, holder: LockHolderFn): void {
  sched_point(SP_SPIN);
  if (machineStopping()) throw new MachineStopped();
  if (schedDeterministic) return;
  const waited = monotonicMs() - start;
  const { watchdogMs, cpus } = theArena().config;
  const limit = watchdogExpired(waited, watchdogMs, cpus);
  if (limit !== null) {
    const text = `INFO: task on CPU#${smp_processor_id()} blocked for more than ${Math.round(waited / 1000)} seconds, waiting for ${holder(lock)}${limit.note}`;
    reportBug("soft-lockup", text);
    throw new KernelBug(text);
  }
}
