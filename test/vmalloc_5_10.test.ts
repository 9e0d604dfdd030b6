/**
 * mm/vmalloc.c v5.10 (generation 2, src/mm/v5.10/) on one CPU (the main
 * thread after start_kernel), at exact addresses.
 *
 * Most maps are on the arm32 preset: its vmalloc area starts empty at
 * V = 0xf0800000, and v5.10's free tree starts as one block [1, ULONG_MAX).
 * Maps are drawn one column per 4 KiB page from V: a letter an allocated
 * page, "." a guard page, "-" free space in the free tree, "~" a lazily
 * freed area (out of the busy tree, not yet back in the free tree).
 */
import { afterEach, describe, expect, it } from "vitest";
import { I32 } from "../src/shared/arena.js";
import { PAGE_SIZE, layoutOf, makeConfig } from "../src/shared/config.js";
import { type LayoutName, formatKaddr } from "../src/shared/layouts.js";
import { type Report, takeReports } from "../src/shared/report.js";
import { per_cpu_ptr } from "../src/shared/smp.js";
import { start_kernel } from "../src/workers/boot.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { runInIrq } from "../src/kernel/irq.js";
import { run_pending_work } from "../src/kernel/workqueue.js";
import { rcu_cpu_starting } from "../src/rcu/tree.js";
import { Prng } from "../src/shared/prng.js";
import { GFP_KERNEL, __GFP_NOWARN } from "../src/mm/gfp.js";
import { alloc_page, page_address } from "../src/mm/page_alloc.js";
import { PAGE_KERNEL } from "../src/mm/pgtable.js";
import {
  FL_FIT_TYPE,
  LE_FIT_TYPE,
  NE_FIT_TYPE,
  NOTHING_FIT,
  NUMA_NO_NODE,
  RE_FIT_TYPE,
  VMAP_AREA,
  VM_ALLOC,
  VM_NO_GUARD,
  __vmalloc_node_range,
  alloc_vmap_area,
  augment_tree_propagate_check,
  classify_va_fit_type,
  compute_subtree_max_size,
  find_vmap_lowest_linear_match,
  find_vmap_lowest_match,
  forEachFreeVmapArea,
  forEachPurgeVmapArea,
  forEachVmapArea,
  free_vmap_area,
  free_vmap_area_lock,
  free_vmap_area_root,
  get_vm_area,
  get_vmalloc_info,
  lazy_max_pages,
  ne_fit_preload_node,
  pcpu_free_vm_areas,
  pcpu_get_vm_areas,
  purge_vmap_area_lazy,
  va_end,
  va_start,
  va_subtree_max_size,
  vfree,
  vmalloc,
  vmalloc_init,
  vmallocinfo,
  vmap_initialized,
  vmap_lazy_nr_read,
  vm_addr,
} from "../src/mm/v5.10/vmalloc.js";
import {
  VMAP_BBMAP_BITS,
  VMAP_BLOCK_SIZE,
  VMAP_MAX_ALLOC,
  checkVmapBlocks,
  vmapBlocks,
  vm_map_ram,
  vm_unmap_aliases,
  vm_unmap_ram,
} from "../src/mm/v5.10/vmap_block.js";
import { spin_lock, spin_unlock } from "../src/locks/spinlock.js";
import { RB_ROOT } from "../src/lib/rbtree.js";

const P = PAGE_SIZE;
const hex = (v: number) => `0x${v.toString(16)}`;
const kinds = (rs: Report[]) => rs.map((r) => r.kind);

/** Boots a 1-CPU v5.10 machine on the main thread; returns VMALLOC_START, VMALLOC_END and ULONG_MAX as kaddrs. */
function boot(layout: LayoutName, over: Parameters<typeof makeConfig>[0] = {}) {
  const config = makeConfig({ cpus: 1, layout, kernel: "5.10", ...over });
  start_kernel(config);
  // Until boot dispatches on config.kernel, start_kernel ran generation 1's vmalloc_init: run v5.10's.
  if (!I32[vmap_initialized.ptr >> 2]) vmalloc_init();
  rcu_cpu_starting(0);
  percpuCpuOnline();
  takeReports();
  const l = layoutOf(config);
  ULONG_MAX = 2 ** l.vaBits - 1;
  return { V: l.vmallocStart, END: l.vmallocEnd, ULONG_MAX };
}
/** ULONG_MAX as a kaddr on the booted machine. */
let ULONG_MAX = 0;

