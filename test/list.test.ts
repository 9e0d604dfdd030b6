import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { I32 } from "../src/shared/arena.js";
import { takeReports } from "../src/shared/report.js";
import { defineStruct } from "../src/shared/struct.js";
import {
  INIT_LIST_HEAD,
  LIST_HEAD,
  LIST_POISON1,
  LIST_POISON2,
  list_add,
  list_add_rcu,
  list_add_tail,
  list_add_tail_rcu,
  list_del,
  list_del_init,
  list_del_rcu,
  list_empty,
  list_entry,
  list_first_entry,
  list_first_entry_or_null,
  list_first_or_null_rcu,
  list_is_last,
  list_is_singular,
  list_last_entry,
  list_move,
  list_move_tail,
  list_next,
  list_next_entry,
  list_next_or_null_rcu,
  list_next_rcu,
  list_prev,
  list_prev_entry,
  list_replace,
  list_replace_init,
  list_replace_rcu,
  list_splice,
  list_splice_init,
  list_splice_tail,
  list_splice_tail_init,
} from "../src/lib/list.js";
import { rcu_read_lock, rcu_read_unlock } from "../src/rcu/rcupdate.js";
import { type RecordArea, bootWithRecordArea } from "./helpers/records.js";

/* The list_head is not the first member, so list_entry is exercised. */
const ITEM = defineStruct("list_test_item", [
  { name: "id", type: "i32" },
  { name: "list", type: LIST_HEAD },
]);
const M = ITEM.off.list;

let records: RecordArea;
const allocRecord = (size: number) => records.alloc(size);
const resetRecords = () => records.reset();
beforeAll(() => {
  records = bootWithRecordArea(64);
});

const idOf = (rec: number) => I32[(rec + ITEM.off.id) >> 2]!;

function newHead(): number {
  const h = allocRecord(LIST_HEAD.size);
  INIT_LIST_HEAD(h);
  return h;
}

/** Item ids along `next` from `head` (bounded: a corrupted list must fail, not hang). */
function forward(head: number, next: (e: number) => number = list_next): number[] {
  const out: number[] = [];
  for (let p = next(head); p !== head; p = next(p)) {
    out.push(idOf(list_entry(p, M)));
    if (out.length > 10_000) throw new Error("list does not return to its head");
  }
  return out;
}

function backward(head: number): number[] {
  const out: number[] = [];
  for (let p = list_prev(head); p !== head; p = list_prev(p)) {
    out.push(idOf(list_entry(p, M)));
    if (out.length > 10_000) throw new Error("list does not return to its head");
  }
  return out.reverse();
}

/** Everything the list API says about `head` agrees with the model (one comparison: cheap and readable). */
function expectList(head: number, model: number[], rec: (id: number) => number): void {
  const n = model.length;
  const first = n ? list_first_entry(head, M) : 0;
  const last = n ? list_last_entry(head, M) : 0;
  // The _rcu walkers inside a read-side section, as a reader runs them (lockdep checks it).
  rcu_read_lock();
  const seen = {
    forward: forward(head),
    backward: backward(head),
    rcu: forward(head, list_next_rcu),
    empty: list_empty(head),
    singular: list_is_singular(head),
    firstOrNull: list_first_entry_or_null(head, M),
    firstOrNullRcu: list_first_or_null_rcu(head, M),
    first: n ? idOf(first) : -1,
    last: n ? idOf(last) : -1,
    lastIsLast: n ? list_is_last(last + M, head) : true,
    nextOfLastRcu: n ? list_next_or_null_rcu(head, last + M, M) : 0,
    second: n > 1 ? idOf(list_next_entry(first, M)) : -1,
    secondRcu: n > 1 ? idOf(list_next_or_null_rcu(head, first + M, M)) : -1,
    penultimate: n > 1 ? idOf(list_prev_entry(last, M)) : -1,
  };
  rcu_read_unlock();
  expect(seen).toEqual({
    forward: model,
    backward: model,
    rcu: model,
    empty: n === 0,
    singular: n === 1,
    firstOrNull: n ? rec(model[0]!) : 0,
    firstOrNullRcu: n ? rec(model[0]!) : 0,
    first: n ? model[0] : -1,
    last: n ? model[n - 1] : -1,
    lastIsLast: true,
    nextOfLastRcu: 0,
    second: n > 1 ? model[1] : -1,
    secondRcu: n > 1 ? model[1] : -1,
    penultimate: n > 1 ? model[n - 2] : -1,
  });
}

