/**
 * An independent reference model of the vmalloc address arithmetic of v4.19, v5.10 and v6.12
 * (mm/vmalloc.c of each), for checking `vmsim exec` on its op scripts (docs/exec.md): plain
 * TypeScript over bigint addresses, no arena, no workers, and nothing from src/mm. It models only
 * what decides the addresses the kernel returns:
 *
 * - v4.19: the busy list searched from free_vmap_cache, with cached_hole_size / cached_vstart /
 *   cached_align; lazily freed areas stay on the busy list until __purge_vmap_area_lazy.
 * - v5.10: the augmented free tree searched by find_vmap_lowest_match (length = size + align - 1),
 *   the four fit types, merge on free; lazy areas on an llist, merged back newest first.
 * - v6.12: the same tree (length adjusted only for align > PAGE_SIZE, rollback shifts vstart),
 *   per-node lazy lists purged in address order, the per-node size pools (node_alloc,
 *   node_pool_add_va, decay_va_pool_node) and drain_vmap_work, which `exec` runs at flush_work.
 * - every version: guard pages, the nested vmalloc of a page array over PAGE_SIZE, vmap (VM_MAP),
 *   vm_map_ram's per-CPU vmap blocks (first block with room, pages_off = VMAP_BBMAP_BITS - free,
 *   order-rounded), dirty accounting and purge_fragmented_blocks, vfree from interrupt context
 *   deferred to the CPU's free_work, lazy_max_pages() = fls(num_online_cpus) * 32 MiB of pages.
 *
 * Only arm64 with 4 KiB pages (VMAP_BLOCK_SIZE = 4 MiB, VMAP_MAX_ALLOC = 64 pages, struct page *
 * of 8 bytes). The areas the kernel image registers at boot are the model's input (a `vmallocinfo`
 * of the booted machine); the tests check their placement against each version's map_kernel.
 */
import { RbTree, type RbNode, newNode, subtreeMax } from "./kva_rbtree.js";

export type ModelKernel = "4.19" | "5.10" | "6.12";

export const PAGE_SIZE = 4096n;
const VMAP_BBMAP_BITS = 1024;
const VMAP_BLOCK_SIZE = BigInt(VMAP_BBMAP_BITS) * PAGE_SIZE;
const VMAP_MAX_ALLOC = 64;
const PTR_BYTES = 8n;
const ULONG_MAX = (1n << 64n) - 1n;
/** v6.12 mm/vmalloc.c: pools hold areas of up to 256 pages. */
const MAX_VA_SIZE_PAGES = 256n;
/** v6.12 vmap_init_nodes: a zone of 16 pages per node in addr_to_node. */
const VMAP_ZONE_SIZE = 16n * PAGE_SIZE;

/**
 * arm64 va48 VMALLOC_START / VMALLOC_END of each version (4 KiB pages, KASAN off):
 * v4.19 memory.h: VMALLOC_START = MODULES_END = VA_START + 128 MiB, VMALLOC_END = PAGE_OFFSET - PUD_SIZE
 * - VMEMMAP_SIZE - 64 KiB; v5.10 (issue 10): MODULES_END = _PAGE_END(48) + 128 MiB + BPF_JIT_REGION_SIZE
 * 128 MiB, VMALLOC_END = VMEMMAP_START - 256 MiB; v6.12 memory.h/pgtable.h: MODULES_VSIZE = 2 GiB,
 * VMEMMAP_END = -1 GiB, VMEMMAP_SIZE = 2^47 >> 12 * 64, VMALLOC_END = VMEMMAP_START - 256 MiB.
 */
export const LAYOUT: Record<ModelKernel, { readonly start: bigint; readonly end: bigint }> = {
  "4.19": { start: 0xffff000008000000n, end: 0xffff7dffbfff0000n },
  "5.10": { start: 0xffff800010000000n, end: 0xfffffdffbfff0000n },
  "6.12": { start: 0xffff800080000000n, end: 0xfffffdffb0000000n },
};

const ALIGN = (x: bigint, a: bigint): bigint => (x + a - 1n) & ~(a - 1n);
const PAGE_ALIGN = (x: bigint): bigint => ALIGN(x, PAGE_SIZE);

/** fls (include/asm-generic/bitops/fls.h): the 1-based index of the highest set bit. */
function fls(x: number): number {
  return x === 0 ? 0 : 32 - Math.clz32(x);
}

/** get_order for a page count: the smallest order with 2^order >= pages. */
function orderOf(pages: number): number {
  let order = 0;
  while (1 << order < pages) order++;
  return order;
}

