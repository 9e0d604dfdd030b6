import { describe, expect, it } from "vitest";
import { I32, U8, createArena } from "../src/shared/arena.js";
import { type MachineConfig, PAGE_SIZE, makeConfig } from "../src/shared/config.js";
import { KernelBug, type Report, takeReports } from "../src/shared/report.js";
import { defineStruct } from "../src/shared/struct.js";
import { lockdepAttach } from "../src/locks/lockdep.js";
import { DEFINE_SPINLOCK, spin_lock, spin_unlock } from "../src/locks/spinlock.js";
import { setCurrentCpu } from "../src/shared/smp.js";
import "../src/workers/boot.js";
import { GFP_ATOMIC, GFP_KERNEL } from "../src/mm/gfp.js";
import {
  NR_SLAB_UNRECLAIMABLE,
  drain_local_pages,
  global_zone_page_state,
  mem_init,
  nr_free_pages,
  page_address,
} from "../src/mm/page_alloc.js";
import { PageHead, PageSlab, compound_order, virt_to_head_page } from "../src/mm/mm_types.js";
import {
  KMEM_CACHE,
  POISON_END,
  POISON_FREE,
  SLAB_HWCACHE_ALIGN,
  ZERO_SIZE_PTR,
  get_slabinfo,
  kfree,
  kmalloc,
  kmalloc_slab,
  kmem_cache_alloc,
  kmem_cache_create,
  kmem_cache_free,
  kmem_cache_init,
  kmem_cache_name,
  kmem_cache_shrink,
  kmem_cache_size,
  kmem_cache_zalloc,
  kzalloc,
  slabinfo,
} from "../src/mm/slab.js";

const MiB = 1024 * 1024;

/** A statically defined cache, created by kmem_cache_init (this file's layout only: no workers here). */
const SLAB_TEST_REC = defineStruct("slab_test_rec", [
  { name: "key", type: "f64", guard: "owner" },
  { name: "vals", type: "i32", count: 5, guard: "owner" },
]);
const slab_test_cache = KMEM_CACHE(SLAB_TEST_REC, SLAB_HWCACHE_ALIGN);
const test_lock = DEFINE_SPINLOCK("slab_test_lock");

/**
 * Page allocator + slab alone on the main thread (CPU 0), one CPU:
 * calculate_order's min_objects is 4 * (fls(1) + 1) = 8.
 */
function bootSlab(over: Partial<MachineConfig> = {}): { free0: number; slab0: number } {
  createArena(makeConfig({ cpus: 1, memory: 8 * MiB, ...over }));
  setCurrentCpu(0);
  lockdepAttach();
  mem_init();
  kmem_cache_init();
  drain_local_pages();
  takeReports();
  return { free0: nr_free_pages(), slab0: global_zone_page_state(NR_SLAB_UNRECLAIMABLE) };
}

const texts = (rs: Report[]) => rs.map((r) => `${r.kind}: ${r.text.split("\n")[0]}`);
const info64 = () => get_slabinfo(kmalloc_slab(64));

