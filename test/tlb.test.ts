import { afterEach, describe, expect, it } from "vitest";
import { I32 } from "../src/shared/arena.js";
import { PAGE_SIZE, layoutOf, makeConfig } from "../src/shared/config.js";
import { formatKaddr } from "../src/shared/layouts.js";
import { takeReports } from "../src/shared/report.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine } from "../src/workers/machine.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { alloc_page, page_address, page_to_pfn } from "../src/mm/page_alloc.js";
import { PAGE_KERNEL, vmap_page_range, vunmap_page_range } from "../src/mm/pgtable.js";
import {
  MAX_TLB_RANGE,
  TLBI_LOG_SIZE,
  flush_tlb_all,
  flush_tlb_kernel_range,
  local_flush_tlb_all,
  tlbStats,
} from "../src/mm/tlbflush.js";
import { type Fault, isFault, mmuRead, mmuWrite, staleTranslation } from "../src/mm/mmu.js";

const DATA = Uint8Array.of(0xde, 0xad, 0xbe, 0xef);

/*
 * Two pages at V = VMALLOC_START on the main thread (CPU 0):
 *
 *   kaddr   V        V+0x1000   V+0x2000
 *           [ A p0 ][ B p1 ]    none
 */
function bootTwoPages() {
  const config = makeConfig({ cpus: 1 });
  start_kernel(config);
  const L = layoutOf(config);
  const pages = [alloc_page(GFP_KERNEL), alloc_page(GFP_KERNEL)];
  const arr = page_address(alloc_page(GFP_KERNEL));
  I32[arr >> 2] = pages[0]!;
  I32[(arr >> 2) + 1] = pages[1]!;
  const V = L.vmallocStart;
  expect(vmap_page_range(V, V + 2 * PAGE_SIZE, PAGE_KERNEL, arr)).toBe(2);
  expect(mmuWrite(V, DATA)).toBe(true);
  expect(mmuWrite(V + PAGE_SIZE, DATA)).toBe(true);
  takeReports();
  return { V, pages, fmt: (k: number) => formatKaddr(L, k) };
}