/** A vmap_area: [start, end), and (v6.12) the node id node_alloc encoded in its flags (-1: none). */
interface Va {
  start: bigint;
  end: bigint;
  vnId: number;
}

/** A vm_struct as vfree needs it: its vmap_area and, past a page of pointers, the nested page array. */
interface Vm {
  readonly va: Va;
  readonly pages: Vm | null;
}

/** struct vmap_block: its area and the free/dirty counts that decide placement and release. */
interface VmapBlock {
  readonly va: Va;
  free: number;
  dirty: number;
  readonly cpu: number;
}

/** Deferred work an `exec` flush_work runs: a CPU's vfree_deferred, or v6.12's drain_vmap_work. */
type Work = { readonly kind: "free_work"; readonly cpu: number } | { readonly kind: "drain" };

/** One script line the model understands (docs/exec.md's ops that decide addresses). */
export type ModelOp =
  | { op: "vmalloc" | "vzalloc"; size: number; align?: number; as?: string; cpu?: number }
  | { op: "vfree" | "vunmap"; ref: string; irq?: boolean; cpu?: number }
  | { op: "vmap" | "vm_map_ram"; pages: number; as?: string; cpu?: number }
  | { op: "vm_unmap_ram"; ref: string; pages: number; cpu?: number }
  | { op: "purge" | "flush_work" | "vmallocinfo"; cpu?: number };

/** The parts of the KVA machinery every version shares: vmalloc/vmap/vm_map_ram over alloc_vmap_area. */
abstract class KvaModel {
  readonly vstart: bigint;
  readonly vend: bigint;
  /** Live vm_structs by address (vmalloc, vmap). */
  private readonly vms = new Map<bigint, Vm>();
  /** vm_map_ram areas above VMAP_MAX_ALLOC pages, by address. */
  private readonly ramAreas = new Map<bigint, Va>();
  /** Per-CPU vmap_block_queue free lists, and the blocks by addr_to_vb_idx. */
  private readonly vbq: VmapBlock[][];
  private readonly blocks = new Map<bigint, VmapBlock>();
  /** Per-CPU vfree_deferred llists (newest first) and per-CPU worklists. */
  private readonly deferred: bigint[][];
  protected readonly worklist: Work[][];
  /** vmap_lazy_nr, in pages. */
  protected lazyNr = 0;
  /** The CPU the current kernel call runs on. */
  protected cpu = 0;
  protected purgeLockHeld = false;

  constructor(
    readonly kernel: ModelKernel,
    readonly cpus: number,
  ) {
    this.vstart = LAYOUT[kernel].start;
    this.vend = LAYOUT[kernel].end;
    this.vbq = Array.from({ length: cpus }, () => []);
    this.deferred = Array.from({ length: cpus }, () => []);
    this.worklist = Array.from({ length: cpus }, () => []);
  }

  /** lazy_max_pages (every version): fls(num_online_cpus()) * 32 MiB / PAGE_SIZE. */
  protected lazyMaxPages(): number {
    return fls(this.cpus) * 8192;
  }

  /** vmalloc_init: the boot areas (address-sorted) become busy; KVA versions build the free tree around them. */
  abstract boot(early: readonly (readonly [bigint, bigint])[]): void;
  /** alloc_vmap_area(size, align, VMALLOC_START, VMALLOC_END): the new area, or null (purged and retried). */
  protected abstract allocVmapArea(size: bigint, align: bigint): Va | null;
  /** free_vmap_area_noflush: the area turns lazy (and may start a purge). */
  protected abstract freeVmapAreaNoflush(va: Va): void;
  /** The `purge` op: purge_vmap_area_lazy (4.19, 5.10) / reclaim_and_purge_vmap_areas (6.12). */
  abstract purge(): void;
  /** v6.12's drain_vmap_area_work; never queued before v6.12. */
  protected drainWork(): void {}

  /** schedule_work on this CPU's pool: a no-op while the item is pending anywhere. */
  protected scheduleWork(w: Work): void {
    const same = (x: Work) => x.kind === w.kind && (x.kind === "drain" || (w.kind === "free_work" && x.cpu === w.cpu));
    if (this.worklist.some((q) => q.some(same))) return;
    this.worklist[this.cpu]!.push(w);
  }

  /** __get_vm_area_node: page-aligned size plus the guard page (no VM_NO_GUARD here). */
  private getVmArea(size: bigint, align: bigint): Va | null {
    return this.allocVmapArea(PAGE_ALIGN(size) + PAGE_SIZE, align);
  }

