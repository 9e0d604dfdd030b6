/**
 * mm/vmalloc.c (v4.19): the global kva allocator and the vm_struct layer —
 * generation 1 of vmsim's vmalloc, the design the seed walks through.
 *
 * Read it beside the kernel's file: the sections and their order are the
 * kernel's ("Page table manipulation functions" lives in pgtable.ts, "Per cpu
 * kva allocator" in vmap_block.ts), and each function names the kernel
 * function it follows. Where vmsim differs, the function says why.
 *
 * Addresses: a kernel virtual address is a kaddr (va - layout.base, see
 * src/shared/layouts.ts), stored in f64 fields; kmalloc'ed records and page
 * contents are arena offsets (the linear map). A vmalloc'ed buffer is reached
 * through the page tables (mmu.ts) or, as vread does, through the linear
 * alias of the page vmalloc_to_page finds.
 *
 * Locking, as in the kernel: vmap_area_lock guards vmap_area_root,
 * vmap_area_list (written under it, walked by RCU readers too) and the
 * free_vmap_cache globals; vmap_purge_lock (a mutex) serialises purges;
 * vmap_purge_list is lock-less (llist); vmap_lazy_nr is an atomic.
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
import { ksym, ksym_name } from "../../kernel/kallsyms.js";
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
  LK_PURGE,
  LK_REMOVE_VM_AREA,
  LK_SETUP_VMALLOC_VM,
  LK_VREAD,
  LK_VWRITE,
  trace_event,
} from "../../shared/events.js";
import { SP_ATOMIC, SP_LOCK, SP_SLEEP, SP_UNLOCK, sched_point } from "../../sched/sched_point.js";
import {
  TF_PURGE_VMAP_AREA_LAZY,
  TF_VFREE,
  TF_VMALLOC,
  TF_VUNMAP,
  TF_PURGE_VMAP_AREA_LAZY_LOCKED,
  TF_VMALLOCINFO,
  trace_graph_entry,
  trace_graph_return,
  tracing,
} from "../../trace/trace.js";
import { INIT_LIST_HEAD, LIST_HEAD, list_add_rcu, list_del_rcu, list_next } from "../../lib/list.js";
import { LLIST_HEAD, LLIST_NODE, init_llist_head, llist_add, llist_del_all, llist_next } from "../../lib/llist.js";
import { debug_check_no_obj_freed } from "../../lib/debugobjects.js";
import {
  RB_CLEAR_NODE,
  RB_EMPTY_NODE,
  RB_NODE,
  RB_ROOT,
  rb_erase,
  rb_insert_color,
  rb_link_node,
  rb_next,
  rb_prev,
} from "../../lib/rbtree.js";
import { ATOMIC_T, atomic_add, atomic_add_return, atomic_read, atomic_set, atomic_sub } from "../../locks/atomic.js";
import { lockdep_assert_held } from "../../locks/lockdep.js";
import { cond_resched, might_sleep } from "../../locks/might_sleep.js";
import { DEFINE_MUTEX, mutex_lock, mutex_trylock, mutex_unlock } from "../../locks/mutex.js";
import { DEFINE_SPINLOCK, spin_is_contended, spin_lock, spin_unlock } from "../../locks/spinlock.js";
import { for_each_possible_cpu } from "../../percpu/percpu.js";
import { in_interrupt, preempt_count } from "../../percpu/preempt.js";
import { NMI_MASK } from "../../shared/preempt_mask.js";
import { num_online_cpus, onSetCurrentCpu, smp_processor_id, this_cpu_ptr } from "../../shared/smp.js";
import { INIT_WORK, WORK_STRUCT, schedule_work } from "../../kernel/workqueue.js";
import { RCU_HEAD } from "../../rcu/rcupdate.js";
import { kfree_rcu } from "../../rcu/tree.js";
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
  PAGE_KERNEL_EXEC,
  type Pgprot,
  kernel_ptep_lookup,
  ptep_get,
  pte_pfn,
  pte_present,
  vmap_page_range,
  vunmap_page_range,
} from "../pgtable.js";
import { kfree, kmalloc, kzalloc } from "../slab.js";
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

/*** include/linux/vmalloc.h ***/

export {
  NUMA_NO_NODE,
  VM_ALLOC,
  VM_IOREMAP,
  VM_KASAN,
  VM_MAP,
  VM_NO_GUARD,
  VM_UNINITIALIZED,
  VM_USERMAP,
  type VmallocInfo,
  type VmallocinfoOptions,
} from "../vmalloc_generation.js";
import { ALIGN, PAGE_ALIGN, is_power_of_2 } from "../../lib/log2.js";

const ENOMEM = 12;
const EBUSY = 16;

/** struct vmap_area (v4.19). Allocated by kmalloc, freed by kfree_rcu. */
export const VMAP_AREA = defineStruct("vmap_area", [
  /** [va_start, va_end): kaddrs, set before the area is inserted and fixed while it is in the tree. */
  { name: "va_start", type: "f64", guard: "vmap_area_lock" },
  { name: "va_end", type: "f64", guard: "vmap_area_lock" },
  /** VM_LAZY_FREE | VM_VM_AREA. */
  { name: "flags", type: "i32", guard: "vmap_area_lock" },
  /** address sorted rbtree */
  { name: "rb_node", type: RB_NODE, guard: "vmap_area_lock" },
  /** address sorted list; RCU readers follow `next` without the lock */
  { name: "list", type: LIST_HEAD, guard: "vmap_area_lock" },
  /** "lazy purge" list: set before llist_add publishes it */
  { name: "purge_list", type: LLIST_NODE, guard: "init" },
  { name: "vm", type: "ptr", guard: "vmap_area_lock" },
  { name: "rcu_head", type: RCU_HEAD, guard: "rcu_data.nocb_lock" },
  /**
   * vmsim's debug field, not the kernel's (as KASAN's alloc_info rides along
   * with a slab object): the CPU that inserted the area, for `vmsim map`.
   */
  { name: "alloc_cpu", type: "i32", guard: "vmap_area_lock" },
]);

