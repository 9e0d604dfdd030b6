/**
 * v6.12's mm/vmalloc.c (generation 3, src/mm/v6.12/vmalloc.ts) on the main
 * thread standing in for a CPU, at exact addresses: the KVA free tree and its
 * lowest fit, the vmap nodes (zone hash, busy and lazy trees), the size
 * pools and their decay, the lazy drain through purge_vmap_node,
 * find_unlink_vmap_area, /proc/vmallocinfo, the vmap-node shrinker.
 *
 * Maps are drawn one column per 4 KiB page from V = VMALLOC_START; "." is a
 * guard page, "-" free space, "I" the kernel image's first segment.
 */
import { afterEach, describe, expect, it } from "vitest";
import { I32 } from "../src/shared/arena.js";
import { PAGE_SIZE, layoutOf, makeConfig } from "../src/shared/config.js";
import { type LayoutName, layoutFor } from "../src/shared/layouts.js";
import { takeReports } from "../src/shared/report.js";
import { setCurrentCpu } from "../src/shared/smp.js";
import { SP_LOCK, type SlowPath, addSchedSlowPath, removeSchedSlowPath } from "../src/sched/sched_point.js";
import { start_kernel } from "../src/workers/boot.js";
import { __free_page, alloc_page } from "../src/mm/page_alloc.js";
import { slabinfo } from "../src/mm/slab.js";
import { rcu_cpu_starting } from "../src/rcu/tree.js";
import { run_pending_work, work_pending } from "../src/kernel/workqueue.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { mutex_lock, mutex_unlock } from "../src/locks/mutex.js";
import { GFP_KERNEL, __GFP_NOWARN } from "../src/mm/gfp.js";
import { mmuRead, mmuWrite } from "../src/mm/mmu.js";
import { registeredShrinkers } from "../src/mm/shrinker.js";
import {
  FL_FIT_TYPE,
  LE_FIT_TYPE,
  NE_FIT_TYPE,
  NOTHING_FIT,
  RE_FIT_TYPE,
  VMAP_AREA,
  VM_ALLOC,
  __purge_vmap_area_lazy,
  addr_to_node_id,
  alloc_vmap_area,
  classify_va_fit_type,
  compute_subtree_max_size,
  drain_vmap_work,
  find_unlink_vmap_area,
  find_vm_area,
  find_vmap_area,
  forEachInTree,
  free_vm_area,
  free_vmap_area_list,
  free_vmap_area_noflush,
  free_vmap_area_root,
  freeBlocks,
  get_vm_area,
  get_vmalloc_info,
  lazyAreas,
  lazy_max_pages,
  lowestMatchCheck,
  nePreloadSpares,
  nrVmapNodes,
  pcpu_free_vm_areas,
  pcpu_get_vm_areas,
  poolAreas,
  poolLen,
  purge_vmap_area_lazy,
  va_flags,
  va_start,
  va_subtree_max_size,
  vfree,
  vmalloc,
  vmallocinfo,
  vmap_lazy_nr_read,
  vmap_purge_lock,
  vmap_zone_size,
  vread_iter,
  vwrite,
  vzalloc,
} from "../src/mm/v6.12/vmalloc.js";

const P = PAGE_SIZE;

/** Boots a machine of kernel 6.12 on the main thread (CPU 0) with RCU and the kworker hooked in; deferred work runs when a test says. */
function boot(layout: LayoutName, cpus = 1) {
  const config = makeConfig({ kernel: "6.12", cpus, layout, workqueue: "explicit" });
  start_kernel(config);
  rcu_cpu_starting(0);
  percpuCpuOnline();
  takeReports();
  return layoutOf(config).vmallocStart;
}

const full = (layout: LayoutName, kaddr: number) =>
  `0x${(layoutFor("6.12", layout).base + BigInt(kaddr)).toString(16).padStart(layoutFor("6.12", layout).vaBits > 32 ? 16 : 8, "0")}`;

/**
 * The free blocks that intersect [v, v + pages), as [start, end) page numbers
 * from v; "…" for an end out of the window (the free space starts at 1).
 */
function freeIn(v: number, pages: number): string[] {
  return freeBlocks()
    .filter(([s, e]) => e > v && s < v + pages * P)
    .map(([s, e]) => `[${s >= v ? (s - v) / P : "…"},${(e - v) / P < 1e6 ? (e - v) / P : "…"})`);
}

afterEach(() => {
  takeReports();
});

