/**
 * The vm_struct layer's invariants for a generation whose busy areas are
 * known (generations 2 and 3; docs/architecture.md): each busy area's
 * vm_struct matches it, its guard page is unmapped, a VM_ALLOC area's pages
 * are mapped in order and owned by it alone, a vmap()ed area is mapped up to
 * its guard page, and every present PTE lies in a busy area and maps a
 * referenced page. Read-only; CPUs parked.
 */
import { I32, theArena } from "../shared/arena.js";
import { PAGE_SIZE } from "../shared/config.js";
import { ksym_name } from "../kernel/kallsyms.js";
import { PageBuddy, PageReserved, PageSlab, PageTable, STRUCT_PAGE, mem_map, page_ref_count } from "../mm/mm_types.js";
import { page_to_pfn, pfn_to_page } from "../mm/page_alloc.js";
import { kernel_pte_lookup, pte_pfn } from "../mm/pgtable.js";
import { VM_ALLOC, VM_MAP, VM_NO_GUARD, VM_UNINITIALIZED } from "../mm/vmalloc_generation.js";
import type { KvaPiece } from "./kva.js";
import { type PgtableWalk, walkKernelPageTables } from "./pgtable.js";

/** A busy vmap_area as the generation's checker found it. */
export interface BusyArea {
  readonly va: number;
  readonly start: number;
  readonly end: number;
  /** va->vm, 0 for a vmap block or a large vm_map_ram area (no vm_struct). */
  readonly vm: number;
  /** How a violation names it. */
  readonly name: string;
}

/** How the checker reads a generation's struct vm_struct (the generation object's accessors). */
export interface VmStructReader {
  readonly vm_addr: (vm: number) => number;
  readonly vm_size: (vm: number) => number;
  readonly vm_flags: (vm: number) => number;
  readonly vm_nr_pages: (vm: number) => number;
  /** vm->pages: 0 while none is allocated. */
  readonly vm_pages: (vm: number) => number;
  readonly vmStructPage: (vm: number, i: number) => number;
  /** Offset of vm_struct's caller (a symbol id, src/kernel/kallsyms.ts). */
  readonly callerOff: number;
  /**
   * The vm_structs vm_area_add_early put on vmlist (arm64's kernel image
   * segments): VM_MAP, but vmsim's page tables do not map the image.
   */
  readonly earlyVmAreas: () => ReadonlyMap<number, string>;
}

/** What the check found: the pages backing VM_ALLOC areas (the conservation sum's term) and the page-table walk. */
export interface VmAreaWalk {
  readonly vmallocPages: number;
  readonly pgtable: PgtableWalk;
}

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

/**
 * An area pcpu_get_vm_areas made for a percpu chunk: VM_ALLOC without a
 * guard page (sized exactly), its last page mapped once the percpu
 * allocator populates it, its pages not in vm->pages (src/mm/percpu_chunk.ts).
 */
function isPcpuChunk(vm: number, r: VmStructReader): boolean {
  return ksym_name(I32[(vm + r.callerOff) >> 2]!) === "pcpu_get_vm_areas";
}

/** The piece of `pieces` (address order) containing `addr`, or undefined. */
function containing<T extends { start: number; end: number }>(pieces: readonly T[], addr: number): T | undefined {
  let lo = 0;
  let hi = pieces.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const p = pieces[mid]!;
    if (addr < p.start) hi = mid - 1;
    else if (addr >= p.end) lo = mid + 1;
    else return p;
  }
  return undefined;
}

/** [VMALLOC_START, VMALLOC_END) and [MODULES_VADDR, MODULES_END) as kaddrs: where a busy area may lie. */
export interface VmallocRanges {
  readonly vmallocStart: number;
  readonly vmallocEnd: number;
  readonly modulesStart: number;
  readonly modulesEnd: number;
}

/**
 * Checks the busy areas (address order) against their vm_structs, pages and
 * the kernel page tables; `idle` are the KVA pieces that must map nothing
 * (lazy, free, pooled areas), to name where a stray PTE lies;
 * `nrVmallocPages` is the generation's nr_vmalloc_pages (meminfo's VmallocUsed).
 * Every busy area but an early one lies in the vmalloc or the modules range.
 */
