/** Kernel page tables: the cost of mapping and unmapping one page once its tables exist. */
import { I32 } from "../../src/shared/arena.js";
import { PAGE_SIZE, layoutOf, makeConfig } from "../../src/shared/config.js";
import { start_kernel } from "../../src/workers/boot.js";
import { GFP_KERNEL } from "../../src/mm/gfp.js";
import { alloc_page, page_address } from "../../src/mm/page_alloc.js";
import { PAGE_KERNEL, vmap_page_range, vunmap_page_range } from "../../src/mm/pgtable.js";
import type { BenchCase } from "./types.js";

let start = 0;
let pages = 0;

export const cases: BenchCase[] = [
  {
    name: "vmap_page_range+vunmap_page_range, one page, tables populated",
    target: "< 1 µs/op",
    setup: () => {
      const config = makeConfig({ cpus: 1 });
      start_kernel(config);
      start = layoutOf(config).vmallocStart;
      pages = page_address(alloc_page(GFP_KERNEL));
      I32[pages >> 2] = alloc_page(GFP_KERNEL);
      // The first map allocates the pud, pmd and pte tables; the measured ones find them.
      vmap_page_range(start, start + PAGE_SIZE, PAGE_KERNEL, pages);
      vunmap_page_range(start, start + PAGE_SIZE);
    },
    fn: () => {
      vmap_page_range(start, start + PAGE_SIZE, PAGE_KERNEL, pages);
      vunmap_page_range(start, start + PAGE_SIZE);
    },
  },
];
