/**
 * mm/vmalloc.c's global kva allocator and vm_struct layer on one CPU (the
 * main thread after start_kernel), at exact addresses.
 *
 * Most maps are on the arm32 preset: its vmalloc area starts empty at
 * V = 0xf0800000 (no early areas), so the first allocation is at V. Maps are
 * drawn one column per 4 KiB page from V; "." is a guard page (inside the
 * area, never mapped), "-" free address space, "~" a lazily freed area still
 * in the tree (VM_LAZY_FREE, waiting for the purge).
 */
import { afterEach, describe, expect, it } from "vitest";
import { F64, I32 } from "../src/shared/arena.js";
import { PAGE_SIZE, layoutOf, makeConfig } from "../src/shared/config.js";
import { KERNEL_LAYOUTS, type LayoutName } from "../src/shared/layouts.js";
import { type Report, takeReports } from "../src/shared/report.js";
import { start_kernel } from "../src/workers/boot.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { runInIrq } from "../src/kernel/irq.js";
import { per_cpu_ptr } from "../src/shared/smp.js";
import { run_pending_work, work_pending } from "../src/kernel/workqueue.js";
import { rcu_barrier, rcu_cpu_starting } from "../src/rcu/tree.js";
import { setup_fail_page_alloc } from "../src/mm/fail_page_alloc.js";
import { GFP_KERNEL, __GFP_NOWARN } from "../src/mm/gfp.js";
import { isFault, mmuRead, mmuWrite } from "../src/mm/mmu.js";
import {
  NR_PAGETABLE,
  NR_SLAB_UNRECLAIMABLE,
  alloc_page,
  free_pcp_pages,
  global_zone_page_state,
  nr_free_pages,
  page_address,
  totalram_pages,
} from "../src/mm/page_alloc.js";
import { PAGE_KERNEL } from "../src/mm/pgtable.js";
import {
  NUMA_NO_NODE,
  VFREE_DEFERRED,
  VMAP_AREA,
  VM_ALLOC,
  VM_LAZY_FREE,
  VM_MAP,
  VM_NO_GUARD,
  VM_STRUCT,
  VM_UNINITIALIZED,
  VM_USERMAP,
  VM_VM_AREA,
  __vmalloc_node_range,
  alloc_vmap_area,
  cached_align,
  cached_hole_size,
  cached_vstart,
  find_vm_area,
  find_vmap_area,
  forEachVmapArea,
  free_vm_area,
  free_vmap_area,
  free_vmap_cache,
  get_vm_area,
  get_vm_area_size,
  get_vmalloc_info,
  is_vmalloc_addr,
  lazy_max_pages,
  pcpu_free_vm_areas,
  pcpu_get_vm_areas,
  purge_vmap_area_lazy,
  vfree,
  vfree_atomic,
  vfree_deferred,
  vmStructPage,
  vmalloc,
  vmalloc_to_page,
  vmalloc_user,
  vmallocinfo,
  vmap,
  vmap_lazy_nr_read,
  vread,
  vunmap,
  vwrite,
  vzalloc,
} from "../src/mm/v4.19/vmalloc.js";

const P = PAGE_SIZE;

/** Boots a 1-CPU machine on the main thread with RCU, interrupts and the kworker hooked in. */
function boot(layout: LayoutName, over: Parameters<typeof makeConfig>[0] = {}) {
  const config = makeConfig({ cpus: 1, layout, ...over });
  start_kernel(config);
  rcu_cpu_starting(0);
  percpuCpuOnline();
  takeReports();
  return layoutOf(config).vmallocStart;
}

const hex = (v: number) => `0x${v.toString(16)}`;
const freePages = () => nr_free_pages() + free_pcp_pages();
/**
 * Where every page is: free (buddy + pcp), slab, page tables, vmalloc'ed.
 * Slab caches and page tables grow on first use and keep empty slabs and
 * tables, so a test compares this split, and the sum with totalram.
 */
