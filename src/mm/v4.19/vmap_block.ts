/**
 * The per-CPU kva allocator of mm/vmalloc.c (v4.19, the section
 * "Per cpu kva allocator"): vm_map_ram/vm_unmap_ram carve small mappings out
 * of per-CPU blocks of VMAP_BLOCK_SIZE, each block one vmap_area from
 * alloc_vmap_area, so a small map costs no vmap_area_lock round trip.
 *
 * v4.19's block keeps no bitmap (dirty_map went in v4.1): `free` counts the
 * pages not yet handed out, which are always the block's tail, so a block is
 * carved front to back by `VMAP_BBMAP_BITS - free`; `dirty` counts the pages
 * given back (unmapped, TLB flush still pending) and dirty_min/dirty_max bound
 * them for vm_unmap_aliases. A block whose pages are all dirty goes back to
 * the lazy-purge machinery as a whole (free_vmap_block).
 *
 * vmap_block_tree. The kernel indexes blocks by addr_to_vb_idx in a radix
 * tree whose lookups in vb_free run under rcu_read_lock only. vmsim has no
 * radix tree; the rbtree of src/lib/rbtree.ts (an rb_node embedded in the
 * block, keyed by vb_idx) takes its place. Its walkers are not safe against
 * a concurrent rebalance, so vb_free looks up under vmap_block_tree_lock
 * where the kernel takes rcu_read_lock — one more uncontended-in-practice
 * lock on the free path. Because the node is embedded, insertion needs no
 * memory, so radix_tree_preload and its failure path have nothing to do.
 *
 * Locks: vbq->lock (each CPU's queue: its free list, whose readers walk
 * under RCU), vb->lock (a block's counters), vmap_block_tree_lock (the tree);
 * the order is vb->lock, then vbq->lock. Blocks are kmalloc'ed and freed with
 * kfree_rcu, so a reader standing on a block removed from its list can still
 * read it.
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
import { READ_ONCE, WRITE_ONCE } from "../../locks/atomic.js";
import { onSetCurrentCpu, per_cpu_ptr, smp_processor_id, this_cpu_ptr } from "../../shared/smp.js";
import { for_each_possible_cpu, get_cpu, put_cpu } from "../../percpu/percpu.js";
import { DEFINE_SPINLOCK, SPINLOCK_T, spin_lock, spin_lock_init, spin_unlock } from "../../locks/spinlock.js";
import { mutex_lock, mutex_unlock } from "../../locks/mutex.js";
import { might_sleep } from "../../locks/might_sleep.js";
import {
  INIT_LIST_HEAD,
  LIST_HEAD,
  list_add_tail,
  list_add_tail_rcu,
  list_del,
  list_del_init,
  list_del_rcu,
  list_next,
  list_next_rcu,
} from "../../lib/list.js";
import {
  RB_NODE,
  RB_ROOT,
  checkRbTree,
  rb_erase,
  rb_first,
  rb_insert_color,
  rb_link_node,
  rb_next,
} from "../../lib/rbtree.js";
import { RCU_HEAD, rcu_read_lock, rcu_read_unlock } from "../../rcu/rcupdate.js";
import { kfree_rcu } from "../../rcu/tree.js";
import { GFP_KERNEL, GFP_RECLAIM_MASK } from "../gfp.js";
import { POISON_FREE, kfree, kmalloc } from "../slab.js";
import { virt_addr_valid } from "../mm_types.js";
import { type Pgprot, kernel_pte_lookup, vmap_page_range, vunmap_page_range } from "../pgtable.js";
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
  NUMA_NO_NODE,
  VMAP_AREA,
  VM_VM_AREA,
  __purge_vmap_area_lazy,
  alloc_vmap_area,
  find_vmap_area,
  free_unmap_vmap_area,
  free_vmap_area_noflush,
  registerVmapBlock,
  vmap_initialized,
  vmap_purge_lock,
} from "./vmalloc.js";
import { roundup_pow_of_two } from "../../lib/log2.js";

/** include/uapi/asm-generic/errno-base.h */
const ENOMEM = 12;
const EEXIST = 17;

/*** Geometry: v4.19's macros, for the configured word size and CPU count ***/

/** VMAP_BBMAP_BITS_MAX (v4.19): at most 1024 pages (4 MiB) per block. */
export const VMAP_BBMAP_BITS_MAX = 1024;

