/**
 * Kernel page tables of the simulated machine, ARM64 v4.19: the descriptor
 * format (arch/arm64/include/asm/pgtable-hwdef.h, pgtable-prot.h), the
 * accessors and level folding (asm/pgtable.h, asm-generic/pgtable-nopud.h and
 * -nopmd.h), table allocation (asm/pgalloc.h, mm/memory.c's __p?d_alloc),
 * init_mm and paging_init, and vmalloc's page-table walkers (mm/vmalloc.c,
 * "Page table manipulation functions").
 *
 * Tables are real pages from the buddy allocator. An entry is the low 32-bit
 * word of an 8-byte slot in its table page's contents; the high word stays 0
 * because PXN, UXN, DBM (PTE_WRITE), PTE_DIRTY and PTE_SPECIAL, which live
 * there, are not modelled (writability is PTE_RDONLY, the bit the MMU checks).
 * The output address is pfn << 12 in bits 12..31: physical memory stays below
 * 4 GiB. arm32 uses the same format: vmsim models the Linux view of its tables
 * (2048 pgd entries of 2 MiB, 512-entry pte tables), not the hardware's.
 *
 * Only the kernel's vmalloc/modules range has tables; the linear map is the
 * arena's page contents themselves (pfn_to_data). p4d is folded into the pgd on
 * every preset (as on arm64 v4.19), so it does not appear.
 *
 * Entries are written with Atomics.store and read with Atomics.load: a CPU
 * walking the tables (the MMU, vmalloc_to_page) may race with vunmap or with
 * table population on another CPU, as on real hardware, and must see either
 * the old or the new descriptor, never a torn or stale-forever one.
 */
import { DEFINE_GLOBAL, I32, PAGEDATA_BASE, staticInit, theArena } from "../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../shared/config.js";
import { formatKaddr, type Layout } from "../shared/layouts.js";
import { KernelBug, reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, sched_point } from "../sched/sched_point.js";
import { onSetCurrentCpu, smp_processor_id } from "../shared/smp.js";
import { SPINLOCK_T, spin_lock, spin_lock_init, spin_unlock } from "../locks/spinlock.js";
import { __READ_ONCE } from "../locks/atomic.js";
import { GFP_KERNEL, __GFP_ZERO } from "./gfp.js";
import { __ClearPageTable, __SetPageTable } from "./mm_types.js";
import {
  NR_PAGETABLE,
  __free_page,
  alloc_page,
  alloc_pages,
  mod_zone_page_state,
  page_address,
  page_to_pfn,
  page_zone,
  pfn_to_page,
} from "./page_alloc.js";

/** include/uapi/asm-generic/errno-base.h */
const ENOMEM = 12;

/*** Descriptor format (pgtable-hwdef.h, low word) ***/

/** Valid descriptor, any level. */
export const PTE_VALID = 1 << 0;
/** Table descriptor at levels 0-2; a level-3 page descriptor needs it set too. */
export const PTE_TABLE_BIT = 1 << 1;
/** Level-3 page descriptor: valid + page (PTE_TYPE_PAGE). */
export const PTE_TYPE_PAGE = 3;
/** Table descriptor at levels 0-2 (PMD_TYPE_TABLE = PUD_TYPE_TABLE). */
export const PMD_TYPE_TABLE = 3;
/** AP[1]: EL0 access. */
export const PTE_USER = 1 << 6;
/** AP[2]: read-only. */
export const PTE_RDONLY = 1 << 7;
/** SH[1:0]: inner shareable. */
export const PTE_SHARED = 3 << 8;
/** Access flag. */
export const PTE_AF = 1 << 10;
/** Not global (ASID-tagged). */
export const PTE_NG = 1 << 11;
/** Memory attribute index bits 2-4 (into MAIR_EL1). */
export const PTE_ATTRINDX_MASK = 7 << 2;
/** MAIR_EL1 slot of Normal write-back memory (asm/memory.h). */
export const MT_NORMAL = 4;
/** Output address bits of the low word: pfn << 12. */
export const PTE_ADDR_MASK = 0xfffff000;

/** PTE_ATTRINDX(t): attribute index field. */
export function PTE_ATTRINDX(t: number): number {
  return t << 2;
}

/*** Protections (pgtable-prot.h) ***/

