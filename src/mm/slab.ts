/**
 * The slab allocator: SLUB-lite (mm/slub.c, mm/slab_common.c and
 * include/linux/slab.h, v4.19). Every record that kernel code kmallocs lives
 * in a slab page from the buddy allocator, so pages are conserved:
 * free + pcp + slab (NR_SLAB_UNRECLAIMABLE) + page tables + vmalloc + the
 * reserved page = all.
 *
 * As SLUB: a slab is one (compound) buddy block of same-sized objects; a free
 * object holds the free pointer at offset 0; each CPU allocates from its own
 * "cpu slab" (frozen) through a CPU freelist with interrupts off; objects
 * freed to another slab go to that page's freelist; slabs with free objects
 * sit on the cache's partial list; a slab emptied beyond min_partial goes
 * back to the buddy allocator.
 *
 * Unlike SLUB: page->freelist/inuse/frozen are updated under the cache's
 * list_lock rather than with cmpxchg_double, one node (kmem_cache_node is
 * embedded in the cache), no per-CPU partial lists (CONFIG_SLUB_CPU_PARTIAL
 * off), no constructors, no memcg, and debugging is poisoning only.
 *
 * kmem_cache_cpu placement: DEFINE_PER_CPU is static and caches are created
 * at run time, so each CPU's area holds an array of MAX_KMEM_CACHES
 * kmem_cache_cpu slots (the static chunk alloc_percpu would carve from);
 * s->cpu_slab is the byte offset of the cache's slot in that array, and
 * this CPU's slot is `this_cpu_ptr(kmem_cache_cpu) + s->cpu_slab` — the
 * kernel's this_cpu_ptr(s->cpu_slab), with no false sharing between CPUs.
 *
 * Poisoning (slub_debug=P: the machine's config.slubDebug, on by default,
 * read when a cache is created, i.e. at boot): a free object is POISON_FREE (0x6b) from
 * byte 4, ending in POISON_END (0xa5); allocation checks the poison (a write
 * after free) and the free pointer; freeing checks the pointer is an object
 * of its slab and not already free.
 */
import {
  DEFINE_GLOBAL,
  DEFINE_PER_CPU,
  type GlobalVar,
  I32,
  U8,
  readCString,
  staticInit,
  theArena,
  writeCString,
} from "../shared/arena.js";
import { MAX_ORDER, PAGE_SHIFT, PAGE_SIZE } from "../shared/config.js";
import { KernelBug, reportBug } from "../shared/report.js";
import { type StructDef, defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, sched_point } from "../sched/sched_point.js";
import { SPINLOCK_T, spin_lock, spin_lock_init, spin_unlock } from "../locks/spinlock.js";
import { DEFINE_MUTEX, mutex_lock, mutex_unlock } from "../locks/mutex.js";
import { might_sleep } from "../locks/might_sleep.js";
import { debug_check_no_locks_freed, lockdepOn } from "../locks/lockdep.js";
import { local_irq_disable, local_irq_enable, local_irq_restore, local_irq_save } from "../percpu/preempt.js";
import { num_online_cpus, onSetCurrentCpu, per_cpu_ptr, this_cpu_ptr } from "../shared/smp.js";
import { INIT_LIST_HEAD, LIST_HEAD, list_add, list_add_tail, list_del, list_next } from "../lib/list.js";
import { registerRcuKfree } from "../rcu/rcu.js";
import {
  GFP_KERNEL,
  GFP_RECLAIM_MASK,
  __GFP_COMP,
  __GFP_DIRECT_RECLAIM,
  __GFP_DMA32,
  __GFP_HIGHMEM,
  __GFP_NOWARN,
  __GFP_ZERO,
  format_gfp,
  gfpflags_allow_blocking,
} from "./gfp.js";
import {
  PageCompound,
  PageSlab,
  STRUCT_PAGE,
  __ClearPageSlab,
  __SetPageSlab,
  compound_order,
  page_address,
  virt_addr_valid,
  virt_to_head_page,
} from "./mm_types.js";
import { NR_SLAB_UNRECLAIMABLE, __free_pages, alloc_pages, mod_zone_page_state, zone_normal } from "./page_alloc.js";

/** include/linux/slab.h (v4.19) flags vmsim implements. */
export const SLAB_POISON = 0x800;
export const SLAB_HWCACHE_ALIGN = 0x2000;
export const SLAB_PANIC = 0x40000;

/** include/linux/poison.h (v4.19). */
export const POISON_FREE = 0x6b;
export const POISON_END = 0xa5;
const POISON_WORD = 0x6b6b6b6b;

/** kmalloc(0) returns this: not NULL, but any access faults (the arena header is no object). */
export const ZERO_SIZE_PTR = 16;
/** SLUB's kmalloc caches: kmalloc-8 (2^3) … kmalloc-8192 (2^(PAGE_SHIFT+1)); larger sizes go to the page allocator. */
export const KMALLOC_SHIFT_LOW = 3;
export const KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1;
export const KMALLOC_MAX_CACHE_SIZE = 1 << KMALLOC_SHIFT_HIGH;
/** kmem_cache_cpu slots per CPU: the most caches a machine can have. */
export const MAX_KMEM_CACHES = 32;

const ARCH_KMALLOC_MINALIGN = 8;
const ARCH_SLAB_MINALIGN = 8;
const CACHE_LINE_SIZE = 64;
const MIN_PARTIAL = 5;
const MAX_PARTIAL = 10;
/** slub_max_order = PAGE_ALLOC_COSTLY_ORDER. */
const SLUB_MAX_ORDER = 3;
const MAX_OBJS_PER_PAGE = 32767;
const CACHE_NAME_LEN = 32;

/*** Structures ***/