/** struct vm_struct (v4.19). Allocated by kzalloc in __get_vm_area_node; the early ones are static. */
export const VM_STRUCT = defineStruct("vm_struct", [
  /** vmlist, before vmalloc_init only. */
  { name: "next", type: "ptr", guard: "init" },
  { name: "addr", type: "f64", guard: "vmap_area_lock" },
  /** Bytes, the guard page included unless VM_NO_GUARD (get_vm_area_size subtracts it). */
  { name: "size", type: "f64", guard: "vmap_area_lock" },
  /** Set in setup_vmalloc_vm under the lock; then only its owner changes it (VM_UNINITIALIZED, VM_USERMAP). */
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

/*
 * Field accessors. Records are 8-aligned (kmalloc's minimum alignment), so
 * the f64 fields are F64-indexable.
 */
const VA_START = VA.va_start;
const VA_END = VA.va_end;
const VA_FLAGS = VA.flags;
const LST_NEXT = LST + LIST_HEAD.off.next;
const RB_LEFT = RB_NODE.off.rb_left;
const RB_RIGHT = RB_NODE.off.rb_right;
/* Field accessors of vmap_area and vm_struct (also the checker's). */
export const va_start = (va: number) => F64[(va + VA_START) >> 3]!;
export const va_end = (va: number) => F64[(va + VA_END) >> 3]!;
export const va_flags = (va: number) => I32[(va + VA_FLAGS) >> 2]!;
export const va_vm = (va: number) => I32[(va + VA.vm) >> 2]!;
export const va_alloc_cpu = (va: number) => I32[(va + VA.alloc_cpu) >> 2]!;
export const vm_addr = (vm: number) => F64[(vm + VM.addr) >> 3]!;
export const vm_size = (vm: number) => F64[(vm + VM.size) >> 3]!;
export const vm_flags = (vm: number) => I32[(vm + VM.flags) >> 2]!;
export const vm_pages = (vm: number) => F64[(vm + VM.pages) >> 3]!;
export const vm_nr_pages = (vm: number) => I32[(vm + VM.nr_pages) >> 2]!;

/** get_vm_area_size (v4.19): the area's size without its guard page. */
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
/** A kaddr sum at or past this wrapped in the kernel's unsigned long (2^64 - base, 2^32 on arm32). */
let KADDR_WRAP = 0;
/** Kernel address 0 as a kaddr (KADDR_WRAP - 2^64, 0 on arm32): where a wrapped sum lands. */
let KADDR_NULL = 0;
/** sizeof(struct page *): 8 on arm64, 4 on arm32. */
let PTR_BYTES = 8;
/** IOREMAP_MAX_ORDER: PUD_SHIFT on arm64 (v4.19), the generic 7 + PAGE_SHIFT on arm32. */
let IOREMAP_MAX_ORDER = 30;
/** SHMLBA: PAGE_SIZE on arm64, 4 * PAGE_SIZE on arm32 (arch/arm/include/asm/shmparam.h). */
let SHMLBA = PAGE_SIZE;

onSetCurrentCpu(() => {
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

/*** vfree_deferred ***/

/** struct vfree_deferred (v4.19): vfree()s from interrupt context, freed later by free_work. */
export const VFREE_DEFERRED = defineStruct("vfree_deferred", [
  /** Lock-less: interrupt handlers add, free_work takes everything. */
  { name: "list", type: LLIST_HEAD, guard: "atomic" },
  /** INIT_WORK at boot; the workqueue guards its own fields. */
  { name: "wq", type: WORK_STRUCT, guard: "init" },
]);
export const vfree_deferred = DEFINE_PER_CPU("vfree_deferred", VFREE_DEFERRED);

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

/** free_work (v4.19): __vunmap every area queued on this vfree_deferred, in process context. */
function free_work(w: number): void {
  const p = w - VFREE_DEFERRED.off.wq;
  // llist_for_each_safe: fetch the successor before __vunmap frees the page holding the node.
  for (let llnode = llist_del_all(p + VFREE_DEFERRED.off.list), t: number; llnode !== 0; llnode = t) {
    t = llist_next(llnode);
    __vunmap(F64[(llnode + DEFERRED_NODE.off.addr) >> 3]!, 1);
  }
}
const FREE_WORK = defineKernelFn("free_work", free_work);

/*** Page table manipulation functions ***/
/* vunmap_page_range, vmap_page_range: src/mm/pgtable.ts. */

/** is_vmalloc_addr (include/linux/mm.h, v4.19). */
export function is_vmalloc_addr(addr: number): boolean {
  return addr >= VMALLOC_START && addr < VMALLOC_END;
}

/** is_vmalloc_or_module_addr (v4.19): arm and arm64 put modules in their own area below. */
export function is_vmalloc_or_module_addr(addr: number): boolean {
  if (addr >= MODULES_VADDR && addr < MODULES_END) return true;
  return is_vmalloc_addr(addr);
}

/** vmalloc_to_page (v4.19): walk a vmap address to the struct page it maps, 0 when none. */
export function vmalloc_to_page(addr: number): number {
  const ptep = kernel_ptep_lookup(addr - (addr % PAGE_SIZE));
  if (!ptep) return 0;
  const pte = ptep_get(ptep);
  return pte_present(pte) ? pfn_to_page(pte_pfn(pte)) : 0;
}

/** vmalloc_to_pfn (v4.19): map a vmalloc()-space virtual address to the physical page frame number. */
export function vmalloc_to_pfn(addr: number): number {
  return page_to_pfn(vmalloc_to_page(addr));
}

/*** Global kva allocator ***/

/** vmap_area flags (v4.19). */
export const VM_LAZY_FREE = 0x02;
export const VM_VM_AREA = 0x04;

export const vmap_area_lock = DEFINE_SPINLOCK("vmap_area_lock");
/** The address-sorted list of every vmap_area (the kernel exports it for kexec). */
export const vmap_area_list = DEFINE_GLOBAL("vmap_area_list", LIST_HEAD);
staticInit(() => INIT_LIST_HEAD(vmap_area_list.ptr));
export const vmap_purge_list = DEFINE_GLOBAL("vmap_purge_list", LLIST_HEAD);
/** The tree of every vmap_area by address; a zeroed root is RB_ROOT. */
export const vmap_area_root = DEFINE_GLOBAL("vmap_area_root", RB_ROOT);

/* The vmap cache globals are protected by vmap_area_lock */
const RB_NODE_PTR = defineStruct("rb_node_ptr", [{ name: "p", type: "ptr", guard: "vmap_area_lock" }]);
const ULONG = defineStruct("unsigned_long", [{ name: "v", type: "f64", guard: "vmap_area_lock" }]);
export const free_vmap_cache = DEFINE_GLOBAL("free_vmap_cache", RB_NODE_PTR);
export const cached_hole_size = DEFINE_GLOBAL("cached_hole_size", ULONG);
export const cached_vstart = DEFINE_GLOBAL("cached_vstart", ULONG);
export const cached_align = DEFINE_GLOBAL("cached_align", ULONG);

export const vmap_area_pcpu_hole = DEFINE_GLOBAL("vmap_area_pcpu_hole", ULONG);

/* Word indexes of the globals on the hot path, cached per thread. */
let FVC = 0; // I32 index of free_vmap_cache
let HOLE = 0; // F64 index of cached_hole_size
let CVSTART = 0; // F64 index of cached_vstart
let CALIGN = 0; // F64 index of cached_align
let LOCK = 0; // vmap_area_lock
let ROOT = 0; // vmap_area_root
let LIST = 0; // vmap_area_list
onSetCurrentCpu(() => {
  FVC = (free_vmap_cache.ptr + RB_NODE_PTR.off.p) >> 2;
  HOLE = (cached_hole_size.ptr + ULONG.off.v) >> 3;
  CVSTART = (cached_vstart.ptr + ULONG.off.v) >> 3;
  CALIGN = (cached_align.ptr + ULONG.off.v) >> 3;
  LOCK = vmap_area_lock.ptr;
  ROOT = vmap_area_root.ptr;
  LIST = vmap_area_list.ptr;
});

/* Deliberate bugs (src/shared/inject.ts), read once per arena: off, each hook is one branch on a false flag. */
let injectNoVmapAreaLock = false;
let injectNoPurgeFlush = false;
let injectIrqVfreeNotDeferred = false;
let injectVmallocinfoUninitialized = false;
let injectVunmapDebugobjects = false;
let injectHugeAlignWrap = false;
let injectDoubleVfreeIrq = false;
let injectSetupVmUnlocked = false;
let injectVmapCacheUnlocked = false;
onSetCurrentCpu(() => {
  const inject = theArena().config.inject;
  injectNoVmapAreaLock = inject.includes("no-vmap-area-lock");
  injectNoPurgeFlush = inject.includes("no-purge-flush");
  injectIrqVfreeNotDeferred = inject.includes("irq-vfree-not-deferred");
  injectVmallocinfoUninitialized = inject.includes("vmallocinfo-uninitialized");
  injectVunmapDebugobjects = inject.includes("vunmap-debugobjects");
  injectHugeAlignWrap = inject.includes("huge-align-wrap");
  injectDoubleVfreeIrq = inject.includes("double-vfree-irq");
  injectSetupVmUnlocked = inject.includes("setup-vm-unlocked");
  injectVmapCacheUnlocked = inject.includes("vmap-cache-unlocked");
});

/** __find_vmap_area (v4.19): the area containing `addr`; vmap_area_lock held. */
function __find_vmap_area(addr: number): number {
  const f64 = F64;
  const i32 = I32;
  let n = i32[(ROOT + RB_ROOT.off.rb_node) >> 2]!;
  while (n) {
    const va = n - RB;
    if (addr < f64[(va + VA_START) >> 3]!) n = i32[(n + RB_LEFT) >> 2]!;
    else if (addr >= f64[(va + VA_END) >> 3]!) n = i32[(n + RB_RIGHT) >> 2]!;
    else return va;
  }
  return 0;
}

/** __insert_vmap_area (v4.19): link `va` into the tree and, address-sorted, the list; vmap_area_lock held. */
function __insert_vmap_area(va: number): void {
  const f64 = F64;
  const i32 = I32;
  let link = ROOT + RB_ROOT.off.rb_node;
  let parent = 0;
  const start = va_start(va);
  const end = va_end(va);
  for (let p: number; (p = i32[link >> 2]!) !== 0; ) {
    parent = p;
    const tmp_va = p - RB;
    if (start < f64[(tmp_va + VA_END) >> 3]!) link = p + RB_LEFT;
    else if (end > f64[(tmp_va + VA_START) >> 3]!) link = p + RB_RIGHT;
    else throw new KernelBug(`kernel BUG at mm/vmalloc.c: __insert_vmap_area: ${hexKaddr(start)}-${hexKaddr(end)}`);
  }
  rb_link_node(va + RB, parent, link);
  rb_insert_color(va + RB, ROOT);
  I32[(va + VA.alloc_cpu) >> 2] = smp_processor_id(); // vmsim's debug field (VMAP_AREA)

  /* address-sort this list */
  const tmp = rb_prev(va + RB);
  if (tmp) list_add_rcu(va + LST, tmp - RB + LST);
  else list_add_rcu(va + LST, LIST);
}

/*
 * The kernel's vmap_notify_list (register_vmap_purge_notifier) lets a driver
 * give back address space when an allocation overflows; vmsim has no such
 * driver, so that step of alloc_vmap_area would always free nothing.
 */

/**
 * alloc_vmap_area (v4.19): allocate a region of KVA of `size` bytes and
 * `align`ment within [vstart, vend): the free_vmap_cache search, and on
 * overflow one purge of the lazily freed areas and a retry. Returns the
 * vmap_area, or -ENOMEM (no memory for it) / -EBUSY (no room).
 */
export function alloc_vmap_area(
  size: number,
  align: number,
  vstart: number,
  vend: number,
  _nid: number,
  gfpMask: number,
): number {
  if (!size || size % PAGE_SIZE !== 0 || !is_power_of_2(align))
    throw new KernelBug(`kernel BUG at mm/vmalloc.c: alloc_vmap_area: size ${size} align ${align}`);
  might_sleep();

  const va = kmalloc(VMAP_AREA.size, gfpMask & GFP_RECLAIM_MASK);
  if (!va) return -ENOMEM;

  // inject "no-vmap-area-lock": the search and the insert run without the lock. Its sched points
  // stay (the lock's, and one between search and insert): the deterministic scheduler preempts there
  // as another CPU's stores would land there on real hardware.
  const locked = !injectNoVmapAreaLock;
  for (let purged = false; ; purged = true) {
    if (locked) spin_lock(LOCK);
    else sched_point(SP_LOCK);
    const addr = __alloc_vmap_area_search(size, align, vstart, vend);
    if (locked) trace_event(EV_VMAP_AREA_LOCK, LK_ALLOC_VMAP_AREA, addr);
    else sched_point(SP_ATOMIC);
    if (addr !== -1) {
      F64[(va + VA.va_start) >> 3] = addr;
      F64[(va + VA.va_end) >> 3] = addr + size;
      I32[(va + VA.flags) >> 2] = 0;
      __insert_vmap_area(va);
      if (!injectVmapCacheUnlocked) I32[FVC] = va + RB;
      if (locked) spin_unlock(LOCK);
      else sched_point(SP_UNLOCK);
      // inject "vmap-cache-unlocked": the search hint stored after vmap_area_lock is dropped.
      if (injectVmapCacheUnlocked) I32[FVC] = va + RB;
      if (addr % align || addr < vstart || addr + size > vend)
        throw new KernelBug(`kernel BUG at mm/vmalloc.c: alloc_vmap_area: ${hexKaddr(addr)} outside its bounds`);
      return va;
    }
    /* overflow: */
    if (locked) spin_unlock(LOCK);
    if (purged) break;
    purge_vmap_area_lazy();
  }

  if (!(gfpMask & __GFP_NOWARN))
    reportBug("WARN", `vmap allocation for size ${size} failed: use vmalloc=<size> to increase size`);
  kfree(va);
  return -EBUSY;
}

/**
 * The search of alloc_vmap_area (v4.19), from `retry:` to `found:`, with
 * vmap_area_lock held: the address of the hole, or -1 for `goto overflow`
 * (a hole at a wrapped address, below 0 as a kaddr, is an address too).
 * cached_hole_size notes the largest hole noticed below the area cached in
 * free_vmap_cache: if size fits into that hole, scan from vstart to reuse it.
 */
function __alloc_vmap_area_search(size: number, align: number, vstart: number, vend: number): number {
  let first = 0;
  let addr = 0;
  /* Invalidate cache if we have more permissive parameters. */
  let nocache = !I32[FVC] || size < F64[HOLE]! || vstart < F64[CVSTART]! || align < F64[CALIGN]!;
  found: for (;;) {
    if (nocache) {
      F64[HOLE] = 0;
      I32[FVC] = 0;
    }
    /* record if we encounter less permissive parameters */
    F64[CVSTART] = vstart;
    F64[CALIGN] = align;

    /* find starting point for our search */
    if (I32[FVC]) {
      first = I32[FVC]! - RB;
      addr = ALIGN(va_end(first), align);
      // inject "huge-align-wrap": an ALIGN past the top wraps to address 0, as in the kernel's unsigned long.
      if (injectHugeAlignWrap && addr >= KADDR_WRAP) addr = KADDR_NULL;
      if (addr < vstart) {
        nocache = true;
        continue;
      }
      if (addr + size >= KADDR_WRAP) return -1;
    } else {
      addr = ALIGN(vstart, align);
      if (injectHugeAlignWrap && addr >= KADDR_WRAP) addr = KADDR_NULL;
      if (addr + size >= KADDR_WRAP) return -1;
      let n = I32[(ROOT + RB_ROOT.off.rb_node) >> 2]!;
      first = 0;
      while (n) {
        const tmp = n - RB;
        if (va_end(tmp) >= addr) {
          first = tmp;
          if (va_start(tmp) <= addr) break;
          n = I32[(n + RB_LEFT) >> 2]!;
        } else n = I32[(n + RB_RIGHT) >> 2]!;
      }
      if (!first) break;
    }

    /*
     * from the starting point, walk areas until a suitable hole is found.
     * After a purge this walks every busy area (long_busy_list: 15000), so the
     * loop is the loads alone, cached_hole_size in a local as the compiler
     * keeps it in a register (stored back on every way out; the lock is held).
     */
    const f64 = F64;
    const i32 = I32;
    let hole = f64[HOLE]!;
    let start = f64[(first + VA_START) >> 3]!;
    while (addr + size > start && addr + size <= vend) {
      if (addr + hole < start) hole = start - addr;
      addr = ALIGN(f64[(first + VA_END) >> 3]!, align);
      if (injectHugeAlignWrap && addr >= KADDR_WRAP) addr = KADDR_NULL;
      if (addr + size >= KADDR_WRAP) {
        f64[HOLE] = hole;
        return -1;
      }
      const next = i32[(first + LST_NEXT) >> 2]!;
      /* list_is_last */
      if (next === LIST) {
        f64[HOLE] = hole;
        break found;
      }
      first = next - LST;
      start = f64[(first + VA_START) >> 3]!;
    }
    f64[HOLE] = hole;
    break;
  }
  /* found: */
  if (addr + size > vend) return -1;
  return addr;
}

/** __free_vmap_area (v4.19): unlink `va` and kfree_rcu it; vmap_area_lock held. */
function __free_vmap_area(va: number): void {
  if (RB_EMPTY_NODE(va + RB)) throw new KernelBug("kernel BUG at mm/vmalloc.c: __free_vmap_area: RB_EMPTY_NODE");

  if (I32[FVC]) {
    if (va_end(va) < F64[CVSTART]!) {
      I32[FVC] = 0;
    } else {
      const cache = I32[FVC]! - RB;
      if (va_start(va) <= va_start(cache)) {
        I32[FVC] = rb_prev(va + RB);
        /* We don't try to update cached_hole_size or cached_align, but it won't go very wrong. */
      }
    }
  }
  rb_erase(va + RB, ROOT);
  RB_CLEAR_NODE(va + RB);
  list_del_rcu(va + LST);

  /*
   * Track the highest possible candidate for pcpu area allocation. Areas
   * outside of vmalloc area can be returned here too, consider only end
   * addresses which fall inside vmalloc area proper.
   */
  if (va_end(va) > VMALLOC_START && va_end(va) <= VMALLOC_END) {
    const hole = (vmap_area_pcpu_hole.ptr + ULONG.off.v) >> 3;
    F64[hole] = Math.max(F64[hole]!, va_end(va));
  }

  kfree_rcu(va, VA.rcu_head);
}

/** free_vmap_area (v4.19): free a region of KVA allocated by alloc_vmap_area. */
export function free_vmap_area(va: number): void {
  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_FREE_VMAP_AREA, va_start(va));
  __free_vmap_area(va);
  spin_unlock(LOCK);
}

/** unmap_vmap_area (v4.19): clear the page-table entries of `va`. */
function unmap_vmap_area(va: number): void {
  vunmap_page_range(va_start(va), va_end(va));
}

/**
 * lazy_max_pages (v4.19): the maximum amount of virtual address space
 * gathered up before attempting to purge with a TLB flush — fls(online CPUs)
 * × 32 MiB, a log scale in the number of CPUs.
 */
export function lazy_max_pages(): number {
  const log = 32 - Math.clz32(num_online_cpus());
  return log * ((32 * 1024 * 1024) / PAGE_SIZE);
}

/** Pages of lazily freed areas not yet purged (static atomic_t vmap_lazy_nr). */
export const vmap_lazy_nr = DEFINE_GLOBAL("vmap_lazy_nr", ATOMIC_T);

/** Harness: the current vmap_lazy_nr. */
export function vmap_lazy_nr_read(): number {
  return atomic_read(vmap_lazy_nr.ptr);
}

/**
 * Serialize vmap purging. There is no actual critical section protected by
 * this lock, but we want to avoid concurrent calls for performance reasons.
 */
export const vmap_purge_lock = DEFINE_MUTEX("vmap_purge_lock");

/** set_iounmap_nonlazy (v4.19): make the next lazy free purge at once. */
export function set_iounmap_nonlazy(): void {
  atomic_set(vmap_lazy_nr.ptr, lazy_max_pages() + 1);
}

/**
 * cond_resched_lock (v4.19, CONFIG_PREEMPT's spin_needbreak): when another
 * CPU waits for `lock` (spin_is_contended), let it in.
 */
function cond_resched_lock(lock: number): void {
  if (!spin_is_contended(lock)) return;
  spin_unlock(lock);
  sched_point(SP_SLEEP);
  spin_lock(lock);
}

/**
 * __purge_vmap_area_lazy (v4.19): purges all lazily-freed vmap areas — one
 * TLB flush over [min start, max end], then __free_vmap_area of each.
 * `start`/`end` widen the flush (vm_unmap_aliases); pass Infinity and 0 for
 * the kernel's ULONG_MAX and 0. Returns false when nothing was queued.
 * vmap_purge_lock held.
 */
export function __purge_vmap_area_lazy(start: number, end: number): boolean {
  lockdep_assert_held(vmap_purge_lock.ptr, "vmap_purge_lock");
  if (tracing) trace_graph_entry(TF_PURGE_VMAP_AREA_LAZY_LOCKED, 0, 0);

  const valist = llist_del_all(vmap_purge_list.ptr);
  let do_free = false;
  for (let n = valist; n !== 0; n = llist_next(n)) {
    const va = n - VA.purge_list;
    if (va_start(va) < start) start = va_start(va);
    if (va_end(va) > end) end = va_end(va);
    do_free = true;
  }
  if (!do_free) {
    if (tracing) trace_graph_return(TF_PURGE_VMAP_AREA_LAZY_LOCKED, 0);
    return false;
  }

  // inject "no-purge-flush": the areas go back to the allocator with their translations still cached.
  trace_event(EV_PURGE_FLUSH, start, end);
  if (!injectNoPurgeFlush) flush_tlb_kernel_range(start, end);

  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_PURGE, 0);
  for (let n = valist, next: number; n !== 0; n = next) {
    next = llist_next(n);
    const va = n - VA.purge_list;
    const nr = (va_end(va) - va_start(va)) / PAGE_SIZE;
    __free_vmap_area(va);
    atomic_sub(nr, vmap_lazy_nr.ptr);
    cond_resched_lock(LOCK);
  }
  spin_unlock(LOCK);
  if (tracing) trace_graph_return(TF_PURGE_VMAP_AREA_LAZY_LOCKED, 1);
  return true;
}

/** try_purge_vmap_area_lazy (v4.19): kick off a purge; don't bother if somebody is already purging. */
export function try_purge_vmap_area_lazy(): void {
  if (mutex_trylock(vmap_purge_lock.ptr)) {
    __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0);
    mutex_unlock(vmap_purge_lock.ptr);
  }
}

/** purge_vmap_area_lazy (v4.19): purge the fragmented vmap blocks and every lazily freed area. */
export function purge_vmap_area_lazy(): void {
  trace_event(EV_PURGE_VMAP_AREA_LAZY, 0, 0);
  if (tracing) trace_graph_entry(TF_PURGE_VMAP_AREA_LAZY, 0, 0);
  mutex_lock(vmap_purge_lock.ptr);
  purge_fragmented_blocks_allcpus();
  __purge_vmap_area_lazy(Number.POSITIVE_INFINITY, 0);
  mutex_unlock(vmap_purge_lock.ptr);
  if (tracing) trace_graph_return(TF_PURGE_VMAP_AREA_LAZY, 0);
}

/**
 * free_vmap_area_noflush (v4.19): queue `va` for the lazy purge; the caller
 * has unmapped it. Past lazy_max_pages, try to purge now.
 */
export function free_vmap_area_noflush(va: number): void {
  const nr_lazy = atomic_add_return((va_end(va) - va_start(va)) / PAGE_SIZE, vmap_lazy_nr.ptr);

  /* After this point, we may free va at any time */
  llist_add(va + VA.purge_list, vmap_purge_list.ptr);

  if (nr_lazy > lazy_max_pages()) try_purge_vmap_area_lazy();
}

/** free_unmap_vmap_area (v4.19): unmap `va` and free it lazily (flush_cache_vunmap: a no-op on arm64). */
export function free_unmap_vmap_area(va: number): void {
  unmap_vmap_area(va);
  free_vmap_area_noflush(va);
}

/** find_vmap_area (v4.19): the vmap_area containing `addr`, 0 when none. */
export function find_vmap_area(addr: number): number {
  spin_lock(LOCK);
  trace_event(EV_VMAP_AREA_LOCK, LK_FIND_VMAP_AREA, addr);
  const va = __find_vmap_area(addr);
  spin_unlock(LOCK);
  return va;
}

/*** Per cpu kva allocator: src/mm/v4.19/vmap_block.ts ***/

/*
 * v4.19 declares purge_fragmented_blocks_allcpus ahead of its users. vmap_block.ts
 * builds on this file, so it registers its entry points here at load.
 */
const vmapBlockNotLoaded = (): never => {
  throw new Error("vmalloc: the per-CPU kva allocator (src/mm/v4.19/vmap_block.ts) is not loaded");
};

/** The per-CPU kva allocator's entry points that vmalloc and its generation object call (registered at load). */
export interface VmapBlockHooks {
  readonly purge_fragmented_blocks_allcpus: () => void;
  readonly init_vmap_block_queues: () => void;
  readonly vm_map_ram: (pages: number, count: number, node: number, prot: Pgprot) => number;
  readonly vm_unmap_ram: (mem: number, count: number) => void;
  readonly vm_unmap_aliases: () => void;
}

let purge_fragmented_blocks_allcpus: () => void = vmapBlockNotLoaded;
let init_vmap_block_queues: () => void = vmapBlockNotLoaded;
let blocks: VmapBlockHooks | null = null;

/** vmap_block.ts registers its entry points (once, at module load). */
export function registerVmapBlock(hooks: VmapBlockHooks): void {
  ({ purge_fragmented_blocks_allcpus, init_vmap_block_queues } = hooks);
  blocks = hooks;
}

/** The registered per-CPU kva allocator, for the generation object (read at selection, after every load). */
function vmapBlocks(): VmapBlockHooks {
  return blocks ?? vmapBlockNotLoaded();
}

/*** Early areas and vmalloc_init ***/

/** vmap_initialized (v4.19, declared with the per-CPU allocator): set once vmalloc_init ran. */
const BOOL = defineStruct("bool", [{ name: "v", type: "i32", guard: "init" }]);
export const vmap_initialized = DEFINE_GLOBAL("vmap_initialized", BOOL);

/** static struct vm_struct *vmlist __initdata: areas registered before vmalloc_init. */
const VMLIST = defineStruct("vm_struct_ptr", [{ name: "p", type: "ptr", guard: "init" }]);
const vmlist = DEFINE_GLOBAL("vmlist", VMLIST);

/**
 * vm_area_add_early (v4.19): add a fixed kernel area (addr, size, flags set,
 * the rest zero) to vmlist, address-sorted, before vmalloc_init.
 */
export function vm_area_add_early(vm: number): void {
  if (I32[(vmap_initialized.ptr + BOOL.off.v) >> 2])
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
 * The arm64 kernel image (arch/arm64/mm/mmu.c map_kernel, v4.19): with KASLR
 * off it is linked at KIMAGE_VADDR + TEXT_OFFSET, KIMAGE_VADDR = MODULES_END =
 * VMALLOC_START, so its five segments are the first areas of the vmalloc
 * area, registered by map_kernel_segment → vm_area_add_early (called from
 * paging_init, hence the caller name). Sizes are a v4.19 defconfig's, rounded:
 *
 *   segment   kaddr offset from VMALLOC_START    size       flags
 *   .text     0x0080000 - 0x0a10000             10027008    VM_MAP | VM_NO_GUARD
 *   .rodata   0x0a10000 - 0x0d90000              3670016    VM_MAP | VM_NO_GUARD
 *   .init.text 0x0d90000 - 0x0e40000              720896    VM_MAP | VM_NO_GUARD
 *   .init.data 0x0e40000 - 0x0f10000              851968    VM_MAP | VM_NO_GUARD
 *   .data/.bss 0x0f10000 - 0x1023000             1126400    VM_MAP
 *
 * i.e. 0xffff000008080000-0xffff000009023000 on arm64-va48 (0xffffff8008080000…
 * on va39), phys from 0x40080000 (DRAM at 0x40000000, QEMU virt). The image is
 * not part of vmsim's page frames, so these ranges have no PTEs: a load there
 * faults and vread reads zeros. The 512 KiB below .text (TEXT_OFFSET) is the
 * first free hole, where the first small vmallocs land.
 *
 * arm32 (the seed's layout) registers none: vectors live at 0xffff0000, above
 * VMALLOC_END, and the seed's machine has no static I/O mappings (no PCI I/O
 * window), so the whole 240 MB area is free at boot.
 */
const KERNEL_SEGMENTS = [
  { name: "vmlinux_text", start: 0x0080000, end: 0x0a10000, flags: VM_NO_GUARD },
  { name: "vmlinux_rodata", start: 0x0a10000, end: 0x0d90000, flags: VM_NO_GUARD },
  { name: "vmlinux_inittext", start: 0x0d90000, end: 0x0e40000, flags: VM_NO_GUARD },
  { name: "vmlinux_initdata", start: 0x0e40000, end: 0x0f10000, flags: VM_NO_GUARD },
  { name: "vmlinux_data", start: 0x0f10000, end: 0x1023000, flags: 0 },
] as const;
/** PHYS_OFFSET of the image's load address (QEMU virt DRAM base). */
const KIMAGE_PHYS = 0x40000000;
const vmlinux_segments = KERNEL_SEGMENTS.map((s) => DEFINE_GLOBAL(s.name, VM_STRUCT));

/** map_kernel_segment (arm64 v4.19), its vm_area_add_early half: the segment as an early VM_MAP area. */
function map_kernel_segment(vm: number, start: number, end: number, vmFlags: number): void {
  const kimage_vaddr = MODULES_END;
  F64[(vm + VM.addr) >> 3] = kimage_vaddr + start;
  F64[(vm + VM.phys_addr) >> 3] = KIMAGE_PHYS + start;
  F64[(vm + VM.size) >> 3] = end - start;
  I32[(vm + VM.flags) >> 2] = VM_MAP | vmFlags;
  I32[(vm + VM.caller) >> 2] = ksym("paging_init");
  vm_area_add_early(vm);
}

/**
 * vmalloc_init (v4.19): per-CPU vmap_block_queue and vfree_deferred, then
 * the vmlist areas imported into the tree. On arm64, paging_init's
 * map_kernel registers the image segments first; vmsim's paging_init knows
 * no image, so vmalloc_init does that step before importing.
 */
export function vmalloc_init(): void {
  if (layout.vaBits > 32)
    KERNEL_SEGMENTS.forEach((s, i) => {
      map_kernel_segment(vmlinux_segments[i]!.ptr, s.start, s.end, s.flags);
    });

  for (const i of for_each_possible_cpu()) {
    const p = per_cpu_ptr(vfree_deferred, i);
    init_llist_head(p + VFREE_DEFERRED.off.list);
    INIT_WORK(p + VFREE_DEFERRED.off.wq, FREE_WORK);
  }
  init_vmap_block_queues();

  /* Import existing vmlist entries. */
  for (let tmp = I32[(vmlist.ptr + VMLIST.off.p) >> 2]!; tmp; tmp = I32[(tmp + VM.next) >> 2]!) {
    const va = kzalloc(VMAP_AREA.size, GFP_NOWAIT);
    I32[(va + VA.flags) >> 2] = VM_VM_AREA;
    F64[(va + VA.va_start) >> 3] = vm_addr(tmp);
    F64[(va + VA.va_end) >> 3] = vm_addr(tmp) + vm_size(tmp);
    I32[(va + VA.vm) >> 2] = tmp;
    __insert_vmap_area(va);
  }

  F64[(vmap_area_pcpu_hole.ptr + ULONG.off.v) >> 3] = VMALLOC_END;

  I32[(vmap_initialized.ptr + BOOL.off.v) >> 2] = 1;
}

/*** Mapping kernel ranges ***/

/** map_kernel_range_noflush (v4.19): map PFN_UP(size) pages at addr; the number mapped or -errno. */
export function map_kernel_range_noflush(addr: number, size: number, prot: Pgprot, pages: number): number {
  return vmap_page_range(addr, addr + size, prot, pages);
}

/** unmap_kernel_range_noflush (v4.19): unmap, the caller flushes the TLB. */
export function unmap_kernel_range_noflush(addr: number, size: number): void {
  vunmap_page_range(addr, addr + size);
}

/** unmap_kernel_range (v4.19): unmap and flush the TLB. */
export function unmap_kernel_range(addr: number, size: number): void {
  const end = addr + size;
  vunmap_page_range(addr, end);
  flush_tlb_kernel_range(addr, end);
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
 * map_vm_area (v4.19): map `pages` (an arena array of int32 struct page
 * pointers) over the area. A vmalloc'ed page array (area->pages of a big
 * area) is read page by page through its linear aliases. 0 or -ENOMEM.
 */
export function map_vm_area(area: number, prot: Pgprot, pages: number): number {
  const addr = vm_addr(area);
  const end = addr + get_vm_area_size(area);
  let err: number;
  if (pages === vm_pages(area) && pages_are_vmalloced(area)) {
    const per = PAGE_SIZE / 4; // entries per page of the array
    err = 0;
    for (let i = 0; addr + i * PAGE_SIZE < end; i += per) {
      const from = addr + i * PAGE_SIZE;
      const to = Math.min(end, from + per * PAGE_SIZE);
      const r = vmap_page_range(from, to, prot, vm_page_slot(area, i));
      if (r < 0) {
        err = r;
        break;
      }
      err += r;
    }
  } else err = vmap_page_range(addr, end, prot, pages);
  return err > 0 ? 0 : err;
}

/** setup_vmalloc_vm (v4.19): tie `vm` to `va`. */
function setup_vmalloc_vm(vm: number, va: number, flags: number, caller: number): void {
  // inject "setup-vm-unlocked": the vm_struct and the area's flags filled in without vmap_area_lock.
  const locked = !injectSetupVmUnlocked;
  if (locked) {
    spin_lock(LOCK);
    trace_event(EV_VMAP_AREA_LOCK, LK_SETUP_VMALLOC_VM, va_start(va));
  }
  I32[(vm + VM.flags) >> 2] = flags;
  F64[(vm + VM.addr) >> 3] = va_start(va);
  F64[(vm + VM.size) >> 3] = va_end(va) - va_start(va);
  I32[(vm + VM.caller) >> 2] = caller;
  I32[(va + VA.vm) >> 2] = vm;
  I32[(va + VA.flags) >> 2] = va_flags(va) | VM_VM_AREA;
  if (locked) spin_unlock(LOCK);
}

/**
 * clear_vm_uninitialized_flag (v4.19): the vm_struct is complete. The
 * kernel's smp_wmb orders nr_pages/pages before the flag for show_numa_info's
 * smp_rmb; here the flag is cleared with an Atomics.store, which orders every
 * earlier write of this CPU (nr_pages, the page array) before it for any
 * reader whose Atomics.load of the flags sees VM_UNINITIALIZED clear.
 */
function clear_vm_uninitialized_flag(vm: number): void {
  const f = (vm + VM.flags) >> 2;
  Atomics.store(I32, f, I32[f]! & ~VM_UNINITIALIZED);
}

/** __get_vm_area_node (v4.19): a vm_struct and its vmap_area of PAGE_ALIGN(size) (+ guard page) in [start, end). */
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

  if (flags & VM_IOREMAP) {
    let order = 0;
    while (2 ** order < size) order++;
    align = 2 ** Math.min(Math.max(order, PAGE_SHIFT), IOREMAP_MAX_ORDER);
  }

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

/** __get_vm_area (v4.19): reserve `size` bytes in [start, end). vm_struct or 0. */
export function __get_vm_area(size: number, flags: number, start: number, end: number, caller?: number): number {
  return __get_vm_area_node(size, 1, flags, start, end, NUMA_NO_NODE, GFP_KERNEL, caller ?? ksym("__get_vm_area"));
}

/** __get_vm_area_caller (v4.19). */
export function __get_vm_area_caller(size: number, flags: number, start: number, end: number, caller: number): number {
  return __get_vm_area_node(size, 1, flags, start, end, NUMA_NO_NODE, GFP_KERNEL, caller);
}

/** get_vm_area (v4.19): reserve a contiguous kernel virtual area (VM_IOREMAP or VM_ALLOC). vm_struct or 0. */
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

/** get_vm_area_caller (v4.19). */
export function get_vm_area_caller(size: number, flags: number, caller: number): number {
  return __get_vm_area_node(size, 1, flags, VMALLOC_START, VMALLOC_END, NUMA_NO_NODE, GFP_KERNEL, caller);
}

/**
 * find_vm_area (v4.19): the vm_struct of the area starting at (containing)
 * `addr`, 0 when none. It is up to the caller to keep it valid.
 */
export function find_vm_area(addr: number): number {
  const va = find_vmap_area(addr);
  if (va && va_flags(va) & VM_VM_AREA) return va_vm(va);
  return 0;
}

/**
 * remove_vm_area (v4.19): find the area at `addr`, detach its vm_struct,
 * unmap it and free its KVA lazily. Returns the vm_struct (safe to use only
 * for its size and flags) or 0.
 */
export function remove_vm_area(addr: number): number {
  might_sleep();

  const va = find_vmap_area(addr);
  if (va && va_flags(va) & VM_VM_AREA) {
    const vm = va_vm(va);

    spin_lock(LOCK);
    trace_event(EV_VMAP_AREA_LOCK, LK_REMOVE_VM_AREA, addr);
    I32[(va + VA.vm) >> 2] = 0;
    I32[(va + VA.flags) >> 2] = (va_flags(va) & ~VM_VM_AREA) | VM_LAZY_FREE;
    spin_unlock(LOCK);

    free_unmap_vmap_area(va);
    return vm;
  }
  return 0;
}

/**
 * Pages backing vmalloc areas (the nr_vmalloc_pages of kernels ≥ 5.3, for
 * meminfo's VmallocUsed; v4.19 printed 0 there).
 */
export const nr_vmalloc_pages = DEFINE_GLOBAL("nr_vmalloc_pages", ATOMIC_T);

/**
 * __vunmap (v4.19): free the area at `addr`, and with `deallocatePages` its
 * pages and page array. v4.19 took `find_vmap_area(addr)->vm`, which oopses
 * on an address that has no area; vmsim follows the v5.0 fix ("mm/vmalloc.c:
 * don't dereference possible NULL pointer in __vunmap()"), so a bad vfree is
 * the WARN the code intended and changes nothing.
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

  /*
   * debug_check_no_locks_freed has nothing to find (vmsim's locks never live
   * in vmalloc memory). inject "vunmap-debugobjects": the check runs after the
   * area went back, as before f3c01d2f3ade.
   */
  if (!injectVunmapDebugobjects) debug_check_no_obj_freed(vm_addr(area), get_vm_area_size(area));
  remove_vm_area(addr);
  if (injectVunmapDebugobjects) debug_check_no_obj_freed(vm_addr(area), get_vm_area_size(area));
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
    atomic_sub(nr, nr_vmalloc_pages.ptr);

    /* kvfree(area->pages) */
    if (vmalloced) vfree(vm_pages(area));
    else kfree(vm_pages(area));
  }

  kfree(area);
}