/** pgprot_t: the attribute bits of a page descriptor. */
export type Pgprot = number & { readonly brand: "pgprot_t" };

/** __pgprot(v). */
export function __pgprot(v: number): Pgprot {
  return (v >>> 0) as Pgprot;
}

/** pgprot_val(prot). */
export function pgprot_val(p: Pgprot): number {
  return p;
}

/** PROT_DEFAULT with KPTI off (PTE_MAYBE_NG = 0): kernel mappings are global. */
const PROT_DEFAULT = PTE_TYPE_PAGE | PTE_AF | PTE_SHARED;
/** PROT_NORMAL: PXN, UXN and PTE_WRITE are upper-word bits, not modelled. */
const PROT_NORMAL = PROT_DEFAULT | PTE_ATTRINDX(MT_NORMAL);

/** PAGE_KERNEL: read/write normal memory (low word 0x713). */
export const PAGE_KERNEL = __pgprot(PROT_NORMAL);
/** PAGE_KERNEL_RO: read-only normal memory (low word 0x793). */
export const PAGE_KERNEL_RO = __pgprot(PROT_NORMAL | PTE_RDONLY);
/** PAGE_KERNEL_EXEC (vmalloc_exec): differs from PAGE_KERNEL only in PXN, an upper-word bit, so equal here. */
export const PAGE_KERNEL_EXEC = __pgprot(PROT_NORMAL);

/*** Entry values (asm/pgtable.h) ***/

/** pte_pfn(pte). */
export function pte_pfn(pte: number): number {
  return pte >>> 12;
}

/** pfn_pte(pfn, prot): a page descriptor. */
export function pfn_pte(pfn: number, prot: Pgprot): number {
  return (pfn * PAGE_SIZE + prot) >>> 0;
}

/** mk_pte(page, prot): the descriptor mapping `page` (a struct page pointer). */
export function mk_pte(page: number, prot: Pgprot): number {
  return pfn_pte(page_to_pfn(page), prot);
}

/** pte_pgprot(pte): the attribute bits. */
export function pte_pgprot(pte: number): Pgprot {
  return __pgprot(pte & ~PTE_ADDR_MASK);
}

/** pte_none: an empty slot. */
export function pte_none(pte: number): boolean {
  return pte === 0;
}

/** pte_present: valid (PTE_PROT_NONE is an upper-word bit, not modelled). */
export function pte_present(pte: number): boolean {
  return (pte & PTE_VALID) !== 0;
}

/** pte_rdonly: AP[2], what the MMU checks on a store. */
export function pte_rdonly(pte: number): boolean {
  return (pte & PTE_RDONLY) !== 0;
}

/*** init_mm (mm/init-mm.c) ***/

/** Levels a layout may have (pgd, pud, pmd, pte); index = position in Layout.levels. */
const MAX_LEVELS = 4;

/** The parts of struct mm_struct the kernel half uses. */
export const MM_STRUCT = defineStruct("mm_struct", [
  /** swapper_pg_dir: arena address of the top table's contents. */
  { name: "pgd", type: "ptr", guard: "init" },
  /** Serializes populating an empty table entry (the __p?d_alloc race). */
  { name: "page_table_lock", type: SPINLOCK_T },
  /** Tables in use per level (Layout.levels order); kernel-range tables are never freed. */
  { name: "nr_tables", type: "i32", count: MAX_LEVELS, guard: "page_table_lock" },
  /** __p?d_alloc calls that found the entry populated meanwhile and freed their table. */
  { name: "nr_table_races", type: "i32", guard: "page_table_lock" },
]);
const MM = MM_STRUCT.off;

/** init_mm: the kernel's address space. */
export const init_mm = DEFINE_GLOBAL("init_mm", MM_STRUCT);
staticInit(() => spin_lock_init(init_mm.ptr + MM.page_table_lock, "init_mm.page_table_lock"));

/*** Geometry of the configured layout (immutable config, cached per thread) ***/

let layout: Layout;
let PGDIR_SHIFT = 0;
let PTRS_PER_PGD = 0;
let PGD_ORDER = 0;
/** Whether the pud / pmd level exists or is folded into the one above. */
let HAS_PUD = false;
let HAS_PMD = false;
let PTRS_PER_PUD = 1;
let PTRS_PER_PMD = 1;
const PTRS_PER_PTE = 512;
/*
 * 2^-SHIFT per level: kaddrs exceed 2^32, so p?d_index is an exact float scaling, then `& (PTRS_PER_* - 1)`:
 * ToInt32 truncates (= floor for kaddrs, which are >= 0) and keeps the low bits, the index (no float modulo).
 */
