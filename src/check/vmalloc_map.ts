/**
 * The data of `vmsim map` (src/cli/map.ts draws it): every vmap_area of the
 * machine with its type and the CPU that allocated it, the lazily freed areas
 * waiting for the purge, and each per-CPU vmap block page by page. Read like
 * the checkers read (src/check/v4.19/vmalloc.ts): on the main thread, every CPU
 * parked, no lock taken — a map at a failure must not wait on a lock a
 * stopped CPU holds — and every walk bounded, so a corrupted tree or list
 * ends in a `problems` line instead of a hang.
 */
import { I32, theArena } from "../shared/arena.js";
import { type KernelVersion, PAGE_SIZE, layoutOf } from "../shared/config.js";
import { ksym_name } from "../kernel/kallsyms.js";
import { type LayoutName, formatKaddr } from "../shared/layouts.js";
import { list_next } from "../lib/list.js";
import { LLIST_HEAD, llist_next } from "../lib/llist.js";
import { checkRbTree, rb_first, rb_next } from "../lib/rbtree.js";
import { atomic_read } from "../locks/atomic.js";
import { kernel_pte_lookup } from "../mm/pgtable.js";
import {
  VMAP_AREA,
  VM_ALLOC,
  VM_IOREMAP,
  VM_LAZY_FREE,
  VM_MAP,
  VM_NO_GUARD,
  VM_STRUCT,
  VM_VM_AREA,
  earlyVmAreas,
  free_vmap_cache,
  lazy_max_pages,
  vmap_area_list,
  vmap_area_root,
  vmap_lazy_nr,
  vmap_purge_list,
  va_alloc_cpu,
  va_end,
  va_flags,
  va_start,
  va_vm,
  vm_flags,
  vm_nr_pages,
} from "../mm/v4.19/vmalloc.js";
import { VMAP_BBMAP_BITS, VMAP_BLOCK, vmap_block_tree } from "../mm/v4.19/vmap_block.js";

/**
 * What an area is: a vm area by its vm_struct flags (VM_ALLOC vmalloc, a
 * percpu chunk, VM_MAP vmap, VM_IOREMAP, an early area from vmlist — arm64's
 * kernel image), an area without one (a per-CPU vmap block, a large
 * vm_map_ram), or one freed and waiting for the lazy purge.
 */
export type MapAreaKind =
  | "boot"
  | "vmalloc"
  | "percpu"
  | "vmap"
  | "ioremap"
  | "vmap_block"
  | "vm_map_ram"
  | "lazy"
  | "other";

/** One vmap_area. Addresses are kaddrs (src/shared/layouts.ts). */
export interface MapArea {
  readonly start: number;
  readonly end: number;
  readonly kind: MapAreaKind;
  /** The CPU that inserted it (vmap_area's alloc_cpu, vmsim's debug field). */
  readonly cpu: number;
  /** Who made it: vm->caller's symbol, an early area's variable name (vmlinux_text …), or null. */
  readonly caller: string | null;
  /** vm->nr_pages: pages vmalloc allocated for it (0 for the others). */
  readonly nrPages: number;
  /** Its last page is a guard page (a vm area without VM_NO_GUARD). */
  readonly guard: boolean;
}

/** One page of a vmap block: handed out and mapped, handed out and given back (unmapped, flush pending), never handed out. */
export type BlockPage = "used" | "dirty" | "free";

/** A per-CPU vmap block (vm_map_ram's allocator). */
export interface MapBlock {
  readonly start: number;
  /** The CPU whose block it is: the one that allocated it, on whose vmap_block_queue it stays while it has free pages. */
  readonly cpu: number;
  /** Runs of equal pages, in page order: [state, first page, pages]. */
  readonly runs: readonly (readonly [BlockPage, number, number])[];
  readonly free: number;
  readonly dirty: number;
}

/** The kernel versions whose vmalloc area the map reads: generation 1's vmap_area tree and vmap blocks. */
export const VMALLOC_MAP_KERNELS: readonly KernelVersion[] = ["4.19"];

/** The vmalloc area of a machine at one point. */
export interface VmallocMap {
  /** The kernel version and address layout preset the map was taken on. */
  readonly kernel: KernelVersion;
  readonly layout: LayoutName;
  readonly cpus: number;
  readonly memory: number;
  readonly seed: number;
  readonly vmallocStart: number;
  readonly vmallocEnd: number;
  /** In address order (of their starts: after a race two may overlap). */
  readonly areas: readonly MapArea[];
  readonly blocks: readonly MapBlock[];
  /** VMAP_BBMAP_BITS: pages per block. */
  readonly blockPages: number;
  /** vmap_lazy_nr and lazy_max_pages(): pages waiting for the purge, and the count that triggers it. */
  readonly lazyPages: number;
  readonly lazyMaxPages: number;
  /** Where the next first-fit search resumes: the end of the area free_vmap_cache points at, or null. */
  readonly freeVmapCache: number | null;
  /** What could not be read (a corrupted tree or list), one line each. */
  readonly problems: readonly string[];
}

const VA = VMAP_AREA.off;
const B = VMAP_BLOCK.off;

/** The areas of vmap_area_root in order; vmap_area_list's when the tree is broken (a cycle stops the walk). */
function areasInOrder(problems: string[]): number[] {
  const rb = checkRbTree(vmap_area_root.ptr);
  const out: number[] = [];
  if (rb === null) {
    for (let n = rb_first(vmap_area_root.ptr); n !== 0; n = rb_next(n)) out.push(n - VA.rb_node);
    return out;
  }
  problems.push(`vmap_area_root: ${rb}; the areas are read from vmap_area_list`);
  const seen = new Set<number>();
  for (let e = list_next(vmap_area_list.ptr); e !== vmap_area_list.ptr; e = list_next(e)) {
    if (seen.has(e) || e === 0) {
      problems.push("vmap_area_list: a cycle; the walk stopped there");
      break;
    }
    seen.add(e);
    out.push(e - VA.list);
  }
  return out;
}

