/**
 * lib/ data structures on the main thread: the rbtree at vmap_area_root's
 * scale, and the list_head pair every free list pays. Records are carved from
 * the top of page data (no allocator is measured here).
 */
import { F64, I32, theArena } from "../../src/shared/arena.js";
import { PAGE_SIZE, makeConfig } from "../../src/shared/config.js";
import { defineStruct } from "../../src/shared/struct.js";
import { start_kernel } from "../../src/workers/boot.js";
import { INIT_LIST_HEAD, LIST_HEAD, list_add, list_del } from "../../src/lib/list.js";
import { RB_NODE, RB_ROOT, rb_erase, rb_insert_color, rb_link_node } from "../../src/lib/rbtree.js";
import type { BenchCase } from "./types.js";

/** A vmap_area-like record: an rb_node and the key it is sorted by. */
const KEYED = defineStruct("bench_rb_keyed", [
  { name: "rb_node", type: RB_NODE },
  { name: "va_start", type: "f64" },
]);
const NODE = KEYED.off.rb_node;
const KEY = KEYED.off.va_start;
const TREE_NODES = 10_000;

let root = 0;
let base = 0;
let victim = 0;
let rng = 0x2545f491;

/** Top of page data: `bytes` of records below the last page frame's end. */
function carve(bytes: number): number {
  const a = theArena();
  return (a.pagedataBase + a.nrPages * PAGE_SIZE - bytes) & ~63;
}

/** xorshift32: a key per insert without allocating. */
function nextKey(): number {
  rng ^= rng << 13;
  rng ^= rng >>> 17;
  rng ^= rng << 5;
  return rng >>> 0;
}

/** The caller's half of an insert, as __insert_vmap_area does it: descend, link, rebalance. */
function insertKeyed(rec: number, key: number): void {
  F64[(rec + KEY) >> 3] = key;
  let link = root + RB_ROOT.off.rb_node;
  let parent = 0;
  let n: number;
  while ((n = I32[link >> 2]!) !== 0) {
    parent = n;
    link = n + (key < F64[(n - NODE + KEY) >> 3]! ? RB_NODE.off.rb_left : RB_NODE.off.rb_right);
  }
  rb_link_node(rec + NODE, parent, link);
  rb_insert_color(rec + NODE, root);
}

let head = 0;
let entry = 0;

export const cases: BenchCase[] = [
  {
    name: "rbtree insert+erase at 10k nodes",
    target: "< 1 µs",
    setup() {
      start_kernel(makeConfig({ cpus: 1, memory: 8 * 1024 * 1024 }));
      root = carve(64 + TREE_NODES * KEYED.size);
      base = root + 64;
      I32[(root + RB_ROOT.off.rb_node) >> 2] = 0;
      for (let i = 0; i < TREE_NODES; i++) insertKeyed(base + i * KEYED.size, nextKey());
      victim = 0;
    },
    fn() {
      // Erase the oldest record and insert it again under a new key: the tree stays at 10k.
      const rec = base + victim * KEYED.size;
      if (++victim === TREE_NODES) victim = 0;
      rb_erase(rec + NODE, root);
      insertKeyed(rec, nextKey());
    },
  },
  {
    name: "list_add+list_del",
    target: "< 50 ns",
    setup() {
      start_kernel(makeConfig({ cpus: 1, memory: 8 * 1024 * 1024 }));
      head = carve(2 * LIST_HEAD.size);
      entry = head + LIST_HEAD.size;
      INIT_LIST_HEAD(head);
    },
    fn() {
      list_add(entry, head);
      list_del(entry);
    },
  },
];