describe("the KVA allocator (one node)", () => {
  it("boots with the image's segments busy and [1, ULONG_MAX) less them free", () => {
    const v = boot("arm64-va48");
    expect(nrVmapNodes()).toBe(1);
    // The 64 KiB below _stext is the first free block of the vmalloc area; the image ends at
    // 0xfb3000 plus the data segment's guard page.
    const blocks = freeBlocks();
    expect(blocks.length).toBe(2);
    expect(blocks[0]![1]).toBe(v + 0x10000);
    expect(blocks[1]![0]).toBe(v + 0xfb4000);
    expect(blocks[1]![1]).toBe(2 ** 48 - 1); // ULONG_MAX as a kaddr
    expect(vmallocinfo()).toEqual([
      `${full("arm64-va48", v + 0x10000)}-${full("arm64-va48", v + 0x9a0000)} 10027008 paging_init phys=0x0000000040010000 vmap`,
      `${full("arm64-va48", v + 0x9a0000)}-${full("arm64-va48", v + 0xd20000)} 3670016 paging_init phys=0x00000000409a0000 vmap`,
      `${full("arm64-va48", v + 0xd20000)}-${full("arm64-va48", v + 0xdd0000)}  720896 paging_init phys=0x0000000040d20000 vmap`,
      `${full("arm64-va48", v + 0xdd0000)}-${full("arm64-va48", v + 0xea0000)}  851968 paging_init phys=0x0000000040dd0000 vmap`,
      `${full("arm64-va48", v + 0xea0000)}-${full("arm64-va48", v + 0xfb4000)} 1130496 paging_init phys=0x0000000040ea0000 vmap`,
    ]);
    expect(registeredShrinkers()).toEqual(["vmap-node"]);
  });

  it("lowest fit: small areas fill the hole below _stext, a bigger one goes past the image", () => {
    /*
     *  page  0 1 2 3 4 5 6 7 8 9 a b c d e f | image …
     *        a . b b . - - - - - - - - - - - | I
     */
    const v = boot("arm64-va48");
    const a = vmalloc(P);
    const b = vmalloc(2 * P);
    const c = vmalloc(12 * P); // 13 pages with its guard: the 11 left below _stext are too few
    expect([a - v, b - v, c - v]).toEqual([0, 2 * P, 0xfb4000]);
    expect(freeIn(v, 16)).toEqual(["[5,16)"]);
    const d = vmalloc(10 * P); // exactly the 11 pages left: a full fit, the block leaves the tree
    expect(d - v).toBe(5 * P);
    expect(freeIn(v, 16)).toEqual([]);
    expect(takeReports()).toEqual([]);
  });

  it("vfree is lazy: the area stays out of the free tree until a purge merges it back", () => {
    const v = boot("arm64-va48");
    const a = vmalloc(P);
    const b = vmalloc(P);
    vfree(a);
    expect(find_vmap_area(a)).toBe(0);
    expect(lazyAreas(0).map((va) => va_start(va) - v)).toEqual([0]);
    expect(vmap_lazy_nr_read()).toBe(2);
    expect(freeIn(v, 16)).toEqual(["[4,16)"]);
    expect(vmalloc(P) - v).toBe(4 * P); // the lazy range is not reused before the purge
    purge_vmap_area_lazy();
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(freeIn(v, 16)).toEqual(["[…,2)", "[6,16)"]);
    vfree(b);
    purge_vmap_area_lazy();
    // b's range merged with the block below it (the free space from 1 up to V + 2 pages).
    expect(freeIn(v, 16)).toEqual(["[…,4)", "[6,16)"]);
  });

  it("an alignment past PAGE_SIZE adjusts the search length, except for an exact [vstart, vend) fit", () => {
    const v = boot("arm32");
    const align = 16 * P;
    // The whole area is free on arm32: an aligned area lands at the first aligned address.
    const va = alloc_vmap_area(4 * P, align, v + P, v + 64 * P, -1, GFP_KERNEL, 0, 0);
    expect(va_start(va) - v).toBe(16 * P);
    // Exactly [vstart, vend) of the requested size, aligned: found without the adjusted length.
    const exact = alloc_vmap_area(16 * P, align, v + 32 * P, v + 48 * P, -1, GFP_KERNEL, 0, 0);
    expect(va_start(exact) - v).toBe(32 * P);
  });

  it("classifies the four fit types", () => {
    const v = boot("arm32");
    const va = alloc_vmap_area(8 * P, P, v, v + 64 * P, -1, GFP_KERNEL, 0, 0);
    expect(classify_va_fit_type(va, v, 8 * P)).toBe(FL_FIT_TYPE);
    expect(classify_va_fit_type(va, v, 2 * P)).toBe(LE_FIT_TYPE);
    expect(classify_va_fit_type(va, v + 6 * P, 2 * P)).toBe(RE_FIT_TYPE);
    expect(classify_va_fit_type(va, v + 2 * P, 2 * P)).toBe(NE_FIT_TYPE);
    expect(classify_va_fit_type(va, v + 7 * P, 2 * P)).toBe(NOTHING_FIT);
  });

  it("keeps subtree_max_size right and the tree's lowest match equal to the list's (DEBUG_AUGMENT_*_CHECK)", () => {
    const v = boot("arm32");
    let seed = 12345;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const live: number[] = [];
    for (let step = 0; step < 400; step++) {
      if (live.length > 0 && rand(3) === 0) {
        vfree(live.splice(rand(live.length), 1)[0]!);
        if (rand(4) === 0) purge_vmap_area_lazy();
      } else {
        const addr = vmalloc((1 + rand(6)) * P);
        expect(addr).not.toBe(0);
        live.push(addr);
      }
      const size = (1 + rand(8)) * P;
      const align = 2 ** rand(6) * P;
      const vstart = v + rand(4096) * P;
      const m = lowestMatchCheck(size, align, vstart);
      expect(m.tree).toBe(m.list);
    }
    forEachInTree(free_vmap_area_root.ptr, (va) => {
      expect(va_subtree_max_size(va)).toBe(compute_subtree_max_size(va));
    });
    // The list is the tree in order.
    const inOrder: number[] = [];
    forEachInTree(free_vmap_area_root.ptr, (va) => inOrder.push(va));
    const listed: number[] = [];
    for (let e = I32[free_vmap_area_list.ptr >> 2]!; e !== free_vmap_area_list.ptr; e = I32[e >> 2]!)
      listed.push(e - VMAP_AREA.off.list);
    expect(listed).toEqual(inOrder);
    expect(takeReports()).toEqual([]);
  });
});