describe("kmalloc caches", () => {
  it("creates kmalloc-8 … kmalloc-8192 after the kmem_cache cache, then KMEM_CACHE definitions", () => {
    bootSlab();
    expect(slabinfo().map((s) => s.name)).toEqual([
      "kmem_cache",
      "kmalloc-8",
      "kmalloc-16",
      "kmalloc-32",
      "kmalloc-64",
      "kmalloc-96",
      "kmalloc-128",
      "kmalloc-192",
      "kmalloc-256",
      "kmalloc-512",
      "kmalloc-1024",
      "kmalloc-2048",
      "kmalloc-4096",
      "kmalloc-8192",
      "xa_node", // lib/xarray's radix_tree_node_cachep: v5.10's vmap_blocks, loaded with every generation
      "slab_test_rec",
    ]);
    const sizes = [1, 8, 9, 16, 17, 64, 65, 96, 97, 128, 129, 192, 193, 256, 1000, 1025, 4097, 8192];
    expect(sizes.map((n) => kmem_cache_name(kmalloc_slab(n)))).toEqual([
      "kmalloc-8",
      "kmalloc-8",
      "kmalloc-16",
      "kmalloc-16",
      "kmalloc-32",
      "kmalloc-64",
      "kmalloc-96",
      "kmalloc-96",
      "kmalloc-128",
      "kmalloc-128",
      "kmalloc-192",
      "kmalloc-192",
      "kmalloc-256",
      "kmalloc-256",
      "kmalloc-1024",
      "kmalloc-2048",
      "kmalloc-8192",
      "kmalloc-8192",
    ]);
    // calculate_order: the smallest order holding 8 objects with at most 1/16 waste.
    const shape = (n: number) => {
      const s = get_slabinfo(kmalloc_slab(n));
      return [s.objsize, s.objperslab, s.pagesperslab];
    };
    expect(shape(64)).toEqual([64, 64, 1]);
    expect(shape(96)).toEqual([96, 42, 1]);
    expect(shape(1024)).toEqual([1024, 8, 2]);
    expect(shape(8192)).toEqual([8192, 4, 8]);
    expect(takeReports()).toEqual([]);
  });

  it("hands out aligned, distinct objects in address order from a fresh slab", () => {
    bootSlab();
    const objs = Array.from({ length: 100 }, () => kmalloc(64, GFP_KERNEL));
    /*
     *   slab A (one page):  |o0|o1|o2| … |o63|        the first cpu slab, used up front to back
     *   slab B (one page):  |o64| … |o99|free × 28|   the next one
     */
    expect(objs[0]! % PAGE_SIZE).toBe(0);
    for (let i = 1; i < 64; i++) expect(objs[i]).toBe(objs[0]! + 64 * i);
    expect(objs[64]! % PAGE_SIZE).toBe(0);
    expect(new Set(objs).size).toBe(100);
    for (const o of objs) {
      expect(o % 64).toBe(0);
      expect(PageSlab(virt_to_head_page(o))).toBe(true);
    }
    expect(info64()).toMatchObject({ active_objs: 100, num_objs: 128, num_slabs: 2, nr_partial: 0 });
    for (const o of objs) kfree(o);
    expect(info64().active_objs).toBe(0);
    expect(takeReports()).toEqual([]);
  });

  it("reuses the last freed object first; kmalloc does not zero, kzalloc does", () => {
    bootSlab();
    const a = kmalloc(64, GFP_KERNEL);
    const b = kmalloc(64, GFP_KERNEL);
    kfree(a);
    kfree(b);
    expect(kmalloc(64, GFP_KERNEL)).toBe(b);
    const again = kmalloc(64, GFP_KERNEL);
    expect(again).toBe(a);
    // A poisoned object comes back as it was freed: POISON_FREE after the free pointer, POISON_END last.
    expect(U8[a + 4]).toBe(POISON_FREE);
    expect(U8[a + 63]).toBe(POISON_END);
    kfree(a);
    const z = kzalloc(64, GFP_KERNEL);
    expect(z).toBe(a);
    expect(U8.subarray(z, z + 64).every((x) => x === 0)).toBe(true);
    expect(takeReports()).toEqual([]);
  });

  it("kmalloc(0) is ZERO_SIZE_PTR; kfree ignores it and NULL; a size above 8192 goes to the page allocator", () => {
    const { free0, slab0 } = bootSlab();
    expect(kmalloc(0, GFP_KERNEL)).toBe(ZERO_SIZE_PTR);
    kfree(ZERO_SIZE_PTR);
    kfree(0);
    const big = kmalloc(20000, GFP_KERNEL);
    const page = virt_to_head_page(big);
    expect(big % PAGE_SIZE).toBe(0);
    expect(page_address(page)).toBe(big);
    expect(PageSlab(page)).toBe(false);
    expect(PageHead(page)).toBe(true);
    expect(compound_order(page)).toBe(3);
    expect(global_zone_page_state(NR_SLAB_UNRECLAIMABLE)).toBe(slab0 + 8);
    kfree(big);
    expect(global_zone_page_state(NR_SLAB_UNRECLAIMABLE)).toBe(slab0);
    expect(nr_free_pages()).toBe(free0);
    expect(kmalloc(-1, GFP_KERNEL)).toBe(0); // a size_t of 2^32-1: too large for any order
    expect(takeReports().map((r) => r.kind)).toEqual(["WARN"]);
  });

  it("a kfree outside the linear map or of a non-slab page is BUG()", () => {
    bootSlab();
    expect(() => kfree(4096)).toThrow(KernelBug);
    const p = kmalloc(64, GFP_KERNEL);
    expect(() => kfree(page_address(virt_to_head_page(p)) + 64 * PAGE_SIZE)).toThrow(/not a slab object/);
  });
});

