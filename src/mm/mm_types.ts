/**
 * struct page and mem_map (include/linux/mm_types.h, mm.h, page-flags.h and
 * page_ref.h, v4.19): one record per page frame, in a flat mem_map
 * (CONFIG_FLATMEM: pfn_to_page is an index), plus the page-flag, page-type
 * and compound-page helpers the allocators use.
 *
 * A page frame's 4 KiB contents live in the arena's pagedata region, so
 * page_address (the linear map) is `pfn_to_data(pfn)` and virt_to_page its
 * inverse. The kernel's unions are flattened into separate fields: the record
 * is 56 bytes instead of 64, and a field never aliases another's meaning.
 */
import { I32, PAGEDATA_BASE, U32, defineRegion, pfn_to_data, theArena } from "../shared/arena.js";
import { PAGE_SHIFT, PAGE_SIZE } from "../shared/config.js";
import { defineStruct } from "../shared/struct.js";
import { LIST_HEAD } from "../lib/list.js";
import { __READ_ONCE, __WRITE_ONCE } from "../locks/atomic.js";

/**
 * struct page. Who may touch a field depends on the page's state, as in the
 * kernel: while it is free (PageBuddy or on a pcp list) the buddy allocator
 * owns it (zone->lock, or the pcp's CPU with interrupts off); once allocated,
 * whoever holds the reference; a slab page's freelist/inuse/frozen are its
 * cache's list_lock's.
 */
export const STRUCT_PAGE = defineStruct("page", [
  /** PG_* bits (page-flags.h numbering); changed by the page's current owner. */
  { name: "flags", type: "u32", guard: "owner (zone->lock while free)" },
  /** References; 0 while free. page_ref_* only. */
  { name: "_refcount", type: "i32", guard: "atomic" },
  /** page_type, which shares its word with _mapcount in v4.19: -1 = no type; PageBuddy, PageTable clear a bit. */
  { name: "page_type", type: "i32", guard: "zone->lock while free, else owner" },
  /** page_private: the buddy order while PageBuddy; the owner's otherwise. */
  { name: "private", type: "i32", guard: "zone->lock while free, else owner" },
  /** page->index: free for the owner (page tables, vmalloc). */
  { name: "index", type: "i32", guard: "owner" },
  /** Buddy free list, pcp list, or a slab cache's partial list. */
  { name: "lru", type: LIST_HEAD, guard: "zone->lock / pcp CPU / list_lock" },
  /** Tail pages: head page + 1 (the kernel's bit-0 tag); 0 on head and single pages. */
  { name: "compound_head", type: "ptr", guard: "owner" },
  /** Order of a compound page, on its head (the kernel keeps it in page[1]; this record has room). */
  { name: "compound_order", type: "i32", guard: "owner" },
  /** Slab page: its kmem_cache. */
  { name: "slab_cache", type: "ptr", guard: "owner (the slab cache)" },
  /** Slab page: first free object not on a CPU freelist. */
  { name: "freelist", type: "ptr", guard: "&n->list_lock" },
  /** Slab page: objects handed out (all of them while frozen: the CPU freelist is counted as in use). */
  { name: "inuse", type: "i32", guard: "&n->list_lock" },
  /** Slab page: objects in the slab. */
  { name: "objects", type: "i32", guard: "init" },
  /** Slab page: 1 while it is some CPU's cpu slab. */
  { name: "frozen", type: "i32", guard: "&n->list_lock" },
]);
const PAGE_SIZEOF = STRUCT_PAGE.size;
const OFF_FLAGS = STRUCT_PAGE.off.flags;
const OFF_REF = STRUCT_PAGE.off._refcount;
const OFF_TYPE = STRUCT_PAGE.off.page_type;
const OFF_PRIVATE = STRUCT_PAGE.off.private;
const OFF_HEAD = STRUCT_PAGE.off.compound_head;
const OFF_ORDER = STRUCT_PAGE.off.compound_order;

/** mem_map: struct page of every page frame, indexed by pfn. */
export const mem_map = defineRegion("mem_map", (c) => (c.memory / PAGE_SIZE) * PAGE_SIZEOF);

