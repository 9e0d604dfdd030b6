/**
 * The per-CPU kva allocator of mm/vmalloc.c (v6.12, the section "Per cpu kva
 * allocator"), in the kernel's order: vm_map_ram/vm_unmap_ram carve small
 * mappings out of per-CPU blocks of VMAP_BLOCK_SIZE, each block one
 * vmap_area (flags VMAP_RAM | VMAP_BLOCK) from alloc_vmap_area.
 *
 * What v6.12 changed against v4.19 (src/mm/v4.19/vmap_block.ts):
 * - the block index is no longer one global tree: every vmap_block_queue
 *   holds an xarray `vmap_blocks`, and addr_to_vb_xa hashes a block's address
 *   to one of them (block number modulo nr_cpu_ids, moved onto
 *   cpu_possible_mask); the hash slot is not the CPU that owns the block;
 * - vb->cpu names the queue the block was put on, so a purge takes that
 *   queue's lock (v6.6, 8c61291fd850);
 * - used_map marks the pages handed out (vread_iter reads only those);
 * - _vm_unmap_aliases walks the xarrays — every block, the full ones too —
 *   purges fragmented blocks below VMAP_PURGE_THRESHOLD free pages, and resets
 *   a flushed dirty range (v6.5's series: fc1e0d980037, a09fad96ffb1);
 * - vb->free and vb->dirty are read without vb->lock (READ_ONCE/WRITE_ONCE);
 * - free_vmap_block unlinks the area from its node's busy tree itself, and
 *   vm_unmap_ram frees a large mapping with find_unlink_vmap_area.
 *
 * 4 KiB pages only: vmsim maps no huge vmalloc pages (vm_map_ram maps with
 * PAGE_SHIFT, as the kernel does). used_map is sized for VMAP_BBMAP_BITS_MAX:
 * VMAP_BBMAP_BITS is a per-machine value here, a compile-time one there.
 *
 * Locks: vbq->lock (a queue's free list, walked under RCU), vb->lock (a
 * block's counters, map and dirty range), the xarrays' xa_lock (inside
 * src/mm/xarray.ts); the order is vb->lock, then vbq->lock. Blocks are
 * kmalloc'ed and freed with kfree_rcu.
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, F64, I32, theArena } from "../../shared/arena.js";
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
import { onSetCurrentCpu, per_cpu_ptr, smp_processor_id, this_cpu_ptr } from "../../shared/smp.js";
import { for_each_possible_cpu, num_possible_cpus, raw_cpu_ptr } from "../../percpu/percpu.js";
import { SPINLOCK_T, spin_lock, spin_lock_init, spin_unlock } from "../../locks/spinlock.js";
import { READ_ONCE, WRITE_ONCE } from "../../locks/atomic.js";
import { mutex_lock, mutex_unlock } from "../../locks/mutex.js";
import { might_sleep } from "../../locks/might_sleep.js";
import { BITS_TO_LONGS, bitmap_clear, bitmap_set, find_next_bit, find_next_zero_bit } from "../../lib/bitmap.js";
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
import { GFP_KERNEL, GFP_RECLAIM_MASK } from "../gfp.js";
import { kfree, kmalloc } from "../slab.js";
import { XARRAY, xa_erase, xa_for_each, xa_init, xa_insert, xa_load } from "../xarray.js";
import { PAGE_KERNEL } from "../pgtable.js";
import { flush_tlb_kernel_range } from "../tlbflush.js";
import {
  TF_VM_MAP_RAM,
  TF_VM_UNMAP_ALIASES,
  TF_VM_UNMAP_RAM,
  trace_graph_entry,
  trace_graph_return,
  tracing,
} from "../../trace/trace.js";
import {
  BUSY_LOCK,
  BUSY_ROOT,
  VMAP_AREA,
  VMAP_BLOCK as VMAP_BLOCK_FLAG, // #define VMAP_BLOCK; the name VMAP_BLOCK is struct vmap_block's table here
  VMAP_RAM,
  __purge_vmap_area_lazy,
  addr_to_node,
  aligned_vread_iter,
  alloc_vmap_area,
  find_unlink_vmap_area,
  free_unmap_vmap_area,
  free_vmap_area,
  free_vmap_area_noflush,
  registerVmapBlock,
  unlink_va,
  vmap_initialized,
  vmap_pages_range,
  vmap_purge_lock,
  vunmap_range_noflush,
  zero_iter,
} from "./vmalloc.js";
import { roundup_pow_of_two } from "../../lib/log2.js";

/** include/uapi/asm-generic/errno-base.h */
const ENOMEM = 12;
const EINVAL = 22;

/*** Geometry: v6.12's macros, for the configured word size and CPU count ***/

/** VMAP_BBMAP_BITS_MAX (v6.12): at most 1024 pages (4 MiB) per block. */
export const VMAP_BBMAP_BITS_MAX = 1024;