  /** __vmalloc_node_range: the area first, then (over a page of pointers) the nested page array. */
  vmalloc(size: bigint, align: bigint): bigint | null {
    if (PAGE_ALIGN(size) === 0n) return null;
    const va = this.getVmArea(size, align);
    if (va === null) return null;
    const nrPages = (va.end - va.start - PAGE_SIZE) / PAGE_SIZE;
    const arraySize = nrPages * PTR_BYTES;
    let pages: Vm | null = null;
    if (arraySize > PAGE_SIZE) {
      const nested = this.vmalloc(arraySize, 1n);
      if (nested === null) throw new Error("model: nested page array allocation failed");
      pages = this.vms.get(nested)!;
    }
    this.vms.set(va.start, { va, pages });
    return va.start;
  }

  /** vmap: get_vm_area_caller(count pages, VM_MAP), align 1. */
  vmap(count: number): bigint | null {
    const va = this.getVmArea(BigInt(count) * PAGE_SIZE, 1n);
    if (va === null) return null;
    this.vms.set(va.start, { va, pages: null });
    return va.start;
  }

  /** remove_vm_area → free_unmap_vmap_area; vfree then frees the nested page array. */
  private vunmapArea(addr: bigint, deallocatePages: boolean): void {
    const vm = this.vms.get(addr);
    if (vm === undefined) return;
    this.vms.delete(addr);
    this.freeVmapAreaNoflush(vm.va);
    if (deallocatePages && vm.pages) this.vunmapArea(vm.pages.va.start, true);
  }

  /** vfree: deferred to this CPU's vfree_deferred in interrupt context. */
  vfree(addr: bigint | null, irq: boolean): void {
    if (addr === null) return;
    if (irq) {
      this.deferred[this.cpu]!.unshift(addr);
      this.scheduleWork({ kind: "free_work", cpu: this.cpu });
      return;
    }
    this.vunmapArea(addr, true);
  }

  vunmap(addr: bigint | null): void {
    if (addr !== null) this.vunmapArea(addr, false);
  }

  /** vm_map_ram: a vmap block for up to VMAP_MAX_ALLOC pages, else a PAGE_SIZE-aligned area without guard. */
  vmMapRam(count: number): bigint | null {
    if (count === 0) return null;
    if (count <= VMAP_MAX_ALLOC) return this.vbAlloc(count);
    const va = this.allocVmapArea(BigInt(count) * PAGE_SIZE, PAGE_SIZE);
    if (va === null) return null;
    this.ramAreas.set(va.start, va);
    return va.start;
  }

  vmUnmapRam(addr: bigint | null, count: number): void {
    if (addr === null) return;
    if (count <= VMAP_MAX_ALLOC) {
      this.vbFree(addr, count);
      return;
    }
    const va = this.ramAreas.get(addr);
    if (va === undefined) return;
    this.ramAreas.delete(addr);
    this.freeVmapAreaNoflush(va);
  }

  private vbIdx(addr: bigint): bigint {
    return (addr - (this.vstart & ~(VMAP_BLOCK_SIZE - 1n))) / VMAP_BLOCK_SIZE;
  }

  /** vb_alloc: the first block on this CPU's queue with 2^order free pages, else new_vmap_block. */
  private vbAlloc(count: number): bigint | null {
    const n = 1 << orderOf(count);
    const queue = this.vbq[this.cpu]!;
    for (const vb of queue) {
      if (vb.free < n) continue;
      const pagesOff = VMAP_BBMAP_BITS - vb.free;
      vb.free -= n;
      if (vb.free === 0) queue.splice(queue.indexOf(vb), 1);
      return vb.va.start + BigInt(pagesOff) * PAGE_SIZE;
    }
    const va = this.allocVmapArea(VMAP_BLOCK_SIZE, VMAP_BLOCK_SIZE);
    if (va === null) return null;
    const vb: VmapBlock = { va, free: VMAP_BBMAP_BITS - n, dirty: 0, cpu: this.cpu };
    this.blocks.set(this.vbIdx(va.start), vb);
    queue.push(vb);
    return va.start;
  }

  /** vb_free: the pages turn dirty; a fully dirty block goes (free_vmap_block). */
  private vbFree(addr: bigint, count: number): void {
    const vb = this.blocks.get(this.vbIdx(addr));
    if (vb === undefined) throw new Error(`model: vm_unmap_ram of ${addr.toString(16)}: no vmap block`);
    vb.dirty += 1 << orderOf(count);
    if (vb.dirty === VMAP_BBMAP_BITS) this.freeVmapBlock(vb);
  }

