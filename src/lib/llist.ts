/**
 * Lock-less NULL-terminated singly linked lists (include/linux/llist.h and
 * lib/llist.c, v4.19). Any number of CPUs may llist_add at once; consumers
 * take the whole list with llist_del_all, or — one consumer at a time —
 * single entries with llist_del_first (several would race on ABA).
 *
 * The head word is the only shared mutable word and is only touched through
 * Atomics; a node's `next` is written before the node is published by the
 * compareExchange that adds it, and read by whoever took it off the list.
 *
 * Walk a chain the way llist_for_each_safe expands (llist_del_all returns
 * newest first; llist_reverse_order gives the adding order):
 *
 *   for (let n = llist_del_all(head), next; n !== 0; n = next) { next = llist_next(n); … }
 */
import { I32 } from "../shared/arena.js";
import { defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, sched_point } from "../sched/sched_point.js";

/** struct llist_head. */
export const LLIST_HEAD = defineStruct("llist_head", [{ name: "first", type: "ptr", guard: "atomic" }]);

/** struct llist_node: `next` is set before the node is published and read after it is taken off. */
export const LLIST_NODE = defineStruct("llist_node", [{ name: "next", type: "ptr", guard: "init" }]);

const FIRST = LLIST_HEAD.off.first >> 2;
const NEXT = LLIST_NODE.off.next >> 2;

/** init_llist_head (v4.19). */
export function init_llist_head(head: number): void {
  Atomics.store(I32, (head >> 2) + FIRST, 0);
}

/** llist_entry (container_of): the record whose llist_node member at offset `member` is `node`. */
export function llist_entry(node: number, member: number): number {
  return node - member;
}

/** llist_next (v4.19): node->next, for a node the caller has taken off the list. */
export function llist_next(node: number): number {
  return I32[(node >> 2) + NEXT]!;
}

/**
 * llist_empty (v4.19): no entries right now. As in the kernel, only a hint
 * unless the caller excludes concurrent adders.
 */
export function llist_empty(head: number): boolean {
  return Atomics.load(I32, (head >> 2) + FIRST) === 0;
}

/**
 * llist_add_batch (v4.19): push the chain newFirst → … → newLast (linked by
 * the caller). Returns true if the list was empty before: the one adder that
 * sees true is the one that must kick the consumer (vfree's deferred work).
 */
export function llist_add_batch(newFirst: number, newLast: number, head: number): boolean {
  const h = (head >> 2) + FIRST;
  let first = Atomics.load(I32, h);
  for (;;) {
    I32[(newLast >> 2) + NEXT] = first;
    sched_point(SP_ATOMIC);
    // cmpxchg: publishes the chain — its next links and every field the caller
    // set before — to the consumer whose Atomics RMW later takes it.
    const seen = Atomics.compareExchange(I32, h, first, newFirst);
    if (seen === first) return first === 0;
    first = seen;
  }
}

/** llist_add (v4.19): push one node; true if the list was empty before. */
export function llist_add(node: number, head: number): boolean {
  return llist_add_batch(node, node, head);
}

/**
 * llist_del_all (v4.19): take every entry at once, newest first (NULL when
 * empty). Safe with any number of concurrent adders and consumers.
 */
export function llist_del_all(head: number): number {
  sched_point(SP_ATOMIC);
  // xchg: acquires the chain — the adders' writes to the nodes happened before
  // their cmpxchg, which this exchange reads from (directly or through later adds).
  return Atomics.exchange(I32, (head >> 2) + FIRST, 0);
}

/**
 * llist_del_first (v4.19): take the newest entry (NULL when empty). Only one
 * llist_del_first caller at a time may run beside the adders.
 */
export function llist_del_first(head: number): number {
  const h = (head >> 2) + FIRST;
  // smp_load_acquire: the entry's next was written before the cmpxchg that published it.
  let entry = Atomics.load(I32, h);
  for (;;) {
    if (entry === 0) return 0;
    const next = I32[(entry >> 2) + NEXT]!;
    sched_point(SP_ATOMIC);
    const seen = Atomics.compareExchange(I32, h, entry, next);
    if (seen === entry) return entry;
    entry = seen;
  }
}

/** llist_reverse_order (v4.19): reverse a chain taken off a list; returns its new first node. */
export function llist_reverse_order(head: number): number {
  let newHead = 0;
  while (head !== 0) {
    const tmp = head;
    head = I32[(head >> 2) + NEXT]!;
    I32[(tmp >> 2) + NEXT] = newHead;
    newHead = tmp;
  }
  return newHead;
}
