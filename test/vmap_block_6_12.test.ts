/**
 * v6.12's per-CPU kva allocator (src/mm/v6.12/vmap_block.ts) on the main
 * thread, acting as each CPU in turn: block carving and used_map, the
 * address hash of the per-CPU xarrays, vb->cpu, the dirty ranges that
 * vm_unmap_aliases flushes once, the purge of fragmented blocks with and
 * without VMAP_PURGE_THRESHOLD, large mappings, failures — and the checker
 * of src/check/v6.12/vmap_block.ts failing on corrupted blocks; then a
 * seeded stress on 2-4 CPUs (worker threads) that must end clean.
 */
import { afterEach, describe, expect, it } from "vitest";
import { F64, I32, U8, createArena, theArena } from "../src/shared/arena.js";
import { PAGE_SIZE, layoutOf, makeConfig } from "../src/shared/config.js";
import { type LayoutName, layoutFor, formatKaddr } from "../src/shared/layouts.js";
import { type Report, takeReports } from "../src/shared/report.js";
import { per_cpu_ptr, setCurrentCpu } from "../src/shared/smp.js";
import "../src/workers/boot.js";
import { lockdepAttach } from "../src/locks/lockdep.js";
import { rcu_cpu_starting, rcu_init } from "../src/rcu/tree.js";
import { workqueue_init_early } from "../src/kernel/workqueue.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import {
  alloc_page,
  drain_all_pages,
  free_pcp_pages,
  mem_init,
  nr_free_pages,
  page_address,
  page_to_pfn,
} from "../src/mm/page_alloc.js";
import { Machine } from "../src/workers/machine.js";
import type { VmapBlockStressResult } from "../src/workers/workloads/vmap_block.js";
import { kmem_cache_init, kmem_cache_shrink_all, slabinfo } from "../src/mm/slab.js";
import { PAGE_KERNEL, kernel_pte_lookup, mk_pte, paging_init, pgtablePages } from "../src/mm/pgtable.js";
import { tlbStats } from "../src/mm/tlbflush.js";
import { isFault, mmuRead, mmuWrite, staleTranslation } from "../src/mm/mmu.js";
import type { InjectName } from "../src/shared/inject.js";
import { find_next_bit } from "../src/lib/bitmap.js";
import { list_del_rcu } from "../src/lib/list.js";
import { xa_load } from "../src/mm/xarray.js";
import {
  VMAP_AREA,
  VMAP_FLAGS_MASK,
  VMAP_RAM,
  find_vmap_area,
  freeBlocks,
  ne_fit_preload_node,
  purge_vmap_area_lazy,
  vmalloc_init,
  vmap_lazy_nr_read,
  vread_iter,
} from "../src/mm/v6.12/vmalloc.js";
import {
  VMAP_BBMAP_BITS,
  VMAP_BLOCK,
  VMAP_BLOCK_QUEUE,
  VMAP_BLOCK_SIZE,
  VMAP_MAX_ALLOC,
  VMAP_PURGE_THRESHOLD,
  addr_to_vb_idx,
  addr_to_vb_xa,
  forEachVmapBlock,
  vmapBlockGeometry,
  vmapBlocks,
  vmap_block_queue,
  vm_map_ram,
  vm_unmap_aliases,
  vm_unmap_ram,
} from "../src/mm/v6.12/vmap_block.js";
import { checkVmapBlocks } from "../src/check/v6.12/vmap_block.js";

const MB2 = 0x200000;
const MB4 = 0x400000;
const hex = (v: number) => `0x${v.toString(16)}`;
const texts = (rs: Report[]) => rs.map((r) => `${r.kind}: ${r.text.split("\n")[0]}`);

/**
 * Boots a v6.12 machine on the main thread (CPU 0: start_kernel's steps with
 * v6.12's vmalloc_init) and builds one page array of `n` fresh pages; every
 * vm_map_ram below maps a prefix of it.
 */