/** The free tree in address order as [start, end) page numbers from `v` (a bound below v prints as "lo"). */
function free(v: number): string[] {
  const out: string[] = [];
  forEachFreeVmapArea((va) => {
    const s = va_start(va) < v ? "lo" : String((va_start(va) - v) / P);
    const e = va_end(va) === ULONG_MAX ? "max" : String((va_end(va) - v) / P);
    out.push(`[${s},${e})`);
  });
  return out;
}
/** The busy tree as [start, end) page numbers from `v`. */
function busy(v: number): string[] {
  const out: string[] = [];
  forEachVmapArea((va) => out.push(`[${(va_start(va) - v) / P},${(va_end(va) - v) / P})`));
  return out;
}
function lazy(v: number): string[] {
  const out: string[] = [];
  forEachPurgeVmapArea((va) => out.push(`~[${(va_start(va) - v) / P},${(va_end(va) - v) / P})`));
  return out;
}
/** A plain vmalloc of `pages` pages whose KVA search starts at `vstart`, with no guard page. */
const at = (vstart: number, pages: number) =>
  __vmalloc_node_range(pages * P, 1, vstart, vstart + 2 ** 30, GFP_KERNEL, PAGE_KERNEL, VM_NO_GUARD, NUMA_NO_NODE);

/**
 * Busy, lazily freed and free areas tile [1, ULONG_MAX) with no gap and no
 * overlap (arm32: kaddrs are the full addresses, exact). The gaps and overlaps found.
 */
function coverageGaps(): string[] {
  const spans: [number, number][] = [];
  const add = (va: number) => spans.push([va_start(va), va_end(va)]);
  forEachVmapArea(add);
  forEachPurgeVmapArea(add);
  forEachFreeVmapArea(add);
  spans.sort((a, b) => a[0] - b[0]);
  const out: string[] = [];
  let at = 1;
  for (const [s, e] of spans) {
    if (s !== at) out.push(`${s < at ? "overlap" : "gap"} at ${hex(Math.min(s, at))}`);
    at = e;
  }
  if (at !== ULONG_MAX) out.push(`ends at ${hex(at)}`);
  return out;
}

afterEach(() => {
  takeReports();
});

describe("boot: vmap_init_free_space", () => {
  it("arm64: the kernel image is busy from VMALLOC_START, the free tree is its complement over [1, ULONG_MAX)", () => {
    const { V, ULONG_MAX } = boot("arm64-va48");
    const lines = vmallocinfo();
    expect(lines.map((l) => l.replace(/^\S+ +/, ""))).toEqual([
      "16252928 paging_init phys=0x0000000040200000 vmap",
      "7471104 paging_init phys=0x0000000041180000 vmap",
      "524288 paging_init phys=0x00000000418a0000 vmap",
      "917504 paging_init phys=0x0000000041920000 vmap",
      "2424832 paging_init phys=0x0000000041a00000 vmap",
    ]);
    expect(lines[0]!.startsWith(`${formatKaddr(layoutOf(makeConfig({ kernel: "5.10" })), V)}-`)).toBe(true);
    const spans: [number, number][] = [];
    forEachFreeVmapArea((va) => spans.push([va_start(va), va_end(va)]));
    expect(spans.length).toBe(2);
    expect(spans[0]![1]).toBe(V); // [1, _text)
    expect(spans[1]).toEqual([V + 0x1a50000, ULONG_MAX]); // [_end, ULONG_MAX)
    expect(augment_tree_propagate_check()).toEqual([]);
  });

  it("arm32: one free block [1, 0xffffffff), nothing busy", () => {
    boot("arm32");
    const spans: string[] = [];
    forEachFreeVmapArea((va) => spans.push(`${hex(va_start(va))}-${hex(va_end(va))}`));
    expect(spans).toEqual(["0x1-0xffffffff"]);
    expect(busy(0)).toEqual([]);
    expect(vmallocinfo()).toEqual([]);
  });
});

