/**
 * The race catalog's workloads (src/explore/catalog.ts): each reaches the
 * path one deliberate bug of src/shared/inject.ts breaks, with the other CPU
 * doing what the bug's story needs it to do at the same time. CPU 0 plays
 * the first column of the story, the other CPUs the second. Every workload
 * runs `ops` operations per CPU, leaves out the indices in `skip` (the
 * shrinker's "drop operations") and passes a safe point (sched_op_point)
 * before each one; it ends with everything it allocated freed.
 */
import { I32, theArena } from "../../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { formatKaddr } from "../../shared/layouts.js";
import { KernelBug, reportBug } from "../../shared/report.js";
import { sched_op_point } from "../../sched/sched_point.js";
import { runInIrq } from "../../kernel/irq.js";
import { run_pending_work } from "../../kernel/workqueue.js";
import {
  ODEBUG_STATE_ACTIVE,
  debug_object_activate,
  debug_object_deactivate,
  debug_object_free,
  debug_object_init,
  defineDebugObjDescr,
  enable_object_debug,
} from "../../lib/debugobjects.js";
import { GFP_KERNEL, __GFP_NOWARN } from "../../mm/gfp.js";
import { isFault, mmuWrite, staleTranslation } from "../../mm/mmu.js";
import { __free_page, alloc_page } from "../../mm/page_alloc.js";
import { PAGE_KERNEL } from "../../mm/pgtable.js";
import { kfree, kmalloc } from "../../mm/slab.js";
import {
  NUMA_NO_NODE,
  VMALLOC_END,
  VMALLOC_START,
  __vmalloc_node_range,
  pcpu_free_vm_areas,
  pcpu_get_vm_areas,
  vfree,
  vmalloc,
  vmallocinfo,
  vread,
  VMAP_MAX_ALLOC,
  vm_map_ram,
  vm_unmap_aliases,
  vm_unmap_ram,
} from "../../mm/vmalloc.js";
// The block size macro is the same in v4.19, v5.10 and v6.12 (VMALLOC_SPACE and the CPU count decide it).
import { VMAP_BBMAP_BITS } from "../../mm/v4.19/vmap_block.js";
import { defineWorkload } from "../workload.js";

/** Arguments of every catalog workload. */
export interface CatalogArgs {
  /** Operations on this CPU. */
  readonly ops: number;
  /** Operation indices (0-based) this CPU leaves out. @defaultValue [] */
  readonly skip?: readonly number[];
}

/** Runs `op(i)` for each operation index not skipped, each after a safe point. */
function forEachOp(a: CatalogArgs, op: (i: number) => void): void {
  const skip = new Set(a.skip ?? []);
  for (let i = 0; i < a.ops; i++) {
    sched_op_point();
    if (!skip.has(i)) op(i);
  }
}

/** A stamp through this CPU's MMU; a fault has already been reported. */
function stamp(addr: number, cpu: number, i: number): void {
  mmuWrite(addr, new Uint8Array(Int32Array.of(cpu, i).buffer));
}

/** A kmalloc'd array of `count` fresh pages for vm_map_ram; `who` names the workload in the BUG when memory runs out. */
function vmapPageArray(count: number, who: string): number {
  const pages = kmalloc(4 * count, GFP_KERNEL);
  if (pages === 0) throw new KernelBug(`${who}: no memory for the page array`);
  for (let i = 0; i < count; i++) {
    const page = alloc_page(GFP_KERNEL);
    if (page === 0) throw new KernelBug(`${who}: no memory for the pages`);
    I32[(pages >> 2) + i] = page;
  }
  return pages;
}

/**
 * catalog_vm_map_ram ("vb-publish-before-init", "vb-list-del-init"): CPU 0
 * maps VMAP_MAX_ALLOC pages with vm_map_ram per operation and keeps every
 * mapping, so its blocks fill up (a block leaves the queue) and new ones are
 * made (a block joins it) every VMAP_BBMAP_BITS / VMAP_MAX_ALLOC operations;
 * then it unmaps them all. The other CPUs call vm_unmap_aliases, which walks
 * every CPU's queue under rcu_read_lock. Returns the mappings made.
 */