function accounted() {
  const slab = global_zone_page_state(NR_SLAB_UNRECLAIMABLE);
  const tables = global_zone_page_state(NR_PAGETABLE);
  const vmalloced = get_vmalloc_info().VmallocUsed / (P / 1024);
  expect(freePages() + slab + tables + vmalloced).toBe(totalram_pages());
  return { vmalloced, busy: totalram_pages() - freePages() - slab - tables };
}
const vmSize = (vm: number) => F64[(vm + VM_STRUCT.off.size) >> 3]!;
const vmFlags = (vm: number) => I32[(vm + VM_STRUCT.off.flags) >> 2]!;
const vaFlags = (va: number) => I32[(va + VMAP_AREA.off.flags) >> 2]!;
/** free_vmap_cache as the vmap_area it points into (0 for NULL). */
const cache = () => {
  const n = I32[free_vmap_cache.ptr >> 2]!;
  return n && n - VMAP_AREA.off.rb_node;
};
const holeSize = () => F64[cached_hole_size.ptr >> 3]!;
/** Every area in the tree as [start, end) page numbers from `v`, "~" marking lazily freed ones. */
function areas(v: number): string[] {
  const out: string[] = [];
  forEachVmapArea((va) => {
    const s = (F64[(va + VMAP_AREA.off.va_start) >> 3]! - v) / P;
    const e = (F64[(va + VMAP_AREA.off.va_end) >> 3]! - v) / P;
    out.push(`${vaFlags(va) & VM_LAZY_FREE ? "~" : ""}[${s},${e})`);
  });
  return out;
}
const kinds = (rs: Report[]) => rs.map((r) => r.kind);

afterEach(() => {
  setup_fail_page_alloc({});
  takeReports();
});

describe("guard pages", () => {
  it("every area is size + one guard page, unless VM_NO_GUARD", () => {
    /*
     *   page  0 1 2 3 4 5 6 7 8
     *         a . b b b . c d .
     */
    const V = boot("arm32");
    expect(V).toBe(0xf0800000);
    const a = vmalloc(P);
    const b = vmalloc(3 * P - 100); // rounded up to 3 pages
    const c = __vmalloc_node_range(
      P,
      1,
      V,
      KERNEL_LAYOUTS["4.19"].arm32.vmallocEnd,
      GFP_KERNEL,
      PAGE_KERNEL,
      VM_NO_GUARD,
      NUMA_NO_NODE,
    );
    const d = vmalloc(1);
    expect([a, b, c, d].map((x) => (x - V) / P)).toEqual([0, 2, 6, 7]);

    const vb = find_vm_area(b);
    expect(vmSize(vb)).toBe(4 * P);
    expect(get_vm_area_size(vb)).toBe(3 * P);
    expect(get_vm_area_size(find_vm_area(c))).toBe(P);
    expect(find_vm_area(b + 3 * P)).toBe(vb); // the guard page belongs to b's area

    // Mapped pages have a page; guard pages have none.
    for (const [pg, mapped] of [
      [0, true],
      [1, false],
      [4, true],
      [5, false],
      [6, true],
      [7, true],
      [8, false],
    ] as const)
      expect(vmalloc_to_page(V + pg * P) !== 0, `page ${pg}`).toBe(mapped);

    // The last byte of b is there; the byte after it is in the guard page and faults.
    expect(isFault(mmuRead(b + 3 * P - 1, 1))).toBe(false);
    expect(isFault(mmuRead(b + 3 * P, 1))).toBe(true);
    const r = takeReports();
    expect(kinds(r)).toEqual(["fault"]);
    expect(r[0]!.text).toContain("Unable to handle kernel paging request at virtual address 0xf0805000");

    expect(vmallocinfo()).toEqual([
      "0xf0800000-0xf0802000    8192 vmalloc pages=1 vmalloc",
      "0xf0802000-0xf0806000   16384 vmalloc pages=3 vmalloc",
      "0xf0806000-0xf0807000    4096 __vmalloc_node_range pages=1 vmalloc",
      "0xf0807000-0xf0809000    8192 vmalloc pages=1 vmalloc",
    ]);
  });
});

