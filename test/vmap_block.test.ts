import { afterEach, describe, expect, it } from "vitest";
import { F64, I32, U8 } from "../src/shared/arena.js";
import { PAGE_SIZE, makeConfig } from "../src/shared/config.js";
import { KERNEL_LAYOUTS, type LayoutName } from "../src/shared/layouts.js";
import { KernelBug, type Report, takeReports } from "../src/shared/report.js";
import { setCurrentCpu } from "../src/shared/smp.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine } from "../src/workers/machine.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { alloc_page, drain_all_pages, free_pcp_pages, nr_free_pages, page_address } from "../src/mm/page_alloc.js";
import { kmem_cache_shrink_all } from "../src/mm/slab.js";
import { PAGE_KERNEL, kernel_pte_lookup, mk_pte, pgtablePages } from "../src/mm/pgtable.js";
import { tlbStats } from "../src/mm/tlbflush.js";
import { isFault, mmuRead, mmuWrite } from "../src/mm/mmu.js";
import {
  VMAP_AREA,
  VM_VM_AREA,
  find_vmap_area,
  forEachVmapArea,
  purge_vmap_area_lazy,
  vmap_lazy_nr_read,
} from "../src/mm/v4.19/vmalloc.js";
import {
  VMAP_BBMAP_BITS,
  VMAP_BLOCK_SIZE,
  VMAP_MAX_ALLOC,
  checkVmapBlocks,
  vmapBlockGeometry,
  vmapBlocks,
  vm_map_ram,
  vm_unmap_aliases,
  vm_unmap_ram,
} from "../src/mm/v4.19/vmap_block.js";
import type { VmapBlockStressResult } from "../src/workers/workloads/vmap_block.js";

const MB4 = 0x400000;
const hex = (v: number) => `0x${v.toString(16)}`;
const texts = (rs: Report[]) => rs.map((r) => `${r.kind}: ${r.text.split("\n")[0]}`);

/**
 * Boots a machine on the main thread (CPU 0) and builds one page array of
 * `n` fresh pages; every vm_map_ram below maps a prefix of it (a page may be
 * mapped at several addresses at once).
 */
function boot(layout: LayoutName, cpus = 1, n = 72) {
  start_kernel(makeConfig({ cpus, layout }));
  takeReports();
  const pages = Array.from({ length: n }, () => alloc_page(GFP_KERNEL));
  const arr = page_address(alloc_page(GFP_KERNEL));
  pages.forEach((p, i) => {
    I32[(arr >> 2) + i] = p;
  });
  return { V: KERNEL_LAYOUTS["4.19"][layout].vmallocStart, pages, arr };
}

const map = (arr: number, count: number) => vm_map_ram(arr, count, -1, PAGE_KERNEL);
const blocks = () => vmapBlocks().map((b) => ({ ...b, start: hex(b.start) }));

describe("VMAP_BBMAP_BITS and VMAP_BLOCK_SIZE as v4.19 computes them", () => {
  it.each([
    ["arm64-va48", 1, 64, 1024],
    ["arm64-va48", 64, 64, 1024],
    ["arm64-va39", 4, 64, 1024],
    ["arm32", 1, 32, 1024],
    ["arm32", 2, 32, 1024],
    ["arm32", 3, 32, 512],
    ["arm32", 4, 32, 512],
    ["arm32", 8, 32, 256],
    ["arm32", 16, 32, 128],
    ["arm32", 32, 32, 64],
    ["arm32", 64, 32, 64],
  ] as const)("%s, NR_CPUS %i: VMAP_MAX_ALLOC %i, VMAP_BBMAP_BITS %i", (layout, cpus, maxAlloc, bits) => {
    const g = vmapBlockGeometry(KERNEL_LAYOUTS["4.19"][layout], cpus);
    expect([g.maxAlloc, g.bbmapBits, g.blockSize]).toEqual([maxAlloc, bits, bits * PAGE_SIZE]);
  });

  it("the machine's values follow its layout and CPU count", () => {
    start_kernel(makeConfig({ cpus: 4, layout: "arm32" }));
    expect([VMAP_MAX_ALLOC, VMAP_BBMAP_BITS, VMAP_BLOCK_SIZE]).toEqual([32, 512, 2 * 1024 * 1024]);
    start_kernel(makeConfig({ cpus: 2, layout: "arm64-va48" }));
    expect([VMAP_MAX_ALLOC, VMAP_BBMAP_BITS, VMAP_BLOCK_SIZE]).toEqual([64, 1024, MB4]);
  });
});