defineWorkload("catalog_vm_map_ram", (a: CatalogArgs, ctx): number => {
  if (ctx.cpu !== 0) {
    forEachOp(a, () => vm_unmap_aliases());
    return 0;
  }
  const count = VMAP_MAX_ALLOC;
  const pages = vmapPageArray(count, "catalog_vm_map_ram");
  const mapped: number[] = [];
  forEachOp(a, (i) => {
    const addr = vm_map_ram(pages, count, NUMA_NO_NODE, PAGE_KERNEL);
    if (addr === 0) throw new KernelBug(`catalog_vm_map_ram: vm_map_ram #${i} failed`);
    stamp(addr, ctx.cpu, i);
    mapped.push(addr);
  });
  for (const addr of mapped) vm_unmap_ram(addr, count);
  for (let i = 0; i < count; i++) __free_page(I32[(pages >> 2) + i]!);
  kfree(pages);
  return mapped.length;
});

/** vm_unmap_aliases calls per operation of the purging CPUs of catalog_vb_purge. */
const PURGES_PER_OP = 4;

/**
 * catalog_vb_purge ("vb-purge-wrong-lock"): CPU 0 fills blocks with
 * vm_map_ram — half of VMAP_MAX_ALLOC pages first, then VMAP_MAX_ALLOC — and
 * keeps the mappings until the next request no longer fits its block; then it
 * unmaps them all, leaving the block fragmented (every used chunk dirty, too
 * little room left), and its next request makes a new block join its queue
 * behind it. The other CPUs call vm_unmap_aliases (PURGES_PER_OP times an operation), whose
 * purge_fragmented_blocks unlinks CPU 0's fragmented block from CPU 0's
 * queue. Returns the mappings made (0 on the other CPUs).
 */
defineWorkload("catalog_vb_purge", (a: CatalogArgs, ctx): number => {
  if (ctx.cpu !== 0) {
    // A purge is far shorter than CPU 0's operation: several per operation keep them overlapping.
    forEachOp(a, () => {
      for (let k = 0; k < PURGES_PER_OP; k++) vm_unmap_aliases();
    });
    return 0;
  }
  const count = VMAP_MAX_ALLOC;
  const pages = vmapPageArray(count, "catalog_vb_purge");
  const live: [number, number][] = [];
  let used = 0;
  let n = 0;
  const unmapAll = () => {
    for (const [addr, size] of live) vm_unmap_ram(addr, size);
    live.length = 0;
  };
  forEachOp(a, (i) => {
    const size = i === 0 ? count >> 1 : count;
    // The block cannot take this request: free the block's mappings first, so it is left fragmented.
    if (used + size > VMAP_BBMAP_BITS) {
      unmapAll();
      used = 0;
    }
    const addr = vm_map_ram(pages, size, NUMA_NO_NODE, PAGE_KERNEL);
    if (addr === 0) throw new KernelBug(`catalog_vb_purge: vm_map_ram #${i} failed`);
    live.push([addr, size]);
    used += size;
    n++;
  });
  unmapAll();
  for (let i = 0; i < count; i++) __free_page(I32[(pages >> 2) + i]!);
  kfree(pages);
  return n;
});

/** Pages of each catalog_vmallocinfo area: a page array being filled in for a while. */
const VMALLOCINFO_PAGES = 8;

/**
 * catalog_vmallocinfo ("vmallocinfo-uninitialized"): CPU 0 vmallocs and
 * vfrees VMALLOCINFO_PAGES pages per operation; the other CPUs read a
 * CONFIG_NUMA /proc/vmallocinfo, whose show_numa_info walks each area's page
 * array. Returns the lines read (CPU 0: the areas made).
 */
defineWorkload("catalog_vmallocinfo", (a: CatalogArgs, ctx): number => {
  let n = 0;
  if (ctx.cpu !== 0) {
    forEachOp(a, () => {
      n += vmallocinfo({ numa: true }).length;
    });
    return n;
  }
  forEachOp(a, (i) => {
    const p = vmalloc(VMALLOCINFO_PAGES * PAGE_SIZE);
    if (p === 0) throw new KernelBug(`catalog_vmallocinfo: vmalloc #${i} failed`);
    stamp(p, ctx.cpu, i);
    vfree(p);
    n++;
  });
  return n;
});

/**
 * The client's object type: what a driver registers for an object (a timer,
 * a work item) that lives in memory it vmalloc'ed. Its fixup_free, as
 * lib/debugobjects.c's selftest type's, deactivates and untracks an object
 * freed while active.
 */