describe("free_vmap_cache", () => {
  it("a hit starts at the cached area's end; size < cached_hole_size (strict) rescans from vstart", () => {
    /*
     *   page   0 1 2 3 4 5 6 7 8 ...      13 14 15 16 17
     *   x1,x2,x3: x1. x2x2x2. x3.
     *   purge:    x1. - - - - x3.                          cache -> x1 (rb_prev of x2)
     *   y (5P):   x1. - - - - x3. y y y y y .              hole [2,6) too small: cached_hole_size = 4P
     *   w (3P):   x1. - - - - x3. y ....... . w  w  w  .   size 4P, not < 4P: cache hit, the exact fit is skipped
     *   z (1P):   x1. z . - - x3. y ....... . w  w  w  .   size 2P < 4P: rescan from vstart
     */
    const V = boot("arm32");
    const x1 = vmalloc(P);
    const x2 = vmalloc(3 * P);
    const x3 = vmalloc(P);
    expect([x1, x2, x3].map((x) => (x - V) / P)).toEqual([0, 2, 6]);
    expect(cache()).toBe(find_vmap_area(x3));

    vfree(x2);
    purge_vmap_area_lazy();
    // __free_vmap_area: x2 starts below the cached x3, so the cache steps back to x2's predecessor.
    expect(cache()).toBe(find_vmap_area(x1));

    const y = vmalloc(5 * P);
    expect((y - V) / P).toBe(8);
    expect(holeSize()).toBe(4 * P);
    expect(cache()).toBe(find_vmap_area(y));

    const w = vmalloc(3 * P);
    expect((w - V) / P).toBe(14);
    expect(holeSize()).toBe(4 * P);

    const z = vmalloc(P);
    expect((z - V) / P).toBe(2);
    expect(holeSize()).toBe(0);
    expect(areas(V)).toEqual(["[0,2)", "[2,4)", "[6,8)", "[8,14)", "[14,18)"]);

    // Freeing above the cached area (w above z) leaves the cache alone.
    vfree(w);
    purge_vmap_area_lazy();
    expect(cache()).toBe(find_vmap_area(z));
  });

  it("!free_vmap_cache: __free_vmap_area drops it for an area below cached_vstart; the search starts at vstart", () => {
    /*
     *   page     0 1 ... 16 17 18 19
     *            x1.      x2 .  x3 .     x2, x3 from vstart = V+16P (cached_vstart)
     *   purge:   - -      -  -  x3 .     freeing x1 (end 2 < 16) clears the cache
     *   y:       - -      y  .  x3 .     scanned from vstart 16, not after x3
     */
    const V = boot("arm32");
    const END = KERNEL_LAYOUTS["4.19"].arm32.vmallocEnd;
    const x1 = vmalloc(P);
    const x2 = __vmalloc_node_range(P, 1, V + 16 * P, END, GFP_KERNEL, PAGE_KERNEL, 0, NUMA_NO_NODE);
    const x3 = __vmalloc_node_range(P, 1, V + 16 * P, END, GFP_KERNEL, PAGE_KERNEL, 0, NUMA_NO_NODE);
    expect([x1, x2, x3].map((x) => (x - V) / P)).toEqual([0, 16, 18]);
    expect(F64[cached_vstart.ptr >> 3]).toBe(V + 16 * P);

    vfree(x2);
    vfree(x1);
    purge_vmap_area_lazy(); // frees x1 first (the purge list is newest first)
    expect(cache()).toBe(0);
    expect(areas(V)).toEqual(["[18,20)"]);

    const y = __vmalloc_node_range(P, 1, V + 16 * P, END, GFP_KERNEL, PAGE_KERNEL, 0, NUMA_NO_NODE);
    expect((y - V) / P).toBe(16);
  });

  it("vstart < cached_vstart resets the cache (and a cached end below vstart rescans too)", () => {
    /*
     *   page   0 1 2 3 ... 16 17
     *   x1:    x1.
     *   x2:    x1.         x2 .    vstart V+16P: the cached end (2) < vstart, goto nocache
     *   x3:    x1. x3.     x2 .    vstart V < cached_vstart: reset, found from V
     */
    const V = boot("arm32");
    const x1 = vmalloc(P);
    const x2 = __vmalloc_node_range(
      P,
      1,
      V + 16 * P,
      KERNEL_LAYOUTS["4.19"].arm32.vmallocEnd,
      GFP_KERNEL,
      PAGE_KERNEL,
      0,
      -1,
    );
    expect((x2 - V) / P).toBe(16);
    expect(cache()).toBe(find_vmap_area(x2));
    const x3 = vmalloc(P);
    expect((x3 - V) / P).toBe(2);
    expect(x1).toBe(V);
  });

  it("align < cached_align resets the cache", () => {
    /*
     *   page   0 1 2 3 ... 16 17
     *   x1:    x1.
     *   x2:    x1.         x2 .    align 64K from the cache: ALIGN(2P, 16P) = 16P
     *   x3:    x1. x3.     x2 .    align 1 < cached_align 64K: reset, found from V
     */
    const V = boot("arm32");
    vmalloc(P);
    const x2 = __vmalloc_node_range(
      P,
      16 * P,
      V,
      KERNEL_LAYOUTS["4.19"].arm32.vmallocEnd,
      GFP_KERNEL,
      PAGE_KERNEL,
      0,
      -1,
    );
    expect((x2 - V) / P).toBe(16);
    expect(F64[cached_align.ptr >> 3]).toBe(16 * P);
    const x3 = vmalloc(P);
    expect((x3 - V) / P).toBe(2);
    expect(F64[cached_align.ptr >> 3]).toBe(1);
  });
});

