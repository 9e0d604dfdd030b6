/**
 * How a CPU waits for a lock, and the watchdogs that end a wait that never ends.
 *
 * arm64 waits with WFE: `smp_cond_load_acquire` (arch/arm64/include/asm/
 * barrier.h, v4.19) arms the exclusive monitor on the lock word and sleeps the
 * core until that word is written. Atomics.wait is the same idea for a thread:
 * sleep until the word is notified. So a waiter here spins briefly (a handoff
 * within a few hundred sched points is common), then sleeps on the word in
 * bounded slices; between slices it checks the machine-stop word and the
 * watchdog, so no wait can hang the run.
 *
 * Unlike WFE, Atomics.wait is woken only by an explicit notify, so every lock
 * keeps a `sleepers` count that a releasing CPU reads (after its release, both
 * with Atomics: sequentially consistent) to decide whether to notify.
 */
import { I32, machineStopping, theArena } from "../shared/arena.js";
import { KernelBug, MachineStopped, reportBug } from "../shared/report.js";
import { SP_SPIN, sched_point } from "../sched/sched_point.js";
import { smp_processor_id } from "../percpu/smp.js";
import { heldLocksOf, lockdep_class_name, lockdepOn } from "./lockdep.js";

/**
 * Sched points a waiter spins through (~40 µs) before it sleeps on the lock word.
 * Measured with fix_size_alloc_test on 2 CPUs of a 2-core host: 256 tries gave
 * 21 µs per pair (most handoffs paid a futex wake), 4096 gave 6.3 µs, 32768 no
 * better; with 4 CPUs on 2 cores 4096 still beat 256 (237–374 vs 403–472 µs).
 */
export const SPIN_TRIES = 4096;
/** A sleeping waiter wakes at least this often to check machine stop and the watchdog. */
export const WAIT_SLICE_MS = 50;

/** Names a lock and who holds it, for a watchdog report: "vmap_area_lock, held by CPU#1 (which holds: …)". */
export type LockHolderFn = (lock: number) => string;

/** The usual holder text: "<class>, held by CPU#<owner> (which holds: <its held lock classes>)". */
export function lock_holder_text(cls: number, owner: number, how = "held"): string {
  const held = !lockdepOn ? "lockdep off" : owner >= 0 ? heldLocksOf(owner).join(", ") || "(none)" : "?";
  return `${lockdep_class_name(cls)}, ${how} by CPU#${owner} (which holds: ${held})`;
}

/** The condition a waiter waits for, on the value of the lock word (`arg`: its ticket, a mask …). */
export type LockCondFn = (v: number, arg: number) => boolean;

/**
 * smp_cond_load_acquire (v4.19) on the I32 word `w` of `lock`: returns the
 * first value `v` seen with `cond(v, arg)`. `sl` is the I32 index of the lock's
 * sleepers count; `holder` describes the lock for the soft-lockup report.
 */
export function smp_cond_load_acquire(
  lock: number,
  w: number,
  sl: number,
  cond: LockCondFn,
  arg: number,
  holder: LockHolderFn,
): number {
  for (let i = 0; i < SPIN_TRIES; i++) {
    sched_point(SP_SPIN);
    const v = Atomics.load(I32, w);
    if (cond(v, arg)) return v;
  }
  const start = Date.now();
  // Count ourselves before re-reading the word: a release after this add sees us and notifies.
  Atomics.add(I32, sl, 1);
  try {
    for (;;) {
      const v = Atomics.load(I32, w);
      if (cond(v, arg)) return v;
      // Sleeps only while the word still holds v: a release in between makes wait return at once.
      Atomics.wait(I32, w, v, WAIT_SLICE_MS);
      lock_wait_check(lock, start, holder);
    }
  } finally {
    Atomics.sub(I32, sl, 1);
  }
}

/**
 * Between two wait slices: a sched point, the machine-stop check, and the
 * soft-lockup watchdog (kernel/watchdog.c) once the wait exceeds the config's
 * watchdogMs.
 */
export function lock_wait_check(lock: number, start: number, holder: LockHolderFn): void {
  sched_point(SP_SPIN);
  if (machineStopping()) throw new MachineStopped();
  const waited = Date.now() - start;
  if (waited > theArena().config.watchdogMs) {
    const text = `watchdog: BUG: soft lockup - CPU#${smp_processor_id()} stuck for ${Math.round(waited / 1000)}s! waiting for ${holder(lock)}`;
    reportBug("soft-lockup", text);
    throw new KernelBug(text);
  }
}

/**
 * The same check for a sleeping lock (a mutex): a task blocked that long is
 * what kernel/hung_task.c reports; here it also stops the machine, since the
 * CPU would otherwise never come back.
 */
export function hung_task_check(lock: number, start: number, holder: LockHolderFn): void {
  sched_point(SP_SPIN);
  if (machineStopping()) throw new MachineStopped();
  const waited = Date.now() - start;
  if (waited > theArena().config.watchdogMs) {
    const text = `INFO: task on CPU#${smp_processor_id()} blocked for more than ${Math.round(waited / 1000)} seconds, waiting for ${holder(lock)}`;
    reportBug("soft-lockup", text);
    throw new KernelBug(text);
  }
}
