/**
 * Doubly linked lists (include/linux/list.h and the list half of
 * include/linux/rculist.h, v4.19): a list_head is embedded in its record;
 * container_of is `node - offsetof(record, member)` (list_entry).
 * The caller provides the exclusion (a lock) unless a function says otherwise.
 *
 * Iteration is written as the loop the kernel's macros expand to — the fastest
 * form in V8 (no callback, no generator object, nothing allocated):
 *
 *   // list_for_each_entry(pos, head, member)
 *   for (let p = list_next(head); p !== head; p = list_next(p)) { const pos = p - MEMBER; … }
 *   // list_for_each_entry_safe: fetch the successor before the body may delete p
 *   for (let p = list_next(head), n = list_next(p); p !== head; p = n, n = list_next(p)) { … }
 *   // list_for_each_entry_rcu (inside an RCU read-side section)
 *   for (let p = list_next_rcu(head); p !== head; p = list_next_rcu(p)) { … }
 *
 * CONFIG_DEBUG_LIST is on: list_add and list_del check their neighbours
 * (lib/list_debug.c) and, on corruption, WARN and leave the list alone — a
 * double list_del is a report, not a write through LIST_POISON into the arena.
 */
import { I32 } from "../shared/arena.js";
import { SP_RCU, sched_point } from "../sched/sched_point.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { lockdepOn } from "../locks/lockdep.js";
import { __WRITE_ONCE } from "../locks/atomic.js";
import { RCU_LIST_NON_READER, RCU_LOCKDEP_WARN, rcu_read_lock_nesting } from "../locks/lockdep_rcu.js";

/**
 * struct list_head. On an RCU list, `next` is also read without the lock
 * (through Atomics: see the _rcu functions); `prev` only ever under it.
 */
export const LIST_HEAD = defineStruct("list_head", [
  { name: "next", type: "ptr", guard: "the lock of the list" },
  { name: "prev", type: "ptr", guard: "the lock of the list" },
]);
const NEXT = LIST_HEAD.off.next >> 2;
const PREV = LIST_HEAD.off.prev >> 2;

/** list_del leaves these in the entry so a use after deletion is recognisable. */
export const LIST_POISON1 = 0x100;
export const LIST_POISON2 = 0x200;

/** entry->next. */
export function list_next(e: number): number {
  return I32[(e >> 2) + NEXT]!;
}

/** entry->prev. */
export function list_prev(e: number): number {
  return I32[(e >> 2) + PREV]!;
}

/** INIT_LIST_HEAD (v4.19): an empty list, or an entry on no list. */
export function INIT_LIST_HEAD(h: number): void {
  // WRITE_ONCE, as include/linux/list.h: list_empty() reads `next` without the list's lock.
  __WRITE_ONCE(h + NEXT * 4, h);
  I32[(h >> 2) + PREV] = h;
}

/*** CONFIG_DEBUG_LIST (lib/list_debug.c, v4.19) ***/

function hex(p: number): string {
  return `0x${(p >>> 0).toString(16)}`;
}

/**
 * __list_add_valid (v4.19): prev and next are adjacent and `n` is neither of
 * them. The test is inline-sized; the report is built out of line.
 */
function __list_add_valid(n: number, prev: number, next: number): boolean {
  if (list_prev(next) === prev && list_next(prev) === next && n !== prev && n !== next) return true;
  list_add_corruption(n, prev, next);
  return false;
}

function list_add_corruption(n: number, prev: number, next: number): void {
  if (list_prev(next) !== prev)
    reportBug(
      "WARN",
      `list_add corruption. next->prev should be prev (${hex(prev)}), but was ${hex(list_prev(next))}. (next=${hex(next)}).`,
    );
  else if (list_next(prev) !== next)
    reportBug(
      "WARN",
      `list_add corruption. prev->next should be next (${hex(next)}), but was ${hex(list_next(prev))}. (prev=${hex(prev)}).`,
    );
  else reportBug("WARN", `list_add double add: new=${hex(n)}, prev=${hex(prev)}, next=${hex(next)}.`);
}

/** __list_del_entry_valid (v4.19): the entry is linked both ways and not poisoned. */
function __list_del_entry_valid(e: number): boolean {
  const prev = list_prev(e);
  const next = list_next(e);
  // Poison first: a poisoned entry's neighbours are not records to read.
  if (next !== LIST_POISON1 && prev !== LIST_POISON2 && list_next(prev) === e && list_prev(next) === e) return true;
  list_del_corruption(e, prev, next);
  return false;
}

function list_del_corruption(e: number, prev: number, next: number): void {
  if (next === LIST_POISON1)
    reportBug("WARN", `list_del corruption, ${hex(e)}->next is LIST_POISON1 (${hex(LIST_POISON1)})`);
  else if (prev === LIST_POISON2)
    reportBug("WARN", `list_del corruption, ${hex(e)}->prev is LIST_POISON2 (${hex(LIST_POISON2)})`);
  else if (list_next(prev) !== e)
    reportBug("WARN", `list_del corruption. prev->next should be ${hex(e)}, but was ${hex(list_next(prev))}`);
  else reportBug("WARN", `list_del corruption. next->prev should be ${hex(e)}, but was ${hex(list_prev(next))}`);
}