describe("lazy purge", () => {
  it("reuses nothing until vmap_lazy_nr exceeds lazy_max_pages, then everything, from the bottom", () => {
    /*
     *   pair i:        ~ ~ ~ ~ … a_i .         each vfree leaves its 2 pages lazily in the tree
     *   pair 4096:     vmap_lazy_nr = 8194 > 8192: try_purge frees all 4097, cache -> NULL
     *   next vmalloc:  a .                     at V again
     */
    const V = boot("arm32");
    expect(lazy_max_pages()).toBe(8192); // fls(1) * 32 MiB / 4 KiB
    const before = accounted();
    for (let i = 0; i < 4096; i++) {
      const a = vmalloc(P);
      expect(a).toBe(V + 2 * i * P);
      vfree(a);
      expect(vmap_lazy_nr_read()).toBe(2 * (i + 1));
    }
    expect(areas(V).length).toBe(4096);
    expect(areas(V)[4095]).toBe("~[8190,8192)");
    expect(vmallocinfo()[0]).toBe("0xf0800000-0xf0802000    8192 unpurged vm_area");

    const last = vmalloc(P);
    expect(last).toBe(V + 8192 * P);
    vfree(last); // 8194 > 8192: the purge runs inside this vfree
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(areas(V)).toEqual([]);
    expect(cache()).toBe(0);

    // The purge frees newest first; each free below the cache steps it back, so it ends NULL.
    expect(vmalloc(P)).toBe(V);
    expect(vmalloc(P)).toBe(V + 2 * P);
    vfree(V);
    vfree(V + 2 * P);
    purge_vmap_area_lazy();
    rcu_barrier();
    expect(accounted()).toEqual(before);
    expect(takeReports()).toEqual([]);
  });
});

describe("exhaustion on arm32's 240 MB", () => {
  it("an overflow purges the lazy areas and retries once; a second overflow fails with the kernel's warning", () => {
    /*
     *   MiB from V   0 ........ 200 ....... 230 ... 240
     *   A, B:        A A A A A A B B B B B B - - - -
     *   free B:      A A A A A A ~ ~ ~ ~ ~ ~ - - - -       7680 lazy pages < 8192: no purge
     *   C (20 MiB):  A A A A A A C C C C - - - - - -       overflow above ~B, purge, retry
     *                (C ends at 220 MiB: 20 MiB free on top)
     *   D (25 MiB):  overflow, purge (nothing), overflow: -EBUSY and the warning
     */
    const V = boot("arm32");
    const MiB = 1024 * 1024;
    expect(KERNEL_LAYOUTS["4.19"].arm32.vmallocEnd - V).toBe(240 * MiB);
    const A = get_vm_area(200 * MiB - P, VM_ALLOC);
    const B = get_vm_area(30 * MiB - P, VM_ALLOC);
    expect(F64[(A + VM_STRUCT.off.addr) >> 3]).toBe(V);
    expect(F64[(B + VM_STRUCT.off.addr) >> 3]).toBe(V + 200 * MiB);
    free_vm_area(B);
    expect(vmap_lazy_nr_read()).toBe((30 * MiB) / P);

    const C = get_vm_area(20 * MiB - P, VM_ALLOC);
    expect(C).not.toBe(0);
    expect(F64[(C + VM_STRUCT.off.addr) >> 3]).toBe(V + 200 * MiB);
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(takeReports()).toEqual([]);

    expect(get_vm_area(25 * MiB - P, VM_ALLOC)).toBe(0);
    const r = takeReports();
    expect(r.map((x) => [x.kind, x.text])).toEqual([
      ["WARN", "vmap allocation for size 26214400 failed: use vmalloc=<size> to increase size"],
    ]);
    // alloc_vmap_area itself: -EBUSY; silent with __GFP_NOWARN.
    expect(
      alloc_vmap_area(20 * MiB + P, P, V, KERNEL_LAYOUTS["4.19"].arm32.vmallocEnd, -1, GFP_KERNEL | __GFP_NOWARN),
    ).toBe(-16);
    expect(takeReports()).toEqual([]);
    // The 20 MiB left at the top still serve an allocation that fits exactly.
    const va = alloc_vmap_area(20 * MiB, P, V, KERNEL_LAYOUTS["4.19"].arm32.vmallocEnd, -1, GFP_KERNEL);
    expect(F64[(va + VMAP_AREA.off.va_start) >> 3]).toBe(V + 220 * MiB);
    free_vmap_area(va);
  });
});

