/**
 * struct mutex: the sleeping lock of include/linux/mutex.h (v4.19 API and
 * rules: may sleep, so never in atomic context — mutex_lock calls might_sleep;
 * one owner, who alone unlocks; no recursion).
 *
 * The implementation is the futex mutex of Drepper's "Futexes Are Tricky"
 * (mutex #3) with Atomics.wait as the futex, because here the host does the
 * sleeping: one word, 0 unlocked, 1 locked, 2 locked and maybe slept on.
 * mutex_unlock wakes a sleeper only when it finds 2. Before sleeping a waiter
 * spins a little, as the kernel's optimistic spinning does while the owner
 * runs (mutex_optimistic_spin). The owner CPU is recorded for reports.
 */
import { DEFINE_GLOBAL, type GlobalVar, I32, staticInit } from "../shared/arena.js";
import { defineStruct } from "../shared/struct.js";
import { SP_LOCK, SP_SPIN, SP_UNLOCK, sched_point } from "../sched/sched_point.js";
import { schedDeterministic, sched_wait, sched_wake } from "../sched/sched_det.js";
import { smp_processor_id } from "../shared/smp.js";
import { monotonicMs } from "../sched/watchdog_clock.js";
import { lock_acquire, lock_acquired, lock_release, lockdep_class, lockdep_subclass, lockdepOn } from "./lockdep.js";
import {
  SPIN_TRIES,
  WAIT_SLICE_MS,
  hung_task_check,
  lock_holder_text,
  registerLockHolder,
  lock_wait_slept,
  lock_wait_spun,
  lock_wait_start,
} from "./lock_wait.js";
import { might_sleep } from "./might_sleep.js";
import {
  LOCK_MUTEX,
  trace_lock_acquire,
  trace_lock_acquired,
  trace_lock_contended,
  trace_lock_release,
  tracing,
} from "../trace/trace.js";

/** struct mutex (the futex word stands in for owner/wait_lock/wait_list) + dep_map. */
export const MUTEX = defineStruct("mutex", [
  /** 0 unlocked, 1 locked, 2 locked with possible sleepers. */
  { name: "state", type: "i32", guard: "atomic" },
  /** CPU holding the mutex, -1 when free (the kernel's owner task, for reports). */
  { name: "owner_cpu", type: "i32", guard: "the mutex itself" },
  { name: "class", type: "i32", guard: "init" },
]);
const OFF_OWNER = MUTEX.off.owner_cpu;
const OFF_CLASS = MUTEX.off.class;

/** mutex_init: an unlocked mutex of class `name`. */
export function mutex_init(lock: number, name: string): void {
  I32[lock >> 2] = 0;
  I32[(lock + OFF_OWNER) >> 2] = -1;
  I32[(lock + OFF_CLASS) >> 2] = lockdep_class(name);
}

/** DEFINE_MUTEX(name): a static, initialized mutex; its address is `.ptr` once the arena exists. */
export function DEFINE_MUTEX(name: string): GlobalVar {
  const g = DEFINE_GLOBAL(name, MUTEX);
  staticInit(() => mutex_init(g.ptr, name));
  return g;
}

function mutex_holder(lock: number): string {
  return lock_holder_text(I32[(lock + OFF_CLASS) >> 2]!, Atomics.load(I32, (lock + OFF_OWNER) >> 2));
}
const MUTEX_HOLDER = registerLockHolder(mutex_holder);

/** __mutex_lock_slowpath (v4.19, futex-style): spin while the owner likely runs, then sleep on the word. */
function __mutex_lock_slowpath(lock: number): void {
  const w = lock >> 2;
  const cls = I32[(lock + OFF_CLASS) >> 2]!;
  const t0 = lock_wait_start(cls);
  // Under the deterministic scheduler nobody else runs while we spin: sleep at once.
  const tries = schedDeterministic ? 0 : SPIN_TRIES;
  for (let i = 0; i < tries; i++) {
    sched_point(SP_SPIN);
    if (Atomics.load(I32, w) === 0 && Atomics.compareExchange(I32, w, 0, 1) === 0) {
      lock_wait_spun(cls, i + 1, t0);
      return;
    }
  }
  lock_wait_spun(cls, tries, t0);
  const slept = monotonicMs();
  // Mark the mutex slept-on (2) before sleeping; taking it this way leaves 2, costing one spare wake at unlock.
  while (Atomics.exchange(I32, w, 2) !== 0) {
    sched_wait(w, 2, WAIT_SLICE_MS, lock, MUTEX_HOLDER);
    hung_task_check(lock, slept, mutex_holder);
  }
  lock_wait_slept(cls, slept);
}

/** __mutex_lock (v4.19), after the caller's might_sleep: waits until the mutex is free; lockdep sees class `cls`. */
function __mutex_lock(lock: number, cls: number): void {
  sched_point(SP_LOCK);
  if (lockdepOn) lock_acquire(lock, cls, false);
  if (Atomics.compareExchange(I32, lock >> 2, 0, 1) !== 0) {
    if (tracing) trace_lock_contended(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_MUTEX);
    __mutex_lock_slowpath(lock);
    if (tracing) trace_lock_acquired(lock);
  }
  if (lockdepOn) lock_acquired(lock);
  I32[(lock + OFF_OWNER) >> 2] = smp_processor_id();
  if (tracing) trace_lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_MUTEX);
}

/** mutex_lock (v4.19): may sleep until the mutex is free. */
export function mutex_lock(lock: number): void {
  might_sleep();
  __mutex_lock(lock, I32[(lock + OFF_CLASS) >> 2]!);
}

/** mutex_lock_nested (v4.19): mutex_lock for a second mutex of a held class; lockdep sees "<name>/<subclass>". */
export function mutex_lock_nested(lock: number, subclass: number): void {
  might_sleep();
  __mutex_lock(lock, lockdepOn ? lockdep_subclass(I32[(lock + OFF_CLASS) >> 2]!, subclass) : 0);
}

/** mutex_unlock (v4.19): 1 → 0 wakes nobody; from 2, reset to 0 and wake one sleeper. */
export function mutex_unlock(lock: number): void {
  if (tracing) trace_lock_release(lock);
  I32[(lock + OFF_OWNER) >> 2] = -1;
  if (lockdepOn) lock_release(lock);
  const w = lock >> 2;
  if (Atomics.sub(I32, w, 1) !== 1) {
    // The store makes the word 0 before the notify, so the woken waiter's exchange finds it free.
    Atomics.store(I32, w, 0);
    sched_wake(w, 1);
  }
  sched_point(SP_UNLOCK);
}

/** mutex_trylock (v4.19): true when taken; never sleeps. */
export function mutex_trylock(lock: number): boolean {
  sched_point(SP_LOCK);
  if (Atomics.compareExchange(I32, lock >> 2, 0, 1) !== 0) return false;
  if (lockdepOn) lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, true);
  I32[(lock + OFF_OWNER) >> 2] = smp_processor_id();
  if (tracing) trace_lock_acquire(lock, I32[(lock + OFF_CLASS) >> 2]!, LOCK_MUTEX);
  return true;
}

/** mutex_is_locked (v4.19): someone holds it (a racy snapshot). */
export function mutex_is_locked(lock: number): boolean {
  return Atomics.load(I32, lock >> 2) !== 0;
}

/** Owner CPU of a held mutex, -1 when free (diagnostics). */
export function mutex_owner(lock: number): number {
  return Atomics.load(I32, (lock + OFF_OWNER) >> 2);
}
