/**
 * The dynamic percpu allocator (mm/percpu.c with mm/percpu-vm.c, v4.19), in
 * the small: what lib/test_vmalloc.c's pcpu_alloc_test drives through
 * __alloc_percpu and free_percpu, built on pcpu_get_vm_areas and
 * pcpu_free_vm_areas of mm/vmalloc.c.
 *
 * As in the kernel: memory comes in chunks, a chunk is one vmalloc area made
 * of one unit per possible CPU (unit i belongs to CPU i), and an allocation
 * is an offset that is valid in every unit — the percpu pointer names the
 * copy in unit 0 and CPU i's copy is i units further on. A chunk's space is
 * a bitmap of 4-byte fragments (alloc_map) with a boundary map (bound_map) so
 * that free_percpu knows the size; units are backed lazily, page by page, in
 * every unit at once (populated), and a page's struct page names its chunk
 * (page->index) so free_percpu finds the chunk from the address. Chunks sit
 * on pcpu_slot lists by their free bytes, and an allocation tries the fullest
 * chunks that could fit first. pcpu_alloc_mutex serialises chunk creation and
 * population (which may sleep), pcpu_lock the maps and the slot lists. When a
 * chunk becomes wholly free while another free one exists, the balance work
 * (a kworker) depopulates and destroys every free chunk but the first.
 *
 * Where vmsim is smaller than the kernel:
 * - no first chunk: vmsim's static per-CPU variables live in the arena's
 *   percpu region (src/percpu), so every dynamic chunk is a vmalloc chunk,
 *   and the unit size is PCPU_MIN_UNIT_SIZE (32 KiB) instead of being sized
 *   from the static area; one NUMA group, one node;
 * - the per-block metadata (pcpu_block_md: contig_hint, left/right_free of
 *   each 1024-fragment block) is not kept: the chunk-wide hints (contig_bits,
 *   first_bit) skip full chunks, and a fit is found by a word-at-a-time scan
 *   of the free runs (src/lib/bitmap.ts);
 * - allocations may sleep (GFP_KERNEL): the atomic path (GFP_ATOMIC, served
 *   only from populated pages) and the balance work's reserve of empty
 *   populated pages for it (PCPU_EMPTY_POP_PAGES_LOW/HIGH) are left out, as
 *   are the reserved chunk (module static percpu) and the statistics.
 */
import { DEFINE_GLOBAL, F64, I32, staticInit, theArena } from "../shared/arena.js";
import { PAGE_SHIFT, PAGE_SIZE } from "../shared/config.js";
import { defineKernelFn } from "../shared/functab.js";
import { KernelBug, reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, sched_point } from "../sched/sched_point.js";
import {
  BITS_TO_LONGS,
  __set_bit,
  bitmap_clear,
  bitmap_set,
  find_last_bit,
  find_next_bit,
  find_next_zero_bit,
} from "../lib/bitmap.js";
import {
  INIT_LIST_HEAD,
  LIST_HEAD,
  list_del_init,
  list_empty,
  list_move,
  list_move_tail,
  list_next,
} from "../lib/list.js";
import { lockdep_assert_held } from "../locks/lockdep.js";
import { cond_resched } from "../locks/might_sleep.js";
import { DEFINE_MUTEX, mutex_lock, mutex_unlock } from "../locks/mutex.js";
import {
  DEFINE_SPINLOCK,
  spin_lock_irq,
  spin_lock_irqsave,
  spin_unlock_irq,
  spin_unlock_irqrestore,
} from "../locks/spinlock.js";
import { for_each_possible_cpu } from "../percpu/percpu.js";
import { onSetCurrentCpu, smp_processor_id } from "../shared/smp.js";
import { INIT_WORK, WORK_STRUCT, schedule_work } from "../kernel/workqueue.js";
import { GFP_KERNEL, __GFP_HIGHMEM } from "./gfp.js";
import { STRUCT_PAGE } from "./mm_types.js";
import { isFault, mmuWrite } from "./mmu.js";
import { __free_page, alloc_page } from "./page_alloc.js";
import { PAGE_KERNEL } from "./pgtable.js";
import { kfree, kzalloc } from "./slab.js";
import { flush_tlb_kernel_range } from "./tlbflush.js";
import {
  map_kernel_range_noflush,
  pcpu_free_vm_areas,
  pcpu_get_vm_areas,
  unmap_kernel_range_noflush,
  vm_addr,
  vmalloc_to_page,
} from "./vmalloc.js";

/*** include/linux/percpu.h, mm/percpu-internal.h ***/