describe("vfree from interrupt context", () => {
  it("is deferred to this CPU's vfree_deferred list and freed by free_work", () => {
    const V = boot("arm32", { workqueue: "explicit" });
    const before = accounted();
    const a = vmalloc(P);
    const b = vmalloc(2 * P);
    const c = vmalloc(P);
    const wq = per_cpu_ptr(vfree_deferred, 0) + VFREE_DEFERRED.off.wq;

    runInIrq(() => vfree(a)); // list was empty: schedules free_work
    expect(work_pending(wq)).toBe(true);
    runInIrq(() => vfree(b)); // list not empty: no second schedule needed
    vfree_atomic(c); // process context, but always deferred
    // Nothing is freed yet: the three areas are live and mapped.
    expect([a, b, c].map((x) => vaFlags(find_vmap_area(x)))).toEqual([VM_VM_AREA, VM_VM_AREA, VM_VM_AREA]);
    expect(vmalloc_to_page(b)).not.toBe(0);
    expect(areas(V)).toEqual(["[0,2)", "[2,5)", "[5,7)"]);

    expect(run_pending_work()).toBe(1);
    expect(work_pending(wq)).toBe(false);
    expect(areas(V)).toEqual(["~[0,2)", "~[2,5)", "~[5,7)"]);
    expect(vmalloc_to_page(b)).toBe(0);
    purge_vmap_area_lazy();
    rcu_barrier();
    expect(accounted()).toEqual(before);
    expect(takeReports()).toEqual([]);
  });
});

describe("contents", () => {
  it.each([
    "arm32",
    "arm64-va48",
  ] as const)("%s: vzalloc is zero; stores and loads go through the page tables", (layout) => {
    boot(layout);
    // Dirty four pages, give them back, and take them again: vmalloc sees the old bytes, vzalloc zeros.
    const a = vmalloc(4 * P);
    expect(mmuWrite(a, new Uint8Array(4 * P).fill(0xaa))).toBe(true);
    vfree(a);
    const b = vmalloc(4 * P);
    expect(mmuRead(b, 4)).toEqual(new Uint8Array([0xaa, 0xaa, 0xaa, 0xaa]));
    vfree(b);
    const z = vzalloc(4 * P);
    expect((mmuRead(z, 4 * P) as Uint8Array).every((x) => x === 0)).toBe(true);

    // A store across a page boundary, read back through the MMU and through vread's linear aliases.
    const msg = new TextEncoder().encode("across the page boundary");
    expect(mmuWrite(z + P - 10, msg)).toBe(true);
    expect(mmuRead(z + P - 10, msg.length)).toEqual(msg);
    const buf = new Uint8Array(msg.length);
    expect(vread(buf, z + P - 10, msg.length)).toBe(msg.length);
    expect(buf).toEqual(msg);
    expect(vwrite(new Uint8Array([1, 2, 3]), z + 3 * P + 5, 3)).toBe(3);
    expect(mmuRead(z + 3 * P + 5, 3)).toEqual(new Uint8Array([1, 2, 3]));
    expect(takeReports()).toEqual([]);
  });

  it("vread: holes and guard pages read as zeros; a range with no area reads nothing", () => {
    /*   page  0 1 2 3
     *         a . b .
     */
    const V = boot("arm32");
    const a = vmalloc(P);
    const b = vmalloc(P);
    mmuWrite(a + P - 2, new Uint8Array([7, 7]));
    mmuWrite(b, new Uint8Array([9, 9]));
    const buf = new Uint8Array(P + 4).fill(0xff);
    expect(vread(buf, a + P - 2, P + 4)).toBe(P + 4);
    expect([buf[0], buf[1], buf[2], buf[P + 1], buf[P + 2], buf[P + 3]]).toEqual([7, 7, 0, 0, 9, 9]);
    expect(vread(buf, V + 100 * P, 16)).toBe(0);
  });

  it("a load after vfree uses the stale TLB entry until the purge flushes it, then faults", () => {
    const V = boot("arm32");
    const a = vmalloc(P);
    mmuWrite(a, new Uint8Array([42]));
    expect(mmuRead(a, 1)).toEqual(new Uint8Array([42])); // CPU 0's TLB now maps a
    vfree(a); // PTE cleared, flush deferred to the purge
    expect(mmuRead(a, 1)).toEqual(new Uint8Array([42]));
    let r = takeReports();
    expect(kinds(r)).toEqual(["stale-tlb"]);
    expect(r[0]!.text).toContain(`read at virtual address ${hex(V)}`);

    purge_vmap_area_lazy(); // flush_tlb_kernel_range over the lazy areas
    expect(isFault(mmuRead(a, 1))).toBe(true);
    r = takeReports();
    expect(kinds(r)).toEqual(["fault"]);
    expect(r[0]!.text).toContain(`Unable to handle kernel paging request at virtual address ${hex(V)}`);
  });
});