  private freeVmapBlock(vb: VmapBlock): void {
    this.blocks.delete(this.vbIdx(vb.va.start));
    this.freeVmapAreaNoflush(vb.va);
  }

  /** purge_fragmented_blocks, every possible CPU: blocks with no live mapping and room left go. */
  protected purgeFragmentedBlocksAllcpus(): void {
    for (const queue of this.vbq) {
      const purge = queue.filter((vb) => vb.free + vb.dirty === VMAP_BBMAP_BITS && vb.dirty !== VMAP_BBMAP_BITS);
      for (const vb of purge) {
        vb.free = 0;
        vb.dirty = VMAP_BBMAP_BITS;
        queue.splice(queue.indexOf(vb), 1);
      }
      for (const vb of purge) this.freeVmapBlock(vb);
    }
  }

  /** `exec`'s flush_work: each CPU's worker in turn, CPU 0 first, until its worklist is empty. */
  flushWork(): void {
    for (let c = 0; c < this.cpus; c++) {
      const queue = this.worklist[c]!;
      for (let w = queue.shift(); w !== undefined; w = queue.shift()) {
        this.cpu = c;
        if (w.kind === "drain") this.drainWork();
        else {
          // free_work: llist_del_all, newest first, each one vfree'd in process context.
          const list = this.deferred[w.cpu]!.splice(0);
          for (const addr of list) this.vunmapArea(addr, true);
        }
      }
    }
  }

  /** Runs one op on `cpu`; the address it returned (null for NULL), undefined for ops that return none. */
  run(op: ModelOp, labels: Map<string, bigint | null>): bigint | null | undefined {
    this.cpu = op.cpu ?? 0;
    const ref = (name: string): bigint | null => {
      if (!labels.has(name)) throw new Error(`model: unknown label ${name}`);
      return labels.get(name)!;
    };
    switch (op.op) {
      case "vmalloc":
      case "vzalloc":
        return this.vmalloc(BigInt(op.size), BigInt(op.align ?? 1));
      case "vmap":
        return this.vmap(op.pages);
      case "vm_map_ram":
        return this.vmMapRam(op.pages);
      case "vfree":
        this.vfree(ref(op.ref), op.irq === true);
        return undefined;
      case "vunmap":
        this.vunmap(ref(op.ref));
        return undefined;
      case "vm_unmap_ram":
        this.vmUnmapRam(ref(op.ref), op.pages);
        return undefined;
      case "purge":
        this.purge();
        return undefined;
      case "flush_work":
        this.flushWork();
        return undefined;
      case "vmallocinfo":
        return undefined;
    }
  }
}

/**
 * v4.19: alloc_vmap_area walks the address-sorted busy list from free_vmap_cache (or from the
 * first area reaching vstart); lazily freed areas stay busy until __purge_vmap_area_lazy erases them.
 */
export class Model419 extends KvaModel {
  /** vmap_area_list: busy and lazy areas, address-sorted. */
  private busy: Va[] = [];
  private freeVmapCache: Va | null = null;
  private cachedHoleSize = 0n;
  private cachedVstart = 0n;
  private cachedAlign = 0n;
  /** vmap_purge_list: newest first. */
  private lazy: Va[] = [];

  constructor(cpus: number) {
    super("4.19", cpus);
  }

  boot(early: readonly (readonly [bigint, bigint])[]): void {
    this.busy = early.map(([start, end]) => ({ start, end, vnId: -1 }));
  }

  private insert(va: Va): void {
    let i = 0;
    while (i < this.busy.length && this.busy[i]!.start < va.start) i++;
    this.busy.splice(i, 0, va);
  }