/**
 * __vfree_deferred (v4.19): queue `addr` on this CPU's vfree_deferred list
 * (the node lives in the area itself, see DEFERRED_NODE); the adder that
 * finds the list empty schedules free_work.
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
  // inject "double-vfree-irq": the caller's second vfree of the same area, the node queued again.
  if (injectDoubleVfreeIrq) llist_add(node + DEFERRED_NODE.off.node, p + VFREE_DEFERRED.off.list);
}

function bug_on_in_nmi(fn: string): void {
  if (preempt_count() & NMI_MASK) throw new KernelBug(`kernel BUG at mm/vmalloc.c: ${fn}: in_nmi()`);
}

/** vfree_atomic (v4.19): vfree from any atomic context but NMI — always deferred to free_work. */
export function vfree_atomic(addr: number): void {
  bug_on_in_nmi("vfree_atomic");
  if (!addr) return;
  __vfree_deferred(addr);
}

/**
 * vfree (v4.19): release memory allocated by vmalloc(); NULL is a no-op. In
 * interrupt context the area is queued for free_work instead.
 */
export function vfree(addr: number): void {
  bug_on_in_nmi("vfree");
  if (!addr) return;
  trace_event(EV_VFREE, addr, preempt_count());
  if (tracing) trace_graph_entry(TF_VFREE, addr, 0);
  // inject "irq-vfree-not-deferred": interrupt context frees at once, as process context does.
  if (in_interrupt() && !injectIrqVfreeNotDeferred) __vfree_deferred(addr);
  else __vunmap(addr, 1);
  if (tracing) trace_graph_return(TF_VFREE, 0);
}