/** The per-CPU allocator's sizes for one machine shape (see {@link vmapBlockGeometry}). */
export interface VmapBlockGeometry {
  /** BITS_PER_LONG: 64 on the arm64 presets, 32 on arm32. */
  readonly bitsPerLong: number;
  /** VMALLOC_SPACE: the kernel's guess of the vmalloc area's size (not the layout's). */
  readonly vmallocSpace: number;
  /** VMAP_MAX_ALLOC = BITS_PER_LONG: the largest vm_map_ram count served by a block. */
  readonly maxAlloc: number;
  /** VMAP_BBMAP_BITS_MIN = VMAP_MAX_ALLOC * 2. */
  readonly bbmapBitsMin: number;
  /** VMAP_BBMAP_BITS: pages per block. */
  readonly bbmapBits: number;
  /** VMAP_BLOCK_SIZE = VMAP_BBMAP_BITS * PAGE_SIZE. */
  readonly blockSize: number;
}

/**
 * The v4.19 macros evaluated for `layout` with NR_CPUS = `nrCpus` (vmsim
 * builds its kernel for the machine: NR_CPUS is the CPU count):
 *
 *   VMALLOC_SPACE   = 128 MiB (32-bit) or 128 GiB (64-bit); VMALLOC_PAGES = VMALLOC_SPACE / PAGE_SIZE
 *   VMAP_MAX_ALLOC  = BITS_PER_LONG;  VMAP_BBMAP_BITS_MIN = 2 * VMAP_MAX_ALLOC
 *   VMAP_BBMAP_BITS = min(1024, max(MIN, VMALLOC_PAGES / roundup_pow_of_two(NR_CPUS) / 16))
 *
 *   preset                 NR_CPUS  MAX_ALLOC  BBMAP_BITS  VMAP_BLOCK_SIZE
 *   arm64-va48, -va39      1..64       64         1024        4 MiB   (2^21 / NR / 16 >= 2048)
 *   arm32                  1..2        32         1024        4 MiB
 *   arm32                  3..4        32          512        2 MiB
 *   arm32                  5..8        32          256        1 MiB
 *   arm32                  9..16       32          128      512 KiB
 *   arm32                  17..64      32           64      256 KiB   (the MIN bound from 32 CPUs on)
 */
export function vmapBlockGeometry(layout: Layout, nrCpus: number): VmapBlockGeometry {
  const bitsPerLong = layout.vaBits > 32 ? 64 : 32;
  const vmallocSpace = bitsPerLong === 32 ? 128 * 2 ** 20 : 128 * 2 ** 30;
  const maxAlloc = bitsPerLong;
  const bbmapBitsMin = maxAlloc * 2;
  const pagesPerCpu = Math.floor(vmallocSpace / PAGE_SIZE / roundup_pow_of_two(nrCpus) / 16);
  const bbmapBits = Math.min(VMAP_BBMAP_BITS_MAX, Math.max(bbmapBitsMin, pagesPerCpu));
  return { bitsPerLong, vmallocSpace, maxAlloc, bbmapBits, bbmapBitsMin, blockSize: bbmapBits * PAGE_SIZE };
}

/** VMAP_MAX_ALLOC (v4.19) for this machine: vm_map_ram counts up to it come from a block. */
export let VMAP_MAX_ALLOC = 0;
/** VMAP_BBMAP_BITS (v4.19) for this machine: pages per block. */
export let VMAP_BBMAP_BITS = 0;
/** VMAP_BLOCK_SIZE (v4.19) for this machine, in bytes. */
export let VMAP_BLOCK_SIZE = 0;

/* The layout and the offsets this file reads on its hot paths, cached per thread (immutable config). */
let layout: Layout;
let VMALLOC_START = 0;
let VMALLOC_END = 0;
/** VMALLOC_START & ~(VMAP_BLOCK_SIZE - 1): addr_to_vb_idx's origin. */
let VB_IDX_ORIGIN = 0;
let VA_START = 0;
let VA_END = 0;