/*** include/linux/list.h ***/

function __list_add(n: number, prev: number, next: number): void {
  if (!__list_add_valid(n, prev, next)) return;
  I32[(next >> 2) + PREV] = n;
  I32[(n >> 2) + NEXT] = next;
  I32[(n >> 2) + PREV] = prev;
  __WRITE_ONCE(prev + NEXT * 4, n); // list.h: the store a lockless list_empty() may see
}

/** list_add (v4.19): insert after `head` (stack order). */
export function list_add(n: number, head: number): void {
  __list_add(n, head, list_next(head));
}

/** list_add_tail (v4.19): insert before `head` (queue order). */
export function list_add_tail(n: number, head: number): void {
  __list_add(n, list_prev(head), head);
}

function __list_del(prev: number, next: number): void {
  I32[(next >> 2) + PREV] = prev;
  __WRITE_ONCE(prev + NEXT * 4, next); // as list.h, for a lockless list_empty()
}

/** __list_del_entry (v4.19): unlink `e`, leaving its own links as they were. */
function __list_del_entry(e: number): boolean {
  if (!__list_del_entry_valid(e)) return false;
  __list_del(list_prev(e), list_next(e));
  return true;
}

/** list_del (v4.19): unlink `e` and poison its links. */
export function list_del(e: number): void {
  if (!__list_del_entry(e)) return;
  I32[(e >> 2) + NEXT] = LIST_POISON1;
  I32[(e >> 2) + PREV] = LIST_POISON2;
}

/**
 * list_replace (v4.19): `n` takes `old`'s place; `old`'s links are left stale.
 * The kernel's order of stores: old->prev is read after new->next->prev was
 * written, so an empty `old` (next == prev == old) leaves `n` an empty list.
 */
export function list_replace(old: number, n: number): void {
  const next = list_next(old);
  I32[(n >> 2) + NEXT] = next;
  I32[(next >> 2) + PREV] = n;
  const prev = list_prev(old);
  I32[(n >> 2) + PREV] = prev;
  I32[(prev >> 2) + NEXT] = n;
}

/** list_replace_init (v4.19): as list_replace, then `old` is an empty list. */
export function list_replace_init(old: number, n: number): void {
  list_replace(old, n);
  INIT_LIST_HEAD(old);
}

/** list_del_init (v4.19): unlink `e` and make it an empty list. */
export function list_del_init(e: number): void {
  if (!__list_del_entry(e)) return;
  INIT_LIST_HEAD(e);
}

/** list_move (v4.19): unlink `e` and insert it after `head`. */
export function list_move(e: number, head: number): void {
  if (!__list_del_entry(e)) return;
  list_add(e, head);
}

/** list_move_tail (v4.19): unlink `e` and insert it before `head`. */
export function list_move_tail(e: number, head: number): void {
  if (!__list_del_entry(e)) return;
  list_add_tail(e, head);
}

/** list_is_last (v4.19): `e` is the last entry of `head`. */
export function list_is_last(e: number, head: number): boolean {
  return list_next(e) === head;
}

/** list_empty (v4.19): READ_ONCE(head->next), as callers may ask without the list's lock. */
export function list_empty(h: number): boolean {
  return Atomics.load(I32, (h >> 2) + NEXT) === h;
}

/** list_is_singular (v4.19): exactly one entry. */
export function list_is_singular(h: number): boolean {
  return !list_empty(h) && list_next(h) === list_prev(h);
}

function __list_splice(list: number, prev: number, next: number): void {
  const first = list_next(list);
  const last = list_prev(list);
  I32[(first >> 2) + PREV] = prev;
  I32[(prev >> 2) + NEXT] = first;
  I32[(last >> 2) + NEXT] = next;
  I32[(next >> 2) + PREV] = last;
}

/** list_splice (v4.19): move `list`'s entries to the front of `head` (stack order); `list` is left stale. */
export function list_splice(list: number, head: number): void {
  if (!list_empty(list)) __list_splice(list, head, list_next(head));
}

/** list_splice_tail (v4.19): move `list`'s entries to the back of `head` (queue order); `list` is left stale. */
export function list_splice_tail(list: number, head: number): void {
  if (!list_empty(list)) __list_splice(list, list_prev(head), head);
}

/** list_splice_init (v4.19): as list_splice, then `list` is empty. */
export function list_splice_init(list: number, head: number): void {
  if (list_empty(list)) return;
  __list_splice(list, head, list_next(head));
  INIT_LIST_HEAD(list);
}

/** list_splice_tail_init (v4.19): as list_splice_tail, then `list` is empty. */
export function list_splice_tail_init(list: number, head: number): void {
  if (list_empty(list)) return;
  __list_splice(list, list_prev(head), head);
  INIT_LIST_HEAD(list);
}

/** list_entry (container_of): the record whose list_head member at offset `member` is `e`. */
export function list_entry(e: number, member: number): number {
  return e - member;
}