/** struct kmem_cache_cpu (v4.19, without tid) plus SLUB_STATS-style counters. Its CPU, interrupts off. */
export const STRUCT_KMEM_CACHE_CPU = defineStruct("kmem_cache_cpu", [
  /** Next free object of the cpu slab. */
  { name: "freelist", type: "ptr", guard: "owner (irqs off)" },
  /** The cpu slab (frozen), 0 for none. */
  { name: "page", type: "ptr", guard: "owner (irqs off)" },
  /** Objects this CPU allocated / freed (any slab): active objects = Σ alloc - free. */
  { name: "nr_alloc", type: "i32", guard: "owner (irqs off)" },
  { name: "nr_free", type: "i32", guard: "owner (irqs off)" },
]);
const KMEM_CACHE_CPU_AREA = defineStruct("kmem_cache_cpu_area", [
  { name: "slot", type: STRUCT_KMEM_CACHE_CPU, count: MAX_KMEM_CACHES, guard: "owner (irqs off)" },
]);
const kmem_cache_cpu = DEFINE_PER_CPU("kmem_cache_cpu", KMEM_CACHE_CPU_AREA);

/** struct kmem_cache_node (v4.19): the partial list of the one node. */
export const STRUCT_KMEM_CACHE_NODE = defineStruct("kmem_cache_node", [
  { name: "list_lock", type: SPINLOCK_T, guard: "atomic (the lock word)" },
  { name: "nr_partial", type: "i32", guard: "&n->list_lock" },
  { name: "partial", type: LIST_HEAD, guard: "&n->list_lock" },
  /** Slabs and their objects (CONFIG_SLUB_DEBUG's atomic_long counters). */
  { name: "nr_slabs", type: "i32", guard: "atomic" },
  { name: "total_objects", type: "i32", guard: "atomic" },
]);

/** struct kmem_cache (v4.19): read-only once created, but for the list link and the node. */
export const STRUCT_KMEM_CACHE = defineStruct("kmem_cache", [
  /** Byte offset of this cache's kmem_cache_cpu in every CPU's kmem_cache_cpu array. */
  { name: "cpu_slab", type: "i32", guard: "init" },
  { name: "flags", type: "u32", guard: "init" },
  { name: "min_partial", type: "i32", guard: "init" },
  /** Object stride in the slab. */
  { name: "size", type: "i32", guard: "init" },
  /** Size the user asked for. */
  { name: "object_size", type: "i32", guard: "init" },
  /** Free pointer offset: 0, inside the object. */
  { name: "offset", type: "i32", guard: "init" },
  /** s->oo: order of a slab and objects per slab. */
  { name: "order", type: "i32", guard: "init" },
  { name: "objects", type: "i32", guard: "init" },
  { name: "align", type: "i32", guard: "init" },
  { name: "name", type: "u32", count: CACHE_NAME_LEN / 4, guard: "init" },
  /** On slab_caches. */
  { name: "list", type: LIST_HEAD, guard: "slab_mutex" },
  { name: "node", type: STRUCT_KMEM_CACHE_NODE, guard: "its fields' guards" },
]);

const S_CPU_SLAB = STRUCT_KMEM_CACHE.off.cpu_slab;
const S_FLAGS = STRUCT_KMEM_CACHE.off.flags;
const S_MIN_PARTIAL = STRUCT_KMEM_CACHE.off.min_partial;
const S_SIZE = STRUCT_KMEM_CACHE.off.size;
const S_OBJECT_SIZE = STRUCT_KMEM_CACHE.off.object_size;
const S_ORDER = STRUCT_KMEM_CACHE.off.order;
const S_OBJECTS = STRUCT_KMEM_CACHE.off.objects;
const S_NAME = STRUCT_KMEM_CACHE.off.name;
const S_LIST = STRUCT_KMEM_CACHE.off.list;
const S_NODE = STRUCT_KMEM_CACHE.off.node;
const N_LOCK = S_NODE + STRUCT_KMEM_CACHE_NODE.off.list_lock;
const N_NR_PARTIAL = S_NODE + STRUCT_KMEM_CACHE_NODE.off.nr_partial;
const N_PARTIAL = S_NODE + STRUCT_KMEM_CACHE_NODE.off.partial;
const N_NR_SLABS = S_NODE + STRUCT_KMEM_CACHE_NODE.off.nr_slabs;
const N_TOTAL_OBJECTS = S_NODE + STRUCT_KMEM_CACHE_NODE.off.total_objects;
const C_FREELIST = STRUCT_KMEM_CACHE_CPU.off.freelist;
const C_PAGE = STRUCT_KMEM_CACHE_CPU.off.page;
const C_NR_ALLOC = STRUCT_KMEM_CACHE_CPU.off.nr_alloc;
const C_NR_FREE = STRUCT_KMEM_CACHE_CPU.off.nr_free;
const PG_LRU = STRUCT_PAGE.off.lru;
const PG_SLAB_CACHE = STRUCT_PAGE.off.slab_cache;
const PG_FREELIST = STRUCT_PAGE.off.freelist;
const PG_INUSE = STRUCT_PAGE.off.inuse;
const PG_OBJECTS = STRUCT_PAGE.off.objects;
const PG_FROZEN = STRUCT_PAGE.off.frozen;

/** The cache of kmem_cache records. Its own record is static (SLUB copies boot_kmem_cache out; vmsim keeps it). */
const kmem_cache_boot = DEFINE_GLOBAL("kmem_cache_boot", STRUCT_KMEM_CACHE);

/** slab_caches (v4.19): every cache, under slab_mutex. */
const slab_caches = DEFINE_GLOBAL("slab_caches", LIST_HEAD);
staticInit(() => INIT_LIST_HEAD(slab_caches.ptr));
/** slab_mutex (v4.19): serializes cache creation and walks of slab_caches. */
const slab_mutex = DEFINE_MUTEX("slab_mutex");

const SLAB_COMMON = defineStruct("slab_common", [
  /** kmem_cache_cpu slots handed out so far. */
  { name: "nr_caches", type: "i32", guard: "slab_mutex" },
  /** kmalloc_caches[KMALLOC_NORMAL][index] (v4.19): index 1 = 96, 2 = 192, n = 2^n bytes. */
  { name: "kmalloc_caches", type: "ptr", count: KMALLOC_SHIFT_HIGH + 1, guard: "init" },
]);
const slab_common = DEFINE_GLOBAL("slab_common", SLAB_COMMON);

/* This CPU's kmem_cache_cpu array, cached: it is on every allocation. */
let cpuSlabBase = 0;
onSetCurrentCpu(() => {
  cpuSlabBase = this_cpu_ptr(kmem_cache_cpu);
});

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

