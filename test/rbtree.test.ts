import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { F64, I32 } from "../src/shared/arena.js";
import { Prng } from "../src/shared/prng.js";
import { defineStruct } from "../src/shared/struct.js";
import {
  RB_CLEAR_NODE,
  RB_DECLARE_CALLBACKS,
  RB_EMPTY_NODE,
  RB_EMPTY_ROOT,
  RB_NODE,
  RB_ROOT,
  checkRbTree,
  rb_entry,
  rb_erase,
  rb_erase_augmented,
  rb_first,
  rb_insert_augmented,
  rb_insert_color,
  rb_is_red,
  rb_last,
  rb_left,
  rb_link_node,
  rb_next,
  rb_parent,
  rb_prev,
  rb_replace_node,
  rb_right,
  rb_root_node,
} from "../src/lib/rbtree.js";
import { type RecordArea, bootWithRecordArea } from "./helpers/records.js";

/* A record with an embedded rb_node that is not at offset 0, so rb_entry is exercised. */
const TNODE = defineStruct("rb_test_node", [
  { name: "key", type: "f64" },
  { name: "rb", type: RB_NODE },
  { name: "size", type: "f64" },
  { name: "subtree_max", type: "f64" },
]);
/* The same with 32-bit fields, for the i32 flavour of RB_DECLARE_CALLBACKS. */
const TNODE32 = defineStruct("rb_test_node32", [
  { name: "rb", type: RB_NODE },
  { name: "key", type: "i32" },
  { name: "size", type: "i32" },
  { name: "subtree_max", type: "i32" },
]);
const M = TNODE.off.rb;

let records: RecordArea;
const allocRecord = (size: number) => records.alloc(size);
const resetRecords = () => records.reset();
beforeAll(() => {
  records = bootWithRecordArea(512);
});

const keyOf = (node: number) => F64[(rb_entry(node, M) + TNODE.off.key) >> 3]!;

/** The kernel's insert idiom: descend through link slots, ties to the right. */
function insert(root: number, node: number, key: number): void {
  F64[(rb_entry(node, M) + TNODE.off.key) >> 3] = key;
  let link = root + RB_ROOT.off.rb_node;
  let parent = 0;
  let n: number;
  for (let depth = 0; (n = I32[link >> 2]!) !== 0; depth++) {
    if (depth > 100) throw new Error("descent deeper than any valid tree: a cycle");
    parent = n;
    link = n + (key < keyOf(n) ? RB_NODE.off.rb_left : RB_NODE.off.rb_right);
  }
  rb_link_node(node, parent, link);
  rb_insert_color(node, root);
}

function newNode(): number {
  return allocRecord(TNODE.size) + M;
}

function inorder(root: number): number[] {
  const out: number[] = [];
  for (let n = rb_first(root); n !== 0; n = rb_next(n)) {
    out.push(n);
    if (out.length > 100_000) throw new Error("rb_next does not terminate");
  }
  return out;
}

function reverseOrder(root: number): number[] {
  const out: number[] = [];
  for (let n = rb_last(root); n !== 0; n = rb_prev(n)) {
    out.push(n);
    if (out.length > 100_000) throw new Error("rb_prev does not terminate");
  }
  return out;
}

/** Compact picture of the tree: key, colour, (left,right). */
function draw(root: number, key: (n: number) => number = keyOf): string {
  const d = (n: number): string => {
    if (n === 0) return "-";
    const l = rb_left(n);
    const r = rb_right(n);
    const self = `${key(n)}${rb_is_red(n) ? "R" : "B"}`;
    return l === 0 && r === 0 ? self : `${self}(${d(l)},${d(r)})`;
  };
  return d(rb_root_node(root));
}