/** vunmap (v4.19): release a mapping obtained by vmap(); not in interrupt context. */
export function vunmap(addr: number): void {
  trace_event(EV_VUNMAP, addr, 0);
  if (in_interrupt()) throw new KernelBug("kernel BUG at mm/vmalloc.c: vunmap: in_interrupt()");
  might_sleep();
  if (tracing) trace_graph_entry(TF_VUNMAP, addr, 0);
  if (addr) __vunmap(addr, 0);
  if (tracing) trace_graph_return(TF_VUNMAP, 0);
}

/**
 * vmap (v4.19): map `count` pages of `pages` (an arena array of int32 struct
 * page pointers) into virtually contiguous space. kaddr or 0.
 */
export function vmap(pages: number, count: number, flags: number, prot: Pgprot, caller?: number): number {
  might_sleep();

  if (count > totalram_pages()) return 0;

  const size = count * PAGE_SIZE;
  const area = get_vm_area_caller(size, flags, caller ?? ksym("vmap"));
  if (!area) return 0;

  if (map_vm_area(area, prot, pages)) {
    vunmap(vm_addr(area));
    return 0;
  }
  return vm_addr(area);
}

/** warn_alloc (mm/page_alloc.c, v4.19) with vmalloc's message; silent with __GFP_NOWARN. */
function warn_alloc(gfpMask: number, msg: string): void {
  if (gfpMask & __GFP_NOWARN) return;
  reportBug(
    "WARN",
    `cpu${smp_processor_id()}: ${msg}, mode:0x${gfpMask.toString(16)}(${format_gfp(gfpMask)}), nodemask=(null)`,
  );
}