/** The per-CPU allocator's sizes for one machine shape (see {@link vmapBlockGeometry}). */
export interface VmapBlockGeometry {
  /** BITS_PER_LONG: 64 on the arm64 presets, 32 on arm32. */
  readonly bitsPerLong: number;
  /** VMAP_MAX_ALLOC = BITS_PER_LONG: the largest vm_map_ram count served by a block. */
  readonly maxAlloc: number;
  /** VMAP_BBMAP_BITS: pages per block. */
  readonly bbmapBits: number;
  /** VMAP_BLOCK_SIZE = VMAP_BBMAP_BITS * PAGE_SIZE. */
  readonly blockSize: number;
}

/**
 * The v6.12 macros (unchanged since v4.19) for `layout` with NR_CPUS =
 * `nrCpus` (vmsim builds its kernel for the machine):
 *
 *   VMALLOC_SPACE   = 128 MiB (32-bit) or 128 GiB (64-bit), a guess, not the layout's size
 *   VMAP_MAX_ALLOC  = BITS_PER_LONG;  VMAP_BBMAP_BITS_MIN = 2 * VMAP_MAX_ALLOC
 *   VMAP_BBMAP_BITS = min(1024, max(MIN, VMALLOC_SPACE / PAGE_SIZE / roundup_pow_of_two(NR_CPUS) / 16))
 *
 * arm64: 64 and 1024 (4 MiB blocks) up to 64 CPUs; arm32: 32 and 1024 on
 * 1-2 CPUs, 512 on 3-4, 256 on 5-8, 128 on 9-16, 64 from 17.
 */
export function vmapBlockGeometry(layout: Layout, nrCpus: number): VmapBlockGeometry {
  const bitsPerLong = layout.vaBits > 32 ? 64 : 32;
  const vmallocSpace = bitsPerLong === 32 ? 128 * 2 ** 20 : 128 * 2 ** 30;
  const maxAlloc = bitsPerLong;
  const pagesPerCpu = Math.floor(vmallocSpace / PAGE_SIZE / roundup_pow_of_two(nrCpus) / 16);
  const bbmapBits = Math.min(VMAP_BBMAP_BITS_MAX, Math.max(2 * maxAlloc, pagesPerCpu));
  return { bitsPerLong, maxAlloc, bbmapBits, blockSize: bbmapBits * PAGE_SIZE };
}

/** VMAP_MAX_ALLOC (v6.12) for this machine: vm_map_ram counts up to it come from a block. */
export let VMAP_MAX_ALLOC = 0;
/** VMAP_BBMAP_BITS (v6.12) for this machine: pages per block. */
export let VMAP_BBMAP_BITS = 0;
/** VMAP_BLOCK_SIZE (v6.12) for this machine, in bytes. */
export let VMAP_BLOCK_SIZE = 0;
/** VMAP_PURGE_THRESHOLD (v6.12): a fragmented block is purged early only below this many free pages. */
export let VMAP_PURGE_THRESHOLD = 0;

/* The layout and the offsets this file reads on its hot paths, cached per thread (immutable config). */
let layout: Layout;
let VMALLOC_START = 0;
let VMALLOC_END = 0;
/** VMALLOC_START & ~(VMAP_BLOCK_SIZE - 1): addr_to_vb_idx's origin. */
let VB_IDX_ORIGIN = 0;
/** A kaddr is the address less the layout's base: the base's block number modulo nr_cpu_ids, for addr_to_vb_xa. */
let BASE_BLOCKS_MOD_NR_CPU_IDS = 0;

/* Deliberate bugs (src/shared/inject.ts), read once per arena: off, each hook is one branch on a false flag. */
let injectVbCpuAfterInsert = false;
let injectVbFullNotFlushed = false;
let injectVbPurgeWrongVbq = false;
let injectVnDirtyRangeUnlocked = false;

onSetCurrentCpu(() => {
  const config = theArena().config;
  layout = layoutOf(config);
  const g = vmapBlockGeometry(layout, config.cpus);
  VMAP_MAX_ALLOC = g.maxAlloc;
  VMAP_BBMAP_BITS = g.bbmapBits;
  VMAP_BLOCK_SIZE = g.blockSize;
  VMAP_PURGE_THRESHOLD = VMAP_BBMAP_BITS / 4;
  VMALLOC_START = layout.vmallocStart;
  VMALLOC_END = layout.vmallocEnd;
  VB_IDX_ORIGIN = VMALLOC_START - (VMALLOC_START % VMAP_BLOCK_SIZE);
  BASE_BLOCKS_MOD_NR_CPU_IDS = Number((layout.base / BigInt(VMAP_BLOCK_SIZE)) % BigInt(config.cpus));
  injectVbCpuAfterInsert = config.inject.includes("vb-cpu-after-insert");
  injectVbFullNotFlushed = config.inject.includes("vb-full-not-flushed");
  injectVbPurgeWrongVbq = config.inject.includes("vb-purge-wrong-vbq");
  injectVnDirtyRangeUnlocked = config.inject.includes("vn-dirty-range-unlocked");
});

const VA_START = VMAP_AREA.off.va_start;

/*** Structures ***/