/*
 * Block carving on one CPU. B is the first free VMAP_BLOCK_SIZE-aligned hole:
 * VMALLOC_START on arm32; on arm64 the kernel image's segments occupy
 * V+0x80000..V+0x1023000 (vmalloc.ts), so B = V+0x1400000.
 *
 *   page of B   0   1 2   3 4 5 6   7   8 ...             used  ...   1023
 *   mapping     a   b b   c c c .   d   e e e ... (MAX each)      f     free
 *                                   (c maps 3 pages, takes 2^2: page 6 stays unmapped)
 *
 * a..d: counts 1, 2, 3, 1. e: VMAP_MAX_ALLOC pages while they fit (15 × 64 on
 * arm64, 31 × 32 on arm32), then one more MAX no longer fits (56 resp. 24
 * left): it opens block B2 = B + 4 MiB, and B stays queued first — the next
 * small map (f, 16 pages) is carved from B at page `used` (968 resp. 1000).
 */
describe.each([
  { layout: "arm64-va48", B: 0x1400000, fills: 15, used: 968 },
  { layout: "arm64-va39", B: 0x1400000, fills: 15, used: 968 },
  { layout: "arm32", B: 0, fills: 31, used: 1000 },
] as const)("vm_map_ram block carving on $layout", ({ layout, B: off, fills, used }) => {
  it("carves consecutive 2^order runs front to back; a full MAX opens the next block", () => {
    const { V, pages, arr } = boot(layout);
    const B = V + off;
    expect([map(arr, 1), map(arr, 2), map(arr, 3), map(arr, 1)].map(hex)).toEqual(
      [B, B + 0x1000, B + 0x3000, B + 0x7000].map(hex),
    );
    expect(blocks()).toEqual([{ start: hex(B), free: 1016, dirty: 0, dirtyMin: 1024, dirtyMax: 0, cpu: 0 }]);
    // c's three pages are pages[0..2]; the fourth page of its run is not mapped.
    for (let i = 0; i < 3; i++)
      expect(hex(kernel_pte_lookup(B + 0x3000 + i * PAGE_SIZE))).toBe(hex(mk_pte(pages[i]!, PAGE_KERNEL)));
    expect(kernel_pte_lookup(B + 0x6000)).toBe(0);

    // Contents round trip through the page tables, across c's page boundary.
    const bytes = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    expect(mmuWrite(B + 0x4000 - 8, bytes)).toBe(true);
    expect(U8[page_address(pages[0]!) + PAGE_SIZE - 8]).toBe(0xa0);
    expect(U8[page_address(pages[1]!)]).toBe(0xa8);
    expect(mmuRead(B + 0x4000 - 8, 16)).toEqual(bytes);
    // a maps pages[0] too: the same bytes, through another alias.
    expect(mmuRead(B + 0x1000 - 8, 8)).toEqual(bytes.subarray(0, 8));

    const max = VMAP_MAX_ALLOC;
    for (let i = 0; i < fills; i++) expect(hex(map(arr, max))).toBe(hex(B + (8 + i * max) * PAGE_SIZE));
    expect(blocks()[0]!.free).toBe(1024 - used);
    expect(hex(map(arr, max))).toBe(hex(B + MB4));
    expect(hex(map(arr, 16))).toBe(hex(B + used * PAGE_SIZE));
    expect(blocks()).toEqual([
      { start: hex(B), free: 1024 - used - 16, dirty: 0, dirtyMin: 1024, dirtyMax: 0, cpu: 0 },
      { start: hex(B + MB4), free: 1024 - max, dirty: 0, dirtyMin: 1024, dirtyMax: 0, cpu: 0 },
    ]);
    // A block's area is an ordinary vmap_area without a vm_struct, VMAP_BLOCK_SIZE-aligned.
    const va = find_vmap_area(B + MB4 + 0x1234);
    expect([hex(F64[(va + VMAP_AREA.off.va_start) >> 3]!), hex(F64[(va + VMAP_AREA.off.va_end) >> 3]!)]).toEqual([
      hex(B + MB4),
      hex(B + 2 * MB4),
    ]);
    expect(I32[(va + VMAP_AREA.off.flags) >> 2]! & VM_VM_AREA).toBe(0);
    expect(checkVmapBlocks()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });
});

describe("block release and the lazy purge (arm32, one CPU, B = VMALLOC_START = 0xf0800000)", () => {
  /*
   *   B: 32 mappings of 32 pages fill it exactly: free 0, off the queue.
   *   Unmapping all 32 makes every page dirty: free_vmap_block takes it off
   *   vmap_block_tree and hands its 1024-page area to the lazy purge, which
   *   keeps the range [B, B+4M) taken until it runs.
   */
  it("a fully dirty block is freed and its area purged lazily; a fragmented one only by a purge", () => {
    const { V: B, arr } = boot("arm32");
    const addrs = Array.from({ length: 32 }, () => map(arr, 32));
    expect(addrs.map(hex)).toEqual(Array.from({ length: 32 }, (_, i) => hex(B + i * 32 * PAGE_SIZE)));
    expect(blocks()).toEqual([{ start: hex(B), free: 0, dirty: 0, dirtyMin: 1024, dirtyMax: 0, cpu: -1 }]);

    for (const a of addrs.slice(0, 31)) vm_unmap_ram(a, 32);
    expect(blocks()).toEqual([{ start: hex(B), free: 0, dirty: 992, dirtyMin: 0, dirtyMax: 992, cpu: -1 }]);
    vm_unmap_ram(addrs[31]!, 32);
    expect(blocks()).toEqual([]);
    expect(vmap_lazy_nr_read()).toBe(1024);
    expect(hex(F64[(find_vmap_area(B) + VMAP_AREA.off.va_start) >> 3]!)).toBe(hex(B)); // not yet purged
    for (let i = 0; i < 1024; i += 97) expect(kernel_pte_lookup(B + i * PAGE_SIZE)).toBe(0);

    // The next block must go elsewhere until the purge; one page in use keeps it from being purged.
    const x = map(arr, 1);
    expect(hex(x)).toBe(hex(B + MB4));
    purge_vmap_area_lazy();
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(find_vmap_area(B)).toBe(0);
    expect(blocks()).toEqual([{ start: hex(B + MB4), free: 1023, dirty: 0, dirtyMin: 1024, dirtyMax: 0, cpu: 0 }]);

    // Unmapped, x's block is fragmented (free + dirty == 1024): vb_free keeps it, the purge frees it.
    vm_unmap_ram(x, 1);
    expect(blocks()).toEqual([{ start: hex(B + MB4), free: 1023, dirty: 1, dirtyMin: 0, dirtyMax: 1, cpu: 0 }]);
    purge_vmap_area_lazy();
    expect(blocks()).toEqual([]);
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(find_vmap_area(B + MB4)).toBe(0);
    expect(hex(map(arr, 1))).toBe(hex(B));
    expect(checkVmapBlocks()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });
});

describe("vm_unmap_aliases (arm32, one CPU)", () => {
  /*
   *   page of B   0   1 2   3   4 ...
   *   mapping     a   b b   c   free
   *
   * Unmapping b leaves its translations in the TLB (vb_free does not flush):
   * a read through b is served stale. vm_unmap_aliases flushes the dirty
   * range [1, 3) of every queued block, so the next read faults.
   */
  it("flushes the dirty ranges of queued blocks, again on every call; purges fragmented blocks", () => {
    const { V: B, arr } = boot("arm32");
    const [a, b, c] = [map(arr, 1), map(arr, 2), map(arr, 1)];
    expect([a, b, c].map(hex)).toEqual([B, B + 0x1000, B + 0x3000].map(hex));
    expect(isFault(mmuRead(b, 8))).toBe(false); // fills this CPU's TLB
    vm_unmap_ram(b, 2);
    expect(blocks()).toEqual([{ start: hex(B), free: 1020, dirty: 2, dirtyMin: 1, dirtyMax: 3, cpu: 0 }]);
    expect(isFault(mmuRead(b, 8))).toBe(false);
    expect(texts(takeReports())).toEqual([
      expect.stringMatching(/^stale-tlb: CPU0: read at virtual address 0xf0801000 served by a stale TLB entry/),
    ]);

    const flushes = tlbStats().flushRange;
    vm_unmap_aliases();
    expect(tlbStats().flushRange).toBe(flushes + 1);
    expect(isFault(mmuRead(b, 8))).toBe(true);
    expect(texts(takeReports())).toEqual([
      "fault: Unable to handle kernel paging request at virtual address 0xf0801000",
    ]);
    expect(isFault(mmuRead(a, 8)) || isFault(mmuRead(c, 8))).toBe(false);
    // v4.19 keeps dirty_min/dirty_max after the flush: the same range is flushed on every call
    // (upstream a09fad96ffb1, "mm/vmalloc: prevent flushing dirty space over and over", v6.5).
    vm_unmap_aliases();
    expect(tlbStats().flushRange).toBe(flushes + 2);
    expect(blocks()[0]).toMatchObject({ dirty: 2, dirtyMin: 1, dirtyMax: 3 });

    // Nothing left in use: the block is fragmented, and vm_unmap_aliases purges it with its area.
    vm_unmap_ram(a, 1);
    vm_unmap_ram(c, 1);
    vm_unmap_aliases();
    expect(blocks()).toEqual([]);
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(find_vmap_area(B)).toBe(0);
    expect(takeReports()).toEqual([]);
  });

  /*
   * Regression story (v4.19 behaviour, fixed upstream by fc1e0d980037
   * "mm/vmalloc: prevent stale TLBs in fully utilized blocks", v6.5): a block
   * with no free page is on no queue, and while some of it is still mapped
   * it is not on the purge list either — vm_unmap_aliases finds neither, so
   * the dirty translations of a fully used block survive it.
   */
  it("misses the dirty pages of a fully used block (v4.19, fixed in v6.5)", () => {
    const { V: B, arr } = boot("arm32");
    const addrs = Array.from({ length: 32 }, () => map(arr, 32));
    expect(isFault(mmuRead(addrs[0]!, 8))).toBe(false);
    vm_unmap_ram(addrs[0]!, 32);
    expect(blocks()).toEqual([{ start: hex(B), free: 0, dirty: 32, dirtyMin: 0, dirtyMax: 32, cpu: -1 }]);
    const flushes = tlbStats().flushRange;
    vm_unmap_aliases();
    expect(tlbStats().flushRange).toBe(flushes);
    expect(isFault(mmuRead(addrs[0]!, 8))).toBe(false);
    expect(texts(takeReports())).toEqual([
      expect.stringMatching(/^stale-tlb: CPU0: read at virtual address 0xf0800000 served by a stale TLB entry/),
    ]);
  });
});

describe("vm_map_ram beyond VMAP_MAX_ALLOC, failures and BUGs (arm32, one CPU)", () => {
  /*
   *   B              B+33p          B+4M
   *   [ L: 33 pages ][ hole        ][ block of the next small map ...
   *
   * L comes from alloc_vmap_area(33 pages, PAGE_SIZE): no guard page, no
   * vm_struct. The block needs a 4 MiB-aligned hole: B + 4 MiB.
   */
  it("a large map is a plain vmap_area; vm_unmap_ram frees it lazily", () => {
    const { V: B, pages, arr } = boot("arm32");
    const L = map(arr, 33);
    expect(hex(L)).toBe(hex(B));
    const va = find_vmap_area(L);
    expect(hex(F64[(va + VMAP_AREA.off.va_end) >> 3]!)).toBe(hex(B + 33 * PAGE_SIZE));
    expect(I32[(va + VMAP_AREA.off.flags) >> 2]).toBe(0);
    expect(hex(kernel_pte_lookup(B + 32 * PAGE_SIZE))).toBe(hex(mk_pte(pages[32]!, PAGE_KERNEL)));
    expect(hex(map(arr, 1))).toBe(hex(B + MB4));
    expect(blocks().map((b) => b.start)).toEqual([hex(B + MB4)]);

    vm_unmap_ram(L, 33);
    expect(kernel_pte_lookup(B)).toBe(0);
    expect(kernel_pte_lookup(B + 32 * PAGE_SIZE)).toBe(0);
    expect(vmap_lazy_nr_read()).toBe(33);
    expect(() => vm_unmap_ram(B + 8 * MB4, 40)).toThrow(/vm_unmap_ram: BUG_ON\(!va\)/);
    expect(takeReports()).toEqual([]);
  });

  it("a failing vmap_page_range unmaps what it mapped and gives the run back as dirty", () => {
    const { V: B, pages, arr } = boot("arm32");
    I32[(arr >> 2) + 1] = 0; // pages[1] missing: vmap_pte_range WARNs and fails after mapping pages[0]
    expect(map(arr, 2)).toBe(0);
    expect(texts(takeReports())).toEqual([
      "WARN: WARNING: CPU: 0 at mm/vmalloc.c vmap_pte_range: WARN_ON(!page) at 0xf0801000",
    ]);
    expect(kernel_pte_lookup(B)).toBe(0);
    expect(blocks()).toEqual([{ start: hex(B), free: 1022, dirty: 2, dirtyMin: 0, dirtyMax: 2, cpu: 0 }]);
    I32[(arr >> 2) + 1] = pages[1]!;
    expect(hex(map(arr, 1))).toBe(hex(B + 0x2000));
  });

  it("vm_unmap_ram BUGs on a bad address", () => {
    const { V: B, arr } = boot("arm32");
    const a = map(arr, 1);
    expect(() => vm_unmap_ram(0, 1)).toThrow(/BUG_ON\(!addr\)/);
    expect(() => vm_unmap_ram(B - PAGE_SIZE, 1)).toThrow(/BUG_ON\(addr < VMALLOC_START\)/);
    expect(() => vm_unmap_ram(KERNEL_LAYOUTS["4.19"].arm32.vmallocEnd + PAGE_SIZE, 1)).toThrow(
      /BUG_ON\(addr > VMALLOC_END\)/,
    );
    expect(() => vm_unmap_ram(a + 8, 1)).toThrow(/BUG_ON\(!PAGE_ALIGNED\(addr\)\)/);
    expect(() => vm_unmap_ram(B + 2 * MB4, 1)).toThrow(/vb_free: no vmap_block at 0xf1000000/);
    expect(() => vm_unmap_ram(a, 1)).not.toThrow();
  });

  /*
   * Regression story (v4.19 behaviour, fixed upstream by ac0476e8ca2e
   * "mm/vmalloc: fix return value of vb_alloc if size is 0", v6.9):
   * vm_map_ram(pages, 0) — vb_alloc WARNs and returns NULL, which is not an
   * ERR_PTR, so vm_map_ram goes on to map [0, 0) and vmap_page_range BUGs.
   */
  it("vm_map_ram of 0 pages WARNs, then BUGs in vmap_page_range (v4.19, fixed in v6.9)", () => {
    const { arr } = boot("arm32");
    expect(() => map(arr, 0)).toThrow(KernelBug);
    expect(texts(takeReports())).toEqual(["WARN: WARNING: CPU: 0 at mm/vmalloc.c vb_alloc: WARN_ON(size == 0)"]);
  });
});

describe("per-CPU queues (arm32, 2 CPUs, the main thread acting as each CPU in turn)", () => {
  /*
   *   B (CPU 0's block)        B+4M (CPU 1's block)
   *   0: a0   1-2: b0          0: a1   1: b1
   */
  it("each CPU carves from its own block; a remote unmap dirties the owner's block", () => {
    const { V: B, arr } = boot("arm32", 2);
    const on = (cpu: number, f: () => number) => {
      setCurrentCpu(cpu);
      try {
        return f();
      } finally {
        setCurrentCpu(0);
      }
    };
    const a0 = on(0, () => map(arr, 1));
    const a1 = on(1, () => map(arr, 1));
    const b0 = on(0, () => map(arr, 2));
    const b1 = on(1, () => map(arr, 1));
    expect([a0, a1, b0, b1].map(hex)).toEqual([B, B + MB4, B + 0x1000, B + MB4 + 0x1000].map(hex));
    expect(blocks()).toEqual([
      { start: hex(B), free: 1021, dirty: 0, dirtyMin: 1024, dirtyMax: 0, cpu: 0 },
      { start: hex(B + MB4), free: 1022, dirty: 0, dirtyMin: 1024, dirtyMax: 0, cpu: 1 },
    ]);
    on(1, () => {
      vm_unmap_ram(b0, 2);
      return 0;
    });
    expect(blocks()[0]).toEqual({ start: hex(B), free: 1021, dirty: 2, dirtyMin: 1, dirtyMax: 3, cpu: 0 });
    expect(checkVmapBlocks()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });
});

describe.each([
  { cpus: 2, layout: "arm64-va48", seed: 0x7b1 },
  { cpus: 4, layout: "arm64-va48", seed: 0x7b2 },
  { cpus: 2, layout: "arm32", seed: 0x7b3 },
] as const)("vm_map_ram/vm_unmap_ram on $cpus CPUs ($layout)", ({ cpus, layout, seed }) => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it(`seed ${seed}: seeded random maps, mostly unmapped remotely, end consistent with every page back`, async () => {
    m = await Machine.boot({ cpus, layout, seed });
    // The main thread acts for the parked CPUs: their cpu slabs, then their pcp lists.
    kmem_cache_shrink_all();
    drain_all_pages();
    const free0 = nr_free_pages();
    const tables0 = pgtablePages();
    const areas0: number[] = [];
    forEachVmapArea((va) => areas0.push(va));

    const res = (await m.runAll("vmap_block_stress", { iters: 3000 })) as VmapBlockStressResult[];
    console.log(`seed ${seed}: ${JSON.stringify(res)}`);
    for (const r of res) {
      expect(r.failures, `seed ${seed}`).toBe(0);
      expect(r.maps + r.aliases).toBe(3000);
      expect(r.unmaps).toBeGreaterThan(r.maps / 2);
      expect(r.aliases).toBeGreaterThan(0);
    }
    expect(checkVmapBlocks(), `seed ${seed}`).toEqual([]);
    expect(vmapBlocks().length).toBeGreaterThan(0);

    expect(await m.run(cpus - 1, "vmap_block_stress_release")).toBeGreaterThan(0);
    // vm_unmap_aliases purged every block (all fragmented now) and every lazy area; rcu_barrier freed them.
    expect(vmapBlocks(), `seed ${seed}`).toEqual([]);
    expect(vmap_lazy_nr_read()).toBe(0);
    const areas: number[] = [];
    forEachVmapArea((va) => areas.push(va));
    expect(areas).toEqual(areas0);
    kmem_cache_shrink_all();
    drain_all_pages();
    // Pages conserved: all back in the buddy allocator but the page tables the maps populated (never freed).
    expect(nr_free_pages() + free_pcp_pages() + (pgtablePages() - tables0), `seed ${seed}`).toBe(free0);
    expect(texts(m.reports), `seed ${seed}`).toEqual([]);
  });
});
