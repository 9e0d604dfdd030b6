/**
 * The buddy page allocator (mm/page_alloc.c, v4.19): one node, one zone
 * (ZONE_NORMAL), free_area[MAX_ORDER] under zone->lock, per-CPU lists of
 * order-0 pages (pcp), split (expand) and merge (__free_one_page).
 *
 * What v4.19 does and vmsim does not: migratetypes (one free list per order),
 * watermarks, kswapd, direct reclaim, compaction and the OOM killer. With no
 * reclaim, the slow path's only way to find pages is draining this CPU's pcp
 * list (the local half of the direct-reclaim path's drain_all_pages): another
 * CPU's pcp pages stay there until it frees past `high` or is drained (the
 * kernel drains them with per-CPU work; see {@link drain_all_pages}).
 *
 * pfn 0 is reserved at boot (PG_reserved, never free), so a pfn of 0 can mean
 * "no page" to callers, and NULL (0) is never a page's contents address either.
 * zone->managed_pages is therefore nr_pages - 1.
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, I32, theArena } from "../shared/arena.js";
import { MAX_ORDER, PAGE_SIZE } from "../shared/config.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, sched_point } from "../sched/sched_point.js";
import {
  SPINLOCK_T,
  spin_lock,
  spin_lock_init,
  spin_lock_irqsave,
  spin_unlock,
  spin_unlock_irqrestore,
} from "../locks/spinlock.js";
import { might_sleep } from "../locks/might_sleep.js";
import { debug_check_no_locks_freed, lockdepOn } from "../locks/lockdep.js";
import { local_irq_restore, local_irq_save } from "../percpu/preempt.js";
import { num_online_cpus, onSetCurrentCpu, per_cpu_ptr, smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { memset } from "../lib/string.js";
import { INIT_LIST_HEAD, LIST_HEAD, list_add, list_add_tail, list_del, list_next, list_prev } from "../lib/list.js";
import {
  __GFP_COMP,
  __GFP_DIRECT_RECLAIM,
  __GFP_NOWARN,
  __GFP_ZERO,
  format_gfp,
  gfpflags_allow_blocking,
} from "./gfp.js";
import { fail_dump, should_fail_alloc_page } from "./fail_page_alloc.js";
import {
  PAGE_FLAGS_CHECK_AT_FREE,
  PageBuddy,
  PageHead,
  PageReserved,
  STRUCT_PAGE,
  SetPageReserved,
  __ClearPageBuddy,
  __SetPageBuddy,
  __SetPageHead,
  clear_compound_head,
  compound_head,
  compound_order,
  page_address,
  page_mapcount_reset,
  page_private,
  page_ref_count,
  page_to_pfn,
  pfn_to_page,
  set_compound_head,
  set_compound_order,
  set_page_count,
  set_page_private,
  virt_to_page,
} from "./mm_types.js";

export {
  STRUCT_PAGE,
  mem_map,
  page_address,
  page_ref_count,
  page_to_pfn,
  pfn_to_page,
  pfn_valid,
  virt_to_page,
} from "./mm_types.js";
export { MAX_ORDER } from "../shared/config.js";

const PAGE_SIZEOF = STRUCT_PAGE.size;
const OFF_FLAGS = STRUCT_PAGE.off.flags;
const OFF_REF = STRUCT_PAGE.off._refcount;
const OFF_TYPE = STRUCT_PAGE.off.page_type;
const OFF_LRU = STRUCT_PAGE.off.lru;

/*** struct zone (include/linux/mmzone.h) ***/

/** enum zone_stat_item (v4.19), the items vmsim keeps. */
export const NR_FREE_PAGES = 0;
/** Pages used as page tables (the page-table code accounts them). */
export const NR_PAGETABLE = 1;
/** Slab pages, kmalloc_large pages included (v4.19 keeps slab per node and large kmalloc unaccounted; one node here, and v5.9 accounts large kmalloc). */
export const NR_SLAB_UNRECLAIMABLE = 2;
export const NR_VM_ZONE_STAT_ITEMS = 3;

/** enum vm_event_item (v4.19), the items vmsim keeps. */
export const PGALLOC = 0;
export const PGFREE = 1;
export const NR_VM_EVENT_ITEMS = 2;

/** struct free_area (v4.19), one migratetype. */
export const FREE_AREA = defineStruct("free_area", [
  { name: "free_list", type: LIST_HEAD, guard: "zone->lock" },
  { name: "nr_free", type: "i32", guard: "zone->lock" },
]);

/** struct zone (v4.19), the fields the buddy allocator uses. */
export const ZONE = defineStruct("zone", [
  /** zone->lock: free_area and the struct pages on it. */
  { name: "lock", type: SPINLOCK_T, guard: "atomic (the lock word)" },
  { name: "free_area", type: FREE_AREA, count: MAX_ORDER, guard: "zone->lock" },
  { name: "zone_start_pfn", type: "i32", guard: "init" },
  { name: "spanned_pages", type: "i32", guard: "init" },
  /** Pages the buddy allocator manages: all but the reserved ones. */
  { name: "managed_pages", type: "i32", guard: "init" },
  /** vm_stat[NR_VM_ZONE_STAT_ITEMS]: read and written with Atomics (page tables and slab update theirs unlocked). */
  { name: "vm_stat", type: "i32", count: NR_VM_ZONE_STAT_ITEMS, guard: "atomic" },
]);