onSetCurrentCpu(() => {
  const config = theArena().config;
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

/* Deliberate bugs (src/shared/inject.ts), read once per arena: off, each hook is one branch on a false flag. */
let injectVbPublishBeforeInit = false;
let injectVbListDelInit = false;
let injectVbPurgeWrongLock = false;
let injectVbDirtyRangeUnlocked = false;
/* Known race (src/shared/backport.ts): off, the counts are plain as in v4.19; on, 7f48121e9fa8's markings. */
let backportVbCountersReadOnce = false;
onSetCurrentCpu(() => {
  const inject = theArena().config.inject;
  injectVbPublishBeforeInit = inject.includes("vb-publish-before-init");
  injectVbListDelInit = inject.includes("vb-list-del-init");
  injectVbPurgeWrongLock = inject.includes("vb-purge-wrong-lock");
  injectVbDirtyRangeUnlocked = inject.includes("vb-dirty-range-unlocked");
  backportVbCountersReadOnce = theArena().config.backport.includes("vb-counters-read-once");
});

/*** Structures ***/

/** struct vmap_block_queue (v4.19): a CPU's blocks that still have free pages. */
export const VMAP_BLOCK_QUEUE = defineStruct("vmap_block_queue", [
  { name: "lock", type: SPINLOCK_T },
  /** Blocks with free > 0, oldest first; updated under `lock`, walked under rcu_read_lock. */
  { name: "free", type: LIST_HEAD, guard: "vmap_block_queue.lock" },
]);
const Q = VMAP_BLOCK_QUEUE.off;

/**
 * struct vmap_block (v4.19), plus the rb_node that puts it on vmap_block_tree
 * (the kernel's radix tree needs none).
 */
export const VMAP_BLOCK = defineStruct("vmap_block", [
  { name: "lock", type: SPINLOCK_T },
  { name: "va", type: "ptr", guard: "init" },
  /** Pages not yet handed out: the block's last `free` pages. */
  { name: "free", type: "i32", guard: "vmap_block.lock" },
  /** Pages handed out and given back again (unmapped, not yet flushed). */
  { name: "dirty", type: "i32", guard: "vmap_block.lock" },
  /** Page range [dirty_min, dirty_max) holding every dirty page; BITS and 0 while none is. */
  { name: "dirty_min", type: "i32", guard: "vmap_block.lock" },
  { name: "dirty_max", type: "i32", guard: "vmap_block.lock" },
  /** On its CPU's vbq->free while free > 0. */
  { name: "free_list", type: LIST_HEAD, guard: "vmap_block_queue.lock" },
  { name: "rcu_head", type: RCU_HEAD, guard: "rcu_data.nocb_lock" },
  /** On purge_fragmented_blocks' private list, owned by the purging CPU. */
  { name: "purge", type: LIST_HEAD, guard: "owner" },
  { name: "rb_node", type: RB_NODE, guard: "vmap_block_tree_lock" },
]);
const B = VMAP_BLOCK.off;

/** Queue of free and dirty vmap blocks, for allocation and flushing purposes (v4.19). */
export const vmap_block_queue = DEFINE_PER_CPU("vmap_block_queue", VMAP_BLOCK_QUEUE);

/** vmap_block_tree_lock (v4.19): serializes vmap_block_tree. */
export const vmap_block_tree_lock = DEFINE_SPINLOCK("vmap_block_tree_lock");
/** vmap_block_tree: every block, keyed by addr_to_vb_idx (the kernel's radix tree; see the file header). */
export const vmap_block_tree = DEFINE_GLOBAL("vmap_block_tree", RB_ROOT);

/**
 * purge_fragmented_blocks' on-stack LIST_HEAD(purge). A CPU runs one task, so
 * its kernel stack is this per-CPU head; callers hold vmap_purge_lock anyway.
 */
const vmap_block_purge = DEFINE_PER_CPU("vmap_block_purge", LIST_HEAD);

/** get_order (include/asm-generic/getorder.h): the smallest order whose block holds `size` bytes. */
function get_order(size: number): number {
  return 32 - Math.clz32((size - 1) >>> PAGE_SHIFT);
}

function vb_va_start(vb: number): number {
  return F64[(I32[(vb + B.va) >> 2]! + VA_START) >> 3]!;
}

/** addr_to_vb_idx (v4.19): the block index of kaddr `addr`. */
function addr_to_vb_idx(addr: number): number {
  return Math.floor((addr - VB_IDX_ORIGIN) / VMAP_BLOCK_SIZE);
}

/** vmap_block_vaddr (v4.19): the kaddr `pagesOff` pages into the block at `vaStart`. */
function vmap_block_vaddr(vaStart: number, pagesOff: number): number {
  const addr = vaStart + pagesOff * PAGE_SIZE;
  if (addr_to_vb_idx(addr) !== addr_to_vb_idx(vaStart))
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: vmap_block_vaddr(${formatKaddr(layout, vaStart)}, ${pagesOff})`);
  return addr;
}

/*** vmap_block_tree: the radix tree's insert/lookup/delete on the rbtree; caller holds vmap_block_tree_lock ***/

/** radix_tree_insert(&vmap_block_tree, vb_idx, vb): 0, or -EEXIST when the index is taken. */
function vmap_block_tree_insert(vbIdx: number, vb: number): number {
  let link = vmap_block_tree.ptr + RB_ROOT.off.rb_node;
  let parent = 0;
  for (let n = I32[link >> 2]!; n !== 0; n = I32[link >> 2]!) {
    const idx = addr_to_vb_idx(vb_va_start(n - B.rb_node));
    if (vbIdx === idx) return -EEXIST;
    parent = n;
    link = n + (vbIdx < idx ? RB_NODE.off.rb_left : RB_NODE.off.rb_right);
  }
  rb_link_node(vb + B.rb_node, parent, link);
  rb_insert_color(vb + B.rb_node, vmap_block_tree.ptr);
  return 0;
}

/** radix_tree_lookup(&vmap_block_tree, vb_idx): the block, or NULL. */
function vmap_block_tree_lookup(vbIdx: number): number {
  let n = I32[(vmap_block_tree.ptr + RB_ROOT.off.rb_node) >> 2]!;
  while (n !== 0) {
    const idx = addr_to_vb_idx(vb_va_start(n - B.rb_node));
    if (vbIdx === idx) return n - B.rb_node;
    n = I32[(n + (vbIdx < idx ? RB_NODE.off.rb_left : RB_NODE.off.rb_right)) >> 2]!;
  }
  return 0;
}

/** radix_tree_delete(&vmap_block_tree, vb_idx): the block removed, or NULL. */
function vmap_block_tree_delete(vbIdx: number): number {
  const vb = vmap_block_tree_lookup(vbIdx);
  if (vb !== 0) rb_erase(vb + B.rb_node, vmap_block_tree.ptr);
  return vb;
}

/*** Blocks ***/

/**
 * new_vmap_block (v4.19): allocate a block, occupy its first 2^order pages
 * and queue it on this CPU. Returns the kaddr of those pages or a negative
 * errno. Every field is set before the block is published, first on the tree
 * and then on the per-CPU list (upstream's 3e3de7947c75 fixed a later
 * kernel's vb->cpu, which v4.19 does not have; "vb-publish-before-init"
 * re-creates that ordering on v4.19's fields).
 */
function new_vmap_block(order: number, gfpMask: number): number {
  const node = NUMA_NO_NODE;
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
  INIT_LIST_HEAD(vb + B.free_list);
  // inject "vb-publish-before-init": on this CPU's queue before its area and counters are set.
  if (injectVbPublishBeforeInit) queue_new_vmap_block(vb);
  I32[(vb + B.va) >> 2] = va;
  // At least something should be left free.
  if (VMAP_BBMAP_BITS <= 1 << order)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: new_vmap_block: VMAP_BBMAP_BITS <= 1 << ${order}`);
  I32[(vb + B.free) >> 2] = VMAP_BBMAP_BITS - (1 << order);
  I32[(vb + B.dirty) >> 2] = 0;
  I32[(vb + B.dirty_min) >> 2] = VMAP_BBMAP_BITS;
  I32[(vb + B.dirty_max) >> 2] = 0;

  const vb_idx = addr_to_vb_idx(va_start);
  spin_lock(vmap_block_tree_lock.ptr);
  const err = vmap_block_tree_insert(vb_idx, vb);
  spin_unlock(vmap_block_tree_lock.ptr);
  if (err)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: new_vmap_block: vb_idx ${vb_idx} already in vmap_block_tree`);

  if (!injectVbPublishBeforeInit) queue_new_vmap_block(vb);
  return vaddr;
}

/** new_vmap_block's last step (v4.19): the block on this CPU's queue, for its vb_allocs and every CPU's walkers. */
function queue_new_vmap_block(vb: number): void {
  // get_cpu_var(vmap_block_queue): this CPU's queue, preemption off.
  get_cpu();
  const vbq = this_cpu_ptr(vmap_block_queue);
  spin_lock(vbq + Q.lock);
  list_add_tail_rcu(vb + B.free_list, vbq + Q.free);
  spin_unlock(vbq + Q.lock);
  put_cpu();
}

/** free_vmap_block (v4.19): take `vb` off the tree, hand its area to the lazy purge, free it after a grace period. */
function free_vmap_block(vb: number): void {
  const va = I32[(vb + B.va) >> 2]!;
  const vb_idx = addr_to_vb_idx(F64[(va + VA_START) >> 3]!);
  spin_lock(vmap_block_tree_lock.ptr);
  const tmp = vmap_block_tree_delete(vb_idx);
  spin_unlock(vmap_block_tree_lock.ptr);
  if (tmp !== vb) throw new KernelBug(`kernel BUG at mm/vmalloc.c: free_vmap_block: tree holds ${tmp} for block ${vb}`);

  free_vmap_area_noflush(va);
  kfree_rcu(vb, B.rcu_head);
}

/** A block with nothing in use (every page it handed out came back), not yet claimed by a purge. */
function vb_fragmented(free: number, dirty: number): boolean {
  return free + dirty === VMAP_BBMAP_BITS && dirty !== VMAP_BBMAP_BITS;
}

/**
 * purge_fragmented_blocks (v4.19): free CPU `cpu`'s blocks that have nothing
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
      // inject "vb-purge-wrong-lock": this CPU's queue lock, not the purged queue's (before 8c61291fd850).
      const qlock = injectVbPurgeWrongLock ? this_cpu_ptr(vmap_block_queue) + Q.lock : vbq + Q.lock;
      spin_lock(qlock);
      list_del_rcu(vb + B.free_list);
      spin_unlock(qlock);
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

/** purge_fragmented_blocks_allcpus (v4.19): vmalloc.ts's purge_vmap_area_lazy and vm_unmap_aliases call it. */
export function purge_fragmented_blocks_allcpus(): void {
  for (const cpu of for_each_possible_cpu()) purge_fragmented_blocks(cpu);
}

/**
 * vb_alloc (v4.19): `size` bytes (a multiple of the page size, at most
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
      // inject "vb-list-del-init": the entry is pointed at itself under the RCU walkers, as before de5604231ce4.
      if (injectVbListDelInit) list_del_init(vb + B.free_list);
      else list_del_rcu(vb + B.free_list);
      spin_unlock(vbq + Q.lock);
    }
    spin_unlock(vb + B.lock);
    break;
  }
  put_cpu();
  rcu_read_unlock();

  // Allocate a new block if nothing was found.
  if (vaddr === 0) vaddr = new_vmap_block(order, gfpMask);
  return vaddr;
}

/**
 * vb_free (v4.19): unmap `size` bytes at `addr` and mark their 2^order pages
 * dirty; a block that becomes all dirty is freed. No TLB flush: v4.19 flushes
 * here only under debug_pagealloc (not configured in vmsim); the stale
 * translations go at the next vm_unmap_aliases or lazy purge. flush_cache_vunmap
 * is a no-op on arm64.
 */
function vb_free(addr: number, size: number): void {
  if (size % PAGE_SIZE !== 0) throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_free: offset_in_page(${size})`);
  if (size > PAGE_SIZE * VMAP_MAX_ALLOC)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_free: size ${size} > PAGE_SIZE*VMAP_MAX_ALLOC`);

  const order = get_order(size);
  const offset = Math.floor((addr % VMAP_BLOCK_SIZE) / PAGE_SIZE);

  const vb_idx = addr_to_vb_idx(addr);
  spin_lock(vmap_block_tree_lock.ptr);
  const vb = vmap_block_tree_lookup(vb_idx);
  spin_unlock(vmap_block_tree_lock.ptr);
  if (vb === 0)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: vb_free: no vmap_block at ${formatKaddr(layout, addr)}`);

  vunmap_page_range(addr, addr + size);

  const minIdx = (vb + B.dirty_min) >> 2;
  const maxIdx = (vb + B.dirty_max) >> 2;
  // inject "vb-dirty-range-unlocked": the dirty range widened before vb->lock is taken.
  if (injectVbDirtyRangeUnlocked) {
    I32[minIdx] = Math.min(I32[minIdx]!, offset);
    I32[maxIdx] = Math.max(I32[maxIdx]!, offset + (1 << order));
  }
  spin_lock(vb + B.lock);
  // Expand the dirty range.
  if (!injectVbDirtyRangeUnlocked) {
    I32[minIdx] = Math.min(I32[minIdx]!, offset);
    I32[maxIdx] = Math.max(I32[maxIdx]!, offset + (1 << order));
  }
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
 * vm_unmap_aliases (v4.19): flush every lazily unmapped vmap address — the
 * dirty ranges of the blocks still on a free list and the areas awaiting the
 * lazy purge — so no CPU keeps a TLB entry aliasing a page the caller owns.
 * (v5.2 split it into _vm_unmap_aliases(start, end, flush); v4.19 has this one.)
 */