/** PCPU_MIN_ALLOC_SHIFT (v4.19): one bit of a chunk's maps stands for 4 bytes. */
const PCPU_MIN_ALLOC_SHIFT = 2;
const PCPU_MIN_ALLOC_SIZE = 1 << PCPU_MIN_ALLOC_SHIFT;
/** PCPU_MIN_UNIT_SIZE (v4.19): 32 KiB — vmsim's unit size, and the largest allocation. */
export const PCPU_MIN_UNIT_SIZE = 32 << 10;
/** pcpu_unit_pages / pcpu_unit_size: fixed here (the kernel sizes them from the first chunk at boot). */
const pcpu_unit_pages = PCPU_MIN_UNIT_SIZE / PAGE_SIZE;
const pcpu_unit_size = pcpu_unit_pages << PAGE_SHIFT;
/** pcpu_chunk_map_bits: 4-byte fragments in a unit. */
const PCPU_MAP_BITS = pcpu_unit_size >> PCPU_MIN_ALLOC_SHIFT;
/** pcpu_atom_size: what pcpu_get_vm_areas aligns chunks to (arm64's embedding allocator: PAGE_SIZE). */
const pcpu_atom_size = PAGE_SIZE;

/* the slots are sorted by free bytes left, 1-31 bytes share the same slot */
const PCPU_SLOT_BASE_SHIFT = 5;

/** __pcpu_size_to_slot (v4.19). */
function __pcpu_size_to_slot(size: number): number {
  const highbit = 32 - Math.clz32(size); /* fls(size) */
  return Math.max(highbit - PCPU_SLOT_BASE_SHIFT + 2, 1);
}

/** pcpu_nr_slots (v4.19): slot pcpu_nr_slots - 1 holds the wholly free chunks. */
const pcpu_nr_slots = __pcpu_size_to_slot(pcpu_unit_size) + 2;

/** struct pcpu_chunk (mm/percpu-internal.h, v4.19), without the per-block metadata. */
const PCPU_CHUNK = defineStruct("pcpu_chunk", [
  /** linked to pcpu_slot lists */
  { name: "list", type: LIST_HEAD, guard: "pcpu_lock" },
  /** free bytes in the chunk */
  { name: "free_bytes", type: "i32", guard: "pcpu_lock" },
  /** max contiguous free fragments, and where that run starts */
  { name: "contig_bits", type: "i32", guard: "pcpu_lock" },
  { name: "contig_bits_start", type: "i32", guard: "pcpu_lock" },
  /** kaddr of unit 0: vms[0]->addr minus the group's offset */
  { name: "base_addr", type: "f64", guard: "init" },
  /** allocation map: a bit per 4-byte fragment (kzalloc'ed words, under pcpu_lock) */
  { name: "alloc_map", type: "ptr", guard: "init" },
  /** boundary map: a set bit starts each allocation (PCPU_MAP_BITS + 1 bits, under pcpu_lock) */
  { name: "bound_map", type: "ptr", guard: "init" },
  /** chunk data: the vm_struct array pcpu_get_vm_areas returned */
  { name: "data", type: "ptr", guard: "init" },
  /** the first free fragment */
  { name: "first_bit", type: "i32", guard: "pcpu_lock" },
  /** populated pages, a bit per page of a unit (pcpu_unit_pages ≤ 32: one word) */
  { name: "populated", type: "u32", guard: "pcpu_lock" },
  { name: "nr_pages", type: "i32", guard: "init" },
  { name: "nr_populated", type: "i32", guard: "pcpu_lock" },
]);
const C = PCPU_CHUNK.off;

/** pcpu_lock (v4.19): all internal data structures. */
const pcpu_lock = DEFINE_SPINLOCK("pcpu_lock");
/** pcpu_alloc_mutex (v4.19): chunk create/destroy, [de]population. */
const pcpu_alloc_mutex = DEFINE_MUTEX("pcpu_alloc_mutex");

/** pcpu_slot (v4.19): chunk list slots. */
const PCPU_SLOT = defineStruct("pcpu_slot", [
  { name: "list", type: LIST_HEAD, count: pcpu_nr_slots, guard: "pcpu_lock" },
]);
const pcpu_slot = DEFINE_GLOBAL("pcpu_slot", PCPU_SLOT);
staticInit(() => {
  for (let i = 0; i < pcpu_nr_slots; i++) INIT_LIST_HEAD(slot_head(i));
});

function slot_head(slot: number): number {
  return pcpu_slot.ptr + PCPU_SLOT.off.list + slot * LIST_HEAD.size;
}

/** The counters and the static pointers of percpu.c. */
const PCPU_GLOBALS = defineStruct("pcpu_globals", [
  /** pcpu_nr_populated (v4.19): populated pages of each unit, all chunks. */
  { name: "nr_populated", type: "i32", guard: "pcpu_lock" },
  /** pcpu_alloc's `static int warn_limit = 10`. */
  { name: "warn_limit", type: "i32", guard: "atomic" },
  /** pcpu_get_pages' `static struct page **pages`: the page array of [de]population. */
  { name: "pages", type: "ptr", guard: "pcpu_alloc_mutex" },
]);
const pcpu_globals = DEFINE_GLOBAL("pcpu_globals", PCPU_GLOBALS);
staticInit(() => {
  I32[(pcpu_globals.ptr + PCPU_GLOBALS.off.warn_limit) >> 2] = 10;
});

/*
 * The unit map (immutable once the machine is up): unit i is CPU i's, at
 * pcpu_unit_offsets[i] = i * pcpu_unit_size; one group holding every unit.
 */
let pcpu_nr_units = 1;
onSetCurrentCpu(() => {
  pcpu_nr_units = theArena().config.cpus;
});