let PGD_SCALE = 0;
let PUD_SCALE = 0;
let PMD_SCALE = 0;
const PTE_SCALE = 1 / PAGE_SIZE;
let PGDIR_SIZE = 0;
let PUD_SIZE = 0;
let PMD_SIZE = 0;
/** Level indices (Layout.levels order) of the pud, pmd and pte tables, for accounting; -1 when folded. */
let LEVEL_PUD = -1;
let LEVEL_PMD = -1;
let LEVEL_PTE = 0;

onSetCurrentCpu(() => {
  layout = layoutOf(theArena().config);
  const lv = layout.levels;
  const find = (name: string) => lv.findIndex((l) => l.name === name);
  // p?d_index masks with PTRS_PER_* - 1, as the kernel does.
  if (lv.some((l) => (l.ptrs & (l.ptrs - 1)) !== 0))
    throw new Error(`layout ${layout.name}: PTRS_PER_* not powers of 2`);
  PGDIR_SHIFT = lv[0]!.shift;
  PTRS_PER_PGD = lv[0]!.ptrs;
  PGD_ORDER = lv[0]!.order;
  LEVEL_PUD = find("pud");
  LEVEL_PMD = find("pmd");
  LEVEL_PTE = lv.length - 1;
  HAS_PUD = LEVEL_PUD >= 0;
  HAS_PMD = LEVEL_PMD >= 0;
  PTRS_PER_PUD = HAS_PUD ? lv[LEVEL_PUD]!.ptrs : 1;
  PTRS_PER_PMD = HAS_PMD ? lv[LEVEL_PMD]!.ptrs : 1;
  PGDIR_SIZE = 2 ** PGDIR_SHIFT;
  PUD_SIZE = HAS_PUD ? 2 ** lv[LEVEL_PUD]!.shift : PGDIR_SIZE;
  PMD_SIZE = HAS_PMD ? 2 ** lv[LEVEL_PMD]!.shift : PUD_SIZE;
  PGD_SCALE = 1 / PGDIR_SIZE;
  PUD_SCALE = 1 / PUD_SIZE;
  PMD_SCALE = 1 / PMD_SIZE;
});

/*** Accessors (asm/pgtable.h; folded levels as asm-generic/pgtable-nopud.h, -nopmd.h) ***/

/* A p?d/pte "pointer" is the arena address of an 8-byte slot; the descriptor is its low word. */

/*
 * Descriptors are accessed through the I32 view: they stay below 2^31 (memory
 * is at most 1.5 GiB, so pfn < 2^19), and a Uint32Array Atomics op returns a
 * boxed double for larger values.
 */

/** READ_ONCE(*ptep), any level: a walker may race with a writer on another CPU (arm64: a relaxed load). */
export function ptep_get(ptep: number): number {
  return __READ_ONCE(ptep);
}

/** set_pte (WRITE_ONCE + dsb): publishes the descriptor to concurrent walkers. */
export function set_pte(ptep: number, pte: number): void {
  Atomics.store(I32, ptep >> 2, pte);
}

/** pte_clear. */
export function pte_clear(ptep: number): void {
  Atomics.store(I32, ptep >> 2, 0);
}

/** ptep_get_and_clear: arm64 uses xchg, so a concurrent walker sees the old entry or 0. */
export function ptep_get_and_clear(ptep: number): number {
  sched_point(SP_ATOMIC);
  return Atomics.exchange(I32, ptep >> 2, 0);
}

/** Contents address of the next-level table an entry points to (p?d_page_vaddr). */
function table_vaddr(entry: number): number {
  return PAGEDATA_BASE + (entry >>> 12) * PAGE_SIZE;
}

/** pgd_offset_k(addr): the swapper_pg_dir slot covering kaddr `addr`. */
export function pgd_offset_k(addr: number): number {
  return I32[(init_mm.ptr + MM.pgd) >> 2]! + ((addr * PGD_SCALE) & (PTRS_PER_PGD - 1)) * 8;
}