/** The cache's name ("kmalloc-64"). */
export function kmem_cache_name(s: number): string {
  return readCString(s + S_NAME, CACHE_NAME_LEN);
}

/** kmem_cache_size (v4.19): the object size the cache was created with. */
export function kmem_cache_size(s: number): number {
  return I32[(s + S_OBJECT_SIZE) >> 2]!;
}

/*** Free pointers and debugging (slub_debug=P) ***/

/** check_valid_pointer (v4.19): NULL or the start of an object of `page`. */
function check_valid_pointer(s: number, page: number, object: number): boolean {
  if (object === 0) return true;
  const base = page_address(page);
  const size = I32[(s + S_SIZE) >> 2]!;
  const off = object - base;
  return off >= 0 && off < I32[(page + PG_OBJECTS) >> 2]! * size && off % size === 0;
}

/** object_err / slab_err (v4.19): the "BUG <cache> (Not tainted): <reason>" report. */
function object_err(s: number, page: number, object: number, reason: string, info = ""): void {
  const base = page_address(page);
  reportBug(
    "slab",
    [
      `BUG ${kmem_cache_name(s)} (Not tainted): ${reason}`,
      ...(info ? [info] : []),
      `INFO: Slab ${hex(page)} objects=${I32[(page + PG_OBJECTS) >> 2]} used=${I32[(page + PG_INUSE) >> 2]} fp=${hex(I32[(page + PG_FREELIST) >> 2]!)}`,
      `INFO: Object ${hex(object)} @offset=${object - base} fp=${hex(I32[object >> 2]!)}`,
    ].join("\n"),
  );
}

/** init_object (v4.19), poison part: POISON_FREE after the free pointer, POISON_END last. */
function init_object(s: number, object: number): void {
  const end = object + I32[(s + S_OBJECT_SIZE) >> 2]! - 1;
  U8.fill(POISON_FREE, object + 4, end);
  U8[end] = POISON_END;
}

/** The poison after the free pointer is intact (word compares, then the tail bytes). */
function poison_intact(s: number, object: number): boolean {
  const end = object + I32[(s + S_OBJECT_SIZE) >> 2]! - 1;
  if (U8[end] !== POISON_END) return false;
  let p = object + 4;
  const wordEnd = end & ~3;
  for (; p < wordEnd; p += 4) if (I32[p >> 2] !== POISON_WORD) return false;
  for (; p < end; p++) if (U8[p] !== POISON_FREE) return false;
  return true;
}

/** check_bytes_and_report (v4.19) for the poison: reports the overwritten range and restores it. */
function check_poison(s: number, page: number, object: number): void {
  if (poison_intact(s, object)) return;
  const end = object + I32[(s + S_OBJECT_SIZE) >> 2]! - 1;
  const expect = (p: number) => (p === end ? POISON_END : POISON_FREE);
  let first = object + 4;
  while (U8[first] === expect(first)) first++;
  let last = end;
  while (U8[last] === expect(last)) last--;
  object_err(
    s,
    page,
    object,
    "Poison overwritten",
    `INFO: ${hex(first)}-${hex(last)}. First byte ${hex(U8[first]!)} instead of ${hex(expect(first))}`,
  );
  init_object(s, object);
}

/**
 * on_freelist (v4.19): is `object` free in `page`? Walks the CPU freelist
 * (when `page` is this CPU's slab) and the page freelist; bounded by the
 * object count so a corrupt chain cannot loop. Interrupts are off.
 */
function on_freelist(s: number, page: number, object: number, c: number): boolean {
  const objects = I32[(page + PG_OBJECTS) >> 2]!;
  if (I32[(c + C_PAGE) >> 2] === page) {
    let n = 0;
    for (let p = I32[(c + C_FREELIST) >> 2]!; p !== 0 && n <= objects; p = I32[p >> 2]!, n++)
      if (p === object) return true;
  }
  const lock = s + N_LOCK;
  spin_lock(lock);
  let found = false;
  let n = 0;
  for (let p = I32[(page + PG_FREELIST) >> 2]!; p !== 0 && n <= objects; p = I32[p >> 2]!, n++)
    if (p === object) {
      found = true;
      break;
    }
  spin_unlock(lock);
  return found;
}

/**
 * free_debug_processing (v4.19), poisoning only: the pointer is an object of
 * its slab, not already free (the walk runs only when the poison looks
 * intact: an object in use rarely ends in POISON_END), then it is poisoned.
 */
function free_debug_processing(s: number, page: number, object: number, c: number): boolean {
  if (!check_valid_pointer(s, page, object)) {
    object_err(s, page, object, `Invalid object pointer ${hex(object)}`);
    return false;
  }
  if (poison_intact(s, object) && on_freelist(s, page, object, c)) {
    object_err(s, page, object, "Object already free");
    return false;
  }
  init_object(s, object);
  return true;
}

/*** Partial lists and slab pages ***/

/** add_partial (v4.19): list_lock held. */
function add_partial(s: number, page: number, tail: boolean): void {
  I32[(s + N_NR_PARTIAL) >> 2] = I32[(s + N_NR_PARTIAL) >> 2]! + 1;
  if (tail) list_add_tail(page + PG_LRU, s + N_PARTIAL);
  else list_add(page + PG_LRU, s + N_PARTIAL);
}

/** remove_partial (v4.19): list_lock held. */
function remove_partial(s: number, page: number): void {
  list_del(page + PG_LRU);
  I32[(s + N_NR_PARTIAL) >> 2] = I32[(s + N_NR_PARTIAL) >> 2]! - 1;
}

/**
 * allocate_slab (v4.19): a new slab, frozen, every object free and chained
 * in address order. A caller that may sleep gets interrupts back on around
 * the page allocation, as in the kernel (an interrupt may then use this CPU's
 * slab: ___slab_alloc rechecks it).
 */
