/**
 * Workloads for the locks' multi-CPU tests and benches: counters that lose an
 * update iff a lock fails to exclude, deliberate lock-order inversions and
 * atomic sleeps for lockdep, a lock held forever for the watchdog, and the
 * contended spinlock bench.
 *
 * Workloads that take a lock and return leave it held across runs on purpose
 * (the CPU keeps it, as a task would): tests sequence CPUs with separate runs.
 */
import { DEFINE_GLOBAL, I32, staticInit } from "../../shared/arena.js";
import { defineStruct } from "../../shared/struct.js";
import { num_online_cpus } from "../../shared/smp.js";
import { DEFINE_MUTEX, mutex_lock, mutex_trylock, mutex_unlock } from "../../locks/mutex.js";
import {
  DEFINE_RWLOCK,
  read_lock,
  read_lock_bh,
  read_lock_irqsave,
  read_trylock,
  read_unlock,
  read_unlock_bh,
  read_unlock_irqrestore,
  write_lock,
  write_lock_bh,
  write_lock_irqsave,
  write_trylock,
  write_unlock,
  write_unlock_bh,
  write_unlock_irqrestore,
} from "../../locks/rwlock.js";
import { SINGLE_DEPTH_NESTING } from "../../locks/lockdep.js";
import {
  DEFINE_SPINLOCK,
  SPINLOCK_T,
  spin_lock,
  spin_lock_init,
  spin_lock_irqsave,
  spin_lock_nested,
  spin_trylock,
  spin_unlock,
  spin_unlock_irqrestore,
} from "../../locks/spinlock.js";
import { BARRIER, barrierWait } from "../barrier.js";
import { defineWorkload } from "../workload.js";

/** Two spinlocks the lockdep tests take in both orders. */
export const locks_test_a = DEFINE_SPINLOCK("locks_test_a");
export const locks_test_b = DEFINE_SPINLOCK("locks_test_b");
/**
 * Two instances of one lock class, as two objects' `->lock` of one struct
 * are: lockdep tells them apart only by a nesting subclass.
 */
const LOCKS_PAIR = defineStruct("locks_pair", [
  { name: "first", type: SPINLOCK_T },
  { name: "second", type: SPINLOCK_T },
]);
export const locks_pair = DEFINE_GLOBAL("locks_pair", LOCKS_PAIR);
staticInit(() => {
  spin_lock_init(locks_pair.ptr + LOCKS_PAIR.off.first, "&pair->lock");
  spin_lock_init(locks_pair.ptr + LOCKS_PAIR.off.second, "&pair->lock");
});
/** Held by one CPU and never released: the watchdog test. */
export const locks_forever = DEFINE_SPINLOCK("locks_forever");
/** The rwlock, mutex and spinlock the counters and benches use (also the main-thread micro benches). */
export const bench_rwlock = DEFINE_RWLOCK("bench_rwlock");
export const bench_mutex = DEFINE_MUTEX("bench_mutex");
export const bench_spinlock = DEFINE_SPINLOCK("bench_spinlock");

const LOCKS_TEST = defineStruct("locks_test", [
  /** Always equal outside a write section: a reader that sees them differ saw a torn write. */
  { name: "rw_a", type: "i32", guard: "bench_rwlock" },
  { name: "rw_b", type: "i32", guard: "bench_rwlock" },
  { name: "mutex_count", type: "i32", guard: "bench_mutex" },
  { name: "mutex_scratch", type: "i32", guard: "bench_mutex" },
  { name: "spin_count", type: "i32", guard: "bench_spinlock" },
  { name: "spin_scratch", type: "i32", guard: "bench_spinlock" },
  /** The start barrier of the multi-CPU workloads. */
  { name: "start", type: BARRIER },
]);
const locks_test = DEFINE_GLOBAL("locks_test", LOCKS_TEST);
const T = LOCKS_TEST.off;

/** Arguments of `rwlock_counter`. */
export interface RwlockCounterArgs {
  readonly iters: number;
  /** Share of operations that write, in [0, 1]. @defaultValue 0.25 */
  readonly writeShare?: number;
}

/** Every participating CPU arrives before any goes on. */
function start_together(cpus: number): void {
  barrierWait(locks_test.ptr + T.start, cpus, "locks");
}