/** The one zone: contig_page_data.node_zones[ZONE_NORMAL]. */
export const zone_normal = DEFINE_GLOBAL("zone_normal", ZONE);

/** struct per_cpu_pages (v4.19), one list. Its CPU touches it with interrupts off. */
export const PER_CPU_PAGES = defineStruct("per_cpu_pages", [
  /** Pages on `list`. */
  { name: "count", type: "i32", guard: "owner (irqs off)" },
  /** Free down by `batch` once count reaches this. */
  { name: "high", type: "i32", guard: "owner (irqs off)" },
  /** Pages moved to or from the buddy lists at once. */
  { name: "batch", type: "i32", guard: "owner (irqs off)" },
  { name: "list", type: LIST_HEAD, guard: "owner (irqs off)" },
]);
/** zone->pageset: this CPU's order-0 page cache (a static per-CPU variable: one zone). */
const pageset = DEFINE_PER_CPU("zone_pageset", PER_CPU_PAGES);

/** vm_event_states (v4.19): per-CPU event counters, summed by {@link all_vm_events}. */
const VM_EVENT_STATE = defineStruct("vm_event_state", [
  { name: "event", type: "i32", count: NR_VM_EVENT_ITEMS, guard: "owner (irqs off)" },
]);
const vm_event_states = DEFINE_PER_CPU("vm_event_states", VM_EVENT_STATE);

const Z_LOCK = ZONE.off.lock;
const Z_AREA = ZONE.off.free_area;
const A_LIST = FREE_AREA.off.free_list;
const A_NR = FREE_AREA.off.nr_free;
const P_COUNT = PER_CPU_PAGES.off.count;
const P_HIGH = PER_CPU_PAGES.off.high;
const P_BATCH = PER_CPU_PAGES.off.batch;
const P_LIST = PER_CPU_PAGES.off.list;

/* This CPU's pcp and event counters, cached: they are on every order-0 allocation. */
let pcpBase = 0;
let eventIdx = 0;
onSetCurrentCpu(() => {
  pcpBase = this_cpu_ptr(pageset);
  eventIdx = (this_cpu_ptr(vm_event_states) + VM_EVENT_STATE.off.event) >> 2;
});

function free_area(zone: number, order: number): number {
  return zone + Z_AREA + order * FREE_AREA.size;
}

/** page_zone (v4.19): every page is in ZONE_NORMAL. */
export function page_zone(_page: number): number {
  return zone_normal.ptr;
}

/** mod_zone_page_state (v4.19): adds `delta` to a zone counter (any context). */
export function mod_zone_page_state(zone: number, item: number, delta: number): void {
  sched_point(SP_ATOMIC);
  Atomics.add(I32, ((zone + ZONE.off.vm_stat) >> 2) + item, delta);
}

/** zone_page_state (v4.19). */
export function zone_page_state(zone: number, item: number): number {
  return Atomics.load(I32, ((zone + ZONE.off.vm_stat) >> 2) + item);
}

/** global_zone_page_state (v4.19): one zone, so the zone's counter. */
export function global_zone_page_state(item: number): number {
  return zone_page_state(zone_normal.ptr, item);
}

/** nr_free_pages (v4.19): pages on the buddy free lists (pcp pages are not counted, as in the kernel). */
export function nr_free_pages(): number {
  return global_zone_page_state(NR_FREE_PAGES);
}

/** totalram_pages (v4.19): the pages the buddy allocator manages. */
export function totalram_pages(): number {
  return I32[(zone_normal.ptr + ZONE.off.managed_pages) >> 2]!;
}

function count_vm_events(item: number, delta: number): void {
  I32[eventIdx + item] = I32[eventIdx + item]! + delta;
}

/** all_vm_events (v4.19): event counters summed over CPUs; read while the CPUs are parked. */
export function all_vm_events(): { pgalloc: number; pgfree: number } {
  let pgalloc = 0;
  let pgfree = 0;
  for (let cpu = 0; cpu < num_online_cpus(); cpu++) {
    const i = (per_cpu_ptr(vm_event_states, cpu) + VM_EVENT_STATE.off.event) >> 2;
    pgalloc = (pgalloc + I32[i + PGALLOC]!) | 0;
    pgfree = (pgfree + I32[i + PGFREE]!) | 0;
  }
  return { pgalloc, pgfree };
}

/*** Freeing: __free_one_page and the buddy merge ***/

/** set_page_order (v4.19): a free block's head records its order and is marked PageBuddy. */
function set_page_order(page: number, order: number): void {
  set_page_private(page, order);
  __SetPageBuddy(page);
}

function rmv_page_order(page: number): void {
  __ClearPageBuddy(page);
  set_page_private(page, 0);
}