describe("what the kernel keeps", () => {
  it("after every area is freed and purged, vmap_area_cachep holds the boot objects and the preloaded spares", () => {
    const v = boot("arm64-va48", 2);
    const objects = () => slabinfo().find((c) => c.name === "vmap_area")!.active_objs;
    // The image's five segments and the two free blocks around them.
    expect(objects()).toBe(7);
    expect(nePreloadSpares()).toBe(0);
    const areas = [vmalloc(P), vmalloc(3 * P), vmalloc(20 * P)];
    setCurrentCpu(1);
    rcu_cpu_starting(1);
    areas.push(vmalloc(P));
    for (const a of areas) vfree(a);
    setCurrentCpu(0);
    purge_vmap_area_lazy();
    expect(freeIn(v, 16)).toEqual(["[…,16)"]);
    // Each CPU split a free block with no edge (its preload used) and preloaded again on its next call.
    expect(nePreloadSpares()).toBe(2);
    expect(objects()).toBe(7 + nePreloadSpares());
  });
});

describe("vmap nodes", () => {
  it("one node per possible CPU on 64-bit, zones of 16 pages hashed on the full address", () => {
    const v = boot("arm64-va48", 3);
    expect(nrVmapNodes()).toBe(3);
    expect(I32[vmap_zone_size.ptr >> 2]).toBe(16 * P);
    // VMALLOC_START / 0x10000 mod 3 over the full address, not the kaddr.
    const zone0 = Number(((layoutFor("6.12", "arm64-va48").base + BigInt(v)) / 0x10000n) % 3n);
    expect(addr_to_node_id(v)).toBe(zone0);
    expect(addr_to_node_id(v + 16 * P)).toBe((zone0 + 1) % 3);
    expect(addr_to_node_id(v + 47 * P)).toBe((zone0 + 2) % 3);
    // 32-bit: one node whatever the CPUs.
    boot("arm32", 3);
    expect(nrVmapNodes()).toBe(1);
  });

  it("find_vmap_area finds an area from an address in a later zone; find_unlink takes it out", () => {
    const v = boot("arm64-va48", 2);
    // 21 pages do not fit below _stext: the area starts right past the image, at page 0xfb4 (4020 =
    // 251 * 16 + 4), and crosses into the next 16-page zone, another node.
    const vm = get_vm_area(20 * P, VM_ALLOC);
    const start = v + 0xfb4000;
    expect(find_vm_area(start)).toBe(vm);
    expect(addr_to_node_id(start + 18 * P)).not.toBe(addr_to_node_id(start));
    const va = find_vmap_area(start + 18 * P);
    expect(va_start(va)).toBe(start);
    expect(find_unlink_vmap_area(start + 18 * P)).toBe(va);
    expect(find_vmap_area(start)).toBe(0);
    expect(find_vm_area(start)).toBe(0);
    free_vmap_area_noflush(va);
    // Allocated on CPU 0 through node_alloc: lazily freed to node 0, whatever its address's node.
    expect(lazyAreas(0)).toEqual([va]);
    expect(takeReports()).toEqual([]);
  });

  it("vmallocinfo lists node 0's busy areas, then node 1's, then the unpurged ones", () => {
    const v = boot("arm64-va48", 2);
    const n0 = addr_to_node_id(v);
    // Zone 0 of V is [V, V+16P), zone 1 [V+16P, …): the image's .text starts in zone 1.
    const a = vmalloc(P); // [0,2) zone of V
    const b = vmalloc(P); // [2,4)
    vfree(a);
    const lines = vmallocinfo();
    const mine = lines.filter((l) => l.includes(" vmalloc ") || l.endsWith("vm_area"));
    const line = (s: number, e: number, tail: string) =>
      `${full("arm64-va48", s)}-${full("arm64-va48", e)} ${String(e - s).padStart(7)} ${tail}`;
    expect(mine).toEqual([line(b, b + 2 * P, "vmalloc pages=1 vmalloc"), line(a, a + 2 * P, "unpurged vm_area")]);
    // The image's text segment sits in the other node: its line comes after every line of V's node.
    const text = lines.findIndex((l) => l.includes("10027008"));
    const bLine = lines.findIndex((l) => l.startsWith(full("arm64-va48", b)));
    expect(text > bLine).toBe(n0 === 0);
  });
});

