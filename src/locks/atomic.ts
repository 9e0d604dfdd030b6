/**
 * atomic_t and atomic_long_t (include/linux/atomic.h, asm-generic/atomic-long.h,
 * v4.19), plus cmpxchg / xchg / READ_ONCE / WRITE_ONCE on plain int32 words.
 *
 * An atomic is an i32 word in the arena, passed by its byte address (`&v` in
 * the kernel); arguments keep the kernel's order (atomic_add(i, v)). Every op
 * is an Atomics op, so all of them are fully ordered (sequentially
 * consistent) — stronger than the kernel's relaxed variants, never weaker.
 * The exceptions are __READ_ONCE and __WRITE_ONCE, the relaxed load and store
 * as the kernel has them: plain aligned accesses, marked in the KCSAN build.
 *
 * atomic_long_t is also one i32 word: Atomics works on integer arrays only, and
 * every atomic_long counter in vmsim (page counts, vmap_lazy_nr) fits in 31
 * bits for the largest machine (MAX_MEMORY / PAGE_SIZE = 393216 pages).
 *
 * Read-modify-write ops are sched points (SP_ATOMIC); plain reads and sets
 * (atomic_read, atomic_set, READ_ONCE, WRITE_ONCE) are not.
 */
import { I32 } from "../shared/arena.js";
import { defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, sched_point } from "../sched/sched_point.js";

/** atomic_t: embed it in a struct table (`{ name: "refcount", type: ATOMIC_T }`) or DEFINE_GLOBAL it. */
export const ATOMIC_T = defineStruct("atomic_t", [{ name: "counter", type: "i32", guard: "atomic" }]);
/** atomic_long_t: the same single i32 word (see the file comment). */
export const ATOMIC_LONG_T = defineStruct("atomic_long_t", [{ name: "counter", type: "i32", guard: "atomic" }]);

/** atomic_read(v). */
export function atomic_read(v: number): number {
  return Atomics.load(I32, v >> 2);
}

/** atomic_set(v, i). */
export function atomic_set(v: number, i: number): void {
  Atomics.store(I32, v >> 2, i);
}

/** atomic_add(i, v). */
export function atomic_add(i: number, v: number): void {
  sched_point(SP_ATOMIC);
  Atomics.add(I32, v >> 2, i);
}

/** atomic_sub(i, v). */
export function atomic_sub(i: number, v: number): void {
  sched_point(SP_ATOMIC);
  Atomics.sub(I32, v >> 2, i);
}

/** atomic_inc(v). */
export function atomic_inc(v: number): void {
  sched_point(SP_ATOMIC);
  Atomics.add(I32, v >> 2, 1);
}

/** atomic_dec(v). */
export function atomic_dec(v: number): void {
  sched_point(SP_ATOMIC);
  Atomics.sub(I32, v >> 2, 1);
}

/** atomic_add_return(i, v): the new value. */
export function atomic_add_return(i: number, v: number): number {
  sched_point(SP_ATOMIC);
  return (Atomics.add(I32, v >> 2, i) + i) | 0;
}

/** atomic_sub_return(i, v): the new value. */
export function atomic_sub_return(i: number, v: number): number {
  sched_point(SP_ATOMIC);
  return (Atomics.sub(I32, v >> 2, i) - i) | 0;
}

/** atomic_inc_return(v): the new value. */
export function atomic_inc_return(v: number): number {
  sched_point(SP_ATOMIC);
  return (Atomics.add(I32, v >> 2, 1) + 1) | 0;
}

/** atomic_dec_and_test(v): true when the decrement reached zero. */
export function atomic_dec_and_test(v: number): boolean {
  sched_point(SP_ATOMIC);
  return Atomics.sub(I32, v >> 2, 1) === 1;
}

/** atomic_cmpxchg(v, old, new): the value found; the swap happened iff it equals `old`. */
export function atomic_cmpxchg(v: number, old: number, nv: number): number {
  sched_point(SP_ATOMIC);
  return Atomics.compareExchange(I32, v >> 2, old, nv);
}

/** atomic_xchg(v, new): the previous value. */
export function atomic_xchg(v: number, nv: number): number {
  sched_point(SP_ATOMIC);
  return Atomics.exchange(I32, v >> 2, nv);
}