/** page_is_buddy (v4.19): `buddy` is a free block of exactly `order` (one zone: no zone check). */
function page_is_buddy(buddy: number, order: number): boolean {
  return PageBuddy(buddy) && page_private(buddy) === order;
}

/**
 * __free_one_page (v4.19): puts a block of 2^order pages on the free lists,
 * merging it with its buddy (pfn ^ 1 << order) while that is free, up to
 * MAX_ORDER-1. Memory is a whole number of MAX_ORDER-1 blocks, so every
 * buddy has a struct page. The caller holds zone->lock and accounts
 * NR_FREE_PAGES (v4.19 does it here, page by page; the callers batch it).
 */
function __free_one_page(page: number, pfn: number, zone: number, order: number): void {
  let buddy_pfn = 0;
  while (order < MAX_ORDER - 1) {
    buddy_pfn = pfn ^ (1 << order);
    const buddy = page + (buddy_pfn - pfn) * PAGE_SIZEOF;
    if (!page_is_buddy(buddy, order)) break;
    list_del(buddy + OFF_LRU);
    const area = free_area(zone, order);
    I32[(area + A_NR) >> 2] = I32[(area + A_NR) >> 2]! - 1;
    rmv_page_order(buddy);
    const combined_pfn = buddy_pfn & pfn;
    page = page + (combined_pfn - pfn) * PAGE_SIZEOF;
    pfn = combined_pfn;
    order++;
  }
  set_page_order(page, order);
  const area = free_area(zone, order);
  /*
   * If the next-higher block is nearly free (its other half is free), queue
   * this one at the tail: it is more likely to merge soon, so hand out others first.
   */
  if (order < MAX_ORDER - 2) {
    const combined_pfn = buddy_pfn & pfn;
    const higher_page = page + (combined_pfn - pfn) * PAGE_SIZEOF;
    const higher_buddy = higher_page + ((combined_pfn ^ (2 << order)) - combined_pfn) * PAGE_SIZEOF;
    if (page_is_buddy(higher_buddy, order + 1)) {
      list_add_tail(page + OFF_LRU, area + A_LIST);
      I32[(area + A_NR) >> 2] = I32[(area + A_NR) >> 2]! + 1;
      return;
    }
  }
  list_add(page + OFF_LRU, area + A_LIST);
  I32[(area + A_NR) >> 2] = I32[(area + A_NR) >> 2]! + 1;
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

/** __dump_page (mm/debug.c, v4.19): the struct page lines of a bad-page or VM_BUG_ON_PAGE report. */
function dump_page(page: number, reason: string): string {
  return [
    `page:${hex(page)} count:${page_ref_count(page)} mapcount:${I32[(page + OFF_TYPE) >> 2]} mapping:0 index:0x0`,
    `flags: ${hex(I32[(page + OFF_FLAGS) >> 2]!)}`,
    `page dumped because: ${reason}`,
  ].join("\n");
}

/** bad_page (v4.19): reports a page in a state it must not be in; the page is then leaked, not freed. */
function bad_page(page: number, reason: string): void {
  const pfn = page_to_pfn(page).toString(16).padStart(5, "0");
  reportBug(
    "bad-page",
    `BUG: Bad page state in process cpu${smp_processor_id()}  pfn:${pfn}\n${dump_page(page, reason)}`,
  );
  page_mapcount_reset(page); // drop a stale PageBuddy, as the kernel does
}

/**
 * VM_BUG_ON_PAGE (CONFIG_DEBUG_VM, v4.19) on a reference count: dump_page,
 * then BUG() in the kernel; reported here and the operation skipped, so the
 * page (maybe free, maybe someone else's by now) is left as it is.
 */
function vm_bug_on_page(page: number, cond: string): void {
  reportBug("bad-page", `${dump_page(page, `VM_BUG_ON_PAGE(${cond})`)}\nkernel BUG at include/linux/mm.h!`);
}

/** free_pages_check (v4.19): a page being freed has no type, no references and no PAGE_FLAGS_CHECK_AT_FREE flag. */
function free_pages_check(page: number): boolean {
  let reason: string | null = null;
  if (I32[(page + OFF_TYPE) >> 2] !== -1) reason = "nonzero mapcount";
  else if (page_ref_count(page) !== 0) reason = "nonzero _refcount";
  else if ((I32[(page + OFF_FLAGS) >> 2]! & PAGE_FLAGS_CHECK_AT_FREE) !== 0)
    reason = "PAGE_FLAGS_CHECK_AT_FREE flag(s) set";
  if (reason === null) return true;
  bad_page(page, reason);
  return false;
}

/**
 * free_pages_prepare (v4.19): checks every page of the block (a compound
 * page's tails must point at their head) and clears their flags; false when
 * a page is bad, and the block is then not freed.
 */
function free_pages_prepare(page: number, order: number): boolean {
  let ok = true;
  if (order !== 0) {
    const compound = PageHead(page);
    for (let i = 1; i < 1 << order; i++) {
      const tail = page + i * PAGE_SIZEOF;
      if (compound) {
        if (compound_head(tail) !== page) {
          bad_page(tail, "compound_head not consistent");
          ok = false;
        }
        clear_compound_head(tail);
      }
      // page_expected_state inline; free_pages_check again only to name what is wrong.
      if (
        I32[(tail + OFF_TYPE) >> 2] === -1 &&
        (I32[(tail + OFF_FLAGS) >> 2]! & PAGE_FLAGS_CHECK_AT_FREE) === 0 &&
        page_ref_count(tail) === 0
      )
        I32[(tail + OFF_FLAGS) >> 2] = 0;
      else if (!free_pages_check(tail)) ok = false;
    }
    if (compound) set_compound_order(page, 0);
  }
  if (!free_pages_check(page)) return false;
  if (!ok) return false;
  I32[(page + OFF_FLAGS) >> 2] = 0; // PAGE_FLAGS_CHECK_AT_PREP: PG_head and every other flag
  if (lockdepOn) debug_check_no_locks_freed(page_address(page), PAGE_SIZE << order);
  return true;
}

/**
 * free_pcppages_bulk (v4.19): returns `count` pages from the tail (the
 * coldest end) of a pcp list to the buddy lists. As v4.19, the pages are
 * picked off the list before zone->lock is taken; unlike it, they are cut off
 * as one segment (no on-stack list head in the arena) and freed tail first.
 * Interrupts are off (the pcp's CPU, or a parked CPU's pcp being drained).
 */
function free_pcppages_bulk(zone: number, count: number, pcp: number): void {
  const list = pcp + P_LIST;
  const last = list_prev(list);
  let first = last;
  for (let i = 1; i < count; i++) first = list_prev(first);
  // Unlink [first..last] in one go; their own links still chain them together.
  const before = list_prev(first);
  I32[(before + LIST_HEAD.off.next) >> 2] = list;
  I32[(list + LIST_HEAD.off.prev) >> 2] = before;
  I32[(pcp + P_COUNT) >> 2] = I32[(pcp + P_COUNT) >> 2]! - count;

  spin_lock(zone + Z_LOCK);
  let lru = last;
  for (let i = 0; i < count; i++) {
    const prev = list_prev(lru); // read before __free_one_page relinks this page
    const page = lru - OFF_LRU;
    __free_one_page(page, page_to_pfn(page), zone, 0);
    lru = prev;
  }
  mod_zone_page_state(zone, NR_FREE_PAGES, count);
  spin_unlock(zone + Z_LOCK);
}

/** free_one_page (v4.19): one block straight to the buddy lists; interrupts are off. */
function free_one_page(zone: number, page: number, pfn: number, order: number): void {
  spin_lock(zone + Z_LOCK);
  __free_one_page(page, pfn, zone, order);
  mod_zone_page_state(zone, NR_FREE_PAGES, 1 << order);
  spin_unlock(zone + Z_LOCK);
}

/** __free_pages_ok (v4.19): frees a block of order > 0 (or an order-0 page bypassing the pcp). */
function __free_pages_ok(page: number, order: number): void {
  if (!free_pages_prepare(page, order)) return;
  const flags = local_irq_save();
  count_vm_events(PGFREE, 1 << order);
  free_one_page(page_zone(page), page, page_to_pfn(page), order);
  local_irq_restore(flags);
}

/**
 * free_unref_page (v4.19): an order-0 page goes to this CPU's pcp list; once
 * the list reaches `high`, `batch` pages go back to the buddy lists.
 */
function free_unref_page(page: number): void {
  if (!free_pages_prepare(page, 0)) return;
  const flags = local_irq_save();
  count_vm_events(PGFREE, 1);
  const pcp = pcpBase;
  list_add(page + OFF_LRU, pcp + P_LIST);
  const count = I32[(pcp + P_COUNT) >> 2]! + 1;
  I32[(pcp + P_COUNT) >> 2] = count;
  if (count >= I32[(pcp + P_HIGH) >> 2]!) free_pcppages_bulk(zone_normal.ptr, I32[(pcp + P_BATCH) >> 2]!, pcp);
  local_irq_restore(flags);
}

/**
 * put_page_testzero (v4.19): drops a reference, true when it was the last.
 * Dropping a reference the page does not have is the kernel's
 * VM_BUG_ON_PAGE(page_ref_count(page) == 0): reported, and the count left at 0
 * (a compare-and-swap, so a racing double free cannot push it below 0).
 */
function put_page_testzero(page: number): boolean {
  const i = (page + OFF_REF) >> 2;
  sched_point(SP_ATOMIC);
  // The usual count is 1: try 1 -> 0 first, saving the load (the loop below would do the same swap).
  let v = Atomics.compareExchange(I32, i, 1, 0);
  if (v === 1) return true;
  for (; ; v = Atomics.load(I32, i)) {
    if (v <= 0) {
      vm_bug_on_page(page, "page_ref_count(page) == 0");
      return false;
    }
    // Sequentially consistent: what every earlier holder did to the page happens before the last put frees it.
    if (Atomics.compareExchange(I32, i, v, v - 1) === v) return v === 1;
  }
}

/** __free_pages (v4.19): drops the caller's reference to a block of 2^order pages, freeing it on the last. */
export function __free_pages(page: number, order: number): void {
  if (put_page_testzero(page)) {
    if (order === 0) free_unref_page(page);
    else __free_pages_ok(page, order);
  }
}

/** __free_page (v4.19). */
export function __free_page(page: number): void {
  __free_pages(page, 0);
}

/** free_pages (v4.19): __free_pages by the block's linear-map address; 0 is ignored. */
export function free_pages(addr: number, order: number): void {
  if (addr !== 0) __free_pages(virt_to_page(addr), order);
}

/** free_page (v4.19). */
export function free_page(addr: number): void {
  free_pages(addr, 0);
}

/** get_page (v4.19): takes another reference to a page (a tail's goes to its head). */
export function get_page(page: number): void {
  page = compound_head(page);
  sched_point(SP_ATOMIC);
  if (Atomics.add(I32, (page + OFF_REF) >> 2, 1) <= 0) {
    Atomics.sub(I32, (page + OFF_REF) >> 2, 1);
    vm_bug_on_page(page, "page_ref_count(page) <= 0");
  }
}

/** put_page (v4.19): drops a reference; the last one frees the page (a compound page whole). */
export function put_page(page: number): void {
  page = compound_head(page);
  if (!put_page_testzero(page)) return;
  if (PageHead(page)) __free_pages_ok(page, compound_order(page));
  else free_unref_page(page);
}

/*** Allocation: __rmqueue and the split ***/

/**
 * expand (v4.19): a block of order `high` was taken for an order `low`
 * request; its upper halves go back on the lower free lists.
 */
function expand(zone: number, page: number, low: number, high: number): void {
  let size = 1 << high;
  while (high > low) {
    high--;
    size >>= 1;
    const half = page + size * PAGE_SIZEOF;
    const area = free_area(zone, high);
    list_add(half + OFF_LRU, area + A_LIST);
    I32[(area + A_NR) >> 2] = I32[(area + A_NR) >> 2]! + 1;
    set_page_order(half, high);
  }
}

/** __rmqueue_smallest (v4.19): the first block of the smallest order >= `order`, split down; zone->lock held. */
function __rmqueue_smallest(zone: number, order: number): number {
  for (let current_order = order; current_order < MAX_ORDER; current_order++) {
    const area = free_area(zone, current_order);
    const first = list_next(area + A_LIST);
    if (first === area + A_LIST) continue;
    const page = first - OFF_LRU;
    list_del(first);
    rmv_page_order(page);
    I32[(area + A_NR) >> 2] = I32[(area + A_NR) >> 2]! - 1;
    expand(zone, page, order, current_order);
    return page;
  }
  return 0;
}

/** rmqueue_bulk (v4.19): up to `count` blocks onto `list`, in physical order, under zone->lock; returns how many. */
function rmqueue_bulk(zone: number, order: number, count: number, list: number): number {
  spin_lock(zone + Z_LOCK);
  let i = 0;
  for (; i < count; i++) {
    const page = __rmqueue_smallest(zone, order);
    if (page === 0) break;
    list_add_tail(page + OFF_LRU, list);
  }
  mod_zone_page_state(zone, NR_FREE_PAGES, -(i << order));
  spin_unlock(zone + Z_LOCK);
  return i;
}

/** rmqueue_pcplist (v4.19): an order-0 page from this CPU's pcp list, refilled by `batch` when empty. */
function rmqueue_pcplist(zone: number): number {
  const flags = local_irq_save();
  const pcp = pcpBase;
  const list = pcp + P_LIST;
  let first = list_next(list);
  if (first === list) {
    I32[(pcp + P_COUNT) >> 2] = I32[(pcp + P_COUNT) >> 2]! + rmqueue_bulk(zone, 0, I32[(pcp + P_BATCH) >> 2]!, list);
    first = list_next(list);
    if (first === list) {
      local_irq_restore(flags);
      return 0;
    }
  }
  list_del(first);
  I32[(pcp + P_COUNT) >> 2] = I32[(pcp + P_COUNT) >> 2]! - 1;
  count_vm_events(PGALLOC, 1);
  local_irq_restore(flags);
  return first - OFF_LRU;
}

/** rmqueue (v4.19): order 0 from the pcp list, higher orders from the buddy lists under zone->lock. */
function rmqueue(zone: number, order: number): number {
  if (order === 0) return rmqueue_pcplist(zone);
  const flags = spin_lock_irqsave(zone + Z_LOCK);
  const page = __rmqueue_smallest(zone, order);
  if (page !== 0) {
    mod_zone_page_state(zone, NR_FREE_PAGES, -(1 << order));
    count_vm_events(PGALLOC, 1 << order);
  }
  spin_unlock_irqrestore(zone + Z_LOCK, flags);
  return page;
}

/** prep_compound_page (v4.19): tails point at the head, the head records the order. */
function prep_compound_page(page: number, order: number): void {
  __SetPageHead(page);
  set_compound_order(page, order);
  for (let i = 1; i < 1 << order; i++) set_compound_head(page + i * PAGE_SIZEOF, page);
}

/** prep_new_page (v4.19): the caller's reference, zeroed contents on __GFP_ZERO, compound metadata on __GFP_COMP. */
function prep_new_page(page: number, order: number, gfp: number): void {
  set_page_private(page, 0);
  set_page_count(page, 1);
  if (gfp & __GFP_ZERO) {
    memset(page_address(page), 0, PAGE_SIZE << order);
  }
  if (order !== 0 && gfp & __GFP_COMP) prep_compound_page(page, order);
}

/** get_page_from_freelist (v4.19): one zone, no watermarks. */
function get_page_from_freelist(gfp: number, order: number): number {
  const page = rmqueue(zone_normal.ptr, order);
  if (page !== 0) prep_new_page(page, order, gfp);
  return page;
}

/** warn_alloc (v4.19): the "page allocation failure" report, unless __GFP_NOWARN. */
function warn_alloc(gfp: number, order: number, injected: boolean): void {
  if (gfp & __GFP_NOWARN) return;
  const line = `cpu${smp_processor_id()}: page allocation failure: order:${order}, mode:${hex(gfp)}(${format_gfp(gfp)}), nodemask=(null)`;
  reportBug("WARN", injected ? `${fail_dump()}\n${line}` : line);
}

/**
 * Reclaim's one step in vmsim: shrink_slab of mm/shrinker.c (src/mm/shrinker.ts
 * registers it at load; this file sits below the slab allocator it uses).
 * Returns the objects the shrinkers said they freed, SHRINK_EMPTY when none is registered.
 */
let shrink_slab: ((gfp: number) => number) | null = null;

/** What shrink_slab returns when no shrinker is registered (SHRINK_EMPTY). */
const SHRINK_SLAB_NONE = -2;

/** src/mm/shrinker.ts registers its shrink_slab (once, at module load). */
export function registerShrinkSlab(fn: (gfp: number) => number): void {
  shrink_slab = fn;
}

/**
 * __alloc_pages_slowpath (v4.19), with reclaim reduced to its shrinkers: a
 * caller that may block gets this CPU's pcp pages drained back (they may
 * complete a higher-order block) and one more try; then, as direct reclaim's
 * shrink_slab would, every registered shrinker is asked to give memory back
 * (v6.12's vmap-node shrinker returns its pooled areas) and the allocation is
 * tried once more.
 */
function __alloc_pages_slowpath(gfp: number, order: number): number {
  if (gfpflags_allow_blocking(gfp)) {
    drain_local_pages();
    let page = get_page_from_freelist(gfp, order);
    if (page !== 0) return page;
    // The kernel retries after reclaim made progress; a shrinker answering SHRINK_STOP reports none, so retry
    // whenever one ran. No shrinker registered (4.19, 5.10): nothing ran, no retry, no sched point taken.
    if (shrink_slab !== null && shrink_slab(gfp) !== SHRINK_SLAB_NONE) {
      drain_local_pages();
      page = get_page_from_freelist(gfp, order);
      if (page !== 0) return page;
    }
  }
  warn_alloc(gfp, order, false);
  return 0;
}

/**
 * __alloc_pages_nodemask (v4.19), one node: might_sleep_if and fault
 * injection (prepare_alloc_pages), the fast path, the slow path. An injected failure
 * reports like a real one (v4.19 only prints the FAULT_INJECTION line), so
 * tests see the "page allocation failure" a real exhaustion would give.
 */
function __alloc_pages_nodemask(gfp: number, order: number): number {
  if (order >= MAX_ORDER) {
    if (!(gfp & __GFP_NOWARN))
      reportBug(
        "WARN",
        `WARNING: CPU: ${smp_processor_id()} at mm/page_alloc.c: __alloc_pages_nodemask order:${order}`,
      );
    return 0;
  }
  if (gfp & __GFP_DIRECT_RECLAIM) might_sleep();
  if (should_fail_alloc_page(gfp, order)) {
    warn_alloc(gfp, order, true);
    return 0;
  }
  const page = get_page_from_freelist(gfp, order);
  if (page !== 0) return page;
  return __alloc_pages_slowpath(gfp, order);
}

/** alloc_pages (v4.19): a block of 2^order pages with one reference, or 0. */
export function alloc_pages(gfp: number, order: number): number {
  return __alloc_pages_nodemask(gfp, order);
}

/** alloc_page (v4.19). */
export function alloc_page(gfp: number): number {
  return __alloc_pages_nodemask(gfp, 0);
}

/** __get_free_pages (v4.19): alloc_pages, returning the block's linear-map address (0 on failure). */
export function __get_free_pages(gfp: number, order: number): number {
  const page = __alloc_pages_nodemask(gfp, order);
  return page === 0 ? 0 : page_address(page);
}

/** __get_free_page (v4.19). */
export function __get_free_page(gfp: number): number {
  return __get_free_pages(gfp, 0);
}

/** get_zeroed_page (v4.19). */
export function get_zeroed_page(gfp: number): number {
  return __get_free_pages(gfp | __GFP_ZERO, 0);
}

/*** Per-CPU page lists: draining ***/

/** drain_pages (v4.19): returns CPU `cpu`'s pcp pages to the buddy lists. */
function drain_pages(cpu: number): void {
  const flags = local_irq_save();
  const pcp = per_cpu_ptr(pageset, cpu);
  const count = I32[(pcp + P_COUNT) >> 2]!;
  if (count !== 0) free_pcppages_bulk(zone_normal.ptr, count, pcp);
  local_irq_restore(flags);
}

/** drain_local_pages (v4.19): drains this CPU's pcp list. */
export function drain_local_pages(): void {
  drain_pages(smp_processor_id());
}

/**
 * drain_all_pages (v4.19): drains every CPU's pcp list. The kernel runs
 * drain_local_pages on each CPU (per-CPU work) because a pcp list is only
 * ever touched by its own CPU with interrupts off. Here the caller drains
 * the other CPUs' lists itself, so it must guarantee they are parked: the
 * main thread between workloads, a quiescent check, a test's teardown.
 */
export function drain_all_pages(): void {
  for (let cpu = 0; cpu < num_online_cpus(); cpu++) drain_pages(cpu);
}

/** free_pcp pages (show_free_areas' "free_pcp"): pages on all pcp lists; read while the CPUs are parked. */
export function free_pcp_pages(): number {
  let n = 0;
  for (let cpu = 0; cpu < num_online_cpus(); cpu++) n += I32[(per_cpu_ptr(pageset, cpu) + P_COUNT) >> 2]!;
  return n;
}

/** A CPU's pcp list state (tests, vmsim info); read while that CPU is parked. */
export function pcp_state(cpu: number): { count: number; high: number; batch: number } {
  const pcp = per_cpu_ptr(pageset, cpu);
  return {
    count: I32[(pcp + P_COUNT) >> 2]!,
    high: I32[(pcp + P_HIGH) >> 2]!,
    batch: I32[(pcp + P_BATCH) >> 2]!,
  };
}

/*** Boot: mem_init ***/

/** zone_batchsize (v4.19): about a quarter of a MiB per 1 GiB of zone, at most 512 KiB, 2^n-1 pages. */
function zone_batchsize(managed: number): number {
  let batch = (managed / 1024) | 0;
  if (batch * PAGE_SIZE > 512 * 1024) batch = (512 * 1024) / PAGE_SIZE;
  batch = (batch / 4) | 0;
  if (batch < 1) batch = 1;
  const x = batch + (batch >> 1);
  return (1 << (31 - Math.clz32(x))) - 1; // rounddown_pow_of_two(x) - 1
}

/** pageset_set_batch (v4.19): high = 6 * batch, batch at least 1. */
function pageset_set_batch(pcp: number, batch: number): void {
  I32[(pcp + P_HIGH) >> 2] = 6 * batch;
  I32[(pcp + P_BATCH) >> 2] = Math.max(1, batch);
}

/** free_area_init_core + memmap_init_zone (v4.19): an empty zone; every struct page reserved-free, refcount 1, no type. */
function free_area_init_core(zone: number, nrPages: number): void {
  spin_lock_init(zone + Z_LOCK, "zone->lock");
  for (let order = 0; order < MAX_ORDER; order++) {
    const area = free_area(zone, order);
    INIT_LIST_HEAD(area + A_LIST);
    I32[(area + A_NR) >> 2] = 0;
  }
  I32[(zone + ZONE.off.zone_start_pfn) >> 2] = 0;
  I32[(zone + ZONE.off.spanned_pages) >> 2] = nrPages;
  for (let pfn = 0; pfn < nrPages; pfn++) {
    const page = pfn_to_page(pfn);
    I32[(page + OFF_FLAGS) >> 2] = 0;
    set_page_count(page, 1);
    page_mapcount_reset(page);
    INIT_LIST_HEAD(page + OFF_LRU);
  }
}

/**
 * __free_pages_memory (mm/nobootmem.c, v4.19): frees [start, end) in the
 * largest naturally aligned blocks. The kernel frees through __free_pages,
 * whose boot pageset (high 0) sends every page straight to the buddy lists;
 * vmsim goes to free_one_page directly, which is the same — with interrupts
 * off around it, as in __free_pages_ok and free_unref_page (zone->lock is
 * taken from interrupts and softirqs, so never with them enabled).
 */
function __free_pages_memory(zone: number, start: number, end: number): void {
  while (start < end) {
    let order = Math.min(MAX_ORDER - 1, 31 - Math.clz32(start & -start));
    while (start + (1 << order) > end) order--;
    const page = pfn_to_page(start);
    for (let i = 0; i < 1 << order; i++) set_page_count(page + i * PAGE_SIZEOF, 0);
    I32[(zone + ZONE.off.managed_pages) >> 2] = I32[(zone + ZONE.off.managed_pages) >> 2]! + (1 << order);
    const flags = local_irq_save();
    free_one_page(zone, page, start, order);
    local_irq_restore(flags);
    start += 1 << order;
  }
}

/** setup_per_cpu_pageset (v4.19): every CPU's pcp list, sized from the zone. */
function setup_per_cpu_pageset(zone: number): void {
  const batch = zone_batchsize(I32[(zone + ZONE.off.managed_pages) >> 2]!);
  for (let cpu = 0; cpu < num_online_cpus(); cpu++) {
    const pcp = per_cpu_ptr(pageset, cpu);
    I32[(pcp + P_COUNT) >> 2] = 0;
    INIT_LIST_HEAD(pcp + P_LIST);
    pageset_set_batch(pcp, batch);
  }
}

/**
 * mem_init (v4.19's paging_init → free_area_init, then mem_init →
 * free_all_bootmem, then setup_per_cpu_pageset): every page frame but pfn 0
 * goes to the buddy allocator in maximal aligned blocks. Called first in
 * start_kernel: nothing can allocate before it.
 */
export function mem_init(): void {
  const zone = zone_normal.ptr;
  const nrPages = theArena().nrPages;
  free_area_init_core(zone, nrPages);
  SetPageReserved(pfn_to_page(0));
  __free_pages_memory(zone, 1, nrPages);
  setup_per_cpu_pageset(zone);
}

/*** Introspection (vmsim info, tests, src/check) ***/

/** /proc/buddyinfo: nr_free of each order, read under zone->lock. */
export function buddyinfo(): number[] {
  const zone = zone_normal.ptr;
  const flags = spin_lock_irqsave(zone + Z_LOCK);
  const out: number[] = [];
  for (let order = 0; order < MAX_ORDER; order++) out.push(I32[(free_area(zone, order) + A_NR) >> 2]!);
  spin_unlock_irqrestore(zone + Z_LOCK, flags);
  return out;
}

/** The pfns on free_area[order]'s list, head first, read under zone->lock (tests draw the lists with it). */
export function freeListPfns(order: number): number[] {
  const zone = zone_normal.ptr;
  const flags = spin_lock_irqsave(zone + Z_LOCK);
  const head = free_area(zone, order) + A_LIST;
  const out: number[] = [];
  for (let p = list_next(head); p !== head; p = list_next(p)) out.push(page_to_pfn(p - OFF_LRU));
  spin_unlock_irqrestore(zone + Z_LOCK, flags);
  return out;
}

/**
 * Cross-checks the buddy lists against the struct pages (the obvious slow
 * oracle): every listed block is PageBuddy with its order, naturally aligned,
 * refcount 0; nr_free matches the list; no two blocks overlap; no listed
 * block has a free buddy of its order (merging is eager); NR_FREE_PAGES is the
 * sum. Returns the violations, none when consistent. Run it while the CPUs are parked.
 */
export function checkBuddyLists(): string[] {
  const zone = zone_normal.ptr;
  const nrPages = theArena().nrPages;
  const owner = new Int32Array(nrPages).fill(-1);
  const bad: string[] = [];
  let total = 0;
  const flags = spin_lock_irqsave(zone + Z_LOCK);
  for (let order = 0; order < MAX_ORDER; order++) {
    const area = free_area(zone, order);
    const head = area + A_LIST;
    let n = 0;
    for (let p = list_next(head); p !== head && n <= nrPages; p = list_next(p), n++) {
      const page = p - OFF_LRU;
      const pfn = page_to_pfn(page);
      if (!PageBuddy(page) || page_private(page) !== order)
        bad.push(`order ${order}: pfn ${pfn} not PageBuddy(${order})`);
      if (pfn & ((1 << order) - 1)) bad.push(`order ${order}: pfn ${pfn} not aligned`);
      if (page_ref_count(page) !== 0) bad.push(`order ${order}: pfn ${pfn} refcount ${page_ref_count(page)}`);
      if (PageReserved(page)) bad.push(`order ${order}: pfn ${pfn} is reserved`);
      for (let i = pfn; i < pfn + (1 << order) && i < nrPages; i++) {
        if (owner[i] !== -1) bad.push(`pfn ${i} in two free blocks (${owner[i]} and ${pfn})`);
        owner[i] = pfn;
      }
      if (order < MAX_ORDER - 1 && page_is_buddy(pfn_to_page(pfn ^ (1 << order)), order))
        bad.push(`order ${order}: pfn ${pfn} and its buddy are both free, unmerged`);
    }
    if (n !== I32[(area + A_NR) >> 2]) bad.push(`order ${order}: nr_free ${I32[(area + A_NR) >> 2]} but ${n} listed`);
    total += n << order;
  }
  spin_unlock_irqrestore(zone + Z_LOCK, flags);
  if (total !== nr_free_pages()) bad.push(`NR_FREE_PAGES ${nr_free_pages()} but ${total} pages listed`);
  return bad;
}