describe("slab lists", () => {
  it("a remote free makes a full slab partial; empty slabs stay up to min_partial; shrink frees them", () => {
    const { free0, slab0 } = bootSlab();
    const objs = Array.from({ length: 65 }, () => kmalloc(64, GFP_KERNEL));
    // Slab A is full and off every list; slab B (objs[64]) is the cpu slab.
    kfree(objs[0]!);
    expect(info64()).toMatchObject({ num_slabs: 2, nr_partial: 1, active_objs: 64 });
    for (let i = 1; i < 64; i++) kfree(objs[i]!);
    // A is empty, but the node keeps min_partial (5) slabs before giving any back.
    expect(info64()).toMatchObject({ num_slabs: 2, nr_partial: 1, active_objs: 1 });
    kfree(objs[64]!);
    expect(info64()).toMatchObject({ num_slabs: 2, active_objs: 0 });
    kmem_cache_shrink(kmalloc_slab(64));
    expect(info64()).toMatchObject({ num_slabs: 0, nr_partial: 0, num_objs: 0 });
    expect(global_zone_page_state(NR_SLAB_UNRECLAIMABLE)).toBe(slab0);
    drain_local_pages();
    expect(nr_free_pages()).toBe(free0);
    expect(takeReports()).toEqual([]);
  });

  it("beyond min_partial, a slab that empties goes straight back to the page allocator", () => {
    bootSlab();
    const objs = Array.from({ length: 7 * 64 }, () => kmalloc(64, GFP_KERNEL));
    expect(info64().num_slabs).toBe(7);
    for (const o of objs) kfree(o);
    // Slabs 1-4 wait empty on the partial list, 5 and 6 emptied with 5 partial slabs there, 7 is the cpu slab.
    expect(info64()).toMatchObject({ num_slabs: 5, nr_partial: 4, active_objs: 0 });
  });
});