function allocate_slab(s: number, flags: number): number {
  const order = I32[(s + S_ORDER) >> 2]!;
  let gfp = flags & GFP_RECLAIM_MASK;
  if (order !== 0) gfp |= __GFP_COMP;
  const blocking = gfpflags_allow_blocking(flags);
  if (blocking) local_irq_enable();
  const page = alloc_pages(gfp, order);
  if (blocking) local_irq_disable();
  if (page === 0) return 0;
  const objects = I32[(s + S_OBJECTS) >> 2]!;
  const size = I32[(s + S_SIZE) >> 2]!;
  const poison = (I32[(s + S_FLAGS) >> 2]! & SLAB_POISON) !== 0;
  I32[(page + PG_OBJECTS) >> 2] = objects;
  I32[(page + PG_SLAB_CACHE) >> 2] = s;
  __SetPageSlab(page);
  mod_zone_page_state(zone_normal.ptr, NR_SLAB_UNRECLAIMABLE, 1 << order);
  const start = page_address(page);
  for (let i = 0, p = start; i < objects; i++, p += size) {
    if (poison) init_object(s, p);
    I32[p >> 2] = i + 1 < objects ? p + size : 0;
  }
  // The page is not yet visible to any other CPU: plain stores, published by the caller's lock or its return.
  I32[(page + PG_FREELIST) >> 2] = start;
  I32[(page + PG_INUSE) >> 2] = objects;
  I32[(page + PG_FROZEN) >> 2] = 1;
  sched_point(SP_ATOMIC);
  Atomics.add(I32, (s + N_NR_SLABS) >> 2, 1);
  Atomics.add(I32, (s + N_TOTAL_OBJECTS) >> 2, objects);
  return page;
}

/** new_slab (v4.19): fixes up gfp flags a slab cannot honour (GFP_SLAB_BUG_MASK), then allocate_slab. */
function new_slab(s: number, flags: number): number {
  const invalid = flags & (__GFP_DMA32 | __GFP_HIGHMEM);
  if (invalid) {
    flags &= ~invalid;
    reportBug(
      "WARN",
      `Unexpected gfp: ${hex(invalid)} (${format_gfp(invalid)}). Fixing up to gfp: ${hex(flags)} (${format_gfp(flags)}). Fix your code!`,
    );
  }
  return allocate_slab(s, flags);
}

/** discard_slab (v4.19): dec_slabs_node, then __free_slab: the page goes back to the buddy allocator. */
function discard_slab(s: number, page: number): void {
  const order = I32[(s + S_ORDER) >> 2]!;
  sched_point(SP_ATOMIC);
  Atomics.sub(I32, (s + N_NR_SLABS) >> 2, 1);
  Atomics.sub(I32, (s + N_TOTAL_OBJECTS) >> 2, I32[(page + PG_OBJECTS) >> 2]!);
  __ClearPageSlab(page);
  I32[(page + PG_SLAB_CACHE) >> 2] = 0;
  mod_zone_page_state(zone_normal.ptr, NR_SLAB_UNRECLAIMABLE, -(1 << order));
  __free_pages(page, order);
}

/**
 * get_partial (v4.19's get_partial_node + acquire_slab): takes the first
 * partial slab, freezes it and returns its whole freelist; the slab becomes
 * this CPU's (`c->page`). 0 when there is none.
 */
function get_partial(s: number, c: number): number {
  const lock = s + N_LOCK;
  spin_lock(lock);
  const first = list_next(s + N_PARTIAL);
  if (first === s + N_PARTIAL) {
    spin_unlock(lock);
    return 0;
  }
  const page = first - PG_LRU;
  const freelist = I32[(page + PG_FREELIST) >> 2]!;
  I32[(page + PG_FREELIST) >> 2] = 0;
  I32[(page + PG_INUSE) >> 2] = I32[(page + PG_OBJECTS) >> 2]!;
  I32[(page + PG_FROZEN) >> 2] = 1;
  remove_partial(s, page);
  spin_unlock(lock);
  I32[(c + C_PAGE) >> 2] = page;
  return freelist;
}

/**
 * deactivate_slab (v4.19): a cpu slab goes back to the node — its CPU
 * freelist merged into the page freelist, unfrozen, then onto the partial
 * list (to the tail when other CPUs freed into it meanwhile), freed when
 * empty and the node has min_partial slabs, or left off-list when full.
 */
function deactivate_slab(s: number, page: number, freelist: number): void {
  const objects = I32[(page + PG_OBJECTS) >> 2]!;
  let n = 0;
  let tail = 0;
  for (let p = freelist; p !== 0 && n < objects; p = I32[p >> 2]!, n++) tail = p;
  const lock = s + N_LOCK;
  spin_lock(lock);
  const prior = I32[(page + PG_FREELIST) >> 2]!;
  if (tail !== 0) {
    I32[tail >> 2] = prior;
    I32[(page + PG_FREELIST) >> 2] = freelist;
  }
  const inuse = I32[(page + PG_INUSE) >> 2]! - n;
  I32[(page + PG_INUSE) >> 2] = inuse;
  I32[(page + PG_FROZEN) >> 2] = 0;
  let free = false;
  if (inuse === 0 && I32[(s + N_NR_PARTIAL) >> 2]! >= I32[(s + S_MIN_PARTIAL) >> 2]!) free = true;
  else if (I32[(page + PG_FREELIST) >> 2] !== 0) add_partial(s, page, prior !== 0);
  spin_unlock(lock);
  if (free) discard_slab(s, page);
}

/** flush_slab (v4.19): deactivates CPU slot `c`'s slab. Interrupts are off. */
function flush_slab(s: number, c: number): void {
  deactivate_slab(s, I32[(c + C_PAGE) >> 2]!, I32[(c + C_FREELIST) >> 2]!);
  I32[(c + C_PAGE) >> 2] = 0;
  I32[(c + C_FREELIST) >> 2] = 0;
}

/**
 * flush_all (v4.19): every CPU's cpu slab of `s` back to the node. The kernel
 * sends an IPI to each CPU that has one; here the caller flushes them itself,
 * so the other CPUs must be parked (as for drain_all_pages).
 */
function flush_all(s: number): void {
  const flags = local_irq_save();
  for (let cpu = 0; cpu < num_online_cpus(); cpu++) {
    const c = per_cpu_ptr(kmem_cache_cpu, cpu) + I32[(s + S_CPU_SLAB) >> 2]!;
    if (I32[(c + C_PAGE) >> 2] !== 0) flush_slab(s, c);
  }
  local_irq_restore(flags);
}

