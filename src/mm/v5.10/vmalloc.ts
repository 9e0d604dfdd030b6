/**
 * mm/vmalloc.c (v5.10 LTS): the "KVA" allocator — generation 2 of vmsim's
 * vmalloc (Uladzislau Rezki's rework of v5.2, as it stands in v5.10).
 *
 * Read it beside the kernel's file: the sections and their order are the
 * kernel's ("Per cpu kva allocator" lives in vmap_block.ts; the page-table
 * walkers in ../pgtable.ts), and each function names the kernel function and
 * version it follows. Where vmsim differs, the function says why.
 *
 * What v5.10 changed from v4.19 (generation 1):
 * - the free space is a tree of its own: free_vmap_area_root (augmented with
 *   each subtree's largest free block, subtree_max_size) + the address-sorted
 *   free_vmap_area_list, under free_vmap_area_lock; the busy areas stay in
 *   vmap_area_root + vmap_area_list under vmap_area_lock. Allocation is the
 *   lowest fit (find_vmap_lowest_match) and a split of the free block by one
 *   of four fit types; a freed area merges with its free neighbours.
 * - the "no edge" split needs a second vmap_area: each CPU preloads one
 *   (ne_fit_preload_node) with the caller's gfp outside the spinlock.
 * - vmap_area comes from its own kmem_cache (vmap_area_cachep).
 * - a lazily freed area leaves the busy tree at once and sits on
 *   vmap_purge_list alone; the purge merges it into the free tree.
 * - no VM_VM_AREA / VM_LAZY_FREE flags: `va->vm` says whether an area has a
 *   vm_struct; /proc/vmallocinfo prints the purge list last ("unpurged vm_area").
 *
 * 4 KiB pages only: vmsim maps no huge pages, so the v5.10 huge-vmap paths
 * (CONFIG_HAVE_ARCH_HUGE_VMAP's pmd/pud mappings in the page-table walkers)
 * never run. KASAN is off: the kasan_* hooks are empty in the kernel too.
 *
 * Addresses: a kernel virtual address is a kaddr (va - layout.base, see
 * src/shared/layouts.ts), stored in f64 fields. The free tree covers the whole
 * unsigned long space, [1, ULONG_MAX): its lowest block starts at address 1,
 * a kaddr of 1 - base — on 64-bit layouts that rounds to the kaddr of address
 * 0 in an f64, which nothing compares exactly (no allocation reaches below
 * the kernel half).
 *
 * Locking, as in the kernel: vmap_area_lock guards the busy tree and list;
 * free_vmap_area_lock the free tree and list (and the CPU's preloaded node
 * it consumes); vmap_purge_lock (a mutex) serialises purges; vmap_purge_list
 * is lock-less (llist); vmap_lazy_nr is an atomic.
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
import {
  EV_PURGE_FLUSH,
  EV_PURGE_VMAP_AREA_LAZY,
  EV_VFREE,
  EV_VMALLOC,
  EV_VMALLOC_RET,
  EV_VMAP_AREA_LOCK,
  EV_VUNMAP,
  LK_ALLOC_VMAP_AREA,
  LK_FIND_VMAP_AREA,
  LK_FREE_VMAP_AREA,
  LK_REMOVE_VM_AREA,
  LK_SETUP_VMALLOC_VM,
  LK_VREAD,
  LK_VWRITE,
  trace_event,
} from "../../shared/events.js";
import { SP_SLEEP, sched_point } from "../../sched/sched_point.js";
import {
  TF_PURGE_VMAP_AREA_LAZY,
  TF_PURGE_VMAP_AREA_LAZY_LOCKED,
  TF_VFREE,
  TF_VMALLOC,
  TF_VMALLOCINFO,
  TF_VUNMAP,
  trace_graph_entry,
  trace_graph_return,
  tracing,
} from "../../trace/trace.js";
import { ksym, ksym_name } from "../../kernel/kallsyms.js";
import { INIT_WORK, WORK_STRUCT, schedule_work } from "../../kernel/workqueue.js";
import { LIST_HEAD, INIT_LIST_HEAD, list_add, list_del, list_is_last, list_next, list_prev } from "../../lib/list.js";
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
  rb_next,
  rb_parent,
  rb_prev,
} from "../../lib/rbtree.js";
import {
  ATOMIC_LONG_T,
  atomic_long_add,
  atomic_long_add_return,
  atomic_long_read,
  atomic_long_set,
  atomic_long_sub,
} from "../../locks/atomic.js";
import { lockdep_assert_held } from "../../locks/lockdep.js";
import { cond_resched, might_sleep } from "../../locks/might_sleep.js";
import { DEFINE_MUTEX, mutex_lock, mutex_trylock, mutex_unlock } from "../../locks/mutex.js";
import { DEFINE_SPINLOCK, spin_is_contended, spin_lock, spin_unlock } from "../../locks/spinlock.js";
import { for_each_possible_cpu } from "../../percpu/percpu.js";
import { in_interrupt, preempt_count } from "../../percpu/preempt.js";
import { NMI_MASK } from "../../shared/preempt_mask.js";
import { num_online_cpus, onSetCurrentCpu, smp_processor_id, this_cpu_ptr } from "../../shared/smp.js";
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
  gfpflags_allow_blocking,
} from "../gfp.js";
import { pfn_to_page } from "../mm_types.js";
import { __free_pages, alloc_page, page_address, page_to_pfn, totalram_pages } from "../page_alloc.js";
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
import {
  NUMA_NO_NODE,
  VM_ALLOC,
  VM_IOREMAP,
  VM_MAP,
  VM_NO_GUARD,
  VM_UNINITIALIZED,
  VM_USERMAP,
  type VmallocGeneration,
  type VmallocInfo,
  type VmallocinfoOptions,
} from "../vmalloc_generation.js";

/*** include/linux/vmalloc.h (v5.10) ***/

/* vm_struct flags (include/linux/vmalloc.h): the ones every generation shares come from the header. */
export {
  NUMA_NO_NODE,
  VM_ALLOC,
  VM_IOREMAP,
  VM_KASAN,
  VM_MAP,
  VM_NO_GUARD,
  VM_UNINITIALIZED,
  VM_USERMAP,
} from "../vmalloc_generation.js";
import { ALIGN, PAGE_ALIGN, is_power_of_2 } from "../../lib/log2.js";

/** VM_DMA_COHERENT (v5.10): dma_alloc_coherent's remaps, " dma-coherent" in vmallocinfo. */
export const VM_DMA_COHERENT = 0x00000010;
/*
 * Not modelled: VM_FLUSH_RESET_PERMS and VM_MAP_PUT_PAGES (0x100 in v5.10.7;
 * 0x100 and 0x200 from v5.10.10). Their users are module/BPF text loaders and
 * dma-buf, none of which vmsim runs, and vmsim's linear map has no
 * permissions to reset; vm_remove_mappings is therefore remove_vm_area.
 */

const ENOMEM = 12;
const EBUSY = 16;

/**
 * struct vmap_area (include/linux/vmalloc.h, v5.10). The kernel packs
 * subtree_max_size, vm and purge_list in a union (an area is in exactly one of
 * the free tree, the busy tree, the purge list); vmsim gives each its own slot,
 * so a checker can read the one that belongs to the area's state without
 * knowing it first. Objects come from vmap_area_cachep.
 */
export const VMAP_AREA = defineStruct("vmap_area", [
  /** [va_start, va_end): kaddrs; in the free tree they change under free_vmap_area_lock (split, merge). */
  { name: "va_start", type: "f64", guard: "vmap_area_lock / free_vmap_area_lock (the tree it is in)" },
  { name: "va_end", type: "f64", guard: "vmap_area_lock / free_vmap_area_lock (the tree it is in)" },
  /** address sorted rbtree (busy: vmap_area_root, free: free_vmap_area_root) */
  { name: "rb_node", type: RB_NODE, guard: "vmap_area_lock / free_vmap_area_lock (the tree it is in)" },
  /** address sorted list (busy: vmap_area_list, free: free_vmap_area_list) */
  { name: "list", type: LIST_HEAD, guard: "vmap_area_lock / free_vmap_area_lock (the tree it is in)" },
  /** in "free" tree: the largest free block in this subtree (RB_DECLARE_CALLBACKS_MAX) */
  { name: "subtree_max_size", type: "f64", guard: "free_vmap_area_lock" },
  /** in "busy" tree: the vm_struct, NULL for vm_map_ram areas and while being torn down */
  { name: "vm", type: "ptr", guard: "vmap_area_lock" },
  /** in purge list: set before llist_add publishes the area */
  { name: "purge_list", type: LLIST_NODE, guard: "init" },
  /**
   * vmsim's debug field, not the kernel's (as KASAN's alloc_info rides along
   * with a slab object): the CPU that inserted the area in the busy tree, for `vmsim map`.
   */
  { name: "alloc_cpu", type: "i32", guard: "vmap_area_lock" },
]);

/** struct vm_struct (v5.10). Allocated by kzalloc in __get_vm_area_node; the early ones are static. */
export const VM_STRUCT = defineStruct("vm_struct", [
  /** vmlist, before vmalloc_init only. */
  { name: "next", type: "ptr", guard: "init" },
  { name: "addr", type: "f64", guard: "vmap_area_lock" },
  /** Bytes, the guard page included unless VM_NO_GUARD (get_vm_area_size subtracts it). */
  { name: "size", type: "f64", guard: "vmap_area_lock" },
  /** Set in setup_vmalloc_vm under the lock; then only its owner changes it (VM_UNINITIALIZED). */
  { name: "flags", type: "i32", guard: "vmap_area_lock" },
  /**
   * The page array (int32 struct page pointers): an arena offset when
   * kmalloc'ed, a kaddr when vmalloc'ed (past a page) — hence f64, as a kaddr
   * needs up to 48 bits. Read entries with {@link vmStructPage}.
   */
  { name: "pages", type: "f64", guard: "owner" },
  { name: "nr_pages", type: "i32", guard: "owner" },
  { name: "phys_addr", type: "f64", guard: "init" },
  /** Symbol id of the allocating function (src/kernel/kallsyms.ts), printed as %pS. */
  { name: "caller", type: "i32", guard: "vmap_area_lock" },
]);

const VA = VMAP_AREA.off;
const VM = VM_STRUCT.off;
const RB = VA.rb_node;
const LST = VA.list;
const RB_LEFT = RB_NODE.off.rb_left;
const RB_RIGHT = RB_NODE.off.rb_right;

/* Field accessors of vmap_area and vm_struct (also the checker's). Records are 8-aligned. */
export const va_start = (va: number) => F64[(va + VA.va_start) >> 3]!;
export const va_end = (va: number) => F64[(va + VA.va_end) >> 3]!;
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

/** get_vm_area_size (include/linux/vmalloc.h, v5.10): the area's size without its guard page. */
export function get_vm_area_size(vm: number): number {
  return vm_flags(vm) & VM_NO_GUARD ? vm_size(vm) : vm_size(vm) - PAGE_SIZE;
}

/*** The address layout (arch/arm64/include/asm/memory.h and pgtable.h; immutable config, cached per thread) ***/

/** VMALLOC_START, VMALLOC_END, MODULES_VADDR, MODULES_END as kaddrs (live bindings, set on attach). */
export let VMALLOC_START = 0;
export let VMALLOC_END = 0;
export let MODULES_VADDR = 0;
export let MODULES_END = 0;
let layout: Layout;
/** 2^64 - base (2^32 on arm32): a kaddr sum at or past it wrapped in the kernel's unsigned long. */
let KADDR_WRAP = 0;
/** Kernel address 0 as a kaddr (KADDR_WRAP - 2^64; 0 on arm32). */
let KADDR_NULL = 0;
/** sizeof(struct page *): 8 on arm64, 4 on arm32. */
let PTR_BYTES = 8;
/** IOREMAP_MAX_ORDER: PUD_SHIFT on arm64 with 4 KiB pages, the generic 7 + PAGE_SHIFT on arm32. */
let IOREMAP_MAX_ORDER = 30;
/** SHMLBA: PAGE_SIZE on arm64, 4 * PAGE_SIZE on arm32 (arch/arm/include/asm/shmparam.h). */
let SHMLBA = PAGE_SIZE;

