/**
 * The leak check of a run (docs/architecture.md, radix-tree's "check for leaks after
 * every phase"): a snapshot of where memory is before the workload, one after
 * every CPU freed what it held and the cleanup ran (deferred vfrees,
 * vm_unmap_aliases, purge_vmap_area_lazy, rcu_barrier), and their comparison.
 * Main thread, every CPU parked.
 */
import {
  NR_PAGETABLE,
  NR_SLAB_UNRECLAIMABLE,
  drain_all_pages,
  free_pcp_pages,
  global_zone_page_state,
  nr_free_pages,
} from "../mm/page_alloc.js";
import { kmem_cache_shrink_all, slabinfo } from "../mm/slab.js";
import { get_vmalloc_info, vmallocinfo } from "../mm/vmalloc.js";
import { vmallocKeptObjects } from "./index.js";

/** What the leak check compares: taken with every CPU parked, pcp lists drained and slabs shrunk. */
export interface MemorySnapshot {
  readonly free: number;
  readonly pagetable: number;
  readonly slab: number;
  /** Active objects of each slab cache, less those the vmalloc generation keeps on purpose (vmallocKeptObjects). */
  readonly objects: ReadonlyMap<string, number>;
  readonly vmallocinfo: readonly string[];
  readonly vmallocUsed: number;
}

/** The page accounting of the leak check (see {@link leakCheck}). */
export interface LeakSummary {
  /** nr_free_pages before the first round and after the cleanup (pcp lists drained, slabs shrunk). */
  readonly freeStart: number;
  readonly freeEnd: number;
  /** Pages the kernel page tables and the slab caches grew by: they may keep what they took. */
  readonly pagetableDelta: number;
  readonly slabDelta: number;
  /** freeStart − freeEnd − pagetableDelta − slabDelta: must be 0. */
  readonly leakedPages: number;
}

/** Where memory is now: shrinks the slab caches and drains every pcp list first (CPUs parked). */
export function memorySnapshot(): MemorySnapshot {
  // Shrinking frees empty slabs to this CPU's pcp list: drain after it.
  kmem_cache_shrink_all();
  drain_all_pages();
  const kept = vmallocKeptObjects();
  return {
    free: nr_free_pages() + free_pcp_pages(),
    pagetable: global_zone_page_state(NR_PAGETABLE),
    slab: global_zone_page_state(NR_SLAB_UNRECLAIMABLE),
    objects: new Map(slabinfo().map((s) => [s.name, s.active_objs - (kept.get(s.name) ?? 0)])),
    vmallocinfo: vmallocinfo(),
    vmallocUsed: get_vmalloc_info().VmallocUsed,
  };
}

/**
 * The leak check, after every CPU freed what it held and the cleanup ran.
 * Every page is back on the buddy free lists except those the kernel keeps on
 * purpose: page-table pages (kernel page tables of the vmalloc area are never
 * freed) and slab pages. So nr_free_pages(end) = nr_free_pages(start) −
 * Δ NR_PAGETABLE − Δ NR_SLAB, and beyond pages: every slab cache holds as
 * many objects as at the start, /proc/vmallocinfo lists exactly the boot
 * areas again, and VmallocUsed is back.
 */
export function leakCheck(start: MemorySnapshot, end: MemorySnapshot): { summary: LeakSummary; violations: string[] } {
  const pagetableDelta = end.pagetable - start.pagetable;
  const slabDelta = end.slab - start.slab;
  const leakedPages = start.free - end.free - pagetableDelta - slabDelta;
  const violations: string[] = [];
  if (leakedPages !== 0)
    violations.push(
      `leak: ${leakedPages} pages neither free nor in page tables or slabs (nr_free_pages ${start.free} → ${end.free}, page tables ${pagetableDelta >= 0 ? "+" : ""}${pagetableDelta}, slab ${slabDelta >= 0 ? "+" : ""}${slabDelta})`,
    );
  for (const [name, n] of end.objects) {
    const before = start.objects.get(name) ?? 0;
    if (n !== before) violations.push(`leak: slab cache ${name} holds ${n} objects, ${before} before the run`);
  }
  const boot = new Set(start.vmallocinfo);
  const extra = end.vmallocinfo.filter((l) => !boot.has(l));
  if (extra.length > 0 || end.vmallocinfo.length !== start.vmallocinfo.length)
    violations.push(
      `leak: /proc/vmallocinfo has ${end.vmallocinfo.length} lines after the cleanup, ${start.vmallocinfo.length} before the run` +
        (extra.length > 0 ? `; first new: ${extra[0]}` : ""),
    );
  if (end.vmallocUsed !== start.vmallocUsed)
    violations.push(
      `leak: VmallocUsed is ${end.vmallocUsed} kB after the cleanup, ${start.vmallocUsed} kB before the run`,
    );
  return { summary: { freeStart: start.free, freeEnd: end.free, pagetableDelta, slabDelta, leakedPages }, violations };
}
