/**
 * Page allocator and slab fast paths on the main thread as CPU 0, lockdep and
 * slab poisoning off (a production kernel: no CONFIG_LOCKDEP, no slub_debug).
 */
import { makeConfig } from "../../src/shared/config.js";
import { start_kernel } from "../../src/workers/boot.js";
import { GFP_KERNEL } from "../../src/mm/gfp.js";
import { __free_page, __free_pages, alloc_page, alloc_pages } from "../../src/mm/page_alloc.js";
import { kfree, kmalloc } from "../../src/mm/slab.js";
import type { BenchCase } from "./types.js";

/** A fresh 256 MiB machine (pcp batch 15, high 90): order-0 pages cycle through the pcp list. */
const boot = () => {
  start_kernel(makeConfig({ cpus: 1, memory: 256 * 1024 * 1024, lockdep: false, slubDebug: false }));
};

export const cases: BenchCase[] = [
  {
    name: "alloc_page+__free_page (order 0, pcp list)",
    target: "≤ 150 ns",
    setup: boot,
    fn: () => {
      __free_page(alloc_page(GFP_KERNEL));
    },
  },
  {
    name: "kmalloc+kfree (64 bytes, cpu slab)",
    target: "≤ 150 ns",
    setup: boot,
    fn: () => {
      kfree(kmalloc(64, GFP_KERNEL));
    },
  },
  {
    // From a fully free zone: a 7-level split (order 10 down to 3) and the 7-level merge back, under zone->lock twice.
    name: "alloc_pages+__free_pages (order 3, zone->lock)",
    target: "≤ 500 ns",
    setup: boot,
    fn: () => {
      __free_pages(alloc_pages(GFP_KERNEL, 3), 3);
    },
  },
];