/** Takes bench_rwlock through one of its forms (0 plain, 1 _irqsave, 2 _bh); returns the saved flags. */
function rw_take(write: boolean, form: number): number {
  const lock = bench_rwlock.ptr;
  if (form === 1) return write ? write_lock_irqsave(lock) : read_lock_irqsave(lock);
  if (form === 2) {
    if (write) write_lock_bh(lock);
    else read_lock_bh(lock);
  } else if (write) write_lock(lock);
  else read_lock(lock);
  return 0;
}

/** Releases bench_rwlock through the form rw_take used. */
function rw_drop(write: boolean, form: number, flags: number): void {
  const lock = bench_rwlock.ptr;
  if (form === 1) {
    if (write) write_unlock_irqrestore(lock, flags);
    else read_unlock_irqrestore(lock, flags);
  } else if (form === 2) {
    if (write) write_unlock_bh(lock);
    else read_unlock_bh(lock);
  } else if (write) write_unlock(lock);
  else read_unlock(lock);
}

/**
 * Seeded mix of readers and writers over bench_rwlock, each through one of the
 * plain, _irqsave and _bh forms, started together on every CPU. A writer
 * bumps rw_a, then (a while later) rw_b; a reader counts the times it sees
 * them differ.
 */
defineWorkload("rwlock_counter", (a: RwlockCounterArgs, ctx) => {
  const rng = ctx.prng(1);
  const ia = (locks_test.ptr + T.rw_a) >> 2;
  const ib = (locks_test.ptr + T.rw_b) >> 2;
  const share = a.writeShare ?? 0.25;
  let writes = 0;
  let torn = 0;
  start_together(num_online_cpus());
  for (let n = 0; n < a.iters; n++) {
    const form = rng.int(0, 2);
    const write = rng.chance(share);
    const flags = rw_take(write, form);
    if (write) {
      I32[ia] = I32[ia]! + 1;
      // Hold the torn state a while: a reader let in now sees rw_b one behind rw_a.
      for (let k = 0; k < 16; k++) I32[ib] = I32[ia]! - 1;
      I32[ib] = I32[ia]!;
      writes++;
    } else if (I32[ia] !== I32[ib]) torn++;
    rw_drop(write, form, flags);
  }
  return { writes, torn };
});

/** The rwlock counters, read under the read lock. */
defineWorkload("rwlock_read_counters", () => {
  read_lock(bench_rwlock.ptr);
  const r = { a: I32[(locks_test.ptr + T.rw_a) >> 2], b: I32[(locks_test.ptr + T.rw_b) >> 2] };
  read_unlock(bench_rwlock.ptr);
  return r;
});

/** Takes bench_rwlock for read or write and returns holding it. */
defineWorkload("rwlock_hold", (a: { write: boolean }) => {
  if (a.write) write_lock(bench_rwlock.ptr);
  else read_lock(bench_rwlock.ptr);
});

/** Releases what rwlock_hold took. */
defineWorkload("rwlock_release", (a: { write: boolean }) => {
  if (a.write) write_unlock(bench_rwlock.ptr);
  else read_unlock(bench_rwlock.ptr);
});

/** Which of read_trylock and write_trylock succeed now (each released again at once). */
defineWorkload("rwlock_try", () => {
  const lock = bench_rwlock.ptr;
  const read = read_trylock(lock);
  if (read) read_unlock(lock);
  const write = write_trylock(lock);
  if (write) write_unlock(lock);
  return { read, write };
});

/** A plain increment under bench_mutex; every fourth try goes through mutex_trylock first. */
defineWorkload("mutex_counter", (a: { iters: number; cpus?: number }) => {
  const lock = bench_mutex.ptr;
  const i = (locks_test.ptr + T.mutex_count) >> 2;
  const s = (locks_test.ptr + T.mutex_scratch) >> 2;
  start_together(a.cpus ?? num_online_cpus());
  for (let n = 0; n < a.iters; n++) {
    if (n % 4 !== 0 || !mutex_trylock(lock)) mutex_lock(lock);
    const v = I32[i]!;
    // Widen the window: a second CPU let in now reads the same v, and one of the two updates is lost.
    for (let k = 0; k < 16; k++) I32[s] = I32[s]! + v;
    I32[i] = v + 1;
    mutex_unlock(lock);
  }
});

/**
 * An increment under bench_spinlock through spin_lock, spin_trylock and
 * spin_lock_irqsave in turn, with a widened window: a CPU let in beside the
 * holder loses an update.
 */