/** pgd_none: always false when the pud is folded (the pud check is the real one). */
export function pgd_none(pgd: number): boolean {
  return HAS_PUD && pgd === 0;
}
/** pgd_bad: present but not a table (vmsim maps no blocks, so corruption). */
export function pgd_bad(pgd: number): boolean {
  return HAS_PUD && (pgd & PTE_TABLE_BIT) === 0;
}
/** pgd_present: always true when the pud is folded. */
export function pgd_present(pgd: number): boolean {
  return !HAS_PUD || (pgd & PTE_VALID) !== 0;
}

/** pud_offset(pgdp, addr): the pgd slot itself when the pud is folded. */
export function pud_offset(pgdp: number, addr: number): number {
  if (!HAS_PUD) return pgdp;
  return table_vaddr(ptep_get(pgdp)) + ((addr * PUD_SCALE) & (PTRS_PER_PUD - 1)) * 8;
}

/** pud_none: always false when the pmd is folded. */
export function pud_none(pud: number): boolean {
  return HAS_PMD && pud === 0;
}
/** pud_bad: not a table; never when the pmd is folded. */
export function pud_bad(pud: number): boolean {
  return HAS_PMD && (pud & PTE_TABLE_BIT) === 0;
}
/** pud_present: always true when the pmd is folded. */
export function pud_present(pud: number): boolean {
  return !HAS_PMD || (pud & PTE_VALID) !== 0;
}

/** pmd_offset(pudp, addr): the pud slot itself when the pmd is folded. */
export function pmd_offset(pudp: number, addr: number): number {
  if (!HAS_PMD) return pudp;
  return table_vaddr(ptep_get(pudp)) + ((addr * PMD_SCALE) & (PTRS_PER_PMD - 1)) * 8;
}

/** pmd_none: no pte table yet. */
export function pmd_none(pmd: number): boolean {
  return pmd === 0;
}
/** pmd_bad: not a table. */
export function pmd_bad(pmd: number): boolean {
  return (pmd & PTE_TABLE_BIT) === 0;
}
/** pmd_present. */
export function pmd_present(pmd: number): boolean {
  return (pmd & PTE_VALID) !== 0;
}

/** pte_offset_kernel(pmdp, addr). */
export function pte_offset_kernel(pmdp: number, addr: number): number {
  return table_vaddr(ptep_get(pmdp)) + ((addr * PTE_SCALE) & (PTRS_PER_PTE - 1)) * 8;
}

/* p?d_addr_end: the next table boundary, or end (a folded level spans its parent). */
function pgd_addr_end(addr: number, end: number): number {
  return Math.min((Math.floor(addr * PGD_SCALE) + 1) * PGDIR_SIZE, end);
}
function pud_addr_end(addr: number, end: number): number {
  return HAS_PUD ? Math.min((Math.floor(addr * PUD_SCALE) + 1) * PUD_SIZE, end) : end;
}
function pmd_addr_end(addr: number, end: number): number {
  return HAS_PMD ? Math.min((Math.floor(addr * PMD_SCALE) + 1) * PMD_SIZE, end) : end;
}

/* p?d_none_or_clear_bad (asm-generic/pgtable.h): a bad entry is reported (p?d_ERROR) and cleared. */
function clear_bad(p: number, v: number, level: string): void {
  reportBug(
    "WARN",
    `mm/pgtable-generic.c: bad ${level} 0x${v.toString(16).padStart(16, "0")} in slot ${p} (CPU${smp_processor_id()})`,
  );
  pte_clear(p);
}
function pgd_none_or_clear_bad(pgdp: number): boolean {
  const v = ptep_get(pgdp);
  if (pgd_none(v)) return true;
  if (!pgd_bad(v)) return false;
  clear_bad(pgdp, v, "pgd");
  return true;
}
function pud_none_or_clear_bad(pudp: number): boolean {
  const v = ptep_get(pudp);
  if (pud_none(v)) return true;
  if (!pud_bad(v)) return false;
  clear_bad(pudp, v, "pud");
  return true;
}
function pmd_none_or_clear_bad(pmdp: number): boolean {
  const v = ptep_get(pmdp);
  if (pmd_none(v)) return true;
  if (!pmd_bad(v)) return false;
  clear_bad(pmdp, v, "pmd");
  return true;
}

/*** Table allocation (asm/pgalloc.h, mm/memory.c) ***/

/** PGALLOC_GFP: tables start zeroed, i.e. all entries none. */
const PGALLOC_GFP = GFP_KERNEL | __GFP_ZERO;