function boot(layout: LayoutName, cpus = 1, n = 72, inject: InjectName[] = []) {
  createArena(makeConfig({ kernel: "6.12", cpus, layout, workqueue: "explicit", inject }));
  setCurrentCpu(0);
  lockdepAttach();
  mem_init();
  kmem_cache_init();
  paging_init();
  rcu_init();
  workqueue_init_early();
  vmalloc_init();
  rcu_cpu_starting(0);
  percpuCpuOnline();
  takeReports();
  const pages = Array.from({ length: n }, () => alloc_page(GFP_KERNEL));
  const arr = page_address(alloc_page(GFP_KERNEL));
  pages.forEach((p, i) => {
    I32[(arr >> 2) + i] = p;
  });
  return { V: layoutOf(theArena().config).vmallocStart, pages, arr };
}

const map = (arr: number, count: number) => vm_map_ram(arr, count, -1);
const blocks = () => vmapBlocks().map((b) => ({ ...b, start: hex(b.start) }));
/** A block in the state vm_map_ram leaves a fresh one in, overridden by `o`. */
const block = (start: number, o: object) => ({
  start: hex(start),
  free: 1024,
  dirty: 0,
  dirtyMin: 1024,
  dirtyMax: 0,
  used: 0,
  cpu: 0,
  queued: true,
  slot: 0,
  ...o,
});
/** The vmap_block record of the block at kaddr `start`. */
function vbAt(start: number): number {
  let found = 0;
  forEachVmapBlock((_slot, idx, vb) => {
    if (idx === addr_to_vb_idx(start)) found = vb;
  });
  return found;
}
/** The page runs set in a block's used_map, as [first, end) pairs. */
function usedRuns(vb: number): [number, number][] {
  const runs: [number, number][] = [];
  const at = vb + VMAP_BLOCK.off.used_map;
  for (let i = find_next_bit(at, VMAP_BBMAP_BITS, 0); i < VMAP_BBMAP_BITS; ) {
    let j = i;
    while (j < VMAP_BBMAP_BITS && I32[(at >> 2) + (j >>> 5)]! & (1 << (j & 31))) j++;
    runs.push([i, j]);
    i = find_next_bit(at, VMAP_BBMAP_BITS, j);
  }
  return runs;
}
function on<T>(cpu: number, f: () => T): T {
  setCurrentCpu(cpu);
  try {
    return f();
  } finally {
    setCurrentCpu(0);
  }
}

/*
 * test/struct.test.ts pins generation 1's vmap_block and vmap_block_queue under
 * those names; v6.12's tables are pinned here. used_map is sized for
 * VMAP_BBMAP_BITS_MAX (32 words).
 */
describe("v6.12's struct tables", () => {
  it.each([
    [VMAP_BLOCK_QUEUE, 56, { lock: 0, free: 20, vmap_blocks: 28 }],
    [
      VMAP_BLOCK,
      196,
      {
        lock: 0,
        va: 20,
        free: 24,
        dirty: 28,
        used_map: 32,
        dirty_min: 160,
        dirty_max: 164,
        free_list: 168,
        rcu_head: 176,
        purge: 184,
        cpu: 192,
      },
    ],
  ] as const)("struct %# is pinned", (s, size, off) => {
    expect({ size: s.size, align: s.align }).toEqual({ size, align: 4 });
    expect({ ...s.off }).toEqual(off);
  });
});

describe("VMAP_BBMAP_BITS, VMAP_BLOCK_SIZE and VMAP_PURGE_THRESHOLD as v6.12 computes them", () => {
  it.each([
    ["arm64-va48", 1, 64, 1024],
    ["arm64-va48", 64, 64, 1024],
    ["arm64-va39", 4, 64, 1024],
    ["arm32", 2, 32, 1024],
    ["arm32", 3, 32, 512],
    ["arm32", 8, 32, 256],
    ["arm32", 16, 32, 128],
    ["arm32", 32, 32, 64],
  ] as const)("%s, NR_CPUS %i: VMAP_MAX_ALLOC %i, VMAP_BBMAP_BITS %i", (layout, cpus, maxAlloc, bits) => {
    const g = vmapBlockGeometry(layoutFor("6.12", layout), cpus);
    expect([g.maxAlloc, g.bbmapBits, g.blockSize]).toEqual([maxAlloc, bits, bits * PAGE_SIZE]);
  });

  it("the machine's values follow its layout and CPU count", () => {
    boot("arm32", 3);
    expect([VMAP_MAX_ALLOC, VMAP_BBMAP_BITS, VMAP_BLOCK_SIZE, VMAP_PURGE_THRESHOLD]).toEqual([32, 512, MB2, 128]);
    boot("arm64-va48", 2);
    expect([VMAP_MAX_ALLOC, VMAP_BBMAP_BITS, VMAP_BLOCK_SIZE, VMAP_PURGE_THRESHOLD]).toEqual([64, 1024, MB4, 256]);
  });
});