describe("alloc_vmap_area: lowest fit and the four fit types", () => {
  it("NE, LE, FL and RE fits, each drawn", () => {
    const { V } = boot("arm32");
    /*
     *  page  0 1 2 3 4 5 6 7
     *  a:    a .                  NE: [1,V) and [V+2P, max) remain
     */
    const a = vmalloc(P);
    expect(a).toBe(V);
    expect(free(V)).toEqual(["[lo,0)", "[2,max)"]);
    /*  b:    a . b .              LE: the free block's left edge moves */
    const b = vmalloc(P);
    expect(b).toBe(V + 2 * P);
    expect(free(V)).toEqual(["[lo,0)", "[4,max)"]);
    const c = vmalloc(2 * P);
    expect(c).toBe(V + 4 * P);
    /*
     *  vfree(b) + purge: a . - - c c . -
     *  FL: vmalloc(P) takes the hole [2,4) whole
     */
    vfree(b);
    expect(lazy(V)).toEqual(["~[2,4)"]);
    purge_vmap_area_lazy();
    expect(free(V)).toEqual(["[lo,0)", "[2,4)", "[7,max)"]);
    expect(vmalloc(P)).toBe(V + 2 * P);
    expect(free(V)).toEqual(["[lo,0)", "[7,max)"]);
    /*
     *  d:        a . b . c c . d d d .      (3 pages and its guard at [7,11))
     *  vfree(c) + purge: a . b . - - - d d d . -
     *  RE: one page (no guard) from vstart V+6P: the hole [4,7) keeps [4,6)
     */
    const d = vmalloc(3 * P - 1);
    expect(d).toBe(V + 7 * P);
    vfree(c);
    purge_vmap_area_lazy();
    expect(free(V)).toEqual(["[lo,0)", "[4,7)", "[11,max)"]);
    expect(at(V + 6 * P, 1)).toBe(V + 6 * P);
    expect(free(V)).toEqual(["[lo,0)", "[4,6)", "[11,max)"]);
    /* NE: one page from vstart V+12P splits the top block in two */
    expect(at(V + 12 * P, 1)).toBe(V + 12 * P);
    expect(free(V)).toEqual(["[lo,0)", "[4,6)", "[11,12)", "[13,max)"]);
    expect(augment_tree_propagate_check()).toEqual([]);
  });

  it("classify_va_fit_type on a free block", () => {
    const { V } = boot("arm32");
    let top = 0;
    forEachFreeVmapArea((va) => {
      top = va;
    });
    const s = va_start(top);
    const e = va_end(top);
    expect(classify_va_fit_type(top, s, e - s)).toBe(FL_FIT_TYPE);
    expect(classify_va_fit_type(top, s, P)).toBe(LE_FIT_TYPE);
    expect(classify_va_fit_type(top, e - P, P)).toBe(RE_FIT_TYPE);
    expect(classify_va_fit_type(top, V, P)).toBe(NE_FIT_TYPE);
    expect(classify_va_fit_type(top, e - P, 2 * P)).toBe(NOTHING_FIT);
    expect(classify_va_fit_type(top, s - 1, P)).toBe(NOTHING_FIT);
  });

  it("the no-edge split uses this CPU's ne_fit_preload_node, refilled outside the lock on the next call", () => {
    const { V } = boot("arm32");
    const slot = () => I32[per_cpu_ptr(ne_fit_preload_node, 0) >> 2]!;
    expect(slot()).toBe(0);
    vmalloc(P); // preloads, then the NE split consumes it
    expect(slot()).toBe(0);
    vmalloc(P); // preloads; an LE fit leaves it
    const preloaded = slot();
    expect(preloaded).not.toBe(0);
    at(V + 10 * P, 1); // NE in [4, max): takes the preloaded node for the left remainder [4,10)
    expect(slot()).toBe(0);
    let left = 0;
    forEachFreeVmapArea((va) => {
      if (va_start(va) === V + 4 * P) left = va;
    });
    expect(left).toBe(preloaded);
  });
});