/**
 * __vmalloc_area_node (v4.19): the page array (kmalloc'ed, or vmalloc'ed
 * when it exceeds a page: a strictly bounded recursion), the pages one at a
 * time from the buddy allocator, then the mapping. On failure everything is
 * freed (vfree of the partial area) after vmalloc's warn_alloc.
 */
function __vmalloc_area_node(area: number, gfpMask: number, prot: Pgprot, node: number): number {
  const nested_gfp = (gfpMask & GFP_RECLAIM_MASK) | __GFP_ZERO;
  const alloc_mask = gfpMask | __GFP_NOWARN;
  const highmem_mask = gfpMask & (GFP_DMA | GFP_DMA32) ? 0 : __GFP_HIGHMEM;

  const nr_pages = get_vm_area_size(area) / PAGE_SIZE;
  /* sizeof(struct page *) decides kmalloc or vmalloc; vmsim's entries are int32, stored at the front. */
  const array_size = nr_pages * PTR_BYTES;

  I32[(area + VM.nr_pages) >> 2] = nr_pages;
  /* Please note that the recursion is strictly bounded. */
  const pages =
    array_size > PAGE_SIZE
      ? __vmalloc_node(array_size, 1, nested_gfp | highmem_mask, PAGE_KERNEL, node, I32[(area + VM.caller) >> 2]!)
      : kmalloc(array_size, nested_gfp);
  F64[(area + VM.pages) >> 3] = pages;
  if (!pages) {
    remove_vm_area(vm_addr(area));
    kfree(area);
    return 0;
  }

  const blocking = gfpflags_allow_blocking(gfpMask | highmem_mask);
  const vmalloced = array_size > PAGE_SIZE;
  for (let i = 0, slot = pages; i < nr_pages; i++, slot += 4) {
    const page = alloc_page(alloc_mask | highmem_mask);
    if (!page) {
      /* Successfully allocated i pages, free them in __vunmap() */
      I32[(area + VM.nr_pages) >> 2] = i;
      atomic_add(i, nr_vmalloc_pages.ptr);
      return __vmalloc_area_node_fail(area, gfpMask);
    }
    // A vmalloc'ed array is written through the linear alias of each of its pages.
    if (vmalloced && (i & (PAGE_SIZE / 4 - 1)) === 0) slot = vm_page_slot(area, i);
    I32[slot >> 2] = page;
    if (blocking) cond_resched();
  }
  atomic_add(nr_pages, nr_vmalloc_pages.ptr);

  if (map_vm_area(area, prot, pages)) return __vmalloc_area_node_fail(area, gfpMask);
  return vm_addr(area);
}