function pcpu_unit_offsets(cpu: number): number {
  return cpu * pcpu_unit_size;
}

/*** mm/percpu.c ***/

/** pcpu_size_to_slot (v4.19). */
function pcpu_size_to_slot(size: number): number {
  if (size === pcpu_unit_size) return pcpu_nr_slots - 1;
  return __pcpu_size_to_slot(size);
}

/** pcpu_chunk_slot (v4.19). */
function pcpu_chunk_slot(chunk: number): number {
  const free_bytes = I32[(chunk + C.free_bytes) >> 2]!;
  if (free_bytes < PCPU_MIN_ALLOC_SIZE || I32[(chunk + C.contig_bits) >> 2] === 0) return 0;
  return pcpu_size_to_slot(free_bytes);
}

/** pcpu_set_page_chunk (v4.19): set the pointer to a chunk in a page struct. */
function pcpu_set_page_chunk(page: number, pcpu: number): void {
  I32[(page + STRUCT_PAGE.off.index) >> 2] = pcpu;
}

/** pcpu_get_page_chunk (v4.19): obtain the pointer to a chunk from a page struct. */
function pcpu_get_page_chunk(page: number): number {
  return I32[(page + STRUCT_PAGE.off.index) >> 2]!;
}

/** pcpu_page_idx (v4.19): where CPU `cpu`'s page `pageIdx` sits in the [de]population page array. */
function pcpu_page_idx(cpu: number, pageIdx: number): number {
  return cpu * pcpu_unit_pages + pageIdx;
}

/** pcpu_chunk_addr (v4.19): kaddr of page `pageIdx` of CPU `cpu`'s unit. */
function pcpu_chunk_addr(chunk: number, cpu: number, pageIdx: number): number {
  return F64[(chunk + C.base_addr) >> 3]! + pcpu_unit_offsets(cpu) + (pageIdx << PAGE_SHIFT);
}

/**
 * pcpu_chunk_relocate (v4.19): put `chunk` on the slot list of its free
 * bytes; `oslot` is the slot it was on (-1: none). A chunk that got emptier
 * goes to the head of its new slot, one that got fuller to the tail.
 */
function pcpu_chunk_relocate(chunk: number, oslot: number): void {
  const nslot = pcpu_chunk_slot(chunk);
  if (oslot === nslot) return;
  if (oslot < nslot) list_move(chunk + C.list, slot_head(nslot));
  else list_move_tail(chunk + C.list, slot_head(nslot));
}

/*** Chunk hints (v4.19's pcpu_chunk_update / pcpu_chunk_refresh_hint) ***/

/**
 * pcpu_chunk_update (v4.19): a free run of `bits` fragments at `bitOff`
 * replaces the contig hint if it is longer, or as long and better aligned.
 */
function pcpu_chunk_update(chunk: number, bitOff: number, bits: number): void {
  const cb = (chunk + C.contig_bits) >> 2;
  const cs = (chunk + C.contig_bits_start) >> 2;
  const start = I32[cs]!;
  const ffs = (x: number) => 31 - Math.clz32(x & -x);
  if (bits > I32[cb]!) {
    I32[cs] = bitOff;
    I32[cb] = bits;
  } else if (bits === I32[cb] && start !== 0 && (bitOff === 0 || ffs(bitOff) > ffs(start))) {
    /* use the start with the best alignment */
    I32[cs] = bitOff;
  }
}

/** pcpu_chunk_refresh_hint (v4.19): recompute the contig hint from every free run. */
function pcpu_chunk_refresh_hint(chunk: number): void {
  const map = I32[(chunk + C.alloc_map) >> 2]!;
  I32[(chunk + C.contig_bits) >> 2] = 0;
  I32[(chunk + C.contig_bits_start) >> 2] = 0;
  for (let rs = I32[(chunk + C.first_bit) >> 2]!; rs < PCPU_MAP_BITS; ) {
    const re = find_next_bit(map, PCPU_MAP_BITS, rs);
    pcpu_chunk_update(chunk, rs, re - rs);
    rs = find_next_zero_bit(map, PCPU_MAP_BITS, re);
  }
}

/** ALIGN for a power of two. */
function ALIGN(x: number, a: number): number {
  return (x + a - 1) & ~(a - 1);
}

/**
 * pcpu_find_block_fit (v4.19): the offset (in fragments) where `allocBits`
 * fragments aligned to `align` fit, or -1. The contig hint rejects a chunk
 * without a scan ("if it cannot fit in the global hint, there is memory
 * pressure and creating a new chunk would happen soon"); then the free runs
 * are walked from first_bit.
 */
function pcpu_find_block_fit(chunk: number, allocBits: number, align: number): number {
  const start = I32[(chunk + C.contig_bits_start) >> 2]!;
  if (ALIGN(start, align) - start + allocBits > I32[(chunk + C.contig_bits) >> 2]!) return -1;
  const map = I32[(chunk + C.alloc_map) >> 2]!;
  for (let rs = I32[(chunk + C.first_bit) >> 2]!; rs < PCPU_MAP_BITS; ) {
    const re = find_next_bit(map, PCPU_MAP_BITS, rs);
    const bitOff = ALIGN(rs, align);
    if (bitOff + allocBits <= re) return bitOff;
    rs = find_next_zero_bit(map, PCPU_MAP_BITS, re);
  }
  return -1;
}