describe("merge_or_add_vmap_area", () => {
  /*
   *  page  0 1 2 3 4 5 6 7 8 9
   *        a . b . c . d . - -
   */
  function four() {
    const v = boot("arm32");
    const [a, b, c, d] = [vmalloc(P), vmalloc(P), vmalloc(P), vmalloc(P)];
    expect([a, b, c, d].map((x) => (x - v.V) / P)).toEqual([0, 2, 4, 6]);
    return { ...v, a, b, c, d };
  }

  it("with next (the top block), with prev, with both, and alone", () => {
    const { V, a, b, c, d } = four();
    vfree(d); // next: merges into [8,max) -> [6,max)
    purge_vmap_area_lazy();
    expect(free(V)).toEqual(["[lo,0)", "[6,max)"]);
    vfree(b); // alone: [2,4) between busy a and c
    purge_vmap_area_lazy();
    expect(free(V)).toEqual(["[lo,0)", "[2,4)", "[6,max)"]);
    vfree(c); // both: [2,4) + [4,6) + [6,max)
    purge_vmap_area_lazy();
    expect(free(V)).toEqual(["[lo,0)", "[2,max)"]);
    vfree(a); // prev [lo,0) and next [2,max): one block [1, ULONG_MAX) again
    purge_vmap_area_lazy();
    expect(free(V)).toEqual(["[lo,max)"]);
    expect(busy(V)).toEqual([]);
    expect(augment_tree_propagate_check()).toEqual([]);
  });

  it("with prev only: areas without a vm_struct, given back by free_vmap_area (no lazy list)", () => {
    /*
     *  page  0 1 2 3 4
     *        w x y z -     free_vmap_area(x): alone [1,2); free_vmap_area(y): prev grows to [1,3)
     */
    const { V } = boot("arm32");
    const [w, x, y, z] = [0, 1, 2, 3].map(() => alloc_vmap_area(P, 1, V, V + 2 ** 30, NUMA_NO_NODE, GFP_KERNEL));
    expect([w!, x!, y!, z!].map((va) => (va_start(va) - V) / P)).toEqual([0, 1, 2, 3]);
    free_vmap_area(x!);
    expect(free(V)).toEqual(["[lo,0)", "[1,2)", "[4,max)"]);
    free_vmap_area(y!);
    expect(free(V)).toEqual(["[lo,0)", "[1,3)", "[4,max)"]);
    expect(busy(V)).toEqual(["[0,1)", "[3,4)"]);
    expect(augment_tree_propagate_check()).toEqual([]);
  });
});