/** The `fail:` label of __vmalloc_area_node (v4.19). */
function __vmalloc_area_node_fail(area: number, gfpMask: number): number {
  warn_alloc(
    gfpMask,
    `vmalloc: allocation failure, allocated ${vm_nr_pages(area) * PAGE_SIZE} of ${vm_size(area)} bytes`,
  );
  vfree(vm_addr(area));
  return 0;
}

/**
 * __vmalloc_node_range (v4.19): allocate virtually contiguous memory of
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
      size,
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

/** __vmalloc_node (v4.19): __vmalloc_node_range over the whole vmalloc area. */
export function __vmalloc_node(
  size: number,
  align: number,
  gfpMask: number,
  prot: Pgprot,
  node: number,
  caller?: number,
): number {
  return __vmalloc_node_range(
    size,
    align,
    VMALLOC_START,
    VMALLOC_END,
    gfpMask,
    prot,
    0,
    node,
    caller ?? ksym("__vmalloc_node"),
  );
}

/** __vmalloc (v4.19): vmalloc with explicit gfp flags and protection. */
export function __vmalloc(size: number, gfpMask: number, prot: Pgprot, caller?: number): number {
  return __vmalloc_node(size, 1, gfpMask, prot, NUMA_NO_NODE, caller ?? ksym("__vmalloc"));
}