/** struct vmap_block_queue (v6.12): a CPU's blocks with free pages, and one slot of the block hash. */
export const VMAP_BLOCK_QUEUE = defineStruct("vmap_block_queue", [
  { name: "lock", type: SPINLOCK_T },
  /** Blocks with free > 0, oldest first; updated under `lock`, walked under rcu_read_lock. */
  { name: "free", type: LIST_HEAD, guard: "vmap_block_queue.lock" },
  /** The blocks addr_to_vb_xa hashes to this slot, by addr_to_vb_idx (not this CPU's blocks). */
  { name: "vmap_blocks", type: XARRAY, guard: "xa_lock" },
]);
const Q = VMAP_BLOCK_QUEUE.off;

/** struct vmap_block (v6.12). */
export const VMAP_BLOCK = defineStruct("vmap_block", [
  { name: "lock", type: SPINLOCK_T },
  { name: "va", type: "ptr", guard: "init" },
  /** Pages not yet handed out: the block's last `free` pages. Read locklessly (READ_ONCE). */
  { name: "free", type: "i32", guard: "vmap_block.lock" },
  /** Pages handed out and given back again (unmapped, maybe not flushed). Read locklessly (READ_ONCE). */
  { name: "dirty", type: "i32", guard: "vmap_block.lock" },
  /** DECLARE_BITMAP(used_map, VMAP_BBMAP_BITS): the pages handed out and not given back. */
  { name: "used_map", type: "u32", count: BITS_TO_LONGS(VMAP_BBMAP_BITS_MAX), guard: "vmap_block.lock" },
  /** Page range [dirty_min, dirty_max) holding every dirty page not yet TLB-flushed; BITS and 0 while none is. */
  { name: "dirty_min", type: "i32", guard: "vmap_block.lock" },
  { name: "dirty_max", type: "i32", guard: "vmap_block.lock" },
  /** On vb->cpu's vbq->free while free > 0. */
  { name: "free_list", type: LIST_HEAD, guard: "vmap_block_queue.lock" },
  { name: "rcu_head", type: RCU_HEAD, guard: "rcu_data.nocb_lock" },
  /** On a purger's private list, owned by the purging CPU. */
  { name: "purge", type: LIST_HEAD, guard: "owner" },
  /** The CPU whose queue the block went on (raw_smp_processor_id at creation). */
  { name: "cpu", type: "i32", guard: "init" },
]);
const B = VMAP_BLOCK.off;

/** Queue of free and dirty vmap blocks, for allocation and flushing purposes (v6.12). */
export const vmap_block_queue = DEFINE_PER_CPU("6.12:vmap_block_queue", VMAP_BLOCK_QUEUE);

/**
 * The on-stack LIST_HEADs of purge_fragmented_blocks and _vm_unmap_aliases. A
 * CPU runs one task and the two never nest, so its kernel stack is this
 * per-CPU head.
 */
const vmap_block_purge = DEFINE_PER_CPU("6.12:vmap_block_purge", LIST_HEAD);

/** get_order (include/asm-generic/getorder.h): the smallest order whose block holds `size` bytes. */
function get_order(size: number): number {
  return 32 - Math.clz32((size - 1) >>> PAGE_SHIFT);
}

function vb_va_start(vb: number): number {
  return F64[(I32[(vb + B.va) >> 2]! + VA_START) >> 3]!;
}

/** nr_cpu_ids: one past the highest possible CPU (vmsim's possible mask is 0..cpus-1). */
function nr_cpu_ids(): number {
  return num_possible_cpus();
}

/** cpu_possible(cpu). */
function cpu_possible(cpu: number): boolean {
  return cpu >= 0 && cpu < num_possible_cpus();
}

/** cpumask_next(n, cpu_possible_mask): the next possible CPU after `n`, or nr_cpu_ids. */
function cpumask_next(n: number): number {
  for (const cpu of for_each_possible_cpu()) if (cpu > n) return cpu;
  return nr_cpu_ids();
}

/**
 * addr_to_vb_xa (v6.12): the xarray that indexes the block at `addr`: the
 * block number of the full address modulo nr_cpu_ids, moved up to a possible
 * CPU — a hash slot, not the owner. Returns that vmap_block_queue's
 * `vmap_blocks`.
 */
export function addr_to_vb_xa(addr: number): number {
  // (base + addr) / VMAP_BLOCK_SIZE, with base (a multiple of it) reduced modulo nr_cpu_ids beforehand.
  let index = (BASE_BLOCKS_MOD_NR_CPU_IDS + Math.floor(addr / VMAP_BLOCK_SIZE)) % nr_cpu_ids();
  // nr_cpu_ids - 1 is always possible, so cpumask_next never runs off the end.
  if (!cpu_possible(index)) index = cpumask_next(index);
  return per_cpu_ptr(vmap_block_queue, index) + Q.vmap_blocks;
}

/** addr_to_vb_idx (v6.12): the block index of kaddr `addr`. */
export function addr_to_vb_idx(addr: number): number {
  return Math.floor((addr - VB_IDX_ORIGIN) / VMAP_BLOCK_SIZE);
}