defineWorkload("spin_forms_counter", (a: { iters: number; cpus?: number }) => {
  const lock = bench_spinlock.ptr;
  const i = (locks_test.ptr + T.spin_count) >> 2;
  const s = (locks_test.ptr + T.spin_scratch) >> 2;
  start_together(a.cpus ?? num_online_cpus());
  for (let n = 0; n < a.iters; n++) {
    const form = n % 3;
    let flags = 0;
    if (form === 2) flags = spin_lock_irqsave(lock);
    else if (form === 0 || !spin_trylock(lock)) spin_lock(lock);
    const v = I32[i]!;
    for (let k = 0; k < 16; k++) I32[s] = I32[s]! + v;
    I32[i] = v + 1;
    if (form === 2) spin_unlock_irqrestore(lock, flags);
    else spin_unlock(lock);
  }
});

defineWorkload("read_spin_forms_counter", () => I32[(locks_test.ptr + T.spin_count) >> 2]);

/** Takes bench_spinlock and returns holding it (the pv kick test sequences CPUs with separate runs). */
defineWorkload("spin_hold", () => {
  spin_lock(bench_spinlock.ptr);
});

/** Releases bench_spinlock, which spin_hold left held by this CPU. */
defineWorkload("spin_release", () => {
  spin_unlock(bench_spinlock.ptr);
});

/** Takes bench_mutex and returns holding it. */
defineWorkload("mutex_hold", () => {
  mutex_lock(bench_mutex.ptr);
});

defineWorkload("read_mutex_counter", () => I32[(locks_test.ptr + T.mutex_count) >> 2]);

/** Takes locks_test_a and locks_test_b in the order given ("ab" or "ba"), then releases both. */
defineWorkload("lock_order", (a: { order: "ab" | "ba" }) => {
  const [first, second] = a.order === "ab" ? [locks_test_a, locks_test_b] : [locks_test_b, locks_test_a];
  spin_lock(first.ptr);
  spin_lock(second.ptr);
  spin_unlock(second.ptr);
  spin_unlock(first.ptr);
});

/**
 * Takes the two `&pair->lock` instances in the order given ("12" or "21"),
 * the inner one plainly or, with `nested`, as spin_lock_nested(SINGLE_DEPTH_NESTING).
 */
defineWorkload("lock_pair", (a: { order: "12" | "21"; nested?: boolean }) => {
  const [first, second] =
    a.order === "12" ? [LOCKS_PAIR.off.first, LOCKS_PAIR.off.second] : [LOCKS_PAIR.off.second, LOCKS_PAIR.off.first];
  spin_lock(locks_pair.ptr + first);
  if (a.nested) spin_lock_nested(locks_pair.ptr + second, SINGLE_DEPTH_NESTING);
  else spin_lock(locks_pair.ptr + second);
  spin_unlock(locks_pair.ptr + second);
  spin_unlock(locks_pair.ptr + first);
});

/** The bug lockdep must catch: a mutex (which may sleep) taken inside a spinlock. */
defineWorkload("mutex_in_spinlock", () => {
  spin_lock(locks_test_a.ptr);
  mutex_lock(bench_mutex.ptr);
  mutex_unlock(bench_mutex.ptr);
  spin_unlock(locks_test_a.ptr);
});

/** Takes locks_forever: on a second CPU, after the first took it, this never returns. */
defineWorkload("lock_forever", () => {
  spin_lock(locks_forever.ptr);
});

/** Arguments of `bench_spin_contended`. */
export interface BenchSpinArgs {
  /** Lock pairs this CPU runs. */
  readonly iters: number;
  /** CPUs running it together (the start barrier waits for them). @defaultValue every CPU */
  readonly cpus?: number;
}

/**
 * Contended spinlock pairs on bench_spinlock (run it on several CPUs at once):
 * ns per lock+unlock pair on this CPU, from the barrier to its last pair.
 */
defineWorkload("bench_spin_contended", (a: BenchSpinArgs) => {
  const lock = bench_spinlock.ptr;
  const i = (locks_test.ptr + T.spin_count) >> 2;
  start_together(a.cpus ?? num_online_cpus());
  const t0 = performance.now();
  for (let n = 0; n < a.iters; n++) {
    spin_lock(lock);
    I32[i] = I32[i]! + 1;
    spin_unlock(lock);
  }
  return { nsPerPair: ((performance.now() - t0) * 1e6) / a.iters };
});