/** __vmalloc_node_flags_caller (v4.19). */
export function __vmalloc_node_flags_caller(size: number, node: number, flags: number, caller: number): number {
  return __vmalloc_node(size, 1, flags, PAGE_KERNEL, node, caller);
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

/** vmalloc (v4.19): allocate virtually contiguous memory. kaddr or 0. */
export function vmalloc(size: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL, PAGE_KERNEL, NUMA_NO_NODE, caller ?? (KSYM_VMALLOC ||= ksym("vmalloc")));
}

/** vzalloc (v4.19): vmalloc, zero-filled. */
export function vzalloc(size: number, caller?: number): number {
  return __vmalloc_node(
    size,
    1,
    GFP_KERNEL | __GFP_ZERO,
    PAGE_KERNEL,
    NUMA_NO_NODE,
    caller ?? (KSYM_VZALLOC ||= ksym("vzalloc")),
  );
}

/** vmalloc_user (v4.19): zeroed, SHMLBA-aligned, marked VM_USERMAP for remap_vmalloc_range. */
export function vmalloc_user(size: number, caller?: number): number {
  const ret = __vmalloc_node(
    size,
    SHMLBA,
    GFP_KERNEL | __GFP_ZERO,
    PAGE_KERNEL,
    NUMA_NO_NODE,
    caller ?? ksym("vmalloc_user"),
  );
  if (ret) {
    const area = find_vm_area(ret);
    I32[(area + VM.flags) >> 2] = vm_flags(area) | VM_USERMAP;
  }
  return ret;
}

/** vmalloc_node (v4.19): on a specific node (vmsim has one). */
export function vmalloc_node(size: number, node: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL, PAGE_KERNEL, node, caller ?? ksym("vmalloc_node"));
}

/** vzalloc_node (v4.19). */
export function vzalloc_node(size: number, node: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL | __GFP_ZERO, PAGE_KERNEL, node, caller ?? ksym("vzalloc_node"));
}

/** vmalloc_exec (v4.19): executable memory. */
export function vmalloc_exec(size: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_KERNEL, PAGE_KERNEL_EXEC, NUMA_NO_NODE, caller ?? ksym("vmalloc_exec"));
}

/** GFP_VMALLOC32 (v4.19): arm64 has ZONE_DMA32; arm32 falls back to GFP_DMA32 | GFP_KERNEL too. */
const GFP_VMALLOC32 = GFP_DMA32 | GFP_KERNEL;

/** vmalloc_32 (v4.19): 32-bit addressable pages. */
export function vmalloc_32(size: number, caller?: number): number {
  return __vmalloc_node(size, 1, GFP_VMALLOC32, PAGE_KERNEL, NUMA_NO_NODE, caller ?? ksym("vmalloc_32"));
}

/** vmalloc_32_user (v4.19). */
export function vmalloc_32_user(size: number, caller?: number): number {
  const ret = __vmalloc_node(
    size,
    1,
    GFP_VMALLOC32 | __GFP_ZERO,
    PAGE_KERNEL,
    NUMA_NO_NODE,
    caller ?? ksym("vmalloc_32_user"),
  );
  if (ret) {
    const area = find_vm_area(ret);
    I32[(area + VM.flags) >> 2] = vm_flags(area) | VM_USERMAP;
  }
  return ret;
}

/*** vread / vwrite ***/

/** aligned_vread (v4.19): copy from the pages behind addr through their linear aliases; holes read 0. */
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

/** aligned_vwrite (v4.19): copy into the pages behind addr; holes are skipped. */
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
 * vread (v4.19): read [addr, addr + count) of the vmalloc areas into `buf`
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
  finished: for (let e = list_next(LIST); e !== LIST && count; e = list_next(e)) {
    const va = e - LST;
    if (!(va_flags(va) & VM_VM_AREA)) continue;
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
 * vwrite (v4.19): write `buf` to [addr, addr + count) of the vmalloc areas in
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
  finished: for (let e = list_next(LIST); e !== LIST && count; e = list_next(e)) {
    const va = e - LST;
    if (!(va_flags(va) & VM_VM_AREA)) continue;
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
 * spaces), vmalloc_sync_all (a no-op on arm64), alloc_vm_area (its
 * apply_to_page_range only pre-builds tables), vm_area_register_early (no
 * early user on the modelled arches).
 */

/*** free_vm_area ***/

/** free_vm_area (v4.19): remove and free an area from get_vm_area. */
export function free_vm_area(area: number): void {
  const ret = remove_vm_area(vm_addr(area));
  if (ret !== area) throw new KernelBug("kernel BUG at mm/vmalloc.c: free_vm_area");
  kfree(area);
}

/*** Percpu areas (CONFIG_SMP) ***/

/** node_to_va (v4.19). */
function node_to_va(n: number): number {
  return n === 0 ? 0 : n - RB;
}

/* pvm_find_next_prev's and pvm_determine_end's in/out arguments (*pnext, *pprev); vmap_area_lock held. */
let pnext = 0;
let pprev = 0;

/**
 * pvm_find_next_prev (v4.19): the areas whose ends enclose `end`:
 * pnext->va_end > end >= pprev->va_end. False when the tree is empty.
 */
function pvm_find_next_prev(end: number): boolean {
  let n = I32[(ROOT + RB_ROOT.off.rb_node) >> 2]!;
  let va = 0;
  while (n) {
    va = n - RB;
    if (end < va_end(va)) n = I32[(n + RB_LEFT) >> 2]!;
    else if (end > va_end(va)) n = I32[(n + RB_RIGHT) >> 2]!;
    else break;
  }
  if (!va) return false;
  if (va_end(va) > end) {
    pnext = va;
    pprev = node_to_va(rb_prev(pnext + RB));
  } else {
    pprev = va;
    pnext = node_to_va(rb_next(pprev + RB));
  }
  return true;
}

/**
 * pvm_determine_end (v4.19): the highest `align`ed address between pprev and
 * pnext below VMALLOC_END, moving both down until pprev ends below it. The
 * address may fall inside pnext: the caller checks.
 */
function pvm_determine_end(align: number): number {
  const vmalloc_end = VMALLOC_END - (VMALLOC_END % align);
  const addr = pnext ? Math.min(va_start(pnext) - (va_start(pnext) % align), vmalloc_end) : vmalloc_end;
  while (pprev && va_end(pprev) > addr) {
    pnext = pprev;
    pprev = node_to_va(rb_prev(pnext + RB));
  }
  return addr;
}

/**
 * pcpu_get_vm_areas (v4.19): `nrVms` congruent areas for the percpu
 * allocator — area i at base + offsets[i], sizes[i] bytes, all `align`ed —
 * scanned top-down from vmap_area_pcpu_hole so they stay clear of ordinary
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
    reportBug("WARN", `WARNING: CPU: ${smp_processor_id()} at mm/vmalloc.c pcpu_get_vm_areas: WARN_ON(true)`);
    return 0;
  }

  const vms = kzalloc(nrVms * 4, GFP_KERNEL);
  const vas: number[] = [];
  const err_free = () => {
    for (const va of vas) kfree(va);
    if (vms) for (let area = 0; area < nrVms; area++) kfree(I32[(vms >> 2) + area]!);
    kfree(vms);
    return 0;
  };
  if (!vms) return err_free();
  for (let area = 0; area < nrVms; area++) {
    const va = kzalloc(VMAP_AREA.size, GFP_KERNEL);
    if (va) vas.push(va);
    I32[(vms >> 2) + area] = kzalloc(VM_STRUCT.size, GFP_KERNEL);
    if (!va || !I32[(vms >> 2) + area]) return err_free();
  }

  let base = 0;
  for (let purged = false; ; ) {
    /* retry: */
    spin_lock(LOCK);

    /* start scanning - we scan from the top, begin with the last area */
    let area = last_area;
    let term_area = last_area;
    let start = offsets[area]!;
    let end = start + sizes[area]!;

    const pcpu_hole = F64[(vmap_area_pcpu_hole.ptr + ULONG.off.v) >> 3]!;
    let underflow = false;
    if (!pvm_find_next_prev(pcpu_hole)) {
      base = vmalloc_end - last_end;
    } else {
      base = pvm_determine_end(align) - end;
      for (;;) {
        if (pnext && va_end(pnext) <= base + end) throw bug("next below base + end");
        if (pprev && va_end(pprev) > base + end) throw bug("prev above base + end");

        /* base might have underflowed (in unsigned long): below vmalloc_start */
        if (base < vmalloc_start) {
          underflow = true;
          break;
        }

        /* If next overlaps, move base downwards so that it's right below next and then recheck. */
        if (pnext && va_start(pnext) < base + end) {
          base = pvm_determine_end(align) - end;
          term_area = area;
          continue;
        }

        /* If prev overlaps, shift down next and prev and move base so that it's right below new next and then recheck. */
        if (pprev && va_end(pprev) > base + start) {
          pnext = pprev;
          pprev = node_to_va(rb_prev(pnext + RB));
          base = pvm_determine_end(align) - end;
          term_area = area;
          continue;
        }

        /* This area fits, move on to the previous one. If the previous one is the terminal one, we're done. */
        area = (area + nrVms - 1) % nrVms;
        if (area === term_area) break;
        start = offsets[area]!;
        end = start + sizes[area]!;
        pvm_find_next_prev(base + end);
      }
    }
    if (underflow) {
      spin_unlock(LOCK);
      if (!purged) {
        purge_vmap_area_lazy();
        purged = true;
        continue;
      }
      return err_free();
    }

    /* found: we've found a fitting base, insert all va's */
    for (let a = 0; a < nrVms; a++) {
      const va = vas[a]!;
      F64[(va + VA_START) >> 3] = base + offsets[a]!;
      F64[(va + VA_END) >> 3] = base + offsets[a]! + sizes[a]!;
      __insert_vmap_area(va);
    }
    F64[(vmap_area_pcpu_hole.ptr + ULONG.off.v) >> 3] = base + offsets[last_area]!;
    spin_unlock(LOCK);
    break;
  }

  /* insert all vm's */
  const caller = ksym("pcpu_get_vm_areas");
  for (let area = 0; area < nrVms; area++) setup_vmalloc_vm(I32[(vms >> 2) + area]!, vas[area]!, VM_ALLOC, caller);
  return vms;
}

