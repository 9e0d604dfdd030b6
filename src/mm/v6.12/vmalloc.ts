/**
 * mm/vmalloc.c (v6.12): generation 3 of vmsim's vmalloc, "vmap nodes" — the
 * KVA allocator of v5.2+ (an augmented free-space tree searched for the
 * lowest fit, merge on free) under per-node busy and lazy trees with their
 * own locks, per-node size pools with their decay, the lazy purge spread
 * over helper work items, and a shrinker that gives pooled areas back.
 *
 * Read it beside the kernel's file: the sections and their order are the
 * kernel's ("Per cpu kva allocator" lives in src/mm/v6.12/vmap_block.ts), and
 * each function names the kernel function it follows. Where vmsim differs,
 * the function says why.
 *
 * 4 KiB pages only: no huge vmalloc mappings (vmap_allow_huge is false, as on
 * a kernel without CONFIG_HAVE_ARCH_HUGE_VMALLOC; ioremap_max_page_shift is
 * PAGE_SHIFT), so vm_area_alloc_pages runs at order 0 and every mapping is
 * made of PTEs. No KASAN, no kmemleak, no memcg accounting.
 *
 * Addresses: a kernel virtual address is a kaddr (va - layout.base, see
 * src/shared/layouts.ts), stored in f64 fields. The free space starts as the
 * kernel's [1, ULONG_MAX): as kaddrs its ends lie near ±2^64 and round in
 * f64, which is harmless — no allocation reaches them and they are never
 * printed. addr_to_node_id hashes the full address, as the kernel does.
 *
 * Locking, as in the kernel: free_vmap_area_lock guards free_vmap_area_root
 * and free_vmap_area_list; each vmap node's busy.lock and lazy.lock guard its
 * busy and lazy rb_lists, its pool_lock its size pools (whose lengths are
 * also read locklessly with READ_ONCE); vmap_purge_lock (a mutex) serialises
 * purges; vmap_lazy_nr and nr_vmalloc_pages are atomics. A vmap_area is on
 * exactly one of: the free tree, a busy tree, a lazy tree, a node's
 * purge_list (while a purge owns it), a pool — the lock of that one guards it.
 */
