import { afterEach, describe, expect, it } from "vitest";
import { U8, createArena } from "../src/shared/arena.js";
import { MAX_ORDER, type MachineConfig, PAGE_SIZE, makeConfig } from "../src/shared/config.js";
import { type Report, takeReports } from "../src/shared/report.js";
import { lockdepAttach } from "../src/locks/lockdep.js";
import { setCurrentCpu } from "../src/shared/smp.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine } from "../src/workers/machine.js";
import { GFP_ATOMIC, GFP_KERNEL, __GFP_COMP, __GFP_NOWARN, __GFP_ZERO, format_gfp } from "../src/mm/gfp.js";
import { setup_fail_page_alloc } from "../src/mm/fail_page_alloc.js";
import {
  NR_SLAB_UNRECLAIMABLE,
  __free_page,
  __free_pages,
  alloc_page,
  alloc_pages,
  all_vm_events,
  buddyinfo,
  checkBuddyLists,
  drain_all_pages,
  drain_local_pages,
  freeListPfns,
  free_pcp_pages,
  get_page,
  global_zone_page_state,
  mem_init,
  nr_free_pages,
  page_address,
  page_ref_count,
  page_to_pfn,
  pcp_state,
  pfn_to_page,
  put_page,
  totalram_pages,
  virt_to_page,
} from "../src/mm/page_alloc.js";
import { PageBuddy, PageHead, compound_head, compound_order, virt_to_head_page } from "../src/mm/mm_types.js";
import { get_slabinfo, kmem_cache_shrink_all, kmalloc_slab, slabinfo } from "../src/mm/slab.js";

const MiB = 1024 * 1024;

/**
 * The page allocator alone on the main thread (CPU 0): the arena and mem_init,
 * nothing else that allocates, so the free lists are exactly mem_init's.
 */
function bootBuddy(over: Partial<MachineConfig> = {}): void {
  createArena(makeConfig({ cpus: 1, memory: 8 * MiB, ...over }));
  setCurrentCpu(0);
  lockdepAttach();
  mem_init();
  takeReports();
}

const pfn = (page: number) => page_to_pfn(page);
/** Heads of every free list, orders 0..10. */
const freeLists = () => Array.from({ length: MAX_ORDER }, (_, o) => freeListPfns(o));
const texts = (rs: Report[]) => rs.map((r) => `${r.kind}: ${r.text}`);

/*
 * mem_init on 8 MiB (2048 frames): pfn 0 is reserved, the rest is freed in
 * maximal naturally aligned blocks, one per order:
 *
 *   pfn   0 1 2 4 8 16 … 512 1024 … 2047
 *         R o0 o1 o2 o3 o4 … o9 o10
 */
const INITIAL_8M = Array.from({ length: MAX_ORDER }, (_, o) => [1 << o]);