describe("per-CPU TLB, one CPU", () => {
  it("a read after vunmap without a flush is served stale and reported; after the flush it faults", () => {
    const { V, pages, fmt } = bootTwoPages();
    expect(mmuRead(V, 4)).toEqual(DATA); // hit: the writes filled the TLB
    vunmap_page_range(V, V + PAGE_SIZE);
    expect(mmuRead(V, 4)).toEqual(DATA);
    const [stale, ...rest] = takeReports();
    expect(rest).toEqual([]);
    expect(stale!.kind).toBe("stale-tlb");
    expect(stale!.cpu).toBe(0);
    expect(stale!.text).toContain(`CPU0: read at virtual address ${fmt(V)}`);
    expect(stale!.text).toContain(`pfn ${page_to_pfn(pages[0]!)}`);

    flush_tlb_kernel_range(V, V + PAGE_SIZE);
    const r = mmuRead(V, 4);
    expect(isFault(r)).toBe(true);
    expect(takeReports().map((x) => [x.kind, x.text.split("\n")[0]])).toEqual([
      ["fault", `Unable to handle kernel paging request at virtual address ${fmt(V)}`],
    ]);
    // The other page's entry was outside the range and is still a clean hit.
    expect(mmuRead(V + PAGE_SIZE, 4)).toEqual(DATA);
    expect(takeReports()).toEqual([]);
    const s = tlbStats();
    expect(s.flushRange).toBe(1);
    expect(s.invalidated).toBe(1);
    expect(s.stale).toBe(1);
  });

  it("staleTranslation finds the entry an unflushed unmap left, without an access, until the flush", () => {
    const { V, pages } = bootTwoPages();
    expect(staleTranslation(V)).toBe(-1); // cached, PTE unchanged
    expect(staleTranslation(V + 2 * PAGE_SIZE)).toBe(-1); // not cached
    vunmap_page_range(V, V + PAGE_SIZE);
    const before = tlbStats();
    expect(staleTranslation(V)).toBe(page_to_pfn(pages[0]!));
    expect(staleTranslation(V + PAGE_SIZE)).toBe(-1);
    expect(tlbStats()).toEqual(before); // a look, not an access: no hit, miss or stale use counted
    expect(takeReports()).toEqual([]);
    flush_tlb_kernel_range(V, V + PAGE_SIZE);
    expect(staleTranslation(V)).toBe(-1);
  });

  it("a flush of the wrong range leaves the stale entry detectable", () => {
    const { V } = bootTwoPages();
    mmuRead(V, 1);
    vunmap_page_range(V, V + PAGE_SIZE);
    flush_tlb_kernel_range(V + PAGE_SIZE, V + 2 * PAGE_SIZE); // off by one page
    expect(mmuRead(V, 4)).toEqual(DATA);
    expect(takeReports().map((r) => r.kind)).toEqual(["stale-tlb"]);
    // The TLBI loop runs over start >> 12 .. end >> 12, end excluded: [V, V+1) flushes nothing.
    flush_tlb_kernel_range(V, V + 1);
    expect(mmuRead(V, 4)).toEqual(DATA);
    expect(takeReports().map((r) => r.kind)).toEqual(["stale-tlb"]);
    flush_tlb_kernel_range(V, V + PAGE_SIZE);
    expect(isFault(mmuRead(V, 1))).toBe(true);
  });

  it("flush_tlb_all, an over-long range and a lost log all drop every entry", () => {
    const { V } = bootTwoPages();
    const cases: (() => void)[] = [
      () => flush_tlb_all(),
      () => flush_tlb_kernel_range(V + 4 * MAX_TLB_RANGE, V + 6 * MAX_TLB_RANGE), // > MAX_TLB_RANGE: flush_tlb_all
      () => {
        // More broadcasts than the log holds, all for other pages: this CPU falls behind and drops everything.
        for (let i = 0; i <= TLBI_LOG_SIZE; i++) flush_tlb_kernel_range(V + 16 * PAGE_SIZE, V + 17 * PAGE_SIZE);
      },
      () => local_flush_tlb_all(),
    ];
    for (const flush of cases) {
      mmuRead(V, 1);
      mmuRead(V + PAGE_SIZE, 1);
      const before = tlbStats();
      flush();
      mmuRead(V, 1);
      mmuRead(V + PAGE_SIZE, 1);
      const after = tlbStats();
      expect(after.invalidated - before.invalidated).toBe(2);
      expect(after.misses - before.misses).toBe(2);
    }
    expect(tlbStats().flushAll).toBe(2);
    expect(takeReports()).toEqual([]);
  });
});

describe("per-CPU TLB, two CPUs", () => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it("CPU1's entry outlives CPU0's unmap until CPU0 flushes (seed 5)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 5 });
    const L = layoutOf(m.config);
    const V = L.vmallocStart;
    const { pages } = (await m.run(0, "pgtable_map", { start: V, nr: 1 })) as { pages: number[] };
    expect(await m.run(0, "pgtable_write", { kaddr: V, bytes: DATA })).toBe(true);
    expect(await m.run(1, "pgtable_read", { kaddr: V, len: 4 })).toEqual(DATA); // fills CPU1's TLB

    await m.run(0, "pgtable_unmap", { start: V, end: V + PAGE_SIZE }); // no flush yet
    expect(await m.run(1, "pgtable_read", { kaddr: V, len: 4 })).toEqual(DATA);
    expect(m.reports.map((r) => [r.kind, r.cpu])).toEqual([["stale-tlb", 1]]);
    expect(m.reports[0]!.text).toContain(`CPU1: read at virtual address ${formatKaddr(L, V)}`);
    expect(m.reports[0]!.text).toContain(`pfn ${page_to_pfn(pages[0]!)}`);

    await m.run(0, "pgtable_flush", { start: V, end: V + PAGE_SIZE });
    const r = (await m.run(1, "pgtable_read", { kaddr: V, len: 4 })) as Fault;
    expect(isFault(r) && r.kaddr).toBe(V);
    expect(m.reports.slice(1).map((x) => [x.kind, x.cpu, x.text.split("\n")[0]])).toEqual([
      ["fault", 1, `Unable to handle kernel paging request at virtual address ${formatKaddr(L, V)}`],
    ]);
  });
});