import {
  DEFINE_GLOBAL,
  DEFINE_PER_CPU,
  F64,
  I32,
  U8,
  onMachineReset,
  per_cpu_ptr,
  staticInit,
  theArena,
} from "../../shared/arena.js";
import { PAGE_SHIFT, PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { defineKernelFn } from "../../shared/functab.js";
import { formatKaddr, type Layout } from "../../shared/layouts.js";
import { KernelBug, reportBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { EV_VFREE, EV_VMALLOC, EV_VMALLOC_RET, EV_VUNMAP, trace_event } from "../../shared/events.js";
import { num_online_cpus, onSetCurrentCpu, smp_processor_id, this_cpu_ptr } from "../../shared/smp.js";
import {
  TF_PURGE_VMAP_AREA_LAZY,
  TF_VFREE,
  TF_VMALLOC,
  TF_VMALLOCINFO,
  TF_VUNMAP,
  trace_graph_entry,
  trace_graph_return,
  tracing,
} from "../../trace/trace.js";
import { ksym, ksym_name } from "../../kernel/kallsyms.js";
import {
  INIT_LIST_HEAD,
  LIST_HEAD,
  list_add,
  list_del_init,
  list_empty,
  list_move_tail,
  list_next,
  list_prev,
  list_replace_init,
} from "../../lib/list.js";
import { LLIST_HEAD, LLIST_NODE, init_llist_head, llist_add, llist_del_all, llist_next } from "../../lib/llist.js";
import { debug_check_no_obj_freed } from "../../lib/debugobjects.js";
import {
  RB_CLEAR_NODE,
  RB_DECLARE_CALLBACKS,
  RB_EMPTY_NODE,
  RB_NODE,
  RB_ROOT,
  rb_erase,
  rb_erase_augmented,
  rb_insert_augmented,
  rb_insert_color,
  rb_link_node,
  rb_parent,
  rb_prev,
} from "../../lib/rbtree.js";
import {
  ATOMIC_LONG_T,
  READ_ONCE,
  WRITE_ONCE,
  atomic_long_add,
  atomic_long_add_return,
  atomic_long_read,
  atomic_long_sub,
} from "../../locks/atomic.js";
import { debug_check_no_locks_freed, lockdep_assert_held } from "../../locks/lockdep.js";
import { cond_resched, might_sleep } from "../../locks/might_sleep.js";
import { DEFINE_MUTEX, mutex_lock, mutex_unlock } from "../../locks/mutex.js";
import {
  DEFINE_SPINLOCK,
  SPINLOCK_T,
  spin_lock,
  spin_lock_init,
  spin_trylock,
  spin_unlock,
} from "../../locks/spinlock.js";
import { for_each_online_cpu, for_each_possible_cpu, num_possible_cpus } from "../../percpu/percpu.js";
import { in_interrupt, preempt_count } from "../../percpu/preempt.js";
import { NMI_MASK } from "../../shared/preempt_mask.js";
import { INIT_WORK, WORK_STRUCT, flush_work, schedule_work, schedule_work_on } from "../../kernel/workqueue.js";
import {
  GFP_DMA,
  GFP_DMA32,
  GFP_KERNEL,
  GFP_NOWAIT,
  GFP_RECLAIM_MASK,
  __GFP_HIGHMEM,
  __GFP_NOWARN,
  __GFP_ZERO,
  format_gfp,
} from "../gfp.js";
import { pfn_to_page } from "../mm_types.js";
import { __free_page, alloc_page, page_address, page_to_pfn, totalram_pages } from "../page_alloc.js";
import {
  PAGE_KERNEL,
  type Pgprot,
  kernel_ptep_lookup,
  ptep_get,
  pte_pfn,
  pte_present,
  vmap_page_range,
  vunmap_page_range,
} from "../pgtable.js";
import {
  SHRINK_EMPTY,
  SHRINK_STOP,
  defineShrinkerFn,
  shrinker_alloc,
  shrinker_register,
  shrinker_set_callbacks,
} from "../shrinker.js";
import {
  SLAB_PANIC,
  kfree,
  kmalloc,
  kmem_cache_alloc,
  kmem_cache_create,
  kmem_cache_free,
  kmem_cache_zalloc,
  kzalloc,
} from "../slab.js";
import { flush_tlb_kernel_range } from "../tlbflush.js";
import { ALIGN, PAGE_ALIGN, is_power_of_2 } from "../../lib/log2.js";

/*** include/linux/vmalloc.h (v6.12) ***/

/** vm_struct flags (include/linux/vmalloc.h, v6.12). */
export const VM_IOREMAP = 0x00000001; /* ioremap() and friends */
export const VM_ALLOC = 0x00000002; /* vmalloc() */
export const VM_MAP = 0x00000004; /* vmap()ed pages */
export const VM_USERMAP = 0x00000008; /* suitable for remap_vmalloc_range */
export const VM_DMA_COHERENT = 0x00000010; /* dma_alloc_coherent */
export const VM_UNINITIALIZED = 0x00000020; /* vm_struct is not fully initialized */
export const VM_NO_GUARD = 0x00000040; /* ***DANGEROUS*** don't add guard page */
export const VM_KASAN = 0x00000080; /* has allocated kasan shadow memory */
export const VM_FLUSH_RESET_PERMS = 0x00000100; /* reset direct map and flush TLB on unmap, can't be freed in atomic context */
export const VM_MAP_PUT_PAGES = 0x00000200; /* put pages and free array in vfree */
export const VM_ALLOW_HUGE_VMAP = 0x00000400; /* Allow for huge pages on archs with HAVE_ARCH_HUGE_VMALLOC */
export const VM_SPARSE = 0x00001000; /* sparse vm_area. not all pages are present. */

/** NUMA_NO_NODE: any node (vmsim has one memory node). */
export const NUMA_NO_NODE = -1;

const EINVAL = 22;
const ENOMEM = 12;
const EBUSY = 16;

/**
 * struct vmap_area (v6.12). From vmap_area_cachep; in one tree at a time (see
 * the file header). The kernel's union of subtree_max_size (free tree) and vm
 * (busy tree) is two fields here: an arena struct has no unions.
 */
export const VMAP_AREA = defineStruct("vmap_area", [
  /** [va_start, va_end): kaddrs. */
  { name: "va_start", type: "f64", guard: "the lock of the tree or list the area is on" },
  { name: "va_end", type: "f64", guard: "the lock of the tree or list the area is on" },
  /** address sorted rbtree */
  { name: "rb_node", type: RB_NODE, guard: "the lock of the tree or list the area is on" },
  /** address sorted list (busy, lazy, free; or a pool, a purge list) */
  { name: "list", type: LIST_HEAD, guard: "the lock of the tree or list the area is on" },
  /** in "free" tree: the largest free block in this subtree */
  { name: "subtree_max_size", type: "f64", guard: "free_vmap_area_lock" },
  /** in "busy" tree */
  { name: "vm", type: "ptr", guard: "vn->busy.lock" },
  /** VMAP_RAM | VMAP_BLOCK, and the encoded vmap node id (encode_vn_id) in bits 8+. */
  { name: "flags", type: "i32", guard: "vn->busy.lock" },
  /**
   * vmsim's debug field, not the kernel's (as KASAN's alloc_info rides along
   * with a slab object): the CPU that allocated the area, for `vmsim map`.
   */
  { name: "alloc_cpu", type: "i32", guard: "vn->busy.lock" },
]);

/** struct vm_struct (v6.12, without CONFIG_HAVE_ARCH_HUGE_VMALLOC's page_order). */
export const VM_STRUCT = defineStruct("vm_struct", [
  /** vmlist, before vmalloc_init only. */
  { name: "next", type: "ptr", guard: "init" },
  { name: "addr", type: "f64", guard: "init" },
  /** Bytes, the guard page included unless VM_NO_GUARD (get_vm_area_size subtracts it). */
  { name: "size", type: "f64", guard: "init" },
  /** Set before the area is published; then only its owner changes it (VM_UNINITIALIZED). */
  { name: "flags", type: "i32", guard: "owner" },
  /**
   * The page array (int32 struct page pointers): an arena offset when
   * kmalloc'ed, a kaddr when vmalloc'ed (past a page) — hence f64, as a kaddr
   * needs up to 48 bits. Read entries with {@link vmStructPage}.
   */
  { name: "pages", type: "f64", guard: "owner" },
  { name: "nr_pages", type: "i32", guard: "owner" },
  { name: "phys_addr", type: "f64", guard: "init" },
  /** Symbol id of the allocating function (src/kernel/kallsyms.ts), printed as %pS. */
  { name: "caller", type: "i32", guard: "init" },
  /** The size the caller asked for (vrealloc's), before page alignment and guard. */
  { name: "requested_size", type: "f64", guard: "owner" },
]);

const VA = VMAP_AREA.off;
const VM = VM_STRUCT.off;
const RB = VA.rb_node;
const LST = VA.list;
const RB_LEFT = RB_NODE.off.rb_left;
const RB_RIGHT = RB_NODE.off.rb_right;
const RB_ROOT_NODE = RB_ROOT.off.rb_node;

/* Field accessors of vmap_area and vm_struct (also the checker's). Records are 8-aligned. */
export const va_start = (va: number) => F64[(va + VA.va_start) >> 3]!;
export const va_end = (va: number) => F64[(va + VA.va_end) >> 3]!;
export const va_flags = (va: number) => I32[(va + VA.flags) >> 2]!;
export const va_vm = (va: number) => I32[(va + VA.vm) >> 2]!;
export const va_subtree_max_size = (va: number) => F64[(va + VA.subtree_max_size) >> 3]!;
export const va_alloc_cpu = (va: number) => I32[(va + VA.alloc_cpu) >> 2]!;
export const vm_addr = (vm: number) => F64[(vm + VM.addr) >> 3]!;
export const vm_size = (vm: number) => F64[(vm + VM.size) >> 3]!;
export const vm_flags = (vm: number) => I32[(vm + VM.flags) >> 2]!;
export const vm_pages = (vm: number) => F64[(vm + VM.pages) >> 3]!;
export const vm_nr_pages = (vm: number) => I32[(vm + VM.nr_pages) >> 2]!;
const set_va_start = (va: number, v: number) => {
  F64[(va + VA.va_start) >> 3] = v;
};
const set_va_end = (va: number, v: number) => {
  F64[(va + VA.va_end) >> 3] = v;
};

/** get_vm_area_size (include/linux/vmalloc.h, v6.12): the area's size without its guard page. */
export function get_vm_area_size(vm: number): number {
  return vm_flags(vm) & VM_NO_GUARD ? vm_size(vm) : vm_size(vm) - PAGE_SIZE;
}

/*** The address layout (arch/arm64/include/asm/memory.h; immutable config, cached per thread) ***/

/** VMALLOC_START, VMALLOC_END, MODULES_VADDR, MODULES_END as kaddrs (live bindings, set on attach). */
export let VMALLOC_START = 0;
export let VMALLOC_END = 0;
export let MODULES_VADDR = 0;
export let MODULES_END = 0;
let layout: Layout;
/** 2^64 - base (2^32 on arm32): a kaddr sum at or past this wrapped in the kernel's unsigned long. */
let KADDR_WRAP = 0;
/** Kernel address 0 as a kaddr (KADDR_WRAP - 2^64; 0 on arm32). */
let KADDR_NULL = 0;
/** BITS_PER_LONG == 64. */
let IS_64BIT = true;
/** sizeof(struct page *). */
let PTR_BYTES = 8;
/** IOREMAP_MAX_ORDER: PUD_SHIFT on arm64, the generic 7 + PAGE_SHIFT on arm32. */
let IOREMAP_MAX_ORDER = 30;
/** SHMLBA: PAGE_SIZE on arm64, 4 * PAGE_SIZE on arm32. */
let SHMLBA = PAGE_SIZE;

/* Deliberate bugs (src/shared/inject.ts), read once per arena: off, each hook is one branch on a false flag. */
let injectVnBusyLockNested = false;

onSetCurrentCpu(() => {
  injectVnBusyLockNested = theArena().config.inject.includes("vn-busy-lock-nested");
  layout = layoutOf(theArena().config);
  VMALLOC_START = layout.vmallocStart;
  VMALLOC_END = layout.vmallocEnd;
  MODULES_VADDR = layout.modulesStart;
  MODULES_END = layout.modulesEnd;
  KADDR_WRAP = 2 ** layout.vaBits;
  IS_64BIT = layout.vaBits > 32;
  KADDR_NULL = KADDR_WRAP - (IS_64BIT ? 2 ** 64 : 2 ** 32);
  PTR_BYTES = IS_64BIT ? 8 : 4;
  IOREMAP_MAX_ORDER = IS_64BIT ? 30 : 7 + PAGE_SHIFT;
  SHMLBA = IS_64BIT ? PAGE_SIZE : 4 * PAGE_SIZE;
});

function hexKaddr(addr: number): string {
  return formatKaddr(layout, addr);
}

function warn(text: string): void {
  reportBug("WARN", `WARNING: CPU: ${smp_processor_id()} at mm/vmalloc.c ${text}`);
}

/** is_vmalloc_addr (v6.12). */
export function is_vmalloc_addr(addr: number): boolean {
  return addr >= VMALLOC_START && addr < VMALLOC_END;
}

/** struct vfree_deferred (v6.12): vfree()s from atomic context, freed later by delayed_vfree_work. */
export const VFREE_DEFERRED = defineStruct("vfree_deferred", [
  /** Lock-less: any context adds, delayed_vfree_work takes everything. */
  { name: "list", type: LLIST_HEAD, guard: "atomic" },
  /** INIT_WORK at boot; the workqueue guards its own fields. */
  { name: "wq", type: WORK_STRUCT, guard: "init" },
]);
export const vfree_deferred = DEFINE_PER_CPU("6.12:vfree_deferred", VFREE_DEFERRED);

/**
 * The llist node vfree_atomic threads through the freed area. The kernel
 * writes the node into the area's first bytes through the vmalloc mapping;
 * vmsim's llist pointers are arena offsets, so the node is those bytes seen
 * through the linear map (the page vmalloc_to_page finds), and the area's
 * kaddr — which a linear address no longer encodes — is kept right after it.
 */
const DEFERRED_NODE = defineStruct("vfree_deferred_node", [
  { name: "node", type: LLIST_NODE, guard: "init" },
  { name: "addr", type: "f64", guard: "init" },
]);

/*** Page table manipulation functions ***/
/* The page-table walkers are src/mm/pgtable.ts's (vmap_page_range, vunmap_page_range). */

/**
 * vunmap_range_noflush (v6.12): clear the PTEs of [start, end); the caller
 * flushes the TLB (or leaves that to the lazy purge).
 */
export function vunmap_range_noflush(start: number, end: number): void {
  vunmap_page_range(start, end);
}

/** vunmap_range (v6.12): unmap and flush the TLB (flush_cache_vunmap is a no-op on arm64). */
export function vunmap_range(addr: number, end: number): void {
  vunmap_range_noflush(addr, end);
  flush_tlb_kernel_range(addr, end);
}

/**
 * vmap_pages_range_noflush (v6.12, page_shift PAGE_SHIFT only): map
 * [addr, end) to `pages`, an arena array of int32 struct page pointers.
 * 0 or -ENOMEM (also for a PTE already present, after a WARN).
 */
export function vmap_pages_range_noflush(addr: number, end: number, prot: Pgprot, pages: number): number {
  const r = vmap_page_range(addr, end, prot, pages);
  return r < 0 ? r : 0;
}

/** vmap_pages_range (v6.12; flush_cache_vmap is a no-op on arm64). 0 or -errno. */
export function vmap_pages_range(addr: number, end: number, prot: Pgprot, pages: number, _pageShift: number): number {
  return vmap_pages_range_noflush(addr, end, prot, pages);
}

/** is_vmalloc_or_module_addr (v6.12): arm and arm64 put modules in their own area. */
export function is_vmalloc_or_module_addr(addr: number): boolean {
  if (addr >= MODULES_VADDR && addr < MODULES_END) return true;
  return is_vmalloc_addr(addr);
}

/** vmalloc_to_page (v6.12): walk a vmap address to the struct page it maps, 0 when none. */
export function vmalloc_to_page(addr: number): number {
  const ptep = kernel_ptep_lookup(addr - (addr % PAGE_SIZE));
  if (!ptep) return 0;
  const pte = ptep_get(ptep);
  return pte_present(pte) ? pfn_to_page(pte_pfn(pte)) : 0;
}

/** vmalloc_to_pfn (v6.12): map a vmalloc()-space virtual address to the physical page frame number. */
export function vmalloc_to_pfn(addr: number): number {
  return page_to_pfn(vmalloc_to_page(addr));
}

/*** Global kva allocator ***/

export const free_vmap_area_lock = DEFINE_SPINLOCK("6.12:free_vmap_area_lock");

const BOOL = defineStruct("bool", [{ name: "v", type: "i32", guard: "init" }]);
/** Set once vmalloc_init ran (__read_mostly). */
export const vmap_initialized = DEFINE_GLOBAL("6.12:vmap_initialized", BOOL);

/**
 * This kmem_cache is used for vmap_area objects. Instead of allocating from
 * slab we reuse an object from this cache to make things faster. Especially
 * in "no edge" splitting of free block.
 */
const KMEM_CACHE_PTR = defineStruct("kmem_cache_ptr", [{ name: "cachep", type: "ptr", guard: "init" }]);
export const vmap_area_cachep = DEFINE_GLOBAL("6.12:vmap_area_cachep", KMEM_CACHE_PTR);

/** Used in pair with free_vmap_area_root: O(1) access to prev/next for fast coalescing. */
export const free_vmap_area_list = DEFINE_GLOBAL("6.12:free_vmap_area_list", LIST_HEAD);
staticInit(() => INIT_LIST_HEAD(free_vmap_area_list.ptr));

/**
 * The augmented red-black tree of the free vmap space, sorted by va_start;
 * each node keeps the largest free block of its subtree (subtree_max_size).
 */
export const free_vmap_area_root = DEFINE_GLOBAL("6.12:free_vmap_area_root", RB_ROOT);

/** A CPU preloaded with one object for the "no edge" split case (NE_FIT_TYPE). */
const VMAP_AREA_PTR = defineStruct("vmap_area_ptr", [{ name: "p", type: "ptr", guard: "owner" }]);
export const ne_fit_preload_node = DEFINE_PER_CPU("6.12:ne_fit_preload_node", VMAP_AREA_PTR);

/** struct rb_list (v6.12): a tree and an address-sorted list, one entity under one lock. */
export const RB_LIST = defineStruct("rb_list", [
  { name: "root", type: RB_ROOT, guard: "lock" },
  { name: "head", type: LIST_HEAD, guard: "lock" },
  { name: "lock", type: SPINLOCK_T, guard: "the lock itself" },
]);

/** VAs up to 1M size live in the pools; the index is the number of pages - 1. */
export const MAX_VA_SIZE_PAGES = 256;

/** struct vmap_pool (v6.12): ready-to-go VAs of one size. */
export const VMAP_POOL = defineStruct("vmap_pool", [
  { name: "head", type: LIST_HEAD, guard: "vn->pool_lock" },
  /** unsigned long: written under pool_lock with WRITE_ONCE, read with READ_ONCE. */
  { name: "len", type: "i32", guard: "vn->pool_lock (READ_ONCE readers)" },
]);

/** struct vmap_node (v6.12): users allocate through nodes rather than one global heap. */
export const VMAP_NODE = defineStruct("vmap_node", [
  /** Simple size segregated storage. */
  { name: "pool", type: VMAP_POOL, count: MAX_VA_SIZE_PAGES, guard: "pool_lock" },
  { name: "pool_lock", type: SPINLOCK_T, guard: "the lock itself" },
  { name: "skip_populate", type: "i32", guard: "vmap_purge_lock" },
  /** Bookkeeping data of this node. */
  { name: "busy", type: RB_LIST, guard: "busy.lock" },
  { name: "lazy", type: RB_LIST, guard: "lazy.lock" },
  /** Ready-to-free areas. */
  { name: "purge_list", type: LIST_HEAD, guard: "vmap_purge_lock (and the purge work it runs)" },
  { name: "purge_work", type: WORK_STRUCT, guard: "vmap_purge_lock" },
  { name: "nr_purged", type: "i32", guard: "vmap_purge_lock (and the purge work it runs)" },
]);
const VN = VMAP_NODE.off;
const POOL_STRIDE = VMAP_POOL.size;
/** Offsets of the rb_lists' parts inside a vmap_node. */
export const BUSY_ROOT = VN.busy + RB_LIST.off.root;
export const BUSY_HEAD = VN.busy + RB_LIST.off.head;
export const BUSY_LOCK = VN.busy + RB_LIST.off.lock;
export const LAZY_ROOT = VN.lazy + RB_LIST.off.root;
export const LAZY_HEAD = VN.lazy + RB_LIST.off.head;
export const LAZY_LOCK = VN.lazy + RB_LIST.off.lock;
export const POOL_LOCK = VN.pool_lock;

/** The initial single node: balancing is off until vmap_init_nodes sizes the node layer. */
export const single = DEFINE_GLOBAL("6.12:single", VMAP_NODE);

const UINT = defineStruct("unsigned_int", [{ name: "v", type: "i32", guard: "init" }]);
const VMAP_NODE_PTR = defineStruct("vmap_node_ptr", [{ name: "p", type: "ptr", guard: "init" }]);
/** vmap_nodes, nr_vmap_nodes, vmap_zone_size (__read_mostly: set by vmap_init_nodes, read-only afterwards). */
export const vmap_nodes = DEFINE_GLOBAL("6.12:vmap_nodes", VMAP_NODE_PTR);
export const nr_vmap_nodes = DEFINE_GLOBAL("6.12:nr_vmap_nodes", UINT);
export const vmap_zone_size = DEFINE_GLOBAL("6.12:vmap_zone_size", UINT);
staticInit(() => {
  I32[vmap_nodes.ptr >> 2] = single.ptr;
  I32[nr_vmap_nodes.ptr >> 2] = 1;
  I32[vmap_zone_size.ptr >> 2] = 1;
});

/** Harness: the node count (nr_vmap_nodes). */
export function nrVmapNodes(): number {
  return I32[nr_vmap_nodes.ptr >> 2]!;
}

/** Harness: node `i` of vmap_nodes (its address). */
export function vmapNode(i: number): number {
  return I32[vmap_nodes.ptr >> 2]! + i * VMAP_NODE.size;
}

/**
 * (base / vmap_zone_size) % nr_vmap_nodes for this machine: the kernel hashes
 * the full address, a kaddr is base below it (base is a multiple of the zone
 * size). Cached per thread; -1 until computed for the current node layer.
 */
let zoneBaseMod = -1;
let zoneBaseFor = 0;
const forgetZoneBase = () => {
  zoneBaseMod = -1;
};
onSetCurrentCpu(forgetZoneBase);
onMachineReset(forgetZoneBase);

/** addr_to_node_id (v6.12): the node a VA starting at `addr` belongs to — zones of vmap_zone_size, round robin. */
export function addr_to_node_id(addr: number): number {
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  if (nr === 1) return 0;
  const zone = I32[vmap_zone_size.ptr >> 2]!;
  if (zoneBaseMod < 0 || zoneBaseFor !== nr) {
    zoneBaseMod = Number((layout.base / BigInt(zone)) % BigInt(nr));
    zoneBaseFor = nr;
  }
  return (zoneBaseMod + (Math.floor(addr / zone) % nr)) % nr;
}

/** addr_to_node (v6.12). */
export function addr_to_node(addr: number): number {
  return vmapNode(addr_to_node_id(addr));
}

/** id_to_node (v6.12). */
function id_to_node(id: number): number {
  return vmapNode(id % I32[nr_vmap_nodes.ptr >> 2]!);
}

const BITS_PER_BYTE = 8;

/** encode_vn_id (v6.12): node_id + 1 in bits 8+, so that 0 means "no node". */
function encode_vn_id(nodeId: number): number {
  /* Can store U8_MAX [0:254] nodes. */
  if (nodeId < I32[nr_vmap_nodes.ptr >> 2]!) return (nodeId + 1) << BITS_PER_BYTE;
  /* Warn and no node encoded. */
  warn(`encode_vn_id: Encode wrong node id (${nodeId})`);
  return 0;
}

/** decode_vn_id (v6.12): the node id in `val`, nr_vmap_nodes when none (or a wrong one) is encoded. */
function decode_vn_id(val: number): number {
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  const node_id = (val >>> BITS_PER_BYTE) - 1;
  if (node_id >= 0 && node_id < nr) return node_id;
  /* If it was _not_ zero, warn. */
  if (node_id !== -1) warn(`decode_vn_id: Decode wrong node id (${node_id})`);
  return nr;
}

/** is_vn_id_valid (v6.12). */
function is_vn_id_valid(nodeId: number): boolean {
  return nodeId < I32[nr_vmap_nodes.ptr >> 2]!;
}

/** va_size (v6.12). */
export function va_size(va: number): number {
  return va_end(va) - va_start(va);
}

/** get_subtree_max_size (v6.12): 0 for a NULL node. */
function get_subtree_max_size(node: number): number {
  return node === 0 ? 0 : F64[(node - RB + VA.subtree_max_size) >> 3]!;
}

/** compute_subtree_max_size (v6.12's DEBUG_AUGMENT_PROPAGATE_CHECK helper): max of own size and the children's. */
export function compute_subtree_max_size(va: number): number {
  return Math.max(
    va_size(va),
    get_subtree_max_size(I32[(va + RB + RB_LEFT) >> 2]!),
    get_subtree_max_size(I32[(va + RB + RB_RIGHT) >> 2]!),
  );
}

/** RB_DECLARE_CALLBACKS_MAX(static, free_vmap_area_rb_augment_cb, struct vmap_area, rb_node, unsigned long, subtree_max_size, va_size). */
const free_vmap_area_rb_augment_cb = RB_DECLARE_CALLBACKS(VMAP_AREA, {
  rbfield: "rb_node",
  rbaugmented: "subtree_max_size",
  rbcompute: compute_subtree_max_size,
});

/** DECLARE_WORK(drain_vmap_work, drain_vmap_area_work): scheduled past lazy_max_pages. */
export const drain_vmap_work = DEFINE_GLOBAL("6.12:drain_vmap_work", WORK_STRUCT);

/** Pages backing vmalloc areas (/proc/meminfo's VmallocUsed). */
export const nr_vmalloc_pages = DEFINE_GLOBAL("6.12:nr_vmalloc_pages", ATOMIC_LONG_T);

/** vmalloc_nr_pages (v6.12). */
export function vmalloc_nr_pages(): number {
  return atomic_long_read(nr_vmalloc_pages.ptr);
}

/** __find_vmap_area (v6.12): the area of `root` containing `addr`; the tree's lock held. */
function __find_vmap_area(addr: number, root: number): number {
  let n = I32[(root + RB_ROOT_NODE) >> 2]!;
  while (n) {
    const va = n - RB;
    if (addr < F64[(va + VA.va_start) >> 3]!) n = I32[(n + RB_LEFT) >> 2]!;
    else if (addr >= F64[(va + VA.va_end) >> 3]!) n = I32[(n + RB_RIGHT) >> 2]!;
    else return va;
  }
  return 0;
}

/** __find_vmap_area_exceed_addr (v6.12): the first VA of `root` with addr < va_end, 0 if none. */
function __find_vmap_area_exceed_addr(addr: number, root: number): number {
  let va = 0;
  let n = I32[(root + RB_ROOT_NODE) >> 2]!;
  while (n) {
    const tmp = n - RB;
    if (va_end(tmp) > addr) {
      va = tmp;
      if (va_start(tmp) <= addr) break;
      n = I32[(n + RB_LEFT) >> 2]!;
    } else n = I32[(n + RB_RIGHT) >> 2]!;
  }
  return va;
}

/** find_vmap_area_exceed_addr_lock's second result (`*va`). */
let exceed_va = 0;

/**
 * find_vmap_area_exceed_addr_lock (v6.12): the node holding the first VA
 * with addr < va_end over every node, that node's busy.lock held (the VA in
 * `exceed_va`); 0 when none.
 */
function find_vmap_area_exceed_addr_lock(addr: number): number {
  if (injectVnBusyLockNested) return find_vmap_area_exceed_addr_lock_nested(addr);
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  for (;;) {
    /* repeat: */
    let va_start_lowest = 0;
    let found = false;
    for (let i = 0; i < nr; i++) {
      const vn = vmapNode(i);
      spin_lock(vn + BUSY_LOCK);
      const va = __find_vmap_area_exceed_addr(addr, vn + BUSY_ROOT);
      // The kernel's 0 means "none"; a kaddr 0 is a real address here, hence `found`.
      if (va && (!found || va_start(va) < va_start_lowest)) {
        va_start_lowest = va_start(va);
        found = true;
      }
      spin_unlock(vn + BUSY_LOCK);
    }

    /*
     * Check if found VA exists, it might have gone away. In this case we
     * repeat the search because a VA has been removed concurrently and we
     * need to proceed to the next one, which is a rare case.
     */
    if (!found) return 0;
    const vn = addr_to_node(va_start_lowest);
    spin_lock(vn + BUSY_LOCK);
    exceed_va = __find_vmap_area(va_start_lowest, vn + BUSY_ROOT);
    if (exceed_va) return vn;
    spin_unlock(vn + BUSY_LOCK);
  }
}

/**
 * inject "vn-busy-lock-nested": find_vmap_area_exceed_addr_lock as 53becf32aec1
 * wrote it (v6.9-rc1, until fc2c22693c60): the lowest match's node stays
 * locked while the next node's busy.lock is taken.
 */
function find_vmap_area_exceed_addr_lock_nested(addr: number): number {
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  let va_node = 0;
  for (let i = 0; i < nr; i++) {
    const vn = vmapNode(i);
    spin_lock(vn + BUSY_LOCK);
    const va_lowest = __find_vmap_area_exceed_addr(addr, vn + BUSY_ROOT);
    if (va_lowest && (!va_node || va_start(va_lowest) < va_start(exceed_va))) {
      if (va_node) spin_unlock(va_node + BUSY_LOCK);
      exceed_va = va_lowest;
      va_node = vn;
      continue;
    }
    spin_unlock(vn + BUSY_LOCK);
  }
  return va_node;
}

/** find_va_links's second result (`*parent`). */
let va_links_parent = 0;

/**
 * find_va_links (v6.12): the link (arena address of the child pointer) where
 * `va` goes in `root` — or, when `root` is 0, below `from` — with its parent
 * in va_links_parent; 0 (after a WARN) when `va` overlaps an area there.
 */
function find_va_links(va: number, root: number, from: number): number {
  let cur: number;
  if (root) {
    cur = I32[(root + RB_ROOT_NODE) >> 2]!;
    if (!cur) {
      va_links_parent = 0;
      return root + RB_ROOT_NODE;
    }
  } else {
    cur = from;
  }

  /*
   * Go to the bottom of the tree. When we hit the last point we end up with
   * parent rb_node and correct direction, i name it link, where the new
   * va->rb_node will be attached to.
   */
  const start = va_start(va);
  const end = va_end(va);
  let link: number;
  let tmp_va: number;
  do {
    tmp_va = cur - RB;
    /* During the traversal we also do some sanity check: sides (left/right) or full overlaps. */
    if (end <= F64[(tmp_va + VA.va_start) >> 3]!) link = cur + RB_LEFT;
    else if (start >= F64[(tmp_va + VA.va_end) >> 3]!) link = cur + RB_RIGHT;
    else {
      reportBug(
        "WARN",
        `vmalloc bug: ${hexKaddr(start)}-${hexKaddr(end)} overlaps with ${hexKaddr(va_start(tmp_va))}-${hexKaddr(va_end(tmp_va))}`,
      );
      return 0;
    }
    cur = I32[link >> 2]!;
  } while (cur);

  va_links_parent = tmp_va + RB;
  return link;
}

/** get_va_next_sibling (v6.12): the list entry after the place `link` names; 0 for an empty tree. */
function get_va_next_sibling(parent: number, link: number): number {
  /*
   * The red-black tree where we try to find VA neighbors before merging or
   * inserting is empty, i.e. it means there is no free vmap space.
   */
  if (!parent) return 0;
  const list = parent - RB + LST;
  return parent + RB_RIGHT === link ? list_next(list) : list;
}

/** __link_va (v6.12): link `va` at `link` below `parent`, and into the list `head` after its predecessor. */
function __link_va(va: number, root: number, parent: number, link: number, head: number, augment: boolean): void {
  /* VA is still not in the list, but we can identify its future previous list_head node. */
  if (parent) {
    head = parent - RB + LST;
    if (parent + RB_RIGHT !== link) head = list_prev(head);
  }

  /* Insert to the rb-tree */
  rb_link_node(va + RB, parent, link);
  if (augment) {
    /*
     * Just perform simple insertion to the tree. subtree_max_size is set to
     * zero after insertion, to let augment_tree_propagate_from() put
     * everything in the correct order later on.
     */
    rb_insert_augmented(va + RB, root, free_vmap_area_rb_augment_cb);
    F64[(va + VA.subtree_max_size) >> 3] = 0;
  } else {
    rb_insert_color(va + RB, root);
  }

  /* Address-sort this list */
  list_add(va + LST, head);
}

/** link_va (v6.12). */
function link_va(va: number, root: number, parent: number, link: number, head: number): void {
  __link_va(va, root, parent, link, head, false);
}

/** __unlink_va (v6.12): take `va` out of its tree and list (WARN for one in none). */
function __unlink_va(va: number, root: number, augment: boolean): void {
  if (RB_EMPTY_NODE(va + RB)) {
    warn(`__unlink_va: WARN_ON(RB_EMPTY_NODE(&va->rb_node)) for ${hexKaddr(va_start(va))}-${hexKaddr(va_end(va))}`);
    return;
  }
  if (augment) rb_erase_augmented(va + RB, root, free_vmap_area_rb_augment_cb);
  else rb_erase(va + RB, root);
  list_del_init(va + LST);
  RB_CLEAR_NODE(va + RB);
}

/** unlink_va (v6.12): from a busy or lazy tree (its lock held). */
export function unlink_va(va: number, root: number): void {
  __unlink_va(va, root, false);
}

/** unlink_va_augment (v6.12): from the free tree. */
function unlink_va_augment(va: number, root: number): void {
  __unlink_va(va, root, true);
}

/**
 * augment_tree_propagate_from (v6.12): recompute subtree_max_size from `va`
 * towards the root until a node's value does not change — after an insert,
 * a shrink (allocation) or a growth (merge) of `va`.
 */
function augment_tree_propagate_from(va: number): void {
  free_vmap_area_rb_augment_cb.propagate(va + RB, 0);
}

/** insert_vmap_area (v6.12): into a busy or lazy rb_list. */
function insert_vmap_area(va: number, root: number, head: number): void {
  const link = find_va_links(va, root, 0);
  if (link) link_va(va, root, va_links_parent, link, head);
}

/** insert_vmap_area_augment (v6.12): into the free tree, searching from `from` when given. */
function insert_vmap_area_augment(va: number, from: number, root: number, head: number): void {
  const link = from ? find_va_links(va, 0, from) : find_va_links(va, root, 0);
  if (link) {
    __link_va(va, root, va_links_parent, link, head, true);
    augment_tree_propagate_from(va);
  }
}

/**
 * __merge_or_add_vmap_area (v6.12): merge the freed `va` with its free
 * neighbours, or insert it; a merged-away object goes back to
 * vmap_area_cachep. Returns the area that now holds the range, or 0 for an
 * overlap (after the WARN).
 */
function __merge_or_add_vmap_area(va: number, root: number, head: number, augment: boolean): number {
  let merged = false;

  /* Find a place in the tree where VA potentially will be inserted, unless it is merged with its sibling/siblings. */
  const link = find_va_links(va, root, 0);
  if (!link) return 0;
  const parent = va_links_parent;

  /* Get next node of VA to check if merging can be done. */
  const next = get_va_next_sibling(parent, link);
  if (next) {
    /*
     * |<------VA------>|<-----Next----->|
     */
    if (next !== head) {
      const sibling = next - LST;
      if (va_start(sibling) === va_end(va)) {
        set_va_start(sibling, va_start(va));
        /* Free vmap_area object. */
        kmem_cache_free(I32[vmap_area_cachep.ptr >> 2]!, va);
        /* Point to the new merged area. */
        va = sibling;
        merged = true;
      }
    }

    /*
     * |<-----Prev----->|<------VA------>|
     */
    if (list_prev(next) !== head) {
      const sibling = list_prev(next) - LST;
      if (va_end(sibling) === va_start(va)) {
        /*
         * If both neighbors are coalesced, it is important to unlink the
         * "next" node first, followed by merging with "previous" one.
         * Otherwise the tree might not be fully populated if a sibling's
         * augmented value is "normalized" because of rotation operations.
         */
        if (merged) __unlink_va(va, root, augment);
        set_va_end(sibling, va_end(va));
        /* Free vmap_area object. */
        kmem_cache_free(I32[vmap_area_cachep.ptr >> 2]!, va);
        /* Point to the new merged area. */
        va = sibling;
        merged = true;
      }
    }
  }

  /* insert: */
  if (!merged) __link_va(va, root, parent, link, head, augment);
  return va;
}

/** merge_or_add_vmap_area (v6.12): into a plain (not augmented) tree — a pool's decay tree. */
function merge_or_add_vmap_area(va: number, root: number, head: number): number {
  return __merge_or_add_vmap_area(va, root, head, false);
}

/** merge_or_add_vmap_area_augment (v6.12): into the free tree. */
function merge_or_add_vmap_area_augment(va: number, root: number, head: number): number {
  va = __merge_or_add_vmap_area(va, root, head, true);
  if (va) augment_tree_propagate_from(va);
  return va;
}

/** is_within_this_va (v6.12): does `size` at `align`, not below `vstart`, fit in `va`? */
function is_within_this_va(va: number, size: number, align: number, vstart: number): boolean {
  const nva_start_addr = va_start(va) > vstart ? ALIGN(va_start(va), align) : ALIGN(vstart, align);
  /* Can be overflowed due to big size or alignment (the kernel's unsigned long wraps past KADDR_WRAP). */
  if (nva_start_addr + size >= KADDR_WRAP || nva_start_addr < vstart) return false;
  return nva_start_addr + size <= va_end(va);
}

/**
 * find_vmap_lowest_match (v6.12): the free block with the lowest start that
 * satisfies the request. With an alignment bigger than PAGE_SIZE the search
 * length is adjusted for the worst-case alignment overhead.
 */
export function find_vmap_lowest_match(
  root: number,
  size: number,
  align: number,
  vstart: number,
  adjustSearchSize: boolean,
): number {
  /* Start from the root. */
  let node = I32[(root + RB_ROOT_NODE) >> 2]!;
  /* Adjust the search size for alignment overhead. */
  const length = adjustSearchSize ? size + align - 1 : size;

  while (node) {
    let va = node - RB;
    if (get_subtree_max_size(I32[(node + RB_LEFT) >> 2]!) >= length && vstart < va_start(va)) {
      node = I32[(node + RB_LEFT) >> 2]!;
    } else {
      if (is_within_this_va(va, size, align, vstart)) return va;

      /*
       * Does not make sense to go deeper towards the right sub-tree if it
       * does not have a free block that is equal or bigger to the requested
       * search length.
       */
      if (get_subtree_max_size(I32[(node + RB_RIGHT) >> 2]!) >= length) {
        node = I32[(node + RB_RIGHT) >> 2]!;
        continue;
      }

      /*
       * OK. We roll back and find the first right sub-tree, that will
       * satisfy the search criteria. It can happen due to "vstart"
       * restriction or an alignment overhead that is bigger then PAGE_SIZE.
       */
      while ((node = rb_parent(node))) {
        va = node - RB;
        if (is_within_this_va(va, size, align, vstart)) return va;
        if (get_subtree_max_size(I32[(node + RB_RIGHT) >> 2]!) >= length && vstart <= va_start(va)) {
          /*
           * Shift the vstart forward. Please note, we update it with parent's
           * start address adding "1" because we do not want to enter same
           * sub-tree after it has already been checked and no suitable free
           * block found there.
           */
          vstart = va_start(va) + 1;
          node = I32[(node + RB_RIGHT) >> 2]!;
          break;
        }
      }
    }
  }
  return 0;
}

/**
 * find_vmap_lowest_linear_match (v6.12's DEBUG_AUGMENT_LOWEST_MATCH_CHECK):
 * the same answer by a walk of the address-sorted list — the oracle the
 * tree search is checked against.
 */
export function find_vmap_lowest_linear_match(head: number, size: number, align: number, vstart: number): number {
  for (let e = list_next(head); e !== head; e = list_next(e))
    if (is_within_this_va(e - LST, size, align, vstart)) return e - LST;
  return 0;
}

/** enum fit_type (v6.12). */
export const NOTHING_FIT = 0;
export const FL_FIT_TYPE = 1; /* full fit */
export const LE_FIT_TYPE = 2; /* left edge fit */
export const RE_FIT_TYPE = 3; /* right edge fit */
export const NE_FIT_TYPE = 4; /* no edge fit */

/** classify_va_fit_type (v6.12): how [nva_start_addr, + size) sits in `va`. */
export function classify_va_fit_type(va: number, nvaStartAddr: number, size: number): number {
  /* Check if it is within VA. */
  if (nvaStartAddr < va_start(va) || nvaStartAddr + size > va_end(va)) return NOTHING_FIT;
  /* Now classify. */
  if (va_start(va) === nvaStartAddr) return va_end(va) === nvaStartAddr + size ? FL_FIT_TYPE : LE_FIT_TYPE;
  if (va_end(va) === nvaStartAddr + size) return RE_FIT_TYPE;
  return NE_FIT_TYPE;
}

/**
 * va_clip (v6.12): cut [nva_start_addr, + size) out of the free block `va`;
 * a no-edge fit needs a second object (the CPU's preloaded one, else a
 * GFP_NOWAIT one). 0, or -1 when it fits nowhere or no object was had.
 */
function va_clip(root: number, head: number, va: number, nvaStartAddr: number, size: number): number {
  let lva = 0;
  const type = classify_va_fit_type(va, nvaStartAddr, size);

  if (type === FL_FIT_TYPE) {
    /*
     * No need to split VA, it fully fits.
     *
     * |               |
     * V      NVA      V
     * |---------------|
     */
    unlink_va_augment(va, root);
    kmem_cache_free(I32[vmap_area_cachep.ptr >> 2]!, va);
  } else if (type === LE_FIT_TYPE) {
    /*
     * Split left edge of fit VA.
     *
     * |       |
     * V  NVA  V   R
     * |-------|-------|
     */
    set_va_start(va, va_start(va) + size);
  } else if (type === RE_FIT_TYPE) {
    /*
     * Split right edge of fit VA.
     *
     *         |       |
     *     L   V  NVA  V
     * |-------|-------|
     */
    set_va_end(va, nvaStartAddr);
  } else if (type === NE_FIT_TYPE) {
    /*
     * Split no edge of fit VA.
     *
     *     |       |
     *   L V  NVA  V R
     * |---|-------|---|
     */
    const preload = this_cpu_ptr(ne_fit_preload_node);
    lva = I32[preload >> 2]!; // __this_cpu_xchg(ne_fit_preload_node, NULL)
    I32[preload >> 2] = 0;
    if (!lva) {
      /*
       * For percpu allocator we do not do any pre-allocation; it most likely
       * never ends up with NE_FIT_TYPE splitting. A regular allocation hits
       * this path if "this" CPU was not preloaded: GFP_NOWAIT then; if that
       * fails, the overflow path purges and retries.
       */
      lva = kmem_cache_alloc(I32[vmap_area_cachep.ptr >> 2]!, GFP_NOWAIT);
      if (!lva) return -1;
    }

    /* Build the remainder. */
    set_va_start(lva, va_start(va));
    set_va_end(lva, nvaStartAddr);

    /* Shrink this VA to remaining size. */
    set_va_start(va, nvaStartAddr + size);
  } else {
    return -1;
  }

  if (type !== FL_FIT_TYPE) {
    augment_tree_propagate_from(va);
    if (lva) /* type == NE_FIT_TYPE */ insert_vmap_area_augment(lva, va + RB, root, head);
  }
  return 0;
}

/** va_alloc (v6.12): carve the request out of the free block `va`; its start, or `vend` for failure. */
function va_alloc(
  va: number,
  root: number,
  head: number,
  size: number,
  align: number,
  vstart: number,
  vend: number,
): number {
  const nva_start_addr = va_start(va) > vstart ? ALIGN(va_start(va), align) : ALIGN(vstart, align);

  /* Check the "vend" restriction. */
  if (nva_start_addr + size > vend) return vend;

  /* Update the free vmap_area. */
  if (va_clip(root, head, va, nva_start_addr, size)) {
    warn("va_alloc: WARN_ON_ONCE(ret)");
    return vend;
  }
  return nva_start_addr;
}

/** __alloc_vmap_area (v6.12): the start of the lowest fit in the free tree, or `vend` for failure. */
function __alloc_vmap_area(
  root: number,
  head: number,
  size: number,
  align: number,
  vstart: number,
  vend: number,
): number {
  /*
   * Do not adjust when:
   *   a) align <= PAGE_SIZE, because it does not make any sense. All blocks
   *      (their start addresses) are at least PAGE_SIZE aligned anyway;
   *   b) a short range where a requested size corresponds to exactly
   *      specified [vstart:vend] interval and an alignment > PAGE_SIZE. With
   *      adjusted search length an allocation would not succeed.
   */
  const adjust_search_size = !(align <= PAGE_SIZE || (align > PAGE_SIZE && vend - vstart === size));

  const va = find_vmap_lowest_match(root, size, align, vstart, adjust_search_size);
  if (!va) return vend;
  return va_alloc(va, root, head, size, align, vstart, vend);
}

/** free_vmap_area (v6.12): a region of KVA back from its busy tree to the free tree at once. */
export function free_vmap_area(va: number): void {
  const vn = addr_to_node(va_start(va));

  /* Remove from the busy tree/list. */
  spin_lock(vn + BUSY_LOCK);
  unlink_va(va, vn + BUSY_ROOT);
  spin_unlock(vn + BUSY_LOCK);

  /* Insert/Merge it back to the free tree/list. */
  spin_lock(free_vmap_area_lock.ptr);
  merge_or_add_vmap_area_augment(va, free_vmap_area_root.ptr, free_vmap_area_list.ptr);
  spin_unlock(free_vmap_area_lock.ptr);
}

/**
 * preload_this_cpu_lock (v6.12): preload this CPU with one vmap_area for a
 * no-edge split, allocated before `lock` is taken (a more permissive mask
 * than the atomic context under the lock allows); returns with `lock` held.
 */
function preload_this_cpu_lock(lock: number, gfpMask: number, _node: number): void {
  let va = 0;
  if (!I32[this_cpu_ptr(ne_fit_preload_node) >> 2]) va = kmem_cache_alloc(I32[vmap_area_cachep.ptr >> 2]!, gfpMask);

  spin_lock(lock);

  // __this_cpu_try_cmpxchg(ne_fit_preload_node, &tmp (NULL), va): the lock keeps this CPU; a task preempted
  // before it may find the slot filled by the CPU's next user.
  const preload = this_cpu_ptr(ne_fit_preload_node);
  if (va) {
    if (I32[preload >> 2] === 0) I32[preload >> 2] = va;
    else kmem_cache_free(I32[vmap_area_cachep.ptr >> 2]!, va);
  }
}

/** size_to_va_pool (v6.12): the pool of `size`-byte VAs of `vn`, 0 past MAX_VA_SIZE_PAGES. */
function size_to_va_pool(vn: number, size: number): number {
  const idx = Math.floor((size - 1) / PAGE_SIZE);
  if (idx < MAX_VA_SIZE_PAGES) return vn + VN.pool + idx * POOL_STRIDE;
  return 0;
}

const POOL_HEAD = VMAP_POOL.off.head;
const POOL_LEN = VMAP_POOL.off.len;

/** A pool list's emptiness read without pool_lock (the kernel's lockless list_empty). */
function pool_list_empty_lockless(vp: number): boolean {
  return Atomics.load(I32, (vp + POOL_HEAD) >> 2) === vp + POOL_HEAD;
}

/** node_pool_add_va (v6.12): `va` to the pool of its size in `n`; false when too big for a pool. */
function node_pool_add_va(n: number, va: number): boolean {
  const vp = size_to_va_pool(n, va_size(va));
  if (!vp) return false;
  spin_lock(n + VN.pool_lock);
  list_add(va + LST, vp + POOL_HEAD);
  WRITE_ONCE(vp + POOL_LEN, I32[(vp + POOL_LEN) >> 2]! + 1);
  spin_unlock(n + VN.pool_lock);
  return true;
}

/**
 * node_pool_del_va (v6.12): the first VA of `vn`'s pool for `size` when it
 * is `align`ed (else it goes to the tail and nothing is returned); 0 when
 * the pool is empty.
 */
function node_pool_del_va(vn: number, size: number, align: number, vstart: number, vend: number): number {
  let va = 0;
  const vp = size_to_va_pool(vn, size);
  if (!vp || pool_list_empty_lockless(vp)) return 0;

  spin_lock(vn + VN.pool_lock);
  if (!list_empty(vp + POOL_HEAD)) {
    va = list_next(vp + POOL_HEAD) - LST;
    if (va_start(va) % align === 0) {
      /* Do some sanity check and emit a warning if one of below checks detects an error. */
      const err = va_size(va) !== size || va_start(va) < vstart || va_end(va) > vend;
      if (!err) {
        list_del_init(va + LST);
        WRITE_ONCE(vp + POOL_LEN, I32[(vp + POOL_LEN) >> 2]! - 1);
      } else {
        warn("node_pool_del_va: WARN_ON_ONCE(err)");
        va = 0;
      }
    } else {
      list_move_tail(va + LST, vp + POOL_HEAD);
      va = 0;
    }
  }
  spin_unlock(vn + VN.pool_lock);
  return va;
}

/** node_alloc's outputs (`*addr`, `*vn_id`). */
let node_alloc_addr = 0;
let node_alloc_vn_id = 0;

/**
 * node_alloc (v6.12): a ready VA of this CPU's node pool for a vmalloc-range
 * request (node_alloc_addr its start, or `vend`), and the encoded node id the
 * VA is marked with either way (0 for the global heap only: another range,
 * or one node).
 */
function node_alloc(size: number, align: number, vstart: number, vend: number): number {
  node_alloc_vn_id = 0;
  node_alloc_addr = vend;

  /* Fallback to a global heap if not vmalloc or there is only one node. */
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  if (vstart !== VMALLOC_START || vend !== VMALLOC_END || nr === 1) return 0;

  const id = smp_processor_id() % nr;
  const va = node_pool_del_va(id_to_node(id), size, align, vstart, vend);
  node_alloc_vn_id = encode_vn_id(id);
  if (va) node_alloc_addr = va_start(va);
  return va;
}

/** setup_vmalloc_vm (v6.12): tie `vm` to `va` (pcpu_get_vm_areas's; the busy lock of `va` held). */
function setup_vmalloc_vm(vm: number, va: number, flags: number, caller: number): void {
  I32[(vm + VM.flags) >> 2] = flags;
  F64[(vm + VM.addr) >> 3] = va_start(va);
  F64[(vm + VM.size) >> 3] = va_size(va);
  F64[(vm + VM.requested_size) >> 3] = va_size(va);
  I32[(vm + VM.caller) >> 2] = caller;
  I32[(va + VA.vm) >> 2] = vm;
}

/*
 * The kernel's vmap_notify_list (register_vmap_purge_notifier) lets a driver
 * give back address space when an allocation overflows; vmsim has no such
 * driver, so that step of alloc_vmap_area would always free nothing.
 */

/**
 * alloc_vmap_area (v6.12): allocate a region of KVA of `size` bytes and
 * `align`ment within [vstart, vend) — from this CPU's node pool first, else
 * the lowest fit in the free tree; on overflow one reclaim_and_purge and a
 * retry. `va_flags` (VMAP_RAM, VMAP_BLOCK) go to va->flags with the node id;
 * a `vm` passed in is bound to the area before it is published. Returns the
 * vmap_area, or -EINVAL / -EBUSY / -ENOMEM.
 */
export function alloc_vmap_area(
  size: number,
  align: number,
  vstart: number,
  vend: number,
  node: number,
  gfpMask: number,
  vaFlags: number,
  vm: number,
): number {
  if (!size || size % PAGE_SIZE !== 0 || !is_power_of_2(align)) return -EINVAL;
  if (!I32[vmap_initialized.ptr >> 2]) return -EBUSY;
  might_sleep();

  /*
   * If a VA is obtained from a global heap (if it fails here) it is anyway
   * marked with this "vn_id" so it is returned to this pool's node later.
   * Such way gives a possibility to populate pools based on users demand.
   *
   * On success a ready to go VA is returned.
   */
  let va = node_alloc(size, align, vstart, vend);
  let addr = node_alloc_addr;
  const vn_id = node_alloc_vn_id;
  if (!va) {
    gfpMask &= GFP_RECLAIM_MASK;
    va = kmem_cache_alloc(I32[vmap_area_cachep.ptr >> 2]!, gfpMask);
    if (!va) return -ENOMEM;
  }

  for (let purged = false; ; ) {
    /* retry: */
    if (addr === vend) {
      preload_this_cpu_lock(free_vmap_area_lock.ptr, gfpMask, node);
      addr = __alloc_vmap_area(free_vmap_area_root.ptr, free_vmap_area_list.ptr, size, align, vstart, vend);
      spin_unlock(free_vmap_area_lock.ptr);
    }

    /* If an allocation fails, the "vend" address is returned. Therefore trigger the overflow path. */
    if (addr !== vend) break;

    /* overflow: */
    if (!purged) {
      reclaim_and_purge_vmap_areas();
      purged = true;
      continue;
    }
    if (!(gfpMask & __GFP_NOWARN))
      reportBug(
        "WARN",
        `vmalloc_node_range for size ${size} failed: Address range restricted to ${hexKaddr(vstart)} - ${hexKaddr(vend)}`,
      );
    kmem_cache_free(I32[vmap_area_cachep.ptr >> 2]!, va);
    return -EBUSY;
  }

  set_va_start(va, addr);
  set_va_end(va, addr + size);
  I32[(va + VA.vm) >> 2] = 0;
  I32[(va + VA.flags) >> 2] = vaFlags | vn_id;
  I32[(va + VA.alloc_cpu) >> 2] = smp_processor_id(); // vmsim's debug field (VMAP_AREA)

  if (vm) {
    F64[(vm + VM.addr) >> 3] = va_start(va);
    F64[(vm + VM.size) >> 3] = va_size(va);
    I32[(va + VA.vm) >> 2] = vm;
  }

  const vn = addr_to_node(va_start(va));
  spin_lock(vn + BUSY_LOCK);
  insert_vmap_area(va, vn + BUSY_ROOT, vn + BUSY_HEAD);
  spin_unlock(vn + BUSY_LOCK);

  if (va_start(va) % align || va_start(va) < vstart || va_end(va) > vend)
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: alloc_vmap_area: ${hexKaddr(va_start(va))} outside its bounds`);
  return va;
}

/**
 * lazy_max_pages (v6.12): the maximum amount of virtual address space
 * gathered up before attempting to purge with a TLB flush — fls(online CPUs)
 * × 32 MiB, a log scale in the number of CPUs.
 */
export function lazy_max_pages(): number {
  const log = 32 - Math.clz32(num_online_cpus());
  return log * ((32 * 1024 * 1024) / PAGE_SIZE);
}

/** Pages of lazily freed areas not yet purged (static atomic_long_t vmap_lazy_nr). */
export const vmap_lazy_nr = DEFINE_GLOBAL("6.12:vmap_lazy_nr", ATOMIC_LONG_T);

/** Harness: the current vmap_lazy_nr. */
export function vmap_lazy_nr_read(): number {
  return atomic_long_read(vmap_lazy_nr.ptr);
}

/**
 * Serialize vmap purging. There is no actual critical section protected by
 * this lock, but we want to avoid concurrent calls for performance reasons
 * and to make the pcpu_get_vm_areas more deterministic.
 */
export const vmap_purge_lock = DEFINE_MUTEX("6.12:vmap_purge_lock");

/** static cpumask_t purge_nodes: the nodes a purge has work for (bit i: node i), up to 64 nodes. */
const CPUMASK = defineStruct("cpumask", [{ name: "bits", type: "u32", count: 2, guard: "vmap_purge_lock" }]);
export const purge_nodes = DEFINE_GLOBAL("6.12:purge_nodes", CPUMASK);

/**
 * The lists and the tree that the kernel's purge and decay functions keep on
 * their stacks, here in this CPU's area (no such function nests on one CPU).
 */
const PURGE_SCRATCH = defineStruct("vmap_purge_scratch", [
  { name: "decay_list", type: LIST_HEAD, guard: "owner" },
  { name: "decay_root", type: RB_ROOT, guard: "owner" },
  { name: "tmp_list", type: LIST_HEAD, guard: "owner" },
  { name: "local_list", type: LIST_HEAD, guard: "owner" },
]);
const vmap_purge_scratch = DEFINE_PER_CPU("6.12:vmap_purge_scratch", PURGE_SCRATCH);
const PS = PURGE_SCRATCH.off;

/*
 * v6.12 declares purge_fragmented_blocks_allcpus ahead of its users.
 * vmap_block.ts builds on this file, so it registers its entry points here.
 */

/** The per-CPU kva allocator's entry points that this file calls (src/mm/v6.12/vmap_block.ts registers them). */
export interface VmapBlockHooks {
  /** vmalloc_init's per-CPU step for vmap_block_queue (spin_lock_init, INIT_LIST_HEAD, xa_init). */
  readonly init_vmap_block_queue: (cpu: number) => void;
  readonly purge_fragmented_blocks_allcpus: () => void;
  /** vmap_ram_vread_iter (v6.12): read `count` bytes at `addr` of a vm_map_ram area into buf[at…]; bytes copied. */
  readonly vmap_ram_vread_iter: (buf: Uint8Array, at: number, addr: number, count: number, flags: number) => number;
  /** vm_map_ram (v6.12): `count` pages of `pages` mapped; kaddr or 0. */
  readonly vm_map_ram: (pages: number, count: number, node: number) => number;
  readonly vm_unmap_ram: (mem: number, count: number) => void;
  readonly vm_unmap_aliases: () => void;
}

const vmapBlockNotLoaded = (): never => {
  throw new Error("vmalloc 6.12: the per-CPU kva allocator (src/mm/v6.12/vmap_block.ts) is not loaded");
};
/*
 * Until vmap_block.ts registers, no vmap block can exist: nothing to set up
 * per CPU, nothing to purge; the entry points that would create one refuse.
 */
let vmapBlock: VmapBlockHooks = {
  init_vmap_block_queue: () => {},
  purge_fragmented_blocks_allcpus: () => {},
  vmap_ram_vread_iter: vmapBlockNotLoaded,
  vm_map_ram: vmapBlockNotLoaded,
  vm_unmap_ram: vmapBlockNotLoaded,
  vm_unmap_aliases: vmapBlockNotLoaded,
};

/** vmap_block.ts registers its entry points (once, at module load). */
export function registerVmapBlock(hooks: VmapBlockHooks): void {
  vmapBlock = hooks;
}

/** reclaim_list_global (v6.12): every VA of `head` back to the free tree. */
function reclaim_list_global(head: number): void {
  if (list_empty(head)) return;
  spin_lock(free_vmap_area_lock.ptr);
  for (let e = list_next(head), n: number; e !== head; e = n) {
    n = list_next(e);
    merge_or_add_vmap_area_augment(e - LST, free_vmap_area_root.ptr, free_vmap_area_list.ptr);
  }
  spin_unlock(free_vmap_area_lock.ptr);
}

/**
 * decay_va_pool_node (v6.12): give ~25% of each of `vn`'s pools back to the
 * free tree (a pool under 4 entries: all of it, as the kernel's `--n_decay`
 * from 0 never reaches 0 again), or everything with `full_decay`; the
 * decayed VAs are merged among themselves first.
 */
export function decay_va_pool_node(vn: number, fullDecay: boolean): void {
  const scratch = this_cpu_ptr(vmap_purge_scratch);
  const decay_list = scratch + PS.decay_list;
  const decay_root = scratch + PS.decay_root;
  const tmp_list = scratch + PS.tmp_list;
  INIT_LIST_HEAD(decay_list);
  I32[(decay_root + RB_ROOT_NODE) >> 2] = 0;

  for (let i = 0; i < MAX_VA_SIZE_PAGES; i++) {
    const vp = vn + VN.pool + i * POOL_STRIDE;
    INIT_LIST_HEAD(tmp_list);
    if (pool_list_empty_lockless(vp)) continue;

    /* Detach the pool, so no-one can access it. */
    spin_lock(vn + VN.pool_lock);
    list_replace_init(vp + POOL_HEAD, tmp_list);
    spin_unlock(vn + VN.pool_lock);

    if (fullDecay) WRITE_ONCE(vp + POOL_LEN, 0);

    /* Decay a pool by ~25% out of left objects. */
    let n_decay = READ_ONCE(vp + POOL_LEN) >> 2;

    for (let e = list_next(tmp_list), n: number; e !== tmp_list; e = n) {
      n = list_next(e);
      list_del_init(e);
      merge_or_add_vmap_area(e - LST, decay_root, decay_list);
      if (!fullDecay) {
        WRITE_ONCE(vp + POOL_LEN, I32[(vp + POOL_LEN) >> 2]! - 1);
        if (!--n_decay) break;
      }
    }

    /*
     * Attach the pool back if it has been partly decayed. Please note, it is
     * supposed that nobody (other contexts) can populate the pool therefore a
     * simple list replace operation takes place here.
     */
    if (!fullDecay && !list_empty(tmp_list)) {
      spin_lock(vn + VN.pool_lock);
      list_replace_init(tmp_list, vp + POOL_HEAD);
      spin_unlock(vn + VN.pool_lock);
    }
  }

  reclaim_list_global(decay_list);
}

/**
 * purge_vmap_node (v6.12): the work of one node's purge — each VA of its
 * purge_list back to the node's pool (when it was allocated through a node
 * and the pools are being kept), else to the free tree.
 */
function purge_vmap_node(work: number): void {
  const vn = work - VN.purge_work;
  const local_list = this_cpu_ptr(vmap_purge_scratch) + PS.local_list;
  let nr_purged_pages = 0;
  INIT_LIST_HEAD(local_list);

  I32[(vn + VN.nr_purged) >> 2] = 0;
  const purge_list = vn + VN.purge_list;
  for (let e = list_next(purge_list), n: number; e !== purge_list; e = n) {
    n = list_next(e);
    const va = e - LST;
    const nr = va_size(va) / PAGE_SIZE;
    const vn_id = decode_vn_id(va_flags(va));

    list_del_init(e);
    nr_purged_pages += nr;
    I32[(vn + VN.nr_purged) >> 2] = I32[(vn + VN.nr_purged) >> 2]! + 1;

    if (is_vn_id_valid(vn_id) && !I32[(vn + VN.skip_populate) >> 2] && node_pool_add_va(vn, va)) continue;

    /* Go back to global. */
    list_add(e, local_list);
  }

  atomic_long_sub(nr_purged_pages, vmap_lazy_nr.ptr);
  reclaim_list_global(local_list);
}
const PURGE_VMAP_NODE = defineKernelFn("6.12:purge_vmap_node", purge_vmap_node);

function cpumask_set_cpu(cpu: number, mask: number): void {
  const w = (mask >> 2) + (cpu >>> 5);
  I32[w] = I32[w]! | (1 << (cpu & 31));
}

function cpumask_test_cpu(cpu: number, mask: number): boolean {
  return (I32[(mask >> 2) + (cpu >>> 5)]! & (1 << (cpu & 31))) !== 0;
}

function for_each_cpu(mask: number, nr: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < nr; i++) if (cpumask_test_cpu(i, mask)) out.push(i);
  return out;
}

/**
 * __purge_vmap_area_lazy (v6.12): purge every lazily freed area — each
 * node's pools decayed (fully with `full_pool_decay`, which also keeps the
 * purged areas out of the pools), its lazy list taken whole, one TLB flush
 * over [start, end] widened to them, then purge_vmap_node per node: one
 * helper work item per lazy_max_pages() of backlog beyond the first, the
 * rest on this CPU. Pass Infinity and 0 for the kernel's ULONG_MAX and 0.
 * True when some area was purged. vmap_purge_lock held.
 */
export function __purge_vmap_area_lazy(start: number, end: number, fullPoolDecay: boolean): boolean {
  lockdep_assert_held(vmap_purge_lock.ptr, "vmap_purge_lock");
  let nr_purged_areas = 0;
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  const mask = purge_nodes.ptr;

  /* Use cpumask to mark which node has to be processed. */
  I32[mask >> 2] = 0;
  I32[(mask >> 2) + 1] = 0;

  for (let i = 0; i < nr; i++) {
    const vn = vmapNode(i);
    INIT_LIST_HEAD(vn + VN.purge_list);
    I32[(vn + VN.skip_populate) >> 2] = fullPoolDecay ? 1 : 0;
    decay_va_pool_node(vn, fullPoolDecay);

    // RB_EMPTY_ROOT, read without the lock as the kernel does.
    if (Atomics.load(I32, (vn + LAZY_ROOT + RB_ROOT_NODE) >> 2) === 0) continue;

    spin_lock(vn + LAZY_LOCK);
    WRITE_ONCE(vn + LAZY_ROOT + RB_ROOT_NODE, 0);
    list_replace_init(vn + LAZY_HEAD, vn + VN.purge_list);
    spin_unlock(vn + LAZY_LOCK);

    start = Math.min(start, va_start(list_next(vn + VN.purge_list) - LST));
    end = Math.max(end, va_end(list_prev(vn + VN.purge_list) - LST));
    cpumask_set_cpu(i, mask);
  }

  const nodes = for_each_cpu(mask, nr);
  if (nodes.length > 0) {
    flush_tlb_kernel_range(start, end);

    /* One extra worker is per a lazy_max_pages() full set minus one. */
    let nr_purge_helpers = Math.floor(atomic_long_read(vmap_lazy_nr.ptr) / lazy_max_pages());
    nr_purge_helpers = Math.min(Math.max(nr_purge_helpers, 1), nodes.length) - 1;

    const online = for_each_online_cpu();
    for (const i of nodes) {
      const vn = vmapNode(i);
      if (nr_purge_helpers > 0) {
        INIT_WORK(vn + VN.purge_work, PURGE_VMAP_NODE);
        if (online.includes(i)) schedule_work_on(i, vn + VN.purge_work);
        else schedule_work(vn + VN.purge_work);
        nr_purge_helpers--;
      } else {
        I32[(vn + VN.purge_work + WORK_STRUCT.off.func) >> 2] = 0;
        purge_vmap_node(vn + VN.purge_work);
        nr_purged_areas += I32[(vn + VN.nr_purged) >> 2]!;
      }
    }

    for (const i of nodes) {
      const vn = vmapNode(i);
      if (I32[(vn + VN.purge_work + WORK_STRUCT.off.func) >> 2]) {
        flush_work(vn + VN.purge_work);
        nr_purged_areas += I32[(vn + VN.nr_purged) >> 2]!;
      }
    }
  }
  return nr_purged_areas > 0;
}

/** reclaim_and_purge_vmap_areas (v6.12): purge the fragmented vmap blocks, every lazy area, all pools. */
export function reclaim_and_purge_vmap_areas(): void {
  if (tracing) trace_graph_entry(TF_PURGE_VMAP_AREA_LAZY, 0, 0);
  mutex_lock(vmap_purge_lock.ptr);
  vmapBlock.purge_fragmented_blocks_allcpus();
  __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0, true);
  mutex_unlock(vmap_purge_lock.ptr);
  if (tracing) trace_graph_return(TF_PURGE_VMAP_AREA_LAZY, 0);
}

/** drain_vmap_area_work (v6.12): the lazy purge free_vmap_area_noflush schedules; pools decay by a quarter. */
function drain_vmap_area_work(_work: number): void {
  mutex_lock(vmap_purge_lock.ptr);
  __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0, false);
  mutex_unlock(vmap_purge_lock.ptr);
}
const DRAIN_VMAP_AREA_WORK = defineKernelFn("6.12:drain_vmap_area_work", drain_vmap_area_work);
staticInit(() => INIT_WORK(drain_vmap_work.ptr, DRAIN_VMAP_AREA_WORK));

/**
 * free_vmap_area_noflush (v6.12): queue the unmapped, unlinked `va` on the
 * lazy list of the node it came through (else of its address's node); past
 * lazy_max_pages, schedule drain_vmap_work.
 */
export function free_vmap_area_noflush(va: number): void {
  const nr_lazy_max = lazy_max_pages();
  const vn_id = decode_vn_id(va_flags(va));

  if (!list_empty(va + LST)) {
    warn("free_vmap_area_noflush: WARN_ON_ONCE(!list_empty(&va->list))");
    return;
  }

  const nr_lazy = atomic_long_add_return(va_size(va) / PAGE_SIZE, vmap_lazy_nr.ptr);

  /* If it was request by a certain node we would like to return it to that node, i.e. its pool for later reuse. */
  const vn = is_vn_id_valid(vn_id) ? id_to_node(vn_id) : addr_to_node(va_start(va));

  spin_lock(vn + LAZY_LOCK);
  insert_vmap_area(va, vn + LAZY_ROOT, vn + LAZY_HEAD);
  spin_unlock(vn + LAZY_LOCK);

  /* After this point, we may free va at any time */
  if (nr_lazy > nr_lazy_max) schedule_work(drain_vmap_work.ptr);
}

/** free_unmap_vmap_area (v6.12): unmap `va` and free it lazily (flush_cache_vunmap: a no-op on arm64). */
export function free_unmap_vmap_area(va: number): void {
  vunmap_range_noflush(va_start(va), va_end(va));
  free_vmap_area_noflush(va);
}

/**
 * find_vmap_area (v6.12): the vmap_area containing `addr`, 0 when none. The
 * search starts at the node of `addr`'s zone and goes round the others: a VA
 * lives in the node of its start, and `addr` may lie in a later zone.
 */
export function find_vmap_area(addr: number): number {
  if (!I32[vmap_initialized.ptr >> 2]) return 0;
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  const j = addr_to_node_id(addr);
  let i = j;
  do {
    const vn = vmapNode(i);
    spin_lock(vn + BUSY_LOCK);
    const va = __find_vmap_area(addr, vn + BUSY_ROOT);
    spin_unlock(vn + BUSY_LOCK);
    if (va) return va;
  } while ((i = (i + 1) % nr) !== j);
  return 0;
}

/** find_unlink_vmap_area (v6.12): find_vmap_area, and take the area out of its busy tree under the same lock. */
export function find_unlink_vmap_area(addr: number): number {
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  const j = addr_to_node_id(addr);
  let i = j;
  do {
    const vn = vmapNode(i);
    spin_lock(vn + BUSY_LOCK);
    const va = __find_vmap_area(addr, vn + BUSY_ROOT);
    if (va) unlink_va(va, vn + BUSY_ROOT);
    spin_unlock(vn + BUSY_LOCK);
    if (va) return va;
  } while ((i = (i + 1) % nr) !== j);
  return 0;
}

/*** Per cpu kva allocator: src/mm/v6.12/vmap_block.ts ***/

/** vmap_area flags of vm_map_ram areas (v6.12, defined in the per-CPU allocator's section). */
export const VMAP_RAM = 0x1; /* indicates vm_map_ram area */
export const VMAP_BLOCK = 0x2; /* mark out the vmap_block sub-type */
export const VMAP_FLAGS_MASK = 0x3;

/*** Early areas ***/

/** static struct vm_struct *vmlist __initdata: areas registered before vmalloc_init. */
const VMLIST = defineStruct("vm_struct_ptr", [{ name: "p", type: "ptr", guard: "init" }]);
const vmlist = DEFINE_GLOBAL("6.12:vmlist", VMLIST);

/**
 * vm_area_add_early (v6.12): add a fixed kernel area (addr, size, flags set,
 * the rest zero) to vmlist, address-sorted, before vmalloc_init.
 */
export function vm_area_add_early(vm: number): void {
  if (I32[vmap_initialized.ptr >> 2])
    throw new KernelBug("kernel BUG at mm/vmalloc.c: vm_area_add_early after vmalloc_init");
  let p = vmlist.ptr + VMLIST.off.p;
  for (let tmp: number; (tmp = I32[p >> 2]!) !== 0; p = tmp + VM.next) {
    if (vm_addr(tmp) >= vm_addr(vm)) {
      if (vm_addr(tmp) < vm_addr(vm) + vm_size(vm))
        throw new KernelBug("kernel BUG at mm/vmalloc.c: vm_area_add_early");
      break;
    }
    if (vm_addr(tmp) + vm_size(tmp) > vm_addr(vm)) throw new KernelBug("kernel BUG at mm/vmalloc.c: vm_area_add_early");
  }
  I32[(vm + VM.next) >> 2] = I32[p >> 2]!;
  I32[p >> 2] = vm;
}

/**
 * clear_vm_uninitialized_flag (v6.12): the vm_struct is complete. The
 * kernel's smp_wmb pairs with vread_iter's and vmalloc_info_show's smp_rmb;
 * the Atomics.store orders every earlier write of this CPU (nr_pages, the
 * page array) before the flag for a reader whose Atomics.load sees it clear.
 */
function clear_vm_uninitialized_flag(vm: number): void {
  const f = (vm + VM.flags) >> 2;
  Atomics.store(I32, f, I32[f]! & ~VM_UNINITIALIZED);
}

/**
 * __get_vm_area_node (v6.12): a vm_struct and its vmap_area of `size`
 * aligned to 1 << shift (+ a guard page) in [start, end), bound by
 * alloc_vmap_area. vm_struct or 0.
 */
function __get_vm_area_node(
  size: number,
  align: number,
  shift: number,
  flags: number,
  start: number,
  end: number,
  node: number,
  gfpMask: number,
  caller: number,
): number {
  const requested_size = size;
  if (in_interrupt()) throw new KernelBug("kernel BUG at mm/vmalloc.c: __get_vm_area_node: in_interrupt()");
  size = ALIGN(size, 2 ** shift);
  if (!size) return 0;

  if (flags & VM_IOREMAP) {
    const order = Math.ceil(Math.log2(size)); // get_count_order_long
    align = 2 ** Math.min(Math.max(order, PAGE_SHIFT), IOREMAP_MAX_ORDER);
  }

  const area = kzalloc(VM_STRUCT.size, gfpMask & GFP_RECLAIM_MASK);
  if (!area) return 0;

  if (!(flags & VM_NO_GUARD)) size += PAGE_SIZE;

  I32[(area + VM.flags) >> 2] = flags;
  I32[(area + VM.caller) >> 2] = caller;
  F64[(area + VM.requested_size) >> 3] = requested_size;

  const va = alloc_vmap_area(size, align, start, end, node, gfpMask, 0, area);
  if (va < 0) {
    kfree(area);
    return 0;
  }
  return area;
}

/** __get_vm_area_caller (v6.12): reserve `size` bytes in [start, end). vm_struct or 0. */
export function __get_vm_area_caller(size: number, flags: number, start: number, end: number, caller: number): number {
  return __get_vm_area_node(size, 1, PAGE_SHIFT, flags, start, end, NUMA_NO_NODE, GFP_KERNEL, caller);
}

/** get_vm_area (v6.12): reserve a contiguous kernel virtual area (VM_IOREMAP or VM_ALLOC). vm_struct or 0. */
export function get_vm_area(size: number, flags: number, caller?: number): number {
  return __get_vm_area_node(
    size,
    1,
    PAGE_SHIFT,
    flags,
    VMALLOC_START,
    VMALLOC_END,
    NUMA_NO_NODE,
    GFP_KERNEL,
    caller ?? ksym("get_vm_area"),
  );
}

/** get_vm_area_caller (v6.12). */
export function get_vm_area_caller(size: number, flags: number, caller: number): number {
  return __get_vm_area_node(size, 1, PAGE_SHIFT, flags, VMALLOC_START, VMALLOC_END, NUMA_NO_NODE, GFP_KERNEL, caller);
}

/**
 * find_vm_area (v6.12): the vm_struct of the area containing `addr`, 0 when
 * none (or a vm_map_ram area). It is up to the caller to keep it valid.
 */
export function find_vm_area(addr: number): number {
  const va = find_vmap_area(addr);
  if (!va) return 0;
  return va_vm(va);
}

/**
 * remove_vm_area (v6.12): find the area at `addr`, unlink it, unmap it and
 * free its KVA lazily. Returns the vm_struct (safe to use only for its size
 * and flags) or 0. As in the kernel, an address of a vm_map_ram area (no vm)
 * is unlinked from its busy tree and then dropped: that area is lost.
 */
export function remove_vm_area(addr: number): number {
  might_sleep();

  if (addr % PAGE_SIZE !== 0) {
    reportBug("WARN", `Trying to vfree() bad address (${hexKaddr(addr)})`);
    return 0;
  }

  const va = find_unlink_vmap_area(addr);
  if (!va || !va_vm(va)) return 0;
  const vm = va_vm(va);

  debug_check_no_locks_freed(vm_addr(vm), get_vm_area_size(vm));
  debug_check_no_obj_freed(vm_addr(vm), get_vm_area_size(vm));

  free_unmap_vmap_area(va);
  return vm;
}

/*
 * Not modelled: vm_reset_perms and set_area_direct_map (VM_FLUSH_RESET_PERMS:
 * vmsim's linear map has no permissions to reset), vm_area_register_early
 * (no early user on the modelled arches), vmap_pfn, vrealloc, the sparse
 * areas of vm_area_map_pages, remap_vmalloc_range (no user address spaces).
 */

/** delayed_vfree_work (v6.12): vfree every area queued on this vfree_deferred, in process context. */
function delayed_vfree_work(w: number): void {
  const p = w - VFREE_DEFERRED.off.wq;
  // llist_for_each_safe: fetch the successor before vfree frees the page holding the node.
  for (let llnode = llist_del_all(p + VFREE_DEFERRED.off.list), t: number; llnode !== 0; llnode = t) {
    t = llist_next(llnode);
    vfree(F64[(llnode + DEFERRED_NODE.off.addr) >> 3]!);
  }
}
const DELAYED_VFREE_WORK = defineKernelFn("6.12:delayed_vfree_work", delayed_vfree_work);

function bug_on_in_nmi(fn: string): void {
  if (preempt_count() & NMI_MASK) throw new KernelBug(`kernel BUG at mm/vmalloc.c: ${fn}: in_nmi()`);
}

/**
 * vfree_atomic (v6.12): vfree from any atomic context but NMI — queued on
 * this CPU's vfree_deferred (the node written into the area itself, see
 * DEFERRED_NODE); the adder that finds the list empty schedules the work.
 */
export function vfree_atomic(addr: number): void {
  const p = this_cpu_ptr(vfree_deferred);
  bug_on_in_nmi("vfree_atomic");
  if (!addr) return;
  const page = vmalloc_to_page(addr);
  if (!page) {
    // The kernel's store of the llist node into an unmapped address oopses.
    reportBug("fault", `Unable to handle kernel paging request at virtual address ${hexKaddr(addr)}`);
    return;
  }
  const node = page_address(page);
  F64[(node + DEFERRED_NODE.off.addr) >> 3] = addr;
  if (llist_add(node + DEFERRED_NODE.off.node, p + VFREE_DEFERRED.off.list)) schedule_work(p + VFREE_DEFERRED.off.wq);
}

/**
 * The arena address of entry `i` of `vm`'s page array: in place for a
 * kmalloc'ed array; for a vmalloc'ed one, through the linear alias of the
 * page that holds it (what the kernel's access through the mapping reaches).
 */
function vm_page_slot(vm: number, i: number): number {
  const pages = vm_pages(vm);
  if (!pages_are_vmalloced(vm)) return pages + 4 * i;
  const at = pages + 4 * i;
  return page_address(vmalloc_to_page(at)) + (at % PAGE_SIZE);
}

/** v->pages[i] as kernel code loads it (show_numa_info's page_to_nid(v->pages[nr])). */
function vm_page(vm: number, i: number): number {
  return I32[vm_page_slot(vm, i) >> 2]!;
}

/**
 * The kernel asks is_vmalloc_addr(area->pages); vmsim's kmalloc pointers are
 * arena offsets, which on arm64 machines over 128 MiB can fall in the
 * vmalloc kaddr range, so it asks the question the kernel means: was the
 * array bigger than a page (__vmalloc_area_node's condition for vmalloc'ing
 * it)? A VM_MAP_PUT_PAGES array is the caller's: kmalloc'ed in vmsim.
 */
function pages_are_vmalloced(vm: number): boolean {
  if (vm_pages(vm) === 0 || vm_flags(vm) & VM_MAP_PUT_PAGES) return false;
  return (get_vm_area_size(vm) / PAGE_SIZE) * PTR_BYTES > PAGE_SIZE;
}

/**
 * vfree (v6.12): release memory allocated by vmalloc(); NULL is a no-op. In
 * interrupt context the area goes to vfree_atomic.
 */
export function vfree(addr: number): void {
  if (in_interrupt()) {
    vfree_atomic(addr);
    return;
  }
  bug_on_in_nmi("vfree");
  might_sleep();
  if (!addr) return;
  trace_event(EV_VFREE, addr, preempt_count());
  if (tracing) trace_graph_entry(TF_VFREE, addr, 0);

  const vm = remove_vm_area(addr);
  if (!vm) {
    reportBug("WARN", `Trying to vfree() nonexistent vm area (${hexKaddr(addr)})`);
    if (tracing) trace_graph_return(TF_VFREE, 0);
    return;
  }

  const nr = vm_nr_pages(vm);
  const vmalloced = pages_are_vmalloced(vm);
  for (let i = 0, slot = vm_pages(vm); i < nr; i++, slot += 4) {
    // A vmalloc'ed array is read through the linear alias of each of its pages.
    if (vmalloced && (i & (PAGE_SIZE / 4 - 1)) === 0) slot = vm_page_slot(vm, i);
    const page = I32[slot >> 2]!;
    if (!page) throw new KernelBug("kernel BUG at mm/vmalloc.c: vfree: NULL page");
    /* High-order allocs for huge vmallocs are split, so can be freed as an array of order-0 allocations */
    __free_page(page);
    cond_resched();
  }
  if (!(vm_flags(vm) & VM_MAP_PUT_PAGES)) atomic_long_sub(nr, nr_vmalloc_pages.ptr);
  /* kvfree(vm->pages) */
  if (vmalloced) vfree(vm_pages(vm));
  else kfree(vm_pages(vm));
  kfree(vm);
  if (tracing) trace_graph_return(TF_VFREE, 0);
}

/** vunmap (v6.12): release a mapping obtained by vmap(); not in interrupt context. */
export function vunmap(addr: number): void {
  trace_event(EV_VUNMAP, addr, 0);
  if (in_interrupt()) throw new KernelBug("kernel BUG at mm/vmalloc.c: vunmap: in_interrupt()");
  might_sleep();
  if (!addr) return;
  if (tracing) trace_graph_entry(TF_VUNMAP, addr, 0);
  const vm = remove_vm_area(addr);
  if (!vm) reportBug("WARN", `Trying to vunmap() nonexistent vm area (${hexKaddr(addr)})`);
  else kfree(vm);
  if (tracing) trace_graph_return(TF_VUNMAP, 0);
}

/**
 * vmap (v6.12): map `count` pages of `pages` (an arena array of int32 struct
 * page pointers) into virtually contiguous space. kaddr or 0. `caller`: the
 * %pS the kernel takes from __builtin_return_address(0).
 */
export function vmap(pages: number, count: number, flags: number, prot: Pgprot, caller?: number): number {
  might_sleep();

  if (flags & VM_FLUSH_RESET_PERMS) {
    warn("vmap: WARN_ON_ONCE(flags & VM_FLUSH_RESET_PERMS)");
    return 0;
  }
  /* Your top guard is someone else's bottom guard. Not having a top guard compromises someone else's mappings too. */
  if (flags & VM_NO_GUARD) {
    warn("vmap: WARN_ON_ONCE(flags & VM_NO_GUARD)");
    flags &= ~VM_NO_GUARD;
  }

  if (count > totalram_pages()) return 0;

  const size = count * PAGE_SIZE;
  const area = get_vm_area_caller(size, flags, caller ?? ksym("vmap"));
  if (!area) return 0;

  const addr = vm_addr(area);
  if (vmap_pages_range(addr, addr + size, prot, pages, PAGE_SHIFT) < 0) {
    vunmap(vm_addr(area));
    return 0;
  }

  if (flags & VM_MAP_PUT_PAGES) {
    F64[(area + VM.pages) >> 3] = pages;
    I32[(area + VM.nr_pages) >> 2] = count;
  }
  return vm_addr(area);
}

/**
 * vm_area_alloc_pages (v6.12, order 0 — no huge vmalloc): fill `area`'s page
 * array with nr_pages pages; returns how many it got. The kernel takes them
 * from the bulk allocator 100 at a time (cond_resched between) and falls back
 * to alloc_pages one by one; vmsim's buddy allocator has no bulk path, so
 * each page comes from alloc_page, the fallback's call. `area` stands for the
 * kernel's `pages` argument: a vmalloc'ed array is written page by page
 * through its linear aliases.
 */
function vm_area_alloc_pages(gfp: number, _nid: number, _order: number, nrPages: number, area: number): number {
  let nr_allocated = 0;
  const vmalloced = pages_are_vmalloced(area);
  for (let slot = vm_pages(area); nr_allocated < nrPages; nr_allocated++, slot += 4) {
    const page = alloc_page(gfp);
    if (!page) break;
    if (vmalloced && (nr_allocated & (PAGE_SIZE / 4 - 1)) === 0) slot = vm_page_slot(area, nr_allocated);
    I32[slot >> 2] = page;
    if (nr_allocated % 100 === 99) cond_resched();
  }
  cond_resched();
  return nr_allocated;
}

/** warn_alloc (mm/page_alloc.c, v6.12) with vmalloc's message; silent with __GFP_NOWARN. */
function warn_alloc(gfpMask: number, msg: string): void {
  if (gfpMask & __GFP_NOWARN) return;
  reportBug(
    "WARN",
    `cpu${smp_processor_id()}: ${msg}, mode:0x${gfpMask.toString(16)}(${format_gfp(gfpMask)}), nodemask=(null)`,
  );
}

/**
 * vmap_pages_range over `area`'s own page array, which __vmalloc_area_node
 * maps: a vmalloc'ed array is reached page by page through its linear
 * aliases (vmsim's page-table walker reads one contiguous arena array).
 */
function vmapAreaPages(area: number, prot: Pgprot): number {
  const addr = vm_addr(area);
  const end = addr + get_vm_area_size(area);
  if (!pages_are_vmalloced(area)) return vmap_pages_range(addr, end, prot, vm_pages(area), PAGE_SHIFT);
  const per = PAGE_SIZE / 4; // entries per page of the array
  for (let i = 0; addr + i * PAGE_SIZE < end; i += per) {
    const from = addr + i * PAGE_SIZE;
    const err = vmap_pages_range(from, Math.min(end, from + per * PAGE_SIZE), prot, vm_page_slot(area, i), PAGE_SHIFT);
    if (err < 0) return err;
  }
  return 0;
}

/**
 * __vmalloc_area_node (v6.12): the page array (kmalloc'ed, or vmalloc'ed
 * past a page: a strictly bounded recursion), the pages, then the mapping.
 * On failure the partial area goes to vfree after vmalloc's warn_alloc.
 */
function __vmalloc_area_node(area: number, gfpMask: number, prot: Pgprot, pageShift: number, node: number): number {
  const nested_gfp = (gfpMask & GFP_RECLAIM_MASK) | __GFP_ZERO;
  const addr = vm_addr(area);
  const size = get_vm_area_size(area);
  const nr_small_pages = size / PAGE_SIZE;
  /* sizeof(struct page *) decides kmalloc or vmalloc; vmsim's entries are int32, stored at the front. */
  const array_size = nr_small_pages * PTR_BYTES;

  if (!(gfpMask & (GFP_DMA | GFP_DMA32))) gfpMask |= __GFP_HIGHMEM;

  /* Please note that the recursion is strictly bounded. */
  const pages =
    array_size > PAGE_SIZE
      ? __vmalloc_node(array_size, 1, nested_gfp, node, I32[(area + VM.caller) >> 2]!)
      : kmalloc(array_size, nested_gfp);
  F64[(area + VM.pages) >> 3] = pages;
  if (!pages) {
    warn_alloc(
      gfpMask,
      `vmalloc error: size ${nr_small_pages * PAGE_SIZE}, failed to allocated page array size ${array_size}`,
    );
    free_vm_area(area);
    return 0;
  }

  const nr_pages = vm_area_alloc_pages(gfpMask | __GFP_NOWARN, node, 0, nr_small_pages, area);
  I32[(area + VM.nr_pages) >> 2] = nr_pages;
  atomic_long_add(nr_pages, nr_vmalloc_pages.ptr);

  /* If not enough pages were obtained to accomplish an allocation request, free them via vfree() if any. */
  if (nr_pages !== nr_small_pages) {
    warn_alloc(gfpMask, `vmalloc error: size ${nr_pages * PAGE_SIZE}, failed to allocate pages`);
    vfree(addr);
    return 0;
  }

  // page_shift is PAGE_SHIFT: no huge mappings (see the file header).
  if (pageShift !== PAGE_SHIFT || vmapAreaPages(area, prot) < 0) {
    warn_alloc(gfpMask, `vmalloc error: size ${nr_pages * PAGE_SIZE}, failed to map pages`);
    vfree(addr);
    return 0;
  }
  return addr;
}

/**
 * __vmalloc_node_range (v6.12, the _noprof function): allocate virtually
 * contiguous memory of `size` bytes, `align`ed, in [start, end), pages from
 * the page allocator with `gfpMask`, mapped with `prot`; `vmFlags` adds to
 * VM_ALLOC (VM_ALLOW_HUGE_VMAP is ignored: no huge mappings); `caller` names
 * the allocator in vmallocinfo. kaddr or 0.
 */
export function __vmalloc_node_range(
  size: number,
  align: number,
  start: number,
  end: number,
  gfpMask: number,
  prot: Pgprot,
  vmFlags: number,
  node: number,
  caller?: number,
): number {
  const real_size = size;
  trace_event(EV_VMALLOC, size, align);
  if (tracing) trace_graph_entry(TF_VMALLOC, size, caller ?? 0);
  const fail = (): number => {
    trace_event(EV_VMALLOC_RET, 0, 0);
    if (tracing) trace_graph_return(TF_VMALLOC, 0);
    return 0;
  };

  if (!size) {
    warn("__vmalloc_node_range_noprof: WARN_ON_ONCE(!size)");
    return fail();
  }
  if (Math.floor(size / PAGE_SIZE) > totalram_pages()) {
    warn_alloc(gfpMask, `vmalloc error: size ${real_size}, exceeds total pages`);
    return fail();
  }

  const area = __get_vm_area_node(
    real_size,
    align,
    PAGE_SHIFT,
    VM_ALLOC | VM_UNINITIALIZED | vmFlags,
    start,
    end,
    node,
    gfpMask,
    caller ?? ksym("__vmalloc_node_range"),
  );
  if (!area) {
    warn_alloc(gfpMask, `vmalloc error: size ${real_size}, vm_struct allocation failed`);
    return fail();
  }

  /* Allocate physical pages and map them into vmalloc space. */
  const addr = __vmalloc_area_node(area, gfpMask, prot, PAGE_SHIFT, node);
  if (!addr) return fail();

  /*
   * In this function, newly allocated vm_struct has VM_UNINITIALIZED flag.
   * It means that vm_struct is not fully initialized. Now, it is fully
   * initialized, so remove this flag here.
   */
  clear_vm_uninitialized_flag(area);
  trace_event(EV_VMALLOC_RET, addr, 0);
  if (tracing) trace_graph_return(TF_VMALLOC, addr);
  return addr;
}

/** __vmalloc_node (v6.12): __vmalloc_node_range over the whole vmalloc area, PAGE_KERNEL. */
export function __vmalloc_node(size: number, align: number, gfpMask: number, node: number, caller?: number): number {
  return __vmalloc_node_range(
    size,
    align,
    VMALLOC_START,
    VMALLOC_END,
    gfpMask,
    PAGE_KERNEL,
    0,
    node,
    caller ?? ksym("__vmalloc_node"),
  );
}

/** __vmalloc (v6.12): vmalloc with explicit gfp flags (5.8+ dropped the prot argument). */
export function __vmalloc(size: number, gfpMask: number, caller?: number): number {
  return __vmalloc_node(size, 1, gfpMask, NUMA_NO_NODE, caller ?? ksym("__vmalloc"));
}

/* Default callers, interned once per arena on this thread (ksym's Map lookup is off the hot path). */
let KSYM_VMALLOC = 0;
let KSYM_VZALLOC = 0;
const forgetDefaultCallers = () => {
  KSYM_VMALLOC = 0;
  KSYM_VZALLOC = 0;
};
onSetCurrentCpu(forgetDefaultCallers);
// A restored snapshot's symbol table may lack them: intern them again.
onMachineReset(forgetDefaultCallers);

/** vmalloc (v6.12): allocate virtually contiguous memory. kaddr or 0. */
export function vmalloc(size: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL, NUMA_NO_NODE, caller ?? (KSYM_VMALLOC ||= ksym("vmalloc")));
}

/** vmalloc_huge (v6.12): as vmalloc here — VM_ALLOW_HUGE_VMAP has no effect without huge mappings. */
export function vmalloc_huge(size: number, gfpMask: number, caller?: number): number {
  return __vmalloc_node_range(
    size,
    1,
    VMALLOC_START,
    VMALLOC_END,
    gfpMask,
    PAGE_KERNEL,
    VM_ALLOW_HUGE_VMAP,
    NUMA_NO_NODE,
    caller ?? ksym("vmalloc_huge"),
  );
}

/** vzalloc (v6.12): vmalloc, zero-filled. */
export function vzalloc(size: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL | __GFP_ZERO, NUMA_NO_NODE, caller ?? (KSYM_VZALLOC ||= ksym("vzalloc")));
}

/** vmalloc_user (v6.12): zeroed, SHMLBA-aligned, VM_USERMAP from the start (v5.x+: no find_vm_area after). */
export function vmalloc_user(size: number, caller?: number): number {
  return __vmalloc_node_range(
    size,
    SHMLBA,
    VMALLOC_START,
    VMALLOC_END,
    GFP_KERNEL | __GFP_ZERO,
    PAGE_KERNEL,
    VM_USERMAP,
    NUMA_NO_NODE,
    caller ?? ksym("vmalloc_user"),
  );
}

/** vmalloc_node (v6.12): on a specific node (vmsim has one). */
export function vmalloc_node(size: number, node: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL, node, caller ?? ksym("vmalloc_node"));
}

/** vzalloc_node (v6.12). */
export function vzalloc_node(size: number, node: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL | __GFP_ZERO, node, caller ?? ksym("vzalloc_node"));
}

/** GFP_VMALLOC32 (v6.12): arm64 has ZONE_DMA32; arm32 falls back to GFP_DMA32 | GFP_KERNEL too. */
const GFP_VMALLOC32 = GFP_DMA32 | GFP_KERNEL;

/** vmalloc_32 (v6.12): 32-bit addressable pages. */
export function vmalloc_32(size: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_VMALLOC32, NUMA_NO_NODE, caller ?? ksym("vmalloc_32"));
}

/** vmalloc_32_user (v6.12). */
export function vmalloc_32_user(size: number, caller?: number): number {
  return __vmalloc_node_range(
    size,
    SHMLBA,
    VMALLOC_START,
    VMALLOC_END,
    GFP_VMALLOC32 | __GFP_ZERO,
    PAGE_KERNEL,
    VM_USERMAP,
    NUMA_NO_NODE,
    caller ?? ksym("vmalloc_32_user"),
  );
}

/*** vread_iter: the iov_iter is a buffer here ***/

/** zero_iter (v6.12): `count` zero bytes into buf[at…]; the bytes written. */
export function zero_iter(buf: Uint8Array, at: number, count: number): number {
  buf.fill(0, at, at + count);
  return count;
}

/** aligned_vread_iter (v6.12): copy from the pages behind addr through their linear aliases; holes read 0. */
export function aligned_vread_iter(buf: Uint8Array, at: number, addr: number, count: number): number {
  let remains = count;
  while (remains > 0) {
    const offset = addr % PAGE_SIZE;
    const length = Math.min(PAGE_SIZE - offset, remains);
    const page = vmalloc_to_page(addr);
    /* A local mapping (copy_page_to_iter_nofault) rather than a lock: this is a rarely used debug interface. */
    if (page) {
      const src = page_address(page) + offset;
      buf.set(U8.subarray(src, src + length), at);
    } else zero_iter(buf, at, length);
    addr += length;
    at += length;
    remains -= length;
  }
  return count - remains;
}

/**
 * vread_iter (v6.12): read [addr, addr + count) of the vmalloc space into
 * `buf` in a safe way, walking the busy areas of every node in address
 * order: holes, ioremap and sparse areas read as zeros. Returns count (6.12
 * zero-fills whatever no live area covers), less when a copy stopped short.
 */
export function vread_iter(buf: Uint8Array, addr: number, count: number): number {
  /* Don't allow overflow */
  if (addr + count >= KADDR_WRAP) count = KADDR_WRAP - addr;
  let remains = count;
  let at = 0;

  let vn = find_vmap_area_exceed_addr_lock(addr);
  const finished_zero = (): number => {
    if (vn) spin_unlock(vn + BUSY_LOCK);
    /* zero-fill memory holes */
    return count - remains + zero_iter(buf, at, remains);
  };
  const finished = (): number => {
    /* Nothing remains, or We couldn't copy/zero everything. */
    if (vn) spin_unlock(vn + BUSY_LOCK);
    return count - remains;
  };
  if (!vn) return finished_zero();

  /* no intersects with alive vmap_area */
  if (addr + remains <= va_start(exceed_va)) return finished_zero();

  do {
    const va = exceed_va;
    if (remains === 0) return finished();

    const vm = va_vm(va);
    const flags = va_flags(va) & VMAP_FLAGS_MASK;
    /* VMAP_BLOCK indicates a sub-type of vm_map_ram area, need be set together with VMAP_RAM. */
    if (flags === VMAP_BLOCK) warn("vread_iter: WARN_ON(flags == VMAP_BLOCK)");

    // Pair with smp_wmb() in clear_vm_uninitialized_flag(): the Atomics.load is the smp_rmb.
    const skip = (!vm && !flags) || (vm && Atomics.load(I32, (vm + VM.flags) >> 2) & VM_UNINITIALIZED);
    const vaddr = va_start(va);
    const size = vm ? get_vm_area_size(vm) : va_size(va);
    if (!skip && addr < vaddr + size) {
      if (addr < vaddr) {
        const to_zero = Math.min(vaddr - addr, remains);
        const zeroed = zero_iter(buf, at, to_zero);
        addr += zeroed;
        at += zeroed;
        remains -= zeroed;
        if (remains === 0 || zeroed !== to_zero) return finished();
      }

      const n = Math.min(vaddr + size - addr, remains);
      let copied: number;
      if (flags & VMAP_RAM) copied = vmapBlock.vmap_ram_vread_iter(buf, at, addr, n, flags);
      else if (!(vm && vm_flags(vm) & (VM_IOREMAP | VM_SPARSE))) copied = aligned_vread_iter(buf, at, addr, n);
      /* IOREMAP | SPARSE area is treated as memory hole */ else copied = zero_iter(buf, at, n);

      addr += copied;
      at += copied;
      remains -= copied;
      if (copied !== n) return finished();
    }

    /* next_va: */
    const next = va_end(va);
    spin_unlock(vn + BUSY_LOCK);
    vn = find_vmap_area_exceed_addr_lock(next);
  } while (vn);

  return finished_zero();
}

/** aligned_vwrite (v6.1): copy into the pages behind addr; holes are skipped. */
function aligned_vwrite(buf: Uint8Array, at: number, addr: number, count: number): void {
  while (count) {
    const offset = addr % PAGE_SIZE;
    const length = Math.min(PAGE_SIZE - offset, count);
    const p = vmalloc_to_page(addr);
    if (p) U8.set(buf.subarray(at, at + length), page_address(p) + offset);
    addr += length;
    at += length;
    count -= length;
  }
}

/**
 * vwrite — not in v6.12: upstream removed it (v6.2's "mm: remove vwrite")
 * once /dev/kmem, its only user, had gone. vmsim's workloads still write
 * through it, so this is v6.1's vwrite over 6.12's node walk (the vmap areas
 * vread_iter sees): [addr, addr + count) of live vm areas gets `buf`,
 * vm_map_ram, ioremap and sparse areas and holes are skipped. Returns count,
 * or 0 when nothing was written.
 */
export function vwrite(buf: Uint8Array, addr: number, count: number): number {
  /* Don't allow overflow */
  if (addr + count >= KADDR_WRAP) count = KADDR_WRAP - addr;
  const buflen = count;
  let at = 0;
  let copied = 0;
  let vn = count ? find_vmap_area_exceed_addr_lock(addr) : 0;
  while (vn) {
    const va = exceed_va;
    const vm = va_vm(va);
    const vaddr = va_start(va);
    if (vm && !(Atomics.load(I32, (vm + VM.flags) >> 2) & VM_UNINITIALIZED) && addr < vaddr + get_vm_area_size(vm)) {
      /* holes before the area are skipped */
      const skip = Math.max(0, Math.min(vaddr - addr, count));
      at += skip;
      addr += skip;
      count -= skip;
      const n = Math.min(vaddr + get_vm_area_size(vm) - addr, count);
      if (n > 0 && !(vm_flags(vm) & (VM_IOREMAP | VM_SPARSE))) {
        aligned_vwrite(buf, at, addr, n);
        copied++;
      }
      at += n;
      addr += n;
      count -= n;
    }
    const next = va_end(va);
    spin_unlock(vn + BUSY_LOCK);
    vn = count ? find_vmap_area_exceed_addr_lock(next) : 0;
  }
  return copied ? buflen : 0;
}

/*** free_vm_area ***/

/** free_vm_area (v6.12): remove and free an area from get_vm_area. */
export function free_vm_area(area: number): void {
  const ret = remove_vm_area(vm_addr(area));
  if (ret !== area) throw new KernelBug("kernel BUG at mm/vmalloc.c: free_vm_area");
  kfree(area);
}

/*** Percpu areas (CONFIG_SMP) ***/

/** node_to_va (v6.12). */
function node_to_va(n: number): number {
  return n === 0 ? 0 : n - RB;
}

/**
 * pvm_find_va_enclose_addr (v6.12): the free block `addr` lies in or, when
 * there is none, the highest one below `addr`; 0 when none is below.
 */
function pvm_find_va_enclose_addr(addr: number): number {
  let n = I32[(free_vmap_area_root.ptr + RB_ROOT_NODE) >> 2]!;
  let va = 0;
  while (n) {
    const tmp = n - RB;
    if (va_start(tmp) <= addr) {
      va = tmp;
      if (va_end(tmp) >= addr) break;
      n = I32[(n + RB_RIGHT) >> 2]!;
    } else {
      n = I32[(n + RB_LEFT) >> 2]!;
    }
  }
  return va;
}

/** pvm_determine_end_from_reverse's in/out `*va`. */
let pvm_va = 0;

/**
 * pvm_determine_end_from_reverse (v6.12): walking the free list down from
 * pvm_va, the highest `align`ed end below VMALLOC_END of a block it leaves
 * room in (pvm_va: that block); the kernel's 0 — KADDR_NULL — when none.
 */
function pvm_determine_end_from_reverse(align: number): number {
  const vmalloc_end = VMALLOC_END - (VMALLOC_END % align);
  if (pvm_va) {
    const head = free_vmap_area_list.ptr;
    for (let e = pvm_va + LST; e !== head; e = list_prev(e)) {
      pvm_va = e - LST;
      const addr = Math.min(va_end(pvm_va) - (va_end(pvm_va) % align), vmalloc_end);
      if (va_start(pvm_va) < addr) return addr;
    }
    pvm_va = 0; // list_for_each_entry_from_reverse leaves *va at the head's container: no block
  }
  return KADDR_NULL;
}

/**
 * pcpu_get_vm_areas (v6.12): `nrVms` congruent areas for the percpu
 * allocator — area i at base + offsets[i], sizes[i] bytes, all `align`ed —
 * clipped out of the free tree top-down so they stay clear of ordinary
 * vmallocs. Returns a kcalloc'ed array of vm_struct pointers (int32), or 0.
 * The kernel's kcalloc'ed vas[] scratch array is a local array here.
 */
export function pcpu_get_vm_areas(
  offsets: readonly number[],
  sizes: readonly number[],
  nrVms: number,
  align: number,
): number {
  const vmalloc_start = ALIGN(VMALLOC_START, align);
  const vmalloc_end = VMALLOC_END - (VMALLOC_END % align);
  const cachep = I32[vmap_area_cachep.ptr >> 2]!;
  const bug = (what: string) => new KernelBug(`kernel BUG at mm/vmalloc.c: pcpu_get_vm_areas: ${what}`);

  /* verify parameters and allocate data structures */
  if (align % PAGE_SIZE || !is_power_of_2(align)) throw bug(`align ${align}`);
  let last_area = 0;
  for (let area = 0; area < nrVms; area++) {
    const start = offsets[area]!;
    const end = start + sizes[area]!;
    /* is everything aligned properly? */
    if (offsets[area]! % align || sizes[area]! % align) throw bug(`area ${area} not aligned`);
    /* detect the area with the highest address */
    if (start > offsets[last_area]!) last_area = area;
    for (let area2 = area + 1; area2 < nrVms; area2++) {
      const start2 = offsets[area2]!;
      const end2 = start2 + sizes[area2]!;
      if (start2 < end && start < end2) throw bug(`areas ${area} and ${area2} overlap`);
    }
  }
  const last_end = offsets[last_area]! + sizes[last_area]!;

  if (vmalloc_end - vmalloc_start < last_end) {
    warn("pcpu_get_vm_areas: WARN_ON(true)");
    return 0;
  }

  const vms = kzalloc(nrVms * 4, GFP_KERNEL);
  const vas: number[] = new Array<number>(nrVms).fill(0);
  const err_free = (): number => {
    for (let area = 0; area < nrVms; area++) {
      if (vas[area]) kmem_cache_free(cachep, vas[area]!);
      if (vms) kfree(I32[(vms >> 2) + area]!);
    }
    kfree(vms);
    return 0;
  };
  if (!vms) return err_free();
  for (let area = 0; area < nrVms; area++) {
    vas[area] = kmem_cache_zalloc(cachep, GFP_KERNEL);
    I32[(vms >> 2) + area] = kzalloc(VM_STRUCT.size, GFP_KERNEL);
    if (!vas[area] || !I32[(vms >> 2) + area]) return err_free();
  }

  let base = 0;
  for (let purged = false; ; ) {
    /* retry: */
    spin_lock(free_vmap_area_lock.ptr);

    /* start scanning - we scan from the top, begin with the last area */
    let area = last_area;
    let term_area = last_area;
    let start = offsets[area]!;
    let end = start + sizes[area]!;

    pvm_va = pvm_find_va_enclose_addr(vmalloc_end);
    base = pvm_determine_end_from_reverse(align) - end;

    let overflow = false;
    for (;;) {
      /* base might have underflowed, add last_end before comparing. */
      if (base + last_end < vmalloc_start + last_end) {
        overflow = true;
        break;
      }
      /* Fitting base has not been found. */
      if (pvm_va === 0) {
        overflow = true;
        break;
      }
      /* If required width exceeds current VA block, move base downwards and then recheck. */
      if (base + end > va_end(pvm_va)) {
        base = pvm_determine_end_from_reverse(align) - end;
        term_area = area;
        continue;
      }
      /* If this VA does not fit, move base downwards and recheck. */
      if (base + start < va_start(pvm_va)) {
        pvm_va = node_to_va(rb_prev(pvm_va + RB));
        base = pvm_determine_end_from_reverse(align) - end;
        term_area = area;
        continue;
      }
      /* This area fits, move on to the previous one. If the previous one is the terminal one, we're done. */
      area = (area + nrVms - 1) % nrVms;
      if (area === term_area) break;
      start = offsets[area]!;
      end = start + sizes[area]!;
      pvm_va = pvm_find_va_enclose_addr(base + end);
    }

    if (!overflow) {
      /* we've found a fitting base, insert all va's */
      let recovered = -1;
      for (area = 0; area < nrVms; area++) {
        start = base + offsets[area]!;
        const size = sizes[area]!;
        const va = pvm_find_va_enclose_addr(start);
        if (va === 0 || va_clip(free_vmap_area_root.ptr, free_vmap_area_list.ptr, va, start, size)) {
          /* It is a BUG(), but trigger recovery instead. */
          warn("pcpu_get_vm_areas: WARN_ON_ONCE(va == NULL || ret)");
          recovered = area;
          break;
        }
        /* Allocated area. */
        set_va_start(vas[area]!, start);
        set_va_end(vas[area]!, start + size);
      }
      if (recovered < 0) {
        spin_unlock(free_vmap_area_lock.ptr);

        /* insert all vm's */
        const caller = ksym("pcpu_get_vm_areas");
        for (area = 0; area < nrVms; area++) {
          const vn = addr_to_node(va_start(vas[area]!));
          spin_lock(vn + BUSY_LOCK);
          insert_vmap_area(vas[area]!, vn + BUSY_ROOT, vn + BUSY_HEAD);
          setup_vmalloc_vm(I32[(vms >> 2) + area]!, vas[area]!, VM_ALLOC, caller);
          spin_unlock(vn + BUSY_LOCK);
        }
        return vms;
      }

      /* recovery: remove previously allocated areas (they are not in a busy tree yet). */
      for (area = recovered; area-- > 0; ) {
        merge_or_add_vmap_area_augment(vas[area]!, free_vmap_area_root.ptr, free_vmap_area_list.ptr);
        vas[area] = 0;
      }
    }

    /* overflow: */
    spin_unlock(free_vmap_area_lock.ptr);
    if (purged) return err_free();
    reclaim_and_purge_vmap_areas();
    purged = true;

    /* Before "retry", check if we recover. */
    for (area = 0; area < nrVms; area++) {
      if (vas[area]) continue;
      vas[area] = kmem_cache_zalloc(cachep, GFP_KERNEL);
      if (!vas[area]) return err_free();
    }
  }
}

/** pcpu_free_vm_areas (v6.12): free the areas and the array pcpu_get_vm_areas returned. */
export function pcpu_free_vm_areas(vms: number, nrVms: number): void {
  for (let i = 0; i < nrVms; i++) free_vm_area(I32[(vms >> 2) + i]!);
  kfree(vms);
}

/*** vmalloc_dump_obj ***/

/**
 * vmalloc_dump_obj (v6.12, CONFIG_PRINTK): the mem_dump_obj line for an
 * address in a vmalloc area, or null when its node is busy or it is none.
 */
export function vmalloc_dump_obj(object: number): string | null {
  const addr = PAGE_ALIGN(object);
  const vn = addr_to_node(addr);
  if (!spin_trylock(vn + BUSY_LOCK)) return null;
  const va = __find_vmap_area(addr, vn + BUSY_ROOT);
  if (!va || !va_vm(va)) {
    spin_unlock(vn + BUSY_LOCK);
    return null;
  }
  const vm = va_vm(va);
  const start = vm_addr(vm);
  const caller = I32[(vm + VM.caller) >> 2]!;
  const nr_pages = vm_nr_pages(vm);
  spin_unlock(vn + BUSY_LOCK);
  return ` ${nr_pages}-page vmalloc region starting at ${hexKaddr(start)} allocated at ${ksym_name(caller)}`;
}

/*** /proc/vmallocinfo ***/

/**
 * show_numa_info (v6.12, CONFIG_NUMA): " N0=<pages>" from the area's page
 * array (vmsim has one node); the caller has skipped VM_UNINITIALIZED areas.
 */
function show_numa_info(v: number): string {
  const nr = vm_nr_pages(v);
  let counter = 0;
  for (let i = 0; i < nr; i++) if (vm_page(v, i)) counter++;
  return counter ? ` N0=${counter}` : "";
}

/** show_purge_info (v6.12): an "unpurged vm_area" line for each lazily freed area, node by node. */
function show_purge_info(lines: string[]): void {
  const size = (n: number) => String(n).padStart(7);
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  for (let i = 0; i < nr; i++) {
    const vn = vmapNode(i);
    spin_lock(vn + LAZY_LOCK);
    for (let e = list_next(vn + LAZY_HEAD); e !== vn + LAZY_HEAD; e = list_next(e)) {
      const va = e - LST;
      lines.push(`${hexKaddr(va_start(va))}-${hexKaddr(va_end(va))} ${size(va_size(va))} unpurged vm_area`);
    }
    spin_unlock(vn + LAZY_LOCK);
  }
}

/** One vmallocinfo line of a busy area, or null for one the kernel skips. */
function vmalloc_info_line(va: number, numa: boolean): string | null {
  const size = (n: number) => String(n).padStart(7);
  const v = va_vm(va);
  if (!v) {
    if (va_flags(va) & VMAP_RAM)
      return `${hexKaddr(va_start(va))}-${hexKaddr(va_end(va))} ${size(va_size(va))} vm_map_ram`;
    return null;
  }
  // Pair with smp_wmb() in clear_vm_uninitialized_flag(): the Atomics.load is the smp_rmb.
  if (Atomics.load(I32, (v + VM.flags) >> 2) & VM_UNINITIALIZED) return null;

  let line = `${hexKaddr(vm_addr(v))}-${hexKaddr(vm_addr(v) + vm_size(v))} ${size(vm_size(v))}`;
  const caller = I32[(v + VM.caller) >> 2]!;
  if (caller) line += ` ${ksym_name(caller)}`;
  if (vm_nr_pages(v)) line += ` pages=${vm_nr_pages(v)}`;
  const phys = F64[(v + VM.phys_addr) >> 3]!;
  if (phys) line += ` phys=0x${phys.toString(16).padStart(IS_64BIT ? 16 : 8, "0")}`;
  const flags = vm_flags(v);
  if (flags & VM_IOREMAP) line += " ioremap";
  if (flags & VM_SPARSE) line += " sparse";
  if (flags & VM_ALLOC) line += " vmalloc";
  if (flags & VM_MAP) line += " vmap";
  if (flags & VM_USERMAP) line += " user";
  if (flags & VM_DMA_COHERENT) line += " dma-coherent";
  if (pages_are_vmalloced(v)) line += " vpages";
  if (numa) line += show_numa_info(v);
  return line;
}

/** Options of {@link vmallocinfo}. */
export interface VmallocinfoOptions {
  /** The file of a CONFIG_NUMA kernel: each area's line ends with its pages per node (show_numa_info). @defaultValue false */
  readonly numa?: boolean;
}

/**
 * /proc/vmallocinfo (v6.12's vmalloc_info_show): every node's busy areas
 * under its busy.lock, node by node (each node's list address-sorted, the
 * whole not), then the unpurged areas of every node's lazy list. Callers
 * print as symbol names without the +off/size of %pS.
 */
export function vmallocinfo(opts: VmallocinfoOptions = {}): string[] {
  const numa = opts.numa ?? false;
  const lines: string[] = [];
  if (tracing) trace_graph_entry(TF_VMALLOCINFO, 0, 0);
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  for (let i = 0; i < nr; i++) {
    const vn = vmapNode(i);
    spin_lock(vn + BUSY_LOCK);
    for (let e = list_next(vn + BUSY_HEAD); e !== vn + BUSY_HEAD; e = list_next(e)) {
      const line = vmalloc_info_line(e - LST, numa);
      if (line !== null) lines.push(line);
    }
    spin_unlock(vn + BUSY_LOCK);
  }
  /* As a final step, dump "unpurged" areas. */
  show_purge_info(lines);
  if (tracing) trace_graph_return(TF_VMALLOCINFO, lines.length);
  return lines;
}

/** The Vmalloc lines of /proc/meminfo, in kB. */
// biome-ignore-start lint/style/useNamingConvention: the /proc/meminfo field names
export interface VmallocInfo {
  /** VMALLOC_END - VMALLOC_START. */
  readonly VmallocTotal: number;
  /** Pages backing vmalloc areas (vmalloc_nr_pages). */
  readonly VmallocUsed: number;
  /** 0, as every kernel since v4.4 prints. */
  readonly VmallocChunk: number;
}

/** The Vmalloc lines of fs/proc/meminfo.c (v6.12's meminfo_proc_show). */
export function get_vmalloc_info(): VmallocInfo {
  return {
    VmallocTotal: (VMALLOC_END - VMALLOC_START) / 1024,
    VmallocUsed: vmalloc_nr_pages() * (PAGE_SIZE / 1024),
    VmallocChunk: 0,
  };
}
// biome-ignore-end lint/style/useNamingConvention: the /proc/meminfo field names

/*** vmalloc_init ***/

/**
 * vmap_init_free_space (v6.12): the free tree starts as the whole KVA space
 * [1, ULONG_MAX) less the vmlist areas.
 *
 *     B     F     B     B     B     F
 * -|-----|.....|-----|-----|-----|.....|-
 *  |           The KVA space           |
 *  |<--------------------------------->|
 */
function vmap_init_free_space(): void {
  const cachep = I32[vmap_area_cachep.ptr >> 2]!;
  let vmap_start = KADDR_NULL + 1;
  const vmap_end = KADDR_WRAP - 1;
  for (let busy = I32[(vmlist.ptr + VMLIST.off.p) >> 2]!; busy; busy = I32[(busy + VM.next) >> 2]!) {
    if (vm_addr(busy) - vmap_start > 0) {
      const free = kmem_cache_zalloc(cachep, GFP_NOWAIT);
      if (!free) warn("vmap_init_free_space: WARN_ON_ONCE(!free)");
      else {
        set_va_start(free, vmap_start);
        set_va_end(free, vm_addr(busy));
        insert_vmap_area_augment(free, 0, free_vmap_area_root.ptr, free_vmap_area_list.ptr);
      }
    }
    vmap_start = vm_addr(busy) + vm_size(busy);
  }

  if (vmap_end - vmap_start > 0) {
    const free = kmem_cache_zalloc(cachep, GFP_NOWAIT);
    if (!free) warn("vmap_init_free_space: WARN_ON_ONCE(!free)");
    else {
      set_va_start(free, vmap_start);
      set_va_end(free, vmap_end);
      insert_vmap_area_augment(free, 0, free_vmap_area_root.ptr, free_vmap_area_list.ptr);
    }
  }
}

/** The most vmap nodes: a scale factor of 1 up to 128 CPUs. */
const MAX_VMAP_NODES = 128;

/**
 * vmap_init_nodes (v6.12): one node per possible CPU (up to 128) on a 64-bit
 * kernel, partitioned in zones of 16 pages; one node (the static `single`)
 * on 32-bit or when the array cannot be allocated. Each node's locks get one
 * lockdep class per kind, as the kernel's spin_lock_init at one call site.
 */
function vmap_init_nodes(): void {
  if (IS_64BIT) {
    const n = Math.min(Math.max(num_possible_cpus(), 1), MAX_VMAP_NODES);
    if (n > 1) {
      const vn = kmalloc(n * VMAP_NODE.size, GFP_NOWAIT | __GFP_NOWARN); // kmalloc_array
      if (vn) {
        /* Node partition is 16 pages. */
        I32[vmap_zone_size.ptr >> 2] = (1 << 4) * PAGE_SIZE;
        I32[nr_vmap_nodes.ptr >> 2] = n;
        I32[vmap_nodes.ptr >> 2] = vn;
      } else {
        reportBug("WARN", "Failed to allocate an array. Disable a node layer");
      }
    }
  }
  zoneBaseMod = -1;

  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  for (let n = 0; n < nr; n++) {
    const vn = vmapNode(n);
    I32[(vn + BUSY_ROOT + RB_ROOT_NODE) >> 2] = 0;
    INIT_LIST_HEAD(vn + BUSY_HEAD);
    spin_lock_init(vn + BUSY_LOCK, "6.12:&vn->busy.lock");

    I32[(vn + LAZY_ROOT + RB_ROOT_NODE) >> 2] = 0;
    INIT_LIST_HEAD(vn + LAZY_HEAD);
    spin_lock_init(vn + LAZY_LOCK, "6.12:&vn->lazy.lock");

    for (let i = 0; i < MAX_VA_SIZE_PAGES; i++) {
      const vp = vn + VN.pool + i * POOL_STRIDE;
      INIT_LIST_HEAD(vp + POOL_HEAD);
      WRITE_ONCE(vp + POOL_LEN, 0);
    }
    spin_lock_init(vn + VN.pool_lock, "6.12:&vn->pool_lock");

    // vmsim's: the kernel leaves purge_list to the first purge's INIT_LIST_HEAD (kmalloc_array does not
    // zero); an empty list from the start lets a checker walk it between purges.
    INIT_LIST_HEAD(vn + VN.purge_list);
  }
}

/** vmap_node_shrink_count (v6.12): the VAs in every node's pools, SHRINK_EMPTY for none. */
function vmap_node_shrink_count(_shrink: number, _sc: number): number {
  let count = 0;
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  for (let i = 0; i < nr; i++) {
    const vn = vmapNode(i);
    for (let j = 0; j < MAX_VA_SIZE_PAGES; j++) count += READ_ONCE(vn + VN.pool + j * POOL_STRIDE + POOL_LEN);
  }
  return count ? count : SHRINK_EMPTY;
}
const VMAP_NODE_SHRINK_COUNT = defineShrinkerFn("6.12:vmap_node_shrink_count", vmap_node_shrink_count);

/** vmap_node_shrink_scan (v6.12): decay every node's pools fully. */
function vmap_node_shrink_scan(_shrink: number, _sc: number): number {
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  for (let i = 0; i < nr; i++) decay_va_pool_node(vmapNode(i), true);
  return SHRINK_STOP;
}
const VMAP_NODE_SHRINK_SCAN = defineShrinkerFn("6.12:vmap_node_shrink_scan", vmap_node_shrink_scan);

/*
 * The arm64 kernel image (arch/arm64/mm/mmu.c declare_kernel_vmas, v6.12):
 * with KASLR off it is linked at KIMAGE_VADDR = MODULES_END = VMALLOC_START;
 * .head.text fills its first SEGMENT_ALIGN (64 KiB) and _stext follows, so
 * the image's five segments are the first areas of the vmalloc area, each
 * declared by declare_vma → vm_area_add_early from paging_init (hence the
 * caller name). declare_vma adds a guard page to a segment without
 * VM_NO_GUARD (the data segment). Segment sizes are generation 1's (a
 * defconfig build's, rounded), placed by 6.12's linker script:
 *
 *   segment    kaddr offset from KIMAGE_VADDR   size (+ guard)  flags
 *   .text      0x0010000 - 0x09a0000             10027008       VM_MAP | VM_NO_GUARD
 *   .rodata    0x09a0000 - 0x0d20000              3670016       VM_MAP | VM_NO_GUARD
 *   .init.text 0x0d20000 - 0x0dd0000               720896       VM_MAP | VM_NO_GUARD
 *   .init.data 0x0dd0000 - 0x0ea0000               851968       VM_MAP | VM_NO_GUARD
 *   .data/.bss 0x0ea0000 - 0x0fb3000 (+ 0x1000)   1130496       VM_MAP
 *
 * phys from 0x40000000 (DRAM base, QEMU virt). The image is not part of
 * vmsim's page frames: these ranges have no PTEs, a load there faults. The
 * 64 KiB below _stext is free: the first small vmallocs land there.
 * arm32 registers none (the seed's machine: the whole area is free at boot).
 */
const KERNEL_SEGMENTS = [
  { start: 0x0010000, end: 0x09a0000, flags: VM_NO_GUARD },
  { start: 0x09a0000, end: 0x0d20000, flags: VM_NO_GUARD },
  { start: 0x0d20000, end: 0x0dd0000, flags: VM_NO_GUARD },
  { start: 0x0dd0000, end: 0x0ea0000, flags: VM_NO_GUARD },
  { start: 0x0ea0000, end: 0x0fb3000, flags: 0 },
] as const;
/** The physical address of KIMAGE_VADDR (QEMU virt DRAM base). */
const KIMAGE_PHYS = 0x40000000;
/** static struct vm_struct vmlinux_seg[KERNEL_SEGMENT_COUNT] of declare_kernel_vmas. */
const vmlinux_seg = DEFINE_GLOBAL(
  "6.12:vmlinux_seg",
  defineStruct("vm_struct_array", [{ name: "seg", type: VM_STRUCT, count: KERNEL_SEGMENTS.length, guard: "init" }]),
);

/** declare_vma (arm64 v6.12): the segment as an early VM_MAP area (+ guard page unless VM_NO_GUARD). */
function declare_vma(vma: number, start: number, end: number, vmFlags: number): void {
  let size = end - start;
  if (!(vmFlags & VM_NO_GUARD)) size += PAGE_SIZE;
  F64[(vma + VM.addr) >> 3] = MODULES_END + start; // KIMAGE_VADDR + offset
  F64[(vma + VM.phys_addr) >> 3] = KIMAGE_PHYS + start;
  F64[(vma + VM.size) >> 3] = size;
  I32[(vma + VM.flags) >> 2] = VM_MAP | vmFlags;
  I32[(vma + VM.caller) >> 2] = ksym("paging_init");
  vm_area_add_early(vma);
}

/** declare_kernel_vmas (arm64 v6.12). */
function declare_kernel_vmas(): void {
  KERNEL_SEGMENTS.forEach((s, i) => {
    declare_vma(vmlinux_seg.ptr + i * VM_STRUCT.size, s.start, s.end, s.flags);
  });
}

/**
 * vmalloc_init (v6.12): the vmap_area cache, per-CPU vmap_block_queue and
 * vfree_deferred, the nodes, the vmlist areas imported into the busy trees,
 * the free space around them, and the vmap-node shrinker. On arm64,
 * paging_init's declare_kernel_vmas registers the image first; vmsim's
 * paging_init knows no image, so vmalloc_init does that step before.
 */
export function vmalloc_init(): void {
  if (IS_64BIT) declare_kernel_vmas();

  /* Create the cache for vmap_area objects (KMEM_CACHE(vmap_area, SLAB_PANIC)). */
  const cachep = kmem_cache_create("vmap_area", VMAP_AREA.size, VMAP_AREA.align, SLAB_PANIC);
  I32[vmap_area_cachep.ptr >> 2] = cachep;

  for (const i of for_each_possible_cpu()) {
    vmapBlock.init_vmap_block_queue(i);
    const p = per_cpu_ptr(vfree_deferred, i);
    init_llist_head(p + VFREE_DEFERRED.off.list);
    INIT_WORK(p + VFREE_DEFERRED.off.wq, DELAYED_VFREE_WORK);
  }

  /* Setup nodes before importing vmlist. */
  vmap_init_nodes();

  /* Import existing vmlist entries. */
  for (let tmp = I32[(vmlist.ptr + VMLIST.off.p) >> 2]!; tmp; tmp = I32[(tmp + VM.next) >> 2]!) {
    const va = kmem_cache_zalloc(cachep, GFP_NOWAIT);
    if (!va) {
      warn("vmalloc_init: WARN_ON_ONCE(!va)");
      continue;
    }
    set_va_start(va, vm_addr(tmp));
    set_va_end(va, vm_addr(tmp) + vm_size(tmp));
    I32[(va + VA.vm) >> 2] = tmp;
    const vn = addr_to_node(va_start(va));
    insert_vmap_area(va, vn + BUSY_ROOT, vn + BUSY_HEAD);
  }

  /* Now we can initialize a free vmap space. */
  vmap_init_free_space();
  I32[vmap_initialized.ptr >> 2] = 1;

  const vmap_node_shrinker = shrinker_alloc(0, "vmap-node");
  if (!vmap_node_shrinker) {
    reportBug("WARN", "Failed to allocate vmap-node shrinker!");
    return;
  }
  shrinker_set_callbacks(vmap_node_shrinker, VMAP_NODE_SHRINK_COUNT, VMAP_NODE_SHRINK_SCAN);
  shrinker_register(vmap_node_shrinker);
}

/*** Harness ***/

/** Harness: entry `i` of `vm`'s page array (struct page pointer), wherever the array lives. */
export function vmStructPage(vm: number, i: number): number {
  return I32[vm_page_slot(vm, i) >> 2]!;
}

/**
 * Harness: the early areas vm_area_add_early put on vmlist (arm64's kernel
 * image segments), as vm_struct → the name of the kernel's static variable.
 */
export function earlyVmAreas(): Map<number, string> {
  const out = new Map<number, string>();
  // vmlist is written once at boot; the bound only guards a corrupted arena.
  let tmp = I32[(vmlist.ptr + VMLIST.off.p) >> 2]!;
  for (let n = 0; tmp && n < 1024; tmp = I32[(tmp + VM.next) >> 2]!, n++) {
    const i = (tmp - vmlinux_seg.ptr) / VM_STRUCT.size;
    out.set(tmp, Number.isInteger(i) && i >= 0 && i < KERNEL_SEGMENTS.length ? `vmlinux_seg[${i}]` : "vmlist");
  }
  return out;
}

/**
 * Calls `fn` with every vmap_area of every node's busy tree, node by node,
 * each in address order (a walk of the trees, not the lists, so a checker
 * can compare the two). The caller guarantees the CPUs are parked.
 */
export function forEachBusyVmapArea(fn: (va: number, node: number) => void): void {
  const nr = I32[nr_vmap_nodes.ptr >> 2]!;
  for (let i = 0; i < nr; i++) forEachInTree(vmapNode(i) + BUSY_ROOT, (va) => fn(va, i));
}

/** Calls `fn` with every vmap_area of `root` in address order (CPUs parked). */
export function forEachInTree(root: number, fn: (va: number) => void): void {
  let n = I32[(root + RB_ROOT_NODE) >> 2]!;
  if (!n) return;
  for (let l: number; (l = I32[(n + RB_LEFT) >> 2]!) !== 0; ) n = l;
  for (; n; ) {
    const next = rbNextLocal(n);
    fn(n - RB);
    n = next;
  }
}

function rbNextLocal(node: number): number {
  let n = I32[(node + RB_RIGHT) >> 2]!;
  if (n) {
    for (let l: number; (l = I32[(n + RB_LEFT) >> 2]!) !== 0; ) n = l;
    return n;
  }
  let parent: number;
  while ((parent = rb_parent(node)) && node === I32[(parent + RB_RIGHT) >> 2]) node = parent;
  return parent;
}

/** Harness: the VAs of pool `idx` (size (idx + 1) pages) of node `node`, in list order (CPUs parked). */
export function poolAreas(node: number, idx: number): number[] {
  const vp = vmapNode(node) + VN.pool + idx * POOL_STRIDE;
  const out: number[] = [];
  for (let e = list_next(vp + POOL_HEAD); e !== vp + POOL_HEAD; e = list_next(e)) out.push(e - LST);
  return out;
}

/** Harness: the recorded length of pool `idx` of node `node` (vp->len). */
export function poolLen(node: number, idx: number): number {
  return I32[(vmapNode(node) + VN.pool + idx * POOL_STRIDE + POOL_LEN) >> 2]!;
}

/** Harness: the free blocks (free_vmap_area_list) as [start, end) kaddr pairs (CPUs parked). */
export function freeBlocks(): [number, number][] {
  const out: [number, number][] = [];
  const head = free_vmap_area_list.ptr;
  for (let e = list_next(head); e !== head; e = list_next(e)) out.push([va_start(e - LST), va_end(e - LST)]);
  return out;
}

/** Harness: the lazily freed areas of node `node` (its lazy list), in address order (CPUs parked). */
export function lazyAreas(node: number): number[] {
  const head = vmapNode(node) + LAZY_HEAD;
  const out: number[] = [];
  for (let e = list_next(head); e !== head; e = list_next(e)) out.push(e - LST);
  return out;
}

/** Harness: the lowest match by tree and by the list oracle, for `vmsim`'s self-check. */
export function lowestMatchCheck(size: number, align: number, vstart: number): { tree: number; list: number } {
  return {
    tree: find_vmap_lowest_match(free_vmap_area_root.ptr, size, align, vstart, false),
    list: find_vmap_lowest_linear_match(free_vmap_area_list.ptr, size, align, vstart),
  };
}

/**
 * Harness: the vmap_area objects the CPUs hold preloaded for a no-edge split
 * (ne_fit_preload_node): the kernel keeps them across calls, so a leak check
 * of vmap_area_cachep counts them as kept, not leaked.
 */
export function nePreloadSpares(): number {
  let n = 0;
  for (const cpu of for_each_possible_cpu()) if (I32[per_cpu_ptr(ne_fit_preload_node, cpu) >> 2]) n++;
  return n;
}

/** Harness "purge" (vmsim exec's op): reclaim_and_purge_vmap_areas — fragmented blocks, every lazy area, pools fully decayed. */
export function purge_vmap_area_lazy(): void {
  reclaim_and_purge_vmap_areas();
}

/** The per-CPU kva allocator's entry points, for the generation object (they live in vmap_block.ts). */
export function vm_map_ram(pages: number, count: number, node: number): number {
  return vmapBlock.vm_map_ram(pages, count, node);
}

/** vm_unmap_ram (v6.12, in vmap_block.ts). */
export function vm_unmap_ram(mem: number, count: number): void {
  vmapBlock.vm_unmap_ram(mem, count);
}

/** vm_unmap_aliases (v6.12, in vmap_block.ts). */
export function vm_unmap_aliases(): void {
  vmapBlock.vm_unmap_aliases();
}

/*** Mapping kernel ranges (the generation-neutral names of 4.19's API) ***/

/**
 * map_kernel_range_noflush of v4.19–v5.7 (6.12: vmap_pages_range_noflush):
 * map PFN_UP(size) pages at addr; 0 or -errno.
 */
export function map_kernel_range_noflush(addr: number, size: number, prot: Pgprot, pages: number): number {
  return vmap_pages_range_noflush(addr, addr + size, prot, pages);
}

/** unmap_kernel_range_noflush of v4.19–v5.7 (6.12: vunmap_range_noflush). */
export function unmap_kernel_range_noflush(addr: number, size: number): void {
  vunmap_range_noflush(addr, addr + size);
}

/** map_vm_area of v4.19 (6.12: vmap_pages_range over the area): 0 or -errno. */
export function map_vm_area(area: number, prot: Pgprot, pages: number): number {
  const addr = vm_addr(area);
  return vmap_pages_range(addr, addr + get_vm_area_size(area), prot, pages, PAGE_SHIFT);
}

/*** The generation object (src/mm/vmalloc_generation.ts) ***/

/**
 * Generation 3 behind the generation-neutral API, in generation 1's
 * signatures: where v6.12 changed one (no `prot` for __vmalloc, __vmalloc_node
 * and vm_map_ram; vread_iter for vread; vmap_pages_range for map_vm_area and
 * map_kernel_range_noflush) the adapter drops or maps the argument.
 */
/* biome-ignore-start lint/style/useNamingConvention: the kernel's names, leading underscores included */
export const vmalloc_generation = {
  version: "6.12",
  vmalloc_init,
  vmalloc,
  vzalloc,
  vmalloc_user,
  vmalloc_node,
  vzalloc_node,
  vmalloc_32,
  vmalloc_32_user,
  __vmalloc: (size: number, gfpMask: number, _prot: Pgprot, caller?: number) => __vmalloc(size, gfpMask, caller),
  __vmalloc_node: (size: number, align: number, gfpMask: number, _prot: Pgprot, node: number, caller?: number) =>
    __vmalloc_node(size, align, gfpMask, node, caller),
  __vmalloc_node_range,
  vfree,
  vfree_atomic,
  vunmap,
  vmap,
  get_vm_area,
  get_vm_area_caller,
  __get_vm_area: (size: number, flags: number, start: number, end: number, caller?: number) =>
    __get_vm_area_caller(size, flags, start, end, caller ?? ksym("__get_vm_area_caller")),
  find_vm_area,
  remove_vm_area,
  free_vm_area,
  map_vm_area,
  vread: vread_iter,
  vwrite,
  is_vmalloc_addr,
  vmalloc_to_page,
  vm_map_ram: (pages: number, count: number, node: number, _prot: Pgprot) => vm_map_ram(pages, count, node),
  vm_unmap_ram,
  vm_unmap_aliases,
  purge_vmap_area_lazy,
  pcpu_get_vm_areas,
  pcpu_free_vm_areas,
  map_kernel_range_noflush: (addr: number, size: number, prot: Pgprot, pages: number) => {
    const err = map_kernel_range_noflush(addr, size, prot, pages);
    return err < 0 ? err : Math.ceil(size / PAGE_SIZE);
  },
  unmap_kernel_range_noflush,
  vmallocinfo,
  get_vmalloc_info,
  vmap_lazy_nr_read,
  vmStructPage,
  vm_addr,
  vm_size,
  vm_flags,
  vm_nr_pages,
  vfree_deferred_list: (cpu: number) => per_cpu_ptr(vfree_deferred, cpu) + VFREE_DEFERRED.off.list,
} as const;
/* biome-ignore-end lint/style/useNamingConvention: the kernel's names, leading underscores included */
