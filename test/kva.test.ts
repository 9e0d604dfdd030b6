/**
 * src/check/kva.ts on free trees built here: seeded random sets of free
 * blocks in a record of the KVA vmap_area's shape, searched by the two
 * kernels' find_vmap_lowest_match (v5.10: search length size + align - 1, no
 * vstart shift; v6.12: exact unless asked, vstart shifted past a searched
 * parent). Holds on every seeded tree; fails on each corruption.
 */
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { F64, I32 } from "../src/shared/arena.js";
import { PAGE_SIZE } from "../src/shared/config.js";
import { Prng } from "../src/shared/prng.js";
import { defineStruct } from "../src/shared/struct.js";
import { INIT_LIST_HEAD, LIST_HEAD, list_add_tail, list_del, list_add } from "../src/lib/list.js";
import {
  RB_DECLARE_CALLBACKS,
  RB_NODE,
  RB_ROOT,
  rb_insert_augmented,
  rb_left,
  rb_link_node,
  rb_parent,
  rb_right,
} from "../src/lib/rbtree.js";
import { type FreeTreeReader, type KvaPiece, checkFreeTree, checkTiling } from "../src/check/kva.js";
import { type RecordArea, bootWithRecordArea } from "./helpers/records.js";

const TVA = defineStruct("kva_test_area", [
  { name: "va_start", type: "f64" },
  { name: "va_end", type: "f64" },
  { name: "rb_node", type: RB_NODE },
  { name: "list", type: LIST_HEAD },
  { name: "subtree_max_size", type: "f64" },
]);
const O = TVA.off;
const va_start = (va: number) => F64[(va + O.va_start) >> 3]!;
const va_end = (va: number) => F64[(va + O.va_end) >> 3]!;
const smax = (va: number) => F64[(va + O.subtree_max_size) >> 3]!;
const cb = RB_DECLARE_CALLBACKS(TVA, {
  rbfield: "rb_node",
  rbaugmented: "subtree_max_size",
  rbcompute: (va) => {
    const child = (c: number) => (c === 0 ? 0 : smax(c - O.rb_node));
    return Math.max(va_end(va) - va_start(va), child(rb_left(va + O.rb_node)), child(rb_right(va + O.rb_node)));
  },
});
const entry = (rb: number) => rb - O.rb_node;
const sms = (rb: number) => (rb === 0 ? 0 : smax(entry(rb)));
const ALIGN = (x: number, a: number) => Math.ceil(x / a) * a;
const VSTART = 0x8000000;

let records: RecordArea;
let root = 0;
let head = 0;
beforeAll(() => {
  records = bootWithRecordArea(256);
});
beforeEach(() => {
  records.reset();
  root = records.alloc(RB_ROOT.size);
  head = records.alloc(LIST_HEAD.size);
  INIT_LIST_HEAD(head);
});

/** insert_vmap_area_augment's effect, blocks inserted in any order, the list kept sorted. */
function insertFree(start: number, end: number): number {
  const va = records.alloc(TVA.size);
  F64[(va + O.va_start) >> 3] = start;
  F64[(va + O.va_end) >> 3] = end;
  let link = root + RB_ROOT.off.rb_node;
  let parent = 0;
  while (I32[link >> 2] !== 0) {
    parent = I32[link >> 2]!;
    link = parent + (start < va_start(entry(parent)) ? RB_NODE.off.rb_left : RB_NODE.off.rb_right);
  }
  rb_link_node(va + O.rb_node, parent, link);
  rb_insert_augmented(va + O.rb_node, root, cb);
  F64[(va + O.subtree_max_size) >> 3] = 0;
  cb.propagate(va + O.rb_node, 0);
  let after = head;
  for (let e = I32[head >> 2]!; e !== head && va_start(e - O.list) < start; e = I32[e >> 2]!) after = e;
  list_add(va + O.list, after);
  return va;
}