/*** Allocation ***/

/**
 * get_freelist (v4.19): takes the objects other CPUs freed into this CPU's
 * slab. None left: the slab is full and is unfrozen (full slabs are on no list).
 */
function get_freelist(s: number, page: number): number {
  const lock = s + N_LOCK;
  spin_lock(lock);
  const freelist = I32[(page + PG_FREELIST) >> 2]!;
  I32[(page + PG_FREELIST) >> 2] = 0;
  I32[(page + PG_INUSE) >> 2] = I32[(page + PG_OBJECTS) >> 2]!;
  I32[(page + PG_FROZEN) >> 2] = freelist !== 0 ? 1 : 0;
  spin_unlock(lock);
  return freelist;
}

/** slab_out_of_memory (v4.19). */
function slab_out_of_memory(s: number, gfp: number): void {
  if (gfp & __GFP_NOWARN) return;
  reportBug(
    "WARN",
    [
      `SLUB: Unable to allocate memory on node -1, gfp=${hex(gfp)}(${format_gfp(gfp)})`,
      `  cache: ${kmem_cache_name(s)}, object size: ${kmem_cache_size(s)}, buffer size: ${I32[(s + S_SIZE) >> 2]}, default order: ${I32[(s + S_ORDER) >> 2]}, min order: ${I32[(s + S_ORDER) >> 2]}`,
      `  node 0: slabs: ${Atomics.load(I32, (s + N_NR_SLABS) >> 2)}, objs: ${Atomics.load(I32, (s + N_TOTAL_OBJECTS) >> 2)}`,
    ].join("\n"),
  );
}

/**
 * ___slab_alloc (v4.19): the CPU freelist is empty. Refill it from the cpu
 * slab's remote frees, else a partial slab, else a new slab; returns the
 * new freelist (its first object is the one handed out), 0 when out of memory.
 * Interrupts are off.
 */
function ___slab_alloc(s: number, gfp: number, c: number): number {
  const page = I32[(c + C_PAGE) >> 2]!;
  if (page !== 0) {
    const freelist = get_freelist(s, page);
    if (freelist !== 0) return freelist;
    I32[(c + C_PAGE) >> 2] = 0;
  }
  const partial = get_partial(s, c);
  if (partial !== 0) return partial;
  const fresh = new_slab(s, gfp);
  if (fresh === 0) {
    slab_out_of_memory(s, gfp);
    return 0;
  }
  // An interrupt taken while the page was allocated may have given this CPU a slab meanwhile.
  if (I32[(c + C_PAGE) >> 2] !== 0) flush_slab(s, c);
  const freelist = I32[(fresh + PG_FREELIST) >> 2]!;
  I32[(fresh + PG_FREELIST) >> 2] = 0;
  I32[(c + C_PAGE) >> 2] = fresh;
  return freelist;
}

/**
 * slab_alloc (v4.19's slab_alloc_node): the fast path pops the CPU freelist
 * with interrupts off. With poisoning, the next free pointer is checked
 * before it is followed and the object's poison after.
 */
function slab_alloc(s: number, gfp: number): number {
  if (gfp & __GFP_DIRECT_RECLAIM) might_sleep(); // slab_pre_alloc_hook's might_sleep_if
  const flags = local_irq_save();
  const c = cpuSlabBase + I32[(s + S_CPU_SLAB) >> 2]!;
  let object = I32[(c + C_FREELIST) >> 2]!;
  if (object === 0) object = ___slab_alloc(s, gfp, c);
  if (object === 0) {
    local_irq_restore(flags);
    return 0;
  }
  let next = I32[object >> 2]!;
  const debug = (I32[(s + S_FLAGS) >> 2]! & SLAB_POISON) !== 0;
  const page = debug ? I32[(c + C_PAGE) >> 2]! : 0;
  if (debug && !check_valid_pointer(s, page, next)) {
    object_err(s, page, object, "Freepointer corrupt");
    next = 0; // the rest of the freelist is lost, as SLUB's repair drops it
  }
  I32[(c + C_FREELIST) >> 2] = next;
  I32[(c + C_NR_ALLOC) >> 2] = I32[(c + C_NR_ALLOC) >> 2]! + 1;
  local_irq_restore(flags);
  if (debug) check_poison(s, page, object);
  if (gfp & __GFP_ZERO) U8.fill(0, object, object + I32[(s + S_OBJECT_SIZE) >> 2]!);
  return object;
}

/** kmem_cache_alloc (v4.19): an object of cache `s`, not zeroed, or 0. */
export function kmem_cache_alloc(s: number, gfp: number): number {
  return slab_alloc(s, gfp);
}

/** kmem_cache_zalloc (v4.19): a zeroed object of cache `s`, or 0. */
export function kmem_cache_zalloc(s: number, gfp: number): number {
  return slab_alloc(s, gfp | __GFP_ZERO);
}

/*** Freeing ***/

function report_double_free(s: number, page: number, object: number): void {
  object_err(s, page, object, "Object already free", "INFO: freed twice in a row (set_freepointer: object == fp)");
}

/**
 * __slab_free (v4.19): frees into a slab that is not this CPU's, under
 * list_lock: a full slab becomes partial; an empty one goes back to the
 * buddy allocator once the node keeps min_partial slabs. Interrupts are off.
 */
function __slab_free(s: number, page: number, object: number): boolean {
  const lock = s + N_LOCK;
  spin_lock(lock);
  const prior = I32[(page + PG_FREELIST) >> 2]!;
  if (object === prior) {
    spin_unlock(lock);
    report_double_free(s, page, object);
    return false;
  }
  I32[object >> 2] = prior;
  I32[(page + PG_FREELIST) >> 2] = object;
  const inuse = I32[(page + PG_INUSE) >> 2]! - 1;
  I32[(page + PG_INUSE) >> 2] = inuse;
  if (I32[(page + PG_FROZEN) >> 2] !== 0) {
    spin_unlock(lock); // a CPU's slab: its owner picks the object up in get_freelist
    return true;
  }
  if (inuse === 0 && I32[(s + N_NR_PARTIAL) >> 2]! >= I32[(s + S_MIN_PARTIAL) >> 2]!) {
    if (prior !== 0) remove_partial(s, page);
    spin_unlock(lock);
    discard_slab(s, page);
    return true;
  }
  if (prior === 0) add_partial(s, page, true);
  spin_unlock(lock);
  return true;
}