describe("find_vmap_lowest_match", () => {
  it("agrees with a linear walk of free_vmap_area_list for align 1 (DEBUG_AUGMENT_LOWEST_MATCH_CHECK), seeded", () => {
    const { V } = boot("arm32");
    const prng = new Prng(510);
    const rand = () => prng.next();
    const live: number[] = [];
    for (let step = 0; step < 400; step++) {
      if (live.length && rand() < 0.45) vfree(live.splice(Math.floor(rand() * live.length), 1)[0]!);
      else {
        const x = vmalloc((1 + Math.floor(rand() * 6)) * P);
        if (x) live.push(x);
      }
      if (step % 7 === 0) purge_vmap_area_lazy();
      for (let q = 0; q < 4; q++) {
        const size = (1 + Math.floor(rand() * 12)) * P;
        const vstart = V + Math.floor(rand() * 600) * P;
        spin_lock(free_vmap_area_lock.ptr);
        const tree = find_vmap_lowest_match(size, 1, vstart);
        const list = find_vmap_lowest_linear_match(size, 1, vstart);
        spin_unlock(free_vmap_area_lock.ptr);
        expect(tree, `step ${step} size ${size} vstart ${hex(vstart)}`).toBe(list);
      }
    }
    expect(augment_tree_propagate_check()).toEqual([]);
    expect(coverageGaps()).toEqual([]);
    // The root's value is the largest free block.
    let largest = 0;
    forEachFreeVmapArea((va) => {
      largest = Math.max(largest, va_end(va) - va_start(va));
    });
    const root = I32[(free_vmap_area_root.ptr + RB_ROOT.off.rb_node) >> 2]! - VMAP_AREA.off.rb_node;
    expect(va_subtree_max_size(root)).toBe(largest);
    expect(compute_subtree_max_size(root)).toBe(largest);
  });

  it("v5.10's search length size + align - 1 passes over an exactly fitting aligned hole", () => {
    /*
     *  page  0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 ... 18 19 20 21 22 23 24
     *        a - - - - b c c c d d  d  -  -  e  ...  -  -  -  f  f  g  ---
     *  Holes [1,5), [12,14), [18,21) and the top [24,max). A request of 2 pages
     *  aligned to 4 pages fits [12,14) exactly, but every subtree is asked for
     *  2 + 4 - 1 = 5 pages: no hole has that, so the search ends in the top block.
     */
    const { V } = boot("arm32");
    const sizes = [1, 4, 1, 3, 3, 2, 4, 3, 2, 1];
    const vas = sizes.map((n) => alloc_vmap_area(n * P, 1, V, V + 2 ** 30, NUMA_NO_NODE, GFP_KERNEL));
    for (const i of [1, 5, 7]) free_vmap_area(vas[i]!);
    expect(free(V)).toEqual(["[lo,0)", "[1,5)", "[12,14)", "[18,21)", "[24,max)"]);
    spin_lock(free_vmap_area_lock.ptr);
    const tree = find_vmap_lowest_match(2 * P, 4 * P, V);
    const list = find_vmap_lowest_linear_match(2 * P, 4 * P, V);
    spin_unlock(free_vmap_area_lock.ptr);
    expect((va_start(list) - V) / P).toBe(12);
    expect((va_start(tree) - V) / P).toBe(24);
    // So the allocation lands in the top block, at its (4-page aligned) start.
    const va = alloc_vmap_area(2 * P, 4 * P, V, V + 2 ** 30, NUMA_NO_NODE, GFP_KERNEL);
    expect((va_start(va) - V) / P).toBe(24);
    expect(free(V)).toEqual(["[lo,0)", "[1,5)", "[12,14)", "[18,21)", "[26,max)"]);
  });
});

describe("lazy free: vmap_purge_list, vmap_lazy_nr, lazy_max_pages", () => {
  it("one CPU: 8192 pages; the free that passes it purges everything", () => {
    const { V } = boot("arm32");
    expect(lazy_max_pages()).toBe(8192);
    const SZ = 1023 * P; // 1024 pages with the guard page
    const xs = Array.from({ length: 9 }, () => vmalloc(SZ));
    expect(xs.every((x) => x !== 0)).toBe(true);
    for (let i = 0; i < 8; i++) {
      vfree(xs[i]!);
      expect(vmap_lazy_nr_read()).toBe(1024 * (i + 1));
    }
    expect(lazy(V).length).toBe(8); // 8192 is not past lazy_max_pages
    vfree(xs[8]!); // 9216 > 8192: try_purge_vmap_area_lazy
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(lazy(V)).toEqual([]);
    expect(free(V)).toEqual(["[lo,max)"]);
  });
});

describe("alloc_vmap_area overflow", () => {
  it("purges once, retries, then warns 'vmap allocation for size %lu failed' and returns -EBUSY", () => {
    boot("arm32"); // 240 MB of vmalloc space
    const big = get_vm_area(150 * 1024 * 1024, VM_ALLOC);
    expect(big).not.toBe(0);
    vfree(vm_addr(big)); // lazily freed: the purge on overflow gives it back
    const again = get_vm_area(150 * 1024 * 1024, VM_ALLOC);
    expect(again).not.toBe(0);
    expect(vm_addr(again)).toBe(vm_addr(big));
    takeReports();
    expect(get_vm_area(150 * 1024 * 1024, VM_ALLOC)).toBe(0);
    const r = takeReports();
    expect(r.map((x) => x.text)).toEqual([
      `vmap allocation for size ${150 * 1024 * 1024 + P} failed: use vmalloc=<size> to increase size`,
    ]);
    expect(alloc_vmap_area(200 * 1024 * 1024, P, 0xf0800000, 0xff800000, NUMA_NO_NODE, GFP_KERNEL | __GFP_NOWARN)).toBe(
      -16,
    );
    expect(takeReports()).toEqual([]);
  });
});

