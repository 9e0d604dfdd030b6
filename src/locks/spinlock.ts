/**
 * spinlock_t: a ticket lock, as arm64 used until v4.18 (arch/arm64/include/asm/
 * spinlock.h): one 32-bit word, `owner` in the low half and `next` in the high
 * half. Why ticket and not queued: FIFO hand-off is the behaviour the v4.19-era
 * vmalloc paths were tuned against, a lock costs one Atomics RMW, and the order
 * in which waiters get the lock is explicit — traces and replays show it.
 *
 * Waiters spin briefly, then sleep in Atomics.wait on the lock word, so a run
 * with more CPUs than host cores still progresses (a descheduled spinner would
 * otherwise burn the core the lock holder needs).
 */
import {
  DEFINE_GLOBAL,
  type GlobalVar,
  I32,
  U16,
  U32,
  machineStopping,
  staticInit,
  theArena,
} from "../shared/arena.js";
import { KernelBug, MachineStopped, reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_LOCK, SP_SPIN, SP_UNLOCK, sched_point } from "../sched/sched_point.js";
import { smp_processor_id } from "../percpu/smp.js";
import {
  local_bh_disable,
  local_bh_enable,
  local_irq_restore,
  local_irq_save,
  preempt_disable,
  preempt_enable,
} from "../percpu/preempt.js";
import { heldLocksOf, lock_acquire, lock_release, lockdep_class, lockdep_class_name, lockdepOn } from "./lockdep.js";

export const SPINLOCK_T = defineStruct("spinlock_t", [
  /** owner ticket (bits 0-15) and next ticket (bits 16-31). */
  { name: "tickets", type: "u32", guard: "atomic" },
  /** CPUs sleeping in Atomics.wait on `tickets`; unlock notifies only when nonzero. */
  { name: "sleepers", type: "i32", guard: "atomic" },
  /** CPU holding the lock, -1 when free (reports only). */
  { name: "owner_cpu", type: "i32", guard: "the lock itself" },
  { name: "class", type: "i32", guard: "init" },
]);
const OFF_SLEEPERS = SPINLOCK_T.off.sleepers;
const OFF_OWNER = SPINLOCK_T.off.owner_cpu;
const OFF_CLASS = SPINLOCK_T.off.class;

/** Spins before a waiter goes to sleep on the lock word. */
const SPIN_TRIES = 256;
/** A sleeping waiter wakes at least this often to check machine stop and the watchdog. */
const WAIT_SLICE_MS = 50;

/** spin_lock_init: an unlocked lock of class `name` (lock_class_key by name). */
export function spin_lock_init(lock: number, name: string): void {
  U32[lock >> 2] = 0;
  I32[(lock + OFF_SLEEPERS) >> 2] = 0;
  I32[(lock + OFF_OWNER) >> 2] = -1;
  I32[(lock + OFF_CLASS) >> 2] = lockdep_class(name);
}

/** DEFINE_SPINLOCK(name): a static, initialized lock; its address is `.ptr` once the arena exists. */
export function DEFINE_SPINLOCK(name: string): GlobalVar {
  const g = DEFINE_GLOBAL(name, SPINLOCK_T);
  staticInit(() => spin_lock_init(g.ptr, name));
  return g;
}

/** The waiting part of spin_lock, out of line: the fast path stays small. */
function spin_lock_slow(lock: number, ticket: number): void {
  const u16 = lock >> 1;
  for (let i = 0; i < SPIN_TRIES; i++) {
    sched_point(SP_SPIN);
    if (Atomics.load(U16, u16) === ticket) return;
  }
  const w = lock >> 2;
  const sl = (lock + OFF_SLEEPERS) >> 2;
  const start = Date.now();
  const watchdog = theArena().config.watchdogMs;
  Atomics.add(I32, sl, 1);
  try {
    for (;;) {
      // Read the word, then sleep only if it is unchanged: an unlock in between makes wait return at once.
      const v = Atomics.load(I32, w);
      if ((v & 0xffff) === ticket) return;
      Atomics.wait(I32, w, v, WAIT_SLICE_MS);
      sched_point(SP_SPIN);
      if (machineStopping()) throw new MachineStopped();
      if (Date.now() - start > watchdog) softLockup(lock, start);
    }
  } finally {
    Atomics.sub(I32, sl, 1);
  }
}

