/**
 * The invariants of generation 3's kva allocator and vm_struct layer
 * (mm/vmalloc.c, v6.12; docs/architecture.md), checked read-only on a machine
 * whose CPUs are all parked:
 *
 * - free_vmap_area_root + free_vmap_area_list: the augmented free rb_list
 *   (src/check/kva.ts: exact subtree_max_size, merged neighbours, and
 *   find_vmap_lowest_match without adjust_search_size equal to the linear
 *   scan for every probed (size, align, vstart) — v6.12's own debug check);
 * - per vmap node: the busy rb_list, each area on the node addr_to_node
 *   names; the lazy rb_list, each area on the node free_vmap_area_noflush
 *   chose (its encoded vn_id when valid, else addr_to_node); every size
 *   pool's list as long as its len, each area (idx + 1) pages and encoded
 *   with this node's id;
 * - vmap_lazy_nr = the pages of the lazy trees;
 * - the per-CPU ne_fit_preload_node objects in no tree, list or pool;
 * - busy + lazy + free + pooled areas tile [1, ULONG_MAX) once;
 * - every busy area has a vm_struct or is VMAP_RAM, and its vm_struct, pages
 *   and PTEs hold (src/check/vm_area.ts).
 */
import { I32, per_cpu_ptr, theArena } from "../../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { formatKaddr } from "../../shared/layouts.js";
import { list_next } from "../../lib/list.js";
import { atomic_long_read } from "../../locks/atomic.js";
import { for_each_possible_cpu } from "../../percpu/percpu.js";
import {
  BUSY_HEAD,
  BUSY_ROOT,
  LAZY_HEAD,
  LAZY_ROOT,
  MAX_VA_SIZE_PAGES,
  MODULES_END,
  MODULES_VADDR,
  VMALLOC_END,
  VMALLOC_START,
  VMAP_AREA,
  VMAP_NODE,
  VMAP_POOL,
  VMAP_RAM,
  VM_STRUCT,
  earlyVmAreas,
  addr_to_node_id,
  find_vmap_lowest_match,
  free_vmap_area_list,
  free_vmap_area_root,
  ne_fit_preload_node,
  nrVmapNodes,
  nr_vmalloc_pages,
  va_end,
  va_flags,
  va_start,
  va_subtree_max_size,
  va_vm,
  vmStructPage,
  vm_addr,
  vm_flags,
  vm_nr_pages,
  vm_pages,
  vm_size,
  vmapNode,
  vmap_lazy_nr_read,
} from "../../mm/v6.12/vmalloc.js";
import type { VmallocChecks, VmallocWalk } from "../index.js";
import { type FreeTreeReader, type KvaPiece, checkFreeTree, checkTiling, kvaSpace, walkRbList } from "../kva.js";
import { type BusyArea, type VmStructReader, checkVmAreas } from "../vm_area.js";
import { checkVmapBlocks } from "./vmap_block.js";

const VA = VMAP_AREA.off;
const VN = VMAP_NODE.off;

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

/** The node id va->flags encodes (decode_vn_id, v6.12, without its warning): -1 for none or an invalid one. */
function encodedNode(va: number, nr: number): number {
  const id = (va_flags(va) >>> 8) - 1;
  return id >= 0 && id < nr ? id : -1;
}

