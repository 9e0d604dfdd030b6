/**
 * Generation 3's checker (src/check/v6.12/vmalloc.ts): after real workloads
 * on a `--kernel 6.12` machine every invariant holds, and each one fails when
 * the arena is corrupted on purpose — the violation names that invariant and
 * that object.
 *
 * The corruption tests run kernel code on the main thread of a 2-CPU, 16 MiB
 * arm64-va48 machine: two vmap nodes, zones of 16 pages, so a node's size
 * pools fill once the drain work (drain_vmap_area_work: purge without a full
 * pool decay) returns lazily freed areas allocated through node_alloc.
 */
import { afterEach, describe, expect, it } from "vitest";
import { F64, I32, per_cpu_ptr, theArena } from "../src/shared/arena.js";
import { PAGE_SIZE, layoutOf, makeConfig } from "../src/shared/config.js";
import { formatKaddr } from "../src/shared/layouts.js";
import { Prng } from "../src/shared/prng.js";
import { takeReports } from "../src/shared/report.js";
import { setCurrentCpu } from "../src/shared/smp.js";
import { list_add, list_next } from "../src/lib/list.js";
import { RB_NODE, RB_ROOT, rb_insert_color, rb_link_node } from "../src/lib/rbtree.js";
import { atomic_long_add } from "../src/locks/atomic.js";
import { mutex_lock, mutex_unlock } from "../src/locks/mutex.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { slabinfo } from "../src/mm/slab.js";
import { purge_vmap_area_lazy, vfree, vmalloc } from "../src/mm/vmalloc.js";
import {
  BUSY_HEAD,
  BUSY_ROOT,
  LAZY_HEAD,
  LAZY_ROOT,
  VMAP_AREA,
  VMAP_NODE,
  VMAP_POOL,
  __purge_vmap_area_lazy,
  __vmalloc_node,
  addr_to_node_id,
  free_vmap_area_root,
  ne_fit_preload_node,
  nrVmapNodes,
  poolAreas,
  unlink_va,
  va_end,
  va_flags,
  va_start,
  vmapNode,
  vmap_lazy_nr,
  vmap_purge_lock,
} from "../src/mm/v6.12/vmalloc.js";
import { leakCheck, memorySnapshot } from "../src/check/leak.js";
import { checkMachine, checkVmalloc } from "../src/check/index.js";
import { start_kernel } from "../src/workers/boot.js";
import { randomExecOnTwoCpus } from "./helpers/random_exec.js";

const VA = VMAP_AREA.off;
const ptr = (p: number) => `0x${p.toString(16).padStart(8, "0")}`;
const hex = (kaddr: number) => formatKaddr(layoutOf(theArena().config), kaddr);
/** How the checker names an area (its current bounds). */
const name = (va: number) => `va ${ptr(va)} [${hex(va_start(va))}-${hex(va_end(va))})`;

function boot(cpus: number): void {
  start_kernel(makeConfig({ kernel: "6.12", cpus, memory: 16 * 1024 * 1024, workqueue: "explicit" }));
  percpuCpuOnline();
}

/** drain_vmap_area_work's body: every lazy area purged, the pools decayed by a quarter, not emptied. */
function drain(): void {
  mutex_lock(vmap_purge_lock.ptr);
  __purge_vmap_area_lazy(Number.MAX_VALUE, -Number.MAX_VALUE, false);
  mutex_unlock(vmap_purge_lock.ptr);
}

/** The first pooled area: [node, pool index, va]. */
function firstPooled(): [number, number, number] {
  for (let n = 0; n < nrVmapNodes(); n++)
    for (let i = 0; i < 256; i++) {
      const vas = poolAreas(n, i);
      if (vas.length > 0) return [n, i, vas[0]!];
    }
  throw new Error("no pooled area");
}

/**
 * A 2-CPU scene: areas vmalloc'ed on both CPUs, half freed and drained into
 * the pools, three big ones freed back to the free tree, one freed and lazy.
 */
function scene(): { lazy: number; busy: number } {
  boot(2);
  const addrs: number[] = [];
  for (let i = 0; i < 12; i++) {
    setCurrentCpu(i % 2);
    addrs.push(vmalloc((1 + (i % 3)) * PAGE_SIZE));
  }
  setCurrentCpu(0);
  // Three areas too big for a pool (over 256 pages), kept apart by small busy ones: free blocks of their own.
  for (let i = 0; i < 3; i++) {
    vfree(vmalloc(300 * PAGE_SIZE));
    vmalloc(PAGE_SIZE);
  }
  for (let i = 0; i < 12; i += 2) vfree(addrs[i]!);
  drain();
  vfree(addrs[1]!);
  expect(checkMachine()).toEqual([]);
  return { lazy: addrs[1]!, busy: addrs[3]! };
}