/** atomic_long_read(v). */
export const atomic_long_read = atomic_read;
/** atomic_long_set(v, i). */
export const atomic_long_set = atomic_set;
/** atomic_long_add(i, v). */
export const atomic_long_add = atomic_add;
/** atomic_long_sub(i, v). */
export const atomic_long_sub = atomic_sub;
/** atomic_long_inc(v). */
export const atomic_long_inc = atomic_inc;
/** atomic_long_dec(v). */
export const atomic_long_dec = atomic_dec;
/** atomic_long_add_return(i, v): the new value. */
export const atomic_long_add_return = atomic_add_return;
/** atomic_long_sub_return(i, v): the new value. */
export const atomic_long_sub_return = atomic_sub_return;
/** atomic_long_inc_return(v): the new value. */
export const atomic_long_inc_return = atomic_inc_return;
/** atomic_long_dec_and_test(v): true when the decrement reached zero. */
export const atomic_long_dec_and_test = atomic_dec_and_test;
/** atomic_long_cmpxchg(v, old, new): the value found. */
export const atomic_long_cmpxchg = atomic_cmpxchg;
/** atomic_long_xchg(v, new): the previous value. */
export const atomic_long_xchg = atomic_xchg;

/** cmpxchg(ptr, old, new) on the i32 word at byte address `ptr`: the value found. */
export function cmpxchg(ptr: number, old: number, nv: number): number {
  sched_point(SP_ATOMIC);
  return Atomics.compareExchange(I32, ptr >> 2, old, nv);
}

/** xchg(ptr, new) on the i32 word at `ptr`: the previous value. */
export function xchg(ptr: number, nv: number): number {
  sched_point(SP_ATOMIC);
  return Atomics.exchange(I32, ptr >> 2, nv);
}

/** READ_ONCE(*ptr) of an i32 word read without a lock (a pointer, a flag). */
export function READ_ONCE(ptr: number): number {
  return Atomics.load(I32, ptr >> 2);
}

/** WRITE_ONCE(*ptr, v) of an i32 word others read without a lock. */
export function WRITE_ONCE(ptr: number, v: number): void {
  Atomics.store(I32, ptr >> 2, v);
}

/**
 * __WRITE_ONCE(*ptr, v) (include/asm-generic/rwonce.h, v5.9+: WRITE_ONCE's bare store): a relaxed store, as
 * arm64's WRITE_ONCE and atomic_set are (a plain `str`). A plain store here, tear-free for an aligned i32 and
 * published like any plain store by the next Atomics operation (a release: an unlock, an RMW), so the normal
 * build pays nothing; the KCSAN build marks it as WRITE_ONCE (tools/kcsan_build.ts). For a word whose writers
 * hold its lock while readers look without it (list and rb-tree links), or a count set while nobody else can
 * see its page (set_page_count). A store another CPU waits on in a loop stays WRITE_ONCE.
 */
export function __WRITE_ONCE(ptr: number, v: number): void {
  I32[ptr >> 2] = v;
}

/**
 * __READ_ONCE(*ptr) (include/asm-generic/rwonce.h, v5.9+: READ_ONCE's bare load): a relaxed load, as arm64's
 * READ_ONCE and atomic_read are (a plain `ldr`: no barrier, ordered only by an address dependency). A plain load
 * here: tear-free for an aligned i32 (the JS memory model's rule for integer views), and a plain load orders no
 * more than the kernel's does, where Atomics.load (an SC load, and a call into V8's runtime) costs 6–9 ns. The
 * KCSAN build marks it as READ_ONCE. Not for a loop that waits for another CPU's store: the compiler may hoist a
 * plain load out of it, so such a loop reads with READ_ONCE.
 */
export function __READ_ONCE(ptr: number): number {
  return I32[ptr >> 2]!;
}

/**
 * data_race(expr) (include/linux/compiler.h, v5.8+): a plain access the author
 * knows may race and accepts (a statistic, a heuristic). It returns its value;
 * the KCSAN build leaves the accesses written inside it unchecked.
 */
export function data_race<T>(value: T): T {
  return value;
}