export function vm_unmap_aliases(): void {
  trace_event(EV_VM_UNMAP_ALIASES, 0, 0);
  let start = Number.POSITIVE_INFINITY; // ULONG_MAX
  let end = 0;
  let flush = false;

  if (I32[vmap_initialized.ptr >> 2] === 0) return;

  might_sleep();
  if (tracing) trace_graph_entry(TF_VM_UNMAP_ALIASES, 0, 0);

  for (const cpu of for_each_possible_cpu()) {
    const head = per_cpu_ptr(vmap_block_queue, cpu) + Q.free;
    rcu_read_lock();
    for (let p = list_next_rcu(head); p !== head; p = list_next_rcu(p)) {
      const vb = p - B.free_list;
      spin_lock(vb + B.lock);
      if (I32[(vb + B.dirty) >> 2] !== 0) {
        const va = I32[(vb + B.va) >> 2]!;
        if (virt_addr_valid(va)) {
          const va_start = F64[(va + VA_START) >> 3]!;
          const s = va_start + I32[(vb + B.dirty_min) >> 2]! * PAGE_SIZE;
          const e = va_start + I32[(vb + B.dirty_max) >> 2]! * PAGE_SIZE;
          start = Math.min(s, start);
          end = Math.max(e, end);
          flush = true;
        } else wildPointerOops(va);
      }
      spin_unlock(vb + B.lock);
    }
    rcu_read_unlock();
  }

  mutex_lock(vmap_purge_lock.ptr);
  purge_fragmented_blocks_allcpus();
  if (!__purge_vmap_area_lazy(start, end) && flush) flush_tlb_kernel_range(start, end);
  mutex_unlock(vmap_purge_lock.ptr);
  if (tracing) trace_graph_return(TF_VM_UNMAP_ALIASES, 0);
}