describe("__vmalloc_area_node fail path", () => {
  it("an injected page-allocation failure frees everything: pages, page array, vm_struct, vmap_area", () => {
    const V = boot("arm32");
    vfree(vmalloc(8 * P)); // warm up: slab caches and page tables exist now
    purge_vmap_area_lazy();
    rcu_barrier();
    const before = freePages();

    setup_fail_page_alloc({ nth: 5 }); // the fifth alloc_page: pages[4]
    expect(vmalloc(8 * P)).toBe(0);
    const r = takeReports();
    expect(r.map((x) => [x.kind, x.text])).toEqual([
      [
        "WARN",
        "cpu0: vmalloc: allocation failure, allocated 16384 of 36864 bytes, mode:0x6000c0(GFP_KERNEL), nodemask=(null)",
      ],
    ]);
    expect(areas(V)).toEqual(["~[0,9)"]); // the failed area waits for the purge like any other
    purge_vmap_area_lazy();
    rcu_barrier();
    expect(areas(V)).toEqual([]);
    expect(freePages()).toBe(before);
  });

  it("a failure in the nested vmalloc of a big page array frees the outer area too", () => {
    /*
     *   arm32, 5 MiB = 1280 pages: the page array (5120 bytes) exceeds a page, so it is vmalloc'ed
     *   itself (2 pages + guard, above the outer area). Failing its first page fails both.
     */
    const V = boot("arm32");
    vfree(vmalloc(5 << 20));
    purge_vmap_area_lazy();
    rcu_barrier();
    const before = freePages();
    setup_fail_page_alloc({ nth: 1 });
    expect(vmalloc(5 << 20)).toBe(0);
    expect(takeReports().map((x) => x.text)).toEqual([
      "cpu0: vmalloc: allocation failure, allocated 0 of 12288 bytes, mode:0x6080c2(GFP_KERNEL|__GFP_HIGHMEM|__GFP_ZERO), nodemask=(null)",
    ]);
    expect(areas(V)).toEqual(["~[0,1281)", "~[1281,1284)"]);
    purge_vmap_area_lazy();
    rcu_barrier();
    expect(freePages()).toBe(before);
  });
});

describe("bad vfree", () => {
  it("WARNs with the kernel's text and changes nothing", () => {
    const V = boot("arm32");
    const a = vmalloc(P);
    const info = vmallocinfo();
    const free = freePages();
    vfree(V + 100 * P);
    vfree(a + 1);
    vfree(0); // NULL: nothing, silently
    expect(takeReports().map((x) => [x.kind, x.text])).toEqual([
      ["WARN", "Trying to vfree() nonexistent vm area (0xf0864000)"],
      ["WARN", "Trying to vfree() bad address (0xf0800001)"],
    ]);
    expect(vmallocinfo()).toEqual(info);
    expect(freePages()).toBe(free);
    vfree(a);
    vfree(a); // a double free finds the lazily freed area without its vm_struct
    expect(takeReports().map((x) => x.text)).toEqual(["Trying to vfree() nonexistent vm area (0xf0800000)"]);
  });
});