  /** alloc_vmap_area (v4.19). */
  protected allocVmapArea(size: bigint, align: bigint): Va | null {
    const vstart = this.vstart;
    const vend = this.vend;
    for (let purged = false; ; purged = true) {
      if (
        this.freeVmapCache === null ||
        size < this.cachedHoleSize ||
        vstart < this.cachedVstart ||
        align < this.cachedAlign
      ) {
        this.cachedHoleSize = 0n;
        this.freeVmapCache = null;
      }
      this.cachedVstart = vstart;
      this.cachedAlign = align;
      let addr: bigint;
      let i: number;
      if (this.freeVmapCache !== null && ALIGN(this.freeVmapCache.end, align) >= vstart) {
        i = this.busy.indexOf(this.freeVmapCache);
        addr = ALIGN(this.freeVmapCache.end, align);
      } else {
        this.cachedHoleSize = 0n;
        this.freeVmapCache = null;
        addr = ALIGN(vstart, align);
        // The rbtree descent: the lowest area that ends at or above addr.
        i = this.busy.findIndex((va) => va.end >= addr);
      }
      if (i >= 0) {
        // From the starting point, walk the areas until a hole fits.
        while (addr + size > this.busy[i]!.start && addr + size <= vend) {
          const first = this.busy[i]!;
          if (addr + this.cachedHoleSize < first.start) this.cachedHoleSize = first.start - addr;
          addr = ALIGN(first.end, align);
          if (i === this.busy.length - 1) break;
          i++;
        }
      }
      if (addr + size <= vend) {
        const va: Va = { start: addr, end: addr + size, vnId: -1 };
        this.insert(va);
        this.freeVmapCache = va;
        return va;
      }
      if (purged) return null;
      this.purge();
    }
  }

  /** __free_vmap_area (v4.19): pull free_vmap_cache below the freed area, then erase it. */
  private freeVmapArea(va: Va): void {
    if (this.freeVmapCache !== null) {
      if (va.end < this.cachedVstart) this.freeVmapCache = null;
      else if (va.start <= this.freeVmapCache.start) {
        const i = this.busy.indexOf(va);
        this.freeVmapCache = i > 0 ? this.busy[i - 1]! : null;
      }
    }
    this.busy.splice(this.busy.indexOf(va), 1);
  }

  /** __purge_vmap_area_lazy (v4.19): every lazy area, newest first. */
  private purgeLazy(): void {
    const list = this.lazy.splice(0);
    for (const va of list) {
      this.freeVmapArea(va);
      this.lazyNr -= Number((va.end - va.start) / PAGE_SIZE);
    }
  }

  /** free_vmap_area_noflush (v4.19): past lazy_max_pages, try_purge_vmap_area_lazy unless a purge runs. */
  protected freeVmapAreaNoflush(va: Va): void {
    this.lazyNr += Number((va.end - va.start) / PAGE_SIZE);
    this.lazy.unshift(va);
    if (this.lazyNr > this.lazyMaxPages() && !this.purgeLockHeld) {
      this.purgeLockHeld = true;
      this.purgeLazy();
      this.purgeLockHeld = false;
    }
  }

  /** purge_vmap_area_lazy (v4.19). */
  purge(): void {
    this.purgeLockHeld = true;
    this.purgeFragmentedBlocksAllcpus();
    this.purgeLazy();
    this.purgeLockHeld = false;
  }
}

/** v5.10 and v6.12: the augmented free tree (free_vmap_area_root) and its lowest-match search. */
abstract class KvaTreeModel extends KvaModel {
  protected readonly free = new RbTree();

  boot(early: readonly (readonly [bigint, bigint])[]): void {
    // vmap_init_free_space: a free block for every gap of [1, ULONG_MAX) between boot areas, in order.
    let vmapStart = 1n;
    for (const [start, end] of early) {
      if (start - vmapStart > 0n) this.insertFree(vmapStart, start);
      vmapStart = end;
    }
    if (ULONG_MAX - vmapStart > 0n) this.insertFree(vmapStart, ULONG_MAX);
  }

  private insertFree(start: bigint, end: bigint): void {
    const links = this.free.findLinks(start, end);
    if (links === null) throw new Error("model: overlapping free block");
    this.free.link(newNode(start, end), links.parent, links.side);
  }

  /** The search length and whether rollback shifts vstart differ between the versions. */
  protected abstract searchLength(size: bigint, align: bigint): bigint;
  protected abstract readonly rollbackShiftsVstart: boolean;

  /** is_within_this_va. */
  private isWithin(n: RbNode, size: bigint, align: bigint, vstart: bigint): boolean {
    const nva = n.start > vstart ? ALIGN(n.start, align) : ALIGN(vstart, align);
    if (nva + size > ULONG_MAX || nva < vstart) return false;
    return nva + size <= n.end;
  }

  /** find_vmap_lowest_match: descend left while the left subtree has a block of `length`, roll back up. */
  private findLowestMatch(size: bigint, align: bigint, vstartIn: bigint): RbNode | null {
    let vstart = vstartIn;
    const length = this.searchLength(size, align);
    let node = this.free.root;
    let steps = 0;
    while (node) {
      if (++steps > 1_000_000) throw new Error("model: find_vmap_lowest_match does not terminate");
      if (subtreeMax(node.left) >= length && vstart < node.start) {
        node = node.left;
        continue;
      }
      if (this.isWithin(node, size, align, vstart)) return node;
      if (subtreeMax(node.right) >= length) {
        node = node.right;
        continue;
      }
      // Roll back to the first parent whose right subtree can hold `length`.
      let up: RbNode | null = node;
      node = null;
      while ((up = up.parent)) {
        if (this.isWithin(up, size, align, vstart)) return up;
        if (subtreeMax(up.right) >= length && vstart <= up.start) {
          if (this.rollbackShiftsVstart) vstart = up.start + 1n;
          node = up.right;
          break;
        }
      }
    }
    return null;
  }