/* Deliberate bugs (src/shared/inject.ts), read once per arena: off, each hook is one branch on a false flag. */
let injectPvmSearchCriteria = false;
let injectKvaSetupVmUnlocked = false;

onSetCurrentCpu(() => {
  injectPvmSearchCriteria = theArena().config.inject.includes("pvm-search-criteria");
  injectKvaSetupVmUnlocked = theArena().config.inject.includes("kva-setup-vm-unlocked");
  layout = layoutOf(theArena().config);
  VMALLOC_START = layout.vmallocStart;
  VMALLOC_END = layout.vmallocEnd;
  MODULES_VADDR = layout.modulesStart;
  MODULES_END = layout.modulesEnd;
  KADDR_WRAP = 2 ** layout.vaBits;
  const is64 = layout.vaBits > 32;
  KADDR_NULL = KADDR_WRAP - (is64 ? 2 ** 64 : 2 ** 32);
  PTR_BYTES = is64 ? 8 : 4;
  IOREMAP_MAX_ORDER = is64 ? 30 : 7 + PAGE_SHIFT;
  SHMLBA = is64 ? PAGE_SIZE : 4 * PAGE_SIZE;
});

function hexKaddr(addr: number): string {
  return formatKaddr(layout, addr);
}

/** WARN_ON(cond) of `fn` (v5.10's wording of the splat's first line); returns cond. */
function WARN_ON(cond: boolean, fn: string, what: string): boolean {
  if (cond) reportBug("WARN", `WARNING: CPU: ${smp_processor_id()} at mm/vmalloc.c ${fn}: WARN_ON(${what})`);
  return cond;
}

/** is_vmalloc_addr (mm/vmalloc.c, v5.10). */
export function is_vmalloc_addr(addr: number): boolean {
  return addr >= VMALLOC_START && addr < VMALLOC_END;
}

/*** vfree_deferred ***/

/** struct vfree_deferred (v5.10): vfree()s from interrupt context, freed later by free_work. */
export const VFREE_DEFERRED = defineStruct("vfree_deferred", [
  /** Lock-less: interrupt handlers add, free_work takes everything. */
  { name: "list", type: LLIST_HEAD, guard: "atomic" },
  /** INIT_WORK at boot; the workqueue guards its own fields. */
  { name: "wq", type: WORK_STRUCT, guard: "init" },
]);
export const vfree_deferred = DEFINE_PER_CPU("5.10:vfree_deferred", VFREE_DEFERRED);

/**
 * The llist node vfree() threads through the freed area. The kernel writes
 * the node into the area's first bytes through the vmalloc mapping; vmsim's
 * llist pointers are arena offsets, so the node is those bytes seen through
 * the linear map (the page vmalloc_to_page finds), and the area's kaddr — which
 * a linear address no longer encodes — is kept right after the node.
 */
const DEFERRED_NODE = defineStruct("vfree_deferred_node", [
  { name: "node", type: LLIST_NODE, guard: "init" },
  { name: "addr", type: "f64", guard: "init" },
]);

/** free_work (v5.10): __vunmap every area queued on this vfree_deferred, in process context. */
function free_work(w: number): void {
  const p = w - VFREE_DEFERRED.off.wq;
  // llist_for_each_safe: fetch the successor before __vunmap frees the page holding the node.
  for (let llnode = llist_del_all(p + VFREE_DEFERRED.off.list), t: number; llnode !== 0; llnode = t) {
    t = llist_next(llnode);
    __vunmap(F64[(llnode + DEFERRED_NODE.off.addr) >> 3]!, 1);
  }
}
const FREE_WORK = defineKernelFn("5.10:free_work", free_work);

/*** Page table manipulation functions ***/
/* vunmap_pte_range … vunmap_p4d_range and vmap_pte_range … vmap_p4d_range: src/mm/pgtable.ts. */

/**
 * unmap_kernel_range_noflush (v5.10): unmap PFN_UP(size) pages at addr; the
 * caller flushes the TLB.
 */
export function unmap_kernel_range_noflush(start: number, size: number): void {
  if (start >= start + size) throw new KernelBug("kernel BUG at mm/vmalloc.c: unmap_kernel_range_noflush: addr >= end");
  vunmap_page_range(start, start + size);
}

/** map_kernel_range_noflush (v5.10): map PFN_UP(size) pages at addr; 0 or -errno (v5.8+: not the count). */
export function map_kernel_range_noflush(addr: number, size: number, prot: Pgprot, pages: number): number {
  if (addr >= addr + size) throw new KernelBug("kernel BUG at mm/vmalloc.c: map_kernel_range_noflush: addr >= end");
  const err = vmap_page_range(addr, addr + size, prot, pages);
  return err < 0 ? err : 0;
}

/** map_kernel_range (v5.10): map_kernel_range_noflush + flush_cache_vmap (a no-op on arm64). */
export function map_kernel_range(start: number, size: number, prot: Pgprot, pages: number): number {
  return map_kernel_range_noflush(start, size, prot, pages);
}

/** is_vmalloc_or_module_addr (v5.10): arm and arm64 put modules in their own area below. */
export function is_vmalloc_or_module_addr(addr: number): boolean {
  if (addr >= MODULES_VADDR && addr < MODULES_END) return true;
  return is_vmalloc_addr(addr);
}

/** vmalloc_to_page (v5.10): walk a vmap address to the struct page it maps, 0 when none. */
export function vmalloc_to_page(addr: number): number {
  const ptep = kernel_ptep_lookup(addr - (addr % PAGE_SIZE));
  if (!ptep) return 0;
  const pte = ptep_get(ptep);
  return pte_present(pte) ? pfn_to_page(pte_pfn(pte)) : 0;
}

/** vmalloc_to_pfn (v5.10): map a vmalloc()-space virtual address to the physical page frame number. */
export function vmalloc_to_pfn(addr: number): number {
  return page_to_pfn(vmalloc_to_page(addr));
}

/*** Global kva allocator ***/

export const vmap_area_lock = DEFINE_SPINLOCK("5.10:vmap_area_lock");
export const free_vmap_area_lock = DEFINE_SPINLOCK("5.10:free_vmap_area_lock");
/** Export for kexec only: the busy areas, address-sorted. */
export const vmap_area_list = DEFINE_GLOBAL("5.10:vmap_area_list", LIST_HEAD);
staticInit(() => INIT_LIST_HEAD(vmap_area_list.ptr));
export const vmap_purge_list = DEFINE_GLOBAL("5.10:vmap_purge_list", LLIST_HEAD);
/** The busy areas by address; a zeroed root is RB_ROOT. */
export const vmap_area_root = DEFINE_GLOBAL("5.10:vmap_area_root", RB_ROOT);

const BOOL = defineStruct("bool", [{ name: "v", type: "i32", guard: "init" }]);
/** static bool vmap_initialized __read_mostly (v5.10, declared here since v5.2). */
export const vmap_initialized = DEFINE_GLOBAL("5.10:vmap_initialized", BOOL);

/**
 * This kmem_cache is used for vmap_area objects. Instead of allocating from
 * slab we reuse an object from this cache to make things faster, especially
 * in "no edge" splitting of a free block. Created by vmalloc_init.
 */
const KMEM_CACHE_PTR = defineStruct("kmem_cache_ptr", [{ name: "p", type: "ptr", guard: "init" }]);
export const vmap_area_cachep = DEFINE_GLOBAL("5.10:vmap_area_cachep", KMEM_CACHE_PTR);

/** The free areas, address-sorted: O(1) prev/next for coalescing, paired with free_vmap_area_root. */
export const free_vmap_area_list = DEFINE_GLOBAL("5.10:free_vmap_area_list", LIST_HEAD);
staticInit(() => INIT_LIST_HEAD(free_vmap_area_list.ptr));
/**
 * The free vmap space: an augmented rbtree by va_start whose every node
 * holds the largest free block of its subtree, so the lowest fit is found in
 * O(log n). Used for allocation and for merging a released area.
 */
export const free_vmap_area_root = DEFINE_GLOBAL("5.10:free_vmap_area_root", RB_ROOT);

/**
 * Preload a CPU with one object for the "no edge" split case, so that it
 * need not be allocated in atomic context under free_vmap_area_lock.
 */
const VMAP_AREA_PTR = defineStruct("vmap_area_ptr", [{ name: "p", type: "ptr", guard: "free_vmap_area_lock" }]);
export const ne_fit_preload_node = DEFINE_PER_CPU("5.10:ne_fit_preload_node", VMAP_AREA_PTR);

/* Addresses of the hot globals, cached per thread. */
let LOCK = 0; // vmap_area_lock
let FREE_LOCK = 0; // free_vmap_area_lock
let ROOT = 0; // vmap_area_root
let LIST = 0; // vmap_area_list
let FREE_ROOT = 0; // free_vmap_area_root
let FREE_LIST = 0; // free_vmap_area_list
onSetCurrentCpu(() => {
  LOCK = vmap_area_lock.ptr;
  FREE_LOCK = free_vmap_area_lock.ptr;
  ROOT = vmap_area_root.ptr;
  LIST = vmap_area_list.ptr;
  FREE_ROOT = free_vmap_area_root.ptr;
  FREE_LIST = free_vmap_area_list.ptr;
});

function cachep(): number {
  return I32[vmap_area_cachep.ptr >> 2]!;
}

/** va_size (v5.10). */
function va_size(va: number): number {
  return va_end(va) - va_start(va);
}

/** get_subtree_max_size (v5.10): 0 for a NULL node. */
function get_subtree_max_size(node: number): number {
  return node === 0 ? 0 : F64[(node - RB + VA.subtree_max_size) >> 3]!;
}

/** compute_subtree_max_size (v5.10): called when a node is removed or rotated. */
export function compute_subtree_max_size(va: number): number {
  return Math.max(
    va_size(va),
    get_subtree_max_size(I32[(va + RB + RB_LEFT) >> 2]!),
    get_subtree_max_size(I32[(va + RB + RB_RIGHT) >> 2]!),
  );
}

/** RB_DECLARE_CALLBACKS_MAX(static, free_vmap_area_rb_augment_cb, struct vmap_area, rb_node, unsigned long, subtree_max_size, va_size) (v5.10). */
const free_vmap_area_rb_augment_cb = RB_DECLARE_CALLBACKS(VMAP_AREA, {
  rbfield: "rb_node",
  rbaugmented: "subtree_max_size",
  rbcompute: compute_subtree_max_size,
});

/** static atomic_long_t nr_vmalloc_pages (v5.10): pages backing vmalloc areas, for meminfo. */
export const nr_vmalloc_pages = DEFINE_GLOBAL("5.10:nr_vmalloc_pages", ATOMIC_LONG_T);

/** vmalloc_nr_pages (v5.10). */
export function vmalloc_nr_pages(): number {
  return atomic_long_read(nr_vmalloc_pages.ptr);
}

/** __find_vmap_area (v5.10): the busy area containing `addr`; vmap_area_lock held. */
function __find_vmap_area(addr: number): number {
  const f64 = F64;
  const i32 = I32;
  let n = i32[(ROOT + RB_ROOT.off.rb_node) >> 2]!;
  while (n) {
    const va = n - RB;
    if (addr < f64[(va + VA.va_start) >> 3]!) n = i32[(n + RB_LEFT) >> 2]!;
    else if (addr >= f64[(va + VA.va_end) >> 3]!) n = i32[(n + RB_RIGHT) >> 2]!;
    else return va;
  }
  return 0;
}