/** slab_free (v4.19's do_slab_free): the fast path pushes onto the CPU freelist when the object is in this CPU's slab. */
function slab_free(s: number, page: number, object: number): void {
  // slab_free_hook (v4.19): no lock may be held in the object.
  if (lockdepOn) debug_check_no_locks_freed(object, kmem_cache_size(s));
  const flags = local_irq_save();
  const c = cpuSlabBase + I32[(s + S_CPU_SLAB) >> 2]!;
  if ((I32[(s + S_FLAGS) >> 2]! & SLAB_POISON) !== 0 && !free_debug_processing(s, page, object, c)) {
    local_irq_restore(flags);
    return;
  }
  if (page === I32[(c + C_PAGE) >> 2]) {
    const freelist = I32[(c + C_FREELIST) >> 2]!;
    if (object === freelist) {
      local_irq_restore(flags);
      report_double_free(s, page, object);
      return;
    }
    I32[object >> 2] = freelist;
    I32[(c + C_FREELIST) >> 2] = object;
  } else if (!__slab_free(s, page, object)) {
    local_irq_restore(flags);
    return;
  }
  I32[(c + C_NR_FREE) >> 2] = I32[(c + C_NR_FREE) >> 2]! + 1;
  local_irq_restore(flags);
}

/** kmem_cache_free (v4.19): frees an object of cache `s`; a wrong cache is reported and the object's own used (cache_from_obj). */
export function kmem_cache_free(s: number, object: number): void {
  if (!virt_addr_valid(object)) throw new KernelBug(`kmem_cache_free(${hex(object)}): not a linear-map address`);
  const page = virt_to_head_page(object);
  if (!PageSlab(page)) throw new KernelBug(`kmem_cache_free(${kmem_cache_name(s)}, ${hex(object)}): not a slab object`);
  const cachep = I32[(page + PG_SLAB_CACHE) >> 2]!;
  if (cachep !== s)
    reportBug(
      "WARN",
      `cache_from_obj: Wrong slab cache. ${kmem_cache_name(s)} but object is from ${kmem_cache_name(cachep)}`,
    );
  slab_free(cachep, page, object);
}

/*** Cache creation ***/

/** calculate_alignment (v4.19). */
function calculate_alignment(flags: number, align: number, size: number): number {
  if (flags & SLAB_HWCACHE_ALIGN) {
    let ralign = CACHE_LINE_SIZE;
    while (size <= ralign / 2) ralign /= 2;
    align = Math.max(align, ralign);
  }
  if (align < ARCH_SLAB_MINALIGN) align = ARCH_SLAB_MINALIGN;
  return Math.ceil(align / 8) * 8;
}

function order_objects(order: number, size: number): number {
  return ((PAGE_SIZE << order) / size) | 0;
}

/** get_order (v4.19): the smallest order whose block holds `size` bytes. */
function get_order(size: number): number {
  const pages = Math.floor((size - 1) / PAGE_SIZE);
  return pages <= 0 ? 0 : 32 - Math.clz32(pages);
}

/** slab_order (v4.19): the lowest order holding min_objects with at most 1/fract_leftover wasted. */
function slab_order(size: number, minObjects: number, maxOrder: number, fractLeftover: number): number {
  if (order_objects(0, size) > MAX_OBJS_PER_PAGE) return get_order(size * MAX_OBJS_PER_PAGE) - 1;
  let order = get_order(minObjects * size);
  for (; order <= maxOrder; order++) {
    const slab_size = PAGE_SIZE << order;
    if (slab_size % size <= slab_size / fractLeftover) break;
  }
  return order;
}

/** calculate_order (v4.19): min_objects = 4 * (fls(nr_cpu_ids) + 1), relaxed until a slab order fits; -1 if none. */
function calculate_order(size: number): number {
  let min_objects = 4 * (32 - Math.clz32(num_online_cpus()) + 1);
  min_objects = Math.min(min_objects, order_objects(SLUB_MAX_ORDER, size));
  while (min_objects > 1) {
    for (let fraction = 16; fraction >= 4; fraction /= 2) {
      const order = slab_order(size, min_objects, SLUB_MAX_ORDER, fraction);
      if (order <= SLUB_MAX_ORDER) return order;
    }
    min_objects--;
  }
  let order = slab_order(size, 1, SLUB_MAX_ORDER, 1);
  if (order <= SLUB_MAX_ORDER) return order;
  order = slab_order(size, 1, MAX_ORDER, 1);
  return order < MAX_ORDER ? order : -1;
}

/**
 * kmem_cache_open (v4.19, with calculate_sizes and set_min_partial): fills a
 * zeroed record; false when no slab order can hold an object.
 */
function kmem_cache_open(s: number, name: string, size: number, align: number, flags: number): boolean {
  const objsize = Math.ceil(size / 8) * 8; // ALIGN(size, sizeof(void *))
  const stride = Math.ceil(objsize / align) * align;
  const order = calculate_order(stride);
  if (order < 0) return false;
  writeCString(s + S_NAME, CACHE_NAME_LEN, name);
  // slub_debug=P is a boot parameter: the cache keeps the setting it was created with.
  I32[(s + S_FLAGS) >> 2] = flags | (theArena().config.slubDebug ? SLAB_POISON : 0);
  I32[(s + S_OBJECT_SIZE) >> 2] = size;
  I32[(s + S_SIZE) >> 2] = stride;
  I32[(s + STRUCT_KMEM_CACHE.off.offset) >> 2] = 0;
  I32[(s + STRUCT_KMEM_CACHE.off.align) >> 2] = align;
  I32[(s + S_ORDER) >> 2] = order;
  I32[(s + S_OBJECTS) >> 2] = order_objects(order, stride);
  const min_partial = (31 - Math.clz32(stride)) >> 1;
  I32[(s + S_MIN_PARTIAL) >> 2] = Math.min(MAX_PARTIAL, Math.max(MIN_PARTIAL, min_partial));
  spin_lock_init(s + N_LOCK, "&n->list_lock");
  I32[(s + N_NR_PARTIAL) >> 2] = 0;
  INIT_LIST_HEAD(s + N_PARTIAL);
  I32[(s + N_NR_SLABS) >> 2] = 0;
  I32[(s + N_TOTAL_OBJECTS) >> 2] = 0;
  return true;
}

