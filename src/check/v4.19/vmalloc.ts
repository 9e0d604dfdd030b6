/**
 * The invariants of the global kva allocator and the vm_struct layer
 * (mm/vmalloc.c, v4.19; docs/architecture.md), checked read-only on a machine whose CPUs
 * are all parked — no lock is taken, so a checker cannot deadlock on a lock a
 * stopped CPU left held, and it sees exactly what the CPUs left:
 *
 * - vmap_area_root is a red-black tree (checkRbTree) ordered by address,
 *   every area page-aligned, non-empty and inside the vmalloc or the modules
 *   area, no two areas overlapping;
 * - vmap_area_list is the tree's in-order walk: the same nodes in the same
 *   order, each prev link the reverse of a next link; free_vmap_cache is NULL
 *   or a node of the tree;
 * - VM_VM_AREA areas have their vm_struct (vm->addr = va_start, vm->size =
 *   va_end - va_start, VM_UNINITIALIZED cleared), and a guard page — the
 *   area's last page, unmapped — unless VM_NO_GUARD or a percpu chunk's;
 * - a VM_ALLOC area's nr_pages pages are mapped at addr + i * PAGE_SIZE, each
 *   referenced, not free, not a slab or page-table page, and in one area only;
 *   every present PTE lies in a live area (not one awaiting the lazy purge,
 *   not a guard page) and maps a referenced page; nr_vmalloc_pages (meminfo's
 *   VmallocUsed) is their sum;
 * - vmap_lazy_nr equals the pages of the areas on vmap_purge_list — v4.19
 *   counts every area free_vmap_area_noflush queued: vfree'd and vunmap'ed
 *   ones (VM_LAZY_FREE), freed vmap blocks and large vm_map_ram areas (flags
 *   0) — each of them still in the tree, and every VM_LAZY_FREE area is queued.
 *
 * A violation is one line: the invariant, the object (kernel addresses in full
 * hex, records as arena offsets) and what is wrong.
 */
import { I32, theArena } from "../../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { ksym_name } from "../../kernel/kallsyms.js";
import { formatKaddr } from "../../shared/layouts.js";
import { list_next, list_prev } from "../../lib/list.js";
import { LLIST_HEAD, llist_next } from "../../lib/llist.js";
import { RB_NODE, RB_ROOT, checkRbTree, rb_next } from "../../lib/rbtree.js";
import { atomic_read } from "../../locks/atomic.js";
import {
  PageBuddy,
  PageReserved,
  PageSlab,
  PageTable,
  STRUCT_PAGE,
  mem_map,
  page_ref_count,
} from "../../mm/mm_types.js";
import { page_to_pfn, pfn_to_page } from "../../mm/page_alloc.js";
import { kernel_pte_lookup, pte_pfn } from "../../mm/pgtable.js";
import {
  VMAP_AREA,
  VM_ALLOC,
  VM_LAZY_FREE,
  VM_NO_GUARD,
  VM_STRUCT,
  VM_UNINITIALIZED,
  VM_VM_AREA,
  free_vmap_cache,
  nr_vmalloc_pages,
  vmap_area_list,
  vmap_area_root,
  vmap_lazy_nr_read,
  vmStructPage,
  vmap_purge_list,
  va_end,
  va_flags,
  va_start,
  va_vm,
  vm_addr,
  vm_flags,
  vm_nr_pages,
  vm_pages,
  vm_size,
} from "../../mm/v4.19/vmalloc.js";
import type { VmallocChecks, VmallocWalk } from "../index.js";
import { checkVmapBlocks } from "../../mm/v4.19/vmap_block.js";
import { walkKernelPageTables } from "../pgtable.js";

const VA = VMAP_AREA.off;

/** What the walk found: the violations and the pages backing VM_ALLOC areas (the conservation sum's term). */
function ptr(p: number): string {
  return `0x${(p >>> 0).toString(16).padStart(8, "0")}`;
}

/** A struct page pointer that really points at one (a corrupted page array may hold anything). */
function isPagePtr(page: number | undefined): page is number {
  return (
    page !== undefined &&
    page >= mem_map.base &&
    page < mem_map.base + mem_map.size &&
    (page - mem_map.base) % STRUCT_PAGE.size === 0
  );
}