  /** __alloc_vmap_area + va_clip (adjust_va_to_fit_type in v5.10): the start address, or null. */
  protected allocFromTree(size: bigint, align: bigint): bigint | null {
    const vstart = this.vstart;
    const va = this.findLowestMatch(size, align, vstart);
    if (va === null) return null;
    const nva = va.start > vstart ? ALIGN(va.start, align) : ALIGN(vstart, align);
    if (nva + size > this.vend) return null;
    if (nva < va.start || nva + size > va.end) throw new Error("model: NOTHING_FIT");
    if (va.start === nva) {
      if (va.end === nva + size)
        this.free.erase(va); // FL_FIT_TYPE
      else va.start += size; // LE_FIT_TYPE
    } else if (va.end === nva + size) {
      va.end = nva; // RE_FIT_TYPE
    } else {
      // NE_FIT_TYPE: the left remainder is a new block, linked below va.
      const lvaStart = va.start;
      va.start = nva + size;
      this.insertFree(lvaStart, nva);
    }
    this.free.updateAugment();
    return nva;
  }

  /** merge_or_add_vmap_area: join the next block, then the previous one (unlinking "next" first). */
  protected mergeOrAdd(start: bigint, end: bigint): void {
    const links = this.free.findLinks(start, end);
    if (links === null) throw new Error(`model: freed ${start.toString(16)}-${end.toString(16)} overlaps free space`);
    const { parent, side } = links;
    if (parent === null) {
      this.free.link(newNode(start, end), null, "left");
      return;
    }
    const next = side === "right" ? RbTree.next(parent) : parent;
    const prev = side === "right" ? parent : RbTree.prev(parent);
    let merged: RbNode | null = null;
    if (next && next.start === end) {
      next.start = start;
      merged = next;
    }
    if (prev && prev.end === start) {
      if (merged) this.free.erase(merged);
      prev.end = merged ? merged.end : end;
      merged = prev;
    }
    if (merged === null) this.free.link(newNode(start, end), parent, side);
    this.free.updateAugment();
  }
}

/** v5.10: lazy areas on vmap_purge_list, merged back newest first; purge synchronous past lazy_max_pages. */
export class Model510 extends KvaTreeModel {
  protected readonly rollbackShiftsVstart = false;
  private lazy: Va[] = [];

  constructor(cpus: number) {
    super("5.10", cpus);
  }

  /** v5.10 find_vmap_lowest_match: always size + align - 1. */
  protected searchLength(size: bigint, align: bigint): bigint {
    return size + align - 1n;
  }

  /** alloc_vmap_area (v5.10): purge once and retry on failure. */
  protected allocVmapArea(size: bigint, align: bigint): Va | null {
    for (let purged = false; ; purged = true) {
      const addr = this.allocFromTree(size, align);
      if (addr !== null) return { start: addr, end: addr + size, vnId: -1 };
      if (purged) return null;
      this.purge();
    }
  }

  private purgeLazy(): void {
    const list = this.lazy.splice(0);
    for (const va of list) {
      this.mergeOrAdd(va.start, va.end);
      this.lazyNr -= Number((va.end - va.start) / PAGE_SIZE);
    }
  }

  /** free_vmap_area_noflush (v5.10). */
  protected freeVmapAreaNoflush(va: Va): void {
    this.lazyNr += Number((va.end - va.start) / PAGE_SIZE);
    this.lazy.unshift(va);
    if (this.lazyNr > this.lazyMaxPages() && !this.purgeLockHeld) {
      this.purgeLockHeld = true;
      this.purgeLazy();
      this.purgeLockHeld = false;
    }
  }

  /** purge_vmap_area_lazy (v5.10). */
  purge(): void {
    this.purgeLockHeld = true;
    this.purgeFragmentedBlocksAllcpus();
    this.purgeLazy();
    this.purgeLockHeld = false;
  }
}

/** A v6.12 vmap_node as addresses see it: its lazy areas (address order) and its size pools (head first). */
interface VmapNode {
  lazy: Va[];
  readonly pools: Map<bigint, { list: Va[]; len: number }>;
}