/*
 * Block carving on one CPU (arm32: B = VMALLOC_START = 0xf0800000, the
 * lowest 4 MiB-aligned fit of the empty free tree).
 *
 *   page of B   0   1 2   3 4 5 6   7   8 ...   1000 ... 1015   ...
 *   mapping     a   b b   c c c .   d   e (31 × 32 pages)  f (16)
 *
 * c maps 3 pages and takes 2^2: page 6 is in used_map but not mapped. After
 * 31 × 32 pages, 24 are left: a 32-page map opens B + 4 MiB and B stays
 * first on the queue, so f comes from B.
 */
describe("vm_map_ram block carving and used_map (arm32, one CPU)", () => {
  it("carves 2^order runs front to back, marks them in used_map; a full MAX opens the next block", () => {
    const { V: B, pages, arr } = boot("arm32");
    expect([map(arr, 1), map(arr, 2), map(arr, 3), map(arr, 1)].map(hex)).toEqual(
      [B, B + 0x1000, B + 0x3000, B + 0x7000].map(hex),
    );
    expect(blocks()).toEqual([block(B, { free: 1016, used: 8 })]);
    expect(usedRuns(vbAt(B))).toEqual([[0, 8]]);
    for (let i = 0; i < 3; i++)
      expect(hex(kernel_pte_lookup(B + 0x3000 + i * PAGE_SIZE))).toBe(hex(mk_pte(pages[i]!, PAGE_KERNEL)));
    expect(kernel_pte_lookup(B + 0x6000)).toBe(0);

    // Contents round trip through the page tables, across c's page boundary.
    const bytes = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    expect(mmuWrite(B + 0x4000 - 8, bytes)).toBe(true);
    expect(U8[page_address(pages[0]!) + PAGE_SIZE - 8]).toBe(0xa0);
    expect(U8[page_address(pages[1]!)]).toBe(0xa8);

    for (let i = 0; i < 31; i++) expect(hex(map(arr, 32))).toBe(hex(B + (8 + i * 32) * PAGE_SIZE));
    expect(hex(map(arr, 32))).toBe(hex(B + MB4));
    expect(hex(map(arr, 16))).toBe(hex(B + 1000 * PAGE_SIZE));
    expect(blocks()).toEqual([block(B, { free: 8, used: 1016 }), block(B + MB4, { free: 992, used: 32 })]);

    // A block's area: one aligned VMAP_BLOCK_SIZE, flags VMAP_RAM | VMAP_BLOCK, no vm_struct.
    const va = find_vmap_area(B + MB4 + 0x1234);
    expect([hex(F64[(va + VMAP_AREA.off.va_start) >> 3]!), hex(F64[(va + VMAP_AREA.off.va_end) >> 3]!)]).toEqual([
      hex(B + MB4),
      hex(B + 2 * MB4),
    ]);
    expect(I32[(va + VMAP_AREA.off.flags) >> 2]! & VMAP_FLAGS_MASK).toBe(3);
    expect(I32[(va + VMAP_AREA.off.vm) >> 2]).toBe(0);
    expect(checkVmapBlocks()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });

  it("vm_unmap_ram clears the run in used_map and widens the dirty range", () => {
    const { V: B, arr } = boot("arm32");
    const [a, b, c, d] = [map(arr, 1), map(arr, 2), map(arr, 3), map(arr, 1)];
    vm_unmap_ram(b, 2);
    expect(blocks()).toEqual([block(B, { free: 1016, used: 6, dirty: 2, dirtyMin: 1, dirtyMax: 3 })]);
    vm_unmap_ram(c, 3); // its whole 2^2 run goes dirty, the unmapped fourth page too
    expect(blocks()).toEqual([block(B, { free: 1016, used: 2, dirty: 6, dirtyMin: 1, dirtyMax: 7 })]);
    expect(usedRuns(vbAt(B))).toEqual([
      [0, 1],
      [7, 8],
    ]);
    for (const x of [a, d]) expect(kernel_pte_lookup(x)).not.toBe(0);
    expect(checkVmapBlocks()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });
});

describe("addr_to_vb_xa: the block hash over the per-CPU xarrays", () => {
  /*
   * arm32, 3 CPUs: 512-page (2 MiB) blocks. B = 0xf0800000 is block number
   * B / 2 MiB = 1924, and 1924 % 3 = 1: the blocks CPUs 0, 1, 2 open at B,
   * B + 2M, B + 4M go into the xarrays of slots 1, 2, 0 at indices 0, 1, 2.
   */
  it("hashes by block number modulo nr_cpu_ids, not by owner; vb->cpu names the owner's queue", () => {
    const { V: B, arr } = boot("arm32", 3);
    const addrs = [0, 1, 2].map((cpu) => on(cpu, () => map(arr, 1)));
    expect(addrs.map(hex)).toEqual([B, B + MB2, B + 2 * MB2].map(hex));
    const fresh = { free: 511, used: 1, dirtyMin: 512 };
    expect(blocks()).toEqual([
      block(B, { ...fresh, cpu: 0, slot: 1 }),
      block(B + MB2, { ...fresh, cpu: 1, slot: 2 }),
      block(B + 2 * MB2, { ...fresh, cpu: 2, slot: 0 }),
    ]);
    for (const [i, a] of addrs.entries()) {
      const slot = (1 + i) % 3;
      expect(addr_to_vb_xa(a + 5 * PAGE_SIZE)).toBe(
        per_cpu_ptr(vmap_block_queue, slot) + VMAP_BLOCK_QUEUE.off.vmap_blocks,
      );
      expect(addr_to_vb_idx(a)).toBe(i);
      expect(xa_load(addr_to_vb_xa(a), i)).toBe(vbAt(a));
    }
    expect(checkVmapBlocks()).toEqual([]);
  });

  /*
   * The hash takes the full address: on arm64-va39 the kernel half starts at
   * 2^64 - 2^39, whose block number is 2 modulo 3, so a kaddr's own block
   * number would pick the wrong slot.
   */
  it("hashes the full 64-bit address (arm64-va39, 3 CPUs)", () => {
    const { arr } = boot("arm64-va39", 3);
    const addrs = [0, 1, 2].map((cpu) => on(cpu, () => map(arr, 1)));
    const layout = layoutOf(theArena().config);
    const fullSlot = (a: number) => Number((BigInt(formatKaddr(layout, a)) / BigInt(MB4)) % 3n);
    const bs = vmapBlocks();
    expect(bs.map((b) => [hex(b.start), b.cpu, b.slot])).toEqual(addrs.map((a, i) => [hex(a), i, fullSlot(a)]));
    expect(addrs.some((a) => fullSlot(a) !== Math.floor(a / MB4) % 3)).toBe(true);
    for (const a of addrs) vm_unmap_ram(a, 1);
    expect(vmapBlocks().map((b) => b.dirty)).toEqual([1, 1, 1]);
    expect(checkVmapBlocks()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });

  /*
   * arm32, 2 CPUs (4 MiB blocks; B / 4 MiB = 962, even): CPU 1 opens B (slot
   * 0), CPU 0 opens B + 4M (slot 1). CPU 0 unmapping CPU 1's page finds the
   * block through slot 0's xarray; the block stays on CPU 1's queue.
   */
  it("a remote vm_unmap_ram finds the block through its hash slot and dirties it", () => {
    const { V: B, arr } = boot("arm32", 2);
    const x1 = on(1, () => map(arr, 2));
    const x0 = on(0, () => map(arr, 1));
    expect([x1, x0].map(hex)).toEqual([B, B + MB4].map(hex));
    vm_unmap_ram(x1, 2);
    expect(blocks()).toEqual([
      block(B, { free: 1022, dirty: 2, dirtyMin: 0, dirtyMax: 2, cpu: 1, slot: 0 }),
      block(B + MB4, { free: 1023, used: 1, cpu: 0, slot: 1 }),
    ]);
    // CPU 1's next map comes from its own block again.
    expect(hex(on(1, () => map(arr, 1)))).toBe(hex(B + 2 * PAGE_SIZE));
    expect(checkVmapBlocks()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });
});

describe("vm_unmap_aliases (arm32, one CPU)", () => {
  /*
   *   page of B   0   1 2   3   4 ...
   *   mapping     a   b b   c   free
   *
   * Unmapping b leaves its translations in the TLB (vb_free does not flush).
   * vm_unmap_aliases flushes [1, 3) and marks the range flushed (v6.5,
   * a09fad96ffb1): a second call flushes nothing.
   */
  it("flushes each dirty range once", () => {
    const { V: B, arr } = boot("arm32");
    const [a, b, c] = [map(arr, 1), map(arr, 2), map(arr, 1)];
    expect(isFault(mmuRead(b, 8))).toBe(false); // fills this CPU's TLB
    vm_unmap_ram(b, 2);
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
    expect(blocks()).toEqual([block(B, { free: 1020, used: 2, dirty: 2 })]);
    vm_unmap_aliases();
    expect(tlbStats().flushRange).toBe(flushes + 1);
    expect(checkVmapBlocks()).toEqual([]);
  });

  /*
   * A block with no free page is on no queue; v6.12 walks the xarrays, so
   * its dirty pages are flushed too (fc1e0d980037, v6.5; v4.19 misses them).
   */
  it("flushes the dirty pages of a fully used block", () => {
    const { V: B, arr } = boot("arm32");
    const addrs = Array.from({ length: 32 }, () => map(arr, 32));
    expect(isFault(mmuRead(addrs[0]!, 8))).toBe(false);
    vm_unmap_ram(addrs[0]!, 32);
    expect(blocks()).toEqual([block(B, { free: 0, used: 992, dirty: 32, dirtyMin: 0, dirtyMax: 32, queued: false })]);
    const flushes = tlbStats().flushRange;
    vm_unmap_aliases();
    expect(tlbStats().flushRange).toBe(flushes + 1);
    expect(isFault(mmuRead(addrs[0]!, 8))).toBe(true);
    expect(texts(takeReports())).toEqual([
      "fault: Unable to handle kernel paging request at virtual address 0xf0800000",
    ]);
  });

  it("with --inject vb-full-not-flushed skips that block and leaves the translation (as before fc1e0d980037)", () => {
    const { arr, pages } = boot("arm32", 1, 72, ["vb-full-not-flushed"]);
    const addrs = Array.from({ length: 32 }, () => map(arr, 32));
    expect(isFault(mmuRead(addrs[0]!, 8))).toBe(false);
    vm_unmap_ram(addrs[0]!, 32);
    expect(staleTranslation(addrs[0]!)).toBe(page_to_pfn(pages[0]!));
    const flushes = tlbStats().flushRange;
    vm_unmap_aliases();
    expect(tlbStats().flushRange).toBe(flushes);
    expect(staleTranslation(addrs[0]!)).toBe(page_to_pfn(pages[0]!));
    expect(takeReports()).toEqual([]);
  });
});

describe("purging fragmented blocks (arm32, one CPU; VMAP_PURGE_THRESHOLD = 256)", () => {
  it("vm_unmap_aliases purges a fragmented block only below the threshold; the harness purge always", () => {
    const { V: B, arr } = boot("arm32");
    // 24 × 32 pages: 256 left free, not below the threshold.
    const xs = Array.from({ length: 24 }, () => map(arr, 32));
    for (const x of xs) vm_unmap_ram(x, 32);
    expect(blocks()).toEqual([block(B, { free: 256, dirty: 768, dirtyMin: 0, dirtyMax: 768 })]);
    vm_unmap_aliases();
    expect(blocks()).toEqual([block(B, { free: 256, dirty: 768 })]);

    // One page more in use and back: 255 free, fragmented, below the threshold.
    vm_unmap_ram(map(arr, 1), 1);
    expect(blocks()).toEqual([block(B, { free: 255, dirty: 769, dirtyMin: 768, dirtyMax: 769 })]);
    vm_unmap_aliases();
    expect(blocks()).toEqual([]);
    // Its area went to the lazy purge and came back in the same call: the next block is at B again.
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(find_vmap_area(B)).toBe(0);

    // A fragmented block far above the threshold: only the harness purge (forced) frees it.
    vm_unmap_ram(map(arr, 1), 1);
    expect(blocks()).toEqual([block(B, { free: 1023, dirty: 1, dirtyMin: 0, dirtyMax: 1 })]);
    vm_unmap_aliases();
    expect(blocks()).toEqual([block(B, { free: 1023, dirty: 1 })]);
    purge_vmap_area_lazy();
    expect(blocks()).toEqual([]);
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(find_vmap_area(B)).toBe(0);
    expect(checkVmapBlocks()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });

  it("a block that becomes all dirty is freed at once and its area purged lazily", () => {
    const { V: B, arr } = boot("arm32");
    const addrs = Array.from({ length: 32 }, () => map(arr, 32));
    for (const a of addrs) vm_unmap_ram(a, 32);
    expect(blocks()).toEqual([]);
    expect(vmap_lazy_nr_read()).toBe(1024);
    expect(hex(map(arr, 1))).toBe(hex(B + MB4)); // B is still taken until the purge
    purge_vmap_area_lazy();
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(find_vmap_area(B)).toBe(0);
    expect(takeReports()).toEqual([]);
  });
});

describe("vread_iter over a vmap block: vmap_ram_vread_iter (arm32, one CPU)", () => {
  /*
   *   page of B   0   1 2   3 4 5 6   7   8 ...
   *   mapping     a   (b)   c c c .   d   free       (b unmapped: not in used_map)
   *
   * The set runs of used_map are [0, 1) and [3, 8): page 0 and pages 3-7 are
   * read through the page tables (page 6 is in c's run but unmapped: zeros),
   * the rest reads as zeros.
   */
  it("reads the runs in used_map and zero-fills the rest", () => {
    const { V: B, pages, arr } = boot("arm32");
    for (let i = 0; i < 3; i++) U8.fill(0x11 * (i + 1), page_address(pages[i]!), page_address(pages[i]!) + PAGE_SIZE);
    const [, b] = [map(arr, 1), map(arr, 2), map(arr, 3), map(arr, 1)];
    vm_unmap_ram(b!, 2);
    const buf = new Uint8Array(9 * PAGE_SIZE).fill(0xee);
    expect(vread_iter(buf, B, buf.length)).toBe(buf.length);
    const pageByte = Array.from({ length: 9 }, (_, i) => buf[i * PAGE_SIZE + 7]);
    expect(pageByte).toEqual([0x11, 0, 0, 0x11, 0x22, 0x33, 0, 0x11, 0]);
    expect(takeReports()).toEqual([]);
  });
});

describe("vm_map_ram beyond VMAP_MAX_ALLOC, failures and bad input (arm32, one CPU)", () => {
  it("a large map is a VMAP_RAM area; vm_unmap_ram unlinks and frees it lazily; a miss WARNs once", () => {
    const { V: B, pages, arr } = boot("arm32");
    const L = map(arr, 33);
    expect(hex(L)).toBe(hex(B));
    const va = find_vmap_area(L);
    expect(hex(F64[(va + VMAP_AREA.off.va_end) >> 3]!)).toBe(hex(B + 33 * PAGE_SIZE));
    expect(I32[(va + VMAP_AREA.off.flags) >> 2]! & VMAP_FLAGS_MASK).toBe(VMAP_RAM);
    expect(hex(kernel_pte_lookup(B + 32 * PAGE_SIZE))).toBe(hex(mk_pte(pages[32]!, PAGE_KERNEL)));
    expect(hex(map(arr, 1))).toBe(hex(B + MB4));

    vm_unmap_ram(L, 33);
    expect(kernel_pte_lookup(B)).toBe(0);
    expect(find_vmap_area(L)).toBe(0);
    expect(vmap_lazy_nr_read()).toBe(33);
    vm_unmap_ram(B + 8 * MB4, 40);
    vm_unmap_ram(B + 9 * MB4, 40);
    expect(texts(takeReports())).toEqual(["WARN: WARNING: CPU: 0 at mm/vmalloc.c vm_unmap_ram: WARN_ON_ONCE(!va)"]);
    expect(vmap_lazy_nr_read()).toBe(33);
  });

  it("a failing page-table map gives its run back as dirty", () => {
    const { V: B, pages, arr } = boot("arm32");
    I32[(arr >> 2) + 1] = 0; // pages[1] missing: the map WARNs and fails after mapping pages[0]
    expect(map(arr, 2)).toBe(0);
    expect(texts(takeReports())).toEqual([
      "WARN: WARNING: CPU: 0 at mm/vmalloc.c vmap_pte_range: WARN_ON(!page) at 0xf0801000",
    ]);
    expect(kernel_pte_lookup(B)).toBe(0);
    expect(blocks()).toEqual([block(B, { free: 1022, dirty: 2, dirtyMin: 0, dirtyMax: 2 })]);
    I32[(arr >> 2) + 1] = pages[1]!;
    expect(hex(map(arr, 1))).toBe(hex(B + 0x2000));
  });

  it("vm_map_ram of 0 pages WARNs and returns NULL (v6.9, ac0476e8ca2e)", () => {
    const { arr } = boot("arm32");
    expect(map(arr, 0)).toBe(0);
    expect(texts(takeReports())).toEqual(["WARN: WARNING: CPU: 0 at mm/vmalloc.c vb_alloc: WARN_ON(size == 0)"]);
    expect(blocks()).toEqual([]);
  });

  it("vm_unmap_ram BUGs on a bad address; a small unmap where no block is oopses on vb->lock", () => {
    const { V: B, arr } = boot("arm32");
    const a = map(arr, 1);
    expect(() => vm_unmap_ram(0, 1)).toThrow(/BUG_ON\(!addr\)/);
    expect(() => vm_unmap_ram(B - PAGE_SIZE, 1)).toThrow(/BUG_ON\(addr < VMALLOC_START\)/);
    expect(() => vm_unmap_ram(layoutFor("6.12", "arm32").vmallocEnd + PAGE_SIZE, 1)).toThrow(
      /BUG_ON\(addr > VMALLOC_END\)/,
    );
    expect(() => vm_unmap_ram(a + 8, 1)).toThrow(/BUG_ON\(!PAGE_ALIGNED\(addr\)\)/);
    vm_unmap_ram(B + 2 * MB4, 1);
    expect(texts(takeReports())).toEqual([
      "fault: Unable to handle kernel NULL pointer dereference at virtual address 0x00000000",
    ]);
    expect(blocks()).toEqual([block(B, { free: 1023, used: 1 })]);
  });
});

describe("checkVmapBlocks (v6.12) fails on corrupted blocks", () => {
  /** A one-CPU arm32 machine with one block: pages 0-1 in use (a), 2 dirty (b), 3.. free. */
  function corruptible() {
    const { V: B, arr } = boot("arm32");
    map(arr, 2);
    vm_unmap_ram(map(arr, 1), 1);
    expect(checkVmapBlocks()).toEqual([]);
    return { B, vb: vbAt(B) };
  }
  const O = VMAP_BLOCK.off;

  it.each([
    [
      "a used_map bit cleared",
      (vb: number) => {
        I32[(vb + O.used_map) >> 2] = 1;
      },
      /free 1021 \+ dirty 1 \+ used 1 of 1024/,
    ],
    [
      "a used_map bit past the carved part",
      (vb: number) => {
        I32[(vb + O.used_map) >> 2] = 0b1011;
        I32[(vb + O.dirty) >> 2] = 0;
      },
      /used_map has page 3 past the carved 3/,
    ],
    [
      "free miscounted",
      (vb: number) => {
        I32[(vb + O.free) >> 2] = 1020;
      },
      /free 1020 \+ dirty 1 \+ used 2 of 1024/,
    ],
    [
      "a dirty range past the carved part",
      (vb: number) => {
        I32[(vb + O.dirty_max) >> 2] = 9;
      },
      /dirty range \[2, 9\) with dirty 1, carved 3/,
    ],
    [
      "vb->cpu not a possible CPU",
      (vb: number) => {
        I32[(vb + O.cpu) >> 2] = 7;
      },
      /vb->cpu 7 is not a possible CPU/,
    ],
    [
      "off its queue with free pages",
      (vb: number) => {
        list_del_rcu(vb + O.free_list);
      },
      /free 1021 but not on CPU 0's free list/,
    ],
  ] as const)("%s", (_what, corrupt, want) => {
    const { vb } = corruptible();
    corrupt(vb);
    expect(checkVmapBlocks().join("\n")).toMatch(want);
  });

  it("a mapped page outside used_map", () => {
    const { B, vb } = corruptible();
    I32[(vb + O.used_map) >> 2] = 0b01; // page 1 still mapped
    I32[(vb + O.dirty) >> 2] = 2;
    expect(checkVmapBlocks()).toEqual([`block ${hex(B)}: page 1 is mapped but not in used_map`]);
  });
});

/*
 * The stress of test/vmap_block.test.ts on v6.12's blocks: seeded random maps
 * on every CPU, each parked in a shared slot and mostly unmapped by another
 * CPU (vb_free through the hash slot's xarray into another CPU's block).
 * Afterwards: the checker is clean; vm_unmap_aliases, then the harness purge,
 * free every block; the free tree is back as at boot; and every page is back
 * but the page tables and the vmap_area slabs holding each CPU's preloaded
 * ne_fit_preload_node object (kept across calls, as v6.12 keeps it).
 */
describe.each([
  { cpus: 2, layout: "arm64-va48", seed: 0x6b1 },
  { cpus: 4, layout: "arm64-va39", seed: 0x6b2 },
  { cpus: 2, layout: "arm32", seed: 0x6b3 },
] as const)("vm_map_ram/vm_unmap_ram on $cpus CPUs ($layout)", ({ cpus, layout, seed }) => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  const vmapAreaCache = () => slabinfo().find((c) => c.name === "vmap_area")!;
  const preloads = () =>
    Array.from({ length: cpus }, (_, c) => I32[per_cpu_ptr(ne_fit_preload_node, c) >> 2]).filter((p) => p !== 0).length;

  it(`seed ${seed}: seeded random maps, mostly unmapped remotely, end consistent with every page back`, async () => {
    m = await Machine.boot({ cpus, layout, seed, kernel: "6.12" });
    // The main thread acts for the parked CPUs: their cpu slabs, then their pcp lists.
    kmem_cache_shrink_all();
    drain_all_pages();
    const free0 = nr_free_pages();
    const tables0 = pgtablePages();
    const freeTree0 = freeBlocks();
    const cache0 = vmapAreaCache();
    const preloads0 = preloads();

    const res = (await m.runAll("vmap_block_stress", { iters: 3000 })) as VmapBlockStressResult[];
    for (const r of res) {
      expect(r.failures, `seed ${seed}`).toBe(0);
      expect(r.maps + r.aliases).toBe(3000);
      expect(r.unmaps).toBeGreaterThan(r.maps / 2);
      expect(r.aliases).toBeGreaterThan(0);
    }
    expect(checkVmapBlocks(), `seed ${seed}`).toEqual([]);
    expect(vmapBlocks().length).toBeGreaterThan(0);

    expect(await m.run(cpus - 1, "vmap_block_stress_release")).toBeGreaterThan(0);
    expect(checkVmapBlocks(), `seed ${seed}`).toEqual([]);
    // vm_unmap_aliases keeps the fragmented blocks with VMAP_PURGE_THRESHOLD free pages or more; the purge takes them.
    await m.run(0, "vmalloc_drain", { purge: true });
    expect(vmapBlocks(), `seed ${seed}`).toEqual([]);
    expect(await m.run(cpus - 1, "vmap_block_stress_release")).toBe(0); // its rcu_barrier frees the blocks
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(freeBlocks(), `seed ${seed}`).toEqual(freeTree0);
    kmem_cache_shrink_all();
    drain_all_pages();
    const cache = vmapAreaCache();
    expect(cache.active_objs - cache0.active_objs).toBe(preloads() - preloads0);
    const preloadPages = (cache.num_slabs - cache0.num_slabs) * cache.pagesperslab;
    expect(nr_free_pages() + free_pcp_pages() + (pgtablePages() - tables0) + preloadPages, `seed ${seed}`).toBe(free0);
    expect(texts(m.reports), `seed ${seed}`).toEqual([]);
  });
});