describe("rbtree", () => {
  it("ascending inserts 1..7 rotate into the kernel's shape", () => {
    resetRecords();
    const root = allocRecord(RB_ROOT.size);
    expect(RB_EMPTY_ROOT(root)).toBe(true);
    for (let k = 1; k <= 7; k++) insert(root, newNode(), k);
    /*        2B
     *       /  \
     *     1B    4R
     *          /  \
     *        3B    6B
     *             /  \
     *           5R    7R        */
    expect(draw(root)).toBe("2B(1B,4R(3B,6B(5R,7R)))");
    expect(checkRbTree(root)).toBeNull();
    const six = rb_right(rb_right(rb_root_node(root)));
    rb_erase(six, root);
    // 6 had two children: its successor 7 takes its place and colour; 5 stays red.
    expect(draw(root)).toBe("2B(1B,4R(3B,7B(5R,-)))");
    expect(checkRbTree(root)).toBeNull();
  });

  it("checkRbTree reports each kind of breakage", () => {
    resetRecords();
    const root = allocRecord(RB_ROOT.size);
    const nodes = [1, 2, 3].map((k) => {
      const n = newNode();
      insert(root, n, k);
      return n;
    });
    expect(draw(root)).toBe("2B(1R,3R)");
    const [one, two, three] = nodes as [number, number, number];
    I32[(two + RB_NODE.off.__rb_parent_color) >> 2] = 0; // root red
    expect(checkRbTree(root)).toMatch(/root .* is red/);
    I32[(two + RB_NODE.off.__rb_parent_color) >> 2] = 1;
    I32[(three + RB_NODE.off.__rb_parent_color) >> 2] = one; // wrong parent
    expect(checkRbTree(root)).toMatch(/is a child of .* but its parent is/);
    I32[(three + RB_NODE.off.__rb_parent_color) >> 2] = two | 1; // black: heights differ
    expect(checkRbTree(root)).toMatch(/black height/);
    // Rebuild as a left chain 1B <- 2R <- 3R: equal black heights, but red-red.
    const set = (n: number, f: "__rb_parent_color" | "rb_left" | "rb_right", v: number) => {
      I32[(n + RB_NODE.off[f]) >> 2] = v;
    };
    I32[(root + RB_ROOT.off.rb_node) >> 2] = one;
    set(one, "__rb_parent_color", 0 | 1);
    set(one, "rb_left", two);
    set(two, "__rb_parent_color", one);
    set(two, "rb_left", three);
    set(two, "rb_right", 0);
    set(three, "__rb_parent_color", two);
    expect(checkRbTree(root)).toMatch(/red node .* has a red child/);
  });

  it("random inserts, erases and replaces keep order and the red-black properties after every step", () => {
    const op = fc.oneof(
      {
        arbitrary: fc.record({ kind: fc.constant("insert" as const), key: fc.integer({ min: 0, max: 40 }) }),
        weight: 3,
      },
      { arbitrary: fc.record({ kind: fc.constant("erase" as const), pick: fc.nat() }), weight: 2 },
      { arbitrary: fc.record({ kind: fc.constant("replace" as const), pick: fc.nat() }), weight: 1 },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 160, size: "max" }), (ops) => {
        resetRecords();
        const root = allocRecord(RB_ROOT.size);
        // Model: the nodes in in-order order; equal keys keep their insertion order (ties go right).
        const model: number[] = [];
        for (const o of ops) {
          if (o.kind === "insert") {
            const n = newNode();
            insert(root, n, o.key);
            let at = model.length;
            while (at > 0 && keyOf(model[at - 1]!) > o.key) at--;
            model.splice(at, 0, n);
          } else if (model.length > 0) {
            const i = o.pick % model.length;
            const victim = model[i]!;
            if (o.kind === "erase") {
              rb_erase(victim, root);
              RB_CLEAR_NODE(victim);
              expect(RB_EMPTY_NODE(victim)).toBe(true);
              expect(rb_next(victim)).toBe(0);
              model.splice(i, 1);
            } else {
              const n = newNode();
              F64[(rb_entry(n, M) + TNODE.off.key) >> 3] = keyOf(victim);
              rb_replace_node(victim, n, root);
              model[i] = n;
            }
          }
          expect(checkRbTree(root)).toBeNull();
          expect(inorder(root)).toEqual(model);
          expect(reverseOrder(root)).toEqual([...model].reverse());
        }
        expect(RB_EMPTY_ROOT(root)).toBe(model.length === 0);
      }),
      { seed: 0x5eed, numRuns: 300 },
    );
  });

  it("a 10k-node tree stays valid through half its nodes erased (seed 19)", () => {
    resetRecords();
    const root = allocRecord(RB_ROOT.size);
    const prng = new Prng(19);
    const nodes: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const n = newNode();
      insert(root, n, prng.u32());
      nodes.push(n);
    }
    expect(checkRbTree(root)).toBeNull();
    for (let i = 0; i < nodes.length; i += 2) rb_erase(nodes[i]!, root);
    expect(checkRbTree(root)).toBeNull();
    const keys = inorder(root).map(keyOf);
    expect(keys.length).toBe(5_000);
    expect(keys).toEqual(
      nodes
        .filter((_, i) => i % 2 === 1)
        .map(keyOf)
        .sort((a, b) => a - b),
    );
    expect(rb_parent(rb_root_node(root))).toBe(0);
  });
});

/*** Augmented: subtree_max = max(size) over the subtree, as vmalloc's subtree_max_size ***/

interface AugFlavour {
  readonly name: string;
  readonly def: typeof TNODE | typeof TNODE32;
  get(rec: number, field: "key" | "size" | "subtree_max"): number;
  set(rec: number, field: "key" | "size" | "subtree_max", v: number): void;
}