describe("/proc/vmallocinfo (v5.10's s_show)", () => {
  it("vm_map_ram lines for areas without a vm, then the unpurged areas after the last one", () => {
    const { V } = boot("arm32");
    const pages = page_address(alloc_page(GFP_KERNEL));
    for (let i = 0; i < 40; i++) I32[(pages >> 2) + i] = alloc_page(GFP_KERNEL);
    const a = vmalloc(P);
    const b = vmalloc(2 * P);
    const m = vm_map_ram(pages, VMAP_MAX_ALLOC + 1, NUMA_NO_NODE); // 33 pages: its own area, no vm
    const c = vmalloc(P);
    expect([a, b, m, c].map((x) => (x - V) / P)).toEqual([0, 2, 5, 38]);
    vfree(a);
    vfree(b);
    expect(vmallocinfo()).toEqual([
      "0xf0805000-0xf0826000  135168 vm_map_ram",
      "0xf0826000-0xf0828000    8192 vmalloc pages=1 vmalloc",
      "0xf0802000-0xf0805000   12288 unpurged vm_area",
      "0xf0800000-0xf0802000    8192 unpurged vm_area",
    ]);
    const info = get_vmalloc_info();
    expect([info.VmallocTotal, info.VmallocUsed, info.VmallocChunk]).toEqual([240 * 1024, 4, 0]);
    vm_unmap_ram(m, VMAP_MAX_ALLOC + 1);
    purge_vmap_area_lazy();
    expect(vmallocinfo()).toEqual(["0xf0826000-0xf0828000    8192 vmalloc pages=1 vmalloc"]);
  });
});

describe("vmap blocks (vm_map_ram through vmap_blocks)", () => {
  it("1, 2, 4 and 32 pages carved front to back from one 4 MiB block at V; all back + purge frees the block", () => {
    const { V } = boot("arm32");
    expect([VMAP_MAX_ALLOC, VMAP_BBMAP_BITS, VMAP_BLOCK_SIZE]).toEqual([32, 1024, 4 * 1024 * 1024]);
    const pages = page_address(alloc_page(GFP_KERNEL));
    for (let i = 0; i < 32; i++) I32[(pages >> 2) + i] = alloc_page(GFP_KERNEL);
    const m = [1, 2, 3, 32].map((n) => vm_map_ram(pages, n, NUMA_NO_NODE));
    // orders 0, 1, 2, 5: offsets 0, 1, 3, 7
    expect(m.map((x) => (x - V) / P)).toEqual([0, 1, 3, 7]);
    expect(vmapBlocks()).toEqual([{ start: V, free: 1024 - 39, dirty: 0, dirtyMin: 1024, dirtyMax: 0, cpu: 0 }]);
    expect(vmallocinfo()).toEqual(["0xf0800000-0xf0c00000 4194304 vm_map_ram"]);
    // The next vmalloc goes above the block.
    const v = vmalloc(P);
    expect(v).toBe(V + VMAP_BLOCK_SIZE);
    for (const [i, n] of [1, 2, 3, 32].entries()) vm_unmap_ram(m[i]!, n);
    expect(vmapBlocks()).toEqual([{ start: V, free: 985, dirty: 39, dirtyMin: 0, dirtyMax: 39, cpu: 0 }]);
    expect(checkVmapBlocks()).toEqual([]);
    purge_vmap_area_lazy(); // purge_fragmented_blocks: free + dirty == 1024
    expect(vmapBlocks()).toEqual([]);
    expect(free(V)).toEqual(["[lo,1024)", "[1026,max)"]); // the block merged into the bottom block
    vm_unmap_aliases();
    expect(checkVmapBlocks()).toEqual([]);
  });

  it("arm64: a block is VMAP_BLOCK_SIZE-aligned in the first free space past the kernel image", () => {
    const { V } = boot("arm64-va48");
    const pages = page_address(alloc_page(GFP_KERNEL));
    for (let i = 0; i < 64; i++) I32[(pages >> 2) + i] = alloc_page(GFP_KERNEL);
    const m = vm_map_ram(pages, 64, NUMA_NO_NODE);
    const end = V + 0x1a50000;
    expect(m).toBe(Math.ceil(end / VMAP_BLOCK_SIZE) * VMAP_BLOCK_SIZE);
    expect(vm_map_ram(pages, 1, NUMA_NO_NODE)).toBe(m + 64 * P);
    // A small vmalloc still takes the lowest hole: between _end and the block.
    expect(vmalloc(P)).toBe(end);
  });
});