/**
 * pcpu_alloc_area (v4.19): take `allocBits` fragments at `bitOff` (a fit
 * pcpu_find_block_fit found; the kernel searches that region once more),
 * update the maps and hints and move the chunk to its new slot. Returns the
 * byte offset of the area in its unit. pcpu_lock held.
 */
function pcpu_alloc_area(chunk: number, allocBits: number, bitOff: number): number {
  lockdep_assert_held(pcpu_lock.ptr, "pcpu_lock");
  const oslot = pcpu_chunk_slot(chunk);
  const alloc_map = I32[(chunk + C.alloc_map) >> 2]!;
  const bound_map = I32[(chunk + C.bound_map) >> 2]!;

  if (find_next_bit(alloc_map, bitOff + allocBits, bitOff) !== bitOff + allocBits)
    throw new KernelBug(`kernel BUG at mm/percpu.c: pcpu_alloc_area: fragments ${bitOff}+${allocBits} not free`);

  /* update alloc map */
  bitmap_set(alloc_map, bitOff, allocBits);

  /* update boundary map */
  __set_bit(bitOff, bound_map);
  bitmap_clear(bound_map, bitOff + 1, allocBits - 1);
  __set_bit(bitOff + allocBits, bound_map);

  const fb = (chunk + C.free_bytes) >> 2;
  I32[fb] = I32[fb]! - allocBits * PCPU_MIN_ALLOC_SIZE;

  /* update first free bit */
  const first = (chunk + C.first_bit) >> 2;
  if (bitOff === I32[first]) I32[first] = find_next_zero_bit(alloc_map, PCPU_MAP_BITS, bitOff + allocBits);

  /* pcpu_block_update_hint_alloc: the contig hint is stale once the area overlaps it */
  const cs = I32[(chunk + C.contig_bits_start) >> 2]!;
  if (bitOff < cs + I32[(chunk + C.contig_bits) >> 2]! && cs < bitOff + allocBits) pcpu_chunk_refresh_hint(chunk);

  pcpu_chunk_relocate(chunk, oslot);
  return bitOff * PCPU_MIN_ALLOC_SIZE;
}

/**
 * pcpu_free_area (v4.19): free the area at byte offset `off`; its size comes
 * from the boundary map (which keeps its bits: only allocation writes it).
 * pcpu_lock held.
 */
function pcpu_free_area(chunk: number, off: number): void {
  lockdep_assert_held(pcpu_lock.ptr, "pcpu_lock");
  const oslot = pcpu_chunk_slot(chunk);
  const alloc_map = I32[(chunk + C.alloc_map) >> 2]!;
  const bound_map = I32[(chunk + C.bound_map) >> 2]!;

  const bitOff = off / PCPU_MIN_ALLOC_SIZE;
  if (!(bitOff >= 0 && bitOff < PCPU_MAP_BITS) || off % PCPU_MIN_ALLOC_SIZE !== 0)
    throw new KernelBug(`kernel BUG at mm/percpu.c: pcpu_free_area: offset ${off}`);

  /* find end index */
  const end = find_next_bit(bound_map, PCPU_MAP_BITS, bitOff + 1);
  const bits = end - bitOff;
  bitmap_clear(alloc_map, bitOff, bits);

  /* update metadata */
  const fb = (chunk + C.free_bytes) >> 2;
  I32[fb] = I32[fb]! + bits * PCPU_MIN_ALLOC_SIZE;

  /* update first free bit */
  const first = (chunk + C.first_bit) >> 2;
  I32[first] = Math.min(I32[first]!, bitOff);

  /* pcpu_block_update_hint_free: the free run the area merged into may be the new contig hint */
  const prev = bitOff === 0 ? 0 : find_last_bit(alloc_map, bitOff);
  const run_start = prev === bitOff ? 0 : prev + 1;
  const run_end = find_next_bit(alloc_map, PCPU_MAP_BITS, end);
  pcpu_chunk_update(chunk, run_start, run_end - run_start);

  pcpu_chunk_relocate(chunk, oslot);
}

/** pcpu_alloc_chunk (v4.19): a chunk record and its maps, all free, on no slot list yet. */
function pcpu_alloc_chunk(gfp: number): number {
  const chunk = kzalloc(PCPU_CHUNK.size, gfp);
  if (!chunk) return 0;
  const alloc_map = kzalloc(BITS_TO_LONGS(PCPU_MAP_BITS) * 4, gfp);
  const bound_map = kzalloc(BITS_TO_LONGS(PCPU_MAP_BITS + 1) * 4, gfp);
  if (!alloc_map || !bound_map) {
    kfree(alloc_map);
    kfree(bound_map);
    kfree(chunk);
    return 0;
  }
  INIT_LIST_HEAD(chunk + C.list);
  I32[(chunk + C.alloc_map) >> 2] = alloc_map;
  I32[(chunk + C.bound_map) >> 2] = bound_map;
  I32[(chunk + C.nr_pages) >> 2] = pcpu_unit_pages;
  /* init metadata */
  I32[(chunk + C.contig_bits) >> 2] = PCPU_MAP_BITS;
  I32[(chunk + C.free_bytes) >> 2] = pcpu_unit_pages * PAGE_SIZE;
  return chunk;
}

