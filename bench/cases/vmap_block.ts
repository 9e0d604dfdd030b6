/**
 * The per-CPU kva allocator: vm_map_ram + vm_unmap_ram of one page on one CPU,
 * in its steady state — a block is carved page by page, freed once all its
 * pages are dirty, and its area purged with the other lazy areas (one TLB
 * flush per lazy_max_pages pages), so block and purge costs are amortized in.
 */
import { I32 } from "../../src/shared/arena.js";
import { makeConfig } from "../../src/shared/config.js";
import { start_kernel } from "../../src/workers/boot.js";
import { GFP_KERNEL } from "../../src/mm/gfp.js";
import { alloc_page, page_address } from "../../src/mm/page_alloc.js";
import { PAGE_KERNEL } from "../../src/mm/pgtable.js";
import { NUMA_NO_NODE, vm_map_ram, vm_unmap_ram } from "../../src/mm/vmalloc.js";
import type { BenchCase } from "./types.js";

let pages = 0;

export const cases: BenchCase[] = [
  {
    name: "vm_map_ram+vm_unmap_ram 1 page",
    target: "< 2 µs/op",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1 }));
      pages = page_address(alloc_page(GFP_KERNEL));
      I32[pages >> 2] = alloc_page(GFP_KERNEL);
    },
    fn: () => {
      vm_unmap_ram(vm_map_ram(pages, 1, NUMA_NO_NODE, PAGE_KERNEL), 1);
    },
  },
];