/** vmap_block_vaddr (v6.12): the kaddr `pagesOff` pages into the block at `vaStart`. */
function vmap_block_vaddr(vaStart: number, pagesOff: number): number {
  const addr = vaStart + pagesOff * PAGE_SIZE;
  if (addr_to_vb_idx(addr) !== addr_to_vb_idx(vaStart))
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: vmap_block_vaddr(${formatKaddr(layout, vaStart)}, ${pagesOff})`);
  return addr;
}

/**
 * new_vmap_block (v6.12): allocate a block, occupy its first 2^order pages,
 * index it in its hash slot's xarray and queue it on this CPU. Returns the
 * kaddr of those pages or a negative errno (the kernel's ERR_PTR).
 */
function new_vmap_block(order: number, gfpMask: number): number {
  const node = 0; // numa_node_id(): vmsim has one memory node
  const vb = kmalloc(VMAP_BLOCK.size, gfpMask & GFP_RECLAIM_MASK);
  if (vb === 0) return -ENOMEM;

  const va = alloc_vmap_area(
    VMAP_BLOCK_SIZE,
    VMAP_BLOCK_SIZE,
    VMALLOC_START,
    VMALLOC_END,
    node,
    gfpMask,
    VMAP_RAM | VMAP_BLOCK_FLAG,
    0,
  );
  if (va < 0) {
    kfree(vb);
    return va;
  }

  const va_start = F64[(va + VA_START) >> 3]!;
  const vaddr = vmap_block_vaddr(va_start, 0);
  spin_lock_init(vb + B.lock, "vmap_block.lock");
  I32[(vb + B.va) >> 2] = va;
  // At least something should be left free.
  if (VMAP_BBMAP_BITS <= 1 << order)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: new_vmap_block: VMAP_BBMAP_BITS <= 1 << ${order}`);
  bitmap_clear(vb + B.used_map, 0, VMAP_BBMAP_BITS); // bitmap_zero
  I32[(vb + B.free) >> 2] = VMAP_BBMAP_BITS - (1 << order);
  I32[(vb + B.dirty) >> 2] = 0;
  I32[(vb + B.dirty_min) >> 2] = VMAP_BBMAP_BITS;
  I32[(vb + B.dirty_max) >> 2] = 0;
  bitmap_set(vb + B.used_map, 0, 1 << order);
  INIT_LIST_HEAD(vb + B.free_list);
  // inject "vb-cpu-after-insert": vb->cpu is set after the xarray publishes the block, as before 3e3de7947c75.
  if (!injectVbCpuAfterInsert) I32[(vb + B.cpu) >> 2] = smp_processor_id(); // raw_smp_processor_id

  const xa = addr_to_vb_xa(va_start);
  const vb_idx = addr_to_vb_idx(va_start);
  const err = xa_insert(xa, vb_idx, vb, gfpMask);
  if (err) {
    kfree(vb);
    free_vmap_area(va);
    return err;
  }
  if (injectVbCpuAfterInsert) I32[(vb + B.cpu) >> 2] = smp_processor_id();
  // The block goes on vb->cpu's queue even if the task moved since (list_add_tail_rcu keeps readers safe).
  const vbq = per_cpu_ptr(vmap_block_queue, I32[(vb + B.cpu) >> 2]!);
  spin_lock(vbq + Q.lock);
  list_add_tail_rcu(vb + B.free_list, vbq + Q.free);
  spin_unlock(vbq + Q.lock);

  return vaddr;
}

/**
 * free_vmap_block (v6.12): take `vb` out of its xarray, unlink its area from
 * its node's busy tree, hand the area to the lazy purge, free the block after
 * a grace period.
 */