/** The areas on vmap_purge_list (lazily freed, not yet purged). */
function purgeQueued(problems: string[]): Set<number> {
  const queued = new Set<number>();
  for (let node = Atomics.load(I32, (vmap_purge_list.ptr + LLIST_HEAD.off.first) >> 2); node !== 0; ) {
    const va = node - VA.purge_list;
    if (queued.has(va)) {
      problems.push("vmap_purge_list: a cycle; the walk stopped there");
      break;
    }
    queued.add(va);
    node = llist_next(node);
  }
  return queued;
}

/** Every block on vmap_block_tree, its pages read from the PTEs: a handed-out page is in use while mapped. */
function blocksOf(cpuOf: ReadonlyMap<number, number>, problems: string[]): MapBlock[] {
  const rb = checkRbTree(vmap_block_tree.ptr);
  if (rb !== null) {
    problems.push(`vmap_block_tree: ${rb}; blocks not shown`);
    return [];
  }
  const bits = VMAP_BBMAP_BITS;
  const out: MapBlock[] = [];
  for (let n = rb_first(vmap_block_tree.ptr); n !== 0; n = rb_next(n)) {
    const vb = n - B.rb_node;
    const va = I32[(vb + B.va) >> 2]!;
    const start = va_start(va);
    const free = I32[(vb + B.free) >> 2]!;
    const runs: [BlockPage, number, number][] = [];
    for (let i = 0; i < bits; i++) {
      const state: BlockPage = i >= bits - free ? "free" : kernel_pte_lookup(start + i * PAGE_SIZE) ? "used" : "dirty";
      const last = runs.at(-1);
      if (last?.[0] === state) last[2]++;
      else runs.push([state, i, 1]);
    }
    out.push({ start, cpu: cpuOf.get(va) ?? -1, runs, free, dirty: I32[(vb + B.dirty) >> 2]! });
  }
  return out;
}

/**
 * vmallocMap: the vmalloc area as `vmsim map` draws it. Call it on the main
 * thread with every CPU parked (after a workload, at a failure).
 */
export function vmallocMap(): VmallocMap {
  const config = theArena().config;
  const layout = layoutOf(config);
  const problems: string[] = [];
  const vas = areasInOrder(problems);
  const queued = purgeQueued(problems);
  const early = earlyVmAreas();
  const areas: MapArea[] = [];
  const cpuOf = new Map<number, number>();
  for (const va of vas) {
    const start = va_start(va);
    const end = va_end(va);
    if (!(start < end)) {
      problems.push(`an area [${start}, ${end}) is empty or reversed; not drawn`);
      continue;
    }
    const flags = va_flags(va);
    const cpu = va_alloc_cpu(va);
    cpuOf.set(va, cpu);
    const base = { start, end, cpu, caller: null, nrPages: 0, guard: false };
    if (queued.has(va) || flags & VM_LAZY_FREE) {
      areas.push({ ...base, kind: "lazy" });
      continue;
    }
    if (!(flags & VM_VM_AREA)) {
      areas.push({ ...base, kind: "vm_map_ram" });
      continue;
    }
    const vm = va_vm(va);
    const vflags = vm_flags(vm);
    const caller = early.get(vm) ?? ksym_name(I32[(vm + VM_STRUCT.off.caller) >> 2]!);
    const kind: MapAreaKind = early.has(vm)
      ? "boot"
      : vflags & VM_ALLOC
        ? caller === "pcpu_get_vm_areas"
          ? "percpu"
          : "vmalloc"
        : vflags & VM_MAP
          ? "vmap"
          : vflags & VM_IOREMAP
            ? "ioremap"
            : "other";
    areas.push({ ...base, kind, caller, nrPages: vm_nr_pages(vm), guard: !(vflags & VM_NO_GUARD) });
  }
  /* A race can leave two areas on one address: say so (the picture draws them side by side). */
  areas.sort((a, b) => a.start - b.start);
  const hex = (k: number) => formatKaddr(layout, k);
  let reach: MapArea | null = null;
  for (const a of areas) {
    if (reach !== null && a.start < reach.end)
      problems.push(
        `overlap: ${hex(reach.start)}-${hex(reach.end)} (${reach.kind}, CPU${reach.cpu}) and ` +
          `${hex(a.start)}-${hex(a.end)} (${a.kind}, CPU${a.cpu})`,
      );
    if (reach === null || a.end > reach.end) reach = a;
  }
  const blocks = blocksOf(cpuOf, problems);
  const blockStarts = new Set(blocks.map((b) => b.start));
  const cache = I32[free_vmap_cache.ptr >> 2]!;
  return {
    kernel: config.kernel,
    layout: layout.name,
    cpus: config.cpus,
    memory: config.memory,
    seed: config.seed,
    vmallocStart: layout.vmallocStart,
    vmallocEnd: layout.vmallocEnd,
    areas: areas.map((a) => (a.kind === "vm_map_ram" && blockStarts.has(a.start) ? { ...a, kind: "vmap_block" } : a)),
    blocks,
    blockPages: VMAP_BBMAP_BITS,
    lazyPages: atomic_read(vmap_lazy_nr.ptr),
    lazyMaxPages: lazy_max_pages(),
    freeVmapCache: cache === 0 ? null : va_end(cache - VA.rb_node),
    problems,
  };
}