const catalog_client_descr: number = defineDebugObjDescr({
  name: "catalog_client",
  fixup_free: (addr, state) => {
    if (state !== ODEBUG_STATE_ACTIVE) return false;
    debug_object_deactivate(addr, catalog_client_descr);
    debug_object_free(addr, catalog_client_descr);
    return true;
  },
});

/** catalog_debug_objects_boot: the `debug_objects` boot parameter (the tracker is off by default). */
defineWorkload("catalog_debug_objects_boot", () => enable_object_debug());

/** Pages of each catalog_debugobjects area. */
const DEBUGOBJECTS_PAGES = 8;
/** The client's object: the last bytes of its area (a driver struct's timer or work item, say). */
const CLIENT_OBJ_SIZE = 64;

/**
 * catalog_debugobjects ("vunmap-debugobjects"): CPU 0 vmallocs and vfrees
 * DEBUGOBJECTS_PAGES pages per operation. The other CPUs are the client, a
 * driver that keeps a buffer of the same size with a tracked object at its
 * end: per operation it calls vm_unmap_aliases (the lazy purge that makes
 * freed ranges reusable), vmallocs a new buffer and initialises and
 * activates its object, then retires the previous buffer (deactivate, free,
 * vfree). Returns the operations done.
 */
defineWorkload("catalog_debugobjects", (a: CatalogArgs, ctx): number => {
  const size = DEBUGOBJECTS_PAGES * PAGE_SIZE;
  const obj = (buf: number) => buf + size - CLIENT_OBJ_SIZE;
  const retire = (buf: number) => {
    debug_object_deactivate(obj(buf), catalog_client_descr);
    debug_object_free(obj(buf), catalog_client_descr);
    vfree(buf);
  };
  let n = 0;
  let held = 0;
  forEachOp(a, (i) => {
    if (ctx.cpu !== 0) vm_unmap_aliases();
    const p = vmalloc(size);
    if (p === 0) throw new KernelBug(`catalog_debugobjects: vmalloc #${i} failed`);
    stamp(p, ctx.cpu, i);
    n++;
    if (ctx.cpu === 0) {
      vfree(p);
      return;
    }
    debug_object_init(obj(p), catalog_client_descr);
    debug_object_activate(obj(p), catalog_client_descr);
    if (held) retire(held);
    held = p;
  });
  if (held) retire(held);
  return n;
});

/**
 * catalog_align_shift ("huge-align-wrap"): lib/test_vmalloc.c's
 * align_shift_alloc_test per operation — one page aligned to 2^0 …
 * 2^(BITS_PER_LONG - 1) — with __GFP_NOWARN, since the large alignments are
 * meant to fail. Returns the allocations that succeeded.
 */
defineWorkload("catalog_align_shift", (a: CatalogArgs): number => {
  const bitsPerLong = layoutOf(theArena().config).vaBits > 32 ? 64 : 32;
  let n = 0;
  forEachOp(a, () => {
    for (let shift = 0; shift < bitsPerLong; shift++) {
      const p = __vmalloc_node_range(
        PAGE_SIZE,
        2 ** shift,
        VMALLOC_START,
        VMALLOC_END,
        GFP_KERNEL | __GFP_NOWARN,
        PAGE_KERNEL,
        0,
        NUMA_NO_NODE,
      );
      if (p === 0) continue;
      if (p % 2 ** shift !== 0) throw new KernelBug(`catalog_align_shift: ${p} is not aligned to 2^${shift}`);
      vfree(p);
      n++;
    }
  });
  return n;
});

/**
 * catalog_lazy_reuse ("no-purge-flush"): per operation, vmalloc a page and
 * store to it through this CPU's MMU (its TLB now holds the translation),
 * vfree it, vm_unmap_aliases (the purge, which must flush that translation
 * before the range is reused). Returns the operations done.
 */
defineWorkload("catalog_lazy_reuse", (a: CatalogArgs, ctx): number => {
  let n = 0;
  forEachOp(a, (i) => {
    const p = vmalloc(PAGE_SIZE);
    if (p === 0) throw new KernelBug(`catalog_lazy_reuse: vmalloc #${i} failed`);
    if (isFault(mmuWrite(p, new Uint8Array(Int32Array.of(ctx.cpu, i).buffer)))) return;
    vfree(p);
    vm_unmap_aliases();
    n++;
  });
  return n;
});

/**
 * catalog_irq_vfree ("irq-vfree-not-deferred"): per operation, vmalloc a
 * page, then vfree it from an interrupt handler on this CPU (the deferred
 * path); at the end, this CPU's kworker runs the deferred frees still
 * queued. Returns the operations done.
 */