/** Runs every vmalloc invariant once; CPUs parked. */
export function walkVmalloc(): VmallocWalk {
  const layout = layoutOf(theArena().config);
  const K = (a: number) => formatKaddr(layout, a);
  const area = (va: number) => `va ${ptr(va)} [${K(va_start(va))}-${K(va_end(va))})`;
  const out: string[] = [];

  /* The tree: a red-black tree first — a broken one may be cyclic, so nothing below walks it then. */
  const rb = checkRbTree(vmap_area_root.ptr);
  if (rb !== null)
    return { violations: [`rbtree: vmap_area_root: ${rb}`], vmallocPages: 0, pgtable: walkKernelPageTables(() => {}) };
  const vas: number[] = [];
  let n = I32[(vmap_area_root.ptr + RB_ROOT.off.rb_node) >> 2]!;
  if (n !== 0) for (let l: number; (l = I32[(n + RB_NODE.off.rb_left) >> 2]!) !== 0; ) n = l;
  for (; n !== 0; n = rb_next(n)) vas.push(n - VA.rb_node);
  const inTree = new Set(vas);

  /* Order, alignment, ranges, overlaps. */
  const inRange = (s: number, e: number, lo: number, hi: number) => s >= lo && e <= hi;
  for (let i = 0; i < vas.length; i++) {
    const va = vas[i]!;
    const s = va_start(va);
    const e = va_end(va);
    if (!(s < e)) out.push(`order: ${area(va)} is empty or reversed`);
    if (s % PAGE_SIZE !== 0 || e % PAGE_SIZE !== 0) out.push(`alignment: ${area(va)} is not page-aligned`);
    if (
      !inRange(s, e, layout.vmallocStart, layout.vmallocEnd) &&
      !inRange(s, e, layout.modulesStart, layout.modulesEnd)
    )
      out.push(
        `range: ${area(va)} is outside [VMALLOC_START, VMALLOC_END) = [${K(layout.vmallocStart)}-${K(layout.vmallocEnd)}) ` +
          `and the modules area [${K(layout.modulesStart)}-${K(layout.modulesEnd)})`,
      );
    if (i > 0) {
      const prev = vas[i - 1]!;
      if (va_start(prev) >= s) out.push(`order: the tree has ${area(prev)} before ${area(va)}`);
      else if (va_end(prev) > s) out.push(`overlap: ${area(prev)} overlaps ${area(va)}`);
    }
  }

  /* vmap_area_list == the in-order walk, links consistent. */
  const head = vmap_area_list.ptr;
  let k = 0;
  for (let e = head; ; k++) {
    const next = list_next(e);
    if (list_prev(next) !== e)
      out.push(
        `vmap_area_list: ${e === head ? "the head" : area(e - VA.list)}: next ${ptr(next)} has prev ${ptr(list_prev(next))}`,
      );
    if (next === head) break;
    if (k >= vas.length) {
      out.push(`vmap_area_list: more entries than the tree's ${vas.length} areas (${area(next - VA.list)} is extra)`);
      break;
    }
    if (next - VA.list !== vas[k])
      out.push(`vmap_area_list: entry ${k} is ${area(next - VA.list)}, the tree's is ${area(vas[k]!)}`);
    e = next;
  }
  if (k < vas.length) out.push(`vmap_area_list: ${k} entries, the tree has ${vas.length} areas`);
  const cache = I32[free_vmap_cache.ptr >> 2]!;
  if (cache !== 0 && !inTree.has(cache - VA.rb_node))
    out.push(`free_vmap_cache: ${ptr(cache)} is not the rb_node of an area in vmap_area_root`);

  /* The purge list and vmap_lazy_nr. */
  const queued = new Set<number>();
  let lazy = 0;
  for (let node = Atomics.load(I32, (vmap_purge_list.ptr + LLIST_HEAD.off.first) >> 2); node !== 0; ) {
    const va = node - VA.purge_list;
    if (queued.has(va)) {
      out.push(`vmap_purge_list: ${area(va)} is on it twice (a cycle)`);
      break;
    }
    queued.add(va);
    if (!inTree.has(va)) out.push(`vmap_purge_list: ${area(va)} is not in vmap_area_root`);
    lazy += (va_end(va) - va_start(va)) / PAGE_SIZE;
    node = llist_next(node);
  }
  const lazyNr = vmap_lazy_nr_read();
  if (lazyNr !== lazy)
    out.push(`vmap_lazy_nr: ${lazyNr}, but the ${queued.size} areas on vmap_purge_list span ${lazy} pages`);

  /* vm_struct links, guard pages, pages and their PTEs. */
  const owner = new Map<number, number>(); // pfn -> va whose vm->pages holds it
  let vmallocPages = 0;
  for (const va of vas) {
    const flags = va_flags(va);
    const vm = va_vm(va);
    if (flags & VM_LAZY_FREE && !queued.has(va))
      out.push(`lazy free: ${area(va)} is VM_LAZY_FREE but not on vmap_purge_list`);
    // v4.19 kmallocs a vmap_area and sets va->vm only with VM_VM_AREA: without it, vm is whatever was there.
    if (!(flags & VM_VM_AREA)) continue;
    if (flags & VM_LAZY_FREE) out.push(`vm_struct: ${area(va)} is both VM_VM_AREA and VM_LAZY_FREE`);
    if (queued.has(va)) out.push(`vm_struct: ${area(va)} is VM_VM_AREA but on vmap_purge_list`);
    if (vm === 0) {
      out.push(`vm_struct: ${area(va)} is VM_VM_AREA without a vm_struct`);
      continue;
    }
    if (vm_addr(vm) !== va_start(va) || vm_size(vm) !== va_end(va) - va_start(va))
      out.push(`vm_struct: ${area(va)} has vm ${ptr(vm)} at ${K(vm_addr(vm))} of ${vm_size(vm)} bytes`);
    const vflags = vm_flags(vm);
    if (vflags & VM_UNINITIALIZED) out.push(`vm_struct: ${area(va)} is still VM_UNINITIALIZED`);
    const guard = vflags & VM_NO_GUARD ? 0 : PAGE_SIZE;
    if (guard !== 0) {
      if (va_end(va) - va_start(va) < 2 * PAGE_SIZE) out.push(`guard page: ${area(va)} has no room for one`);
      else if (kernel_pte_lookup(va_end(va) - PAGE_SIZE) !== 0 && !isPcpuChunk(vm))
        out.push(`guard page: ${area(va)}: its guard page ${K(va_end(va) - PAGE_SIZE)} is mapped`);
    }
    if (!(vflags & VM_ALLOC) || vm_pages(vm) === 0) continue;
    const nr = vm_nr_pages(vm);
    const want = (vm_size(vm) - guard) / PAGE_SIZE;
    if (nr !== want) out.push(`vm_struct: ${area(va)} is VM_ALLOC with nr_pages ${nr}, its size holds ${want}`);
    vmallocPages += nr;
    for (let i = 0; i < nr; i++) {
      const at = va_start(va) + i * PAGE_SIZE;
      const page = vmStructPage(vm, i);
      if (!isPagePtr(page)) {
        out.push(`vm_struct: ${area(va)}: pages[${i}] is ${ptr(page)}, not a struct page`);
        continue;
      }
      const pfn = page_to_pfn(page);
      const pte = kernel_pte_lookup(at);
      if (pte === 0) out.push(`PTE: ${area(va)}: page ${i} (${K(at)}) is not mapped; pages[${i}] is pfn ${pfn}`);
      else if (pte_pfn(pte) !== pfn)
        out.push(`PTE: ${area(va)}: page ${i} (${K(at)}) maps pfn ${pte_pfn(pte)}, pages[${i}] is pfn ${pfn}`);
      const wrong = [
        ...(page_ref_count(page) < 1 ? [`refcount ${page_ref_count(page)}`] : []),
        ...(PageBuddy(page) ? ["PageBuddy"] : []),
        ...(PageSlab(page) ? ["PageSlab"] : []),
        ...(PageTable(page) ? ["PageTable"] : []),
        ...(PageReserved(page) ? ["PageReserved"] : []),
      ];
      if (wrong.length > 0) out.push(`page: ${area(va)}: pages[${i}] pfn ${pfn} is ${wrong.join(", ")}`);
      const other = owner.get(pfn);
      if (other !== undefined) out.push(`page: pfn ${pfn} backs both ${area(other)} and ${area(va)}`);
      else owner.set(pfn, va);
    }
  }
  const used = atomic_read(nr_vmalloc_pages.ptr);
  if (used !== vmallocPages)
    out.push(`nr_vmalloc_pages: ${used}, but VM_ALLOC areas hold ${vmallocPages} pages (meminfo's VmallocUsed)`);

  /* Every present PTE lies in a live area, outside its guard page, and maps a referenced page. */
  const pgtable = walkKernelPageTables((kaddr, pte) => {
    const va = containing(vas, kaddr);
    const at = `PTE: ${K(kaddr)} maps pfn ${pte_pfn(pte)}`;
    if (va === 0) out.push(`${at} but lies in no vmap_area`);
    else if (queued.has(va)) out.push(`${at} but ${area(va)} was unmapped for the lazy purge`);
    if (pte_pfn(pte) >= theArena().nrPages) {
      out.push(`${at}, beyond the machine's ${theArena().nrPages} page frames`);
      return;
    }
    const page = pfn_to_page(pte_pfn(pte));
    if (page_ref_count(page) < 1 || PageBuddy(page))
      out.push(`${at}, a free page (refcount ${page_ref_count(page)}${PageBuddy(page) ? ", PageBuddy" : ""})`);
  });
  out.push(...pgtable.violations);
  return { violations: out, vmallocPages, pgtable };
}

/**
 * An area pcpu_get_vm_areas made for a percpu chunk: VM_ALLOC but without a
 * guard page (v4.19 sizes it exactly), and its last page is mapped once the
 * percpu allocator populates it (src/mm/percpu_chunk.ts).
 */
function isPcpuChunk(vm: number): boolean {
  return ksym_name(I32[(vm + VM_STRUCT.off.caller) >> 2]!) === "pcpu_get_vm_areas";
}

/** The area of `vas` (address order) containing `addr`, 0 for none. */
function containing(vas: readonly number[], addr: number): number {
  let lo = 0;
  let hi = vas.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const va = vas[mid]!;
    if (addr < va_start(va)) hi = mid - 1;
    else if (addr >= va_end(va)) lo = mid + 1;
    else return va;
  }
  return 0;
}

/** Generation 1's checkers, registered by src/check/index.ts. */
export const vmalloc_checks: VmallocChecks = { walkVmalloc, checkVmapBlocks };