/**
 * pgtable_page_ctor: marks a table page (PageTable) and counts it in
 * NR_PAGETABLE. v4.19 does this only for user tables; vmsim does it for the
 * kernel's too, so the page-conservation check and vmsim info see them.
 */
function pgtable_page_ctor(page: number, order: number): void {
  for (let i = 0; i < 1 << order; i++) __SetPageTable(pfn_to_page(page_to_pfn(page) + i));
  mod_zone_page_state(page_zone(page), NR_PAGETABLE, 1 << order);
}

/** pud_alloc_one / pmd_alloc_one / pte_alloc_one_kernel: one zeroed page each; returns the struct page, 0 on failure. */
function pgtable_alloc_one(): number {
  const page = alloc_page(PGALLOC_GFP);
  if (page) pgtable_page_ctor(page, 0);
  return page;
}

/** pud_free / pmd_free / pte_free_kernel: the dtor, then back to the buddy allocator. */
function pgtable_free_one(page: number): void {
  __ClearPageTable(page);
  mod_zone_page_state(page_zone(page), NR_PAGETABLE, -1);
  __free_page(page);
}

/** pgd/pud/pmd_populate(_kernel): a table descriptor, published with Atomics.store (the kernel's dsb). */
function pxd_populate(p: number, table: number): void {
  set_pte(p, pfn_pte(page_to_pfn(table), __pgprot(PMD_TYPE_TABLE)));
}

/** Counts a table populated at `level`; caller holds init_mm.page_table_lock. */
function mm_inc_nr_tables(level: number): void {
  const i = ((init_mm.ptr + MM.nr_tables) >> 2) + level;
  I32[i] = I32[i]! + 1;
}

/** Counts a lost population race; caller holds init_mm.page_table_lock. */
function mm_inc_table_races(): void {
  const i = (init_mm.ptr + MM.nr_table_races) >> 2;
  I32[i] = I32[i]! + 1;
}

/*
 * The __p?d_alloc race (mm/memory.c, v4.19): allocate a zeroed table without
 * the lock, then under init_mm.page_table_lock populate the entry unless
 * another CPU did so meanwhile, in which case ours goes back to the allocator.
 * The table's zeroed contents are visible before its descriptor because the
 * descriptor is written with Atomics.store after them (the kernel's smp_wmb).
 */

/** __pud_alloc (v4.19): 0, or -ENOMEM. The loser's table is freed under the lock, as in the kernel. */
export function __pud_alloc(pgdp: number): number {
  const table = pgtable_alloc_one();
  if (!table) return -ENOMEM;
  const ptl = init_mm.ptr + MM.page_table_lock;
  spin_lock(ptl);
  if (!pgd_present(ptep_get(pgdp))) {
    mm_inc_nr_tables(LEVEL_PUD);
    pxd_populate(pgdp, table);
  } else {
    mm_inc_table_races();
    pgtable_free_one(table);
  }
  spin_unlock(ptl);
  return 0;
}

/** __pmd_alloc (v4.19): 0, or -ENOMEM. pud_lock(init_mm) is page_table_lock. */
export function __pmd_alloc(pudp: number): number {
  const table = pgtable_alloc_one();
  if (!table) return -ENOMEM;
  const ptl = init_mm.ptr + MM.page_table_lock;
  spin_lock(ptl);
  if (!pud_present(ptep_get(pudp))) {
    mm_inc_nr_tables(LEVEL_PMD);
    pxd_populate(pudp, table);
  } else {
    mm_inc_table_races();
    pgtable_free_one(table);
  }
  spin_unlock(ptl);
  return 0;
}

/** __pte_alloc_kernel (v4.19): 0, or -ENOMEM. Here the loser's table is freed after the unlock. */
export function __pte_alloc_kernel(pmdp: number): number {
  let table = pgtable_alloc_one();
  if (!table) return -ENOMEM;
  const ptl = init_mm.ptr + MM.page_table_lock;
  spin_lock(ptl);
  if (pmd_none(ptep_get(pmdp))) {
    mm_inc_nr_tables(LEVEL_PTE);
    pxd_populate(pmdp, table);
    table = 0;
  } else {
    mm_inc_table_races();
  }
  spin_unlock(ptl);
  if (table) pgtable_free_one(table);
  return 0;
}