function softLockup(lock: number, start: number): never {
  const cpu = smp_processor_id();
  const owner = Atomics.load(I32, (lock + OFF_OWNER) >> 2);
  const cls = lockdep_class_name(I32[(lock + OFF_CLASS) >> 2]!);
  const held = owner >= 0 ? heldLocksOf(owner).join(", ") || "(none)" : "?";
  const text = `watchdog: BUG: soft lockup - CPU#${cpu} stuck for ${Math.round((Date.now() - start) / 1000)}s! waiting for ${cls}, held by CPU#${owner} (which holds: ${held})`;
  reportBug("soft-lockup", text);
  throw new KernelBug(text);
}

/** arch_spin_lock: take a ticket, wait for it to come up. */
function arch_spin_lock(lock: number): void {
  const old = Atomics.add(U32, lock >> 2, 0x10000);
  const ticket = old >>> 16;
  if ((old & 0xffff) !== ticket) spin_lock_slow(lock, ticket);
}

function arch_spin_unlock(lock: number): void {
  // Bump the owner half only; the 16-bit view wraps it without touching `next`.
  Atomics.add(U16, lock >> 1, 1);
  if (Atomics.load(I32, (lock + OFF_SLEEPERS) >> 2) !== 0) Atomics.notify(I32, lock >> 2);
}

export function spin_lock(lock: number): void {
  sched_point(SP_LOCK);
  preempt_disable();
  if (lockdepOn) lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, false);
  arch_spin_lock(lock);
  I32[(lock + OFF_OWNER) >> 2] = smp_processor_id();
}

export function spin_unlock(lock: number): void {
  I32[(lock + OFF_OWNER) >> 2] = -1;
  if (lockdepOn) lock_release(lock);
  arch_spin_unlock(lock);
  preempt_enable();
  sched_point(SP_UNLOCK);
}

/** spin_trylock: true when taken. */
export function spin_trylock(lock: number): boolean {
  sched_point(SP_LOCK);
  const w = lock >> 2;
  const v = Atomics.load(U32, w);
  if ((v & 0xffff) !== v >>> 16) return false;
  if (Atomics.compareExchange(U32, w, v, (v + 0x10000) >>> 0) !== v) return false;
  preempt_disable();
  if (lockdepOn) lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, true);
  I32[(lock + OFF_OWNER) >> 2] = smp_processor_id();
  return true;
}

/** spin_lock_irqsave: returns the saved interrupt flag for spin_unlock_irqrestore. */
export function spin_lock_irqsave(lock: number): number {
  const flags = local_irq_save();
  spin_lock(lock);
  return flags;
}

export function spin_unlock_irqrestore(lock: number, flags: number): void {
  spin_unlock(lock);
  local_irq_restore(flags);
}

export function spin_lock_irq(lock: number): void {
  local_irq_save();
  spin_lock(lock);
}

export function spin_unlock_irq(lock: number): void {
  spin_unlock(lock);
  local_irq_restore(0);
}

export function spin_lock_bh(lock: number): void {
  local_bh_disable();
  spin_lock(lock);
}

export function spin_unlock_bh(lock: number): void {
  spin_unlock(lock);
  local_bh_enable();
}

export function spin_is_locked(lock: number): boolean {
  const v = Atomics.load(U32, lock >> 2);
  return (v & 0xffff) !== v >>> 16;
}

/** Owner CPU of a held lock, -1 when free (diagnostics). */
export function spin_owner(lock: number): number {
  return Atomics.load(I32, (lock + OFF_OWNER) >> 2);
}

/** assert_spin_locked: BUG when nobody holds it. */
export function assert_spin_locked(lock: number): void {
  if (!spin_is_locked(lock))
    throw new KernelBug(`assert_spin_locked(${lockdep_class_name(I32[(lock + OFF_CLASS) >> 2]!)}) failed`);
}