const f64Flavour: AugFlavour = {
  name: "f64",
  def: TNODE,
  get: (rec, f) => F64[(rec + TNODE.off[f]) >> 3]!,
  set: (rec, f, v) => {
    F64[(rec + TNODE.off[f]) >> 3] = v;
  },
};
const i32Flavour: AugFlavour = {
  name: "i32",
  def: TNODE32,
  get: (rec, f) => I32[(rec + TNODE32.off[f]) >> 2]!,
  set: (rec, f, v) => {
    I32[(rec + TNODE32.off[f]) >> 2] = v;
  },
};

describe.each([f64Flavour, i32Flavour])("augmented rbtree ($name subtree max)", (fl) => {
  const member = fl.def.off.rb;
  const rec = (node: number) => rb_entry(node, member);
  const sizeOf = (node: number) => fl.get(rec(node), "size");
  const augOf = (node: number) => fl.get(rec(node), "subtree_max");
  /* compute_subtree_max_size: own size and the children's subtree maxima. */
  const compute = (entry: number): number => {
    const node = entry + member;
    let m = fl.get(entry, "size");
    const l = rb_left(node);
    const r = rb_right(node);
    if (l !== 0 && augOf(l) > m) m = augOf(l);
    if (r !== 0 && augOf(r) > m) m = augOf(r);
    return m;
  };
  const cb = RB_DECLARE_CALLBACKS(fl.def as typeof TNODE, {
    rbfield: "rb",
    rbaugmented: "subtree_max",
    rbcompute: compute,
  });

  function insertAug(root: number, node: number, key: number, size: number): void {
    fl.set(rec(node), "key", key);
    fl.set(rec(node), "size", size);
    fl.set(rec(node), "subtree_max", size);
    let link = root + RB_ROOT.off.rb_node;
    let parent = 0;
    let n: number;
    for (let depth = 0; (n = I32[link >> 2]!) !== 0; depth++) {
      if (depth > 100) throw new Error("descent deeper than any valid tree: a cycle");
      parent = n;
      // The path down gains the new node in its subtree.
      if (augOf(n) < size) fl.set(rec(n), "subtree_max", size);
      link = n + (key < fl.get(rec(n), "key") ? RB_NODE.off.rb_left : RB_NODE.off.rb_right);
    }
    rb_link_node(node, parent, link);
    rb_insert_augmented(node, root, cb);
  }

  /** Every node's subtree_max equals the maximum recomputed from scratch; returns the first mismatch. */
  function checkAugmented(root: number): string | null {
    let bad: string | null = null;
    const walk = (n: number): number => {
      if (n === 0) return Number.NEGATIVE_INFINITY;
      const m = Math.max(sizeOf(n), walk(rb_left(n)), walk(rb_right(n)));
      if (bad === null && augOf(n) !== m) bad = `node key ${fl.get(rec(n), "key")}: subtree_max ${augOf(n)} != ${m}`;
      return m;
    };
    walk(rb_root_node(root));
    return bad;
  }

  it("stays equal to a recomputation after every insert, erase and resize", () => {
    const op = fc.oneof(
      {
        arbitrary: fc.record({
          kind: fc.constant("insert" as const),
          key: fc.integer({ min: 0, max: 1000 }),
          size: fc.integer({ min: 1, max: 1 << 20 }),
        }),
        weight: 3,
      },
      { arbitrary: fc.record({ kind: fc.constant("erase" as const), pick: fc.nat() }), weight: 2 },
      {
        arbitrary: fc.record({
          kind: fc.constant("resize" as const),
          pick: fc.nat(),
          size: fc.integer({ min: 1, max: 1 << 20 }),
        }),
        weight: 1,
      },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 160, size: "max" }), (ops) => {
        resetRecords();
        const root = allocRecord(RB_ROOT.size);
        const live: number[] = [];
        for (const o of ops) {
          if (o.kind === "insert") {
            const n = allocRecord(fl.def.size) + member;
            insertAug(root, n, o.key, o.size);
            live.push(n);
          } else if (live.length > 0) {
            const i = o.pick % live.length;
            const n = live[i]!;
            if (o.kind === "erase") {
              rb_erase_augmented(n, root, cb);
              live.splice(i, 1);
            } else {
              // A node's own size changed in place: propagate up to the root.
              fl.set(rec(n), "size", o.size);
              cb.propagate(n, 0);
            }
          }
          expect(checkRbTree(root)).toBeNull();
          expect(checkAugmented(root)).toBeNull();
          expect(inorder(root).length).toBe(live.length);
        }
        const top = rb_root_node(root);
        expect(top === 0 ? 0 : augOf(top)).toBe(live.reduce((m, n) => Math.max(m, sizeOf(n)), 0));
      }),
      { seed: 0xa097, numRuns: 200 },
    );
  });
});