/**
 * The oops of vm_unmap_aliases' load of vb->va->va_start through a pointer
 * outside the linear map (a block it reached before the block was set up):
 * kmalloc'ed records are arena offsets with no MMU in front, so the walker
 * checks where the kernel's load would fault. A pointer of slab poison
 * stands for the kernel's 8 poison bytes. The hardware's fault (camelCase):
 * the report's call chain starts at vm_unmap_aliases.
 */
function wildPointerOops(p: number): void {
  const word = (p >>> 0).toString(16).padStart(8, "0");
  const addr = p === POISON_FREE * 0x01010101 && layout.vaBits > 32 ? word + word : word;
  reportBug("fault", `Unable to handle kernel paging request at virtual address 0x${addr}`);
}

/*** vm_map_ram / vm_unmap_ram ***/

function bug_on(cond: boolean, what: string): void {
  if (cond) throw new KernelBug(`kernel BUG at mm/vmalloc.c: vm_unmap_ram: BUG_ON(${what})`);
}

/**
 * vm_unmap_ram (v4.19): unmap what vm_map_ram(`mem`, `count`) mapped (the
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
    vb_free(mem, size);
    if (tracing) trace_graph_return(TF_VM_UNMAP_RAM, 0);
    return;
  }

  const va = find_vmap_area(addr);
  bug_on(va === 0, "!va");
  free_unmap_vmap_area(va);
  if (tracing) trace_graph_return(TF_VM_UNMAP_RAM, 0);
}

/**
 * vm_map_ram (v4.19): map `count` pages (`pages`: arena address of an int32
 * array of struct page pointers) at one kernel address. Up to VMAP_MAX_ALLOC
 * pages come from this CPU's blocks, more from alloc_vmap_area (an area with
 * no vm_struct and no guard page). Returns the kaddr, or 0 (NULL) on failure.
 */