describe("size pools", () => {
  it("a purged area of a node-allocated VA goes to its node's pool and is reused ahead of a lower free hole", () => {
    /*
     *  page  0 1 2 3 4 5
     *        a . b . c .      vfree a, reclaim_and_purge (pools off: a back to the free tree)
     *        - - b . c .      vfree c, drain work (pools kept: c to node 0's pool of 2-page VAs)
     *        - - b . ~ ~      vmalloc(P) → c's range from the pool, not the lower hole at 0
     */
    const v = boot("arm64-va48", 2);
    const a = vmalloc(P);
    const b = vmalloc(P);
    const c = vmalloc(P);
    expect([a - v, b - v, c - v]).toEqual([0, 2 * P, 4 * P]);
    // Allocated on CPU 0 through node_alloc: va->flags carries node 0, encoded as 1 << 8.
    expect(va_flags(find_vmap_area(a))).toBe(1 << 8);
    vfree(a);
    purge_vmap_area_lazy();
    expect(poolLen(0, 1)).toBe(0);
    vfree(c);
    mutex_lock(vmap_purge_lock.ptr);
    __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0, false);
    mutex_unlock(vmap_purge_lock.ptr);
    expect(poolAreas(0, 1).map((va) => va_start(va) - v)).toEqual([4 * P]);
    expect(poolLen(0, 1)).toBe(1);
    expect(vmalloc(P) - v).toBe(4 * P);
    expect(poolLen(0, 1)).toBe(0);
    expect(vmalloc(P) - v).toBe(0); // pool empty: the lowest fit again
    expect(takeReports()).toEqual([]);
  });

  it("a CPU's VAs go to its own node's pool", () => {
    const v = boot("arm64-va48", 2);
    setCurrentCpu(1);
    rcu_cpu_starting(1);
    const a = vmalloc(P);
    expect(va_flags(find_vmap_area(a))).toBe(2 << 8);
    vfree(a);
    setCurrentCpu(0);
    mutex_lock(vmap_purge_lock.ptr);
    __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0, false);
    mutex_unlock(vmap_purge_lock.ptr);
    expect(poolAreas(1, 1).map((va) => va_start(va) - v)).toEqual([0]);
    expect(poolLen(0, 1)).toBe(0);
    // CPU 0 takes from node 0's pool (empty): the free tree, whose lowest fit is past a's range.
    expect(vmalloc(P) - v).toBe(2 * P);
  });

  it("decay: a drain gives back a quarter of a pool of 4 or more, all of a smaller one; reclaim all", () => {
    const v = boot("arm64-va48", 2);
    const areas = Array.from({ length: 6 }, () => vmalloc(P)); // pages 0..11
    expect(areas.map((x) => (x - v) / P)).toEqual([0, 2, 4, 6, 8, 10]);
    const drain = () => {
      mutex_lock(vmap_purge_lock.ptr);
      __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0, false);
      mutex_unlock(vmap_purge_lock.ptr);
    };
    for (const x of areas.slice(0, 5)) vfree(x);
    drain(); // purge_vmap_node: all five into the pool (list_add: the last added is first)
    expect(poolAreas(0, 1).map((va) => (va_start(va) - v) / P)).toEqual([8, 6, 4, 2, 0]);
    drain(); // decay 5 >> 2 = 1: the first one (page 8) goes back to the free tree
    expect(poolAreas(0, 1).map((va) => (va_start(va) - v) / P)).toEqual([6, 4, 2, 0]);
    expect(poolLen(0, 1)).toBe(4);
    expect(freeIn(v, 16)).toEqual(["[8,10)", "[12,16)"]);
    drain(); // 4 >> 2 = 1
    expect(poolLen(0, 1)).toBe(3);
    drain(); // 3 >> 2 = 0: --n_decay never reaches 0 again, the whole pool decays
    expect(poolLen(0, 1)).toBe(0);
    expect(poolAreas(0, 1)).toEqual([]);
    expect(freeIn(v, 16)).toEqual(["[…,10)", "[12,16)"]);
    vfree(areas[5]!);
    drain();
    expect(poolLen(0, 1)).toBe(1);
    purge_vmap_area_lazy(); // reclaim_and_purge: pools fully decayed
    expect(poolLen(0, 1)).toBe(0);
    expect(freeIn(v, 16)).toEqual(["[…,16)"]);
  });

  it("the vmap-node shrinker empties the pools when a page allocation fails", () => {
    const v = boot("arm64-va48", 2);
    const a = vmalloc(P);
    vfree(a);
    mutex_lock(vmap_purge_lock.ptr);
    __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0, false);
    mutex_unlock(vmap_purge_lock.ptr);
    expect(poolLen(0, 1)).toBe(1);
    // Exhaust the buddy allocator: the failing allocation runs reclaim's shrink_slab.
    const pages: number[] = [];
    for (let p = alloc_page(GFP_KERNEL | __GFP_NOWARN); p; p = alloc_page(GFP_KERNEL | __GFP_NOWARN)) pages.push(p);
    expect(poolLen(0, 1)).toBe(0);
    expect(freeIn(v, 16)).toEqual(["[…,16)"]);
    for (const p of pages) __free_page(p);
  });

  it("decay finds the pool emptied between its lockless look and pool_lock: it detaches an empty list", () => {
    /*
     * CPU0 (drain, vmap_purge_lock)          another CPU
     * decay: list_empty(pool) → no
     *                                        node_alloc: node_pool_del_va takes the last VA
     * spin_lock(pool_lock); list_replace_init(pool, tmp): tmp must be empty,
     * not a list holding the pool head (walked as a vmap_area before the fix)
     */
    const v = boot("arm64-va48", 2);
    const a = vmalloc(P);
    vfree(a);
    const drain = () => {
      mutex_lock(vmap_purge_lock.ptr);
      __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0, false);
      mutex_unlock(vmap_purge_lock.ptr);
    };
    drain();
    expect(poolAreas(0, 1).map((va) => va_start(va) - v)).toEqual([a - v]);
    let taken = 0;
    // The drain's first lock point is decay's spin_lock(&vn->pool_lock), after its lockless list_empty.
    const takeFromPool: SlowPath = (kind) => {
      if (kind !== SP_LOCK || taken) return;
      removeSchedSlowPath(takeFromPool);
      taken = vmalloc(P); // the pool's one VA, through node_alloc
    };
    mutex_lock(vmap_purge_lock.ptr);
    addSchedSlowPath(takeFromPool, 1);
    try {
      __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0, false);
    } finally {
      removeSchedSlowPath(takeFromPool);
      mutex_unlock(vmap_purge_lock.ptr);
    }
    expect(taken).toBe(a);
    expect(poolLen(0, 1)).toBe(0);
    expect(poolAreas(0, 1)).toEqual([]);
    expect(takeReports()).toEqual([]);
    vfree(taken);
    purge_vmap_area_lazy();
    expect(freeIn(v, 16)).toEqual(["[…,16)"]);
    expect(takeReports()).toEqual([]);
  });
});

