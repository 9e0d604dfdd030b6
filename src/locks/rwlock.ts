/**
 * rwlock_t: the queued rwlock arm64 uses since v4.17 (include/asm-generic/
 * qrwlock.h and kernel/locking/qrwlock.c, v4.19), with the API of
 * include/linux/rwlock.h and rwlock_api_smp.h.
 *
 * One word, `cnts`: the writer byte (_QW_LOCKED), the writer-waiting bit
 * (_QW_WAITING) and the reader count above them. Writers exclude readers and
 * each other; readers share.
 *
 * Fairness (qrwlock's): contended lockers queue FIFO on `wait_lock`, a ticket
 * spinlock. A waiting writer sets _QW_WAITING, which turns new readers in
 * process context away from the fast path into that queue, so a stream of
 * readers cannot starve a writer; the writer waits only for the readers
 * already inside. A reader in interrupt context does not queue: it passes a
 * waiting writer and waits only while a writer holds the lock, because the
 * CPU it interrupted may hold the lock for read (queueing would deadlock it).
 *
 * Every waiter spins briefly, then sleeps in Atomics.wait (lock_wait.ts): on
 * `cnts` (a writer waiting for the readers to drain, a reader waiting for the
 * writer) or on the wait_lock's own word.
 */
import { DEFINE_GLOBAL, type GlobalVar, I32, staticInit } from "../shared/arena.js";
import { defineStruct } from "../shared/struct.js";
import { SP_LOCK, SP_UNLOCK, sched_point } from "../sched/sched_point.js";
import { smp_processor_id } from "../shared/smp.js";
import {
  in_interrupt,
  local_irq_disable,
  local_irq_enable,
  local_irq_restore,
  local_irq_save,
  preempt_disable,
  preempt_enable,
} from "../percpu/preempt.js";
import { local_bh_disable, local_bh_enable } from "../percpu/softirq.js";
import {
  lockHolders,
  lock_acquire,
  lock_acquired,
  lock_release,
  lockdep_class,
  lockdep_class_name,
  lockdepOn,
} from "./lockdep.js";
import { lock_holder_text, registerLockHolder, smp_cond_load_acquire } from "./lock_wait.js";
import { sched_wake } from "../sched/sched_det.js";
import { SPINLOCK_T, arch_spin_lock, arch_spin_unlock, spin_lock_init } from "./spinlock.js";
import {
  LOCK_READ,
  LOCK_WRITE,
  trace_lock_acquire,
  trace_lock_acquired,
  trace_lock_contended,
  trace_lock_release,
  tracing,
} from "../trace/trace.js";

/* Writer states and reader shift and bias (asm-generic/qrwlock.h). */
export const _QW_WAITING = 0x100;
export const _QW_LOCKED = 0x0ff;
export const _QW_WMASK = 0x1ff;
export const _QR_SHIFT = 9;
export const _QR_BIAS = 1 << _QR_SHIFT;

/** struct qrwlock + dep_map. */
export const RWLOCK_T = defineStruct("rwlock_t", [
  { name: "cnts", type: "i32", guard: "atomic" },
  /** CPUs sleeping in Atomics.wait on `cnts`; a release notifies only when nonzero. */
  { name: "sleepers", type: "i32", guard: "atomic" },
  /** CPU holding the lock for write, -1 otherwise (reports only). */
  { name: "owner_cpu", type: "i32", guard: "the lock itself (write)" },
  { name: "class", type: "i32", guard: "init" },
  /** The queue of contended lockers: a raw ticket lock, used only through arch_spin_lock/unlock. */
  { name: "wait_lock", type: SPINLOCK_T },
]);
const OFF_SLEEPERS = RWLOCK_T.off.sleepers;
const OFF_OWNER = RWLOCK_T.off.owner_cpu;
const OFF_CLASS = RWLOCK_T.off.class;
const OFF_WAIT_LOCK = RWLOCK_T.off.wait_lock;

/** rwlock_init: an unlocked rwlock of class `name`. */
export function rwlock_init(lock: number, name: string): void {
  I32[lock >> 2] = 0;
  I32[(lock + OFF_SLEEPERS) >> 2] = 0;
  I32[(lock + OFF_OWNER) >> 2] = -1;
  I32[(lock + OFF_CLASS) >> 2] = lockdep_class(name);
  spin_lock_init(lock + OFF_WAIT_LOCK, name);
}

/** DEFINE_RWLOCK(name): a static, initialized rwlock; its address is `.ptr` once the arena exists. */
export function DEFINE_RWLOCK(name: string): GlobalVar {
  const g = DEFINE_GLOBAL(name, RWLOCK_T);
  staticInit(() => rwlock_init(g.ptr, name));
  return g;
}

