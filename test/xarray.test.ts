import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { I32 } from "../src/shared/arena.js";
import { makeConfig } from "../src/shared/config.js";
import { takeReports } from "../src/shared/report.js";
import { start_kernel } from "../src/workers/boot.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { rcu_barrier, rcu_cpu_starting } from "../src/rcu/tree.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { setup_fail_page_alloc } from "../src/mm/fail_page_alloc.js";
import { kfree, kmalloc, slabinfo } from "../src/mm/slab.js";
import { XARRAY, xa_erase, xa_for_each, xa_init, xa_insert, xa_load, xa_nr_nodes } from "../src/mm/xarray.js";

const EBUSY = 16;

function boot(): number {
  start_kernel(makeConfig({ cpus: 1, memory: 16 * 1024 * 1024 }));
  rcu_cpu_starting(0);
  percpuCpuOnline();
  takeReports();
  const xa = kmalloc(XARRAY.size, GFP_KERNEL);
  xa_init(xa, "test_xa.xa_lock");
  return xa;
}

const nodesInUse = () => slabinfo().find((s) => s.name === "xa_node")!.active_objs;

describe("xarray (lib/xarray.c)", () => {
  it("loads what was inserted, at indices from 0 past 2^32, and refuses an occupied index", () => {
    const xa = boot();
    const entry = () => kmalloc(8, GFP_KERNEL);
    const indices = [0, 1, 63, 64, 4095, 4096, 2 ** 20 + 7, 2 ** 33 + 5];
    const stored = new Map<number, number>();
    for (const i of indices) {
      const e = entry();
      expect(xa_insert(xa, i, e, GFP_KERNEL)).toBe(0);
      stored.set(i, e);
    }
    for (const [i, e] of stored) expect(xa_load(xa, i)).toBe(e);
    expect(xa_load(xa, 2)).toBe(0);
    expect(xa_load(xa, 2 ** 40)).toBe(0);
    expect(xa_insert(xa, 64, entry(), GFP_KERNEL)).toBe(-EBUSY);
    const seen: number[] = [];
    xa_for_each(xa, (i, e) => {
      seen.push(i);
      expect(e).toBe(stored.get(i));
    });
    expect(seen).toEqual(indices);
    expect(takeReports()).toEqual([]);
  });

  it("erasing every entry frees every node, after a grace period", () => {
    const xa = boot();
    rcu_barrier();
    const before = nodesInUse();
    const e = kmalloc(8, GFP_KERNEL);
    for (const i of [5, 70, 2 ** 25]) expect(xa_insert(xa, i, e, GFP_KERNEL)).toBe(0);
    expect(xa_nr_nodes(xa)).toBeGreaterThan(3);
    expect(xa_erase(xa, 70)).toBe(e);
    expect(xa_erase(xa, 70)).toBe(0);
    expect(xa_erase(xa, 5)).toBe(e);
    expect(xa_load(xa, 2 ** 25)).toBe(e);
    expect(xa_erase(xa, 2 ** 25)).toBe(e);
    expect(xa_nr_nodes(xa)).toBe(0);
    expect(I32[(xa + XARRAY.off.xa_head) >> 2]).toBe(0);
    rcu_barrier();
    expect(nodesInUse()).toBe(before);
    kfree(e);
  });

  it("an insert that cannot get a node fails with -ENOMEM and leaves no node behind", () => {
    const xa = boot();
    const e = kmalloc(8, GFP_KERNEL);
    expect(xa_insert(xa, 3, e, GFP_KERNEL)).toBe(0);
    const nodes = xa_nr_nodes(xa);
    setup_fail_page_alloc({ probability: 100, times: -1 });
    let ret = 0;
    // Nodes come from slabs with free objects first: insert far away until a new slab is needed.
    for (let i = 1; i < 200 && ret === 0; i++) ret = xa_insert(xa, i * 2 ** 30, e, GFP_KERNEL);
    setup_fail_page_alloc({ probability: 0, times: 0 });
    expect(ret).toBe(-12);
    xa_for_each(xa, (_i, got) => expect(got).toBe(e));
    expect(xa_load(xa, 3)).toBe(e);
    expect(xa_nr_nodes(xa)).toBeGreaterThanOrEqual(nodes);
    takeReports();
  });

  it("agrees with a Map under random inserts and erases (seeded)", () => {
    const xa = boot();
    const e = kmalloc(8, GFP_KERNEL);
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.boolean(), fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 40 }))),
          {
            maxLength: 60,
          },
        ),
        (ops) => {
          const model = new Set<number>();
          for (const [insert, i] of ops) {
            if (insert) expect(xa_insert(xa, i, e, GFP_KERNEL)).toBe(model.has(i) ? -EBUSY : 0);
            else expect(xa_erase(xa, i)).toBe(model.has(i) ? e : 0);
            if (insert) model.add(i);
            else model.delete(i);
          }
          const seen: number[] = [];
          xa_for_each(xa, (i) => seen.push(i));
          expect(seen).toEqual([...model].sort((a, b) => a - b));
          for (const i of model) xa_erase(xa, i);
          expect(xa_nr_nodes(xa)).toBe(0);
        },
      ),
      { seed: 20261206, numRuns: 100 },
    );
    rcu_barrier();
    expect(takeReports()).toEqual([]);
  });
});