/** pcpu_free_vm_areas (v4.19): free the areas and the array pcpu_get_vm_areas returned. */
export function pcpu_free_vm_areas(vms: number, nrVms: number): void {
  for (let i = 0; i < nrVms; i++) free_vm_area(I32[(vms >> 2) + i]!);
  kfree(vms);
}

/*** /proc/vmallocinfo ***/

/**
 * show_numa_info (v4.19, CONFIG_NUMA): " N0=<pages>" from the area's page
 * array (vmsim has one node), nothing for an area whose vm_struct is still
 * VM_UNINITIALIZED. A NULL page array or page pointer is the oops the
 * kernel's load through it raises (the arena has no MMU in front of
 * kmalloc'ed memory); the count stops there and the reader goes on.
 */
function show_numa_info(v: number): string {
  // smp_rmb: the Atomics.load pairs with clear_vm_uninitialized_flag's Atomics.store.
  // inject "vmallocinfo-uninitialized": the check is left out, as before d4033afdf828 added it.
  if (!injectVmallocinfoUninitialized && Atomics.load(I32, (v + VM.flags) >> 2) & VM_UNINITIALIZED) return "";
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

/**
 * s_show (v4.19): one /proc/vmallocinfo line for the area on list entry `e`;
 * `numa`: a CONFIG_NUMA kernel's (m->private holds the node counters).
 */
function s_show(e: number, numa: boolean): string {
  const va = e - LST;
  const size = (n: number) => String(n).padStart(7);

  /*
   * s_show can encounter race with remove_vm_area, !VM_VM_AREA on behalf of
   * vmap area is being tear down or vm_map_ram allocation.
   */
  if (!(va_flags(va) & VM_VM_AREA))
    return `${hexKaddr(va_start(va))}-${hexKaddr(va_end(va))} ${size(va_end(va) - va_start(va))} ${
      va_flags(va) & VM_LAZY_FREE ? "unpurged vm_area" : "vm_map_ram"
    }`;

  const v = va_vm(va);
  let line = `${hexKaddr(vm_addr(v))}-${hexKaddr(vm_addr(v) + vm_size(v))} ${size(vm_size(v))}`;
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
  if (pages_are_vmalloced(v)) line += " vpages";
  if (numa) line += show_numa_info(v);
  return line;
}

/**
 * /proc/vmallocinfo (v4.19's seq_file: s_start takes vmap_area_lock, s_show
 * each area in address order, s_stop drops it). Callers print as symbol
 * names without the +off/size of %pS (they are symbol ids, not addresses).
 */
export function vmallocinfo(opts: VmallocinfoOptions = {}): string[] {
  const numa = opts.numa ?? false;
  const lines: string[] = [];
  if (tracing) trace_graph_entry(TF_VMALLOCINFO, 0, 0);
  spin_lock(LOCK);
  for (let e = list_next(LIST); e !== LIST; e = list_next(e)) lines.push(s_show(e, numa));
  spin_unlock(LOCK);
  if (tracing) trace_graph_return(TF_VMALLOCINFO, lines.length);
  return lines;
}

/** get_vmalloc_info (fs/proc/meminfo.c): the Vmalloc lines of /proc/meminfo. */
// biome-ignore-start lint/style/useNamingConvention: the /proc/meminfo field names
export function get_vmalloc_info(): VmallocInfo {
  return {
    VmallocTotal: (VMALLOC_END - VMALLOC_START) / 1024,
    VmallocUsed: atomic_read(nr_vmalloc_pages.ptr) * (PAGE_SIZE / 1024),
    VmallocChunk: 0,
  };
}
// biome-ignore-end lint/style/useNamingConvention: the /proc/meminfo field names

/*** Harness ***/

/** Harness: entry `i` of `vm`'s page array (struct page pointer), wherever the array lives. */
export function vmStructPage(vm: number, i: number): number {
  return I32[vm_page_slot(vm, i) >> 2]!;
}

/**
 * Harness: the early areas vm_area_add_early put on vmlist (arm64's kernel
 * image segments), as vm_struct → the name of its static variable
 * (vmlinux_text …, arch/arm64/mm/mmu.c's names).
 */
export function earlyVmAreas(): Map<number, string> {
  const names = new Map<number, string>(vmlinux_segments.map((g) => [g.ptr, g.name]));
  const out = new Map<number, string>();
  // vmlist is written once at boot; the bound only guards a corrupted arena.
  let tmp = I32[(vmlist.ptr + VMLIST.off.p) >> 2]!;
  for (let n = 0; tmp && n < 1024; tmp = I32[(tmp + VM.next) >> 2]!, n++) out.set(tmp, names.get(tmp) ?? "vmlist");
  return out;
}

/**
 * Calls `fn` with every vmap_area in address order (a walk of the tree, not
 * the list, so a checker can compare the two). The caller guarantees the
 * CPUs are parked: no lock is taken.
 */
export function forEachVmapArea(fn: (va: number) => void): void {
  for (let n = rbFirst(); n; n = rb_next(n)) fn(n - RB);
}

function rbFirst(): number {
  let n = I32[(vmap_area_root.ptr + RB_ROOT.off.rb_node) >> 2]!;
  if (!n) return 0;
  for (let l: number; (l = I32[(n + RB_NODE.off.rb_left) >> 2]!) !== 0; ) n = l;
  return n;
}

/*** The generation object (src/mm/vmalloc_generation.ts) ***/

/**
 * Generation 1: v4.19's mm/vmalloc.c behind the interface src/mm/vmalloc.ts
 * binds. The per-CPU kva allocator's three entries are read when a thread
 * selects the generation, after vmap_block.ts registered them.
 */
// biome-ignore-start lint/style/useNamingConvention: the kernel's names, leading underscores included
export const vmalloc_generation: VmallocGeneration = {
  version: "4.19",
  vmalloc_init,
  vmalloc,
  vzalloc,
  vmalloc_user,
  vmalloc_node,
  vzalloc_node,
  vmalloc_32,
  vmalloc_32_user,
  __vmalloc,
  __vmalloc_node,
  __vmalloc_node_range,
  vfree,
  vfree_atomic,
  vunmap,
  vmap,
  get_vm_area,
  get_vm_area_caller,
  __get_vm_area,
  find_vm_area,
  remove_vm_area,
  free_vm_area,
  map_vm_area,
  vread,
  vwrite,
  is_vmalloc_addr,
  vmalloc_to_page,
  get vm_map_ram() {
    return vmapBlocks().vm_map_ram;
  },
  get vm_unmap_ram() {
    return vmapBlocks().vm_unmap_ram;
  },
  get vm_unmap_aliases() {
    return vmapBlocks().vm_unmap_aliases;
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
  vfree_deferred_list: (cpu) => per_cpu_ptr(vfree_deferred, cpu) + VFREE_DEFERRED.off.list,
  rcu_vmap_area_list: {
    get head() {
      return vmap_area_list.ptr;
    },
    list: LST,
    va_start,
    va_end,
  },
};
// biome-ignore-end lint/style/useNamingConvention: the kernel's names, leading underscores included