/** find_va_links' *parent out-argument (the caller holds the tree's lock; one CPU runs one task). */
let links_parent = 0;

/**
 * find_va_links (v5.10): the address of the child pointer where `va` would
 * be linked, walking down from `root` (or from node `from` when root is 0),
 * and its parent in {@link links_parent}. 0 (NULL) when `va` overlaps an
 * area in the tree: a WARN, and the caller must not insert it.
 */
function find_va_links(va: number, root: number, from: number): number {
  let link: number;
  let node: number;
  if (root) {
    link = root + RB_ROOT.off.rb_node;
    node = I32[link >> 2]!;
    if (!node) {
      links_parent = 0;
      return link;
    }
  } else node = from;

  /*
   * Go to the bottom of the tree. When we hit the last point we end up with
   * parent rb_node and the direction (link) where va's rb_node goes. On the
   * way down, check for side and full overlaps.
   */
  const start = va_start(va);
  const end = va_end(va);
  let tmp_va: number;
  do {
    tmp_va = node - RB;
    if (start < va_end(tmp_va) && end <= va_start(tmp_va)) link = node + RB_LEFT;
    else if (end > va_start(tmp_va) && start >= va_end(tmp_va)) link = node + RB_RIGHT;
    else {
      reportBug(
        "WARN",
        `vmalloc bug: ${hexKaddr(start)}-${hexKaddr(end)} overlaps with ${hexKaddr(va_start(tmp_va))}-${hexKaddr(va_end(tmp_va))}`,
      );
      return 0;
    }
    node = I32[link >> 2]!;
  } while (node);

  links_parent = tmp_va + RB;
  return link;
}

/** get_va_next_sibling (v5.10): the list entry after the place `link` below `parent` stands for; 0 when the tree is empty. */
function get_va_next_sibling(parent: number, link: number): number {
  /* The tree where VA neighbours are looked for is empty: there is no free vmap space. */
  if (!parent) return 0;
  const list = parent - RB + LST;
  return parent + RB_RIGHT === link ? list_next(list) : list;
}

/**
 * link_va (v5.10): link `va` at `link` below `parent` in `root` and, address
 * sorted, in the list `head`. In the free tree its subtree_max_size is zeroed
 * after the insert: augment_tree_propagate_from fills it from the bottom.
 */
function link_va(va: number, root: number, parent: number, link: number, head: number): void {
  /* VA is still not in the list, but we can identify its future previous list_head node. */
  if (parent) {
    head = parent - RB + LST;
    if (parent + RB_RIGHT !== link) head = list_prev(head);
  }

  /* Insert to the rb-tree */
  rb_link_node(va + RB, parent, link);
  if (root === FREE_ROOT) {
    rb_insert_augmented(va + RB, root, free_vmap_area_rb_augment_cb);
    F64[(va + VA.subtree_max_size) >> 3] = 0;
  } else {
    rb_insert_color(va + RB, root);
    I32[(va + VA.alloc_cpu) >> 2] = smp_processor_id(); // vmsim's debug field (VMAP_AREA)
  }

  /* Address-sort this list */
  list_add(va + LST, head);
}

/** unlink_va (v5.10): take `va` out of `root` and its list. */
function unlink_va(va: number, root: number): void {
  if (WARN_ON(RB_EMPTY_NODE(va + RB), "unlink_va", "RB_EMPTY_NODE(&va->rb_node)")) return;

  if (root === FREE_ROOT) rb_erase_augmented(va + RB, root, free_vmap_area_rb_augment_cb);
  else rb_erase(va + RB, root);

  list_del(va + LST);
  RB_CLEAR_NODE(va + RB);
}

/**
 * augment_tree_propagate_check (v5.10's DEBUG_AUGMENT_PROPAGATE_CHECK): every
 * free area whose stored subtree_max_size differs from the one computed from
 * its children — the kernel's pr_emerg lines. Harness: the CPUs are parked.
 */
export function augment_tree_propagate_check(): string[] {
  const out: string[] = [];
  for (let e = list_next(FREE_LIST); e !== FREE_LIST; e = list_next(e)) {
    const va = e - LST;
    const computed_size = compute_subtree_max_size(va);
    if (computed_size !== va_subtree_max_size(va))
      out.push(`tree is corrupted: ${va_size(va)}, ${va_subtree_max_size(va)}`);
  }
  return out;
}

/**
 * augment_tree_propagate_from (v5.10): recompute subtree_max_size from `va`
 * towards the root until a node's value does not change. Needed after an
 * insert (free path), a shrink (allocation path) and a grow (merge path).
 */
function augment_tree_propagate_from(va: number): void {
  free_vmap_area_rb_augment_cb.propagate(va + RB, 0);
}

/** insert_vmap_area (v5.10): link `va` into `root` and `head`, unless it overlaps (WARN). */
function insert_vmap_area(va: number, root: number, head: number): void {
  const link = find_va_links(va, root, 0);
  if (link) link_va(va, root, links_parent, link, head);
}

/** insert_vmap_area_augment (v5.10): insert into the free tree, searching from `from` when given, and propagate. */
function insert_vmap_area_augment(va: number, from: number, root: number, head: number): void {
  const link = from ? find_va_links(va, 0, from) : find_va_links(va, root, 0);
  if (link) {
    link_va(va, root, links_parent, link, head);
    augment_tree_propagate_from(va);
  }
}

/**
 * merge_or_add_vmap_area (v5.10): give [va_start, va_end) back to the free
 * tree — merged into the next and/or previous free block when they touch
 * (the merged-away vmap_area goes back to the cache), else inserted. Returns
 * the free area now holding the range, or 0 on an overlap (a WARN; the
 * system stays alive).
 */
export function merge_or_add_vmap_area(va: number, root: number, head: number): number {
  let merged = false;

  /* Find a place in the tree where VA potentially will be inserted, unless it is merged with its sibling/siblings. */
  const link = find_va_links(va, root, 0);
  if (!link) return 0;
  const parent = links_parent;

  /* Get next node of VA to check if merging can be done. */
  const next = get_va_next_sibling(parent, link);
  if (next !== 0) {
    /*
     * start            end
     * |                |
     * |<------VA------>|<-----Next----->|
     *                  |                |
     *                  start            end
     */
    if (next !== head) {
      const sibling = next - LST;
      if (va_start(sibling) === va_end(va)) {
        set_va_start(sibling, va_start(va));
        /* Free vmap_area object. */
        kmem_cache_free(cachep(), va);
        /* Point to the new merged area. */
        va = sibling;
        merged = true;
      }
    }

    /*
     * start            end
     * |                |
     * |<-----Prev----->|<------VA------>|
     *                  |                |
     *                  start            end
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
        if (merged) unlink_va(va, root);
        set_va_end(sibling, va_end(va));
        /* Free vmap_area object. */
        kmem_cache_free(cachep(), va);
        /* Point to the new merged area. */
        va = sibling;
        merged = true;
      }
    }
  }

  /* insert: */
  if (!merged) link_va(va, root, parent, link, head);

  /* Last step is to check and update the tree. */
  augment_tree_propagate_from(va);
  return va;
}

/**
 * is_within_this_va (v5.10): does `size` bytes, `align`ed, at or above
 * `vstart` fit inside free area `va`? An ALIGN or a sum past ULONG_MAX wraps
 * in the kernel's unsigned long: no fit.
 */
function is_within_this_va(va: number, size: number, align: number, vstart: number): boolean {
  const nvaStartAddr = va_start(va) > vstart ? ALIGN(va_start(va), align) : ALIGN(vstart, align);

  /* Can be overflowed due to big size or alignment. */
  if (nvaStartAddr >= KADDR_WRAP || nvaStartAddr + size >= KADDR_WRAP || nvaStartAddr < vstart) return false;

  return nvaStartAddr + size <= va_end(va);
}

/**
 * find_vmap_lowest_match (v5.10): the free block with the lowest start
 * address that can hold `size` bytes `align`ed at or above `vstart`, or 0.
 * The descent compares subtree_max_size with size + align - 1 (the search
 * length adjusted for the worst-case alignment overhead), so a block that
 * fits only because it happens to be aligned is not seen from above: v5.10
 * has no adjust_search_size switch (added in v5.19).
 */
export function find_vmap_lowest_match(size: number, align: number, vstart: number): number {
  /* Start from the root. */
  let node = I32[(FREE_ROOT + RB_ROOT.off.rb_node) >> 2]!;

  /* Adjust the search size for alignment overhead. */
  const length = size + align - 1;

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
       * satisfy the search criteria. It can happen only once due to
       * "vstart" restriction.
       */
      while ((node = rb_parent(node))) {
        va = node - RB;
        if (is_within_this_va(va, size, align, vstart)) return va;

        if (get_subtree_max_size(I32[(node + RB_RIGHT) >> 2]!) >= length && vstart <= va_start(va)) {
          node = I32[(node + RB_RIGHT) >> 2]!;
          break;
        }
      }
    }
  }

  return 0;
}

/** find_vmap_lowest_linear_match (v5.10's DEBUG_AUGMENT_LOWEST_MATCH_CHECK): the same question by a walk of the list. */
export function find_vmap_lowest_linear_match(size: number, align: number, vstart: number): number {
  for (let e = list_next(FREE_LIST); e !== FREE_LIST; e = list_next(e))
    if (is_within_this_va(e - LST, size, align, vstart)) return e - LST;
  return 0;
}

/** enum fit_type (v5.10). */
export const NOTHING_FIT = 0;
export const FL_FIT_TYPE = 1; /* full fit */
export const LE_FIT_TYPE = 2; /* left edge fit */
export const RE_FIT_TYPE = 3; /* right edge fit */
export const NE_FIT_TYPE = 4; /* no edge fit */

/** classify_va_fit_type (v5.10): how [nvaStartAddr, + size) sits in free area `va`. */
export function classify_va_fit_type(va: number, nvaStartAddr: number, size: number): number {
  /* Check if it is within VA. */
  if (nvaStartAddr < va_start(va) || nvaStartAddr + size > va_end(va)) return NOTHING_FIT;

  /* Now classify. */
  if (va_start(va) === nvaStartAddr) return va_end(va) === nvaStartAddr + size ? FL_FIT_TYPE : LE_FIT_TYPE;
  if (va_end(va) === nvaStartAddr + size) return RE_FIT_TYPE;
  return NE_FIT_TYPE;
}

/**
 * adjust_va_to_fit_type (v5.10): cut [nvaStartAddr, + size) out of free
 * area `va`. 0, or -1 when the no-edge split found no second vmap_area
 * (the CPU was not preloaded and GFP_NOWAIT failed). free_vmap_area_lock held.
 */