/**
 * v6.12: one vmap node per possible CPU (clamped to 128; one node means no pools), lazy areas per
 * node, drain_vmap_work past lazy_max_pages, pools filled at purge and decayed at every purge.
 */
export class Model612 extends KvaTreeModel {
  protected readonly rollbackShiftsVstart = true;
  private readonly nodes: VmapNode[];

  constructor(cpus: number) {
    super("6.12", cpus);
    const nr = Math.min(Math.max(cpus, 1), 128);
    this.nodes = Array.from({ length: nr }, () => ({ lazy: [], pools: new Map() }));
  }

  /** v6.12 __alloc_vmap_area: no alignment overhead for align <= PAGE_SIZE. */
  protected searchLength(size: bigint, align: bigint): bigint {
    return align <= PAGE_SIZE ? size : size + align - 1n;
  }

  private addrToNode(addr: bigint): number {
    return Number((addr / VMAP_ZONE_SIZE) % BigInt(this.nodes.length));
  }

  /** node_pool_del_va: the pool's first area if it is aligned; otherwise it moves to the tail. */
  private nodePoolDelVa(node: VmapNode, size: bigint, align: bigint): Va | null {
    const idx = (size - 1n) / PAGE_SIZE;
    if (idx >= MAX_VA_SIZE_PAGES) return null;
    const vp = node.pools.get(idx);
    if (vp === undefined || vp.list.length === 0) return null;
    const va = vp.list[0]!;
    if (va.start % align === 0n) {
      if (va.end - va.start !== size) throw new Error("model: pool area of the wrong size");
      vp.list.shift();
      vp.len--;
      return va;
    }
    vp.list.push(vp.list.shift()!);
    return null;
  }

  /** alloc_vmap_area (v6.12): node_alloc first (more than one node), then the global free tree. */
  protected allocVmapArea(size: bigint, align: bigint): Va | null {
    let vnId = -1;
    if (this.nodes.length > 1) {
      vnId = this.cpu % this.nodes.length;
      const va = this.nodePoolDelVa(this.nodes[vnId]!, size, align);
      if (va) return { start: va.start, end: va.end, vnId };
    }
    for (let purged = false; ; purged = true) {
      const addr = this.allocFromTree(size, align);
      if (addr !== null) return { start: addr, end: addr + size, vnId };
      if (purged) return null;
      this.purge();
    }
  }

  /** free_vmap_area_noflush (v6.12): to its node's lazy list; past lazy_max_pages, schedule the drain. */
  protected freeVmapAreaNoflush(va: Va): void {
    this.lazyNr += Number((va.end - va.start) / PAGE_SIZE);
    const vn = this.nodes[va.vnId >= 0 ? va.vnId : this.addrToNode(va.start)]!;
    let i = 0;
    while (i < vn.lazy.length && vn.lazy[i]!.start < va.start) i++;
    vn.lazy.splice(i, 0, va);
    if (this.lazyNr > this.lazyMaxPages()) this.scheduleWork({ kind: "drain" });
  }

  /** decay_va_pool_node: a quarter of each pool (all of it when len >> 2 is 0: the count wraps), or all. */
  private decayVaPoolNode(vn: VmapNode, fullDecay: boolean): void {
    const decayed: Va[] = [];
    for (let i = 0n; i < MAX_VA_SIZE_PAGES; i++) {
      const vp = vn.pools.get(i);
      if (vp === undefined || vp.list.length === 0) continue;
      const tmp = vp.list.splice(0);
      if (fullDecay) vp.len = 0;
      let nDecay = vp.len >> 2;
      while (tmp.length > 0) {
        decayed.push(tmp.shift()!);
        if (!fullDecay) {
          vp.len--;
          nDecay = nDecay === 0 ? Number.POSITIVE_INFINITY : nDecay - 1;
          if (nDecay === 0) break;
        }
      }
      if (!fullDecay && tmp.length > 0) vp.list = tmp;
    }
    // merge_or_add into a local tree, then reclaim_list_global in address order.
    const local = new LocalBlocks();
    for (const va of decayed) local.add(va.start, va.end);
    for (const [start, end] of local.blocks) this.mergeOrAdd(start, end);
  }

