/**
 * vm_map_ram/vm_unmap_ram workloads: seeded random maps of fresh pages, each
 * parked in a shared slot so that it is usually unmapped by another CPU (a
 * vb_free into a block on another CPU's queue), with a vm_unmap_aliases now
 * and then.
 *
 * Each mapping is a kmalloc'ed record holding its address, its count and its
 * page array. Right after mapping, the mapper stamps every page through the
 * new mapping (mmuWrite: the record and the page index) and checks the stamp
 * arrived in the page it handed in; the unmapper reads the stamps back
 * through the mapping on its own CPU (mmuRead) before vm_unmap_ram, so a
 * mapping pointing at the wrong page, or an address handed out twice, is
 * caught where it happens.
 */
import { DEFINE_GLOBAL, F64, I32 } from "../../shared/arena.js";
import { PAGE_SIZE } from "../../shared/config.js";
import { KernelBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { SP_ATOMIC, sched_point, sched_op_point } from "../../sched/sched_point.js";
import { GFP_KERNEL } from "../../mm/gfp.js";
import { __free_page, alloc_page, page_address } from "../../mm/page_alloc.js";
import { kfree, kmalloc } from "../../mm/slab.js";
import { PAGE_KERNEL } from "../../mm/pgtable.js";
import { isFault, mmuRead, mmuWrite } from "../../mm/mmu.js";
import { rcu_barrier } from "../../rcu/tree.js";
import { VMAP_MAX_ALLOC, vm_map_ram, vm_unmap_aliases, vm_unmap_ram } from "../../mm/vmalloc.js";
import { defineWorkload } from "../workload.js";

/** Shared slots holding parked mappings. */
export const VMAP_BLOCK_STRESS_SLOTS = 128;

const SLOTS = defineStruct("vmap_block_stress_slots", [
  /** A parked mapping record, 0 = empty. */
  { name: "maps", type: "ptr", count: VMAP_BLOCK_STRESS_SLOTS, guard: "atomic" },
]);
const slots = DEFINE_GLOBAL("vmap_block_stress_slots", SLOTS);

/** A mapping record; its page array (count struct page pointers) follows it. */
const MAPPING = defineStruct("vmap_block_stress_mapping", [
  { name: "addr", type: "f64", guard: "owner" },
  { name: "count", type: "i32", guard: "owner" },
]);
const M = MAPPING.off;

/** Largest count beyond VMAP_MAX_ALLOC the stress maps (the alloc_vmap_area path). */
const LARGE_EXTRA = 8;

function stamp(rec: number, i: number): Uint8Array {
  return new Uint8Array(Int32Array.of(rec, i).buffer);
}

/** Frees a record's first `n` pages and the record. */
function freeMapping(rec: number, n: number): void {
  for (let i = 0; i < n; i++) __free_page(I32[((rec + MAPPING.size) >> 2) + i]!);
  kfree(rec);
}

/** Maps `count` fresh pages; the record, or 0 when memory or address space ran out. */
function mapOne(count: number): number {
  const rec = kmalloc(MAPPING.size + 4 * count, GFP_KERNEL);
  if (rec === 0) return 0;
  const pages = rec + MAPPING.size;
  for (let i = 0; i < count; i++) {
    const page = alloc_page(GFP_KERNEL);
    if (page === 0) {
      freeMapping(rec, i);
      return 0;
    }
    I32[(pages >> 2) + i] = page;
  }
  const addr = vm_map_ram(pages, count, -1, PAGE_KERNEL);
  if (addr === 0) {
    freeMapping(rec, count);
    return 0;
  }
  F64[(rec + M.addr) >> 3] = addr;
  I32[(rec + M.count) >> 2] = count;
  for (let i = 0; i < count; i++) {
    const r = mmuWrite(addr + i * PAGE_SIZE, stamp(rec, i));
    const data = page_address(I32[(pages >> 2) + i]!) >> 2;
    if (isFault(r) || I32[data] !== rec || I32[data + 1] !== i)
      throw new KernelBug(`vm_map_ram: page ${i} of the mapping at ${addr} is not the page handed in`);
  }
  return rec;
}

/** Checks a parked mapping's stamps through its mapping on this CPU, unmaps it, frees its pages. */
function unmapOne(rec: number): void {
  const addr = F64[(rec + M.addr) >> 3]!;
  const count = I32[(rec + M.count) >> 2]!;
  for (let i = 0; i < count; i++) {
    const r = mmuRead(addr + i * PAGE_SIZE, 8);
    if (isFault(r)) throw new KernelBug(`mapping at ${addr} faulted at page ${i} before vm_unmap_ram`);
    const w = new Int32Array(r.buffer, r.byteOffset, 2);
    if (w[0] !== rec || w[1] !== i)
      throw new KernelBug(`mapping at ${addr} page ${i} reads stamp (${w[0]}, ${w[1]}), expected (${rec}, ${i})`);
  }
  vm_unmap_ram(addr, count);
  freeMapping(rec, count);
}

export interface VmapBlockStressArgs {
  /** Operations on this CPU. */
  readonly iters: number;
  /** Percent of maps larger than VMAP_MAX_ALLOC (alloc_vmap_area path). @defaultValue 3 */
  readonly largePercent?: number;
  /** Percent of operations that are a vm_unmap_aliases instead. @defaultValue 1 */
  readonly aliasesPercent?: number;
}

export interface VmapBlockStressResult {
  readonly maps: number;
  readonly unmaps: number;
  readonly failures: number;
  readonly aliases: number;
}

/**
 * vmap_block_stress: `iters` operations. A map takes 1 page half the time,
 * 2..4 pages a third of the time, up to VMAP_MAX_ALLOC otherwise (more, now
 * and then); the mapping goes into a random slot and the one it displaces is
 * unmapped here.
 */
defineWorkload("vmap_block_stress", (a: VmapBlockStressArgs, ctx): VmapBlockStressResult => {
  const rnd = ctx.prng(0x766d);
  const largePercent = a.largePercent ?? 3;
  const aliasesPercent = a.aliasesPercent ?? 1;
  const base = (slots.ptr + SLOTS.off.maps) >> 2;
  let maps = 0;
  let unmaps = 0;
  let failures = 0;
  let aliases = 0;
  for (let n = 0; n < a.iters; n++) {
    sched_op_point();
    if (rnd.int(0, 99) < aliasesPercent) {
      vm_unmap_aliases();
      aliases++;
      continue;
    }
    const r = rnd.int(0, 99);
    const count =
      r < largePercent
        ? VMAP_MAX_ALLOC + rnd.int(1, LARGE_EXTRA)
        : r < 50
          ? 1
          : r < 83
            ? rnd.int(2, 4)
            : rnd.int(5, VMAP_MAX_ALLOC);
    const rec = mapOne(count);
    if (rec === 0) {
      failures++;
      continue;
    }
    maps++;
    sched_point(SP_ATOMIC);
    // Publishes the record (and the stamps) to the CPU that takes it from the slot; hands the displaced one over.
    const old = Atomics.exchange(I32, base + rnd.int(0, VMAP_BLOCK_STRESS_SLOTS - 1), rec);
    if (old !== 0) {
      unmapOne(old);
      unmaps++;
    }
  }
  return { maps, unmaps, failures, aliases };
});

/**
 * vmap_block_stress_release: unmaps every parked mapping, then vm_unmap_aliases (which purges the
 * blocks, all fragmented by now, and the lazy areas) and rcu_barrier (which frees them); returns how
 * many it unmapped.
 */
defineWorkload("vmap_block_stress_release", (): number => {
  const base = (slots.ptr + SLOTS.off.maps) >> 2;
  let n = 0;
  for (let i = 0; i < VMAP_BLOCK_STRESS_SLOTS; i++) {
    sched_point(SP_ATOMIC);
    const rec = Atomics.exchange(I32, base + i, 0);
    if (rec !== 0) {
      unmapOne(rec);
      n++;
    }
  }
  vm_unmap_aliases();
  rcu_barrier();
  return n;
});
