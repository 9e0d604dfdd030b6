import fc from "fast-check";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { I32 } from "../src/shared/arena.js";
import { defineStruct } from "../src/shared/struct.js";
import { Machine } from "../src/workers/machine.js";
import { type LlistRaceResult, llistTestNodeId } from "../src/workers/workloads/lib.js";
import {
  LLIST_HEAD,
  LLIST_NODE,
  init_llist_head,
  llist_add,
  llist_add_batch,
  llist_del_all,
  llist_del_first,
  llist_empty,
  llist_entry,
  llist_next,
  llist_reverse_order,
} from "../src/lib/llist.js";
import { type RecordArea, bootWithRecordArea } from "./helpers/records.js";

/* The llist_node is not the first member, so llist_entry is exercised. */
const ITEM = defineStruct("llist_test_item", [
  { name: "id", type: "i32" },
  { name: "node", type: LLIST_NODE },
]);
const M = ITEM.off.node;

describe("llist (one CPU)", () => {
  let records: RecordArea;
  const allocRecord = (size: number) => records.alloc(size);
  const resetRecords = () => records.reset();
  beforeAll(() => {
    records = bootWithRecordArea(64);
  });

  const idOf = (node: number) => I32[(llist_entry(node, M) + ITEM.off.id) >> 2]!;
  /** Ids along a chain (bounded: a cycle must fail, not hang). */
  const ids = (first: number) => {
    const out: number[] = [];
    for (let n = first; n !== 0; n = llist_next(n)) {
      out.push(idOf(n));
      if (out.length > 10_000) throw new Error("chain does not end");
    }
    return out;
  };

  it("add, add_batch, del_first and del_all behave as a stack; reverse_order gives adding order", () => {
    const op = fc.oneof(
      { arbitrary: fc.constant({ kind: "add" as const, k: 1 }), weight: 3 },
      { arbitrary: fc.record({ kind: fc.constant("batch" as const), k: fc.integer({ min: 1, max: 5 }) }), weight: 2 },
      { arbitrary: fc.constant({ kind: "del_first" as const, k: 0 }), weight: 2 },
      { arbitrary: fc.constant({ kind: "del_all" as const, k: 0 }), weight: 1 },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 100, size: "max" }), (ops) => {
        resetRecords();
        const head = allocRecord(LLIST_HEAD.size);
        init_llist_head(head);
        const stack: number[] = []; // newest first
        let nextId = 0;
        const fresh = () => {
          const r = allocRecord(ITEM.size);
          I32[(r + ITEM.off.id) >> 2] = nextId++;
          return r + M;
        };
        for (const o of ops) {
          const wasEmpty = stack.length === 0;
          if (o.kind === "add") {
            const n = fresh();
            expect(llist_add(n, head)).toBe(wasEmpty);
            stack.unshift(idOf(n));
          } else if (o.kind === "batch") {
            // The caller links the batch newest first: first -> ... -> last.
            const nodes = Array.from({ length: o.k }, fresh);
            for (let i = nodes.length - 1; i > 0; i--) I32[(nodes[i]! + LLIST_NODE.off.next) >> 2] = nodes[i - 1]!;
            expect(llist_add_batch(nodes.at(-1)!, nodes[0]!, head)).toBe(wasEmpty);
            stack.unshift(...nodes.map(idOf).reverse());
          } else if (o.kind === "del_first") {
            const n = llist_del_first(head);
            expect(n === 0 ? null : idOf(n)).toBe(wasEmpty ? null : stack.shift());
          } else {
            const chain = llist_del_all(head);
            expect(ids(chain)).toEqual(stack);
            expect(ids(llist_reverse_order(chain))).toEqual([...stack].reverse());
            stack.length = 0;
          }
          expect(llist_empty(head)).toBe(stack.length === 0);
          expect(ids(I32[(head + LLIST_HEAD.off.first) >> 2]!)).toEqual(stack);
        }
      }),
      { seed: 0x1115, numRuns: 300 },
    );
  });
});

describe("llist (concurrent adders)", () => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it.each([
    2, 4,
  ])("%i CPUs llist_add at once while CPU 0 consumes: every node taken exactly once, in LIFO order (seed 23)", async (cpus) => {
    const seed = 23;
    m = await Machine.boot({ cpus, seed });
    const count = 20_000;
    const results = (await m.runAll("llist_add_race", (cpu: number) => ({
      count,
      batchMax: 4,
      drainEvery: cpu === 0 ? 97 : 0,
      delFirstEvery: cpu === 0 ? 13 : 0,
      round: 1,
    }))) as LlistRaceResult[];
    const rest = (await m.run(0, "llist_drain", { max: cpus * count })) as number[];
    const chains = [...results.flatMap((r) => r.taken), ...(rest.length ? [rest] : [])];

    // Every node of every CPU, exactly once.
    const seen = new Map<string, number>();
    for (const chain of chains)
      for (const n of chain) {
        const { cpu, seq } = llistTestNodeId(n);
        const key = `${cpu}:${seq}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
    expect(seen.size).toBe(cpus * count);
    expect([...seen.values()].every((c) => c === 1)).toBe(true);

    // Within a chain, each CPU's nodes are newest first: a stack never reorders one adder's pushes.
    for (const chain of chains) {
      const lastSeq = new Map<number, number>();
      for (const n of chain) {
        const { cpu, seq } = llistTestNodeId(n);
        expect(seq).toBeLessThan(lastSeq.get(cpu) ?? Number.POSITIVE_INFINITY);
        lastSeq.set(cpu, seq);
      }
    }

    // llist_add returned true exactly once per empty -> non-empty transition, i.e. once
    // per removal that emptied the list: what vfree's deferred path relies on.
    const empties = results.reduce((s, r) => s + r.empties, 0);
    const emptied = results.reduce((s, r) => s + r.emptied, 0) + (rest.length ? 1 : 0);
    expect(empties).toBe(emptied);
  });
});