function within(va: number, size: number, align: number, vstart: number): boolean {
  const nva = va_start(va) > vstart ? ALIGN(va_start(va), align) : ALIGN(vstart, align);
  return nva >= vstart && nva + size <= va_end(va);
}

/** find_vmap_lowest_match as v5.10 (adjust: always, no vstart shift) or v6.12 (adjust when asked, shift). */
function lowestMatch(version: "5.10" | "6.12", adjust: boolean, size: number, align: number, vstart: number): number {
  let node = I32[root >> 2]!;
  const length = adjust ? size + align - 1 : size;
  while (node !== 0) {
    let va = entry(node);
    if (sms(rb_left(node)) >= length && vstart < va_start(va)) {
      node = rb_left(node);
      continue;
    }
    if (within(va, size, align, vstart)) return va;
    if (sms(rb_right(node)) >= length) {
      node = rb_right(node);
      continue;
    }
    while ((node = rb_parent(node)) !== 0) {
      va = entry(node);
      if (within(va, size, align, vstart)) return va;
      if (sms(rb_right(node)) >= length && vstart <= va_start(va)) {
        if (version === "6.12") vstart = va_start(va) + 1;
        node = rb_right(node);
        break;
      }
    }
  }
  return 0;
}

function reader(search: FreeTreeReader["find_vmap_lowest_match"], exactFor: (a: number) => boolean): FreeTreeReader {
  return {
    rbNode: O.rb_node,
    list: O.list,
    va_start,
    va_end,
    name: (va) => `va ${va} [${va_start(va)}-${va_end(va)})`,
    subtree_max_size: smax,
    find_vmap_lowest_match: search,
    exactFor,
    vmallocStart: VSTART,
  };
}
const v510 = reader(
  (s, a, v) => lowestMatch("5.10", true, s, a, v),
  (a) => a === 1,
);
const v612 = reader(
  (s, a, v) => lowestMatch("6.12", false, s, a, v),
  () => true,
);

/** Free blocks of 1..64 pages separated by busy gaps, inserted in a shuffled order; returns them by address. */
function randomFreeSpace(seed: number, n: number): number[] {
  const rng = new Prng(seed, 0);
  const blocks: [number, number][] = [];
  let at = VSTART - 4 * PAGE_SIZE;
  for (let i = 0; i < n; i++) {
    at += (1 + rng.int(0, 8)) * PAGE_SIZE; // a busy gap
    const len = (1 + rng.int(0, 64)) * PAGE_SIZE * (rng.int(0, 10) === 0 ? 512 : 1);
    blocks.push([at, at + len]);
    at += len;
  }
  const order = blocks.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const vas: number[] = [];
  for (const i of order) vas[i] = insertFree(blocks[i]![0], blocks[i]![1]);
  return vas;
}

