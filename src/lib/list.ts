/**
 * Doubly linked lists (include/linux/list.h, v4.19): a list_head is embedded in
 * its record; container_of is `node - offsetof(record, member)`.
 * The caller provides the exclusion (a lock) unless a function says otherwise.
 */
import { I32 } from "../shared/arena.js";
import { defineStruct } from "../shared/struct.js";

export const LIST_HEAD = defineStruct("list_head", [
  { name: "next", type: "ptr", guard: "the lock of the list" },
  { name: "prev", type: "ptr", guard: "the lock of the list" },
]);
const NEXT = LIST_HEAD.off.next >> 2;
const PREV = LIST_HEAD.off.prev >> 2;

/** list_del leaves these in the entry so a use after deletion is recognisable. */
export const LIST_POISON1 = 0x100;
export const LIST_POISON2 = 0x200;

export function list_next(e: number): number {
  return I32[(e >> 2) + NEXT]!;
}
export function list_prev(e: number): number {
  return I32[(e >> 2) + PREV]!;
}

export function INIT_LIST_HEAD(h: number): void {
  I32[(h >> 2) + NEXT] = h;
  I32[(h >> 2) + PREV] = h;
}

function __list_add(n: number, prev: number, next: number): void {
  I32[(next >> 2) + PREV] = n;
  I32[(n >> 2) + NEXT] = next;
  I32[(n >> 2) + PREV] = prev;
  I32[(prev >> 2) + NEXT] = n;
}

/** list_add: insert after `head` (stack order). */
export function list_add(n: number, head: number): void {
  __list_add(n, head, list_next(head));
}

/** list_add_tail: insert before `head` (queue order). */
export function list_add_tail(n: number, head: number): void {
  __list_add(n, list_prev(head), head);
}

function __list_del(prev: number, next: number): void {
  I32[(next >> 2) + PREV] = prev;
  I32[(prev >> 2) + NEXT] = next;
}

export function list_del(e: number): void {
  __list_del(list_prev(e), list_next(e));
  I32[(e >> 2) + NEXT] = LIST_POISON1;
  I32[(e >> 2) + PREV] = LIST_POISON2;
}

export function list_del_init(e: number): void {
  __list_del(list_prev(e), list_next(e));
  INIT_LIST_HEAD(e);
}

export function list_empty(h: number): boolean {
  return list_next(h) === h;
}