describe("the lazy drain", () => {
  it("past lazy_max_pages free_vmap_area_noflush schedules drain_vmap_work, which purges", () => {
    const v = boot("arm64-va48");
    const max = lazy_max_pages();
    expect(max).toBe(8192); // fls(1) * 32 MiB of pages
    const vm = get_vm_area(max * P, VM_ALLOC); // no pages behind it: max + 1 pages with the guard
    expect(vm).not.toBe(0);
    free_vm_area(vm);
    expect(vmap_lazy_nr_read()).toBe(max + 1);
    expect(work_pending(drain_vmap_work.ptr)).toBe(true);
    expect(run_pending_work()).toBe(1);
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(lazyAreas(0)).toEqual([]);
    expect(freeIn(v, 16)).toEqual(["[…,16)"]);
  });

  it("with a backlog of two lazy_max_pages one node is purged by a helper work item", () => {
    boot("arm64-va48", 2);
    const max = lazy_max_pages(); // fls(2) * 8192
    expect(max).toBe(16384);
    // One big area through each CPU's node, 2 * max pages in all: nr_purge_helpers = 2 - 1.
    const x = get_vm_area(max * P, VM_ALLOC);
    setCurrentCpu(1);
    rcu_cpu_starting(1);
    const y = get_vm_area(max * P, VM_ALLOC);
    setCurrentCpu(0);
    free_vm_area(x);
    free_vm_area(y);
    expect(vmap_lazy_nr_read()).toBe(2 * (max + 1));
    const lazyNodes = [0, 1].filter((n) => lazyAreas(n).length > 0);
    expect(lazyNodes.length).toBeGreaterThan(0);
    expect(run_pending_work()).toBe(1); // drain_vmap_work; the helper on CPU 0's pool ran nested in its flush_work
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(lazyAreas(0).length + lazyAreas(1).length).toBe(0);
    expect(takeReports()).toEqual([]);
  });
});