/** list_first_entry (v4.19): the first record; the list must not be empty. */
export function list_first_entry(head: number, member: number): number {
  return list_next(head) - member;
}

/** list_last_entry (v4.19): the last record; the list must not be empty. */
export function list_last_entry(head: number, member: number): number {
  return list_prev(head) - member;
}

/** list_first_entry_or_null (v4.19): the first record, NULL for an empty list. */
export function list_first_entry_or_null(head: number, member: number): number {
  const first = list_next(head);
  return first !== head ? first - member : 0;
}

/** list_next_entry (v4.19): the record after record `pos` (the head's container when `pos` is last). */
export function list_next_entry(pos: number, member: number): number {
  return list_next(pos + member) - member;
}

/** list_prev_entry (v4.19): the record before record `pos`. */
export function list_prev_entry(pos: number, member: number): number {
  return list_prev(pos + member) - member;
}

/*** include/linux/rculist.h: updaters hold the list's lock, readers only rcu_read_lock ***/

/** The checking walkers: the splat names their caller. */
const LIST_NEXT_RCU_FRAME = ["list_next_rcu", "list_first_or_null_rcu", "list_next_or_null_rcu"] as const;

/**
 * Reads `e->next` for a lockless reader (rcu_dereference(list_next_rcu(e))):
 * the Atomics.load pairs with the publishing Atomics.store in the _rcu
 * updaters, so the fields of the entry it returns are initialized. With
 * lockdep on, a walk outside a read-side section is the splat v5.4's
 * CONFIG_PROVE_RCU_LIST added to list_for_each_entry_rcu (v4.19's walkers do
 * not check); an updater holding the list's lock walks with list_next.
 */
export function list_next_rcu(e: number): number {
  if (lockdepOn) RCU_LOCKDEP_WARN(rcu_read_lock_nesting() === 0, LIST_NEXT_RCU_FRAME, RCU_LIST_NON_READER);
  return Atomics.load(I32, (e >> 2) + NEXT);
}

/** __list_add_rcu (v4.19): link `n` between prev and next for lockless readers. */
function __list_add_rcu(n: number, prev: number, next: number): void {
  if (!__list_add_valid(n, prev, next)) return;
  // `n` is not yet reachable: plain stores, ordered by the publication below.
  I32[(n >> 2) + NEXT] = next;
  I32[(n >> 2) + PREV] = prev;
  // rcu_assign_pointer: publishes n — its links and every field the caller set
  // before list_add_rcu — before a reader can load n from prev->next.
  Atomics.store(I32, (prev >> 2) + NEXT, n);
  // An RCU publication is a sched point: another CPU may run between the two halves of the update.
  sched_point(SP_RCU);
  I32[(next >> 2) + PREV] = n;
}

/** list_add_rcu (v4.19): insert after `head`, visible to concurrent RCU readers. */
export function list_add_rcu(n: number, head: number): void {
  __list_add_rcu(n, head, list_next(head));
}

/** list_add_tail_rcu (v4.19): insert before `head`, visible to concurrent RCU readers. */
export function list_add_tail_rcu(n: number, head: number): void {
  __list_add_rcu(n, list_prev(head), head);
}

/**
 * list_del_rcu (v4.19): unlink `e` for RCU readers. `e->next` stays intact, so
 * a reader standing on `e` walks on; only `prev` is poisoned. Free `e` after a
 * grace period.
 */
export function list_del_rcu(e: number): void {
  if (!__list_del_entry_valid(e)) return;
  const prev = list_prev(e);
  const next = list_next(e);
  I32[(next >> 2) + PREV] = prev;
  sched_point(SP_RCU);
  // WRITE_ONCE(prev->next, next): readers load this word concurrently; `next` is
  // already published, so the store orders nothing beyond itself.
  Atomics.store(I32, (prev >> 2) + NEXT, next);
  I32[(e >> 2) + PREV] = LIST_POISON2;
}

/** list_replace_rcu (v4.19): `n` takes `old`'s place for RCU readers; free `old` after a grace period. */
export function list_replace_rcu(old: number, n: number): void {
  const next = list_next(old);
  const prev = list_prev(old);
  I32[(n >> 2) + NEXT] = next;
  I32[(n >> 2) + PREV] = prev;
  // rcu_assign_pointer: publishes n's links and fields before readers reach n.
  Atomics.store(I32, (prev >> 2) + NEXT, n);
  I32[(next >> 2) + PREV] = n;
  I32[(old >> 2) + PREV] = LIST_POISON2;
}

/** list_first_or_null_rcu (v4.19): the first record for an RCU reader, NULL for an empty list. */
export function list_first_or_null_rcu(head: number, member: number): number {
  const next = list_next_rcu(head);
  return next !== head ? next - member : 0;
}

/** list_next_or_null_rcu (v4.19): the record after list entry `e` for an RCU reader, NULL at the end. */
export function list_next_or_null_rcu(head: number, e: number, member: number): number {
  const next = list_next_rcu(e);
  return next !== head ? next - member : 0;
}