function adjust_va_to_fit_type(va: number, nvaStartAddr: number, size: number, type: number): number {
  let lva = 0;

  if (type === FL_FIT_TYPE) {
    /*
     * No need to split VA, it fully fits.
     *
     * |               |
     * V      NVA      V
     * |---------------|
     */
    unlink_va(va, FREE_ROOT);
    kmem_cache_free(cachep(), va);
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
    const slot = this_cpu_ptr(ne_fit_preload_node) >> 2; // __this_cpu_xchg(ne_fit_preload_node, NULL)
    lva = I32[slot]!;
    I32[slot] = 0;
    if (!lva) {
      /*
       * Not preloaded: the percpu allocator never preloads (its requests
       * are mostly RE/FL fits), and a CPU may not have been. Then
       * GFP_NOWAIT; if that fails too, alloc_vmap_area's overflow path
       * purges and retries.
       */
      lva = kmem_cache_alloc(cachep(), GFP_NOWAIT);
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
    if (lva) /* type == NE_FIT_TYPE */ insert_vmap_area_augment(lva, va + RB, FREE_ROOT, FREE_LIST);
  }
  return 0;
}

/**
 * __alloc_vmap_area (v5.10): the start of a fresh [addr, addr + size) cut
 * from the free tree, or `vend` on failure. free_vmap_area_lock held.
 */
function __alloc_vmap_area(size: number, align: number, vstart: number, vend: number): number {
  const va = find_vmap_lowest_match(size, align, vstart);
  if (!va) return vend;

  const nvaStartAddr = va_start(va) > vstart ? ALIGN(va_start(va), align) : ALIGN(vstart, align);

  /* Check the "vend" restriction. */
  if (nvaStartAddr + size > vend) return vend;

  /* Classify what we have found. */
  const type = classify_va_fit_type(va, nvaStartAddr, size);
  if (WARN_ON(type === NOTHING_FIT, "__alloc_vmap_area", "type == NOTHING_FIT")) return vend;

  /* Update the free vmap_area. */
  if (adjust_va_to_fit_type(va, nvaStartAddr, size, type)) return vend;

  return nvaStartAddr;
}

/** free_vmap_area (v5.10): free a region of KVA allocated by alloc_vmap_area — busy tree out, free tree in. */
export function free_vmap_area(va: number): void {
  /* Remove from the busy tree/list. */
  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_FREE_VMAP_AREA, va_start(va));
  unlink_va(va, ROOT);
  spin_unlock(LOCK);

  /* Insert/Merge it back to the free tree/list. */
  spin_lock(FREE_LOCK);
  merge_or_add_vmap_area(va, FREE_ROOT, FREE_LIST);
  spin_unlock(FREE_LOCK);
}

/*
 * The kernel's vmap_notify_list (register_vmap_purge_notifier) lets a driver
 * give back address space when an allocation overflows; vmsim has no such
 * driver, so that step of alloc_vmap_area would always free nothing.
 */

/**
 * alloc_vmap_area (v5.10): allocate a region of KVA of `size` bytes and
 * `align`ment within [vstart, vend): preload this CPU's no-edge node,
 * cut the lowest fit from the free tree under free_vmap_area_lock, insert
 * the area in the busy tree under vmap_area_lock. On overflow, one purge of
 * the lazily freed areas and a retry. Returns the vmap_area, or -ENOMEM /
 * -EBUSY (no room, or vmalloc_init has not run).
 */
