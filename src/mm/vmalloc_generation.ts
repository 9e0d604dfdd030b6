/**
 * What every vmalloc generation provides: the interface of include/linux/vmalloc.h
 * that vmsim's callers use, one object per ported mm/vmalloc.c
 * (src/mm/v4.19/, src/mm/v5.10/, src/mm/v6.12/). src/mm/vmalloc.ts binds its
 * live exports to the selected generation's functions; a generation's files
 * import only this header, never that API, so none of them depends on another.
 *
 * Signatures are generation 1's (v4.19). Where a later kernel changed one
 * (5.8 dropped `prot` from __vmalloc and vm_map_ram, map_vm_area became
 * map_kernel_range), its kernel-named function keeps the kernel's signature
 * and its generation object adapts (prot is PAGE_KERNEL there).
 */
import type { KernelVersion } from "../shared/config.js";
import type { Pgprot } from "./pgtable.js";

/*** include/linux/vmalloc.h: the flags every generation shares ***/

/** vm_struct flags, the same bits from v4.19 to v6.12 (include/linux/vmalloc.h). */
export const VM_IOREMAP = 0x00000001; /* ioremap() and friends */
export const VM_ALLOC = 0x00000002; /* vmalloc() */
export const VM_MAP = 0x00000004; /* vmap()ed pages */
export const VM_USERMAP = 0x00000008; /* suitable for remap_vmalloc_range */
export const VM_UNINITIALIZED = 0x00000020; /* vm_struct is not fully initialized */
export const VM_NO_GUARD = 0x00000040; /* don't add guard page */
export const VM_KASAN = 0x00000080; /* has allocated kasan shadow memory */

/** NUMA_NO_NODE: any node (vmsim has one). */
export const NUMA_NO_NODE = -1;

/** Options of a generation's vmallocinfo. */
export interface VmallocinfoOptions {
  /** The file of a CONFIG_NUMA kernel: each area's line ends with its pages per node (show_numa_info). @defaultValue false */
  readonly numa?: boolean;
}

/** The Vmalloc lines of /proc/meminfo, in kB. */
// biome-ignore-start lint/style/useNamingConvention: the /proc/meminfo field names
export interface VmallocInfo {
  /** VMALLOC_END - VMALLOC_START. */
  readonly VmallocTotal: number;
  /** Pages backing vmalloc areas (kernels ≥ 5.3; v4.19 printed 0). */
  readonly VmallocUsed: number;
  /** 0, as every kernel since v4.4 prints. */
  readonly VmallocChunk: number;
}
// biome-ignore-end lint/style/useNamingConvention: the /proc/meminfo field names

/**
 * The address-sorted list of busy vmap_areas that RCU readers may walk
 * (v4.19's vmap_area_list: list_add_rcu / list_del_rcu + kfree_rcu), for a
 * generation that keeps one; the reader uses list_next_rcu from `head`.
 */
export interface RcuVmapAreaList {
  /** &vmap_area_list. */
  readonly head: number;
  /** offsetof(struct vmap_area, list). */
  readonly list: number;
  /** va->va_start and va->va_end of the area at `va`. */
  readonly va_start: (va: number) => number;
  readonly va_end: (va: number) => number;
}

/* biome-ignore-start lint/style/useNamingConvention: the kernel's names, leading underscores included */
/** One vmalloc generation: a ported mm/vmalloc.c behind vmalloc.h's functions. */
export interface VmallocGeneration {
  /** The kernel version whose mm/vmalloc.c this generation follows. */
  readonly version: KernelVersion;

  /** vmalloc_init: register the early areas, set up the per-CPU state; once, at boot, on CPU 0. */
  readonly vmalloc_init: () => void;

  /** vmalloc: `size` bytes of virtually contiguous memory; kaddr or 0. */
  readonly vmalloc: (size: number, caller?: number) => number;
  /** vzalloc: vmalloc, zero-filled. */
  readonly vzalloc: (size: number, caller?: number) => number;
  /** vmalloc_user: zeroed, SHMLBA-aligned, VM_USERMAP. */
  readonly vmalloc_user: (size: number, caller?: number) => number;
  /** vmalloc_node: on node `node` (vmsim has one). */
  readonly vmalloc_node: (size: number, node: number, caller?: number) => number;
  /** vzalloc_node: vmalloc_node, zero-filled. */
  readonly vzalloc_node: (size: number, node: number, caller?: number) => number;
  /** vmalloc_32: 32-bit addressable pages. */
  readonly vmalloc_32: (size: number, caller?: number) => number;
  /** vmalloc_32_user: vmalloc_32, zeroed, VM_USERMAP. */
  readonly vmalloc_32_user: (size: number, caller?: number) => number;
  /** __vmalloc: explicit gfp flags and protection (5.8+: prot is PAGE_KERNEL). */
  readonly __vmalloc: (size: number, gfpMask: number, prot: Pgprot, caller?: number) => number;
  /** __vmalloc_node: explicit alignment, gfp flags, protection and node over the whole vmalloc area. */
  readonly __vmalloc_node: (
    size: number,
    align: number,
    gfpMask: number,
    prot: Pgprot,
    node: number,
    caller?: number,
  ) => number;
  /** __vmalloc_node_range: the allocator behind every vmalloc, in [start, end). */
  readonly __vmalloc_node_range: (
    size: number,
    align: number,
    start: number,
    end: number,
    gfpMask: number,
    prot: Pgprot,
    vmFlags: number,
    node: number,
    caller?: number,
  ) => number;