  /** purge_vmap_node: to the node's pool when it may, else onto a local list (list_add: newest first). */
  private purgeVmapNode(vn: VmapNode, list: Va[], skipPopulate: boolean): void {
    const local: Va[] = [];
    let nrPurgedPages = 0;
    for (const va of list) {
      nrPurgedPages += Number((va.end - va.start) / PAGE_SIZE);
      if (va.vnId >= 0 && !skipPopulate) {
        const idx = (va.end - va.start - 1n) / PAGE_SIZE;
        if (idx < MAX_VA_SIZE_PAGES) {
          let vp = vn.pools.get(idx);
          if (vp === undefined) vn.pools.set(idx, (vp = { list: [], len: 0 }));
          vp.list.unshift(va);
          vp.len++;
          continue;
        }
      }
      local.unshift(va);
    }
    this.lazyNr -= nrPurgedPages;
    for (const va of local) this.mergeOrAdd(va.start, va.end);
  }

  /** __purge_vmap_area_lazy (v6.12): decay every node's pools, then purge the nodes with lazy areas. */
  private purgeLazy(fullPoolDecay: boolean): void {
    const purging: { vn: VmapNode; list: Va[] }[] = [];
    for (const vn of this.nodes) {
      this.decayVaPoolNode(vn, fullPoolDecay);
      if (vn.lazy.length === 0) continue;
      purging.push({ vn, list: vn.lazy.splice(0) });
    }
    if (purging.length === 0) return;
    // One helper per full lazy_max_pages() set minus one: helpers' nodes run after the inline ones.
    let helpers = Math.min(Math.max(Math.floor(this.lazyNr / this.lazyMaxPages()), 1), purging.length) - 1;
    const later: typeof purging = [];
    for (const p of purging) {
      if (helpers > 0) {
        later.push(p);
        helpers--;
      } else this.purgeVmapNode(p.vn, p.list, fullPoolDecay);
    }
    for (const p of later) this.purgeVmapNode(p.vn, p.list, fullPoolDecay);
  }

  /** drain_vmap_area_work (v6.12). */
  protected override drainWork(): void {
    this.purgeLazy(false);
  }

  /** reclaim_and_purge_vmap_areas (v6.12): fragmented blocks, every lazy area, pools fully decayed. */
  purge(): void {
    this.purgeFragmentedBlocksAllcpus();
    this.purgeLazy(true);
  }
}

/** The address-sorted merged blocks of a local merge_or_add_vmap_area list (decay_va_pool_node's decay_list). */
class LocalBlocks {
  readonly blocks: [bigint, bigint][] = [];

  add(start: bigint, end: bigint): void {
    let i = 0;
    while (i < this.blocks.length && this.blocks[i]![0] < start) i++;
    const next = this.blocks[i];
    const prev = this.blocks[i - 1];
    const intoNext = next !== undefined && next[0] === end;
    const intoPrev = prev !== undefined && prev[1] === start;
    if (intoNext && intoPrev) {
      prev[1] = next[1];
      this.blocks.splice(i, 1);
    } else if (intoNext) next[0] = start;
    else if (intoPrev) prev[1] = end;
    else this.blocks.splice(i, 0, [start, end]);
  }
}

/** A model of `kernel` on `cpus` CPUs. */
export function makeModel(kernel: ModelKernel, cpus: number): KvaModel {
  if (kernel === "4.19") return new Model419(cpus);
  if (kernel === "5.10") return new Model510(cpus);
  return new Model612(cpus);
}

/** Parses the boot areas out of a vmallocinfo result's lines ("0x…-0x… size caller …"). */
export function earlyAreas(lines: readonly string[]): [bigint, bigint][] {
  return lines.map((l) => {
    const m = /^(0x[0-9a-f]+)-(0x[0-9a-f]+) /.exec(l);
    if (!m) throw new Error(`model: unparsable vmallocinfo line ${l}`);
    return [BigInt(m[1]!), BigInt(m[2]!)] as [bigint, bigint];
  });
}

/**
 * Runs `ops` through a fresh model booted with `early`: for every op, the address it returned
 * ("0x…" or null) or undefined when the op returns none — the same positions as exec's result lines.
 */
export function predict(
  kernel: ModelKernel,
  cpus: number,
  early: readonly (readonly [bigint, bigint])[],
  ops: readonly ModelOp[],
): (string | null | undefined)[] {
  const m = makeModel(kernel, cpus);
  m.boot(early);
  const labels = new Map<string, bigint | null>();
  return ops.map((op) => {
    const got = m.run(op, labels);
    if ("as" in op && op.as !== undefined && got !== undefined) labels.set(op.as, got);
    return got === undefined ? undefined : got === null ? null : `0x${got.toString(16).padStart(16, "0")}`;
  });
}

export type { KvaModel };