/** The busy or lazy area starting at `addr`, and the node whose tree holds it. */
function areaAt(addr: number, tree: number): [number, number] {
  for (let n = 0; n < nrVmapNodes(); n++) {
    const head = vmapNode(n) + (tree === BUSY_ROOT ? BUSY_HEAD : LAZY_HEAD);
    for (let e = list_next(head); e !== head; e = list_next(e))
      if (va_start(e - VA.list) === addr) return [e - VA.list, n];
  }
  throw new Error(`no area at ${hex(addr)}`);
}

/** insert_vmap_area's effect on node `n`'s tree `tree` (BUSY_ROOT or LAZY_ROOT): a plain rb_list insert. */
function insertInto(va: number, n: number, tree: number): void {
  const root = vmapNode(n) + tree;
  const head = vmapNode(n) + (tree === BUSY_ROOT ? BUSY_HEAD : LAZY_HEAD);
  let link = root + RB_ROOT.off.rb_node;
  let parent = 0;
  while (I32[link >> 2] !== 0) {
    parent = I32[link >> 2]!;
    link = parent + (va_start(va) < va_start(parent - VA.rb_node) ? RB_NODE.off.rb_left : RB_NODE.off.rb_right);
  }
  rb_link_node(va + VA.rb_node, parent, link);
  rb_insert_color(va + VA.rb_node, root);
  let after = head;
  for (let e = list_next(head); e !== head && va_start(e - VA.list) < va_start(va); e = list_next(e)) after = e;
  list_add(va + VA.list, after);
}

/** The root of the free tree: its subtree_max_size no other node's value depends on. */
function freeRoot(): number {
  return I32[(free_vmap_area_root.ptr + RB_ROOT.off.rb_node) >> 2]! - VA.rb_node;
}

afterEach(() => {
  takeReports();
});