export function vm_map_ram(pages: number, count: number, node: number, prot: Pgprot): number {
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
  // vb_alloc's NULL for count 0 is not an ERR_PTR: it reaches vmap_page_range, which BUGs (fixed in v6.9, ac0476e8ca2e).
  if (vmap_page_range(addr, addr + size, prot, pages) < 0) {
    vm_unmap_ram(mem, count);
    if (tracing) trace_graph_return(TF_VM_MAP_RAM, 0);
    return 0;
  }
  trace_event(EV_VM_MAP_RAM_RET, mem, count);
  if (tracing) trace_graph_return(TF_VM_MAP_RAM, mem);
  return mem;
}

/*** Boot ***/

/** vmalloc_init's per-CPU queue setup (v4.19): vmalloc.ts's vmalloc_init calls it before anything maps. */
export function init_vmap_block_queues(): void {
  for (const cpu of for_each_possible_cpu()) {
    const vbq = per_cpu_ptr(vmap_block_queue, cpu);
    spin_lock_init(vbq + Q.lock, "vmap_block_queue.lock");
    INIT_LIST_HEAD(vbq + Q.free);
  }
}

registerVmapBlock({
  purge_fragmented_blocks_allcpus,
  init_vmap_block_queues,
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

/** The CPU whose vbq->free list holds each block. */
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

/** Every block on vmap_block_tree, in address order. */
export function vmapBlocks(): VmapBlockInfo[] {
  const on = queuedOn();
  const out: VmapBlockInfo[] = [];
  for (let n = rb_first(vmap_block_tree.ptr); n !== 0; n = rb_next(n)) {
    const vb = n - B.rb_node;
    out.push({
      start: vb_va_start(vb),
      free: I32[(vb + B.free) >> 2]!,
      dirty: I32[(vb + B.dirty) >> 2]!,
      dirtyMin: I32[(vb + B.dirty_min) >> 2]!,
      dirtyMax: I32[(vb + B.dirty_max) >> 2]!,
      cpu: on.get(vb)?.[0] ?? -1,
    });
  }
  return out;
}

/**
 * The per-CPU allocator's invariants at a quiescent point: the tree is a
 * valid rbtree ordered by vb_idx; each block's area is one aligned
 * VMAP_BLOCK_SIZE with no vm_struct (not VM_VM_AREA); its counters are consistent; it is on
 * exactly one queue iff it has free pages, and every queued block is on the
 * tree; the pages it has not handed out are unmapped. Returns the violations.
 */
export function checkVmapBlocks(): string[] {
  const errs: string[] = [];
  const rb = checkRbTree(vmap_block_tree.ptr);
  if (rb !== null) return [`vmap_block_tree: ${rb}`];
  const on = queuedOn();
  const inTree = new Set<number>();
  let prevIdx = -1;
  for (let n = rb_first(vmap_block_tree.ptr); n !== 0; n = rb_next(n)) {
    const vb = n - B.rb_node;
    inTree.add(vb);
    const va = I32[(vb + B.va) >> 2]!;
    const start = F64[(va + VA_START) >> 3]!;
    const at = `block ${formatKaddr(layout, start)}`;
    const idx = addr_to_vb_idx(start);
    if (idx <= prevIdx) errs.push(`${at}: vb_idx ${idx} out of order after ${prevIdx}`);
    prevIdx = idx;
    if (start % VMAP_BLOCK_SIZE !== 0 || F64[(va + VA_END) >> 3]! - start !== VMAP_BLOCK_SIZE)
      errs.push(`${at}: area is not one aligned VMAP_BLOCK_SIZE (${VMAP_BLOCK_SIZE})`);
    if (I32[(va + VMAP_AREA.off.flags) >> 2]! & VM_VM_AREA) errs.push(`${at}: its vmap_area has a vm_struct`);
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
  }
  for (const vb of on.keys()) if (!inTree.has(vb)) errs.push(`queued block ${vb} is not on vmap_block_tree`);
  return errs;
}
