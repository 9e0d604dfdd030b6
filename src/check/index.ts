/**
 * The machine's invariant checkers (docs/architecture.md), for quiescent points: call
 * them on the main thread only while every CPU is parked (between workloads,
 * between two `vmsim exec` lines, after a run). They read the arena and take
 * no lock but zone->lock (checkBuddyLists). Each returns its violations, one
 * line each, none when all hold.
 *
 * The vmalloc checkers are per generation: each ported mm/vmalloc.c has its own
 * (src/check/v4.19/vmalloc.ts …), registered below and chosen by the machine's
 * `kernel`.
 */
import { theArena } from "../shared/arena.js";
import type { KernelVersion } from "../shared/config.js";
import { checkPages } from "./pages.js";
import { type PgtableWalk, checkPageTableCounters } from "./pgtable.js";
import { vmalloc_checks as V4_19 } from "./v4.19/vmalloc.js";
import { vmalloc_checks as V5_10 } from "./v5.10/vmalloc.js";
import { vmalloc_checks as V6_12 } from "./v6.12/vmalloc.js";

export {
  checkPages,
  harnessPages,
  holdHarnessPages,
  pageCensus,
  releaseHarnessPages,
  type PageCensus,
} from "./pages.js";
export { checkPageTableCounters, walkKernelPageTables, type PgtableWalk } from "./pgtable.js";

/** What a generation's vmalloc walk found. */
export interface VmallocWalk {
  readonly violations: string[];
  /** Pages the vmalloc areas map: the page census counts them as referenced. */
  readonly vmallocPages: number;
  /** The walk of the kernel page tables the PTE checks made. */
  readonly pgtable: PgtableWalk;
}

/** One generation's checkers: its kva allocator and vm_structs, and its per-CPU vmap blocks. */
export interface VmallocChecks {
  /** Every invariant of the areas, their vm_structs, pages and PTEs, and the lazy accounting; CPUs parked. */
  readonly walkVmalloc: () => VmallocWalk;
  /** The per-CPU vmap blocks' invariants; CPUs parked. */
  readonly checkVmapBlocks: () => string[];
}

const CHECKS = new Map<KernelVersion, VmallocChecks>();

/** Registers `version`'s vmalloc checkers (once per version). */
export function registerVmallocChecks(version: KernelVersion, checks: VmallocChecks): void {
  if (CHECKS.has(version)) throw new Error(`vmalloc checks for ${version} registered twice`);
  CHECKS.set(version, checks);
}

registerVmallocChecks("4.19", V4_19);
registerVmallocChecks("5.10", V5_10);
registerVmallocChecks("6.12", V6_12);

/** The checkers of the attached machine's kernel. */
function vmallocChecks(): VmallocChecks {
  const version = theArena().config.kernel;
  const checks = CHECKS.get(version);
  if (checks === undefined) throw new Error(`no vmalloc checkers registered for kernel ${version}`);
  return checks;
}

/** Runs the machine's generation's vmalloc invariants once; CPUs parked. */
export function walkVmalloc(): VmallocWalk {
  return vmallocChecks().walkVmalloc();
}

/**
 * checkVmalloc: every invariant of the vmap areas, their vm_structs, pages and
 * PTEs, and the lazy-purge accounting. Returns the violations, none when all
 * hold. Call it only while every CPU is parked.
 */
export function checkVmalloc(): string[] {
  return walkVmalloc().violations;
}

/** The per-CPU vmap blocks' invariants of the machine's generation; CPUs parked. */
export function checkVmapBlocks(): string[] {
  return vmallocChecks().checkVmapBlocks();
}

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