describe("vmallocinfo and meminfo", () => {
  it("arm64-va48: the kernel image's early areas, then a small script", () => {
    /*
     *   VMALLOC_START = KIMAGE_VADDR = 0xffff000008000000; the image from +0x80000 (TEXT_OFFSET).
     *   page  0 1 2 3 4 5 6 7 8 …  128 …
     *         a a . b . m m . u .  .text …
     */
    const V = boot("arm64-va48");
    expect(formatFull(V)).toBe("0xffff000008000000");
    const image = [
      "0xffff000008080000-0xffff000008a10000 10027008 paging_init phys=0x0000000040080000 vmap",
      "0xffff000008a10000-0xffff000008d90000 3670016 paging_init phys=0x0000000040a10000 vmap",
      "0xffff000008d90000-0xffff000008e40000  720896 paging_init phys=0x0000000040d90000 vmap",
      "0xffff000008e40000-0xffff000008f10000  851968 paging_init phys=0x0000000040e40000 vmap",
      "0xffff000008f10000-0xffff000009023000 1126400 paging_init phys=0x0000000040f10000 vmap",
    ];
    expect(vmallocinfo()).toEqual(image);

    const a = vmalloc(2 * P);
    const b = vzalloc(P);
    const arr = page_address(alloc_page(GFP_KERNEL));
    I32[arr >> 2] = alloc_page(GFP_KERNEL);
    I32[(arr >> 2) + 1] = alloc_page(GFP_KERNEL);
    const m = vmap(arr, 2, VM_MAP, PAGE_KERNEL);
    const u = vmalloc_user(P);
    expect([a, b, m, u].map((x) => (x - V) / P)).toEqual([0, 3, 5, 8]);
    expect(vmFlags(find_vm_area(u)) & VM_USERMAP).toBe(VM_USERMAP);
    vfree(b);
    expect(vmallocinfo()).toEqual([
      "0xffff000008000000-0xffff000008003000   12288 vmalloc pages=2 vmalloc",
      "0xffff000008003000-0xffff000008005000    8192 unpurged vm_area",
      "0xffff000008005000-0xffff000008008000   12288 vmap vmap",
      "0xffff000008008000-0xffff00000800a000    8192 vmalloc_user pages=1 vmalloc user",
      ...image,
    ]);
    const { VmallocTotal, VmallocUsed, VmallocChunk } = get_vmalloc_info();
    expect(VmallocTotal).toBe((KERNEL_LAYOUTS["4.19"]["arm64-va48"].vmallocEnd - V) / 1024);
    expect(VmallocTotal).toBe(135_290_290_112); // as a v4.19 arm64 VA48 kernel prints it
    expect([VmallocUsed, VmallocChunk]).toEqual([12, 0]); // a's 2 pages + u's 1 (vmap pages are not vmalloc's)
    vunmap(m);
    expect(find_vm_area(m)).toBe(0);
  });

  it("a page array over a page is vmalloc'ed (vpages) and freed with its area", () => {
    /*
     *   arm64: 513 pages need 4104 bytes of 8-byte page pointers, so the array is a 2-page vmalloc.
     *   The outer area (514 pages) does not fit below .text (128 pages) and goes after the image;
     *   the array, allocated next, does:
     *
     *   page  0  1  2  … 128 ……… 4131  4132 … 4644 4645
     *         pp pp .    .text … a     a    … a    .
     */
    const V = boot("arm64-va48");
    const before = accounted();
    const a = vmalloc(513 * P);
    expect((a - V) / P).toBe(0x1023);
    const info = vmallocinfo();
    expect(info[0]).toBe("0xffff000008000000-0xffff000008003000   12288 vmalloc pages=2 vmalloc");
    expect(info[6]).toBe("0xffff000009023000-0xffff000009225000 2105344 vmalloc pages=513 vmalloc vpages");
    const vm = find_vm_area(a);
    expect(is_vmalloc_addr(F64[(vm + VM_STRUCT.off.pages) >> 3]!)).toBe(true);
    // Entry i of the array maps page i of the area.
    for (const i of [0, 511, 512]) expect(vmStructPage(vm, i)).toBe(vmalloc_to_page(a + i * P));
    vfree(a);
    expect(areas(V)[0]).toBe("~[0,3)");
    expect(areas(V)[6]).toBe("~[4131,4645)");
    purge_vmap_area_lazy();
    rcu_barrier();
    expect(accounted()).toEqual(before);
  });
});