describe("pcpu_get_vm_areas (v5.10: from the top of the free tree)", () => {
  it("two congruent areas end at VMALLOC_END; freed, they merge back", () => {
    const { V, END } = boot("arm32");
    const vms = pcpu_get_vm_areas([0, 4 * P], [2 * P, 2 * P], 2, P);
    expect(vms).not.toBe(0);
    const addrs = [0, 1].map((i) => vm_addr(I32[(vms >> 2) + i]!));
    expect(addrs).toEqual([END - 6 * P, END - 2 * P]);
    pcpu_free_vm_areas(vms, 2);
    purge_vmap_area_lazy();
    expect(free(V)).toEqual(["[lo,max)"]);
  });
});

describe("pcpu_get_vm_areas: a group ending above the free area of its base", () => {
  // The first chunk leaves a 4u hole between its groups; the second chunk's last group fits the hole and its
  // group 0 then ends inside the first chunk's group 0: base must move down within the free area below.
  const u = 16 * P;
  const chunks = () => {
    const first = pcpu_get_vm_areas([0, 8 * u], [4 * u, 4 * u], 2, P);
    expect(first).not.toBe(0);
    return { first, second: pcpu_get_vm_areas([0, 6 * u], [2 * u, 2 * u], 2, P) };
  };

  it("lowers base within that area (5336e52c9ed3)", () => {
    const { END } = boot("arm32");
    const { first, second } = chunks();
    expect([0, 1].map((i) => vm_addr(I32[(second >> 2) + i]!))).toEqual([END - 14 * u, END - 8 * u]);
    pcpu_free_vm_areas(second, 2);
    pcpu_free_vm_areas(first, 2);
  });

  it("with --inject pvm-search-criteria gives the area up and fails (68ad4a330433's check)", () => {
    const { V } = boot("arm32", { inject: ["pvm-search-criteria"] });
    const { first, second } = chunks();
    expect(second).toBe(0);
    pcpu_free_vm_areas(first, 2);
    purge_vmap_area_lazy();
    expect(free(V)).toEqual(["[lo,max)"]);
  });
});

describe("vfree from interrupt context", () => {
  it("is deferred to free_work and done when the work runs", () => {
    const { V } = boot("arm32", { workqueue: "explicit" });
    const a = vmalloc(P);
    runInIrq(() => vfree(a));
    expect(busy(V)).toEqual(["[0,2)"]);
    expect(run_pending_work()).toBe(1);
    expect(busy(V)).toEqual([]);
    expect(lazy(V)).toEqual(["~[0,2)"]);
    expect(kinds(takeReports())).toEqual([]);
  });
});

describe("bad input", () => {
  it("vfree of a non-area address WARNs and changes nothing", () => {
    const { V } = boot("arm32");
    vmalloc(P);
    vfree(V + 100 * P);
    vfree(V + 1);
    expect(takeReports().map((r) => r.text)).toEqual([
      `Trying to vfree() nonexistent vm area (${hex(V + 100 * P)})`,
      `Trying to vfree() bad address (${hex(V + 1)})`,
    ]);
    expect(busy(V)).toEqual(["[0,2)"]);
  });
});