/** Gives an opened cache its kmem_cache_cpu slot and puts it on slab_caches; false when the slots are used up. */
function register_cache(s: number): boolean {
  mutex_lock(slab_mutex.ptr);
  const nrIdx = (slab_common.ptr + SLAB_COMMON.off.nr_caches) >> 2;
  const id = I32[nrIdx]!;
  if (id >= MAX_KMEM_CACHES) {
    mutex_unlock(slab_mutex.ptr);
    return false;
  }
  I32[nrIdx] = id + 1;
  I32[(s + S_CPU_SLAB) >> 2] = id * STRUCT_KMEM_CACHE_CPU.size;
  list_add_tail(s + S_LIST, slab_caches.ptr);
  mutex_unlock(slab_mutex.ptr);
  return true;
}

/**
 * kmem_cache_create (v4.19): a cache of `size`-byte objects aligned to
 * `align` (SLAB_HWCACHE_ALIGN: to the cache line, halved while objects fit
 * twice); its record comes from the kmem_cache cache. Returns the cache, or
 * 0 with a WARN (SLAB_PANIC: BUG).
 */
export function kmem_cache_create(name: string, size: number, align: number, flags: number): number {
  const s = kmem_cache_zalloc(kmem_cache_boot.ptr, GFP_KERNEL);
  const a = calculate_alignment(flags, align, size);
  if (s !== 0 && kmem_cache_open(s, name, size, a, flags) && register_cache(s)) return s;
  if (s !== 0) kmem_cache_free(kmem_cache_boot.ptr, s);
  if (flags & SLAB_PANIC) throw new KernelBug(`kmem_cache_create: Failed to create slab '${name}'. Error -12`);
  reportBug("WARN", `kmem_cache_create(${name}) failed with error -12`);
  return 0;
}

/** A cache defined statically with {@link KMEM_CACHE}; `cachep` is the cache once kmem_cache_init ran. */
export interface KmemCacheDef {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly flags: number;
  /** The static variable holding the kmem_cache pointer (`static struct kmem_cache *foo_cachep`). */
  readonly slot: GlobalVar;
  /** The cache (0 before boot). */
  readonly cachep: number;
}

const CACHEP = defineStruct("kmem_cache_ptr", [{ name: "cachep", type: "ptr", guard: "init" }]);
const staticCaches: KmemCacheDef[] = [];

/**
 * KMEM_CACHE(struct, flags) (v4.19): a cache named after the struct, of its
 * size and alignment. Declared at module load, created by kmem_cache_init.
 */
export function KMEM_CACHE(struct: StructDef, flags = 0): KmemCacheDef {
  const slot = DEFINE_GLOBAL(`${struct.name}_cachep`, CACHEP);
  const def: KmemCacheDef = {
    name: struct.name,
    size: struct.size,
    align: struct.align,
    flags,
    slot,
    get cachep() {
      return I32[slot.ptr >> 2]!;
    },
  };
  staticCaches.push(def);
  return def;
}

/*** kmalloc (mm/slab_common.c, include/linux/slab.h) ***/

/** kmalloc_info names (v4.19), by kmalloc index. */
const KMALLOC_NAMES: readonly string[] = [
  "",
  "kmalloc-96",
  "kmalloc-192",
  "kmalloc-8",
  "kmalloc-16",
  "kmalloc-32",
  "kmalloc-64",
  "kmalloc-128",
  "kmalloc-256",
  "kmalloc-512",
  "kmalloc-1024",
  "kmalloc-2048",
  "kmalloc-4096",
  "kmalloc-8192",
];

/** size_index (v4.19): kmalloc index of sizes up to 192, by (size - 1) / 8. */
const size_index = new Uint8Array([3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2]);

function kmalloc_size(index: number): number {
  return index === 1 ? 96 : index === 2 ? 192 : 1 << index;
}

/** create_kmalloc_caches (v4.19): powers of two, kmalloc-96 after kmalloc-64 and kmalloc-192 after kmalloc-128. */
function create_kmalloc_caches(): void {
  const base = (slab_common.ptr + SLAB_COMMON.off.kmalloc_caches) >> 2;
  const create = (i: number) => {
    I32[base + i] = kmem_cache_create(KMALLOC_NAMES[i]!, kmalloc_size(i), ARCH_KMALLOC_MINALIGN, SLAB_PANIC);
  };
  for (let i = KMALLOC_SHIFT_LOW; i <= KMALLOC_SHIFT_HIGH; i++) {
    create(i);
    if (i === 6) create(1);
    if (i === 7) create(2);
  }
}

/** kmalloc_slab (v4.19): the kmalloc cache for 1 <= size <= KMALLOC_MAX_CACHE_SIZE. */
export function kmalloc_slab(size: number): number {
  const index = size <= 192 ? size_index[(size - 1) >> 3]! : 32 - Math.clz32(size - 1);
  return I32[((slab_common.ptr + SLAB_COMMON.off.kmalloc_caches) >> 2) + index]!;
}

/**
 * kmalloc_large (v4.19's kmalloc_order): a compound block from the page
 * allocator, accounted as slab (as v5.9 does) so kfree can give it back.
 */
function kmalloc_large(size: number, gfp: number): number {
  const order = get_order(size);
  const page = alloc_pages(gfp | __GFP_COMP, order);
  if (page === 0) return 0;
  mod_zone_page_state(zone_normal.ptr, NR_SLAB_UNRECLAIMABLE, 1 << order);
  return page_address(page);
}

/**
 * kmalloc (v4.19): `size` bytes from the matching kmalloc cache (not
 * zeroed), kmalloc_large above KMALLOC_MAX_CACHE_SIZE, ZERO_SIZE_PTR for 0;
 * 0 on failure. Sizes are size_t: a negative one is huge, and fails.
 */