/** pud_alloc(&init_mm, pgdp, addr): the pud slot, allocating its table if missing; 0 on -ENOMEM. */
function pud_alloc(pgdp: number, addr: number): number {
  return pgd_none(ptep_get(pgdp)) && __pud_alloc(pgdp) ? 0 : pud_offset(pgdp, addr);
}

/** pmd_alloc(&init_mm, pudp, addr). */
function pmd_alloc(pudp: number, addr: number): number {
  return pud_none(ptep_get(pudp)) && __pmd_alloc(pudp) ? 0 : pmd_offset(pudp, addr);
}

/** pte_alloc_kernel(pmdp, addr). */
function pte_alloc_kernel(pmdp: number, addr: number): number {
  return pmd_none(ptep_get(pmdp)) && __pte_alloc_kernel(pmdp) ? 0 : pte_offset_kernel(pmdp, addr);
}

/*** paging_init (arch/arm64/mm/mmu.c) ***/

/**
 * paging_init (v4.19, in part): allocates swapper_pg_dir. The kernel's is in
 * the image; here it comes from the buddy allocator (order from the layout:
 * arm32's pgd is 16 KiB), so the page-conservation check counts it as a
 * page-table page. Call after mem_init.
 */
export function paging_init(): void {
  const pgd = alloc_pages(PGALLOC_GFP, PGD_ORDER);
  if (!pgd) throw new KernelBug("paging_init: no memory for swapper_pg_dir");
  pgtable_page_ctor(pgd, PGD_ORDER);
  I32[(init_mm.ptr + MM.pgd) >> 2] = page_address(pgd);
  I32[(init_mm.ptr + MM.nr_tables) >> 2] = 1;
}

/*** Page table manipulation functions (mm/vmalloc.c) ***/

/** Whether kaddr `addr` is page aligned: its exact page-number scaling is whole (no float modulo). */
function page_aligned(addr: number): boolean {
  const vpn = addr * PTE_SCALE;
  return vpn === Math.floor(vpn);
}

function bug_on_bad_range(fn: string, start: number, end: number): void {
  // The kernel BUGs on start >= end; an unaligned bound would make its do/while loop run forever.
  if (start >= end || !page_aligned(start) || !page_aligned(end)) bad_range(fn, start, end);
}

function bad_range(fn: string, start: number, end: number): never {
  throw new KernelBug(`${fn}: bad range ${formatKaddr(layout, start)}-${formatKaddr(layout, end)}`);
}

/** A WARN in mm/vmalloc.c's function `fn`; built out of line, so the walkers stay small enough to inline. */
function warn_vmalloc(fn: string, what: string): void {
  reportBug("WARN", `WARNING: CPU: ${smp_processor_id()} at mm/vmalloc.c ${fn}: ${what}`);
}

/** vunmap_pte_range (v4.19). */
function vunmap_pte_range(pmdp: number, addr: number, end: number): void {
  let ptep = pte_offset_kernel(pmdp, addr);
  do {
    const ptent = ptep_get_and_clear(ptep);
    if (!pte_none(ptent) && !pte_present(ptent)) warn_vmalloc("vunmap_pte_range", `bad pte ${ptent}`);
    ptep += 8;
    addr += PAGE_SIZE;
  } while (addr !== end);
}

/** vunmap_pmd_range (v4.19; no huge vmap, so no pmd_clear_huge). */
function vunmap_pmd_range(pudp: number, addr: number, end: number): void {
  let pmdp = pmd_offset(pudp, addr);
  do {
    const next = pmd_addr_end(addr, end);
    if (!pmd_none_or_clear_bad(pmdp)) vunmap_pte_range(pmdp, addr, next);
    pmdp += 8;
    addr = next;
  } while (addr !== end);
}

/** vunmap_pud_range (v4.19). */
function vunmap_pud_range(pgdp: number, addr: number, end: number): void {
  let pudp = pud_offset(pgdp, addr);
  do {
    const next = pud_addr_end(addr, end);
    if (!pud_none_or_clear_bad(pudp)) vunmap_pmd_range(pudp, addr, next);
    pudp += 8;
    addr = next;
  } while (addr !== end);
}

/**
 * vunmap_page_range (v4.19): clears the PTEs of [addr, end). No TLB flush:
 * that is the caller's job (the lazy purge batches it); until then other CPUs
 * may still translate through their TLBs. Tables are never freed.
 */