/** For the soft-lockup report: the writer, or the readers lockdep knows of. */
function rwlock_holder(lock: number): string {
  const cls = I32[(lock + OFF_CLASS) >> 2]!;
  const v = Atomics.load(I32, lock >> 2);
  if (v & _QW_LOCKED) return lock_holder_text(cls, Atomics.load(I32, (lock + OFF_OWNER) >> 2), "held for write");
  const readers = v >>> _QR_SHIFT;
  const cpus = lockdepOn ? lockHolders(lock).map((c) => `CPU#${c}`) : [];
  const by = cpus.length ? ` by ${cpus.join(", ")}` : "";
  return `${lockdep_class_name(cls)}, held for read${by} (${readers} reader${readers === 1 ? "" : "s"}${v & _QW_WAITING ? ", a writer waiting" : ""})`;
}

/** A CPU stuck in the wait_lock queue waits, in the end, for the rwlock's holders. */
const wait_lock_holder = (wl: number) => rwlock_holder(wl - OFF_WAIT_LOCK);
registerLockHolder(rwlock_holder);
registerLockHolder(wait_lock_holder);

const noWriter = (v: number) => (v & _QW_LOCKED) === 0;
const onlyWaiting = (v: number) => v === _QW_WAITING;

/** Wakes the CPUs sleeping on `cnts`, if any (called after an RMW that may have met their condition). */
function rwlock_wake(lock: number): void {
  if (Atomics.load(I32, (lock + OFF_SLEEPERS) >> 2) !== 0) sched_wake(lock >> 2);
}

/** Takes back a reader bias; the last bias out before a waiting writer wakes it. */
function rwlock_sub_bias(lock: number): void {
  if (Atomics.sub(I32, lock >> 2, _QR_BIAS) - _QR_BIAS === _QW_WAITING) rwlock_wake(lock);
}

/** queued_read_lock_slowpath (v4.19): a writer holds the lock or waits for it. */
function queued_read_lock_slowpath(lock: number): void {
  const w = lock >> 2;
  const cls = I32[(lock + OFF_CLASS) >> 2]!;
  const sl = (lock + OFF_SLEEPERS) >> 2;
  if (in_interrupt()) {
    // Our bias is in: we only wait for a writer that holds the lock, not for one that waits.
    smp_cond_load_acquire(lock, cls, w, sl, noWriter, 0, rwlock_holder);
    return;
  }
  rwlock_sub_bias(lock);
  arch_spin_lock(lock + OFF_WAIT_LOCK, wait_lock_holder);
  Atomics.add(I32, w, _QR_BIAS);
  smp_cond_load_acquire(lock, cls, w, sl, noWriter, 0, rwlock_holder);
  arch_spin_unlock(lock + OFF_WAIT_LOCK);
}

/** queued_write_lock_slowpath (v4.19): queue, flag a waiting writer, wait for the readers to drain. */
function queued_write_lock_slowpath(lock: number): void {
  const w = lock >> 2;
  const cls = I32[(lock + OFF_CLASS) >> 2]!;
  arch_spin_lock(lock + OFF_WAIT_LOCK, wait_lock_holder);
  if (Atomics.load(I32, w) !== 0 || Atomics.compareExchange(I32, w, 0, _QW_LOCKED) !== 0) {
    Atomics.or(I32, w, _QW_WAITING);
    do smp_cond_load_acquire(lock, cls, w, (lock + OFF_SLEEPERS) >> 2, onlyWaiting, 0, rwlock_holder);
    while (Atomics.compareExchange(I32, w, _QW_WAITING, _QW_LOCKED) !== _QW_WAITING);
  }
  arch_spin_unlock(lock + OFF_WAIT_LOCK);
}

/** queued_read_lock (v4.19). */
function queued_read_lock(lock: number): void {
  if (((Atomics.add(I32, lock >> 2, _QR_BIAS) + _QR_BIAS) & _QW_WMASK) !== 0) {
    if (tracing) trace_lock_contended(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_READ);
    queued_read_lock_slowpath(lock);
    if (tracing) trace_lock_acquired(lock);
  }
}

/** queued_read_unlock (v4.19): a writer waiting for exactly this value sleeps on the word. */
function queued_read_unlock(lock: number): void {
  rwlock_sub_bias(lock);
}

/** queued_write_lock (v4.19). */
function queued_write_lock(lock: number): void {
  if (Atomics.compareExchange(I32, lock >> 2, 0, _QW_LOCKED) !== 0) {
    if (tracing) trace_lock_contended(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_WRITE);
    queued_write_lock_slowpath(lock);
    if (tracing) trace_lock_acquired(lock);
  }
}

/** queued_write_unlock (v4.19): clears the writer byte, as the kernel's store to `wlocked`. */
function queued_write_unlock(lock: number): void {
  // Anything left beside the writer byte is a reader bias or a waiting writer: either may sleep on cnts.
  if (Atomics.sub(I32, lock >> 2, _QW_LOCKED) !== _QW_LOCKED) rwlock_wake(lock);
}

/** lockdep's read flag for a reader here: recursive only in interrupt context (see lockdep.ts). */
function read_kind(): number {
  return in_interrupt() ? 2 : 1;
}

/** read_lock (v4.19 __raw_read_lock). */
export function read_lock(lock: number): void {
  sched_point(SP_LOCK);
  preempt_disable();
  if (lockdepOn) lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, false, read_kind());
  queued_read_lock(lock);
  if (lockdepOn) lock_acquired(lock);
  if (tracing) trace_lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_READ);
}