export function kmalloc(size: number, gfp: number): number {
  if (size >>> 0 > KMALLOC_MAX_CACHE_SIZE) return kmalloc_large(size >>> 0, gfp);
  if (size === 0) return ZERO_SIZE_PTR;
  return slab_alloc(kmalloc_slab(size), gfp);
}

/** kzalloc (v4.19): kmalloc, zeroed. */
export function kzalloc(size: number, gfp: number): number {
  return kmalloc(size, gfp | __GFP_ZERO);
}

/**
 * kfree (v4.19): frees a kmalloc'd object (its cache from its page), or a
 * kmalloc_large block; NULL and ZERO_SIZE_PTR are ignored. A pointer outside
 * the linear map, or into a page that is neither slab nor compound, is BUG().
 */
export function kfree(x: number): void {
  if (x <= ZERO_SIZE_PTR) return;
  if (!virt_addr_valid(x)) throw new KernelBug(`kfree(${hex(x)}): not a linear-map address`);
  const page = virt_to_head_page(x);
  if (!PageSlab(page)) {
    if (!PageCompound(page)) throw new KernelBug(`kernel BUG at mm/slub.c: kfree(${hex(x)}): not a slab object`);
    const order = compound_order(page);
    mod_zone_page_state(zone_normal.ptr, NR_SLAB_UNRECLAIMABLE, -(1 << order));
    __free_pages(page, order);
    return;
  }
  slab_free(I32[(page + PG_SLAB_CACHE) >> 2]!, page, x);
}
registerRcuKfree(kfree);

/*** Shrinking, boot, slabinfo ***/

/**
 * kmem_cache_shrink (v4.19's __kmem_cache_shrink): flushes the cpu slabs
 * (flush_all: the other CPUs must be parked) and gives every empty slab back
 * to the buddy allocator, min_partial notwithstanding. (SLUB also sorts the
 * partial list by fullness; vmsim does not.)
 */
export function kmem_cache_shrink(s: number): void {
  flush_all(s);
  const lock = s + N_LOCK;
  for (;;) {
    const flags = local_irq_save();
    spin_lock(lock);
    let empty = 0;
    for (let p = list_next(s + N_PARTIAL); p !== s + N_PARTIAL; p = list_next(p))
      if (I32[(p - PG_LRU + PG_INUSE) >> 2] === 0) {
        empty = p - PG_LRU;
        break;
      }
    if (empty !== 0) remove_partial(s, empty);
    spin_unlock(lock);
    if (empty !== 0) discard_slab(s, empty);
    local_irq_restore(flags);
    if (empty === 0) return;
  }
}

/** Shrinks every cache (echo 1 > /sys/kernel/slab/<each>/shrink): leak checks run it with the other CPUs parked. */
export function kmem_cache_shrink_all(): void {
  mutex_lock(slab_mutex.ptr);
  for (let p = list_next(slab_caches.ptr); p !== slab_caches.ptr; p = list_next(p)) kmem_cache_shrink(p - S_LIST);
  mutex_unlock(slab_mutex.ptr);
}

/**
 * kmem_cache_init (v4.19): the kmem_cache cache (its record static), the
 * kmalloc caches, then the KMEM_CACHE definitions. start_kernel calls it
 * right after mem_init.
 */
export function kmem_cache_init(): void {
  const s = kmem_cache_boot.ptr;
  const size = STRUCT_KMEM_CACHE.size;
  const flags = SLAB_HWCACHE_ALIGN | SLAB_PANIC;
  if (!kmem_cache_open(s, "kmem_cache", size, calculate_alignment(flags, ARCH_KMALLOC_MINALIGN, size), flags))
    throw new KernelBug("kmem_cache_init: cannot create the kmem_cache cache");
  register_cache(s);
  create_kmalloc_caches();
  for (const def of staticCaches) I32[def.slot.ptr >> 2] = kmem_cache_create(def.name, def.size, def.align, def.flags);
}

/** One /proc/slabinfo row (plus nr_partial). */
export interface SlabInfo {
  readonly name: string;
  /** Objects allocated and not freed. */
  readonly active_objs: number;
  /** Objects in the cache's slabs. */
  readonly num_objs: number;
  readonly objsize: number;
  readonly objperslab: number;
  readonly pagesperslab: number;
  readonly num_slabs: number;
  readonly nr_partial: number;
}

/** get_slabinfo (v4.19): sums the per-CPU counters, so read it while the CPUs are parked. */
export function get_slabinfo(s: number): SlabInfo {
  let active = 0;
  for (let cpu = 0; cpu < num_online_cpus(); cpu++) {
    const c = per_cpu_ptr(kmem_cache_cpu, cpu) + I32[(s + S_CPU_SLAB) >> 2]!;
    active = (active + I32[(c + C_NR_ALLOC) >> 2]! - I32[(c + C_NR_FREE) >> 2]!) | 0;
  }
  const flags = local_irq_save();
  spin_lock(s + N_LOCK);
  const nr_partial = I32[(s + N_NR_PARTIAL) >> 2]!;
  spin_unlock(s + N_LOCK);
  local_irq_restore(flags);
  return {
    name: kmem_cache_name(s),
    active_objs: active,
    num_objs: Atomics.load(I32, (s + N_TOTAL_OBJECTS) >> 2),
    objsize: I32[(s + S_SIZE) >> 2]!,
    objperslab: I32[(s + S_OBJECTS) >> 2]!,
    pagesperslab: 1 << I32[(s + S_ORDER) >> 2]!,
    num_slabs: Atomics.load(I32, (s + N_NR_SLABS) >> 2),
    nr_partial,
  };
}

/** /proc/slabinfo: every cache, in creation order. */
export function slabinfo(): SlabInfo[] {
  const caches: number[] = [];
  mutex_lock(slab_mutex.ptr);
  for (let p = list_next(slab_caches.ptr); p !== slab_caches.ptr; p = list_next(p)) caches.push(p - S_LIST);
  mutex_unlock(slab_mutex.ptr);
  return caches.map(get_slabinfo);
}