describe("slab debugging (poisoning)", () => {
  it("reports a write after free when the object is allocated again", () => {
    bootSlab();
    const a = kmalloc(64, GFP_KERNEL);
    kfree(a);
    U8[a + 10] = 0; // use after free
    U8[a + 11] = 0;
    expect(kmalloc(64, GFP_KERNEL)).toBe(a);
    const reps = takeReports();
    expect(texts(reps)).toEqual(["slab: BUG kmalloc-64 (Not tainted): Poison overwritten"]);
    expect(reps[0]!.text).toContain(
      `INFO: 0x${(a + 10).toString(16)}-0x${(a + 11).toString(16)}. First byte 0x0 instead of 0x6b`,
    );
    expect(reps[0]!.text).toContain("@offset=0");
  });

  it("reports a corrupted free pointer and drops the rest of the freelist instead of following it", () => {
    bootSlab();
    const a = kmalloc(64, GFP_KERNEL);
    kfree(a);
    I32[a >> 2] = 12345; // use after free, over the free pointer
    expect(kmalloc(64, GFP_KERNEL)).toBe(a);
    expect(texts(takeReports())).toEqual(["slab: BUG kmalloc-64 (Not tainted): Freepointer corrupt"]);
    const b = kmalloc(64, GFP_KERNEL);
    expect(b).not.toBe(a);
    expect(PageSlab(virt_to_head_page(b))).toBe(true);
  });

  it("reports a double free, at the head of the freelist or deeper, and keeps the freelist sound", () => {
    bootSlab();
    const a = kmalloc(64, GFP_KERNEL);
    const b = kmalloc(64, GFP_KERNEL);
    kfree(a);
    kfree(a);
    expect(texts(takeReports())).toEqual(["slab: BUG kmalloc-64 (Not tainted): Object already free"]);
    kfree(b);
    kfree(a); // a is second on the freelist now
    expect(texts(takeReports())).toEqual(["slab: BUG kmalloc-64 (Not tainted): Object already free"]);
    const got = [kmalloc(64, GFP_KERNEL), kmalloc(64, GFP_KERNEL), kmalloc(64, GFP_KERNEL)];
    expect(got.slice(0, 2)).toEqual([b, a]);
    expect(new Set(got).size).toBe(3);
    expect(takeReports()).toEqual([]);
  });

  it("reports a free of a pointer into the middle of an object", () => {
    bootSlab();
    const a = kmalloc(64, GFP_KERNEL);
    kfree(a + 8);
    expect(texts(takeReports())).toEqual([
      `slab: BUG kmalloc-64 (Not tainted): Invalid object pointer 0x${(a + 8).toString(16)}`,
    ]);
    expect(info64().active_objs).toBe(1);
  });

  it("with slub_debug off there is no poison, and only a free-twice-in-a-row is caught", () => {
    bootSlab({ slubDebug: false });
    const a = kmalloc(64, GFP_KERNEL);
    U8.fill(0x11, a, a + 64);
    kfree(a);
    expect(U8[a + 10]).toBe(0x11);
    U8[a + 10] = 0;
    expect(kmalloc(64, GFP_KERNEL)).toBe(a);
    expect(takeReports()).toEqual([]);
    kfree(a);
    kfree(a);
    expect(texts(takeReports())).toEqual(["slab: BUG kmalloc-64 (Not tainted): Object already free"]);
  });
});

describe("kmem_cache API", () => {
  it("KMEM_CACHE defines a cache at boot; kmem_cache_create one at run time", () => {
    bootSlab();
    const s = slab_test_cache.cachep;
    expect(kmem_cache_name(s)).toBe("slab_test_rec");
    expect(kmem_cache_size(s)).toBe(SLAB_TEST_REC.size);
    // SLAB_HWCACHE_ALIGN: a 32-byte object is aligned to half a 64-byte line.
    expect(get_slabinfo(s).objsize).toBe(32);
    const x = kmem_cache_alloc(s, GFP_KERNEL);
    const y = kmem_cache_zalloc(s, GFP_KERNEL);
    expect(y - x).toBe(32);
    expect(U8.subarray(y, y + 32).every((v) => v === 0)).toBe(true);
    kmem_cache_free(s, x);
    kmem_cache_free(kmalloc_slab(32), y); // the wrong cache: WARN, then freed to its own
    expect(texts(takeReports())).toEqual([
      "WARN: cache_from_obj: Wrong slab cache. kmalloc-32 but object is from slab_test_rec",
    ]);
    expect(get_slabinfo(s).active_objs).toBe(0);

    const r = kmem_cache_create("runtime_cache", 100, 0, 0);
    expect(get_slabinfo(r)).toMatchObject({ name: "runtime_cache", objsize: 104, objperslab: 39 });
    const o = kmem_cache_alloc(r, GFP_KERNEL);
    expect(o % 8).toBe(0);
    kmem_cache_free(r, o);
    expect(slabinfo().at(-1)!.name).toBe("runtime_cache");
    expect(takeReports()).toEqual([]);
  });

  it("a GFP_KERNEL allocation under a spinlock is a sleep in atomic context; GFP_ATOMIC is not", () => {
    bootSlab();
    spin_lock(test_lock.ptr);
    kfree(kmalloc(32, GFP_ATOMIC));
    expect(takeReports()).toEqual([]);
    kfree(kmalloc(32, GFP_KERNEL));
    spin_unlock(test_lock.ptr);
    expect(texts(takeReports())).toEqual([
      expect.stringMatching(/^lockdep: BUG: sleeping function called from invalid context/),
    ]);
  });
});
