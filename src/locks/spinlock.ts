/**
 * spinlock_t, in one of two arch locks (the machine's `spinlock` setting):
 *
 * - "ticket": the ticket lock arm64 used until v5.8 (arch/arm64/include/asm/
 *   spinlock.h, v4.17; c11090474d70 moved arm64 to qspinlock): one 32-bit
 *   word, `owner` in the low half and `next` in the high half. FIFO hand-off,
 *   one Atomics RMW per lock, and the order in which waiters get the lock is
 *   explicit: the deterministic scheduler (explore, replay) always runs it.
 * - "pv-qspinlock" (the default of free-mode machines): the paravirtual queued
 *   spinlock of qspinlock.ts, whose halted waiters never hold up running CPUs,
 *   so that more CPUs than host cores do not collapse.
 *
 * The holder caches its ticket (`serving`), so unlock is one RMW that also
 * returns `next`: only when tickets beyond the next owner's were taken can a
 * waiter be asleep, and only then is `sleepers` read. An uncontended
 * lock+unlock pair is two Atomics operations.
 *
 * Waiters spin briefly, then sleep in Atomics.wait on the lock word
 * (lock_wait.ts), so a run with more CPUs than host cores still progresses
 * (a descheduled spinner would otherwise burn the core the lock holder needs).
 */
import { DEFINE_GLOBAL, type GlobalVar, I32, staticInit, theArena } from "../shared/arena.js";
import { KernelBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_LOCK, SP_UNLOCK, sched_point } from "../sched/sched_point.js";
import { schedDeterministic, sched_wake } from "../sched/sched_det.js";
import { smp_processor_id } from "../shared/smp.js";
import {
  local_irq_disable,
  local_irq_enable,
  local_irq_restore,
  local_irq_save,
  preempt_disable,
  preempt_enable,
} from "../percpu/preempt.js";
import { local_bh_disable, local_bh_enable } from "../percpu/softirq.js";
import {
  lock_acquire,
  lock_acquired,
  lock_release,
  lockdep_class,
  lockdep_class_name,
  lockdep_subclass,
  lockdepOn,
} from "./lockdep.js";
import { type LockHolderFn, lock_holder_text, registerLockHolder, smp_cond_load_acquire } from "./lock_wait.js";
import {
  _Q_LOCKED_VAL,
  __pv_queued_spin_lock_slowpath,
  __pv_queued_spin_unlock,
  queued_spin_is_contended,
  queued_spin_is_locked,
  queued_spin_trylock,
} from "./qspinlock.js";
import {
  LOCK_SPIN,
  trace_lock_acquire,
  trace_lock_acquired,
  trace_lock_contended,
  trace_lock_release,
  tracing,
} from "../trace/trace.js";

/** struct spinlock (raw_spinlock + dep_map), arm64 ticket layout. */
export const SPINLOCK_T = defineStruct("spinlock_t", [
  /**
   * Ticket: owner ticket (bits 0-15) and next ticket (bits 16-31); accessed as i32 (no boxed doubles).
   * pv-qspinlock: the qspinlock word (locked byte, pending byte, tail).
   */
  { name: "tickets", type: "u32", guard: "atomic" },
  /** Ticket: CPUs sleeping in Atomics.wait on `tickets`; unlock notifies only when nonzero. */
  { name: "sleepers", type: "i32", guard: "atomic" },
  /** CPU holding the lock, -1 when free (reports only). */
  { name: "owner_cpu", type: "i32", guard: "the lock itself" },
  { name: "class", type: "i32", guard: "init" },
  /** Ticket: the holder's ticket (the owner half while held): unlock steps it without reading the word. */
  { name: "serving", type: "i32", guard: "the lock itself" },
]);
const OFF_SLEEPERS = SPINLOCK_T.off.sleepers;
const OFF_OWNER = SPINLOCK_T.off.owner_cpu;
const OFF_CLASS = SPINLOCK_T.off.class;
const OFF_SERVING = SPINLOCK_T.off.serving;

/** spin_lock_init: an unlocked lock of class `name` (lock_class_key by name). */
export function spin_lock_init(lock: number, name: string): void {
  I32[lock >> 2] = 0;
  I32[(lock + OFF_SLEEPERS) >> 2] = 0;
  I32[(lock + OFF_OWNER) >> 2] = -1;
  I32[(lock + OFF_CLASS) >> 2] = lockdep_class(name);
  I32[(lock + OFF_SERVING) >> 2] = 0;
}