export function alloc_vmap_area(
  size: number,
  align: number,
  vstart: number,
  vend: number,
  _node: number,
  gfpMask: number,
): number {
  if (!size || size % PAGE_SIZE !== 0 || !is_power_of_2(align))
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: alloc_vmap_area: size ${size} align ${align}`);

  if (!I32[vmap_initialized.ptr >> 2]) return -EBUSY;

  might_sleep();
  gfpMask &= GFP_RECLAIM_MASK;

  const va = kmem_cache_alloc(cachep(), gfpMask); // kmem_cache_alloc_node: vmsim has one node
  if (!va) return -ENOMEM;

  for (let purged = false; ; purged = true) {
    /* retry: */
    /*
     * Preload this CPU with one extra vmap_area object, used when the fit
     * type of the free area is NE_FIT_TYPE, with the caller's (more
     * permissive) gfp in non-atomic context. It does not guarantee the
     * allocation runs on a preloaded CPU; if not, GFP_NOWAIT is used.
     */
    let pva = 0;
    const preload = this_cpu_ptr(ne_fit_preload_node) >> 2;
    /* Even if it fails we do not really care: the "overflow" path refills the cache. */
    if (!I32[preload]) pva = kmem_cache_alloc(cachep(), gfpMask);

    spin_lock(FREE_LOCK);
    // __this_cpu_cmpxchg(ne_fit_preload_node, NULL, pva): read again under the lock (an interrupt may have used it).
    if (pva) {
      if (I32[preload]) kmem_cache_free(cachep(), pva);
      else I32[preload] = pva;
    }

    /* If an allocation fails, the "vend" address is returned: the overflow path. */
    const addr = __alloc_vmap_area(size, align, vstart, vend);
    spin_unlock(FREE_LOCK);

    if (addr !== vend) {
      set_va_start(va, addr);
      set_va_end(va, addr + size);
      I32[(va + VA.vm) >> 2] = 0;

      spin_lock(LOCK);
      trace_event(EV_VMAP_AREA_LOCK, LK_ALLOC_VMAP_AREA, addr);
      insert_vmap_area(va, ROOT, LIST);
      spin_unlock(LOCK);

      if (addr % align || addr < vstart || addr + size > vend)
        throw new KernelBug(`kernel BUG at mm/vmalloc.c: alloc_vmap_area: ${hexKaddr(addr)} outside its bounds`);
      return va;
    }

    /* overflow: */
    if (purged) break;
    purge_vmap_area_lazy();
  }

  if (!(gfpMask & __GFP_NOWARN))
    reportBug("WARN", `vmap allocation for size ${size} failed: use vmalloc=<size> to increase size`);

  kmem_cache_free(cachep(), va);
  return -EBUSY;
}

/**
 * lazy_max_pages (v5.10): the most virtual address space gathered up before
 * a purge with a TLB flush — fls(online CPUs) × 32 MiB, a log scale in CPUs.
 */
export function lazy_max_pages(): number {
  const log = 32 - Math.clz32(num_online_cpus());
  return log * ((32 * 1024 * 1024) / PAGE_SIZE);
}

/** static atomic_long_t vmap_lazy_nr (v5.10): pages of lazily freed areas not yet purged. */
export const vmap_lazy_nr = DEFINE_GLOBAL("5.10:vmap_lazy_nr", ATOMIC_LONG_T);

/** Harness: the current vmap_lazy_nr. */
export function vmap_lazy_nr_read(): number {
  return atomic_long_read(vmap_lazy_nr.ptr);
}

/**
 * Serialize vmap purging. There is no actual critical section protected by
 * this lock, but we want to avoid concurrent calls for performance reasons
 * and to make pcpu_get_vm_areas more deterministic.
 */
export const vmap_purge_lock = DEFINE_MUTEX("5.10:vmap_purge_lock");

/** set_iounmap_nonlazy (v5.10): make the next lazy free purge at once. */
export function set_iounmap_nonlazy(): void {
  atomic_long_set(vmap_lazy_nr.ptr, lazy_max_pages() + 1);
}

/**
 * cond_resched_lock (v5.10, CONFIG_PREEMPT's spin_needbreak): when another
 * CPU waits for `lock` (spin_is_contended), let it in.
 */
function cond_resched_lock(lock: number): void {
  if (!spin_is_contended(lock)) return;
  spin_unlock(lock);
  sched_point(SP_SLEEP);
  spin_lock(lock);
}

/**
 * __purge_vmap_area_lazy (v5.10): purge every lazily freed area — one TLB
 * flush over [min start, max end], then each area merged back into the free
 * tree under free_vmap_area_lock, letting waiters in (cond_resched_lock)
 * once vmap_lazy_nr drops below 2 × lazy_max_pages. `start`/`end` widen the
 * flush (vm_unmap_aliases); pass Infinity and 0 for ULONG_MAX and 0.
 * Returns false when nothing was queued. vmap_purge_lock held.
 */
export function __purge_vmap_area_lazy(start: number, end: number): boolean {
  lockdep_assert_held(vmap_purge_lock.ptr, "vmap_purge_lock");

  const valist = llist_del_all(vmap_purge_list.ptr);
  if (valist === 0) return false;
  if (tracing) trace_graph_entry(TF_PURGE_VMAP_AREA_LAZY_LOCKED, 0, 0);

  /* TODO (the kernel's): calculate a flush range without looping; the list can be up to lazy_max_pages() elements. */
  for (let n = valist; n !== 0; n = llist_next(n)) {
    const va = n - VA.purge_list;
    if (va_start(va) < start) start = va_start(va);
    if (va_end(va) > end) end = va_end(va);
  }

  trace_event(EV_PURGE_FLUSH, start, end);
  flush_tlb_kernel_range(start, end);
  const resched_threshold = lazy_max_pages() * 2;

  spin_lock(FREE_LOCK);
  for (let n = valist, n_va: number; n !== 0; n = n_va) {
    n_va = llist_next(n);
    const va = n - VA.purge_list;
    const nr = va_size(va) / PAGE_SIZE;

    /* Finally insert or merge the lazily freed area. It is detached: there is nothing to unlink it from. */
    if (!merge_or_add_vmap_area(va, FREE_ROOT, FREE_LIST)) continue;

    atomic_long_sub(nr, vmap_lazy_nr.ptr);

    if (atomic_long_read(vmap_lazy_nr.ptr) < resched_threshold) cond_resched_lock(FREE_LOCK);
  }
  spin_unlock(FREE_LOCK);
  if (tracing) trace_graph_return(TF_PURGE_VMAP_AREA_LAZY_LOCKED, 1);
  return true;
}

/** try_purge_vmap_area_lazy (v5.10): kick off a purge; don't bother if somebody is already purging. */
export function try_purge_vmap_area_lazy(): void {
  if (mutex_trylock(vmap_purge_lock.ptr)) {
    __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0);
    mutex_unlock(vmap_purge_lock.ptr);
  }
}

/** purge_vmap_area_lazy (v5.10): purge the fragmented vmap blocks and every lazily freed area. */
export function purge_vmap_area_lazy(): void {
  trace_event(EV_PURGE_VMAP_AREA_LAZY, 0, 0);
  if (tracing) trace_graph_entry(TF_PURGE_VMAP_AREA_LAZY, 0, 0);
  mutex_lock(vmap_purge_lock.ptr);
  vmapBlockHooks().purge_fragmented_blocks_allcpus();
  __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0);
  mutex_unlock(vmap_purge_lock.ptr);
  if (tracing) trace_graph_return(TF_PURGE_VMAP_AREA_LAZY, 0);
}

/**
 * free_vmap_area_noflush (v5.10): take `va` out of the busy tree and queue it
 * for the lazy purge; the caller has unmapped it. Past lazy_max_pages, try
 * to purge now.
 */
export function free_vmap_area_noflush(va: number): void {
  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_FREE_VMAP_AREA, va_start(va));
  unlink_va(va, ROOT);
  spin_unlock(LOCK);

  const nr_lazy = atomic_long_add_return(va_size(va) / PAGE_SIZE, vmap_lazy_nr.ptr);

  /* After this point, we may free va at any time */
  llist_add(va + VA.purge_list, vmap_purge_list.ptr);

  if (nr_lazy > lazy_max_pages()) try_purge_vmap_area_lazy();
}

/**
 * free_unmap_vmap_area (v5.10): unmap `va` and free it lazily
 * (flush_cache_vunmap is a no-op on arm64; debug_pagealloc is off).
 */
export function free_unmap_vmap_area(va: number): void {
  unmap_kernel_range_noflush(va_start(va), va_size(va));
  free_vmap_area_noflush(va);
}

/** find_vmap_area (v5.10): the busy area containing `addr`, 0 when none. */
export function find_vmap_area(addr: number): number {
  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_FIND_VMAP_AREA, addr);
  const va = __find_vmap_area(addr);
  spin_unlock(LOCK);
  return va;
}

/*** Per cpu kva allocator: src/mm/v5.10/vmap_block.ts ***/

/*
 * v5.10 declares purge_fragmented_blocks_allcpus ahead of its users. vmap_block.ts
 * builds on this file, so it registers its entry points here when it loads
 * (no import cycle); they are read only when called.
 */

/** The per-CPU kva allocator's entry points that this file and the generation object use. */
export interface VmapBlockHooks {
  readonly purge_fragmented_blocks_allcpus: () => void;
  /** vmalloc_init's per-CPU step for the vmap_block_queue of `cpu`. */
  readonly init_vmap_block_queue: (cpu: number) => void;
  readonly vm_map_ram: (pages: number, count: number, node: number) => number;
  readonly vm_unmap_ram: (mem: number, count: number) => void;
  readonly vm_unmap_aliases: () => void;
}

let vmap_block_hooks: VmapBlockHooks | null = null;

/** vmap_block.ts registers its entry points (once, at module load). */
export function registerVmapBlock(hooks: VmapBlockHooks): void {
  vmap_block_hooks = hooks;
}

function vmapBlockHooks(): VmapBlockHooks {
  if (vmap_block_hooks === null)
    throw new Error("vmalloc 5.10: the per-CPU kva allocator (src/mm/v5.10/vmap_block.ts) is not loaded");
  return vmap_block_hooks;
}

/*** Early areas and vmalloc_init ***/

/** static struct vm_struct *vmlist __initdata: areas registered before vmalloc_init. */
const VMLIST = defineStruct("vm_struct_ptr", [{ name: "p", type: "ptr", guard: "init" }]);
const vmlist = DEFINE_GLOBAL("5.10:vmlist", VMLIST);

/**
 * vm_area_add_early (v5.10): add a fixed kernel area (addr, size, flags set,
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

/*
 * The arm64 kernel image (arch/arm64/mm/mmu.c map_kernel, v5.10). With KASLR
 * off it is linked at KIMAGE_VADDR = MODULES_END = VMALLOC_START, and since
 * v5.8 there is no TEXT_OFFSET: _text is the first byte of the vmalloc area.
 * map_kernel_segment → vm_area_add_early (from paging_init, hence the caller
 * name) registers five segments; each boundary is SEGMENT_ALIGN (64 KiB)
 * aligned, _end included (v5.10's vmlinux.lds.S). Sizes are those of a v5.10
 * arm64 defconfig image, rounded to 64 KiB:
 *
 *   segment      kaddr offset from VMALLOC_START   size       flags
 *   .text        0x0000000 - 0x0f80000             16252928   VM_MAP | VM_NO_GUARD  (_text.._etext)
 *   .rodata      0x0f80000 - 0x16a0000              7471104   VM_MAP | VM_NO_GUARD
 *   .init.text   0x16a0000 - 0x1720000               524288   VM_MAP | VM_NO_GUARD
 *   .init.data   0x1720000 - 0x1800000               917504   VM_MAP | VM_NO_GUARD
 *   .data/.bss   0x1800000 - 0x1a50000              2424832   VM_MAP
 *
 * i.e. 0xffff800010000000-0xffff800011a50000 on arm64-va48, loaded at
 * physical 0x40200000 (QEMU virt: DRAM at 0x40000000, the image 2 MiB
 * aligned above the DTB). The image is not part of vmsim's page frames: no
 * PTEs, a load there faults and vread reads zeros. The first free block
 * starts at _end, where the first vmallocs land.
 *
 * arm32 (the seed's layout) registers none: the whole 240 MB area is free.
 */
const KERNEL_SEGMENTS = [
  { name: "vmlinux_text", start: 0x0000000, end: 0x0f80000, flags: VM_NO_GUARD },
  { name: "vmlinux_rodata", start: 0x0f80000, end: 0x16a0000, flags: VM_NO_GUARD },
  { name: "vmlinux_inittext", start: 0x16a0000, end: 0x1720000, flags: VM_NO_GUARD },
  { name: "vmlinux_initdata", start: 0x1720000, end: 0x1800000, flags: VM_NO_GUARD },
  { name: "vmlinux_data", start: 0x1800000, end: 0x1a50000, flags: 0 },
] as const;
/** __pa_symbol(_text): where the image was loaded. */
const KIMAGE_PHYS = 0x40200000;
const vmlinux_segments = KERNEL_SEGMENTS.map((s) => DEFINE_GLOBAL(`5.10:${s.name}`, VM_STRUCT));

/** map_kernel_segment (arm64 v5.10), its vm_area_add_early half: the segment as an early VM_MAP area. */
function map_kernel_segment(vm: number, start: number, end: number, vmFlags: number): void {
  const kimage_vaddr = MODULES_END;
  F64[(vm + VM.addr) >> 3] = kimage_vaddr + start;
  F64[(vm + VM.phys_addr) >> 3] = KIMAGE_PHYS + start;
  F64[(vm + VM.size) >> 3] = end - start;
  I32[(vm + VM.flags) >> 2] = VM_MAP | vmFlags;
  I32[(vm + VM.caller) >> 2] = ksym("paging_init");
  vm_area_add_early(vm);
}

/*
 * Not modelled: vm_area_register_early (no early user on the modelled
 * arches: arm64's percpu first chunk is embedded, not page-mapped).
 */

/**
 * vmap_init_free_space (v5.10): the free tree as the complement of the busy
 * areas imported from vmlist, over the whole [1, ULONG_MAX) space.
 *
 *     B     F     B     B     B     F
 * -|-----|.....|-----|-----|-----|.....|-
 *  |           The KVA space           |
 *  |<--------------------------------->|
 */
function vmap_init_free_space(): void {
  let vmap_start = KADDR_NULL + 1;
  const vmap_end = KADDR_WRAP - 1; // ULONG_MAX

  for (let e = list_next(LIST); e !== LIST; e = list_next(e)) {
    const busy = e - LST;
    if (va_start(busy) !== vmap_start) {
      const free = kmem_cache_zalloc(cachep(), GFP_NOWAIT);
      if (!WARN_ON(!free, "vmap_init_free_space", "!free")) {
        set_va_start(free, vmap_start);
        set_va_end(free, va_start(busy));
        insert_vmap_area_augment(free, 0, FREE_ROOT, FREE_LIST);
      }
    }
    vmap_start = va_end(busy);
  }

  if (vmap_end !== vmap_start) {
    const free = kmem_cache_zalloc(cachep(), GFP_NOWAIT);
    if (!WARN_ON(!free, "vmap_init_free_space", "!free")) {
      set_va_start(free, vmap_start);
      set_va_end(free, vmap_end);
      insert_vmap_area_augment(free, 0, FREE_ROOT, FREE_LIST);
    }
  }
}

/**
 * vmalloc_init (v5.10): the vmap_area cache, the per-CPU vmap_block_queue
 * and vfree_deferred, the vmlist areas imported into the busy tree, then the
 * free tree. On arm64, paging_init's map_kernel registers the image segments
 * first; vmsim's paging_init knows no image, so vmalloc_init does that step.
 */
export function vmalloc_init(): void {
  if (layout.vaBits > 32)
    KERNEL_SEGMENTS.forEach((s, i) => {
      map_kernel_segment(vmlinux_segments[i]!.ptr, s.start, s.end, s.flags);
    });

  /* Create the cache for vmap_area objects: KMEM_CACHE(vmap_area, SLAB_PANIC). */
  I32[vmap_area_cachep.ptr >> 2] = kmem_cache_create("vmap_area", VMAP_AREA.size, VMAP_AREA.align, SLAB_PANIC);

  for (const i of for_each_possible_cpu()) {
    vmapBlockHooks().init_vmap_block_queue(i);
    const p = per_cpu_ptr(vfree_deferred, i);
    init_llist_head(p + VFREE_DEFERRED.off.list);
    INIT_WORK(p + VFREE_DEFERRED.off.wq, FREE_WORK);
  }

  /* Import existing vmlist entries. */
  for (let tmp = I32[(vmlist.ptr + VMLIST.off.p) >> 2]!; tmp; tmp = I32[(tmp + VM.next) >> 2]!) {
    const va = kmem_cache_zalloc(cachep(), GFP_NOWAIT);
    if (WARN_ON(!va, "vmalloc_init", "!va")) continue;
    set_va_start(va, vm_addr(tmp));
    set_va_end(va, vm_addr(tmp) + vm_size(tmp));
    I32[(va + VA.vm) >> 2] = tmp;
    insert_vmap_area(va, ROOT, LIST);
  }

  /* Now we can initialize a free vmap space. */
  vmap_init_free_space();
  I32[vmap_initialized.ptr >> 2] = 1;
}

/** unmap_kernel_range (v5.10): unmap and flush the TLB. */
export function unmap_kernel_range(addr: number, size: number): void {
  unmap_kernel_range_noflush(addr, size);
  flush_tlb_kernel_range(addr, addr + size);
}

/** setup_vmalloc_vm_locked (v5.10): tie `vm` to `va`; vmap_area_lock held. */
function setup_vmalloc_vm_locked(vm: number, va: number, flags: number, caller: number): void {
  I32[(vm + VM.flags) >> 2] = flags;
  F64[(vm + VM.addr) >> 3] = va_start(va);
  F64[(vm + VM.size) >> 3] = va_size(va);
  I32[(vm + VM.caller) >> 2] = caller;
  I32[(va + VA.vm) >> 2] = vm;
}

/** setup_vmalloc_vm (v5.10). */
function setup_vmalloc_vm(vm: number, va: number, flags: number, caller: number): void {
  // inject "kva-setup-vm-unlocked": the vm_struct filled in and bound to the area without vmap_area_lock.
  if (injectKvaSetupVmUnlocked) {
    setup_vmalloc_vm_locked(vm, va, flags, caller);
    return;
  }
  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_SETUP_VMALLOC_VM, va_start(va));
  setup_vmalloc_vm_locked(vm, va, flags, caller);
  spin_unlock(LOCK);
}

/**
 * clear_vm_uninitialized_flag (v5.10): the vm_struct is complete. The
 * kernel's smp_wmb orders nr_pages/pages before the flag for show_numa_info's
 * smp_rmb; the Atomics.store orders every earlier write of this CPU before it
 * for any reader whose Atomics.load sees VM_UNINITIALIZED clear.
 */
function clear_vm_uninitialized_flag(vm: number): void {
  const f = (vm + VM.flags) >> 2;
  Atomics.store(I32, f, I32[f]! & ~VM_UNINITIALIZED);
}

/** get_count_order_long (include/linux/bitops.h): ceil(log2(n)), -1 for 0. */
function get_count_order_long(n: number): number {
  return n === 0 ? -1 : Math.ceil(Math.log2(n));
}

/** __get_vm_area_node (v5.10): a vm_struct and its vmap_area of PAGE_ALIGN(size) (+ guard page) in [start, end). */
function __get_vm_area_node(
  size: number,
  align: number,
  flags: number,
  start: number,
  end: number,
  node: number,
  gfpMask: number,
  caller: number,
): number {
  if (in_interrupt()) throw new KernelBug("kernel BUG at mm/vmalloc.c: __get_vm_area_node: in_interrupt()");
  size = PAGE_ALIGN(size);
  if (!size) return 0;

  if (flags & VM_IOREMAP) align = 2 ** Math.min(Math.max(get_count_order_long(size), PAGE_SHIFT), IOREMAP_MAX_ORDER);

  const area = kzalloc(VM_STRUCT.size, gfpMask & GFP_RECLAIM_MASK);
  if (!area) return 0;

  if (!(flags & VM_NO_GUARD)) size += PAGE_SIZE;

  const va = alloc_vmap_area(size, align, start, end, node, gfpMask);
  if (va < 0) {
    kfree(area);
    return 0;
  }

  setup_vmalloc_vm(area, va, flags, caller);
  return area;
}

/** __get_vm_area_caller (v5.10): reserve `size` bytes in [start, end). vm_struct or 0. */
export function __get_vm_area_caller(size: number, flags: number, start: number, end: number, caller: number): number {
  return __get_vm_area_node(size, 1, flags, start, end, NUMA_NO_NODE, GFP_KERNEL, caller);
}

/** get_vm_area (v5.10): reserve a contiguous kernel virtual area (VM_IOREMAP or VM_ALLOC). vm_struct or 0. */
export function get_vm_area(size: number, flags: number, caller?: number): number {
  return __get_vm_area_node(
    size,
    1,
    flags,
    VMALLOC_START,
    VMALLOC_END,
    NUMA_NO_NODE,
    GFP_KERNEL,
    caller ?? ksym("get_vm_area"),
  );
}

/** get_vm_area_caller (v5.10). */
export function get_vm_area_caller(size: number, flags: number, caller: number): number {
  return __get_vm_area_node(size, 1, flags, VMALLOC_START, VMALLOC_END, NUMA_NO_NODE, GFP_KERNEL, caller);
}

/**
 * find_vm_area (v5.10): the vm_struct of the busy area containing `addr`, 0
 * when none (or the area has no vm_struct). The caller keeps it valid.
 */
export function find_vm_area(addr: number): number {
  const va = find_vmap_area(addr);
  if (!va) return 0;
  return va_vm(va);
}

/**
 * remove_vm_area (v5.10): find the area at `addr`, detach its vm_struct
 * (under vmap_area_lock, in one critical section with the lookup), unmap it
 * and free its KVA lazily. Returns the vm_struct (safe to use only for its
 * size and flags) or 0.
 */
export function remove_vm_area(addr: number): number {
  might_sleep();

  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_REMOVE_VM_AREA, addr);
  const va = __find_vmap_area(addr);
  if (va && va_vm(va)) {
    const vm = va_vm(va);
    I32[(va + VA.vm) >> 2] = 0;
    spin_unlock(LOCK);

    free_unmap_vmap_area(va);
    return vm;
  }

  spin_unlock(LOCK);
  return 0;
}

/** vm_remove_mappings (v5.10): without VM_FLUSH_RESET_PERMS (not modelled, see the flags) it is remove_vm_area. */
function vm_remove_mappings(area: number, _deallocatePages: number): void {
  remove_vm_area(vm_addr(area));
}

/**
 * __vunmap (v5.10): free the area at `addr`, and with `deallocatePages` its
 * pages and page array. A bad address is a WARN and changes nothing.
 */
export function __vunmap(addr: number, deallocatePages: number): void {
  if (!addr) return;

  if (addr % PAGE_SIZE !== 0) {
    reportBug("WARN", `Trying to vfree() bad address (${hexKaddr(addr)})`);
    return;
  }

  const area = find_vm_area(addr);
  if (!area) {
    reportBug("WARN", `Trying to vfree() nonexistent vm area (${hexKaddr(addr)})`);
    return;
  }

  /* debug_check_no_locks_freed has nothing to find: vmsim's locks never live in vmalloc memory. */
  debug_check_no_obj_freed(vm_addr(area), get_vm_area_size(area));

  vm_remove_mappings(area, deallocatePages);

  if (deallocatePages) {
    const nr = vm_nr_pages(area);
    const vmalloced = pages_are_vmalloced(area);
    for (let i = 0, slot = vm_pages(area); i < nr; i++, slot += 4) {
      // A vmalloc'ed array is read through the linear alias of each of its pages.
      if (vmalloced && (i & (PAGE_SIZE / 4 - 1)) === 0) slot = vm_page_slot(area, i);
      const page = I32[slot >> 2]!;
      if (!page) throw new KernelBug("kernel BUG at mm/vmalloc.c: __vunmap: NULL page");
      __free_pages(page, 0);
    }
    atomic_long_sub(nr, nr_vmalloc_pages.ptr);

    /* kvfree(area->pages) */
    if (vmalloced) vfree(vm_pages(area));
    else kfree(vm_pages(area));
  }

  kfree(area);
}

/**
 * __vfree_deferred (v5.10): queue `addr` on this CPU's vfree_deferred list
 * (raw_cpu_ptr: llist_add is lock-less, any CPU's list would do; the node
 * lives in the area itself, see DEFERRED_NODE); the adder that finds the
 * list empty schedules free_work.
 */
function __vfree_deferred(addr: number): void {
  const p = this_cpu_ptr(vfree_deferred);
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

function bug_on_in_nmi(fn: string): void {
  if (preempt_count() & NMI_MASK) throw new KernelBug(`kernel BUG at mm/vmalloc.c: ${fn}: in_nmi()`);
}

/** vfree_atomic (v5.10): vfree from any atomic context but NMI — always deferred to free_work. */
export function vfree_atomic(addr: number): void {
  bug_on_in_nmi("vfree_atomic");
  if (!addr) return;
  __vfree_deferred(addr);
}

/** __vfree (v5.10): deferred in interrupt context, else at once. */
function __vfree(addr: number): void {
  if (in_interrupt()) __vfree_deferred(addr);
  else __vunmap(addr, 1);
}

/**
 * vfree (v5.10): release memory allocated by vmalloc(); NULL is a no-op. May
 * sleep unless called from interrupt context (then the area is queued for
 * free_work); never from NMI.
 */
export function vfree(addr: number): void {
  bug_on_in_nmi("vfree");
  if (!in_interrupt()) might_sleep();
  if (!addr) return;
  trace_event(EV_VFREE, addr, preempt_count());
  if (tracing) trace_graph_entry(TF_VFREE, addr, 0);
  __vfree(addr);
  if (tracing) trace_graph_return(TF_VFREE, 0);
}

/** vunmap (v5.10): release a mapping obtained by vmap(); not in interrupt context. */
export function vunmap(addr: number): void {
  trace_event(EV_VUNMAP, addr, 0);
  if (in_interrupt()) throw new KernelBug("kernel BUG at mm/vmalloc.c: vunmap: in_interrupt()");
  might_sleep();
  if (tracing) trace_graph_entry(TF_VUNMAP, addr, 0);
  if (addr) __vunmap(addr, 0);
  if (tracing) trace_graph_return(TF_VUNMAP, 0);
}

/**
 * vmap (v5.10): map `count` pages of `pages` (an arena array of int32 struct
 * page pointers) into virtually contiguous space (pgprot_nx(prot): vmsim's
 * PTEs carry no execute permission). kaddr or 0.
 */
export function vmap(pages: number, count: number, flags: number, prot: Pgprot, caller?: number): number {
  might_sleep();

  if (count > totalram_pages()) return 0;

  const size = count * PAGE_SIZE;
  const area = get_vm_area_caller(size, flags, caller ?? ksym("vmap"));
  if (!area) return 0;

  if (map_kernel_range(vm_addr(area), size, prot, pages) < 0) {
    vunmap(vm_addr(area));
    return 0;
  }
  return vm_addr(area);
}

/** warn_alloc (mm/page_alloc.c, v5.10) with vmalloc's message; silent with __GFP_NOWARN. */
function warn_alloc(gfpMask: number, msg: string): void {
  if (gfpMask & __GFP_NOWARN) return;
  reportBug(
    "WARN",
    `cpu${smp_processor_id()}: ${msg}, mode:0x${gfpMask.toString(16)}(${format_gfp(gfpMask)}), nodemask=(null)`,
  );
}

/**
 * Did __vmalloc_area_node take the nested-vmalloc path for `vm`'s page
 * array? The kernel asks is_vmalloc_addr(area->pages); vmsim's kmalloc
 * pointers are arena offsets, which on arm64 machines over 128 MiB can fall
 * in the vmalloc kaddr range, so it asks the question the kernel means: was
 * the array bigger than a page (the nested path's condition).
 */
function pages_are_vmalloced(vm: number): boolean {
  return vm_pages(vm) !== 0 && (get_vm_area_size(vm) / PAGE_SIZE) * PTR_BYTES > PAGE_SIZE;
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
 * map_kernel_range(area->addr, get_vm_area_size(area), prot, area->pages) of
 * __vmalloc_area_node. A vmalloc'ed page array is a kaddr here, read page by
 * page through its linear aliases (the kernel reads it through the mapping).
 */
function mapAreaPages(area: number, prot: Pgprot): number {
  const addr = vm_addr(area);
  const size = get_vm_area_size(area);
  if (!pages_are_vmalloced(area)) return map_kernel_range(addr, size, prot, vm_pages(area));
  const per = PAGE_SIZE / 4; // entries per page of the array
  for (let i = 0; i * PAGE_SIZE < size; i += per) {
    const n = Math.min(per, size / PAGE_SIZE - i);
    const err = map_kernel_range(addr + i * PAGE_SIZE, n * PAGE_SIZE, prot, vm_page_slot(area, i));
    if (err < 0) return err;
  }
  return 0;
}

/**
 * __vmalloc_area_node (v5.10): the page array (kmalloc'ed, or vmalloc'ed
 * when it exceeds a page: a strictly bounded recursion), the pages one at a
 * time from the buddy allocator, then the mapping. On failure the partial
 * area is freed (__vfree). v5.10 ORs __GFP_NOWARN into gfp_mask before the
 * failure's warn_alloc, which therefore never prints (fixed in v5.13).
 */
function __vmalloc_area_node(area: number, gfpMask: number, prot: Pgprot, node: number): number {
  const nested_gfp = (gfpMask & GFP_RECLAIM_MASK) | __GFP_ZERO;
  const nr_pages = get_vm_area_size(area) / PAGE_SIZE;
  /* sizeof(struct page *) decides kmalloc or vmalloc; vmsim's entries are int32, stored at the front. */
  const array_size = nr_pages * PTR_BYTES;

  gfpMask |= __GFP_NOWARN;
  if (!(gfpMask & (GFP_DMA | GFP_DMA32))) gfpMask |= __GFP_HIGHMEM;

  /* Please note that the recursion is strictly bounded. */
  const pages =
    array_size > PAGE_SIZE
      ? __vmalloc_node(array_size, 1, nested_gfp, node, I32[(area + VM.caller) >> 2]!)
      : kmalloc(array_size, nested_gfp);
  if (!pages) {
    remove_vm_area(vm_addr(area));
    kfree(area);
    return 0;
  }

  F64[(area + VM.pages) >> 3] = pages;
  I32[(area + VM.nr_pages) >> 2] = nr_pages;

  const vmalloced = array_size > PAGE_SIZE;
  for (let i = 0, slot = pages; i < nr_pages; i++, slot += 4) {
    const page = alloc_page(gfpMask);
    if (!page) {
      /* Successfully allocated i pages, free them in __vfree() */
      I32[(area + VM.nr_pages) >> 2] = i;
      atomic_long_add(i, nr_vmalloc_pages.ptr);
      return __vmalloc_area_node_fail(area, gfpMask);
    }
    // A vmalloc'ed array is written through the linear alias of each of its pages.
    if (vmalloced && (i & (PAGE_SIZE / 4 - 1)) === 0) slot = vm_page_slot(area, i);
    I32[slot >> 2] = page;
    if (gfpflags_allow_blocking(gfpMask)) cond_resched();
  }
  atomic_long_add(nr_pages, nr_vmalloc_pages.ptr);

  if (mapAreaPages(area, prot) < 0) return __vmalloc_area_node_fail(area, gfpMask);
  return vm_addr(area);
}

/** The `fail:` label of __vmalloc_area_node (v5.10). */
function __vmalloc_area_node_fail(area: number, gfpMask: number): number {
  warn_alloc(
    gfpMask,
    `vmalloc: allocation failure, allocated ${vm_nr_pages(area) * PAGE_SIZE} of ${vm_size(area)} bytes`,
  );
  __vfree(vm_addr(area));
  return 0;
}

/**
 * __vmalloc_node_range (v5.10): allocate virtually contiguous memory of
 * `size` bytes, `align`ed, in [start, end), pages from the page allocator
 * with `gfpMask`, mapped with `prot`; `vmFlags` adds to VM_ALLOC (e.g.
 * VM_NO_GUARD); `caller` names the allocator in vmallocinfo. kaddr or 0.
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
  size = PAGE_ALIGN(size);
  if (size && size / PAGE_SIZE <= totalram_pages()) {
    const area = __get_vm_area_node(
      real_size,
      align,
      VM_ALLOC | VM_UNINITIALIZED | vmFlags,
      start,
      end,
      node,
      gfpMask,
      caller ?? ksym("__vmalloc_node_range"),
    );
    if (area) {
      const addr = __vmalloc_area_node(area, gfpMask, prot, node);
      if (!addr) {
        trace_event(EV_VMALLOC_RET, 0, 0);
        if (tracing) trace_graph_return(TF_VMALLOC, 0);
        return 0;
      }
      /*
       * In this function, newly allocated vm_struct has VM_UNINITIALIZED
       * flag. It means that vm_struct is not fully initialized. Now, it is
       * fully initialized, so remove this flag here.
       */
      clear_vm_uninitialized_flag(area);
      trace_event(EV_VMALLOC_RET, addr, 0);
      if (tracing) trace_graph_return(TF_VMALLOC, addr);
      return addr;
    }
  }
  /* fail: */
  warn_alloc(gfpMask, `vmalloc: allocation failure: ${real_size} bytes`);
  trace_event(EV_VMALLOC_RET, 0, 0);
  if (tracing) trace_graph_return(TF_VMALLOC, 0);
  return 0;
}

/** __vmalloc_node (v5.10): __vmalloc_node_range over the whole vmalloc area with PAGE_KERNEL. */
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

/** __vmalloc (v5.10: no prot argument since v5.8). */
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

/** vmalloc (v5.10): allocate virtually contiguous memory. kaddr or 0. */
export function vmalloc(size: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL, NUMA_NO_NODE, caller ?? (KSYM_VMALLOC ||= ksym("vmalloc")));
}

/** vzalloc (v5.10): vmalloc, zero-filled. */
export function vzalloc(size: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL | __GFP_ZERO, NUMA_NO_NODE, caller ?? (KSYM_VZALLOC ||= ksym("vzalloc")));
}

/** vmalloc_user (v5.10): zeroed, SHMLBA-aligned, VM_USERMAP from the start (no find_vm_area afterwards since v5.8). */
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

/** vmalloc_node (v5.10): on a specific node (vmsim has one). */
export function vmalloc_node(size: number, node: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL, node, caller ?? ksym("vmalloc_node"));
}

/** vzalloc_node (v5.10). */
export function vzalloc_node(size: number, node: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL | __GFP_ZERO, node, caller ?? ksym("vzalloc_node"));
}

/** GFP_VMALLOC32 (v5.10): arm64 has ZONE_DMA32; arm32 falls back to GFP_DMA32 | GFP_KERNEL too. */
const GFP_VMALLOC32 = GFP_DMA32 | GFP_KERNEL;

/** vmalloc_32 (v5.10): 32-bit addressable pages. */
export function vmalloc_32(size: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_VMALLOC32, NUMA_NO_NODE, caller ?? ksym("vmalloc_32"));
}

/** vmalloc_32_user (v5.10). */
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

/*** vread / vwrite ***/

/** aligned_vread (v5.10): copy from the pages behind addr through their linear aliases; holes read 0. */
function aligned_vread(buf: Uint8Array, at: number, addr: number, count: number): void {
  while (count) {
    const offset = addr % PAGE_SIZE;
    const length = Math.min(PAGE_SIZE - offset, count);
    const p = vmalloc_to_page(addr);
    if (p) {
      const src = page_address(p) + offset;
      buf.set(U8.subarray(src, src + length), at);
    } else buf.fill(0, at, at + length);
    addr += length;
    at += length;
    count -= length;
  }
}

/** aligned_vwrite (v5.10): copy into the pages behind addr; holes are skipped. */
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
 * vread (v5.10): read [addr, addr + count) of the vmalloc areas into `buf`
 * in a safe way: holes and ioremap areas read as zeros. Returns count, or 0
 * when the range meets no live area.
 */
export function vread(buf: Uint8Array, addr: number, count: number): number {
  /* Don't allow overflow */
  if (addr + count >= KADDR_WRAP) count = KADDR_WRAP - addr;
  const buflen = count;
  let at = 0;

  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_VREAD, addr);
  finished: for (let e = list_next(LIST); e !== LIST; e = list_next(e)) {
    if (!count) break;
    const va = e - LST;
    if (!va_vm(va)) continue;
    const vm = va_vm(va);
    const vaddr = vm_addr(vm);
    if (addr >= vaddr + get_vm_area_size(vm)) continue;
    while (addr < vaddr) {
      if (count === 0) break finished;
      buf[at++] = 0;
      addr++;
      count--;
    }
    const n = Math.min(vaddr + get_vm_area_size(vm) - addr, count);
    if (!(vm_flags(vm) & VM_IOREMAP)) aligned_vread(buf, at, addr, n);
    else buf.fill(0, at, at + n); /* IOREMAP area is treated as memory hole */
    at += n;
    addr += n;
    count -= n;
  }
  spin_unlock(LOCK);

  if (at === 0) return 0;
  /* zero-fill memory holes */
  if (at !== buflen) buf.fill(0, at, buflen);
  return buflen;
}

/**
 * vwrite (v5.10): write `buf` to [addr, addr + count) of the vmalloc areas in
 * a safe way: holes and ioremap areas are skipped. Returns count, or 0 when
 * nothing was written.
 */
export function vwrite(buf: Uint8Array, addr: number, count: number): number {
  /* Don't allow overflow */
  if (addr + count >= KADDR_WRAP) count = KADDR_WRAP - addr;
  const buflen = count;
  let at = 0;
  let copied = 0;

  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_VWRITE, addr);
  finished: for (let e = list_next(LIST); e !== LIST; e = list_next(e)) {
    if (!count) break;
    const va = e - LST;
    if (!va_vm(va)) continue;
    const vm = va_vm(va);
    const vaddr = vm_addr(vm);
    if (addr >= vaddr + get_vm_area_size(vm)) continue;
    while (addr < vaddr) {
      if (count === 0) break finished;
      at++;
      addr++;
      count--;
    }
    const n = Math.min(vaddr + get_vm_area_size(vm) - addr, count);
    if (!(vm_flags(vm) & VM_IOREMAP)) {
      aligned_vwrite(buf, at, addr, n);
      copied++;
    }
    at += n;
    addr += n;
    count -= n;
  }
  spin_unlock(LOCK);
  if (!copied) return 0;
  return buflen;
}

/*
 * Not modelled: remap_vmalloc_range(_partial) (vmsim has no user address
 * spaces), vmap_pfn (CONFIG_VMAP_PFN: no PFN-only mappings here).
 */

/** free_vm_area (v5.10): remove and free an area from get_vm_area. */
export function free_vm_area(area: number): void {
  const ret = remove_vm_area(vm_addr(area));
  if (ret !== area) throw new KernelBug("kernel BUG at mm/vmalloc.c: free_vm_area");
  kfree(area);
}

/*** Percpu areas (CONFIG_SMP) ***/

/** node_to_va (v5.10): rb_entry_safe. */
function node_to_va(n: number): number {
  return n === 0 ? 0 : n - RB;
}

/**
 * pvm_find_va_enclose_addr (v5.10): the free area `addr` belongs to, else the
 * highest free area below it, else 0. free_vmap_area_lock held.
 */
function pvm_find_va_enclose_addr(addr: number): number {
  let n = I32[(FREE_ROOT + RB_ROOT.off.rb_node) >> 2]!;
  let va = 0;
  while (n) {
    const tmp = n - RB;
    if (va_start(tmp) <= addr) {
      va = tmp;
      if (va_end(tmp) >= addr) break;
      n = I32[(n + RB_RIGHT) >> 2]!;
    } else n = I32[(n + RB_LEFT) >> 2]!;
  }
  return va;
}

/** pvm_determine_end_from_reverse's *va in/out argument: the free area with the highest fitting end. */
let pvm_va = 0;

/**
 * pvm_determine_end_from_reverse (v5.10): walking the free list down from
 * {@link pvm_va}, the highest `align`ed end (below VMALLOC_END) that leaves
 * room in its free area; pvm_va is left on that area. None: address 0 (the
 * kernel's 0, which makes the caller's base underflow) and pvm_va = 0.
 */
function pvm_determine_end_from_reverse(align: number): number {
  const vmalloc_end = VMALLOC_END - (VMALLOC_END % align);
  if (pvm_va) {
    for (let e = pvm_va + LST; e !== FREE_LIST; e = list_prev(e)) {
      pvm_va = e - LST;
      const addr = Math.min(va_end(pvm_va) - (va_end(pvm_va) % align), vmalloc_end);
      if (va_start(pvm_va) < addr) return addr;
    }
  }
  pvm_va = 0;
  return KADDR_NULL;
}

/**
 * pcpu_get_vm_areas (v5.10): `nrVms` congruent areas for the percpu
 * allocator — area i at base + offsets[i], sizes[i] bytes, all `align`ed —
 * cut top-down from the free tree so they stay clear of ordinary vmallocs.
 * Returns a kcalloc'ed array of vm_struct pointers (int32), or 0. The
 * kernel's kcalloc'ed vas[] scratch array is a local array here.
 */
export function pcpu_get_vm_areas(
  offsets: readonly number[],
  sizes: readonly number[],
  nrVms: number,
  align: number,
): number {
  const vmalloc_start = ALIGN(VMALLOC_START, align);
  const vmalloc_end = VMALLOC_END - (VMALLOC_END % align);
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

  if (WARN_ON(vmalloc_end - vmalloc_start < last_end, "pcpu_get_vm_areas", "true")) return 0;

  const vms = kzalloc(nrVms * 4, GFP_KERNEL);
  const vas: number[] = new Array<number>(nrVms).fill(0);
  const err_free = () => {
    for (let area = 0; area < nrVms; area++) {
      if (vas[area]) kmem_cache_free(cachep(), vas[area]!);
      if (vms) kfree(I32[(vms >> 2) + area]!);
    }
    kfree(vms);
    return 0;
  };
  if (!vms) return err_free();
  for (let area = 0; area < nrVms; area++) {
    vas[area] = kmem_cache_zalloc(cachep(), GFP_KERNEL);
    I32[(vms >> 2) + area] = kzalloc(VM_STRUCT.size, GFP_KERNEL);
    if (!vas[area] || !I32[(vms >> 2) + area]) return err_free();
  }

  let base = 0;
  for (let purged = false; ; ) {
    /* retry: */
    spin_lock(FREE_LOCK);

    /* start scanning - we scan from the top, begin with the last area */
    let area = last_area;
    let term_area = last_area;
    let start = offsets[area]!;
    let end = start + sizes[area]!;

    pvm_va = pvm_find_va_enclose_addr(vmalloc_end);
    base = pvm_determine_end_from_reverse(align) - end;

    let fitted = false;
    let recovery = false;
    for (;;) {
      /* base might have underflowed, add last_end before comparing. */
      if (base + last_end < vmalloc_start + last_end) break;

      /* Fitting base has not been found. */
      if (pvm_va === 0) break;

      /* If required width exceeds current VA block, move base downwards and then recheck. */
      // inject "pvm-search-criteria": 68ad4a330433's check, before 5336e52c9ed3 — leave the area for the one below.
      if (!injectPvmSearchCriteria && base + end > va_end(pvm_va)) {
        base = pvm_determine_end_from_reverse(align) - end;
        term_area = area;
        continue;
      }

      /* If this VA does not fit, move base downwards and recheck. */
      if (base + start < va_start(pvm_va) || (injectPvmSearchCriteria && base + end > va_end(pvm_va))) {
        pvm_va = node_to_va(rb_prev(pvm_va + RB));
        base = pvm_determine_end_from_reverse(align) - end;
        term_area = area;
        continue;
      }

      /* This area fits, move on to the previous one. If the previous one is the terminal one, we're done. */
      area = (area + nrVms - 1) % nrVms;
      if (area === term_area) {
        fitted = true;
        break;
      }
      start = offsets[area]!;
      end = start + sizes[area]!;
      pvm_va = pvm_find_va_enclose_addr(base + end);
    }

    if (fitted) {
      /* we've found a fitting base, insert all va's */
      for (area = 0; area < nrVms; area++) {
        start = base + offsets[area]!;
        const size = sizes[area]!;

        const va = pvm_find_va_enclose_addr(start);
        /* It is a BUG(), but trigger recovery instead. */
        if (WARN_ON(va === 0, "pcpu_get_vm_areas", "va == NULL")) {
          recovery = true;
          break;
        }
        const type = classify_va_fit_type(va, start, size);
        if (WARN_ON(type === NOTHING_FIT, "pcpu_get_vm_areas", "type == NOTHING_FIT")) {
          recovery = true;
          break;
        }
        if (adjust_va_to_fit_type(va, start, size, type)) {
          recovery = true;
          break;
        }

        /* Allocated area. */
        set_va_start(vas[area]!, start);
        set_va_end(vas[area]!, start + size);
      }

      if (!recovery) {
        spin_unlock(FREE_LOCK);

        /* insert all vm's */
        spin_lock(LOCK);
        const caller = ksym("pcpu_get_vm_areas");
        for (area = 0; area < nrVms; area++) {
          insert_vmap_area(vas[area]!, ROOT, LIST);
          setup_vmalloc_vm_locked(I32[(vms >> 2) + area]!, vas[area]!, VM_ALLOC, caller);
        }
        spin_unlock(LOCK);
        return vms;
      }

      /*
       * recovery: remove the areas allocated so far. They are not in the
       * busy tree yet (inserted only on success): merge them back.
       */
      while (area--) {
        merge_or_add_vmap_area(vas[area]!, FREE_ROOT, FREE_LIST);
        vas[area] = 0;
      }
    }

    /* overflow: */
    spin_unlock(FREE_LOCK);
    if (purged) return err_free();
    purge_vmap_area_lazy();
    purged = true;

    /* Before "retry", check if we recover. */
    for (area = 0; area < nrVms; area++) {
      if (vas[area]) continue;
      vas[area] = kmem_cache_zalloc(cachep(), GFP_KERNEL);
      if (!vas[area]) return err_free();
    }
  }
}

/** pcpu_free_vm_areas (v5.10): free the areas and the array pcpu_get_vm_areas returned. */
export function pcpu_free_vm_areas(vms: number, nrVms: number): void {
  for (let i = 0; i < nrVms; i++) free_vm_area(I32[(vms >> 2) + i]!);
  kfree(vms);
}

/*** /proc/vmallocinfo (CONFIG_PROC_FS) ***/

/**
 * show_numa_info (v5.10, CONFIG_NUMA): " N0=<pages>" from the area's page
 * array (vmsim has one node), nothing for an area whose vm_struct is still
 * VM_UNINITIALIZED. A NULL page array or page pointer is the oops the
 * kernel's load through it raises (the arena has no MMU in front of
 * kmalloc'ed memory); the count stops there and the reader goes on.
 */
function show_numa_info(v: number): string {
  // smp_rmb: the Atomics.load pairs with clear_vm_uninitialized_flag's Atomics.store.
  if (Atomics.load(I32, (v + VM.flags) >> 2) & VM_UNINITIALIZED) return "";
  const nr = vm_nr_pages(v);
  let counter = 0;
  for (let i = 0; i < nr; i++) {
    // counters[page_to_nid(v->pages[nr])]++: a load of v->pages[i], then of that page's flags (at offset 0).
    if (vm_pages(v) === 0) return nullPointerOops(PTR_BYTES * i);
    if (vm_page(v, i) === 0) return nullPointerOops(0);
    counter++;
  }
  return counter ? ` N0=${counter}` : "";
}

/**
 * The oops of a load at `addr` below PAGE_SIZE (arch/arm64/mm/fault.c's wording); the reader's output stops there.
 * The hardware's fault, not a kernel function: camelCase, so the report's call chain starts at the load's function.
 */
function nullPointerOops(addr: number): string {
  const hex = `0x${addr.toString(16).padStart(PTR_BYTES * 2, "0")}`;
  reportBug("fault", `Unable to handle kernel NULL pointer dereference at virtual address ${hex}`);
  return "";
}

const size7 = (n: number) => String(n).padStart(7);

/** show_purge_info (v5.10): one "unpurged vm_area" line per area on vmap_purge_list, in list (not address) order. */
function show_purge_info(lines: string[]): void {
  const head = Atomics.load(I32, (vmap_purge_list.ptr + LLIST_HEAD.off.first) >> 2); // READ_ONCE
  for (let n = head; n !== 0; n = llist_next(n)) {
    const va = n - VA.purge_list;
    lines.push(`${hexKaddr(va_start(va))}-${hexKaddr(va_end(va))} ${size7(va_size(va))} unpurged vm_area`);
  }
}

/**
 * s_show (v5.10): the /proc/vmallocinfo line of the busy area on list entry
 * `e` — "vm_map_ram" for an area without a vm_struct (a vm_map_ram area, or
 * one being torn down) — and after the last one the purge list.
 */
function s_show(e: number, numa: boolean, lines: string[]): void {
  const va = e - LST;

  /*
   * s_show can encounter race with remove_vm_area, !vm on behalf of vmap
   * area is being tear down or vm_map_ram allocation.
   */
  if (!va_vm(va)) {
    lines.push(`${hexKaddr(va_start(va))}-${hexKaddr(va_end(va))} ${size7(va_size(va))} vm_map_ram`);
    return;
  }

  const v = va_vm(va);
  let line = `${hexKaddr(vm_addr(v))}-${hexKaddr(vm_addr(v) + vm_size(v))} ${size7(vm_size(v))}`;
  const caller = I32[(v + VM.caller) >> 2]!;
  if (caller) line += ` ${ksym_name(caller)}`;
  if (vm_nr_pages(v)) line += ` pages=${vm_nr_pages(v)}`;
  const phys = F64[(v + VM.phys_addr) >> 3]!;
  if (phys) line += ` phys=0x${phys.toString(16).padStart(layout.vaBits > 32 ? 16 : 8, "0")}`;
  const flags = vm_flags(v);
  if (flags & VM_IOREMAP) line += " ioremap";
  if (flags & VM_ALLOC) line += " vmalloc";
  if (flags & VM_MAP) line += " vmap";
  if (flags & VM_USERMAP) line += " user";
  if (flags & VM_DMA_COHERENT) line += " dma-coherent";
  if (pages_are_vmalloced(v)) line += " vpages";
  if (numa) line += show_numa_info(v);
  lines.push(line);

  /*
   * As a final step, dump "unpurged" areas. Note, that entire
   * "/proc/vmallocinfo" output will not be address sorted, because the
   * purge list is not sorted.
   */
  if (list_is_last(e, LIST)) show_purge_info(lines);
}

/**
 * /proc/vmallocinfo (v5.10's seq_file: s_start takes vmap_purge_lock, then
 * vmap_area_lock; s_show each busy area in address order, the purge list
 * after the last; s_stop drops both). Callers print as symbol names without
 * the +off/size of %pS (they are symbol ids, not addresses).
 */
export function vmallocinfo(opts: VmallocinfoOptions = {}): string[] {
  const numa = opts.numa ?? false;
  const lines: string[] = [];
  if (tracing) trace_graph_entry(TF_VMALLOCINFO, 0, 0);
  mutex_lock(vmap_purge_lock.ptr);
  spin_lock(LOCK);
  for (let e = list_next(LIST); e !== LIST; e = list_next(e)) s_show(e, numa, lines);
  spin_unlock(LOCK);
  mutex_unlock(vmap_purge_lock.ptr);
  if (tracing) trace_graph_return(TF_VMALLOCINFO, lines.length);
  return lines;
}

/** fs/proc/meminfo.c (v5.10): the Vmalloc lines of /proc/meminfo. */
export function get_vmalloc_info(): VmallocInfo {
  // biome-ignore-start lint/style/useNamingConvention: the /proc/meminfo field names
  return {
    VmallocTotal: (VMALLOC_END - VMALLOC_START) / 1024,
    VmallocUsed: vmalloc_nr_pages() * (PAGE_SIZE / 1024),
    VmallocChunk: 0,
  };
  // biome-ignore-end lint/style/useNamingConvention: the /proc/meminfo field names
}

/*** Harness ***/

/** Harness: entry `i` of `vm`'s page array (struct page pointer), wherever the array lives. */
export function vmStructPage(vm: number, i: number): number {
  return I32[vm_page_slot(vm, i) >> 2]!;
}

/**
 * Harness: the early areas vm_area_add_early put on vmlist (arm64's kernel
 * image segments), as vm_struct → the name of its static variable.
 */
export function earlyVmAreas(): Map<number, string> {
  const names = new Map<number, string>(vmlinux_segments.map((g, i) => [g.ptr, KERNEL_SEGMENTS[i]!.name]));
  const out = new Map<number, string>();
  // vmlist is written once at boot; the bound only guards a corrupted arena.
  let tmp = I32[(vmlist.ptr + VMLIST.off.p) >> 2]!;
  for (let n = 0; tmp && n < 1024; tmp = I32[(tmp + VM.next) >> 2]!, n++) out.set(tmp, names.get(tmp) ?? "vmlist");
  return out;
}

function rbFirst(root: number): number {
  let n = I32[(root + RB_ROOT.off.rb_node) >> 2]!;
  if (!n) return 0;
  for (let l: number; (l = I32[(n + RB_LEFT) >> 2]!) !== 0; ) n = l;
  return n;
}

/**
 * Harness: calls `fn` with every busy vmap_area in address order (a walk of
 * the tree, not the list, so a checker can compare the two). The CPUs are
 * parked: no lock is taken.
 */
export function forEachVmapArea(fn: (va: number) => void): void {
  for (let n = rbFirst(ROOT); n; n = rb_next(n)) fn(n - RB);
}

/** Harness: calls `fn` with every free vmap_area in address order (a walk of free_vmap_area_root). CPUs parked. */
export function forEachFreeVmapArea(fn: (va: number) => void): void {
  for (let n = rbFirst(FREE_ROOT); n; n = rb_next(n)) fn(n - RB);
}

/** Harness: calls `fn` with every lazily freed area on vmap_purge_list, in list order. CPUs parked. */
export function forEachPurgeVmapArea(fn: (va: number) => void): void {
  for (let n = I32[(vmap_purge_list.ptr + LLIST_HEAD.off.first) >> 2]!; n !== 0; n = llist_next(n))
    fn(n - VA.purge_list);
}

/*** The generation object (src/mm/vmalloc_generation.ts) ***/

/**
 * Generation 2: v5.10's mm/vmalloc.c behind the interface src/mm/vmalloc.ts
 * binds. Where v5.8 changed a signature the entry adapts: __vmalloc,
 * __vmalloc_node and vm_map_ram take no prot (PAGE_KERNEL), __get_vm_area is
 * __get_vm_area_caller, map_vm_area is map_kernel_range over the area. The
 * busy list is not RCU-walkable in v5.10 (areas go back to their cache at once).
 * The per-CPU kva allocator's three entries are read when a thread selects
 * the generation, after vmap_block.ts registered them.
 */
// biome-ignore-start lint/style/useNamingConvention: the kernel's names, leading underscores included
export const vmalloc_generation: VmallocGeneration = {
  version: "5.10",
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
  map_vm_area: (area: number, prot: Pgprot, pages: number) =>
    map_kernel_range(vm_addr(area), get_vm_area_size(area), prot, pages),
  vread,
  vwrite,
  is_vmalloc_addr,
  vmalloc_to_page,
  vm_map_ram: (pages: number, count: number, node: number, _prot: Pgprot) =>
    vmapBlockHooks().vm_map_ram(pages, count, node),
  get vm_unmap_ram() {
    return vmapBlockHooks().vm_unmap_ram;
  },
  get vm_unmap_aliases() {
    return vmapBlockHooks().vm_unmap_aliases;
  },
  purge_vmap_area_lazy,
  pcpu_get_vm_areas,
  pcpu_free_vm_areas,
  map_kernel_range_noflush,
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
};
// biome-ignore-end lint/style/useNamingConvention: the kernel's names, leading underscores included