export function vunmap_page_range(addr: number, end: number): void {
  bug_on_bad_range("vunmap_page_range", addr, end);
  let pgdp = pgd_offset_k(addr);
  do {
    const next = pgd_addr_end(addr, end);
    if (!pgd_none_or_clear_bad(pgdp)) vunmap_pud_range(pgdp, addr, next);
    pgdp += 8;
    addr = next;
  } while (addr !== end);
}

/*
 * The kernel's vmap_*_range return 0 or an error and advance a shared `int *nr`;
 * these return the advanced index instead (>= 0), or -ENOMEM.
 */

/** vmap_pte_range (v4.19): WARNs and fails on a present PTE or a NULL page. */
function vmap_pte_range(pmdp: number, addr: number, end: number, prot: Pgprot, pages: number, nr: number): number {
  let ptep = pte_alloc_kernel(pmdp, addr);
  if (!ptep) return -ENOMEM;
  do {
    const page = I32[(pages >> 2) + nr]!;
    const old = ptep_get(ptep);
    if (!pte_none(old)) {
      warn_vmalloc(
        "vmap_pte_range",
        `WARN_ON(!pte_none(*pte)) at ${formatKaddr(layout, addr)}: pte 0x${old.toString(16)}`,
      );
      return -ENOMEM;
    }
    if (!page) {
      warn_vmalloc("vmap_pte_range", `WARN_ON(!page) at ${formatKaddr(layout, addr)}`);
      return -ENOMEM;
    }
    set_pte(ptep, mk_pte(page, prot));
    nr++;
    ptep += 8;
    addr += PAGE_SIZE;
  } while (addr !== end);
  return nr;
}

/** vmap_pmd_range (v4.19). */
function vmap_pmd_range(pudp: number, addr: number, end: number, prot: Pgprot, pages: number, nr: number): number {
  let pmdp = pmd_alloc(pudp, addr);
  if (!pmdp) return -ENOMEM;
  do {
    const next = pmd_addr_end(addr, end);
    nr = vmap_pte_range(pmdp, addr, next, prot, pages, nr);
    if (nr < 0) return -ENOMEM;
    pmdp += 8;
    addr = next;
  } while (addr !== end);
  return nr;
}

/** vmap_pud_range (v4.19). */
function vmap_pud_range(pgdp: number, addr: number, end: number, prot: Pgprot, pages: number, nr: number): number {
  let pudp = pud_alloc(pgdp, addr);
  if (!pudp) return -ENOMEM;
  do {
    const next = pud_addr_end(addr, end);
    nr = vmap_pmd_range(pudp, addr, next, prot, pages, nr);
    if (nr < 0) return -ENOMEM;
    pudp += 8;
    addr = next;
  } while (addr !== end);
  return nr;
}

/**
 * vmap_page_range (v4.19; flush_cache_vmap is a no-op on arm64): maps
 * [start, end) to the pages of `pages`, an arena array of int32 struct page
 * pointers (area->pages), allocating missing tables. Returns the number of
 * pages mapped, or -ENOMEM (also for a PTE already present, after a WARN);
 * on failure the PTEs set so far stay, as in the kernel (the caller unmaps).
 */
export function vmap_page_range(start: number, end: number, prot: Pgprot, pages: number): number {
  bug_on_bad_range("vmap_page_range", start, end);
  let addr = start;
  let nr = 0;
  let pgdp = pgd_offset_k(addr);
  do {
    const next = pgd_addr_end(addr, end);
    nr = vmap_pud_range(pgdp, addr, next, prot, pages, nr);
    if (nr < 0) return nr;
    pgdp += 8;
    addr = next;
  } while (addr !== end);
  return nr;
}

/*** Walkers ***/

/** The pte slot mapping kaddr `addr` (as vmalloc_to_page walks), or 0 when a table above is missing. */
export function kernel_ptep_lookup(addr: number): number {
  const pgdp = pgd_offset_k(addr);
  const pgd = ptep_get(pgdp);
  if (pgd_none(pgd) || pgd_bad(pgd)) return 0;
  const pudp = pud_offset(pgdp, addr);
  const pud = ptep_get(pudp);
  if (pud_none(pud) || pud_bad(pud)) return 0;
  const pmdp = pmd_offset(pudp, addr);
  const pmd = ptep_get(pmdp);
  if (pmd_none(pmd) || pmd_bad(pmd)) return 0;
  return pte_offset_kernel(pmdp, addr);
}

