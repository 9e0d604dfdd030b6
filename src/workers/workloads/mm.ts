/**
 * Page allocator and slab workloads: seeded random alloc/free of pages of
 * random orders and of kmalloc objects, with the frees spread over CPUs.
 *
 * Each allocation is marked live in its own memory (a word set with
 * Atomics.exchange, cleared with compareExchange before the free), so a page
 * or object handed out twice, or freed while not live, is caught the moment
 * it happens. Allocations are parked in shared slots; a CPU that allocates
 * swaps its block into a random slot and frees what was there — usually a
 * block another CPU allocated (a remote free).
 */
import { DEFINE_GLOBAL, I32 } from "../../shared/arena.js";
import { KernelBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { SP_ATOMIC, sched_point, sched_op_point } from "../../sched/sched_point.js";
import { GFP_KERNEL } from "../../mm/gfp.js";
import { __free_pages, alloc_pages, page_address, page_to_pfn, pfn_to_page } from "../../mm/page_alloc.js";
import { kfree, kmalloc } from "../../mm/slab.js";
import { defineWorkload } from "../workload.js";

/** Shared slots per kind (pages, objects). */
export const MM_STRESS_SLOTS = 256;

const MM_STRESS = defineStruct("mm_stress_slots", [
  /** pfn << 4 | order of a parked block, 0 = empty (pfn 0 is reserved, never allocated). */
  { name: "pages", type: "i32", count: MM_STRESS_SLOTS, guard: "atomic" },
  /** A parked kmalloc object, 0 = empty. */
  { name: "objs", type: "i32", count: MM_STRESS_SLOTS, guard: "atomic" },
]);
const slots = DEFINE_GLOBAL("mm_stress_slots", MM_STRESS);

/** The live mark ("LIVE"): word 0 of a page, word 1 of an object (word 0 is the slab free pointer). */
const LIVE = 0x4c495645;

/** Marks a fresh allocation live; a block that already was is a double allocation. */
function markLive(word: number, what: string): void {
  sched_point(SP_ATOMIC);
  if (Atomics.exchange(I32, word >> 2, LIVE) === LIVE) throw new KernelBug(`${what} ${word} handed out twice`);
}

/** Clears the live mark before the free; a block that was not live is freed twice. */
function markDead(word: number, what: string): void {
  sched_point(SP_ATOMIC);
  if (Atomics.compareExchange(I32, word >> 2, LIVE, 0) !== LIVE) throw new KernelBug(`${what} ${word} freed twice`);
}

function freeParkedPage(v: number): void {
  const page = pfn_to_page(v >> 4);
  markDead(page_address(page), "page");
  __free_pages(page, v & 15);
}

function freeParkedObj(obj: number): void {
  markDead(obj + 4, "object");
  kfree(obj);
}

export interface MmStressArgs {
  /** Operations on this CPU. */
  readonly iters: number;
  /** Largest page order allocated. @defaultValue 3 */
  readonly maxOrder?: number;
  /** Percent of operations that are page (not kmalloc) operations. @defaultValue 40 */
  readonly pagePercent?: number;
}

export interface MmStressResult {
  readonly allocs: number;
  readonly frees: number;
  readonly failures: number;
}

/**
 * mm_stress: `iters` random operations. A page operation allocates 2^order
 * pages (order 0 two times in three), a kmalloc operation 8..2048 bytes
 * mostly, up to 8192 sometimes and a kmalloc_large block (up to 32 KiB)
 * rarely; the new block goes into a random shared slot and the block it
 * displaces is freed here.
 */
defineWorkload("mm_stress", (a: MmStressArgs, ctx): MmStressResult => {
  const rnd = ctx.prng(0x6d6d);
  const maxOrder = a.maxOrder ?? 3;
  const pagePercent = a.pagePercent ?? 40;
  const pagesIdx = (slots.ptr + MM_STRESS.off.pages) >> 2;
  const objsIdx = (slots.ptr + MM_STRESS.off.objs) >> 2;
  let allocs = 0;
  let frees = 0;
  let failures = 0;
  for (let n = 0; n < a.iters; n++) {
    sched_op_point();
    const slot = rnd.int(0, MM_STRESS_SLOTS - 1);
    let old: number;
    if (rnd.int(0, 99) < pagePercent) {
      const order = rnd.chance(2 / 3) ? 0 : rnd.int(1, maxOrder);
      const page = alloc_pages(GFP_KERNEL, order);
      if (page === 0) {
        failures++;
        continue;
      }
      markLive(page_address(page), "page");
      allocs++;
      sched_point(SP_ATOMIC);
      // Publishes the block (its live mark included) to the CPU that takes it from the slot, and hands
      // over the displaced block with everything its allocator wrote to it.
      old = Atomics.exchange(I32, pagesIdx + slot, (page_to_pfn(page) << 4) | order);
      if (old !== 0) freeParkedPage(old);
    } else {
      const r = rnd.int(0, 99);
      const size = r < 90 ? rnd.int(8, 2048) : r < 98 ? rnd.int(2049, 8192) : rnd.int(8193, 32768);
      const obj = kmalloc(size, GFP_KERNEL);
      if (obj === 0) {
        failures++;
        continue;
      }
      markLive(obj + 4, "object");
      allocs++;
      sched_point(SP_ATOMIC);
      old = Atomics.exchange(I32, objsIdx + slot, obj); // publishes and hands over, as for pages
      if (old !== 0) freeParkedObj(old);
    }
    if (old !== 0) frees++;
  }
  return { allocs, frees, failures };
});

/** mm_stress_release: frees every parked block (run it on one CPU once the stress is done); returns how many. */
defineWorkload("mm_stress_release", (): number => {
  const pagesIdx = (slots.ptr + MM_STRESS.off.pages) >> 2;
  const objsIdx = (slots.ptr + MM_STRESS.off.objs) >> 2;
  let n = 0;
  for (let i = 0; i < MM_STRESS_SLOTS; i++) {
    sched_point(SP_ATOMIC);
    const p = Atomics.exchange(I32, pagesIdx + i, 0);
    if (p !== 0) {
      freeParkedPage(p);
      n++;
    }
    sched_point(SP_ATOMIC);
    const o = Atomics.exchange(I32, objsIdx + i, 0);
    if (o !== 0) {
      freeParkedObj(o);
      n++;
    }
  }
  return n;
});