/** read_unlock (v4.19 __raw_read_unlock). */
export function read_unlock(lock: number): void {
  if (tracing) trace_lock_release(lock);
  if (lockdepOn) lock_release(lock);
  queued_read_unlock(lock);
  preempt_enable();
  sched_point(SP_UNLOCK);
}

/** write_lock (v4.19 __raw_write_lock). */
export function write_lock(lock: number): void {
  sched_point(SP_LOCK);
  preempt_disable();
  if (lockdepOn) lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, false);
  queued_write_lock(lock);
  if (lockdepOn) lock_acquired(lock);
  I32[(lock + OFF_OWNER) >> 2] = smp_processor_id();
  if (tracing) trace_lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_WRITE);
}

/** write_unlock (v4.19 __raw_write_unlock). */
export function write_unlock(lock: number): void {
  if (tracing) trace_lock_release(lock);
  I32[(lock + OFF_OWNER) >> 2] = -1;
  if (lockdepOn) lock_release(lock);
  queued_write_unlock(lock);
  preempt_enable();
  sched_point(SP_UNLOCK);
}

/** read_trylock (v4.19 queued_read_trylock): true when taken; fails while a writer holds or waits. */
export function read_trylock(lock: number): boolean {
  sched_point(SP_LOCK);
  const w = lock >> 2;
  if ((Atomics.load(I32, w) & _QW_WMASK) !== 0) return false;
  if (((Atomics.add(I32, w, _QR_BIAS) + _QR_BIAS) & _QW_WMASK) !== 0) {
    rwlock_sub_bias(lock);
    return false;
  }
  preempt_disable();
  if (lockdepOn) lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, true, read_kind());
  if (tracing) trace_lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_READ);
  return true;
}

/** write_trylock (v4.19 queued_write_trylock): true when taken; fails while anyone holds it. */
export function write_trylock(lock: number): boolean {
  sched_point(SP_LOCK);
  const w = lock >> 2;
  if (Atomics.load(I32, w) !== 0 || Atomics.compareExchange(I32, w, 0, _QW_LOCKED) !== 0) return false;
  preempt_disable();
  if (lockdepOn) lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, true);
  I32[(lock + OFF_OWNER) >> 2] = smp_processor_id();
  if (tracing) trace_lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_WRITE);
  return true;
}

/** read_lock_irqsave: returns the saved interrupt flag for read_unlock_irqrestore. */
export function read_lock_irqsave(lock: number): number {
  const flags = local_irq_save();
  read_lock(lock);
  return flags;
}

/** read_unlock_irqrestore: unlock, then restore the flag read_lock_irqsave returned. */
export function read_unlock_irqrestore(lock: number, flags: number): void {
  read_unlock(lock);
  local_irq_restore(flags);
}

/** read_lock_irq: interrupts off, then read-lock. */
export function read_lock_irq(lock: number): void {
  local_irq_disable();
  read_lock(lock);
}

/** read_unlock_irq: unlock, then interrupts on. */
export function read_unlock_irq(lock: number): void {
  read_unlock(lock);
  local_irq_enable();
}

/** read_lock_bh: softirqs off, then read-lock. */
export function read_lock_bh(lock: number): void {
  local_bh_disable();
  read_lock(lock);
}

/** read_unlock_bh: unlock, then softirqs back on. */
export function read_unlock_bh(lock: number): void {
  read_unlock(lock);
  local_bh_enable();
}

/** write_lock_irqsave: returns the saved interrupt flag for write_unlock_irqrestore. */
export function write_lock_irqsave(lock: number): number {
  const flags = local_irq_save();
  write_lock(lock);
  return flags;
}

/** write_unlock_irqrestore: unlock, then restore the flag write_lock_irqsave returned. */
export function write_unlock_irqrestore(lock: number, flags: number): void {
  write_unlock(lock);
  local_irq_restore(flags);
}

/** write_lock_irq: interrupts off, then write-lock. */
export function write_lock_irq(lock: number): void {
  local_irq_disable();
  write_lock(lock);
}

/** write_unlock_irq: unlock, then interrupts on. */
export function write_unlock_irq(lock: number): void {
  write_unlock(lock);
  local_irq_enable();
}

/** write_lock_bh: softirqs off, then write-lock. */
export function write_lock_bh(lock: number): void {
  local_bh_disable();
  write_lock(lock);
}

/** write_unlock_bh: unlock, then softirqs back on. */
export function write_unlock_bh(lock: number): void {
  write_unlock(lock);
  local_bh_enable();
}

/** Readers inside the lock now (a racy snapshot; diagnostics and tests). */
export function rwlock_readers(lock: number): number {
  return Atomics.load(I32, lock >> 2) >>> _QR_SHIFT;
}

/** CPU holding the lock for write, -1 when none (diagnostics). */
export function rwlock_writer(lock: number): number {
  return Atomics.load(I32, (lock + OFF_OWNER) >> 2);
}