/*** include/asm-generic/memory_model.h (FLATMEM) ***/

/** pfn_to_page (v4.19). */
export function pfn_to_page(pfn: number): number {
  return mem_map.base + pfn * PAGE_SIZEOF;
}

/** page_to_pfn (v4.19). */
export function page_to_pfn(page: number): number {
  return ((page - mem_map.base) / PAGE_SIZEOF) | 0;
}

/** pfn_valid (v4.19): the pfn has a struct page. */
export function pfn_valid(pfn: number): boolean {
  return pfn >= 0 && pfn < theArena().nrPages;
}

/** page_address (v4.19, lowmem): arena offset of the page's 4 KiB contents. */
export function page_address(page: number): number {
  return pfn_to_data(page_to_pfn(page));
}

/** virt_to_page (v4.19): the page containing linear-map address `addr`. */
export function virt_to_page(addr: number): number {
  return pfn_to_page((addr - PAGEDATA_BASE) >> PAGE_SHIFT);
}

/** virt_to_head_page (v4.19): the head of the (compound) page containing `addr`. */
export function virt_to_head_page(addr: number): number {
  return compound_head(virt_to_page(addr));
}

/** virt_addr_valid (v4.19): `addr` lies in the linear map (the pagedata region). */
export function virt_addr_valid(addr: number): boolean {
  return addr >= PAGEDATA_BASE && addr - PAGEDATA_BASE < theArena().nrPages * PAGE_SIZE;
}

/*** include/linux/page-flags.h ***/

// biome-ignore-start lint/style/useNamingConvention: page-flags.h names (PG_slab, PageSlab, __SetPageBuddy …)

/** enum pageflags bit numbers (v4.19) of the flags vmsim uses. */
export const PG_locked = 0;
export const PG_lru = 5;
export const PG_active = 6;
export const PG_slab = 8;
export const PG_reserved = 11;
export const PG_private = 12;
export const PG_head = 15;

/** PAGE_FLAGS_CHECK_AT_FREE (v4.19), restricted to the flags vmsim models. */
export const PAGE_FLAGS_CHECK_AT_FREE =
  (1 << PG_lru) | (1 << PG_locked) | (1 << PG_private) | (1 << PG_reserved) | (1 << PG_slab) | (1 << PG_active);

function testFlag(page: number, bit: number): boolean {
  return (U32[(page + OFF_FLAGS) >> 2]! & (1 << bit)) !== 0;
}
function setFlag(page: number, bit: number): void {
  U32[(page + OFF_FLAGS) >> 2] = U32[(page + OFF_FLAGS) >> 2]! | (1 << bit);
}
function clearFlag(page: number, bit: number): void {
  U32[(page + OFF_FLAGS) >> 2] = U32[(page + OFF_FLAGS) >> 2]! & ~(1 << bit);
}