function free_vmap_block(vb: number): void {
  const va = I32[(vb + B.va) >> 2]!;
  const va_start = F64[(va + VA_START) >> 3]!;
  const xa = addr_to_vb_xa(va_start);
  const tmp = xa_erase(xa, addr_to_vb_idx(va_start));
  if (tmp !== vb)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: free_vmap_block: xarray holds ${tmp} for block ${vb}`);

  const vn = addr_to_node(va_start);
  spin_lock(vn + BUSY_LOCK);
  unlink_va(va, vn + BUSY_ROOT);
  spin_unlock(vn + BUSY_LOCK);

  free_vmap_area_noflush(va);
  kfree_rcu(vb, B.rcu_head);
}

/**
 * purge_fragmented_block (v6.12): with vb->lock held, move `vb` to
 * `purgeList` if nothing in it is in use (free + dirty == VMAP_BBMAP_BITS,
 * not yet claimed) and — unless `forcePurge` — fewer than
 * VMAP_PURGE_THRESHOLD pages are still free. Returns whether it did.
 * `walked`: the queue whose xarray or list the caller walks (inject only).
 */
function purge_fragmented_block(vb: number, purgeList: number, forcePurge: boolean, walked: number): boolean {
  // inject "vb-purge-wrong-vbq": the walked queue's lock, not the owner's, as before 8c61291fd850.
  const vbq = injectVbPurgeWrongVbq ? walked : per_cpu_ptr(vmap_block_queue, I32[(vb + B.cpu) >> 2]!);
  const free = I32[(vb + B.free) >> 2]!;
  const dirty = I32[(vb + B.dirty) >> 2]!;

  if (free + dirty !== VMAP_BBMAP_BITS || dirty === VMAP_BBMAP_BITS) return false;

  // Don't overeagerly purge usable blocks unless requested.
  if (!(forcePurge || free < VMAP_PURGE_THRESHOLD)) return false;

  WRITE_ONCE(vb + B.free, 0); // prevent further allocs after releasing lock
  WRITE_ONCE(vb + B.dirty, VMAP_BBMAP_BITS); // prevent purging it again
  I32[(vb + B.dirty_min) >> 2] = 0;
  I32[(vb + B.dirty_max) >> 2] = VMAP_BBMAP_BITS;
  spin_lock(vbq + Q.lock);
  list_del_rcu(vb + B.free_list);
  spin_unlock(vbq + Q.lock);
  list_add_tail(vb + B.purge, purgeList);
  return true;
}

/** free_purged_blocks (v6.12): free every block on `purgeList`. */
function free_purged_blocks(purgeList: number): void {
  for (let p = list_next(purgeList), n = list_next(p); p !== purgeList; p = n, n = list_next(p)) {
    list_del(p);
    free_vmap_block(p - B.purge);
  }
}

/** purge_fragmented_blocks (v6.12): free every fragmented block on CPU `cpu`'s queue, whatever its free count. */
function purge_fragmented_blocks(cpu: number): void {
  const purge = this_cpu_ptr(vmap_block_purge);
  INIT_LIST_HEAD(purge);
  const vbq = per_cpu_ptr(vmap_block_queue, cpu);
  const head = vbq + Q.free;

  rcu_read_lock();
  for (let p = list_next_rcu(head); p !== head; p = list_next_rcu(p)) {
    const vb = p - B.free_list;
    const free = READ_ONCE(vb + B.free);
    const dirty = READ_ONCE(vb + B.dirty);

    if (free + dirty !== VMAP_BBMAP_BITS || dirty === VMAP_BBMAP_BITS) continue;

    spin_lock(vb + B.lock);
    purge_fragmented_block(vb, purge, true, vbq);
    spin_unlock(vb + B.lock);
  }
  rcu_read_unlock();
  free_purged_blocks(purge);
}

/** purge_fragmented_blocks_allcpus (v6.12): vmalloc.ts's reclaim_and_purge_vmap_areas calls it. */
export function purge_fragmented_blocks_allcpus(): void {
  for (const cpu of for_each_possible_cpu()) purge_fragmented_blocks(cpu);
}

/**
 * vb_alloc (v6.12): `size` bytes (a multiple of the page size, at most
 * VMAP_MAX_ALLOC pages; 2^get_order pages are taken) from the first block on
 * this CPU's queue that has room, else from a new block. Returns a kaddr or
 * a negative errno (-EINVAL, with a WARN, for size 0).
 */
function vb_alloc(size: number, gfpMask: number): number {
  if (size % PAGE_SIZE !== 0) throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_alloc: offset_in_page(${size})`);
  if (size > PAGE_SIZE * VMAP_MAX_ALLOC)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_alloc: size ${size} > PAGE_SIZE*VMAP_MAX_ALLOC`);
  if (size === 0) {
    // get_order(0) is meaningless: warn and fail (an ERR_PTR since v6.9, ac0476e8ca2e).
    reportBug("WARN", `WARNING: CPU: ${smp_processor_id()} at mm/vmalloc.c vb_alloc: WARN_ON(size == 0)`);
    return -EINVAL;
  }
  const order = get_order(size);
  const pages = 1 << order;
  let vaddr = 0;

  rcu_read_lock();
  const vbq = raw_cpu_ptr(vmap_block_queue);
  const head = vbq + Q.free;
  for (let p = list_next_rcu(head); p !== head; p = list_next_rcu(p)) {
    const vb = p - B.free_list;
    // The lockless look at vb->free skips a full block without its lock; it is repeated under the lock.
    if (READ_ONCE(vb + B.free) < pages) continue;

    spin_lock(vb + B.lock);
    const free = I32[(vb + B.free) >> 2]!;
    if (free < pages) {
      spin_unlock(vb + B.lock);
      continue;
    }

    const pages_off = VMAP_BBMAP_BITS - free;
    vaddr = vmap_block_vaddr(vb_va_start(vb), pages_off);
    WRITE_ONCE(vb + B.free, free - pages);
    bitmap_set(vb + B.used_map, pages_off, pages);
    if (free === pages) {
      spin_lock(vbq + Q.lock);
      list_del_rcu(vb + B.free_list);
      spin_unlock(vbq + Q.lock);
    }

    spin_unlock(vb + B.lock);
    break;
  }
  rcu_read_unlock();

  // Allocate a new block if nothing was found.
  if (vaddr === 0) vaddr = new_vmap_block(order, gfpMask);
  return vaddr;
}

/**
 * vb_free (v6.12): give back the 2^order pages of `size` bytes at `addr`:
 * clear them in used_map, unmap them, widen the block's dirty range; a block
 * that becomes all dirty is freed. No TLB flush (debug_pagealloc is off):
 * the stale translations go at the next vm_unmap_aliases or purge.
 */
function vb_free(addr: number, size: number): void {
  if (size % PAGE_SIZE !== 0) throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_free: offset_in_page(${size})`);
  if (size > PAGE_SIZE * VMAP_MAX_ALLOC)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_free: size ${size} > PAGE_SIZE*VMAP_MAX_ALLOC`);

  // flush_cache_vunmap: a no-op on arm64.
  const order = get_order(size);
  const offset = Math.floor((addr % VMAP_BLOCK_SIZE) / PAGE_SIZE);

  const xa = addr_to_vb_xa(addr);
  const vb = xa_load(xa, addr_to_vb_idx(addr));
  // v6.12 does not check: spin_lock(&vb->lock) on NULL is the oops (vb->lock is at offset 0).
  if (vb === 0) {
    nullPointerOops(B.lock);
    return;
  }

  spin_lock(vb + B.lock);
  bitmap_clear(vb + B.used_map, offset, 1 << order);
  spin_unlock(vb + B.lock);

  vunmap_range_noflush(addr, addr + size);

  const minIdx = (vb + B.dirty_min) >> 2;
  const maxIdx = (vb + B.dirty_max) >> 2;
  // inject "vn-dirty-range-unlocked": the dirty range widened before vb->lock is taken.
  if (injectVnDirtyRangeUnlocked) {
    I32[minIdx] = Math.min(I32[minIdx]!, offset);
    I32[maxIdx] = Math.max(I32[maxIdx]!, offset + (1 << order));
  }
  spin_lock(vb + B.lock);

  // Expand the not yet TLB flushed dirty range.
  if (!injectVnDirtyRangeUnlocked) {
    I32[minIdx] = Math.min(I32[minIdx]!, offset);
    I32[maxIdx] = Math.max(I32[maxIdx]!, offset + (1 << order));
  }

  const dirty = I32[(vb + B.dirty) >> 2]! + (1 << order);
  WRITE_ONCE(vb + B.dirty, dirty);
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
 * The oops of a load through NULL + `off` (arch/arm64/mm/fault.c's words); the
 * caller's work stops there. The hardware's fault, not a kernel function.
 */
function nullPointerOops(off: number): void {
  const digits = layout.vaBits > 32 ? 16 : 8;
  reportBug(
    "fault",
    `Unable to handle kernel NULL pointer dereference at virtual address 0x${off.toString(16).padStart(digits, "0")}`,
  );
}

/**
 * _vm_unmap_aliases (v6.12): under vmap_purge_lock, walk every block of
 * every xarray: purge the fragmented ones that are nearly used up, add the
 * dirty range of the others to [start, end) and mark it flushed; then free
 * the purged blocks and purge the lazy areas, which flushes [start, end) too,
 * or flush it alone when there was nothing lazy and `flush` is set.
 */
function _vm_unmap_aliases(start: number, end: number, flush: boolean): void {
  if (I32[vmap_initialized.ptr >> 2] === 0) return;

  mutex_lock(vmap_purge_lock.ptr);
  const purge_list = this_cpu_ptr(vmap_block_purge);
  INIT_LIST_HEAD(purge_list);

  for (const cpu of for_each_possible_cpu()) {
    const vbq = per_cpu_ptr(vmap_block_queue, cpu);
    rcu_read_lock();
    xa_for_each(vbq + Q.vmap_blocks, (_idx, vb) => {
      // inject "vb-full-not-flushed": only the blocks on a free list (free > 0), as the vbq->free walk before fc1e0d980037.
      if (injectVbFullNotFlushed && READ_ONCE(vb + B.free) === 0) return;
      spin_lock(vb + B.lock);
      // Try to purge a fragmented block first; if it is not purgeable, flush its dirty space.
      if (
        !purge_fragmented_block(vb, purge_list, false, vbq) &&
        I32[(vb + B.dirty_max) >> 2] !== 0 &&
        I32[(vb + B.dirty) >> 2] !== VMAP_BBMAP_BITS
      ) {
        const va_start = vb_va_start(vb);
        const s = va_start + I32[(vb + B.dirty_min) >> 2]! * PAGE_SIZE;
        const e = va_start + I32[(vb + B.dirty_max) >> 2]! * PAGE_SIZE;
        start = Math.min(s, start);
        end = Math.max(e, end);
        // Prevent that this is flushed again.
        I32[(vb + B.dirty_min) >> 2] = VMAP_BBMAP_BITS;
        I32[(vb + B.dirty_max) >> 2] = 0;
        flush = true;
      }
      spin_unlock(vb + B.lock);
    });
    rcu_read_unlock();
  }
  free_purged_blocks(purge_list);

  if (!__purge_vmap_area_lazy(start, end, false) && flush) flush_tlb_kernel_range(start, end);
  mutex_unlock(vmap_purge_lock.ptr);
}

/**
 * vm_unmap_aliases (v6.12): flush every lazily unmapped vmap address, so no
 * CPU keeps a TLB entry aliasing a page the caller owns.
 */
export function vm_unmap_aliases(): void {
  trace_event(EV_VM_UNMAP_ALIASES, 0, 0);
  if (tracing) trace_graph_entry(TF_VM_UNMAP_ALIASES, 0, 0);
  _vm_unmap_aliases(Number.POSITIVE_INFINITY /* ULONG_MAX */, 0, false);
  if (tracing) trace_graph_return(TF_VM_UNMAP_ALIASES, 0);
}

/*** vm_map_ram / vm_unmap_ram ***/

function bug_on(cond: boolean, what: string): void {
  if (cond) throw new KernelBug(`kernel BUG at mm/vmalloc.c: vm_unmap_ram: BUG_ON(${what})`);
}

/**
 * vm_unmap_ram (v6.12): unmap what vm_map_ram(`mem`, `count`) mapped (the
 * whole of it). A bad address is BUG(); a large mapping that is not there
 * WARNs once and is ignored.
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
  } else {
    const va = find_unlink_vmap_area(addr);
    if (va === 0) warnOnceNoArea();
    else free_unmap_vmap_area(va);
  }
  if (tracing) trace_graph_return(TF_VM_UNMAP_RAM, 0);
}

/** The `__warned` flag of vm_unmap_ram's WARN_ON_ONCE (a static bool of the kernel's .data.once). */
const WARNED = defineStruct("bool", [{ name: "v", type: "i32", guard: "atomic" }]);
const vm_unmap_ram_warned = DEFINE_GLOBAL("6.12:vm_unmap_ram.__warned", WARNED);

/** WARN_ON_ONCE(!va) of vm_unmap_ram: the first miss on this machine warns, later ones are silent. */
function warnOnceNoArea(): void {
  if (READ_ONCE(vm_unmap_ram_warned.ptr) !== 0) return;
  WRITE_ONCE(vm_unmap_ram_warned.ptr, 1);
  reportBug("WARN", `WARNING: CPU: ${smp_processor_id()} at mm/vmalloc.c vm_unmap_ram: WARN_ON_ONCE(!va)`);
}

/**
 * vm_map_ram (v6.12): map `count` pages (`pages`: arena address of an int32
 * array of struct page pointers) at one kernel address, PAGE_KERNEL. Up to
 * VMAP_MAX_ALLOC pages come from this CPU's blocks, more from alloc_vmap_area
 * (an area with flags VMAP_RAM, no vm_struct, no guard page). Returns the
 * kaddr, or 0 (NULL) on failure.
 */
export function vm_map_ram(pages: number, count: number, node: number): number {
  trace_event(EV_VM_MAP_RAM, count, 0);
  if (tracing) trace_graph_entry(TF_VM_MAP_RAM, count, 0);
  const size = (count >>> 0) * PAGE_SIZE;
  let addr: number;
  let mem: number;

  if (count >>> 0 <= VMAP_MAX_ALLOC) {
    mem = vb_alloc(size, GFP_KERNEL);
    if (mem < 0) return vm_map_ram_fail();
    addr = mem;
  } else {
    const va = alloc_vmap_area(size, PAGE_SIZE, VMALLOC_START, VMALLOC_END, node, GFP_KERNEL, VMAP_RAM, 0);
    if (va < 0) return vm_map_ram_fail();
    addr = F64[(va + VA_START) >> 3]!;
    mem = addr;
  }

  if (vmap_pages_range(addr, addr + size, PAGE_KERNEL, pages, PAGE_SHIFT) < 0) {
    vm_unmap_ram(mem, count);
    return vm_map_ram_fail();
  }
  trace_event(EV_VM_MAP_RAM_RET, mem, count);
  if (tracing) trace_graph_return(TF_VM_MAP_RAM, mem);
  return mem;
}

function vm_map_ram_fail(): number {
  if (tracing) trace_graph_return(TF_VM_MAP_RAM, 0);
  return 0;
}

/*** vread_iter's reader of vm_map_ram areas ***/

/**
 * vmap_ram_vread_iter (v6.12): copy `count` bytes at `addr` of a vm_map_ram
 * area whose va->flags are `flags` into buf[at..]. An area of its own is read
 * page by page; in a vmap block only the runs set in used_map are read, the
 * rest is zero-filled. Returns the bytes copied. As in v6.12, a run is read
 * from its first page plus addr's page offset, one page longer than the run.
 */
export function vmap_ram_vread_iter(buf: Uint8Array, at: number, addr: number, count: number, flags: number): number {
  // An area made by vm_map_ram directly, not subdivided into a vmap_block.
  if (!(flags & VMAP_BLOCK_FLAG)) return aligned_vread_iter(buf, at, addr, count);

  let remains = count;
  // The area is split into regions tracked by the vmap_block: read each, zero-fill the holes between.
  const vb = xa_load(addr_to_vb_xa(addr), addr_to_vb_idx(addr));
  if (vb !== 0) {
    spin_lock(vb + B.lock);
    const map = vb + B.used_map;
    // for_each_set_bitrange(rs, re, vb->used_map, VMAP_BBMAP_BITS); an empty map ends at once.
    for (let rs = find_next_bit(map, VMAP_BBMAP_BITS, 0); rs < VMAP_BBMAP_BITS; ) {
      const re = find_next_zero_bit(map, VMAP_BBMAP_BITS, rs + 1);
      if (remains === 0) return vread_finished(vb, count, remains);

      const start = vmap_block_vaddr(vb_va_start(vb), rs);
      if (addr < start) {
        const toZero = Math.min(start - addr, remains);
        const zeroed = zero_iter(buf, at + count - remains, toZero);
        addr += zeroed;
        remains -= zeroed;
        if (remains === 0 || zeroed !== toZero) return vread_finished(vb, count, remains);
      }

      // It could start reading from the middle of a used region.
      const offset = addr % PAGE_SIZE;
      const n = Math.min((re - rs + 1) * PAGE_SIZE - offset, remains);
      const copied = aligned_vread_iter(buf, at + count - remains, start + offset, n);
      addr += copied;
      remains -= copied;
      if (copied !== n) return vread_finished(vb, count, remains);
      rs = find_next_bit(map, VMAP_BBMAP_BITS, re + 1);
    }
    spin_unlock(vb + B.lock);
  }
  // finished_zero: zero-fill the dirty or free regions left.
  return count - remains + zero_iter(buf, at + count - remains, remains);
}

/** vmap_ram_vread_iter's `finished:` label: not everything was copied or zeroed. */
function vread_finished(vb: number, count: number, remains: number): number {
  spin_unlock(vb + B.lock);
  return count - remains;
}

/*** Boot ***/

/**
 * vmalloc_init's vmap_block_queue step for CPU `cpu` (v6.12): its lock, free
 * list and xarray; vmalloc.ts's vmalloc_init calls it before anything maps.
 */
export function init_vmap_block_queue(cpu: number): void {
  const vbq = per_cpu_ptr(vmap_block_queue, cpu);
  spin_lock_init(vbq + Q.lock, "vmap_block_queue.lock");
  INIT_LIST_HEAD(vbq + Q.free);
  xa_init(vbq + Q.vmap_blocks, "vmap_blocks.xa_lock");
}

registerVmapBlock({
  init_vmap_block_queue,
  purge_fragmented_blocks_allcpus,
  vmap_ram_vread_iter,
  vm_map_ram,
  vm_unmap_ram,
  vm_unmap_aliases,
});

/*** Harness: introspection (read while the CPUs are parked) ***/

/** One block as {@link vmapBlocks} reports it. */
export interface VmapBlockInfo {
  /** kaddr of the block's first page. */
  readonly start: number;
  readonly free: number;
  readonly dirty: number;
  readonly dirtyMin: number;
  readonly dirtyMax: number;
  /** Pages set in used_map. */
  readonly used: number;
  /** vb->cpu: the CPU whose queue it went on. */
  readonly cpu: number;
  /** Whether it is on vb->cpu's free list (it is while free > 0). */
  readonly queued: boolean;
  /** The hash slot (the CPU number of the vmap_block_queue) whose xarray holds it. */
  readonly slot: number;
}

/** Every block of every xarray as (slot, xarray index, block address), in slot then index order. */
export function forEachVmapBlock(fn: (slot: number, idx: number, vb: number) => void): void {
  for (const cpu of for_each_possible_cpu())
    xa_for_each(per_cpu_ptr(vmap_block_queue, cpu) + Q.vmap_blocks, (idx, vb) => fn(cpu, idx, vb));
}

/** The blocks on CPU `cpu`'s free list, in list order. */
export function queuedVmapBlocks(cpu: number): number[] {
  const head = per_cpu_ptr(vmap_block_queue, cpu) + Q.free;
  const out: number[] = [];
  for (let p = list_next(head); p !== head; p = list_next(p)) out.push(p - B.free_list);
  return out;
}

/** Pages set in a block's used_map. */
export function vbUsedPages(vb: number): number {
  let n = 0;
  for (let i = 0; i < BITS_TO_LONGS(VMAP_BBMAP_BITS); i++) {
    let w = I32[((vb + B.used_map) >> 2) + i]!;
    for (; w !== 0; w &= w - 1) n++;
  }
  return n;
}

/** Every block, in address order. */
export function vmapBlocks(): VmapBlockInfo[] {
  const queued = new Set<number>();
  for (const cpu of for_each_possible_cpu()) for (const vb of queuedVmapBlocks(cpu)) queued.add(vb);
  const out: VmapBlockInfo[] = [];
  forEachVmapBlock((slot, _idx, vb) =>
    out.push({
      start: vb_va_start(vb),
      free: I32[(vb + B.free) >> 2]!,
      dirty: I32[(vb + B.dirty) >> 2]!,
      dirtyMin: I32[(vb + B.dirty_min) >> 2]!,
      dirtyMax: I32[(vb + B.dirty_max) >> 2]!,
      used: vbUsedPages(vb),
      cpu: I32[(vb + B.cpu) >> 2]!,
      queued: queued.has(vb),
      slot,
    }),
  );
  return out.sort((a, b) => a.start - b.start);
}
