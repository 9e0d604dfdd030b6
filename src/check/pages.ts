/**
 * Page accounting (docs/architecture.md): every page frame the buddy allocator manages
 * is in exactly one of these places, so their counts add up to
 * zone->managed_pages:
 *
 *   free          on a buddy free list (NR_FREE_PAGES) or a CPU's pcp list
 *   vmalloc       backing a VM_ALLOC area (vm->pages, counted by the vmalloc checker)
 *   page tables   kernel page tables (init_mm's counters, checked against a walk)
 *   slab          slab pages and kmalloc_large blocks (NR_SLAB_UNRECLAIMABLE)
 *   percpu        pages backing percpu chunks (pcpu_nr_pages, src/mm/percpu_chunk.ts)
 *   harness       pages a workload holds outside every kernel structure — the
 *                 pages `vmsim exec` allocates for vmap and vm_map_ram, which
 *                 the caller of those APIs owns, not vmalloc
 *
 * A workload that keeps pages of its own says so with holdHarnessPages /
 * releaseHarnessPages (an atomic counter in the arena, so any CPU may), and the
 * sum is exact at every quiescent point. Plus the buddy lists' own
 * consistency (checkBuddyLists).
 */
import { DEFINE_GLOBAL, I32 } from "../shared/arena.js";
import { defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, sched_point } from "../sched/sched_point.js";
import {
  NR_SLAB_UNRECLAIMABLE,
  checkBuddyLists,
  free_pcp_pages,
  global_zone_page_state,
  nr_free_pages,
  totalram_pages,
} from "../mm/page_alloc.js";
import { pgtablePages } from "../mm/pgtable.js";
import { pcpu_nr_pages } from "../mm/percpu_chunk.js";

const HARNESS_PAGES = defineStruct("harness_pages", [
  /** Pages held by workloads outside kernel structures, all CPUs. */
  { name: "nr", type: "i32", guard: "atomic" },
]);
const harness_pages = DEFINE_GLOBAL("harness_pages", HARNESS_PAGES);

/** I32 index of the counter (the global's address is fixed once the arena exists). */
function counter(): number {
  return (harness_pages.ptr + HARNESS_PAGES.off.nr) >> 2;
}

/** A workload now holds `n` more pages of its own (allocated, in no kernel structure). Any CPU. */
export function holdHarnessPages(n: number): void {
  sched_point(SP_ATOMIC);
  Atomics.add(I32, counter(), n);
}

/** A workload gave `n` of its pages back (freed them, or handed them to the kernel). Any CPU. */
export function releaseHarnessPages(n: number): void {
  sched_point(SP_ATOMIC);
  Atomics.sub(I32, counter(), n);
}

/** Pages workloads hold now. */
export function harnessPages(): number {
  return Atomics.load(I32, counter());
}

/** Where the managed pages are: the terms of the conservation sum. */
export interface PageCensus {
  readonly managed: number;
  readonly buddy: number;
  readonly pcp: number;
  readonly vmalloc: number;
  readonly pageTables: number;
  readonly slab: number;
  readonly percpu: number;
  readonly harness: number;
}

/** The census, with the vmalloc term from the vmalloc checker's walk. CPUs parked. */
export function pageCensus(vmallocPages: number): PageCensus {
  return {
    managed: totalram_pages(),
    buddy: nr_free_pages(),
    pcp: free_pcp_pages(),
    vmalloc: vmallocPages,
    pageTables: pgtablePages(),
    slab: global_zone_page_state(NR_SLAB_UNRECLAIMABLE),
    percpu: pcpu_nr_pages(),
    harness: harnessPages(),
  };
}

/**
 * Buddy-list consistency and page conservation; `vmallocPages` is the number
 * of pages backing VM_ALLOC areas. One string per violation, none when all hold.
 */
export function checkPages(vmallocPages: number): string[] {
  const out = checkBuddyLists().map((v) => `buddy lists: ${v}`);
  const c = pageCensus(vmallocPages);
  const sum = c.buddy + c.pcp + c.vmalloc + c.pageTables + c.slab + c.percpu + c.harness;
  if (c.harness < 0) out.push(`pages conserved: the harness counter is negative (${c.harness})`);
  if (sum !== c.managed)
    out.push(
      `pages conserved: free ${c.buddy + c.pcp} (buddy ${c.buddy} + pcp ${c.pcp}) + vmalloc ${c.vmalloc} + ` +
        `page tables ${c.pageTables} + slab ${c.slab} + percpu ${c.percpu} + harness ${c.harness} = ${sum}, ` +
        `but ${c.managed} pages are managed (${c.managed > sum ? `${c.managed - sum} unaccounted` : `${sum - c.managed} counted twice`})`,
    );
  return out;
}