defineWorkload("catalog_irq_vfree", (a: CatalogArgs, ctx): number => {
  let n = 0;
  forEachOp(a, (i) => {
    const p = vmalloc(PAGE_SIZE);
    if (p === 0) throw new KernelBug(`catalog_irq_vfree: vmalloc #${i} failed`);
    stamp(p, ctx.cpu, i);
    runInIrq(() => vfree(p));
    n++;
  });
  run_pending_work();
  return n;
});

/** Areas catalog_vread allocates per operation, and the pages of each. */
const VREAD_AREAS = 4;
const VREAD_AREA_PAGES = 8;

/**
 * catalog_vread: per operation, vmalloc VREAD_AREAS areas of
 * VREAD_AREA_PAGES pages, stamp each, vread the whole span from the lowest
 * to the end of the highest — a read that walks several areas, and from
 * v6.9 on several vmap nodes (each 16-page zone of the address space hashes
 * to one) — check that every stamp reads back, and vfree them. Returns the
 * bytes read.
 */
defineWorkload("catalog_vread", (a: CatalogArgs, ctx): number => {
  const size = VREAD_AREA_PAGES * PAGE_SIZE;
  let n = 0;
  forEachOp(a, (i) => {
    const areas: number[] = [];
    for (let k = 0; k < VREAD_AREAS; k++) {
      const p = vmalloc(size);
      if (p === 0) throw new KernelBug(`catalog_vread: vmalloc #${i}.${k} failed`);
      stamp(p, ctx.cpu, i * VREAD_AREAS + k);
      areas.push(p);
    }
    const lo = Math.min(...areas);
    const span = Math.max(...areas) + size - lo;
    const buf = new Uint8Array(span);
    n += vread(buf, lo, span);
    const words = new Int32Array(buf.buffer);
    areas.forEach((p, k) => {
      const at = (p - lo) >> 2;
      if (words[at] !== ctx.cpu || words[at + 1] !== i * VREAD_AREAS + k)
        throw new KernelBug(
          `catalog_vread: vread of ${p - lo} bytes into the span missed the stamp of area #${i}.${k}`,
        );
    });
    for (const p of areas) vfree(p);
  });
  return n;
});

/** The unit of catalog_pcpu_groups' chunk shapes: larger than any hole the boot areas leave. */
const PCPU_GROUP_UNIT = 1 << 20;

/**
 * One percpu chunk of a two-node machine, as pcpu_create_chunk asks for it:
 * pcpu_get_vm_areas of its groups' offsets and sizes, PAGE_SIZE-aligned; a
 * failure is pcpu_alloc's warning (mm/percpu.c, "failed to allocate new chunk").
 */
function pcpuGroupChunk(offsets: readonly number[], sizes: readonly number[]): number {
  const vms = pcpu_get_vm_areas(offsets, sizes, offsets.length, PAGE_SIZE);
  if (vms === 0)
    reportBug(
      "WARN",
      `percpu: allocation failed, size=${sizes[0]} align=${PAGE_SIZE} atomic=0, failed to allocate new chunk`,
    );
  return vms;
}

/**
 * catalog_pcpu_groups ("pvm-search-criteria"): per operation, two percpu
 * chunks of a two-group (two-node) machine, the second shaped so that its
 * first group's end falls in the first chunk's busy area while a hole of
 * the first chunk fits its last group: the top-down search must lower the
 * base within the free area below that busy area. Both chunks are freed and
 * purged again. Returns the chunks made.
 */
defineWorkload("catalog_pcpu_groups", (a: CatalogArgs): number => {
  const u = PCPU_GROUP_UNIT;
  let n = 0;
  forEachOp(a, () => {
    // Groups at [top-12u, top-8u) and [top-4u, top): the hole between them is 4u.
    const first = pcpuGroupChunk([0, 8 * u], [4 * u, 4 * u]);
    if (first === 0) return;
    n++;
    // Group 1 fits the hole; group 0, 6u below, ends inside the first chunk's group 0.
    const second = pcpuGroupChunk([0, 6 * u], [2 * u, 2 * u]);
    if (second !== 0) {
      n++;
      pcpu_free_vm_areas(second, 2);
    }
    pcpu_free_vm_areas(first, 2);
    vm_unmap_aliases();
  });
  return n;
});

