/**
 * The per-CPU kva allocator of mm/vmalloc.c (v5.10, the section "Per cpu kva
 * allocator"): vm_map_ram/vm_unmap_ram carve small mappings out of per-CPU
 * blocks of VMAP_BLOCK_SIZE, each block one vmap_area from alloc_vmap_area,
 * so a small map costs no trip through the free tree.
 *
 * As in v4.19 a block keeps no bitmap: `free` counts the pages not yet handed
 * out, always the block's tail, so a block is carved front to back by
 * `VMAP_BBMAP_BITS - free`; `dirty` counts the pages given back (unmapped,
 * TLB flush pending) and dirty_min/dirty_max bound them for vm_unmap_aliases.
 * A block whose pages are all dirty goes to the lazy purge as a whole.
 *
 * What v5.10 changed: the blocks are indexed by addr_to_vb_idx in the
 * global XArray vmap_blocks (v5.9 replaced the radix tree and its preload):
 * vb_free's xa_load runs under RCU without a lock, new_vmap_block's
 * xa_insert can fail (its block and area are given back), and
 * vm_unmap_aliases is _vm_unmap_aliases(ULONG_MAX, 0, 0).
 *
 * Locks: vbq->lock (each CPU's queue: its free list, whose readers walk
 * under RCU), vb->lock (a block's counters), vmap_blocks.xa_lock (the XArray's
 * stores); the order is vb->lock, then vbq->lock. Blocks are kmalloc'ed and
 * freed with kfree_rcu, so a reader standing on a block removed from its
 * list can still read it.
 */