export function checkVmAreas(
  busy: readonly BusyArea[],
  idle: readonly KvaPiece[],
  r: VmStructReader,
  nrVmallocPages: number,
  ranges: VmallocRanges,
  fmt: (kaddr: number) => string,
  out: string[],
): VmAreaWalk {
  const owner = new Map<number, BusyArea>(); // pfn -> the area whose vm->pages holds it
  const guards = new Set<number>(); // guard-page kaddrs of areas with a vm_struct
  let vmallocPages = 0;
  const early = r.earlyVmAreas();
  const inside = (a: BusyArea, lo: number, hi: number) => a.start >= lo && a.end <= hi;
  for (const a of busy) {
    const vm = a.vm;
    if (
      !early.has(vm) &&
      !inside(a, ranges.vmallocStart, ranges.vmallocEnd) &&
      !inside(a, ranges.modulesStart, ranges.modulesEnd)
    )
      out.push(
        `range: ${a.name} is outside [VMALLOC_START, VMALLOC_END) = [${fmt(ranges.vmallocStart)}-${fmt(ranges.vmallocEnd)}) ` +
          `and the modules area [${fmt(ranges.modulesStart)}-${fmt(ranges.modulesEnd)})`,
      );
    if (vm === 0) continue;
    if (r.vm_addr(vm) !== a.start || r.vm_size(vm) !== a.end - a.start)
      out.push(`vm_struct: ${a.name} has vm ${ptr(vm)} at ${fmt(r.vm_addr(vm))} of ${r.vm_size(vm)} bytes`);
    const flags = r.vm_flags(vm);
    if (flags & VM_UNINITIALIZED) out.push(`vm_struct: ${a.name} is still VM_UNINITIALIZED`);
    const pcpu = isPcpuChunk(vm, r);
    const guard = flags & VM_NO_GUARD || pcpu ? 0 : PAGE_SIZE;
    if (guard !== 0) {
      if (a.end - a.start < 2 * PAGE_SIZE) out.push(`guard page: ${a.name} has no room for one`);
      else guards.add(a.end - PAGE_SIZE);
    }
    if (flags & VM_MAP && !early.has(vm))
      for (let at = a.start; at < a.end - guard; at += PAGE_SIZE)
        if (kernel_pte_lookup(at) === 0) {
          out.push(`PTE: ${a.name} is VM_MAP but its page ${(at - a.start) / PAGE_SIZE} (${fmt(at)}) is not mapped`);
          break;
        }
    if (!(flags & VM_ALLOC) || r.vm_pages(vm) === 0) continue;
    const nr = r.vm_nr_pages(vm);
    const want = (a.end - a.start - guard) / PAGE_SIZE;
    if (nr !== want) out.push(`vm_struct: ${a.name} is VM_ALLOC with nr_pages ${nr}, its size holds ${want}`);
    vmallocPages += nr;
    for (let i = 0; i < nr; i++) {
      const at = a.start + i * PAGE_SIZE;
      const page = r.vmStructPage(vm, i);
      if (!isPagePtr(page)) {
        out.push(`vm_struct: ${a.name}: pages[${i}] is ${ptr(page)}, not a struct page`);
        continue;
      }
      const pfn = page_to_pfn(page);
      const pte = kernel_pte_lookup(at);
      if (pte === 0) out.push(`PTE: ${a.name}: page ${i} (${fmt(at)}) is not mapped; pages[${i}] is pfn ${pfn}`);
      else if (pte_pfn(pte) !== pfn)
        out.push(`PTE: ${a.name}: page ${i} (${fmt(at)}) maps pfn ${pte_pfn(pte)}, pages[${i}] is pfn ${pfn}`);
      const wrong = [
        ...(page_ref_count(page) < 1 ? [`refcount ${page_ref_count(page)}`] : []),
        ...(PageBuddy(page) ? ["PageBuddy"] : []),
        ...(PageSlab(page) ? ["PageSlab"] : []),
        ...(PageTable(page) ? ["PageTable"] : []),
        ...(PageReserved(page) ? ["PageReserved"] : []),
      ];
      if (wrong.length > 0) out.push(`page: ${a.name}: pages[${i}] pfn ${pfn} is ${wrong.join(", ")}`);
      const other = owner.get(pfn);
      if (other !== undefined) out.push(`page: pfn ${pfn} backs both ${other.name} and ${a.name}`);
      else owner.set(pfn, a);
    }
  }
  if (nrVmallocPages !== vmallocPages)
    out.push(
      `nr_vmalloc_pages: ${nrVmallocPages}, but VM_ALLOC areas hold ${vmallocPages} pages (meminfo's VmallocUsed)`,
    );

  // Every present PTE lies in a busy area, outside its guard page, and maps a referenced page.
  const idleSorted = [...idle].sort((x, y) => x.start - y.start);
  const pgtable = walkKernelPageTables((kaddr, pte) => {
    const at = `PTE: ${fmt(kaddr)} maps pfn ${pte_pfn(pte)}`;
    const a = containing(busy, kaddr);
    if (a === undefined) {
      const p = containing(idleSorted, kaddr);
      out.push(`${at} but lies in no busy vmap_area${p ? ` (in ${p.what})` : ""}`);
    } else if (guards.has(kaddr)) out.push(`${at}, the guard page of ${a.name}`);
    if (pte_pfn(pte) >= theArena().nrPages) {
      out.push(`${at}, beyond the machine's ${theArena().nrPages} page frames`);
      return;
    }
    const page = pfn_to_page(pte_pfn(pte));
    if (page_ref_count(page) < 1 || PageBuddy(page))
      out.push(`${at}, a free page (refcount ${page_ref_count(page)}${PageBuddy(page) ? ", PageBuddy" : ""})`);
  });
  out.push(...pgtable.violations);
  return { vmallocPages, pgtable };
}
