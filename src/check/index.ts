/**
 * The machine's invariant checkers (docs/architecture.md), for quiescent points: call
 * them on the main thread only while every CPU is parked (between workloads,
 * between two `vmsim exec` lines, after a run). They read the arena and take
 * no lock but zone->lock (checkBuddyLists). Each returns its violations, one
 * line each, none when all hold.
 */
import { checkVmapBlocks } from "../mm/vmap_block.js";
import { checkPages } from "./pages.js";
import { checkPageTableCounters } from "./pgtable.js";
import { walkVmalloc } from "./vmalloc.js";

export { checkVmalloc, walkVmalloc, type VmallocWalk } from "./vmalloc.js";
export {
  checkPages,
  harnessPages,
  holdHarnessPages,
  pageCensus,
  releaseHarnessPages,
  type PageCensus,
} from "./pages.js";
export { checkPageTableCounters, walkKernelPageTables, type PgtableWalk } from "./pgtable.js";

/**
 * checkMachine: every checker — the vmap areas, vm_structs, PTEs and lazy
 * accounting (checkVmalloc), the per-CPU vmap blocks (checkVmapBlocks), the
 * page-table counters, the buddy lists and page conservation (checkPages).
 */
export function checkMachine(): string[] {
  const v = walkVmalloc();
  return [
    ...v.violations,
    ...checkVmapBlocks().map((s) => `vmap blocks: ${s}`),
    ...checkPageTableCounters(v.pgtable),
    ...checkPages(v.vmallocPages),
  ];
}