/**
 * catalog_vb_full ("vb-full-not-flushed"): per operation, fill one vmap
 * block with vm_map_ram (VMAP_BBMAP_BITS / VMAP_MAX_ALLOC mappings of the
 * same VMAP_MAX_ALLOC pages: the block leaves its free list), store through
 * the first mapping (this CPU's TLB caches it), vm_unmap_ram it (its range
 * is dirty, the block still in use), then vm_unmap_aliases — after which, as
 * its kerneldoc promises, no CPU may keep a translation of that range: the
 * pages' owner is free to reuse them. A translation that survives is reported
 * as stale-tlb. Then it unmaps the rest. Returns the mappings made.
 */
defineWorkload("catalog_vb_full", (a: CatalogArgs, ctx): number => {
  const count = VMAP_MAX_ALLOC;
  const pages = vmapPageArray(count, "catalog_vb_full");
  let n = 0;
  forEachOp(a, (i) => {
    const mapped: number[] = [];
    for (let k = 0; k < VMAP_BBMAP_BITS / count; k++) {
      const addr = vm_map_ram(pages, count, NUMA_NO_NODE, PAGE_KERNEL);
      if (addr === 0) throw new KernelBug(`catalog_vb_full: vm_map_ram #${i}.${k} failed`);
      mapped.push(addr);
      n++;
    }
    const first = mapped.shift()!;
    stamp(first, ctx.cpu, i);
    vm_unmap_ram(first, count);
    vm_unmap_aliases();
    const pfn = staleTranslation(first);
    if (pfn >= 0)
      reportBug(
        "stale-tlb",
        `CPU${ctx.cpu}: vm_unmap_aliases returned, but the TLB still translates the unmapped virtual address ` +
          `${formatKaddr(layoutOf(theArena().config), first)} to pfn ${pfn} (0x${pfn.toString(16)}): an alias of a page its owner may reuse`,
      );
    for (const addr of mapped) vm_unmap_ram(addr, count);
  });
  for (let i = 0; i < count; i++) __free_page(I32[(pages >> 2) + i]!);
  kfree(pages);
  return n;
});

/**
 * catalog_vb_fragment ("vb-purge-wrong-vbq"): CPU 0 first fills one block
 * and keeps it (so the blocks it makes next hash to the other CPUs' xarray
 * slots too), then fills each next block with vm_map_ram — VMAP_MAX_ALLOC
 * pages at a time, half as many last — until the next request no longer
 * fits, unmaps them all, leaving the block fragmented (free <
 * VMAP_PURGE_THRESHOLD, the rest dirty), and its next request makes a new
 * block join its queue behind it. The other CPUs call vm_unmap_aliases
 * (PURGES_PER_OP times an operation), which purges the fragmented blocks of
 * every xarray. Returns the mappings made (0 on the other CPUs).
 */
defineWorkload("catalog_vb_fragment", (a: CatalogArgs, ctx): number => {
  if (ctx.cpu !== 0) {
    forEachOp(a, () => {
      for (let k = 0; k < PURGES_PER_OP; k++) vm_unmap_aliases();
    });
    return 0;
  }
  const count = VMAP_MAX_ALLOC;
  const pages = vmapPageArray(count, "catalog_vb_fragment");
  const map = (size: number, what: string) => {
    const addr = vm_map_ram(pages, size, NUMA_NO_NODE, PAGE_KERNEL);
    if (addr === 0) throw new KernelBug(`catalog_vb_fragment: vm_map_ram ${what} failed`);
    return addr;
  };
  const anchor = Array.from({ length: VMAP_BBMAP_BITS / count }, (_, k) => map(count, `anchor #${k}`));
  const live: [number, number][] = [];
  let used = 0;
  let n = 0;
  forEachOp(a, (i) => {
    if (used + count > VMAP_BBMAP_BITS) {
      for (const [addr, size] of live) vm_unmap_ram(addr, size);
      live.length = 0;
      used = 0;
    }
    // The last request of a block is half size: the block keeps half of VMAP_MAX_ALLOC free, too little for the next.
    const size = used + 2 * count > VMAP_BBMAP_BITS ? count >> 1 : count;
    live.push([map(size, `#${i}`), size]);
    used += size;
    n++;
  });
  for (const [addr, size] of live) vm_unmap_ram(addr, size);
  for (const addr of anchor) vm_unmap_ram(addr, count);
  for (let i = 0; i < count; i++) __free_page(I32[(pages >> 2) + i]!);
  kfree(pages);
  return n;
});