/** pcpu_free_chunk (v4.19). */
function pcpu_free_chunk(chunk: number): void {
  if (!chunk) return;
  kfree(I32[(chunk + C.bound_map) >> 2]!);
  kfree(I32[(chunk + C.alloc_map) >> 2]!);
  kfree(chunk);
}

/** pcpu_chunk_populated (v4.19): pages `pageStart..pageEnd-1` of every unit are now backed. pcpu_lock held. */
function pcpu_chunk_populated(chunk: number, pageStart: number, pageEnd: number): void {
  const nr = pageEnd - pageStart;
  lockdep_assert_held(pcpu_lock.ptr, "pcpu_lock");
  bitmap_set(chunk + C.populated, pageStart, nr);
  I32[(chunk + C.nr_populated) >> 2] = I32[(chunk + C.nr_populated) >> 2]! + nr;
  const g = (pcpu_globals.ptr + PCPU_GLOBALS.off.nr_populated) >> 2;
  I32[g] = I32[g]! + nr;
}

/** pcpu_chunk_depopulated (v4.19): pages `pageStart..pageEnd-1` of every unit are no longer backed. pcpu_lock held. */
function pcpu_chunk_depopulated(chunk: number, pageStart: number, pageEnd: number): void {
  const nr = pageEnd - pageStart;
  lockdep_assert_held(pcpu_lock.ptr, "pcpu_lock");
  bitmap_clear(chunk + C.populated, pageStart, nr);
  I32[(chunk + C.nr_populated) >> 2] = I32[(chunk + C.nr_populated) >> 2]! - nr;
  const g = (pcpu_globals.ptr + PCPU_GLOBALS.off.nr_populated) >> 2;
  I32[g] = I32[g]! - nr;
}

/*** mm/percpu-vm.c: chunks in the vmalloc area ***/

/**
 * pcpu_get_pages (v4.19): the page array used while [de]populating (an int32
 * struct page pointer per page of every unit), allocated on first use.
 * pcpu_alloc_mutex held.
 */
function pcpu_get_pages(): number {
  lockdep_assert_held(pcpu_alloc_mutex.ptr, "pcpu_alloc_mutex");
  const p = (pcpu_globals.ptr + PCPU_GLOBALS.off.pages) >> 2;
  if (!I32[p]) I32[p] = kzalloc(pcpu_nr_units * pcpu_unit_pages * 4, GFP_KERNEL);
  return I32[p]!;
}

/** Arena address of entry `idx` of the page array. */
function page_slot(pages: number, idx: number): number {
  return pages + 4 * idx;
}

/** pcpu_free_pages (v4.19): free the pages of `pageStart..pageEnd-1` noted in `pages`. */
function pcpu_free_pages(pages: number, pageStart: number, pageEnd: number): void {
  for (const cpu of for_each_possible_cpu())
    for (let i = pageStart; i < pageEnd; i++) {
      const page = I32[page_slot(pages, pcpu_page_idx(cpu, i)) >> 2]!;
      if (page) __free_page(page);
    }
}

/** pcpu_alloc_pages (v4.19): a page for `pageStart..pageEnd-1` of every unit; 0 or -ENOMEM (nothing kept). */
function pcpu_alloc_pages(pages: number, pageStart: number, pageEnd: number, gfp: number): number {
  gfp |= __GFP_HIGHMEM;
  const cpus = for_each_possible_cpu();
  for (const cpu of cpus)
    for (let i = pageStart; i < pageEnd; i++) {
      const page = alloc_page(gfp);
      I32[page_slot(pages, pcpu_page_idx(cpu, i)) >> 2] = page;
      if (!page) {
        /* err: free what this CPU and the ones before it got */
        for (let j = i - 1; j >= pageStart; j--) __free_page(I32[page_slot(pages, pcpu_page_idx(cpu, j)) >> 2]!);
        for (const tcpu of cpus) {
          if (tcpu === cpu) break;
          for (let j = pageStart; j < pageEnd; j++) __free_page(I32[page_slot(pages, pcpu_page_idx(tcpu, j)) >> 2]!);
        }
        return -ENOMEM;
      }
    }
  return 0;
}

/**
 * pcpu_unmap_pages (v4.19): note in `pages` the pages behind
 * `pageStart..pageEnd-1` of every unit and unmap them (no TLB flush).
 */