describe("buddy allocator (one CPU)", () => {
  it("mem_init frees every frame but pfn 0 in maximal aligned blocks", () => {
    bootBuddy();
    expect(freeLists()).toEqual(INITIAL_8M);
    expect(buddyinfo()).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(nr_free_pages()).toBe(2047);
    expect(totalram_pages()).toBe(2047);
    expect(page_ref_count(pfn_to_page(0))).toBe(1);
    expect(PageBuddy(pfn_to_page(1))).toBe(true);
    expect(checkBuddyLists()).toEqual([]);
    // 8 MiB: zone_batchsize is 0, so the pcp list is pass-through (high 0, batch 1).
    expect(pcp_state(0)).toEqual({ count: 0, high: 0, batch: 1 });
  });

  it("splits blocks on allocation and merges them back exactly on free", () => {
    bootBuddy();
    const a = alloc_page(GFP_KERNEL); // order-0 list: pfn 1
    const b = alloc_page(GFP_KERNEL); // order-0 empty: split 2-3, take 2, 3 to order 0
    const c = alloc_pages(GFP_KERNEL, 2); // order-2 list: pfn 4
    const d = alloc_pages(GFP_KERNEL, 1); // orders 1, 2 empty: split 8-15: 12 to order 2, 10 to order 1
    /*
     *  pfn  0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 …
     *       R a b . c c c c d d  .  .  .  .  .  . (order 4 …)
     *               o0        o1=10  o2=12
     */
    expect([a, b, c, d].map(pfn)).toEqual([1, 2, 4, 8]);
    expect(buddyinfo()).toEqual([1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]);
    expect(freeLists().slice(0, 4)).toEqual([[3], [10], [12], []]);
    expect(nr_free_pages()).toBe(2047 - 1 - 1 - 4 - 2);
    expect(checkBuddyLists()).toEqual([]);

    // b merges with 3 into 2-3; its order-1 buddy 0-1 is not free, so it stays an order-1 block at the head.
    __free_page(b);
    expect(freeLists().slice(0, 4)).toEqual([[], [2, 10], [12], []]);
    // a cannot merge (pfn 0 is reserved); its higher buddy 2-3 is free, so it queues at the tail.
    __free_page(a);
    __free_pages(c, 2);
    expect(freeLists().slice(0, 4)).toEqual([[1], [2, 10], [4, 12], []]);
    // d merges with 10 (order 1), then 12 (order 2), into 8-15.
    __free_pages(d, 1);
    expect(freeLists()).toEqual(INITIAL_8M);
    expect(nr_free_pages()).toBe(2047);
    expect(checkBuddyLists()).toEqual([]);
    expect(all_vm_events()).toEqual({ pgalloc: 1 + 1 + 4 + 2, pgfree: 1 + 1 + 4 + 2 });
    expect(takeReports()).toEqual([]);
  });

  it("exhausts memory page by page, reports the failure once, and frees back to the exact initial lists", () => {
    bootBuddy();
    const pages: number[] = [];
    for (;;) {
      const p = alloc_page(GFP_KERNEL);
      if (p === 0) break;
      pages.push(p);
    }
    expect(pages.length).toBe(2047);
    expect(new Set(pages).size).toBe(2047);
    expect(nr_free_pages()).toBe(0);
    expect(texts(takeReports())).toEqual([
      "WARN: cpu0: page allocation failure: order:0, mode:0x6000c0(GFP_KERNEL), nodemask=(null)",
    ]);
    expect(alloc_page(GFP_ATOMIC | __GFP_NOWARN)).toBe(0);
    expect(takeReports()).toEqual([]);
    for (const p of pages) __free_page(p);
    expect(freeLists()).toEqual(INITIAL_8M);
    expect(checkBuddyLists()).toEqual([]);
  });

  it("refills the pcp list by batch and frees it down by batch past high (64 MiB: batch 3, high 18)", () => {
    bootBuddy({ memory: 64 * MiB });
    expect(nr_free_pages()).toBe(16383);
    expect(pcp_state(0)).toEqual({ count: 0, high: 18, batch: 3 });
    const before = buddyinfo();

    const first = alloc_page(GFP_KERNEL);
    // rmqueue_bulk took three pages in physical order (1; 2 split from 2-3; 3) and handed out the first.
    expect(pfn(first)).toBe(1);
    expect(pcp_state(0).count).toBe(2);
    expect(nr_free_pages()).toBe(16383 - 3);

    const pages = [first];
    for (let i = 1; i < 20; i++) pages.push(alloc_page(GFP_KERNEL));
    expect(pages.map(pfn)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // Seven refills of three: 21 pages left the buddy lists, one is still on the pcp list.
    expect(pcp_state(0).count).toBe(1);
    expect(nr_free_pages()).toBe(16383 - 21);

    // Frees push onto the pcp list; reaching high (18) sends the 3 coldest back: at the 17th and the 20th free.
    for (const p of pages) __free_page(p);
    expect(pcp_state(0).count).toBe(21 - 6);
    expect(free_pcp_pages()).toBe(15);
    expect(nr_free_pages()).toBe(16383 - 21 + 6);

    drain_local_pages();
    expect(pcp_state(0).count).toBe(0);
    expect(nr_free_pages()).toBe(16383);
    expect(buddyinfo()).toEqual(before);
    expect(checkBuddyLists()).toEqual([]);
  });

  it("__GFP_ZERO zeroes the block; plain allocations keep old contents", () => {
    bootBuddy();
    const p = alloc_pages(GFP_KERNEL, 1);
    U8.fill(0xff, page_address(p), page_address(p) + 2 * PAGE_SIZE);
    __free_pages(p, 1);
    const q = alloc_pages(GFP_KERNEL, 1);
    expect(q).toBe(p);
    expect(U8[page_address(q) + PAGE_SIZE + 7]).toBe(0xff);
    __free_pages(q, 1);
    const z = alloc_pages(GFP_KERNEL | __GFP_ZERO, 1);
    expect(z).toBe(p);
    expect(U8.subarray(page_address(z), page_address(z) + 2 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
  });

  it("compound pages: tails point at the head, references go to the head, the last put frees the block", () => {
    bootBuddy();
    const head = alloc_pages(GFP_KERNEL | __GFP_COMP, 2);
    const tail = pfn_to_page(pfn(head) + 3);
    expect(PageHead(head)).toBe(true);
    expect(compound_order(head)).toBe(2);
    expect(compound_head(tail)).toBe(head);
    expect(virt_to_head_page(page_address(head) + 3 * PAGE_SIZE + 100)).toBe(head);
    expect(virt_to_page(page_address(head) + 3 * PAGE_SIZE + 100)).toBe(tail);
    get_page(tail);
    expect(page_ref_count(head)).toBe(2);
    put_page(head);
    expect(nr_free_pages()).toBe(2047 - 4);
    put_page(tail);
    expect(nr_free_pages()).toBe(2047);
    expect(PageHead(head)).toBe(false);
    expect(compound_head(tail)).toBe(tail);
    expect(checkBuddyLists()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });

  it("reports a double free and a freed reserved page as bad pages, and frees neither", () => {
    bootBuddy();
    const p = alloc_page(GFP_KERNEL);
    __free_page(p);
    __free_page(p);
    const r1 = takeReports();
    expect(r1).toHaveLength(1);
    expect(r1[0]!.kind).toBe("bad-page");
    expect(r1[0]!.text).toMatch(/^page:0x[0-9a-f]+ count:0 mapcount:-129 mapping:0 index:0x0\n/);
    expect(r1[0]!.text).toContain("page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) == 0)");
    expect(nr_free_pages()).toBe(2047);

    __free_page(pfn_to_page(0));
    const r2 = takeReports();
    expect(r2.map((r) => r.kind)).toEqual(["bad-page"]);
    expect(r2[0]!.text).toMatch(/^BUG: Bad page state in process cpu0 {2}pfn:00000\n/);
    expect(r2[0]!.text).toContain("page dumped because: PAGE_FLAGS_CHECK_AT_FREE flag(s) set");
    expect(nr_free_pages()).toBe(2047);
    expect(checkBuddyLists()).toEqual([]);
  });

  it("an order >= MAX_ORDER request WARNs (unless __GFP_NOWARN) and fails", () => {
    bootBuddy();
    expect(alloc_pages(GFP_KERNEL, MAX_ORDER)).toBe(0);
    expect(takeReports().map((r) => r.kind)).toEqual(["WARN"]);
    expect(alloc_pages(GFP_KERNEL | __GFP_NOWARN, MAX_ORDER)).toBe(0);
    expect(takeReports()).toEqual([]);
  });

  it("formats gfp masks as %pGg does", () => {
    expect(format_gfp(GFP_KERNEL)).toBe("GFP_KERNEL");
    expect(format_gfp(GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN)).toBe("GFP_KERNEL|__GFP_NOWARN|__GFP_ZERO");
    expect(format_gfp(GFP_ATOMIC)).toBe("GFP_ATOMIC");
  });

  it("start_kernel runs mem_init first: every frame is free, on a pcp list, or accounted", () => {
    start_kernel(makeConfig({ cpus: 2, memory: 8 * MiB }));
    expect(totalram_pages()).toBe(2047);
    expect(checkBuddyLists()).toEqual([]);
    // kmem_cache_init's records live in slab pages from the buddy allocator.
    expect(global_zone_page_state(NR_SLAB_UNRECLAIMABLE)).toBeGreaterThan(0);
    expect(slabinfo()[0]!.name).toBe("kmem_cache");
  });
});

describe("fail_page_alloc", () => {
  afterEach(() => setup_fail_page_alloc());

  /** '.' for a successful allocation, 'x' for a failed one (each page freed at once). */
  function pattern(n: number, gfp = GFP_KERNEL | __GFP_NOWARN): string {
    let s = "";
    for (let i = 0; i < n; i++) {
      const p = alloc_page(gfp);
      s += p === 0 ? "x" : ".";
      if (p !== 0) __free_page(p);
    }
    return s;
  }

  it("is off by default", () => {
    bootBuddy();
    expect(pattern(50)).toBe(".".repeat(50));
  });

  it("fails exactly the nth allocation, with a page allocation failure report", () => {
    bootBuddy();
    setup_fail_page_alloc({ nth: 3 });
    expect(pattern(5, GFP_KERNEL)).toBe("..x..");
    const reps = takeReports();
    expect(reps).toHaveLength(1);
    expect(reps[0]!.kind).toBe("WARN");
    expect(reps[0]!.text).toBe(
      "FAULT_INJECTION: forcing a failure.\n" +
        "name fail_page_alloc, interval 1, probability 0, space 0, times -1\n" +
        "cpu0: page allocation failure: order:0, mode:0x6000c0(GFP_KERNEL), nodemask=(null)",
    );
    setup_fail_page_alloc({ nth: 2 });
    expect(pattern(3)).toBe(".x.");
    expect(takeReports()).toEqual([]); // __GFP_NOWARN
  });

  it("fails every interval-th allocation, at most `times` times, never a __GFP_NOFAIL one", () => {
    bootBuddy();
    setup_fail_page_alloc({ probability: 100, interval: 4 });
    expect(pattern(12)).toBe("...x...x...x");
    setup_fail_page_alloc({ probability: 100, times: 2 });
    expect(pattern(5)).toBe("xx...");
    setup_fail_page_alloc({ probability: 100 });
    expect(pattern(3, GFP_KERNEL | __GFP_NOWARN | 0x800 /* __GFP_NOFAIL */)).toBe("...");
  });

  it("draws its failures from the machine seed: same seed, same failures", () => {
    const run = (seed: number) => {
      bootBuddy({ seed });
      setup_fail_page_alloc({ probability: 30 });
      return pattern(200);
    };
    const a = run(5);
    expect(run(5)).toBe(a);
    expect(run(6)).not.toBe(a);
    const failures = [...a].filter((c) => c === "x").length;
    expect(failures).toBeGreaterThan(30);
    expect(failures).toBeLessThan(90);
  });

  it("rejects bad knobs", () => {
    bootBuddy();
    expect(() => setup_fail_page_alloc({ probability: 101 })).toThrow(RangeError);
    expect(() => setup_fail_page_alloc({ interval: 0 })).toThrow(RangeError);
  });
});

describe.each([2, 4])("page allocator and slab on %i CPUs", (cpus) => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it("seeded random alloc/free with cross-CPU frees gives every page back", async () => {
    const seed = 0x5eed + cpus;
    m = await Machine.boot({ cpus, seed, memory: 64 * MiB });
    // The main thread acts for the parked CPUs: their cpu slabs, then their pcp lists (which the freed slabs fill).
    kmem_cache_shrink_all();
    drain_all_pages();
    const free0 = nr_free_pages();
    const buddy0 = buddyinfo();
    const slab0 = global_zone_page_state(NR_SLAB_UNRECLAIMABLE);
    // Boot leaves records behind (vmalloc_init's early vmap_areas live in kmalloc-64): compare against that.
    const kmallocInUse = () =>
      slabinfo()
        .filter((s) => s.name.startsWith("kmalloc-"))
        .map((s) => `${s.name}:${s.num_slabs}:${s.active_objs}`);
    const kmalloc0 = kmallocInUse();
    const active64 = get_slabinfo(kmalloc_slab(64)).active_objs;

    const results = (await m.runAll("mm_stress", { iters: 3000 })) as { allocs: number; failures: number }[];
    expect(results.map((r) => r.failures)).toEqual(Array(cpus).fill(0));
    expect(results.every((r) => r.allocs === 3000)).toBe(true);
    expect(await m.run(cpus - 1, "mm_stress_release")).toBeGreaterThan(0);

    expect(get_slabinfo(kmalloc_slab(64)).active_objs).toBe(active64);
    kmem_cache_shrink_all();
    drain_all_pages();
    expect(checkBuddyLists(), `seed ${seed}`).toEqual([]);
    expect(nr_free_pages(), `seed ${seed}`).toBe(free0);
    expect(buddyinfo(), `seed ${seed}`).toEqual(buddy0);
    expect(global_zone_page_state(NR_SLAB_UNRECLAIMABLE)).toBe(slab0);
    expect(kmallocInUse()).toEqual(kmalloc0);
    expect(texts(m.reports), `seed ${seed}`).toEqual([]);
  });
});