const ADD = ["list_add", "list_add_tail", "list_add_rcu", "list_add_tail_rcu"] as const;
const DEL = ["list_del", "list_del_init", "list_del_rcu"] as const;
const MOVE = ["list_move", "list_move_tail"] as const;
const REPLACE = ["list_replace", "list_replace_init", "list_replace_rcu"] as const;
const SPLICE = ["list_splice", "list_splice_tail", "list_splice_init", "list_splice_tail_init"] as const;

const opArb = fc.oneof(
  {
    arbitrary: fc.record({ kind: fc.constant("add" as const), fn: fc.constantFrom(...ADD), toB: fc.boolean() }),
    weight: 4,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("del" as const), fn: fc.constantFrom(...DEL), pick: fc.nat() }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("move" as const),
      fn: fc.constantFrom(...MOVE),
      pick: fc.nat(),
      toB: fc.boolean(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("replace" as const), fn: fc.constantFrom(...REPLACE), pick: fc.nat() }),
    weight: 1,
  },
  { arbitrary: fc.record({ kind: fc.constant("splice" as const), fn: fc.constantFrom(...SPLICE) }), weight: 1 },
);

describe("list", () => {
  it("random add, del, move, replace and splice (plain and RCU) agree with an array model", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120, size: "max" }), (ops) => {
        resetRecords();
        const a = newHead();
        const b = newHead();
        const model = { a: [] as number[], b: [] as number[] };
        const recs: number[] = [];
        const rec = (id: number) => recs[id]!;
        const fresh = () => {
          const r = allocRecord(ITEM.size);
          I32[(r + ITEM.off.id) >> 2] = recs.length;
          recs.push(r);
          return recs.length - 1;
        };
        // Picks a live item from A then B.
        const pick = (n: number): { on: "a" | "b"; i: number } | null => {
          const total = model.a.length + model.b.length;
          if (total === 0) return null;
          const k = n % total;
          return k < model.a.length ? { on: "a", i: k } : { on: "b", i: k - model.a.length };
        };
        for (const o of ops) {
          switch (o.kind) {
            case "add": {
              const id = fresh();
              const head = o.toB ? b : a;
              const m = o.toB ? model.b : model.a;
              const atHead = o.fn === "list_add" || o.fn === "list_add_rcu";
              ({ list_add, list_add_tail, list_add_rcu, list_add_tail_rcu })[o.fn](rec(id) + M, head);
              if (atHead) m.unshift(id);
              else m.push(id);
              break;
            }
            case "del": {
              const p = pick(o.pick);
              if (!p) break;
              const m = model[p.on];
              const id = m[p.i]!;
              const e = rec(id) + M;
              const succ = list_next(e);
              ({ list_del, list_del_init, list_del_rcu })[o.fn](e);
              m.splice(p.i, 1);
              if (o.fn === "list_del") {
                expect([list_next(e), list_prev(e)]).toEqual([LIST_POISON1, LIST_POISON2]);
              } else if (o.fn === "list_del_init") {
                expect(list_empty(e)).toBe(true);
              } else {
                // A reader standing on e still walks on to its old successor.
                rcu_read_lock();
                const next = list_next_rcu(e);
                rcu_read_unlock();
                expect([next, list_prev(e)]).toEqual([succ, LIST_POISON2]);
              }
              break;
            }
            case "move": {
              const p = pick(o.pick);
              if (!p) break;
              const id = model[p.on][p.i]!;
              model[p.on].splice(p.i, 1);
              const to = o.toB ? model.b : model.a;
              ({ list_move, list_move_tail })[o.fn](rec(id) + M, o.toB ? b : a);
              if (o.fn === "list_move") to.unshift(id);
              else to.push(id);
              break;
            }
            case "replace": {
              const p = pick(o.pick);
              if (!p) break;
              const old = model[p.on][p.i]!;
              const id = fresh();
              ({ list_replace, list_replace_init, list_replace_rcu })[o.fn](rec(old) + M, rec(id) + M);
              model[p.on][p.i] = id;
              if (o.fn === "list_replace_init") expect(list_empty(rec(old) + M)).toBe(true);
              if (o.fn === "list_replace_rcu") expect(list_prev(rec(old) + M)).toBe(LIST_POISON2);
              break;
            }
            case "splice": {
              ({ list_splice, list_splice_tail, list_splice_init, list_splice_tail_init })[o.fn](b, a);
              model.a =
                o.fn === "list_splice" || o.fn === "list_splice_init"
                  ? [...model.b, ...model.a]
                  : [...model.a, ...model.b];
              model.b = [];
              // The plain splices leave B's head stale, as in the kernel: re-initialize it.
              if (o.fn === "list_splice" || o.fn === "list_splice_tail") INIT_LIST_HEAD(b);
              break;
            }
          }
          expectList(a, model.a, rec);
          expectList(b, model.b, rec);
        }
        expect(takeReports()).toEqual([]);
      }),
      { seed: 0x11575, numRuns: 300 },
    );
  });

  it("PROVE_RCU: an RCU list walked outside a read-side section is the suspicious RCU usage splat, once per CPU", () => {
    resetRecords();
    takeReports();
    const head = newHead();
    for (let i = 0; i < 3; i++) list_add_tail_rcu(allocRecord(ITEM.size) + M, head);
    rcu_read_lock();
    expect(forward(head, list_next_rcu)).toHaveLength(3);
    rcu_read_unlock();
    expect(takeReports()).toEqual([]);
    expect(forward(head, list_next_rcu)).toHaveLength(3);
    const r = takeReports();
    expect(r.map((e) => e.kind)).toEqual(["lockdep"]);
    const lines = r[0]!.text.split("\n");
    expect(lines.slice(0, 3)).toEqual([
      "WARNING: suspicious RCU usage",
      "-----------------------------",
      expect.stringMatching(/^test\/list\.test\.ts:\d+:\d+ RCU-list traversed in non-reader section!!$/),
    ]);
    expect(lines).toContain("no locks held by CPU0.");
    expect(lines[lines.indexOf("stack backtrace:") + 1]).toMatch(/^ forward \(test\/list\.test\.ts:/);
    // RCU_LOCKDEP_WARN's __warned: the next misuse is not reported again.
    list_first_or_null_rcu(head, M);
    expect(takeReports()).toEqual([]);
  });

  describe("CONFIG_DEBUG_LIST", () => {
    it("a double list_del WARNs and writes nothing through the poison", () => {
      resetRecords();
      takeReports();
      const head = newHead();
      const x = allocRecord(ITEM.size) + M;
      const y = allocRecord(ITEM.size) + M;
      list_add_tail(x, head);
      list_add_tail(y, head);
      list_del(x);
      const poisonWords = [I32[(LIST_POISON1 >> 2) + 1], I32[LIST_POISON2 >> 2]];
      list_del(x);
      const r = takeReports();
      expect(r.map((e) => e.kind)).toEqual(["WARN"]);
      expect(r[0]!.text).toBe(`list_del corruption, 0x${x.toString(16)}->next is LIST_POISON1 (0x100)`);
      expect([I32[(LIST_POISON1 >> 2) + 1], I32[LIST_POISON2 >> 2]]).toEqual(poisonWords);
      expect(list_next(head)).toBe(y);
      expect(list_prev(head)).toBe(y);
    });

    it("list_del of an entry whose neighbour no longer points back WARNs and leaves the list alone", () => {
      resetRecords();
      takeReports();
      const head = newHead();
      const [x, y, z] = [0, 1, 2].map(() => allocRecord(ITEM.size) + M) as [number, number, number];
      for (const e of [x, y, z]) list_add_tail(e, head);
      I32[(x + LIST_HEAD.off.next) >> 2] = z; // x forgets y
      list_del(y);
      expect(takeReports().map((e) => e.text)).toEqual([
        `list_del corruption. prev->next should be 0x${y.toString(16)}, but was 0x${z.toString(16)}`,
      ]);
      expect([list_next(y), list_prev(y), list_prev(z)]).toEqual([z, x, y]);
    });

    it("list_replace and list_replace_init of an empty list leave the new head empty (v6.12's pool decay does it)", () => {
      for (const replace of [list_replace, list_replace_init]) {
        resetRecords();
        const old = newHead();
        const tmp = allocRecord(LIST_HEAD.size);
        replace(old, tmp);
        // The kernel's store order: tmp links to itself, never to the head it replaced.
        expect([list_next(tmp), list_prev(tmp)]).toEqual([tmp, tmp]);
        expect(list_empty(tmp)).toBe(true);
      }
    });

    it("adding an entry next to itself is a double add", () => {
      resetRecords();
      takeReports();
      const head = newHead();
      const x = allocRecord(ITEM.size) + M;
      list_add(x, head);
      list_add(x, head);
      expect(takeReports().map((e) => e.text)).toEqual([
        `list_add double add: new=0x${x.toString(16)}, prev=0x${head.toString(16)}, next=0x${x.toString(16)}.`,
      ]);
      expect(list_is_singular(head)).toBe(true);
    });
  });
});