  /** vfree: release a vmalloc area (deferred from interrupt context). */
  readonly vfree: (addr: number) => void;
  /** vfree_atomic: vfree from atomic context, always deferred to free_work. */
  readonly vfree_atomic: (addr: number) => void;
  /** vunmap: release a vmap() mapping, not its pages. */
  readonly vunmap: (addr: number) => void;
  /** vmap: map `count` struct pages (an int32 array at `pages`) contiguously; kaddr or 0. */
  readonly vmap: (pages: number, count: number, flags: number, prot: Pgprot, caller?: number) => number;

  /** get_vm_area: reserve an unmapped area in the vmalloc range; vm_struct or 0. */
  readonly get_vm_area: (size: number, flags: number, caller?: number) => number;
  /** get_vm_area_caller: get_vm_area with an explicit caller. */
  readonly get_vm_area_caller: (size: number, flags: number, caller: number) => number;
  /** __get_vm_area: reserve an unmapped area in [start, end); vm_struct or 0. */
  readonly __get_vm_area: (size: number, flags: number, start: number, end: number, caller?: number) => number;
  /** find_vm_area: the vm_struct of the area starting at `addr`, 0 when none. */
  readonly find_vm_area: (addr: number) => number;
  /** remove_vm_area: unlink and unmap the area at `addr`; its vm_struct (the caller frees it) or 0. */
  readonly remove_vm_area: (addr: number) => number;
  /** free_vm_area: remove_vm_area and kfree of a get_vm_area area. */
  readonly free_vm_area: (area: number) => void;
  /** map_vm_area: map `pages` into a get_vm_area area (5.8+: map_kernel_range); 0 or -errno. */
  readonly map_vm_area: (area: number, prot: Pgprot, pages: number) => number;

  /** vread: copy from vmalloc space into `buf`; holes read as 0; bytes copied. */
  readonly vread: (buf: Uint8Array, addr: number, count: number) => number;
  /** vwrite: copy `buf` into vmalloc space; holes are skipped; bytes copied. */
  readonly vwrite: (buf: Uint8Array, addr: number, count: number) => number;
  /** is_vmalloc_addr: is `addr` inside [VMALLOC_START, VMALLOC_END)? */
  readonly is_vmalloc_addr: (addr: number) => boolean;
  /** vmalloc_to_page: the struct page mapped at `addr`, 0 when none. */
  readonly vmalloc_to_page: (addr: number) => number;

  /** vm_map_ram: map `count` pages fast, from a per-CPU vmap block when small (5.8+: no prot). */
  readonly vm_map_ram: (pages: number, count: number, node: number, prot: Pgprot) => number;
  /** vm_unmap_ram: unmap what vm_map_ram mapped. */
  readonly vm_unmap_ram: (mem: number, count: number) => void;
  /** vm_unmap_aliases: flush every lazily unmapped alias (blocks and lazy areas). */
  readonly vm_unmap_aliases: () => void;
  /**
   * purge_vmap_area_lazy: the harness's "purge" — the fragmented vmap blocks and every
   * lazily freed area (6.12: as reclaim_and_purge_vmap_areas, pools fully decayed).
   */
  readonly purge_vmap_area_lazy: () => void;

  /** pcpu_get_vm_areas: congruent areas for the percpu allocator; an int32 array of vm_structs or 0. */
  readonly pcpu_get_vm_areas: (
    offsets: readonly number[],
    sizes: readonly number[],
    nrVms: number,
    align: number,
  ) => number;
  /** pcpu_free_vm_areas: free what pcpu_get_vm_areas returned. */
  readonly pcpu_free_vm_areas: (vms: number, nrVms: number) => void;
  /** map_kernel_range_noflush: map PFN_UP(size) pages at addr; pages mapped or -errno. */
  readonly map_kernel_range_noflush: (addr: number, size: number, prot: Pgprot, pages: number) => number;
  /** unmap_kernel_range_noflush: unmap, the caller flushes the TLB. */
  readonly unmap_kernel_range_noflush: (addr: number, size: number) => void;

  /** /proc/vmallocinfo, one line per area, in this version's format. */
  readonly vmallocinfo: (opts?: VmallocinfoOptions) => string[];
  /** get_vmalloc_info: the Vmalloc lines of /proc/meminfo. */
  readonly get_vmalloc_info: () => VmallocInfo;
  /** Harness: pages of lazily freed areas not yet purged (vmap_lazy_nr). */
  readonly vmap_lazy_nr_read: () => number;

  /** Harness: entry `i` of `vm`'s page array (a struct page pointer). */
  readonly vmStructPage: (vm: number, i: number) => number;
  /** vm->addr, vm->size (guard page included), vm->flags, vm->nr_pages of the vm_struct at `vm`. */
  readonly vm_addr: (vm: number) => number;
  readonly vm_size: (vm: number) => number;
  readonly vm_flags: (vm: number) => number;
  readonly vm_nr_pages: (vm: number) => number;

  /** &per_cpu(vfree_deferred, cpu).list: the llist of vfrees deferred to `cpu`'s free_work. */
  readonly vfree_deferred_list: (cpu: number) => number;
  /** vmap_area_list as RCU readers may walk it; absent where the version frees areas without RCU. */
  readonly rcu_vmap_area_list?: RcuVmapAreaList;
}
/* biome-ignore-end lint/style/useNamingConvention: the kernel's names, leading underscores included */