describe("pcpu_get_vm_areas", () => {
  it("places congruent groups top-down from vmap_area_pcpu_hole, clear of ordinary vmallocs", () => {
    /*
     *   arm32, 64 KiB units below VMALLOC_END = 0xff800000; groups {+0: 64K, +1M: 64K}, align 64K:
     *
     *   0xff6e0000 0xff6f0000 … 0xff7e0000 0xff7f0000 0xff800000
     *   | g2[0]   | g1[0]    …  | g2[1]   | g1[1]    |
     */
    const V = boot("arm32");
    const K64 = 0x10000;
    const v = vmalloc(P); // ordinary allocations stay at the bottom
    const vmsAt = (vms: number) => [0, 1].map((i) => hex(F64[(I32[(vms >> 2) + i]! + VM_STRUCT.off.addr) >> 3]!));
    const g1 = pcpu_get_vm_areas([0, 0x100000], [K64, K64], 2, K64);
    expect(vmsAt(g1)).toEqual(["0xff6f0000", "0xff7f0000"]);
    const g2 = pcpu_get_vm_areas([0, 0x100000], [K64, K64], 2, K64);
    expect(vmsAt(g2)).toEqual(["0xff6e0000", "0xff7e0000"]);
    expect(v).toBe(V);
    expect(vmallocinfo().slice(1)).toEqual([
      "0xff6e0000-0xff6f0000   65536 pcpu_get_vm_areas vmalloc",
      "0xff6f0000-0xff700000   65536 pcpu_get_vm_areas vmalloc",
      "0xff7e0000-0xff7f0000   65536 pcpu_get_vm_areas vmalloc",
      "0xff7f0000-0xff800000   65536 pcpu_get_vm_areas vmalloc",
    ]);
    pcpu_free_vm_areas(g1, 2);
    pcpu_free_vm_areas(g2, 2);
    purge_vmap_area_lazy();
    expect(areas(V)).toEqual(["[0,2)"]);
    expect(takeReports()).toEqual([]);
  });
});

describe("vmallocinfo of a CONFIG_NUMA kernel", () => {
  it("show_numa_info counts the pages on node 0, skips a VM_UNINITIALIZED area, oopses on a NULL page array", () => {
    const V = boot("arm32");
    const a = vmalloc(2 * P);
    expect(a).toBe(V);
    const line = "0xf0800000-0xf0803000   12288 vmalloc pages=2 vmalloc";
    expect(vmallocinfo({ numa: true })).toEqual([`${line} N0=2`]);
    expect(vmallocinfo()).toEqual([line]);

    // The area as __vmalloc_area_node leaves it between nr_pages and the page array.
    const vm = find_vm_area(a);
    const pages = F64[(vm + VM_STRUCT.off.pages) >> 3]!;
    const flags = (vm + VM_STRUCT.off.flags) >> 2;
    F64[(vm + VM_STRUCT.off.pages) >> 3] = 0;
    I32[flags] = I32[flags]! | VM_UNINITIALIZED;
    expect(vmallocinfo({ numa: true })).toEqual([line]);
    expect(takeReports()).toEqual([]);
    // Without the flag (the "vmallocinfo-uninitialized" switch's view): v->pages[0] is a NULL dereference.
    I32[flags] = I32[flags]! & ~VM_UNINITIALIZED;
    expect(vmallocinfo({ numa: true })).toEqual([line]);
    expect(takeReports().map((r) => `${r.kind}: ${r.text}`)).toEqual([
      "fault: Unable to handle kernel NULL pointer dereference at virtual address 0x00000000",
    ]);
    F64[(vm + VM_STRUCT.off.pages) >> 3] = pages;
    vfree(a);
    expect(takeReports()).toEqual([]);
  });
});

function formatFull(kaddr: number): string {
  return `0x${(KERNEL_LAYOUTS["4.19"]["arm64-va48"].base + BigInt(kaddr)).toString(16)}`;
}