function pcpu_unmap_pages(chunk: number, pages: number, pageStart: number, pageEnd: number): void {
  for (const cpu of for_each_possible_cpu()) {
    for (let i = pageStart; i < pageEnd; i++) {
      const page = vmalloc_to_page(pcpu_chunk_addr(chunk, cpu, i));
      if (!page) reportBug("WARN", `WARNING: CPU: ${smp_processor_id()} at mm/percpu-vm.c pcpu_unmap_pages: !page`);
      I32[page_slot(pages, pcpu_page_idx(cpu, i)) >> 2] = page;
    }
    unmap_kernel_range_noflush(pcpu_chunk_addr(chunk, cpu, pageStart), (pageEnd - pageStart) << PAGE_SHIFT);
  }
}

/** pcpu_post_unmap_tlb_flush (v4.19): one flush over every unit's range. */
function pcpu_post_unmap_tlb_flush(chunk: number, pageStart: number, pageEnd: number): void {
  flush_tlb_kernel_range(pcpu_chunk_addr(chunk, 0, pageStart), pcpu_chunk_addr(chunk, pcpu_nr_units - 1, pageEnd));
}

/**
 * pcpu_map_pages (v4.19): map the pages in `pages` at `pageStart..pageEnd-1`
 * of every unit and point each one's struct page at the chunk; 0 or the
 * error (every unit mapped so far is unmapped again).
 */
function pcpu_map_pages(chunk: number, pages: number, pageStart: number, pageEnd: number): number {
  const cpus = for_each_possible_cpu();
  for (const cpu of cpus) {
    const err = map_kernel_range_noflush(
      pcpu_chunk_addr(chunk, cpu, pageStart),
      (pageEnd - pageStart) << PAGE_SHIFT,
      PAGE_KERNEL,
      page_slot(pages, pcpu_page_idx(cpu, pageStart)),
    );
    if (err < 0) {
      for (const tcpu of cpus) {
        if (tcpu === cpu) break;
        unmap_kernel_range_noflush(pcpu_chunk_addr(chunk, tcpu, pageStart), (pageEnd - pageStart) << PAGE_SHIFT);
      }
      pcpu_post_unmap_tlb_flush(chunk, pageStart, pageEnd);
      return err;
    }
    for (let i = pageStart; i < pageEnd; i++)
      pcpu_set_page_chunk(I32[page_slot(pages, pcpu_page_idx(cpu, i)) >> 2]!, chunk);
  }
  return 0;
}

/**
 * pcpu_populate_chunk (v4.19): back pages `pageStart..pageEnd-1` of every
 * unit. arm64's flush_cache_vmap after the mapping is empty. 0 or -ENOMEM.
 * pcpu_alloc_mutex held.
 */
function pcpu_populate_chunk(chunk: number, pageStart: number, pageEnd: number, gfp: number): number {
  const pages = pcpu_get_pages();
  if (!pages) return -ENOMEM;
  if (pcpu_alloc_pages(pages, pageStart, pageEnd, gfp)) return -ENOMEM;
  if (pcpu_map_pages(chunk, pages, pageStart, pageEnd)) {
    pcpu_free_pages(pages, pageStart, pageEnd);
    return -ENOMEM;
  }
  return 0;
}

/**
 * pcpu_depopulate_chunk (v4.19): unmap and free pages
 * `pageStart..pageEnd-1` of every unit. No TLB flush: the chunk is being
 * destroyed, and vmalloc flushes its range lazily (as the kernel says).
 * pcpu_alloc_mutex held.
 */
function pcpu_depopulate_chunk(chunk: number, pageStart: number, pageEnd: number): void {
  const pages = pcpu_get_pages();
  if (!pages) throw new KernelBug("kernel BUG at mm/percpu-vm.c: pcpu_depopulate_chunk: !pages");
  pcpu_unmap_pages(chunk, pages, pageStart, pageEnd);
  pcpu_free_pages(pages, pageStart, pageEnd);
}

/** pcpu_create_chunk (v4.19): a chunk backed by a fresh vmalloc area of every unit, or 0. */
function pcpu_create_chunk(gfp: number): number {
  const chunk = pcpu_alloc_chunk(gfp);
  if (!chunk) return 0;
  const vms = pcpu_get_vm_areas([0], [pcpu_nr_units * pcpu_unit_size], 1, pcpu_atom_size);
  if (!vms) {
    pcpu_free_chunk(chunk);
    return 0;
  }
  I32[(chunk + C.data) >> 2] = vms;
  /* chunk->base_addr = vms[0]->addr - pcpu_group_offsets[0] */
  F64[(chunk + C.base_addr) >> 3] = vm_addr(I32[vms >> 2]!);
  return chunk;
}

/** pcpu_destroy_chunk (v4.19): give the vmalloc area and the chunk back. */
function pcpu_destroy_chunk(chunk: number): void {
  if (!chunk) return;
  const vms = I32[(chunk + C.data) >> 2]!;
  if (vms) pcpu_free_vm_areas(vms, 1);
  pcpu_free_chunk(chunk);
}

/*** mm/percpu.c: the allocator proper ***/

/**
 * pcpu_chunk_addr_search (v4.19): the chunk serving percpu address `addr`,
 * through this CPU's copy (its unit is populated exactly when unit 0 is).
 */
function pcpu_chunk_addr_search(addr: number): number {
  const page = vmalloc_to_page(addr + pcpu_unit_offsets(smp_processor_id()));
  return page ? pcpu_get_page_chunk(page) : 0;
}

