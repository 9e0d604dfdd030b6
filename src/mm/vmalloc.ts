/**
 * The vmalloc API every generation-neutral caller imports, as kernel code
 * includes <linux/vmalloc.h>: the VM_* flags, NUMA_NO_NODE, the layout's
 * VMALLOC_START/END, and live bindings of vmalloc.h's functions.
 *
 * Each ported mm/vmalloc.c (src/mm/v4.19/ …) exports one VmallocGeneration
 * object (src/mm/vmalloc_generation.ts). When a thread takes a CPU — boot,
 * a worker's attach, a test's setCurrentCpu — it selects the generation of
 * its machine's `kernel` and every binding below is re-pointed at that
 * generation's function: a call costs what a direct import costs. Every
 * generation is loaded in every thread; only the selected one runs.
 *
 * A new generation plugs in with one import and one entry of GENERATIONS.
 */
import { theArena } from "../shared/arena.js";
import { type KernelVersion, layoutOf } from "../shared/config.js";
import { onSetCurrentCpu } from "../shared/smp.js";
import type { VmallocGeneration } from "./vmalloc_generation.js";
import { vmalloc_generation as V4_19 } from "./v4.19/vmalloc.js";
import "./v4.19/vmap_block.js";
import { vmalloc_generation as V5_10 } from "./v5.10/vmalloc.js";
import "./v5.10/vmap_block.js";
import { vmalloc_generation as V6_12 } from "./v6.12/vmalloc.js";
import "./v6.12/vmap_block.js";

export {
  NUMA_NO_NODE,
  VM_ALLOC,
  VM_IOREMAP,
  VM_KASAN,
  VM_MAP,
  VM_NO_GUARD,
  VM_UNINITIALIZED,
  VM_USERMAP,
  type RcuVmapAreaList,
  type VmallocGeneration,
  type VmallocInfo,
  type VmallocinfoOptions,
} from "./vmalloc_generation.js";

/*** The registry ***/

/** Every generation built in, oldest first. */
const GENERATIONS: readonly VmallocGeneration[] = [V4_19, V5_10, V6_12];

/*** The layout (arch/arm64/include/asm/memory.h of the selected version) ***/

/** VMALLOC_START and VMALLOC_END of this thread's machine, as kaddrs (live bindings). */
export let VMALLOC_START = 0;
export let VMALLOC_END = 0;
/** VMAP_MAX_ALLOC = BITS_PER_LONG in every generation: the largest vm_map_ram count a vmap block serves. */
export let VMAP_MAX_ALLOC = 0;

/*** The live bindings ***/

const notSelected = (..._: unknown[]): never => {
  throw new Error("vmalloc: no generation selected on this thread (it has not taken a CPU)");
};

/* biome-ignore-start lint/style/useNamingConvention: the kernel's names, leading underscores included */
/** The version of the selected generation ("" before a thread took a CPU). */
export let vmalloc_version: KernelVersion | "" = "";
export let vmalloc_init: VmallocGeneration["vmalloc_init"] = notSelected;
export let vmalloc: VmallocGeneration["vmalloc"] = notSelected;
export let vzalloc: VmallocGeneration["vzalloc"] = notSelected;
export let vmalloc_user: VmallocGeneration["vmalloc_user"] = notSelected;
export let vmalloc_node: VmallocGeneration["vmalloc_node"] = notSelected;
export let vzalloc_node: VmallocGeneration["vzalloc_node"] = notSelected;
export let vmalloc_32: VmallocGeneration["vmalloc_32"] = notSelected;
export let vmalloc_32_user: VmallocGeneration["vmalloc_32_user"] = notSelected;
export let __vmalloc: VmallocGeneration["__vmalloc"] = notSelected;
export let __vmalloc_node: VmallocGeneration["__vmalloc_node"] = notSelected;
export let __vmalloc_node_range: VmallocGeneration["__vmalloc_node_range"] = notSelected;
export let vfree: VmallocGeneration["vfree"] = notSelected;
export let vfree_atomic: VmallocGeneration["vfree_atomic"] = notSelected;
export let vunmap: VmallocGeneration["vunmap"] = notSelected;
export let vmap: VmallocGeneration["vmap"] = notSelected;
export let get_vm_area: VmallocGeneration["get_vm_area"] = notSelected;
export let get_vm_area_caller: VmallocGeneration["get_vm_area_caller"] = notSelected;
export let __get_vm_area: VmallocGeneration["__get_vm_area"] = notSelected;
export let find_vm_area: VmallocGeneration["find_vm_area"] = notSelected;
export let remove_vm_area: VmallocGeneration["remove_vm_area"] = notSelected;
export let free_vm_area: VmallocGeneration["free_vm_area"] = notSelected;
export let map_vm_area: VmallocGeneration["map_vm_area"] = notSelected;
export let vread: VmallocGeneration["vread"] = notSelected;
export let vwrite: VmallocGeneration["vwrite"] = notSelected;
export let is_vmalloc_addr: VmallocGeneration["is_vmalloc_addr"] = notSelected;
export let vmalloc_to_page: VmallocGeneration["vmalloc_to_page"] = notSelected;
export let vm_map_ram: VmallocGeneration["vm_map_ram"] = notSelected;
export let vm_unmap_ram: VmallocGeneration["vm_unmap_ram"] = notSelected;
export let vm_unmap_aliases: VmallocGeneration["vm_unmap_aliases"] = notSelected;
export let purge_vmap_area_lazy: VmallocGeneration["purge_vmap_area_lazy"] = notSelected;
export let pcpu_get_vm_areas: VmallocGeneration["pcpu_get_vm_areas"] = notSelected;
export let pcpu_free_vm_areas: VmallocGeneration["pcpu_free_vm_areas"] = notSelected;
export let map_kernel_range_noflush: VmallocGeneration["map_kernel_range_noflush"] = notSelected;
export let unmap_kernel_range_noflush: VmallocGeneration["unmap_kernel_range_noflush"] = notSelected;
export let vmallocinfo: VmallocGeneration["vmallocinfo"] = notSelected;
export let get_vmalloc_info: VmallocGeneration["get_vmalloc_info"] = notSelected;
export let vmap_lazy_nr_read: VmallocGeneration["vmap_lazy_nr_read"] = notSelected;
export let vmStructPage: VmallocGeneration["vmStructPage"] = notSelected;
export let vm_addr: VmallocGeneration["vm_addr"] = notSelected;
export let vm_size: VmallocGeneration["vm_size"] = notSelected;
export let vm_flags: VmallocGeneration["vm_flags"] = notSelected;
export let vm_nr_pages: VmallocGeneration["vm_nr_pages"] = notSelected;
export let vfree_deferred_list: VmallocGeneration["vfree_deferred_list"] = notSelected;
/** The selected generation's RCU-walkable vmap_area_list, or undefined where it keeps none. */
export let rcu_vmap_area_list: VmallocGeneration["rcu_vmap_area_list"];
/* biome-ignore-end lint/style/useNamingConvention: the kernel's names, leading underscores included */