/** PageSlab (v4.19). */
export function PageSlab(page: number): boolean {
  return testFlag(page, PG_slab);
}
/** __SetPageSlab (v4.19). */
export function __SetPageSlab(page: number): void {
  setFlag(page, PG_slab);
}
/** __ClearPageSlab (v4.19). */
export function __ClearPageSlab(page: number): void {
  clearFlag(page, PG_slab);
}
/** PageReserved (v4.19). */
export function PageReserved(page: number): boolean {
  return testFlag(page, PG_reserved);
}
/** SetPageReserved (v4.19). */
export function SetPageReserved(page: number): void {
  setFlag(page, PG_reserved);
}
/** PageHead (v4.19): the first page of a compound page. */
export function PageHead(page: number): boolean {
  return testFlag(page, PG_head);
}
/** __SetPageHead (v4.19). */
export function __SetPageHead(page: number): void {
  setFlag(page, PG_head);
}
/** __ClearPageHead (v4.19). */
export function __ClearPageHead(page: number): void {
  clearFlag(page, PG_head);
}
/** PageTail (v4.19). */
export function PageTail(page: number): boolean {
  return (I32[(page + OFF_HEAD) >> 2]! & 1) !== 0;
}
/** PageCompound (v4.19). */
export function PageCompound(page: number): boolean {
  return PageHead(page) || PageTail(page);
}
/** compound_head (v4.19): the head page of `page` (itself unless it is a tail). */
export function compound_head(page: number): number {
  const head = I32[(page + OFF_HEAD) >> 2]!;
  return (head & 1) !== 0 ? head - 1 : page;
}
/** compound_order (v4.19): order of a compound page's head, 0 for a single page. */
export function compound_order(page: number): number {
  return PageHead(page) ? I32[(page + OFF_ORDER) >> 2]! : 0;
}
/** set_compound_head (v4.19). */
export function set_compound_head(page: number, head: number): void {
  I32[(page + OFF_HEAD) >> 2] = head + 1;
}
/** clear_compound_head (v4.19). */
export function clear_compound_head(page: number): void {
  I32[(page + OFF_HEAD) >> 2] = 0;
}
/** set_compound_order (v4.19). */
export function set_compound_order(page: number, order: number): void {
  I32[(page + OFF_ORDER) >> 2] = order;
}

/* Page types (v4.19): page_type starts at -1 and a type *clears* its bit, so a mapcount never looks like a type. */
const PAGE_TYPE_BASE = 0xf0000000 | 0;
const PG_buddy = 0x80;
const PG_table = 0x400;

function PageType(page: number, flag: number): boolean {
  return (I32[(page + OFF_TYPE) >> 2]! & (PAGE_TYPE_BASE | flag)) === PAGE_TYPE_BASE;
}

/** PageBuddy (v4.19): free, in the buddy allocator, page_private = its order. */
export function PageBuddy(page: number): boolean {
  return PageType(page, PG_buddy);
}
/** __SetPageBuddy (v4.19). */
export function __SetPageBuddy(page: number): void {
  I32[(page + OFF_TYPE) >> 2] = I32[(page + OFF_TYPE) >> 2]! & ~PG_buddy;
}
/** __ClearPageBuddy (v4.19). */
export function __ClearPageBuddy(page: number): void {
  I32[(page + OFF_TYPE) >> 2] = I32[(page + OFF_TYPE) >> 2]! | PG_buddy;
}
/** PageTable (v4.19): in use as a page table (pgtable_page_ctor sets it, the dtor clears it before the free). */
export function PageTable(page: number): boolean {
  return PageType(page, PG_table);
}
/** __SetPageTable (v4.19). */
export function __SetPageTable(page: number): void {
  I32[(page + OFF_TYPE) >> 2] = I32[(page + OFF_TYPE) >> 2]! & ~PG_table;
}
/** __ClearPageTable (v4.19). */
export function __ClearPageTable(page: number): void {
  I32[(page + OFF_TYPE) >> 2] = I32[(page + OFF_TYPE) >> 2]! | PG_table;
}
// biome-ignore-end lint/style/useNamingConvention: page-flags.h names

/** page_mapcount_reset (v4.19): no type, no mapping (-1). */
export function page_mapcount_reset(page: number): void {
  I32[(page + OFF_TYPE) >> 2] = -1;
}

/** page_private (v4.19). */
export function page_private(page: number): number {
  return I32[(page + OFF_PRIVATE) >> 2]!;
}
/** set_page_private (v4.19). */
export function set_page_private(page: number, v: number): void {
  I32[(page + OFF_PRIVATE) >> 2] = v;
}

/*** include/linux/page_ref.h: _refcount is an atomic_t (its read and set relaxed, the rest Atomics RMWs) ***/

/** page_ref_count (v4.19): atomic_read, a relaxed load. */
export function page_ref_count(page: number): number {
  return __READ_ONCE(page + OFF_REF);
}
/** set_page_count (v4.19): atomic_set, a relaxed store; only for a page nobody else can see (boot, allocation). */
export function set_page_count(page: number, v: number): void {
  __WRITE_ONCE(page + OFF_REF, v);
}