const ENOMEM = 12;
/** A zero-filled source for pcpu_alloc's per-unit memset. */
const zeroes = new Uint8Array(PCPU_MIN_UNIT_SIZE);

/**
 * pcpu_alloc (v4.19), the non-atomic path (GFP_KERNEL): find or create a
 * chunk with room, take the area, populate its pages, clear every unit's
 * copy. Returns the percpu pointer (the kaddr of unit 0's copy), or 0.
 */
function pcpu_alloc(size: number, align: number): number {
  const pcpu_gfp = GFP_KERNEL;

  /*
   * There is now a minimum allocation size of PCPU_MIN_ALLOC_SIZE, therefore
   * alignment must be a minimum of that many bytes. An allocation may have
   * internal fragmentation from rounding up.
   */
  if (align < PCPU_MIN_ALLOC_SIZE) align = PCPU_MIN_ALLOC_SIZE;
  size = ALIGN(size, PCPU_MIN_ALLOC_SIZE);
  const bits = size >> PCPU_MIN_ALLOC_SHIFT;
  const bit_align = align >> PCPU_MIN_ALLOC_SHIFT;

  if (!size || size > PCPU_MIN_UNIT_SIZE || align > PAGE_SIZE || (align & (align - 1)) !== 0) {
    reportBug(
      "WARN",
      `WARNING: CPU: ${smp_processor_id()} at mm/percpu.c pcpu_alloc: illegal size (${size}) or align (${align}) for percpu allocation`,
    );
    return 0;
  }

  mutex_lock(pcpu_alloc_mutex.ptr);
  let flags = spin_lock_irqsave(pcpu_lock.ptr);
  let chunk = 0;
  let off = -1;
  let err = "";

  /* restart: */
  search: for (;;) {
    for (let slot = pcpu_size_to_slot(size); slot < pcpu_nr_slots; slot++) {
      const head = slot_head(slot);
      for (let e = list_next(head), next: number; e !== head; e = next) {
        next = list_next(e);
        const c = e - C.list;
        const bitOff = pcpu_find_block_fit(c, bits, bit_align);
        if (bitOff < 0) continue;
        chunk = c;
        off = pcpu_alloc_area(c, bits, bitOff);
        break search;
      }
    }
    spin_unlock_irqrestore(pcpu_lock.ptr, flags);

    /*
     * No space left. Create a new chunk. We don't want multiple tasks to
     * create chunks simultaneously; serialization and concurrent
     * allocation is protected by pcpu_alloc_mutex.
     */
    if (list_empty(slot_head(pcpu_nr_slots - 1))) {
      const c = pcpu_create_chunk(pcpu_gfp);
      if (!c) {
        err = "failed to allocate new chunk";
        break;
      }
      flags = spin_lock_irqsave(pcpu_lock.ptr);
      pcpu_chunk_relocate(c, -1);
    } else {
      flags = spin_lock_irqsave(pcpu_lock.ptr);
    }
  }

  if (chunk) {
    /* area_found: */
    spin_unlock_irqrestore(pcpu_lock.ptr, flags);

    /* populate if not all pages are already there */
    const pageStart = off >> PAGE_SHIFT;
    const pageEnd = (off + size + PAGE_SIZE - 1) >> PAGE_SHIFT;
    const populated = chunk + C.populated;
    for (let rs = find_next_zero_bit(populated, pageEnd, pageStart); rs < pageEnd; ) {
      const re = find_next_bit(populated, pageEnd, rs + 1);
      const ret = pcpu_populate_chunk(chunk, rs, re, pcpu_gfp);
      flags = spin_lock_irqsave(pcpu_lock.ptr);
      if (ret) {
        pcpu_free_area(chunk, off);
        spin_unlock_irqrestore(pcpu_lock.ptr, flags);
        err = "failed to populate";
        chunk = 0;
        break;
      }
      pcpu_chunk_populated(chunk, rs, re);
      spin_unlock_irqrestore(pcpu_lock.ptr, flags);
      rs = find_next_zero_bit(populated, pageEnd, re);
    }
  }
  mutex_unlock(pcpu_alloc_mutex.ptr);

  if (!chunk) {
    /* fail: */
    const wl = (pcpu_globals.ptr + PCPU_GLOBALS.off.warn_limit) >> 2;
    sched_point(SP_ATOMIC);
    const left = Atomics.sub(I32, wl, 1);
    if (left > 0)
      reportBug(
        "WARN",
        `percpu: allocation failed, size=${size} align=${align} atomic=0, ${err}` +
          (left === 1 ? "\npercpu: limit reached, disable warning" : ""),
      );
    return 0;
  }

  /* clear the areas and return address relative to base address */
  for (const cpu of for_each_possible_cpu()) {
    const r = mmuWrite(pcpu_chunk_addr(chunk, cpu, 0) + off, zeroes.subarray(0, size));
    if (isFault(r)) throw new KernelBug(`pcpu_alloc: clearing CPU${cpu}'s copy faulted (reported above)`);
  }
  return F64[(chunk + C.base_addr) >> 3]! + off;
}