/**
 * The MMU's table walk (hardware, not a kernel function): the pte slot mapping
 * kaddr `addr`, or 0 when a table above is missing. The same result as
 * {@link kernel_ptep_lookup}, but as the hardware walker reads each descriptor
 * once, where the kernel's p?d_offset reads again what p?d_none just checked.
 */
export function mmuTableWalk(addr: number): number {
  let p = pgd_offset_k(addr);
  let v = ptep_get(p);
  if (HAS_PUD) {
    if (pgd_none(v) || pgd_bad(v)) return 0;
    p = table_vaddr(v) + ((addr * PUD_SCALE) & (PTRS_PER_PUD - 1)) * 8;
    v = ptep_get(p);
  }
  if (HAS_PMD) {
    if (pud_none(v) || pud_bad(v)) return 0;
    p = table_vaddr(v) + ((addr * PMD_SCALE) & (PTRS_PER_PMD - 1)) * 8;
    v = ptep_get(p);
  }
  if (pmd_none(v) || pmd_bad(v)) return 0;
  return table_vaddr(v) + ((addr * PTE_SCALE) & (PTRS_PER_PTE - 1)) * 8;
}

/** vmalloc_to_pfn-style lookup: the present PTE mapping `addr`, or 0. */
export function kernel_pte_lookup(addr: number): number {
  const ptep = kernel_ptep_lookup(addr);
  if (!ptep) return 0;
  const pte = ptep_get(ptep);
  return pte_present(pte) ? pte : 0;
}

/** show_pte (arch/arm64/mm/fault.c): the walk of `addr`, one descriptor per real level, as an oops prints it. */
export function show_pte(addr: number): string {
  const hex = (v: number) => v.toString(16).padStart(16, "0");
  const parts: string[] = [];
  const walk = () => {
    let p = pgd_offset_k(addr);
    let v = ptep_get(p);
    parts.push(`pgd=${hex(v)}`);
    if (pgd_none(v) || pgd_bad(v)) return;
    if (HAS_PUD) {
      p = pud_offset(p, addr);
      v = ptep_get(p);
      parts.push(`pud=${hex(v)}`);
    }
    if (pud_none(v) || pud_bad(v)) return;
    if (HAS_PMD) {
      p = pmd_offset(p, addr);
      v = ptep_get(p);
      parts.push(`pmd=${hex(v)}`);
    }
    if (pmd_none(v) || pmd_bad(v)) return;
    parts.push(`pte=${hex(ptep_get(pte_offset_kernel(p, addr)))}`);
  };
  walk();
  return `[${formatKaddr(layout, addr)}] ${parts.join(", ")}`;
}

/*** Accounting (harness) ***/

/** Page-table pages in use per level, read while the CPUs are parked. */
export function pgtableUsage(): { level: string; tables: number; pages: number }[] {
  return layout.levels.map((l, i) => {
    const tables = I32[((init_mm.ptr + MM.nr_tables) >> 2) + i]!;
    return { level: l.name, tables, pages: tables << l.order };
  });
}

/** Pages in page tables, all levels (the page-conservation check's "page tables" term). */
export function pgtablePages(): number {
  return pgtableUsage().reduce((n, u) => n + u.pages, 0);
}

/** How many table allocations lost the population race and freed their page. */
export function pgtableRaces(): number {
  return I32[(init_mm.ptr + MM.nr_table_races) >> 2]!;
}

/**
 * Oracle for the counters: table pages reachable from swapper_pg_dir, by a
 * full walk (slow; tests and the checker).
 */
export function pgtableWalkPages(): number {
  const pgd = I32[(init_mm.ptr + MM.pgd) >> 2]!;
  const walk = (table: number, level: number): number => {
    const l = layout.levels[level]!;
    let n = 1 << l.order;
    if (level === layout.levels.length - 1) return n;
    for (let i = 0; i < l.ptrs; i++) {
      const e = ptep_get(table + i * 8);
      if ((e & PMD_TYPE_TABLE) === PMD_TYPE_TABLE) n += walk(table_vaddr(e), level + 1);
    }
    return n;
  };
  return walk(pgd, 0);
}