describe("v6.12: after real workloads every invariant holds", () => {
  it("on the main thread of 4 CPUs: vmallocs and aligned ones from every CPU, lazy frees, drains that fill the pools, a full purge", () => {
    boot(4);
    const rng = new Prng(13, 0);
    const live: number[] = [];
    let pooledSeen = 0;
    for (let i = 0; i < 600; i++) {
      if (i % 25 === 0) setCurrentCpu(rng.int(0, 3));
      if (live.length > 0 && rng.chance(0.45)) vfree(live.splice(rng.int(0, live.length - 1), 1)[0]!);
      else {
        const size = rng.int(1, 40_000);
        const addr = rng.chance(0.2) ? __vmalloc_node(size, PAGE_SIZE << rng.int(1, 6), GFP_KERNEL, -1) : vmalloc(size);
        if (addr !== 0) live.push(addr);
      }
      if (i % 40 === 39) drain();
      if (i % 100 === 99) {
        expect(checkMachine()).toEqual([]);
        for (let n = 0; n < nrVmapNodes(); n++) for (let p = 0; p < 256; p++) pooledSeen += poolAreas(n, p).length;
      }
    }
    expect(pooledSeen).toBeGreaterThan(0);
    purge_vmap_area_lazy();
    expect(checkMachine()).toEqual([]);
    for (const addr of live) vfree(addr);
    purge_vmap_area_lazy();
    expect(checkMachine()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });

  it("on 2 CPUs running seeded random exec ops at once, aligned and irq-context ones included (seed 14)", async () => {
    await randomExecOnTwoCpus("6.12", 14);
  });
});

describe("v6.12: the leak check", () => {
  it("does not count the per-CPU spare vmap_areas (ne_fit_preload_node) as leaked", () => {
    boot(2);
    const raw = () => slabinfo().find((c) => c.name === "vmap_area")!.active_objs;
    const start = memorySnapshot();
    const rawStart = raw();
    expect(I32[per_cpu_ptr(ne_fit_preload_node, 0) >> 2]).toBe(0);
    // alloc_vmap_area preloads CPU0 with a spare when it has none: a no-edge split takes it, an edge fit leaves it.
    const a = vmalloc(3 * PAGE_SIZE);
    vfree(vmalloc(3 * PAGE_SIZE));
    vfree(a);
    purge_vmap_area_lazy();
    const end = memorySnapshot();
    expect(I32[per_cpu_ptr(ne_fit_preload_node, 0) >> 2]).not.toBe(0);
    expect(raw()).toBe(rawStart + 1);
    expect(leakCheck(start, end).violations).toEqual([]);
  });
});

describe("v6.12: each invariant can fail", () => {
  it("pool accounting: a pool's len one more than its list holds", () => {
    scene();
    const [n, i] = firstPooled();
    const len = vmapNode(n) + VMAP_NODE.off.pool + i * VMAP_POOL.size + VMAP_POOL.off.len;
    const had = I32[len >> 2]!;
    I32[len >> 2] = had + 1;
    expect(checkVmalloc()).toEqual([`vmap_nodes[${n}].pool[${i}]: len ${had + 1}, its list holds ${had} areas`]);
  });

  it("pool accounting: a pooled area that encodes another node", () => {
    scene();
    const [n, i, va] = firstPooled();
    const other = 1 - n;
    I32[(va + VA.flags) >> 2] = (va_flags(va) & 0xff) | ((other + 1) << 8);
    expect(checkVmalloc()).toEqual([`vmap_nodes[${n}].pool[${i}]: ${name(va)} encodes node ${other}`]);
  });

  it("pool accounting: a pooled area one page short of its pool's size leaves a gap", () => {
    scene();
    const [n, i, va] = firstPooled();
    const end = va_end(va);
    F64[(va + VA.va_end) >> 3] = end - PAGE_SIZE;
    expect(checkVmalloc()).toEqual([
      `vmap_nodes[${n}].pool[${i}]: ${name(va)} is not ${i + 1} pages`,
      expect.stringMatching(
        new RegExp(`^tiling: \\[${hex(end - PAGE_SIZE)}-${hex(end)}\\) is in no tree, list or pool`),
      ),
    ]);
  });

  it("per-node accounting: a busy area on the node next to the one addr_to_node names", () => {
    const { busy } = scene();
    const [va, n] = areaAt(busy, BUSY_ROOT);
    unlink_va(va, vmapNode(n) + BUSY_ROOT);
    insertInto(va, 1 - n, BUSY_ROOT);
    expect(addr_to_node_id(busy)).toBe(n);
    expect(checkVmalloc()).toEqual([
      `vmap_nodes[${1 - n}].busy: ${name(va)} is on node ${1 - n}, addr_to_node says ${n}`,
    ]);
  });

  it("per-node accounting: a lazy area on a node other than its vn_id's", () => {
    const { lazy } = scene();
    const [va, n] = areaAt(lazy, LAZY_ROOT);
    unlink_va(va, vmapNode(n) + LAZY_ROOT);
    insertInto(va, 1 - n, LAZY_ROOT);
    expect(checkVmalloc()).toEqual([
      `vmap_nodes[${1 - n}].lazy: ${name(va)} is on node ${1 - n}, free_vmap_area_noflush puts it on ${n} (its vn_id)`,
    ]);
  });

  it("tiling and vmap_lazy_nr: a lazy area unlinked from its tree", () => {
    const { lazy } = scene();
    const [va, n] = areaAt(lazy, LAZY_ROOT);
    const pages = (va_end(va) - va_start(va)) / PAGE_SIZE;
    unlink_va(va, vmapNode(n) + LAZY_ROOT);
    expect(checkVmalloc()).toEqual([
      expect.stringMatching(/^vmap_lazy_nr: \d+, but the \d+ areas on the lazy trees span \d+ pages$/),
      expect.stringMatching(new RegExp(`^tiling: \\[${hex(lazy)}-${hex(lazy + pages * PAGE_SIZE)}\\) is in no tree`)),
    ]);
    atomic_long_add(-pages, vmap_lazy_nr.ptr);
    expect(checkVmalloc()).toHaveLength(1);
  });

  it("augmented values: a free block's subtree_max_size one page too big (DEBUG_AUGMENT_PROPAGATE_CHECK)", () => {
    scene();
    const va = freeRoot();
    const right = F64[(va + VA.subtree_max_size) >> 3]!;
    F64[(va + VA.subtree_max_size) >> 3] = right + PAGE_SIZE;
    expect(checkVmalloc()).toEqual([
      `free_vmap_area_root: ${name(va)} has subtree_max_size ${right + PAGE_SIZE}, its subtree's largest is ${right}`,
    ]);
  });

  it("a busy area with neither a vm_struct nor VMAP_RAM", () => {
    const { busy } = scene();
    const [va] = areaAt(busy, BUSY_ROOT);
    I32[(va + VA.vm) >> 2] = 0;
    expect(checkVmalloc()).toContain(
      `vmap_nodes[${addr_to_node_id(busy)}].busy: ${name(va)} has no vm_struct and is not VMAP_RAM`,
    );
  });
});