/** DEFINE_SPINLOCK(name): a static, initialized lock; its address is `.ptr` once the arena exists. */
export function DEFINE_SPINLOCK(name: string): GlobalVar {
  const g = DEFINE_GLOBAL(name, SPINLOCK_T);
  staticInit(() => spin_lock_init(g.ptr, name));
  return g;
}

/** For the soft-lockup report: the lock's class and its holder, with what the holder holds. */
function spin_holder(lock: number): string {
  return lock_holder_text(I32[(lock + OFF_CLASS) >> 2]!, Atomics.load(I32, (lock + OFF_OWNER) >> 2));
}

registerLockHolder(spin_holder);

const ticketServed = (v: number, ticket: number) => (v & 0xffff) === ticket;

/** The machine's free runs take pv-qspinlock (its config's `spinlock`; harness state, read on each thread). */
let pvConfigured = false;

/** Harness: applies the machine config's `spinlock` on this thread (before any lock is taken). */
export function spinlockAttach(): void {
  pvConfigured = theArena().config.spinlock === "pv-qspinlock";
}

/**
 * The pv-qspinlock now: configured, and this call not under the deterministic
 * scheduler, whose runs always take the ticket lock. Calls switch modes only
 * with every lock free, and a free lock is 0 in both formats (see arch_spin_unlock).
 */
const pvSpinlocks = (): boolean => pvConfigured && !schedDeterministic;

/**
 * arch_spin_lock: the ticket lock (arm64, v4.17: take a ticket, wait for it
 * to come up) or queued_spin_lock. The raw lock — no preemption, lockdep or
 * owner — for locks built on it (the qrwlock's wait_lock); `holder` names
 * what a stuck waiter waits for.
 */
export function arch_spin_lock(lock: number, holder: LockHolderFn): void {
  if (pvSpinlocks()) {
    // queued_spin_lock: one compare-exchange while free, else the pv slowpath.
    if (Atomics.compareExchange(I32, lock >> 2, 0, _Q_LOCKED_VAL) !== 0) {
      const cls = I32[(lock + OFF_CLASS) >> 2]!;
      if (tracing) trace_lock_contended(lock, cls, LOCK_SPIN);
      __pv_queued_spin_lock_slowpath(lock, cls, holder);
      if (tracing) trace_lock_acquired(lock);
    }
    return;
  }
  // On the I32 view: a Uint32Array RMW returns a boxed double once next passes 0x8000.
  const old = Atomics.add(I32, lock >> 2, 0x10000);
  const ticket = old >>> 16;
  if ((old & 0xffff) !== ticket) {
    const cls = I32[(lock + OFF_CLASS) >> 2]!;
    if (tracing) trace_lock_contended(lock, cls, LOCK_SPIN);
    smp_cond_load_acquire(lock, cls, lock >> 2, (lock + OFF_SLEEPERS) >> 2, ticketServed, ticket, holder);
    if (tracing) trace_lock_acquired(lock);
  }
  I32[(lock + OFF_SERVING) >> 2] = ticket;
}

/** arch_spin_unlock: hand the lock to the next ticket (arm64, v4.17), or __pv_queued_spin_unlock. */
export function arch_spin_unlock(lock: number): void {
  if (pvSpinlocks()) {
    __pv_queued_spin_unlock(lock);
    return;
  }
  const o = I32[(lock + OFF_SERVING) >> 2]!;
  // Only the holder moves the owner half: one RMW steps it to o+1, wrapping 0xffff to 0 without carrying into next.
  const w = lock >> 2;
  const v = o === 0xffff ? Atomics.sub(I32, w, 0xffff) : Atomics.add(I32, w, 1);
  // next beyond o+1: a waiter holds a ticket and may be asleep. The RMW above precedes this read (both SC),
  // and a waiter counts itself in sleepers before it re-reads the word, so one of us sees the other.
  if (v >>> 16 !== ((o + 1) & 0xffff)) {
    if (Atomics.load(I32, (lock + OFF_SLEEPERS) >> 2) !== 0) sched_wake(w);
  } else if (pvConfigured) {
    // Free, nobody queued: back to 0, the free qspinlock, for the machine's next free-mode call.
    Atomics.compareExchange(I32, w, o === 0xffff ? (v - 0xffff) | 0 : (v + 1) | 0, 0);
  }
}