/** The generation built in for `version`; a RangeError naming the available ones when none is. */
export function vmalloc_generation_of(version: string): VmallocGeneration {
  const g = GENERATIONS.find((x) => x.version === version);
  if (g === undefined)
    throw new RangeError(
      `no vmalloc generation for kernel ${JSON.stringify(version)}; available: ${GENERATIONS.map((g) => g.version).join(", ")}`,
    );
  return g;
}

/** Points every binding of this module at `version`'s generation (this thread only). */
export function select_vmalloc_generation(version: KernelVersion): void {
  bind(vmalloc_generation_of(version));
}

function bind(g: VmallocGeneration): void {
  vmalloc_version = g.version;
  vmalloc_init = g.vmalloc_init;
  vmalloc = g.vmalloc;
  vzalloc = g.vzalloc;
  vmalloc_user = g.vmalloc_user;
  vmalloc_node = g.vmalloc_node;
  vzalloc_node = g.vzalloc_node;
  vmalloc_32 = g.vmalloc_32;
  vmalloc_32_user = g.vmalloc_32_user;
  __vmalloc = g.__vmalloc;
  __vmalloc_node = g.__vmalloc_node;
  __vmalloc_node_range = g.__vmalloc_node_range;
  vfree = g.vfree;
  vfree_atomic = g.vfree_atomic;
  vunmap = g.vunmap;
  vmap = g.vmap;
  get_vm_area = g.get_vm_area;
  get_vm_area_caller = g.get_vm_area_caller;
  __get_vm_area = g.__get_vm_area;
  find_vm_area = g.find_vm_area;
  remove_vm_area = g.remove_vm_area;
  free_vm_area = g.free_vm_area;
  map_vm_area = g.map_vm_area;
  vread = g.vread;
  vwrite = g.vwrite;
  is_vmalloc_addr = g.is_vmalloc_addr;
  vmalloc_to_page = g.vmalloc_to_page;
  vm_map_ram = g.vm_map_ram;
  vm_unmap_ram = g.vm_unmap_ram;
  vm_unmap_aliases = g.vm_unmap_aliases;
  purge_vmap_area_lazy = g.purge_vmap_area_lazy;
  pcpu_get_vm_areas = g.pcpu_get_vm_areas;
  pcpu_free_vm_areas = g.pcpu_free_vm_areas;
  map_kernel_range_noflush = g.map_kernel_range_noflush;
  unmap_kernel_range_noflush = g.unmap_kernel_range_noflush;
  vmallocinfo = g.vmallocinfo;
  get_vmalloc_info = g.get_vmalloc_info;
  vmap_lazy_nr_read = g.vmap_lazy_nr_read;
  vmStructPage = g.vmStructPage;
  vm_addr = g.vm_addr;
  vm_size = g.vm_size;
  vm_flags = g.vm_flags;
  vm_nr_pages = g.vm_nr_pages;
  vfree_deferred_list = g.vfree_deferred_list;
  rcu_vmap_area_list = g.rcu_vmap_area_list;
}

// Every thread takes a CPU once it attached (boot, a CPU worker, the main thread's harness): select there.
onSetCurrentCpu(() => {
  const config = theArena().config;
  const layout = layoutOf(config);
  VMALLOC_START = layout.vmallocStart;
  VMALLOC_END = layout.vmallocEnd;
  VMAP_MAX_ALLOC = layout.vaBits > 32 ? 64 : 32;
  if (vmalloc_version === config.kernel) return;
  bind(vmalloc_generation_of(config.kernel));
});