/** Runs every v6.12 vmalloc invariant once; CPUs parked. */
export function walkVmalloc(): VmallocWalk {
  const layout = layoutOf(theArena().config);
  const K = (a: number) => formatKaddr(layout, a);
  const name = (va: number) => `va ${ptr(va)} [${K(va_start(va))}-${K(va_end(va))})`;
  const reader = { rbNode: VA.rb_node, list: VA.list, va_start, va_end, name };
  const free: FreeTreeReader = {
    ...reader,
    subtree_max_size: va_subtree_max_size,
    find_vmap_lowest_match: (size, align, vstart) =>
      find_vmap_lowest_match(free_vmap_area_root.ptr, size, align, vstart, false),
    exactFor: () => true,
    vmallocStart: VMALLOC_START,
  };
  const out: string[] = [];
  /* The KVA pieces: `idle` ones (free, lazy, purging, pooled) map nothing. */
  const idle: KvaPiece[] = [];
  const piece = (kind: string, va: number): KvaPiece => ({
    start: va_start(va),
    end: va_end(va),
    what: `${kind} ${name(va)}`,
  });
  const aligned = (where: string, va: number) => {
    if (va_start(va) % PAGE_SIZE !== 0 || va_end(va) % PAGE_SIZE !== 0)
      out.push(`${where}: ${name(va)} is not page-aligned`);
  };

  const freeVas = checkFreeTree(free_vmap_area_root.ptr, free_vmap_area_list.ptr, free, out);
  for (const va of freeVas) idle.push(piece("free", va));

  const nr = nrVmapNodes();
  const busy: BusyArea[] = [];
  const linked = new Set<number>(freeVas);
  let lazyPages = 0;
  let lazyAreas = 0;
  for (let i = 0; i < nr; i++) {
    const vn = vmapNode(i);
    const node = `vmap_nodes[${i}]`;

    for (const va of walkRbList(`${node}.busy`, vn + BUSY_ROOT, vn + BUSY_HEAD, reader, true, out)) {
      linked.add(va);
      const home = addr_to_node_id(va_start(va));
      if (home !== i) out.push(`${node}.busy: ${name(va)} is on node ${i}, addr_to_node says ${home}`);
      const vm = va_vm(va);
      if (vm === 0 && !(va_flags(va) & VMAP_RAM))
        out.push(`${node}.busy: ${name(va)} has no vm_struct and is not VMAP_RAM`);
      busy.push({ va, start: va_start(va), end: va_end(va), vm, name: name(va) });
    }

    /*
     * vn->purge_list is not walked: each purge sets it up (INIT_LIST_HEAD;
     * vmap_init_nodes leaves it as kmalloc_array gave it) and empties it
     * before vmap_purge_lock drops, so at a quiescent point it holds nothing;
     * an area left on it lies in no other structure: a tiling gap.
     */
    for (const va of walkRbList(`${node}.lazy`, vn + LAZY_ROOT, vn + LAZY_HEAD, reader, true, out)) {
      linked.add(va);
      idle.push(piece("lazy", va));
      lazyPages += (va_end(va) - va_start(va)) / PAGE_SIZE;
      lazyAreas++;
      const id = encodedNode(va, nr);
      const home = id >= 0 ? id : addr_to_node_id(va_start(va));
      if (home !== i)
        out.push(
          `${node}.lazy: ${name(va)} is on node ${i}, free_vmap_area_noflush puts it on ${home} (${id >= 0 ? "its vn_id" : "addr_to_node"})`,
        );
    }

    for (let idx = 0; idx < MAX_VA_SIZE_PAGES; idx++) {
      const vp = vn + VN.pool + idx * VMAP_POOL.size;
      const where = `${node}.pool[${idx}]`;
      const vas = walkList(where, vp + VMAP_POOL.off.head, out);
      const len = I32[(vp + VMAP_POOL.off.len) >> 2]!;
      if (len !== vas.length) out.push(`${where}: len ${len}, its list holds ${vas.length} areas`);
      for (const va of vas) {
        linked.add(va);
        aligned(where, va);
        idle.push(piece(`pooled (${where})`, va));
        if (va_end(va) - va_start(va) !== (idx + 1) * PAGE_SIZE)
          out.push(`${where}: ${name(va)} is not ${idx + 1} pages`);
        const id = encodedNode(va, nr);
        if (id !== i) out.push(`${where}: ${name(va)} encodes node ${id < 0 ? "none" : id}`);
      }
    }
  }

  const lazyNr = vmap_lazy_nr_read();
  if (lazyNr !== lazyPages)
    out.push(`vmap_lazy_nr: ${lazyNr}, but the ${lazyAreas} areas on the lazy trees span ${lazyPages} pages`);

  /* A preloaded object is spare: in no tree, list or pool until a NE_FIT split takes it. */
  for (const cpu of for_each_possible_cpu()) {
    const pva = I32[per_cpu_ptr(ne_fit_preload_node, cpu) >> 2]!;
    if (pva !== 0 && linked.has(pva)) out.push(`ne_fit_preload_node: CPU${cpu}'s spare ${name(pva)} is in use`);
  }

  const { lo, hi } = kvaSpace();
  checkTiling([...busy.map((a) => ({ start: a.start, end: a.end, what: `busy ${a.name}` })), ...idle], lo, hi, K, out);

  busy.sort((a, b) => a.start - b.start);
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

/** The areas on a pool's list at `head`; a cycle or a NULL link ends the walk with a violation. */
function walkList(where: string, head: number, out: string[]): number[] {
  const vas: number[] = [];
  const seen = new Set<number>();
  for (let e = list_next(head); e !== head; e = list_next(e)) {
    if (e === 0 || seen.has(e)) {
      out.push(`${where}: the list ${e === 0 ? "has a NULL link" : "has a cycle"} after ${vas.length} areas`);
      break;
    }
    seen.add(e);
    vas.push(e - VA.list);
  }
  return vas;
}

/** Generation 3's checkers, registered by src/check/index.ts (its vmap blocks: src/check/v6.12/vmap_block.ts). */
export const vmalloc_checks: VmallocChecks = { walkVmalloc, checkVmapBlocks };