/** spin_lock (v4.19 __raw_spin_lock): preemption off, lockdep acquire, then the arch lock. */
export function spin_lock(lock: number): void {
  sched_point(SP_LOCK);
  preempt_disable();
  if (lockdepOn) lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, false);
  arch_spin_lock(lock, spin_holder);
  if (lockdepOn) lock_acquired(lock);
  I32[(lock + OFF_OWNER) >> 2] = smp_processor_id();
  if (tracing) trace_lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_SPIN);
}

/**
 * spin_lock_nested (v4.19 _raw_spin_lock_nested): spin_lock for a second lock
 * of a class already held, whose order the caller guarantees; lockdep sees it
 * as class "<name>/<subclass>" (SINGLE_DEPTH_NESTING for the usual one level).
 */
export function spin_lock_nested(lock: number, subclass: number): void {
  sched_point(SP_LOCK);
  preempt_disable();
  if (lockdepOn) lock_acquire(lock, lockdep_subclass(I32[(lock + OFF_CLASS) >> 2]!, subclass), false);
  arch_spin_lock(lock, spin_holder);
  if (lockdepOn) lock_acquired(lock);
  I32[(lock + OFF_OWNER) >> 2] = smp_processor_id();
  if (tracing) trace_lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_SPIN);
}

/** spin_unlock (v4.19 __raw_spin_unlock). */
export function spin_unlock(lock: number): void {
  if (tracing) trace_lock_release(lock);
  I32[(lock + OFF_OWNER) >> 2] = -1;
  if (lockdepOn) lock_release(lock);
  arch_spin_unlock(lock);
  preempt_enable();
  sched_point(SP_UNLOCK);
}

/** spin_trylock (v4.19): true when taken; never waits. */
export function spin_trylock(lock: number): boolean {
  sched_point(SP_LOCK);
  if (!arch_spin_trylock(lock)) return false;
  preempt_disable();
  if (lockdepOn) lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, true);
  I32[(lock + OFF_OWNER) >> 2] = smp_processor_id();
  if (tracing) trace_lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_SPIN);
  return true;
}

/** arch_spin_trylock: a free ticket lock's next ticket (arm64, v4.17), or queued_spin_trylock. */
function arch_spin_trylock(lock: number): boolean {
  if (pvSpinlocks()) return queued_spin_trylock(lock);
  const w = lock >> 2;
  const v = Atomics.load(I32, w);
  const ticket = v >>> 16;
  if ((v & 0xffff) !== ticket) return false;
  if (Atomics.compareExchange(I32, w, v, (v + 0x10000) | 0) !== v) return false;
  I32[(lock + OFF_SERVING) >> 2] = ticket;
  return true;
}

/** spin_lock_irqsave: returns the saved interrupt flag for spin_unlock_irqrestore. */
export function spin_lock_irqsave(lock: number): number {
  const flags = local_irq_save();
  spin_lock(lock);
  return flags;
}

/** spin_unlock_irqrestore: unlock, then restore the flag spin_lock_irqsave returned. */
export function spin_unlock_irqrestore(lock: number, flags: number): void {
  spin_unlock(lock);
  local_irq_restore(flags);
}

/** spin_lock_irq: interrupts off (unconditionally re-enabled by spin_unlock_irq). */
export function spin_lock_irq(lock: number): void {
  local_irq_disable();
  spin_lock(lock);
}

/** spin_unlock_irq: unlock, then interrupts on. */
export function spin_unlock_irq(lock: number): void {
  spin_unlock(lock);
  local_irq_enable();
}

/** spin_lock_bh: softirqs off (preempt_count += SOFTIRQ_DISABLE_OFFSET), then lock. */
export function spin_lock_bh(lock: number): void {
  local_bh_disable();
  spin_lock(lock);
}

/** spin_unlock_bh: unlock, then softirqs back on. */
export function spin_unlock_bh(lock: number): void {
  spin_unlock(lock);
  local_bh_enable();
}

/** spin_is_locked: someone holds it (a racy snapshot, as in the kernel). */
export function spin_is_locked(lock: number): boolean {
  if (pvSpinlocks()) return queued_spin_is_locked(lock);
  const v = Atomics.load(I32, lock >> 2);
  return (v & 0xffff) !== v >>> 16;
}

/** spin_is_contended: a CPU waits for the lock besides its holder (ticket: a ticket beyond the next owner's). */
export function spin_is_contended(lock: number): boolean {
  if (pvSpinlocks()) return queued_spin_is_contended(lock);
  const t = Atomics.load(I32, lock >> 2);
  // next - owner: 1 while only the holder took a ticket.
  return (((t >>> 16) - (t & 0xffff)) & 0xffff) > 1;
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