describe("vm_struct layer", () => {
  it("vzalloc, write through the page tables, vread_iter and vwrite", () => {
    const v = boot("arm64-va48");
    const a = vzalloc(2 * P);
    expect(a - v).toBe(0);
    expect(mmuWrite(a + P + 8, new Uint8Array([0x5a]))).toBe(true);
    const buf = new Uint8Array(16);
    expect(vread_iter(buf, a + P, 16)).toBe(16);
    expect(buf[8]).toBe(0x5a);
    expect(vwrite(new Uint8Array([1, 2, 3]), a + 4, 3)).toBe(3);
    expect(mmuRead(a + 4, 3)).toEqual(new Uint8Array([1, 2, 3]));
    // 6.12 zero-fills what no area covers and still returns count.
    const hole = new Uint8Array(8).fill(7);
    expect(vread_iter(hole, v + 8 * P, 8)).toBe(8);
    expect([...hole]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(get_vmalloc_info().VmallocUsed).toBe(8);
    vfree(a);
    expect(get_vmalloc_info().VmallocUsed).toBe(0);
  });

  it("vfree of an address that is no area warns and changes nothing", () => {
    const v = boot("arm64-va48");
    const a = vmalloc(P);
    vfree(a + 4 * P);
    const r = takeReports();
    expect(r.map((x) => x.text)).toEqual([`Trying to vfree() nonexistent vm area (${full("arm64-va48", a + 4 * P)})`]);
    expect(find_vm_area(a)).not.toBe(0);
    expect(a - v).toBe(0);
  });

  it("pcpu_get_vm_areas clips congruent areas from the top of the free space", () => {
    const v = boot("arm32");
    const end = layoutFor("6.12", "arm32").vmallocEnd;
    const vms = pcpu_get_vm_areas([0, 8 * P], [4 * P, 4 * P], 2, P);
    expect(vms).not.toBe(0);
    const a0 = find_vmap_area(end - 12 * P);
    const a1 = find_vmap_area(end - 4 * P);
    expect(va_start(a0)).toBe(end - 12 * P);
    expect(va_start(a1)).toBe(end - 4 * P);
    expect(vmalloc(P)).toBe(v); // ordinary vmallocs still start at the bottom
    pcpu_free_vm_areas(vms, 2);
    expect(find_vmap_area(end - 4 * P)).toBe(0);
    expect(takeReports()).toEqual([]);
  });
});