import { DEFINE_PER_CPU, F64, I32, theArena } from "../../shared/arena.js";
import { PAGE_SHIFT, PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { formatKaddr, type Layout } from "../../shared/layouts.js";
import {
  EV_VM_MAP_RAM,
  EV_VM_MAP_RAM_RET,
  EV_VM_UNMAP_ALIASES,
  EV_VM_UNMAP_RAM,
  trace_event,
} from "../../shared/events.js";
import { KernelBug, reportBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { READ_ONCE, WRITE_ONCE } from "../../locks/atomic.js";
import { onSetCurrentCpu, per_cpu_ptr, smp_processor_id, this_cpu_ptr } from "../../shared/smp.js";
import { for_each_possible_cpu, get_cpu, put_cpu } from "../../percpu/percpu.js";
import { SPINLOCK_T, spin_lock, spin_lock_init, spin_unlock } from "../../locks/spinlock.js";
import { mutex_lock, mutex_unlock } from "../../locks/mutex.js";
import { might_sleep } from "../../locks/might_sleep.js";
import {
  INIT_LIST_HEAD,
  LIST_HEAD,
  list_add_tail,
  list_add_tail_rcu,
  list_del,
  list_del_rcu,
  list_next,
  list_next_rcu,
} from "../../lib/list.js";
import { RCU_HEAD, rcu_read_lock, rcu_read_unlock } from "../../rcu/rcupdate.js";
import { kfree_rcu } from "../../rcu/tree.js";
import {
  TF_VM_MAP_RAM,
  TF_VM_UNMAP_ALIASES,
  TF_VM_UNMAP_RAM,
  trace_graph_entry,
  trace_graph_return,
  tracing,
} from "../../trace/trace.js";
import { GFP_KERNEL, GFP_RECLAIM_MASK } from "../gfp.js";
import { kfree, kmalloc } from "../slab.js";
import { PAGE_KERNEL, kernel_pte_lookup } from "../pgtable.js";
import { flush_tlb_kernel_range } from "../tlbflush.js";
import { DEFINE_XARRAY, xa_erase, xa_for_each, xa_insert, xa_load } from "../xarray.js";
import {
  VMAP_AREA,
  __purge_vmap_area_lazy,
  alloc_vmap_area,
  find_vmap_area,
  free_unmap_vmap_area,
  free_vmap_area,
  free_vmap_area_noflush,
  map_kernel_range,
  registerVmapBlock,
  unmap_kernel_range_noflush,
  vmap_initialized,
  vmap_purge_lock,
} from "./vmalloc.js";
import { roundup_pow_of_two } from "../../lib/log2.js";

/** include/uapi/asm-generic/errno-base.h */
const ENOMEM = 12;

/*** Geometry: v5.10's macros, for the configured word size and CPU count ***/

/** VMAP_BBMAP_BITS_MAX (v5.10): at most 1024 pages (4 MiB) per block. */
export const VMAP_BBMAP_BITS_MAX = 1024;

/** The per-CPU allocator's sizes for one machine shape (see {@link vmapBlockGeometry}). */
export interface VmapBlockGeometry {
  /** VMAP_MAX_ALLOC = BITS_PER_LONG: the largest vm_map_ram count served by a block. */
  readonly maxAlloc: number;
  /** VMAP_BBMAP_BITS: pages per block. */
  readonly bbmapBits: number;
  /** VMAP_BLOCK_SIZE = VMAP_BBMAP_BITS * PAGE_SIZE. */
  readonly blockSize: number;
}

/**
 * The v5.10 macros (unchanged since v4.19) evaluated for `layout` with
 * NR_CPUS = `nrCpus` (vmsim builds its kernel for the machine):
 *
 *   VMALLOC_SPACE   = 128 MiB (32-bit) or 128 GiB (64-bit); VMALLOC_PAGES = VMALLOC_SPACE / PAGE_SIZE
 *   VMAP_MAX_ALLOC  = BITS_PER_LONG;  VMAP_BBMAP_BITS_MIN = 2 * VMAP_MAX_ALLOC
 *   VMAP_BBMAP_BITS = min(1024, max(MIN, VMALLOC_PAGES / roundup_pow_of_two(NR_CPUS) / 16))
 *
 * arm64: 64 pages at most per vm_map_ram block allocation, 1024-page (4 MiB)
 * blocks for any CPU count up to 64; arm32: 32 pages, blocks of 4 MiB down to
 * 256 KiB as CPUs grow.
 */
export function vmapBlockGeometry(layout: Layout, nrCpus: number): VmapBlockGeometry {
  const bitsPerLong = layout.vaBits > 32 ? 64 : 32;
  const vmallocSpace = bitsPerLong === 32 ? 128 * 2 ** 20 : 128 * 2 ** 30;
  const maxAlloc = bitsPerLong;
  const pagesPerCpu = Math.floor(vmallocSpace / PAGE_SIZE / roundup_pow_of_two(nrCpus) / 16);
  const bbmapBits = Math.min(VMAP_BBMAP_BITS_MAX, Math.max(maxAlloc * 2, pagesPerCpu));
  return { maxAlloc, bbmapBits, blockSize: bbmapBits * PAGE_SIZE };
}

/** VMAP_MAX_ALLOC (v5.10) for this machine: vm_map_ram counts up to it come from a block. */
export let VMAP_MAX_ALLOC = 0;
/** VMAP_BBMAP_BITS (v5.10) for this machine: pages per block. */
export let VMAP_BBMAP_BITS = 0;
/** VMAP_BLOCK_SIZE (v5.10) for this machine, in bytes. */
export let VMAP_BLOCK_SIZE = 0;

/* The layout and the offsets this file reads on its hot paths, cached per thread (immutable config). */
let layout: Layout;
let VMALLOC_START = 0;
let VMALLOC_END = 0;
/** VMALLOC_START & ~(VMAP_BLOCK_SIZE - 1): addr_to_vb_idx's origin. */
let VB_IDX_ORIGIN = 0;
let VA_START = 0;
let VA_END = 0;

/* Known race (src/shared/backport.ts): off, the counts are plain as in v5.10; on, 7f48121e9fa8's markings. */
let backportVbCountersReadOnce = false;

onSetCurrentCpu(() => {
  const config = theArena().config;
  backportVbCountersReadOnce = config.backport.includes("vb-counters-read-once");
  layout = layoutOf(config);
  const g = vmapBlockGeometry(layout, config.cpus);
  VMAP_MAX_ALLOC = g.maxAlloc;
  VMAP_BBMAP_BITS = g.bbmapBits;
  VMAP_BLOCK_SIZE = g.blockSize;
  VMALLOC_START = layout.vmallocStart;
  VMALLOC_END = layout.vmallocEnd;
  VB_IDX_ORIGIN = VMALLOC_START - (VMALLOC_START % VMAP_BLOCK_SIZE);
  // Read here, not at module evaluation: vmalloc.ts and this file import each other.
  VA_START = VMAP_AREA.off.va_start;
  VA_END = VMAP_AREA.off.va_end;
});

/*** Structures ***/

/** struct vmap_block_queue (v5.10): a CPU's blocks that still have free pages. */
export const VMAP_BLOCK_QUEUE = defineStruct("vmap_block_queue", [
  { name: "lock", type: SPINLOCK_T },
  /** Blocks with free > 0, oldest first; updated under `lock`, walked under rcu_read_lock. */
  { name: "free", type: LIST_HEAD, guard: "vmap_block_queue.lock" },
]);
const Q = VMAP_BLOCK_QUEUE.off;

/** struct vmap_block (v5.10). */
export const VMAP_BLOCK = defineStruct("vmap_block", [
  { name: "lock", type: SPINLOCK_T },
  { name: "va", type: "ptr", guard: "init" },
  /** Pages not yet handed out: the block's last `free` pages. */
  { name: "free", type: "i32", guard: "vmap_block.lock" },
  /** Pages handed out and given back again (unmapped, not yet flushed). */
  { name: "dirty", type: "i32", guard: "vmap_block.lock" },
  /** Page range [dirty_min, dirty_max) holding every dirty page; VMAP_BBMAP_BITS and 0 while none is. */
  { name: "dirty_min", type: "i32", guard: "vmap_block.lock" },
  { name: "dirty_max", type: "i32", guard: "vmap_block.lock" },
  /** On its CPU's vbq->free while free > 0. */
  { name: "free_list", type: LIST_HEAD, guard: "vmap_block_queue.lock" },
  { name: "rcu_head", type: RCU_HEAD, guard: "rcu_data.nocb_lock" },
  /** On purge_fragmented_blocks' private list, owned by the purging CPU. */
  { name: "purge", type: LIST_HEAD, guard: "owner" },
]);
const B = VMAP_BLOCK.off;

/** Queue of free and dirty vmap blocks, for allocation and flushing purposes (v5.10). */
export const vmap_block_queue = DEFINE_PER_CPU("5.10:vmap_block_queue", VMAP_BLOCK_QUEUE);

/**
 * XArray of vmap blocks, indexed by address, to quickly find a vmap block in
 * the free path (v5.10's DEFINE_XARRAY(vmap_blocks)).
 */
export const vmap_blocks = DEFINE_XARRAY("5.10:vmap_blocks");

/**
 * purge_fragmented_blocks' on-stack LIST_HEAD(purge). A CPU runs one task, so
 * its kernel stack is this per-CPU head; callers hold vmap_purge_lock anyway.
 */
const vmap_block_purge = DEFINE_PER_CPU("5.10:vmap_block_purge", LIST_HEAD);

/** get_order (include/asm-generic/getorder.h): the smallest order whose block holds `size` bytes. */
function get_order(size: number): number {
  return 32 - Math.clz32((size - 1) >>> PAGE_SHIFT);
}

function vb_va_start(vb: number): number {
  return F64[(I32[(vb + B.va) >> 2]! + VA_START) >> 3]!;
}

/** addr_to_vb_idx (v5.10): the block index of kaddr `addr`. */
function addr_to_vb_idx(addr: number): number {
  return Math.floor((addr - VB_IDX_ORIGIN) / VMAP_BLOCK_SIZE);
}

/** vmap_block_vaddr (v5.10): the kaddr `pagesOff` pages into the block at `vaStart`. */
function vmap_block_vaddr(vaStart: number, pagesOff: number): number {
  const addr = vaStart + pagesOff * PAGE_SIZE;
  if (addr_to_vb_idx(addr) !== addr_to_vb_idx(vaStart))
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: vmap_block_vaddr(${formatKaddr(layout, vaStart)}, ${pagesOff})`);
  return addr;
}

/*** Blocks ***/

/**
 * new_vmap_block (v5.10): allocate a block, occupy its first 2^order pages,
 * index it in vmap_blocks and queue it on this CPU. Returns the kaddr of
 * those pages or a negative errno.
 */
function new_vmap_block(order: number, gfpMask: number): number {
  const node = 0; // numa_node_id(): vmsim has one node
  const vb = kmalloc(VMAP_BLOCK.size, gfpMask & GFP_RECLAIM_MASK);
  if (vb === 0) return -ENOMEM;

  const va = alloc_vmap_area(VMAP_BLOCK_SIZE, VMAP_BLOCK_SIZE, VMALLOC_START, VMALLOC_END, node, gfpMask);
  if (va < 0) {
    kfree(vb);
    return va;
  }

  const va_start = F64[(va + VA_START) >> 3]!;
  const vaddr = vmap_block_vaddr(va_start, 0);
  spin_lock_init(vb + B.lock, "vmap_block.lock");
  I32[(vb + B.va) >> 2] = va;
  /* At least something should be left free */
  if (VMAP_BBMAP_BITS <= 1 << order)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: new_vmap_block: VMAP_BBMAP_BITS <= 1 << ${order}`);
  I32[(vb + B.free) >> 2] = VMAP_BBMAP_BITS - (1 << order);
  I32[(vb + B.dirty) >> 2] = 0;
  I32[(vb + B.dirty_min) >> 2] = VMAP_BBMAP_BITS;
  I32[(vb + B.dirty_max) >> 2] = 0;
  INIT_LIST_HEAD(vb + B.free_list);

  const vb_idx = addr_to_vb_idx(va_start);
  const err = xa_insert(vmap_blocks.ptr, vb_idx, vb, gfpMask);
  if (err) {
    kfree(vb);
    free_vmap_area(va);
    return err;
  }

  // get_cpu_var(vmap_block_queue): this CPU's queue, preemption off.
  get_cpu();
  const vbq = this_cpu_ptr(vmap_block_queue);
  spin_lock(vbq + Q.lock);
  list_add_tail_rcu(vb + B.free_list, vbq + Q.free);
  spin_unlock(vbq + Q.lock);
  put_cpu();

  return vaddr;
}

/** free_vmap_block (v5.10): take `vb` out of vmap_blocks, hand its area to the lazy purge, free it after a grace period. */
function free_vmap_block(vb: number): void {
  const va = I32[(vb + B.va) >> 2]!;
  const tmp = xa_erase(vmap_blocks.ptr, addr_to_vb_idx(F64[(va + VA_START) >> 3]!));
  if (tmp !== vb)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: free_vmap_block: vmap_blocks holds ${tmp} for ${vb}`);

  free_vmap_area_noflush(va);
  kfree_rcu(vb, B.rcu_head);
}

/** A block with nothing in use (every page it handed out came back), not yet claimed by a purge. */
function vb_fragmented(free: number, dirty: number): boolean {
  return free + dirty === VMAP_BBMAP_BITS && dirty !== VMAP_BBMAP_BITS;
}

/**
 * purge_fragmented_blocks (v5.10): free CPU `cpu`'s blocks that have nothing
 * left to hand out and nothing in use (free + dirty == VMAP_BBMAP_BITS).
 */
function purge_fragmented_blocks(cpu: number): void {
  const purge = this_cpu_ptr(vmap_block_purge);
  INIT_LIST_HEAD(purge);
  const vbq = per_cpu_ptr(vmap_block_queue, cpu);
  const head = vbq + Q.free;

  rcu_read_lock();
  for (let p = list_next_rcu(head); p !== head; p = list_next_rcu(p)) {
    const vb = p - B.free_list;
    // The kernel's unlocked pre-check (int reads cannot tear); it is repeated under vb->lock.
    // backport "vb-counters-read-once": READ_ONCE, as 7f48121e9fa8 marks this unlocked test.
    const free = backportVbCountersReadOnce ? READ_ONCE(vb + B.free) : I32[(vb + B.free) >> 2]!;
    const dirty = backportVbCountersReadOnce ? READ_ONCE(vb + B.dirty) : I32[(vb + B.dirty) >> 2]!;
    if (!vb_fragmented(free, dirty)) continue;

    spin_lock(vb + B.lock);
    if (vb_fragmented(I32[(vb + B.free) >> 2]!, I32[(vb + B.dirty) >> 2]!)) {
      if (backportVbCountersReadOnce) {
        WRITE_ONCE(vb + B.free, 0);
        WRITE_ONCE(vb + B.dirty, VMAP_BBMAP_BITS);
      } else {
        I32[(vb + B.free) >> 2] = 0; // prevent further allocs after releasing lock
        I32[(vb + B.dirty) >> 2] = VMAP_BBMAP_BITS; // prevent purging it again
      }
      I32[(vb + B.dirty_min) >> 2] = 0;
      I32[(vb + B.dirty_max) >> 2] = VMAP_BBMAP_BITS;
      spin_lock(vbq + Q.lock);
      list_del_rcu(vb + B.free_list);
      spin_unlock(vbq + Q.lock);
      spin_unlock(vb + B.lock);
      list_add_tail(vb + B.purge, purge);
    } else spin_unlock(vb + B.lock);
  }
  rcu_read_unlock();

  for (let p = list_next(purge), n = list_next(p); p !== purge; p = n, n = list_next(p)) {
    list_del(p);
    free_vmap_block(p - B.purge);
  }
}

/** purge_fragmented_blocks_allcpus (v5.10): vmalloc.ts's purge_vmap_area_lazy and _vm_unmap_aliases call it. */
export function purge_fragmented_blocks_allcpus(): void {
  for (const cpu of for_each_possible_cpu()) purge_fragmented_blocks(cpu);
}

/**
 * vb_alloc (v5.10): `size` bytes (a multiple of the page size, at most
 * VMAP_MAX_ALLOC pages; 2^get_order pages are taken) from the first block on
 * this CPU's queue that has room, else from a new block. Returns a kaddr, a
 * negative errno, or NULL (with a WARN) for size 0.
 */
function vb_alloc(size: number, gfpMask: number): number {
  if (size % PAGE_SIZE !== 0) throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_alloc: offset_in_page(${size})`);
  if (size > PAGE_SIZE * VMAP_MAX_ALLOC)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_alloc: size ${size} > PAGE_SIZE*VMAP_MAX_ALLOC`);
  if (size === 0) {
    // get_order(0) is meaningless: the kernel warns and returns NULL.
    reportBug("WARN", `WARNING: CPU: ${smp_processor_id()} at mm/vmalloc.c vb_alloc: WARN_ON(size == 0)`);
    return 0;
  }
  const order = get_order(size);
  const pages = 1 << order;
  let vaddr = 0;

  rcu_read_lock();
  get_cpu();
  const vbq = this_cpu_ptr(vmap_block_queue);
  const head = vbq + Q.free;
  for (let p = list_next_rcu(head); p !== head; p = list_next_rcu(p)) {
    const vb = p - B.free_list;
    spin_lock(vb + B.lock);
    const free = I32[(vb + B.free) >> 2]!;
    if (free < pages) {
      spin_unlock(vb + B.lock);
      continue;
    }
    vaddr = vmap_block_vaddr(vb_va_start(vb), VMAP_BBMAP_BITS - free);
    if (backportVbCountersReadOnce) WRITE_ONCE(vb + B.free, free - pages);
    else I32[(vb + B.free) >> 2] = free - pages;
    if (free === pages) {
      spin_lock(vbq + Q.lock);
      list_del_rcu(vb + B.free_list);
      spin_unlock(vbq + Q.lock);
    }
    spin_unlock(vb + B.lock);
    break;
  }
  put_cpu();
  rcu_read_unlock();

  /* Allocate new block if nothing was found */
  if (vaddr === 0) vaddr = new_vmap_block(order, gfpMask);
  return vaddr;
}

/**
 * vb_free (v5.10): unmap `size` bytes at `addr` and mark their 2^order pages
 * dirty; a block that becomes all dirty is freed. The block is found with a
 * lockless xa_load. No TLB flush (debug_pagealloc is off): the stale
 * translations go at the next vm_unmap_aliases or lazy purge.
 */
function vb_free(addr: number, size: number): void {
  if (size % PAGE_SIZE !== 0) throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_free: offset_in_page(${size})`);
  if (size > PAGE_SIZE * VMAP_MAX_ALLOC)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_free: size ${size} > PAGE_SIZE*VMAP_MAX_ALLOC`);

  const order = get_order(size);
  const offset = Math.floor((addr % VMAP_BLOCK_SIZE) / PAGE_SIZE);
  const vb = xa_load(vmap_blocks.ptr, addr_to_vb_idx(addr));
  if (vb === 0)
    // The kernel goes on to spin_lock(&vb->lock) through NULL: an oops.
    throw new KernelBug(`Unable to handle kernel NULL pointer dereference in vb_free (${formatKaddr(layout, addr)})`);

  unmap_kernel_range_noflush(addr, size);

  spin_lock(vb + B.lock);

  /* Expand dirty range */
  const minIdx = (vb + B.dirty_min) >> 2;
  const maxIdx = (vb + B.dirty_max) >> 2;
  I32[minIdx] = Math.min(I32[minIdx]!, offset);
  I32[maxIdx] = Math.max(I32[maxIdx]!, offset + (1 << order));

  const dirty = I32[(vb + B.dirty) >> 2]! + (1 << order);
  if (backportVbCountersReadOnce) WRITE_ONCE(vb + B.dirty, dirty);
  else I32[(vb + B.dirty) >> 2] = dirty;
  if (dirty === VMAP_BBMAP_BITS) {
    if (I32[(vb + B.free) >> 2] !== 0)
      throw new KernelBug(
        `kernel BUG at mm/vmalloc.c: vb_free: block at ${formatKaddr(layout, vb_va_start(vb))} all dirty with free pages`,
      );
    spin_unlock(vb + B.lock);
    free_vmap_block(vb);
  } else spin_unlock(vb + B.lock);
}

/**
 * _vm_unmap_aliases (v5.10): flush [start, end) together with every lazily
 * unmapped vmap address — the dirty ranges of the blocks still on a free list
 * and the areas awaiting the lazy purge. `flush` forces the flush even when
 * nothing was dirty; pass Infinity for ULONG_MAX.
 */
function _vm_unmap_aliases(start: number, end: number, flush: boolean): void {
  if (I32[vmap_initialized.ptr >> 2] === 0) return;

  might_sleep();

  for (const cpu of for_each_possible_cpu()) {
    const head = per_cpu_ptr(vmap_block_queue, cpu) + Q.free;
    rcu_read_lock();
    for (let p = list_next_rcu(head); p !== head; p = list_next_rcu(p)) {
      const vb = p - B.free_list;
      spin_lock(vb + B.lock);
      if (I32[(vb + B.dirty) >> 2] !== 0) {
        const va_start = vb_va_start(vb);
        const s = va_start + I32[(vb + B.dirty_min) >> 2]! * PAGE_SIZE;
        const e = va_start + I32[(vb + B.dirty_max) >> 2]! * PAGE_SIZE;
        start = Math.min(s, start);
        end = Math.max(e, end);
        flush = true;
      }
      spin_unlock(vb + B.lock);
    }
    rcu_read_unlock();
  }

  mutex_lock(vmap_purge_lock.ptr);
  purge_fragmented_blocks_allcpus();
  if (!__purge_vmap_area_lazy(start, end) && flush) flush_tlb_kernel_range(start, end);
  mutex_unlock(vmap_purge_lock.ptr);
}

/**
 * vm_unmap_aliases (v5.10): unmap outstanding lazy aliases in the vmap layer,
 * so no CPU keeps a TLB entry aliasing a page the caller owns.
 */
export function vm_unmap_aliases(): void {
  trace_event(EV_VM_UNMAP_ALIASES, 0, 0);
  if (tracing) trace_graph_entry(TF_VM_UNMAP_ALIASES, 0, 0);
  _vm_unmap_aliases(Number.POSITIVE_INFINITY, 0, false);
  if (tracing) trace_graph_return(TF_VM_UNMAP_ALIASES, 0);
}

/*** vm_map_ram / vm_unmap_ram ***/

function bug_on(cond: boolean, what: string): void {
  if (cond) throw new KernelBug(`kernel BUG at mm/vmalloc.c: vm_unmap_ram: BUG_ON(${what})`);
}

/**
 * vm_unmap_ram (v5.10): unmap what vm_map_ram(`mem`, `count`) mapped (the
 * whole of it). A bad address is BUG().
 */
export function vm_unmap_ram(mem: number, count: number): void {
  const size = (count >>> 0) * PAGE_SIZE;
  const addr = mem;
  trace_event(EV_VM_UNMAP_RAM, mem, count);
  if (tracing) trace_graph_entry(TF_VM_UNMAP_RAM, mem, count);

  might_sleep();
  bug_on(!addr, "!addr");
  bug_on(addr < VMALLOC_START, "addr < VMALLOC_START");
  bug_on(addr > VMALLOC_END, "addr > VMALLOC_END");
  bug_on(addr % PAGE_SIZE !== 0, "!PAGE_ALIGNED(addr)");

  // debug_check_no_locks_freed has nothing to find: vmsim's locks live in kmalloc/static memory, never here.
  if (count >>> 0 <= VMAP_MAX_ALLOC) {
    vb_free(addr, size);
    if (tracing) trace_graph_return(TF_VM_UNMAP_RAM, 0);
    return;
  }

  const va = find_vmap_area(addr);
  bug_on(va === 0, "!va");
  free_unmap_vmap_area(va);
  if (tracing) trace_graph_return(TF_VM_UNMAP_RAM, 0);
}

/**
 * vm_map_ram (v5.10: no prot argument, PAGE_KERNEL): map `count` pages
 * (`pages`: arena address of an int32 array of struct page pointers) at one
 * kernel address. Up to VMAP_MAX_ALLOC pages come from this CPU's blocks,
 * more from alloc_vmap_area (a busy area with no vm_struct and no guard
 * page). Returns the kaddr, or 0 (NULL) on failure.
 */
export function vm_map_ram(pages: number, count: number, node: number): number {
  trace_event(EV_VM_MAP_RAM, count, 0);
  if (tracing) trace_graph_entry(TF_VM_MAP_RAM, count, 0);
  const size = (count >>> 0) * PAGE_SIZE;
  let addr: number;
  let mem: number;

  if (count >>> 0 <= VMAP_MAX_ALLOC) {
    mem = vb_alloc(size, GFP_KERNEL);
    if (mem < 0) {
      if (tracing) trace_graph_return(TF_VM_MAP_RAM, 0);
      return 0;
    }
    addr = mem;
  } else {
    const va = alloc_vmap_area(size, PAGE_SIZE, VMALLOC_START, VMALLOC_END, node, GFP_KERNEL);
    if (va < 0) {
      if (tracing) trace_graph_return(TF_VM_MAP_RAM, 0);
      return 0;
    }
    addr = F64[(va + VA_START) >> 3]!;
    mem = addr;
  }

  // vb_alloc's NULL for count 0 is not an ERR_PTR: map_kernel_range_noflush BUGs on the empty range (fixed in v6.9).
  if (map_kernel_range(addr, size, PAGE_KERNEL, pages) < 0) {
    vm_unmap_ram(mem, count);
    if (tracing) trace_graph_return(TF_VM_MAP_RAM, 0);
    return 0;
  }
  trace_event(EV_VM_MAP_RAM_RET, mem, count);
  if (tracing) trace_graph_return(TF_VM_MAP_RAM, mem);
  return mem;
}

/*** Boot ***/

/** vmalloc_init's per-CPU step for the vmap_block_queue of `cpu` (v5.10). */
function init_vmap_block_queue(cpu: number): void {
  const vbq = per_cpu_ptr(vmap_block_queue, cpu);
  spin_lock_init(vbq + Q.lock, "vmap_block_queue.lock");
  INIT_LIST_HEAD(vbq + Q.free);
}

registerVmapBlock({
  purge_fragmented_blocks_allcpus,
  init_vmap_block_queue,
  vm_map_ram,
  vm_unmap_ram,
  vm_unmap_aliases,
});

/*** Harness: introspection and invariants (read while the CPUs are parked) ***/

/** One block as {@link vmapBlocks} reports it. */
export interface VmapBlockInfo {
  /** kaddr of the block's first page. */
  readonly start: number;
  readonly free: number;
  readonly dirty: number;
  readonly dirtyMin: number;
  readonly dirtyMax: number;
  /** The CPU whose queue holds it, -1 when on none (no page left to hand out). */
  readonly cpu: number;
}

/** The CPUs whose vbq->free list holds each block. */
function queuedOn(): Map<number, number[]> {
  const on = new Map<number, number[]>();
  for (const cpu of for_each_possible_cpu()) {
    const head = per_cpu_ptr(vmap_block_queue, cpu) + Q.free;
    for (let p = list_next(head); p !== head; p = list_next(p)) {
      const vb = p - B.free_list;
      on.set(vb, [...(on.get(vb) ?? []), cpu]);
    }
  }
  return on;
}

/** Every block in vmap_blocks, in address (index) order. */
export function vmapBlocks(): VmapBlockInfo[] {
  const on = queuedOn();
  const out: VmapBlockInfo[] = [];
  xa_for_each(vmap_blocks.ptr, (_idx, vb) => {
    out.push({
      start: vb_va_start(vb),
      free: I32[(vb + B.free) >> 2]!,
      dirty: I32[(vb + B.dirty) >> 2]!,
      dirtyMin: I32[(vb + B.dirty_min) >> 2]!,
      dirtyMax: I32[(vb + B.dirty_max) >> 2]!,
      cpu: on.get(vb)?.[0] ?? -1,
    });
  });
  return out;
}

/**
 * The per-CPU allocator's invariants at a quiescent point: each block in
 * vmap_blocks sits at the index of its area's start; its area is one aligned
 * VMAP_BLOCK_SIZE with no vm_struct; its counters are consistent; it is on
 * exactly one queue iff it has free pages, and every queued block is in
 * vmap_blocks; the pages it has not handed out are unmapped. Returns the violations.
 */
export function checkVmapBlocks(): string[] {
  const errs: string[] = [];
  const on = queuedOn();
  const indexed = new Set<number>();
  xa_for_each(vmap_blocks.ptr, (idx, vb) => {
    indexed.add(vb);
    const va = I32[(vb + B.va) >> 2]!;
    const start = F64[(va + VA_START) >> 3]!;
    const at = `block ${formatKaddr(layout, start)}`;
    if (addr_to_vb_idx(start) !== idx) errs.push(`${at}: at index ${idx}, its vb_idx is ${addr_to_vb_idx(start)}`);
    if (start % VMAP_BLOCK_SIZE !== 0 || F64[(va + VA_END) >> 3]! - start !== VMAP_BLOCK_SIZE)
      errs.push(`${at}: area is not one aligned VMAP_BLOCK_SIZE (${VMAP_BLOCK_SIZE})`);
    if (I32[(va + VMAP_AREA.off.vm) >> 2]) errs.push(`${at}: its vmap_area has a vm_struct`);
    const free = I32[(vb + B.free) >> 2]!;
    const dirty = I32[(vb + B.dirty) >> 2]!;
    const dmin = I32[(vb + B.dirty_min) >> 2]!;
    const dmax = I32[(vb + B.dirty_max) >> 2]!;
    if (free < 0 || dirty < 0 || free + dirty > VMAP_BBMAP_BITS || dirty === VMAP_BBMAP_BITS)
      errs.push(`${at}: free ${free} dirty ${dirty} of ${VMAP_BBMAP_BITS}`);
    if (
      dirty === 0
        ? dmin !== VMAP_BBMAP_BITS || dmax !== 0
        : dmin < 0 || dmax > VMAP_BBMAP_BITS - free || dmax - dmin < dirty
    )
      errs.push(`${at}: dirty range [${dmin}, ${dmax}) does not fit dirty ${dirty} below free ${free}`);
    const cpus = on.get(vb) ?? [];
    if (cpus.length > 1) errs.push(`${at}: on the queues of CPUs ${cpus.join(", ")}`);
    if ((cpus.length === 1) !== free > 0) errs.push(`${at}: free ${free} but ${cpus.length ? "" : "not "}queued`);
    for (let i = VMAP_BBMAP_BITS - free; i < VMAP_BBMAP_BITS; i++)
      if (kernel_pte_lookup(start + i * PAGE_SIZE) !== 0) {
        errs.push(`${at}: page ${i} is mapped but was never handed out`);
        break;
      }
  });
  for (const vb of on.keys()) if (!indexed.has(vb)) errs.push(`queued block ${vb} is not in vmap_blocks`);
  return errs;
}
