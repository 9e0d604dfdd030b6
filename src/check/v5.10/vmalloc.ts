/**
 * The invariants of generation 2's kva allocator and vm_struct layer
 * (mm/vmalloc.c, v5.10; docs/architecture.md), checked read-only on a machine
 * whose CPUs are all parked:
 *
 * - free_vmap_area_root + free_vmap_area_list: an augmented rb_list whose
 *   subtree_max_size values are exact (DEBUG_AUGMENT_PROPAGATE_CHECK), no two
 *   blocks adjacent (merge on free), and whose find_vmap_lowest_match agrees
 *   with a linear scan (DEBUG_AUGMENT_LOWEST_MATCH_CHECK; v5.10 probes align 1
 *   exactly, wider aligns within the bounds its adjusted length allows);
 * - vmap_area_root + vmap_area_list: the busy rb_list, page-aligned areas;
 * - vmap_purge_list: the lazily freed areas, unlinked from the busy tree
 *   (free_vmap_area_noflush), vmap_lazy_nr their pages; the per-CPU
 *   ne_fit_preload_node objects in no tree or list;
 * - busy + lazy + free tile the KVA space vmap_init_free_space started
 *   from, [1, ULONG_MAX), exactly once;
 * - every busy area's vm_struct, pages and PTEs (src/check/vm_area.ts).
 */
import { I32, per_cpu_ptr, theArena } from "../../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { formatKaddr } from "../../shared/layouts.js";
import { LLIST_HEAD, llist_next } from "../../lib/llist.js";
import { atomic_long_read } from "../../locks/atomic.js";
import { for_each_possible_cpu } from "../../percpu/percpu.js";
import {
  VMAP_AREA,
  VM_STRUCT,
  earlyVmAreas,
  MODULES_END,
  MODULES_VADDR,
  VMALLOC_END,
  VMALLOC_START,
  find_vmap_lowest_match,
  free_vmap_area_list,
  free_vmap_area_root,
  ne_fit_preload_node,
  nr_vmalloc_pages,
  va_end,
  va_start,
  va_subtree_max_size,
  va_vm,
  vmStructPage,
  vm_addr,
  vm_flags,
  vm_nr_pages,
  vm_pages,
  vm_size,
  vmap_area_list,
  vmap_area_root,
  vmap_lazy_nr_read,
  vmap_purge_list,
} from "../../mm/v5.10/vmalloc.js";
import { checkVmapBlocks } from "../../mm/v5.10/vmap_block.js";
import type { VmallocChecks, VmallocWalk } from "../index.js";
import { type FreeTreeReader, type KvaPiece, checkFreeTree, checkTiling, kvaSpace, walkRbList } from "../kva.js";
import { type BusyArea, type VmStructReader, checkVmAreas } from "../vm_area.js";

const VA = VMAP_AREA.off;

function ptr(p: number): string {
  return `0x${(p >>> 0).toString(16).padStart(8, "0")}`;
}

const VM_READER: VmStructReader = {
  vm_addr,
  vm_size,
  vm_flags,
  vm_nr_pages,
  vm_pages,
  vmStructPage,
  callerOff: VM_STRUCT.off.caller,
  earlyVmAreas,
};

/** Runs every v5.10 vmalloc invariant once; CPUs parked. */
export function walkVmalloc(): VmallocWalk {
  const layout = layoutOf(theArena().config);
  const K = (a: number) => formatKaddr(layout, a);
  const name = (va: number) => `va ${ptr(va)} [${K(va_start(va))}-${K(va_end(va))})`;
  const reader = { rbNode: VA.rb_node, list: VA.list, va_start, va_end, name };
  const free: FreeTreeReader = {
    ...reader,
    subtree_max_size: va_subtree_max_size,
    find_vmap_lowest_match,
    exactFor: (align) => align === 1,
    vmallocStart: VMALLOC_START,
  };
  const out: string[] = [];

  const freeVas = checkFreeTree(free_vmap_area_root.ptr, free_vmap_area_list.ptr, free, out);
  const busyVas = walkRbList("vmap_area_root", vmap_area_root.ptr, vmap_area_list.ptr, reader, true, out);

  /* The purge list and vmap_lazy_nr. */
  const lazy: number[] = [];
  const seen = new Set<number>();
  let lazyPages = 0;
  for (let node = Atomics.load(I32, (vmap_purge_list.ptr + LLIST_HEAD.off.first) >> 2); node !== 0; ) {
    const va = node - VA.purge_list;
    if (seen.has(va)) {
      out.push(`vmap_purge_list: ${name(va)} is on it twice (a cycle)`);
      break;
    }
    seen.add(va);
    lazy.push(va);
    if (va_start(va) % PAGE_SIZE !== 0 || va_end(va) % PAGE_SIZE !== 0)
      out.push(`vmap_purge_list: ${name(va)} is not page-aligned`);
    lazyPages += (va_end(va) - va_start(va)) / PAGE_SIZE;
    node = llist_next(node);
  }
  const lazyNr = vmap_lazy_nr_read();
  if (lazyNr !== lazyPages)
    out.push(`vmap_lazy_nr: ${lazyNr}, but the ${lazy.length} areas on vmap_purge_list span ${lazyPages} pages`);

  /* A preloaded object is spare: in no tree or list until a NE_FIT split takes it. */
  const linked = new Set([...freeVas, ...busyVas, ...lazy]);
  for (const cpu of for_each_possible_cpu()) {
    const pva = I32[per_cpu_ptr(ne_fit_preload_node, cpu) >> 2]!;
    if (pva !== 0 && linked.has(pva)) out.push(`ne_fit_preload_node: CPU${cpu}'s spare ${name(pva)} is in use`);
  }

  /* busy + lazy + free = [1, ULONG_MAX), once. */
  const piece =
    (kind: string) =>
    (va: number): KvaPiece => ({
      start: va_start(va),
      end: va_end(va),
      what: `${kind} ${name(va)}`,
    });
  const idle = [...lazy.map(piece("lazy")), ...freeVas.map(piece("free"))];
  const { lo, hi } = kvaSpace();
  checkTiling([...busyVas.map(piece("busy")), ...idle], lo, hi, K, out);

  const busy: BusyArea[] = busyVas.map((va) => ({
    va,
    start: va_start(va),
    end: va_end(va),
    vm: va_vm(va),
    name: name(va),
  }));
  const { vmallocPages, pgtable } = checkVmAreas(
    busy,
    idle,
    VM_READER,
    atomic_long_read(nr_vmalloc_pages.ptr),
    { vmallocStart: VMALLOC_START, vmallocEnd: VMALLOC_END, modulesStart: MODULES_VADDR, modulesEnd: MODULES_END },
    K,
    out,
  );
  return { violations: out, vmallocPages, pgtable };
}

/** Generation 2's checkers, registered by src/check/index.ts (its vmap blocks: src/mm/v5.10/vmap_block.ts). */
export const vmalloc_checks: VmallocChecks = { walkVmalloc, checkVmapBlocks };
