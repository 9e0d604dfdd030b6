/**
 * RCU segmented callback lists (kernel/rcu/rcu_segcblist.{h,c}, v4.19).
 *
 * One singly linked list of rcu_heads, cut into four segments by `tails`:
 *
 *   head → [DONE: ready to invoke] [WAIT: gp_seq[WAIT]] [NEXT_READY: gp_seq[NEXT_READY]] [NEXT: not yet assigned]
 *
 * tails[i] is the arena address of the `next` word that ends segment i (the
 * list's own `head` word when everything before it is empty), so appending is
 * `*tails[NEXT] = rhp`. Callers hold the owning rcu_data's nocb_lock.
 */
import { I32 } from "../shared/arena.js";
import { defineStruct } from "../shared/struct.js";
import { RCU_HEAD } from "./rcupdate.js";
import { ULONG_CMP_LT } from "./rcu.js";

export const RCU_DONE_TAIL = 0;
export const RCU_WAIT_TAIL = 1;
export const RCU_NEXT_READY_TAIL = 2;
export const RCU_NEXT_TAIL = 3;
export const RCU_CBLIST_NSEGS = 4;

export const RCU_SEGCBLIST = defineStruct("rcu_segcblist", [
  { name: "head", type: "ptr", guard: "rcu_data.nocb_lock" },
  /** Address of the `next` word ending each segment. */
  { name: "tails", type: "ptr", count: RCU_CBLIST_NSEGS, guard: "rcu_data.nocb_lock" },
  /** Grace-period sequence number each segment waits for (WAIT and NEXT_READY only). */
  { name: "gp_seq", type: "i32", count: RCU_CBLIST_NSEGS, guard: "rcu_data.nocb_lock" },
]);
const HEAD = RCU_SEGCBLIST.off.head;
const TAILS = RCU_SEGCBLIST.off.tails;
const GP_SEQ = RCU_SEGCBLIST.off.gp_seq;
const NEXT = RCU_HEAD.off.next;

function tail(rsclp: number, i: number): number {
  return I32[((rsclp + TAILS) >> 2) + i]!;
}
function setTail(rsclp: number, i: number, t: number): void {
  I32[((rsclp + TAILS) >> 2) + i] = t;
}
function gpSeq(rsclp: number, i: number): number {
  return I32[((rsclp + GP_SEQ) >> 2) + i]!;
}
function setGpSeq(rsclp: number, i: number, s: number): void {
  I32[((rsclp + GP_SEQ) >> 2) + i] = s;
}

/** rcu_segcblist_init (v4.19): an empty list, every tail at the head word. */
export function rcu_segcblist_init(rsclp: number): void {
  I32[(rsclp + HEAD) >> 2] = 0;
  for (let i = 0; i < RCU_CBLIST_NSEGS; i++) setTail(rsclp, i, rsclp + HEAD);
}

/** rcu_segcblist_restempty (v4.19): no callbacks after segment `seg`. */
export function rcu_segcblist_restempty(rsclp: number, seg: number): boolean {
  return I32[tail(rsclp, seg) >> 2] === 0;
}

/** rcu_segcblist_ready_cbs (v4.19): are there callbacks ready to invoke? */
export function rcu_segcblist_ready_cbs(rsclp: number): boolean {
  return tail(rsclp, RCU_DONE_TAIL) !== rsclp + HEAD;
}

/** rcu_segcblist_enqueue (v4.19): append `rhp` to the NEXT segment. */
export function rcu_segcblist_enqueue(rsclp: number, rhp: number): void {
  I32[(rhp + NEXT) >> 2] = 0;
  I32[tail(rsclp, RCU_NEXT_TAIL) >> 2] = rhp;
  setTail(rsclp, RCU_NEXT_TAIL, rhp + NEXT);
}

/**
 * rcu_segcblist_extract_done_cbs (v4.19): cut the DONE segment off the list;
 * returns its first rcu_head (a NULL-terminated chain), NULL when none is ready.
 */
export function rcu_segcblist_extract_done_cbs(rsclp: number): number {
  if (!rcu_segcblist_ready_cbs(rsclp)) return 0;
  const first = I32[(rsclp + HEAD) >> 2]!;
  const doneTail = tail(rsclp, RCU_DONE_TAIL);
  I32[(rsclp + HEAD) >> 2] = I32[doneTail >> 2]!;
  I32[doneTail >> 2] = 0;
  for (let i = RCU_CBLIST_NSEGS - 1; i >= RCU_DONE_TAIL; i--)
    if (tail(rsclp, i) === doneTail) setTail(rsclp, i, rsclp + HEAD);
  return first;
}

/**
 * rcu_segcblist_advance (v4.19): move every segment whose grace period has
 * ended by sequence number `seq` into DONE, and close the gap behind it.
 */
export function rcu_segcblist_advance(rsclp: number, seq: number): void {
  if (rcu_segcblist_restempty(rsclp, RCU_DONE_TAIL)) return;
  let i = RCU_WAIT_TAIL;
  for (; i < RCU_NEXT_TAIL; i++) {
    if (ULONG_CMP_LT(seq, gpSeq(rsclp, i))) break;
    setTail(rsclp, RCU_DONE_TAIL, tail(rsclp, i));
  }
  if (i === RCU_WAIT_TAIL) return;
  // The segments that became ready are now empty: their tails join DONE's.
  for (let j = RCU_WAIT_TAIL; j < i; j++) setTail(rsclp, j, tail(rsclp, RCU_DONE_TAIL));
  // Copy the still-waiting segments down into the gap.
  for (let j = RCU_WAIT_TAIL; i < RCU_NEXT_TAIL; i++, j++) {
    if (tail(rsclp, j) === tail(rsclp, RCU_NEXT_TAIL)) break;
    setTail(rsclp, j, tail(rsclp, i));
    setGpSeq(rsclp, j, gpSeq(rsclp, i));
  }
}

/**
 * rcu_segcblist_accelerate (v4.19): give the NEXT callbacks (and any waiting
 * segment that needs a grace period no earlier than `seq`) the sequence number
 * `seq`. Returns true when some callbacks now wait for `seq`: the caller must
 * make sure that grace period gets started.
 */
export function rcu_segcblist_accelerate(rsclp: number, seq: number): boolean {
  if (rcu_segcblist_restempty(rsclp, RCU_DONE_TAIL)) return false;
  // Find the newest non-empty waiting segment that completes before `seq`; everything after it merges.
  let i = RCU_NEXT_READY_TAIL;
  for (; i > RCU_DONE_TAIL; i--) if (tail(rsclp, i) !== tail(rsclp, i - 1) && ULONG_CMP_LT(gpSeq(rsclp, i), seq)) break;
  if (++i >= RCU_NEXT_TAIL) return false;
  for (; i < RCU_NEXT_TAIL; i++) {
    setTail(rsclp, i, tail(rsclp, RCU_NEXT_TAIL));
    setGpSeq(rsclp, i, seq);
  }
  return true;
}