/**
 * __alloc_percpu (v4.19): `size` bytes aligned to `align` (≤ PAGE_SIZE) in
 * every possible CPU's unit, zeroed; may sleep. The percpu pointer (the kaddr
 * of CPU 0's copy; CPU i's is i × PCPU_MIN_UNIT_SIZE further), or 0.
 */
export function __alloc_percpu(size: number, align: number): number {
  return pcpu_alloc(size, align);
}

/**
 * pcpu_balance_workfn (v4.19), the part that reaps: every wholly free chunk
 * but the first is depopulated and destroyed. Runs in a kworker.
 */
function pcpu_balance_workfn(_work: number): void {
  const free_head = slot_head(pcpu_nr_slots - 1);
  const to_free: number[] = [];

  /*
   * There's no reason to keep around multiple unused chunks and VM areas can
   * be scarce. Destroy all free chunks except for one.
   */
  mutex_lock(pcpu_alloc_mutex.ptr);
  spin_lock_irq(pcpu_lock.ptr);
  const first = list_next(free_head);
  for (let e = first, next: number; e !== free_head; e = next) {
    next = list_next(e);
    /* spare the first one */
    if (e === first) continue;
    // list_move(&chunk->list, &to_free): the kernel's local to_free list is this array.
    list_del_init(e);
    to_free.push(e - C.list);
  }
  spin_unlock_irq(pcpu_lock.ptr);

  for (const chunk of to_free) {
    const populated = chunk + C.populated;
    for (let rs = find_next_bit(populated, pcpu_unit_pages, 0); rs < pcpu_unit_pages; ) {
      const re = find_next_zero_bit(populated, pcpu_unit_pages, rs + 1);
      pcpu_depopulate_chunk(chunk, rs, re);
      spin_lock_irq(pcpu_lock.ptr);
      pcpu_chunk_depopulated(chunk, rs, re);
      spin_unlock_irq(pcpu_lock.ptr);
      rs = find_next_bit(populated, pcpu_unit_pages, re);
    }
    pcpu_destroy_chunk(chunk);
    cond_resched();
  }
  mutex_unlock(pcpu_alloc_mutex.ptr);
}
const PCPU_BALANCE_WORKFN = defineKernelFn("pcpu_balance_workfn", pcpu_balance_workfn);

/** DECLARE_WORK(pcpu_balance_work, pcpu_balance_workfn) (v4.19). */
const pcpu_balance_work = DEFINE_GLOBAL("pcpu_balance_work", WORK_STRUCT);
staticInit(() => INIT_WORK(pcpu_balance_work.ptr, PCPU_BALANCE_WORKFN));

/** pcpu_schedule_balance_work (v4.19): async is always enabled here (percpu_enable_async has run). */
function pcpu_schedule_balance_work(): void {
  schedule_work(pcpu_balance_work.ptr);
}

/**
 * free_percpu (v4.19): free the percpu area `ptr` (0 is a no-op). A chunk
 * that became wholly free while another free chunk exists wakes the reaper.
 */
export function free_percpu(ptr: number): void {
  if (!ptr) return;
  const addr = ptr;
  const flags = spin_lock_irqsave(pcpu_lock.ptr);
  const chunk = pcpu_chunk_addr_search(addr);
  if (!chunk) {
    spin_unlock_irqrestore(pcpu_lock.ptr, flags);
    throw new KernelBug(`free_percpu: no percpu chunk serves 0x${addr.toString(16)}`);
  }
  const off = addr - F64[(chunk + C.base_addr) >> 3]!;
  pcpu_free_area(chunk, off);

  /* if there are more than one fully free chunks, wake up grim reaper */
  let need_balance = false;
  if (I32[(chunk + C.free_bytes) >> 2] === pcpu_unit_size) {
    const head = slot_head(pcpu_nr_slots - 1);
    for (let e = list_next(head); e !== head; e = list_next(e))
      if (e - C.list !== chunk) {
        need_balance = true;
        break;
      }
  }
  spin_unlock_irqrestore(pcpu_lock.ptr, flags);
  if (need_balance) pcpu_schedule_balance_work();
}

/**
 * pcpu_nr_pages (v4.19): pages backing percpu chunks, every unit counted
 * (meminfo's Percpu; a term of the checker's page census). A plain read:
 * exact while the CPUs are parked.
 */
export function pcpu_nr_pages(): number {
  return I32[(pcpu_globals.ptr + PCPU_GLOBALS.off.nr_populated) >> 2]! * pcpu_nr_units;
}

/*** Harness ***/

/** The percpu chunks, and how many of them hold allocations: a walk of every slot list, CPUs parked. */
export function pcpuChunkCensus(): { chunks: number; inUse: number } {
  let chunks = 0;
  let inUse = 0;
  for (let slot = 0; slot < pcpu_nr_slots; slot++) {
    const head = slot_head(slot);
    for (let e = list_next(head); e !== head; e = list_next(e)) {
      chunks++;
      if (I32[(e - C.list + C.free_bytes) >> 2] !== pcpu_unit_size) inUse++;
    }
  }
  return { chunks, inUse };
}
