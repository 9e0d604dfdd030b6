/**
 * Definitions shared by the RCU implementation (kernel/rcu/rcu.h, v4.19):
 * grace-period sequence numbers and callback reclaim.
 *
 * A sequence number counts grace periods in its upper bits and holds the
 * state of the current one in the low RCU_SEQ_CTR_SHIFT bits (0: idle,
 * 1: in progress). They are int32 in the arena and wrap: compare them only
 * with ULONG_CMP_GE/ULONG_CMP_LT.
 */
import { I32 } from "../shared/arena.js";
import { callKernelFn } from "../shared/functab.js";
import { RCU_HEAD } from "./rcupdate.js";

export const RCU_SEQ_CTR_SHIFT = 2;
export const RCU_SEQ_STATE_MASK = (1 << RCU_SEQ_CTR_SHIFT) - 1;

/** ULONG_CMP_GE (include/linux/rcupdate.h, v4.19) on wrapping int32 sequence numbers. */
export function ULONG_CMP_GE(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** ULONG_CMP_LT (v4.19) on wrapping int32 sequence numbers. */
export function ULONG_CMP_LT(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** rcu_seq_state (v4.19): the state bits; nonzero while a grace period is in progress. */
export function rcu_seq_state(s: number): number {
  return s & RCU_SEQ_STATE_MASK;
}

/** rcu_seq_start (v4.19): the value of `s` once a grace period has started. */
export function rcu_seq_start(s: number): number {
  return (s + 1) | 0;
}

/** rcu_seq_endval (v4.19): the value of `s` once the grace period in progress has ended. */
export function rcu_seq_endval(s: number): number {
  return ((s | RCU_SEQ_STATE_MASK) + 1) | 0;
}

/**
 * rcu_seq_snap (v4.19): the earliest sequence number at which a full grace
 * period has elapsed since `s` was read: the end of the next grace period to
 * start, so one that is already in progress does not count.
 */
export function rcu_seq_snap(s: number): number {
  return ((s + 2 * RCU_SEQ_STATE_MASK + 1) & ~RCU_SEQ_STATE_MASK) | 0;
}

/** rcu_seq_done (v4.19): has the sequence number `cur` reached snapshot `snap`? */
export function rcu_seq_done(cur: number, snap: number): boolean {
  return ULONG_CMP_GE(cur, snap);
}

/** kfree_rcu passes the offset of the rcu_head in its record as `func`; real function ids are never this small. */
export const KFREE_RCU_OFFSET_LIMIT = 4096;

/** __is_kfree_rcu_offset (v4.19). */
export function __is_kfree_rcu_offset(func: number): boolean {
  return func >>> 0 < KFREE_RCU_OFFSET_LIMIT;
}

/*
 * kfree, for kfree_rcu's callbacks: the slab allocator sits a floor above RCU
 * (src/mm/slab.ts) and registers it at load, where the kernel has a declaration.
 */
let kfree = (x: number): void => {
  throw new Error(`kfree_rcu: kfree(0x${x.toString(16)}) before src/mm/slab.ts registered kfree`);
};

/** The slab allocator hands RCU its kfree (once, at module load). */
export function registerRcuKfree(fn: (x: number) => void): void {
  kfree = fn;
}

/** __rcu_reclaim (v4.19): invoke one callback whose grace period has elapsed, or kfree its record. */
export function __rcu_reclaim(head: number): void {
  const func = I32[(head + RCU_HEAD.off.func) >> 2]!;
  if (__is_kfree_rcu_offset(func)) kfree(head - func);
  else callKernelFn(func, head);
}