describe("checkFreeTree holds on well-formed free trees", () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: 5.10 and 6.12 searches agree with the linear scan`, () => {
      randomFreeSpace(seed, 40 + seed * 20);
      for (const f of [v510, v612]) {
        const out: string[] = [];
        expect(checkFreeTree(root, head, f, out)).toHaveLength(40 + seed * 20);
        expect(out).toEqual([]);
      }
    });
  }
});

describe("checkFreeTree fails on each corruption", () => {
  it("a wrong subtree_max_size (DEBUG_AUGMENT_PROPAGATE_CHECK)", () => {
    const vas = randomFreeSpace(7, 50);
    const victim = vas[17]!;
    const right = smax(victim);
    F64[(victim + O.subtree_max_size) >> 3] = right + PAGE_SIZE;
    const out: string[] = [];
    checkFreeTree(root, head, v612, out);
    expect(out).toEqual([
      `free_vmap_area_root: va ${victim} [${va_start(victim)}-${va_end(victim)}) has subtree_max_size ${right + PAGE_SIZE}, its subtree's largest is ${right}`,
    ]);
  });

  it("a search that adjusts the length for alignment misses an exact fit (DEBUG_AUGMENT_LOWEST_MATCH_CHECK)", () => {
    // b is the root, a its left child: a's exact 2 pages are below the adjusted length 3 pages - 1.
    const b = insertFree(VSTART + 4 * PAGE_SIZE, VSTART + 64 * PAGE_SIZE);
    const a = insertFree(VSTART, VSTART + 2 * PAGE_SIZE);
    insertFree(VSTART + 70 * PAGE_SIZE, VSTART + 72 * PAGE_SIZE);
    const adjusting = reader(
      (s, al, v) => lowestMatch("6.12", true, s, al, v),
      () => true,
    );
    const out: string[] = [];
    checkFreeTree(root, head, adjusting, out);
    const name = (va: number) => `va ${va} [${va_start(va)}-${va_end(va)})`;
    expect(out).toContain(
      `lowest match: find_vmap_lowest_match(size ${2 * PAGE_SIZE}, align ${PAGE_SIZE}, vstart ${VSTART}) is ${name(b)}, the linear scan finds ${name(a)}`,
    );
    // The same state holds under v6.12's exact search, and under v5.10's bounds (that miss is v5.10's own behaviour).
    for (const f of [v612, v510]) {
      const ok: string[] = [];
      checkFreeTree(root, head, f, ok);
      expect(ok).toEqual([]);
    }
  });

  it("two adjacent free blocks left unmerged", () => {
    const a = insertFree(VSTART, VSTART + PAGE_SIZE);
    const b = insertFree(VSTART + PAGE_SIZE, VSTART + 3 * PAGE_SIZE);
    const out: string[] = [];
    checkFreeTree(root, head, v612, out);
    expect(out).toEqual([
      `free_vmap_area_root: va ${a} [${VSTART}-${VSTART + PAGE_SIZE}) and va ${b} [${VSTART + PAGE_SIZE}-${VSTART + 3 * PAGE_SIZE}) are adjacent but not merged`,
    ]);
  });

  it("the list out of the tree's order", () => {
    const vas = randomFreeSpace(8, 10);
    list_del(vas[3]! + O.list);
    list_add_tail(vas[3]! + O.list, head);
    const out: string[] = [];
    checkFreeTree(root, head, v612, out);
    expect(out[0]).toBe(
      `free_vmap_area_root list: entry 3 is va ${vas[4]} [${va_start(vas[4]!)}-${va_end(vas[4]!)}), the tree's is va ${vas[3]} [${va_start(vas[3]!)}-${va_end(vas[3]!)})`,
    );
  });
});

describe("checkTiling", () => {
  const fmt = (k: number) => `0x${k.toString(16)}`;
  const piece = (start: number, end: number, what: string): KvaPiece => ({ start, end, what });
  it("holds on an exact cover, in any order", () => {
    const out: string[] = [];
    checkTiling(
      [piece(0x3000, 0x8000, "c"), piece(0x1000, 0x2000, "a"), piece(0x2000, 0x3000, "b")],
      0x1000,
      0x8000,
      fmt,
      out,
    );
    expect(out).toEqual([]);
  });
  it("names a gap, an overlap and a piece past either end", () => {
    const out: string[] = [];
    checkTiling(
      [piece(0x1000, 0x2000, "a"), piece(0x3000, 0x5000, "b"), piece(0x4000, 0x9000, "c")],
      0x1000,
      0x8000,
      fmt,
      out,
    );
    expect(out).toEqual([
      "tiling: [0x2000-0x3000) is in no tree, list or pool (after a)",
      "tiling: b overlaps c",
      "tiling: c ends above the KVA space's end 0x8000",
    ]);
    const low: string[] = [];
    checkTiling([piece(0x0, 0x2000, "a")], 0x1000, 0x3000, fmt, low);
    expect(low).toEqual([
      "tiling: a starts below the KVA space's start 0x1000",
      "tiling: [0x2000-0x3000) is in no tree, list or pool (after a)",
    ]);
  });
});
