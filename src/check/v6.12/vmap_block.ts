/**
 * The invariants of v6.12's per-CPU kva allocator (src/mm/v6.12/vmap_block.ts),
 * checked read-only while every CPU is parked (no lock is taken):
 *
 * - every block sits in exactly one xarray, the one addr_to_vb_xa hashes its
 *   address to, at index addr_to_vb_idx; no index holds two blocks;
 * - its vmap_area is one VMAP_BLOCK_SIZE-aligned VMAP_BLOCK_SIZE, flags
 *   VMAP_RAM | VMAP_BLOCK, no vm_struct; vb->cpu is a possible CPU;
 * - free + dirty + (pages set in used_map) = VMAP_BBMAP_BITS, a block is
 *   never all dirty (vb_free frees it then); used_map's bits all lie in the
 *   carved part [0, VMAP_BBMAP_BITS - free);
 * - the dirty range is empty (BITS, 0) when nothing is dirty, else inside
 *   the carved part;
 * - a block is on vb->cpu's free list iff free > 0, on no other list, and
 *   every listed block is in an xarray;
 * - the pages neither handed out nor in use (not in used_map) are unmapped.
 *
 * A violation is one line: the block (its kernel address) and what is wrong.
 */
import { F64, I32 } from "../../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { theArena } from "../../shared/arena.js";
import { formatKaddr } from "../../shared/layouts.js";
import { for_each_possible_cpu } from "../../percpu/percpu.js";
import { find_next_bit } from "../../lib/bitmap.js";
import { kernel_pte_lookup } from "../../mm/pgtable.js";
import { VMAP_AREA, VMAP_BLOCK as VMAP_BLOCK_FLAG, VMAP_FLAGS_MASK, VMAP_RAM } from "../../mm/v6.12/vmalloc.js";
import {
  VMAP_BBMAP_BITS,
  VMAP_BLOCK,
  VMAP_BLOCK_QUEUE,
  VMAP_BLOCK_SIZE,
  addr_to_vb_idx,
  addr_to_vb_xa,
  forEachVmapBlock,
  queuedVmapBlocks,
  vbUsedPages,
  vmap_block_queue,
} from "../../mm/v6.12/vmap_block.js";
import { per_cpu_ptr } from "../../shared/smp.js";

const B = VMAP_BLOCK.off;
const VA = VMAP_AREA.off;

/** checkVmapBlocks (v6.12 blocks): the violations of the invariants above, none when all hold. */
export function checkVmapBlocks(): string[] {
  const layout = layoutOf(theArena().config);
  const errs: string[] = [];
  const cpus = for_each_possible_cpu();

  // Which list holds each block.
  const listedOn = new Map<number, number[]>();
  for (const cpu of cpus) for (const vb of queuedVmapBlocks(cpu)) listedOn.set(vb, [...(listedOn.get(vb) ?? []), cpu]);

  const seen = new Map<number, string>();
  forEachVmapBlock((slot, idx, vb) => {
    const va = I32[(vb + B.va) >> 2]!;
    const start = F64[(va + VA.va_start) >> 3]!;
    const end = F64[(va + VA.va_end) >> 3]!;
    const at = `block ${formatKaddr(layout, start)}`;
    const here = `slot ${slot} index ${idx}`;
    const before = seen.get(vb);
    if (before !== undefined) {
      errs.push(`${at}: in two xarrays (${before} and ${here})`);
      return;
    }
    seen.set(vb, here);

    const want = addr_to_vb_xa(start);
    if (want !== per_cpu_ptr(vmap_block_queue, slot) + VMAP_BLOCK_QUEUE.off.vmap_blocks)
      errs.push(`${at}: in the xarray of slot ${slot}, addr_to_vb_xa hashes it elsewhere`);
    if (idx !== addr_to_vb_idx(start)) errs.push(`${at}: at index ${idx}, addr_to_vb_idx is ${addr_to_vb_idx(start)}`);

    if (start % VMAP_BLOCK_SIZE !== 0 || end - start !== VMAP_BLOCK_SIZE)
      errs.push(`${at}: area is not one aligned VMAP_BLOCK_SIZE (${VMAP_BLOCK_SIZE})`);
    const flags = I32[(va + VA.flags) >> 2]! & VMAP_FLAGS_MASK;
    if (flags !== (VMAP_RAM | VMAP_BLOCK_FLAG)) errs.push(`${at}: area flags ${flags}, not VMAP_RAM|VMAP_BLOCK`);
    if (I32[(va + VA.vm) >> 2] !== 0) errs.push(`${at}: its vmap_area has a vm_struct`);
    const cpu = I32[(vb + B.cpu) >> 2]!;
    if (!cpus.includes(cpu)) errs.push(`${at}: vb->cpu ${cpu} is not a possible CPU`);

    const free = I32[(vb + B.free) >> 2]!;
    const dirty = I32[(vb + B.dirty) >> 2]!;
    const used = vbUsedPages(vb);
    const carved = VMAP_BBMAP_BITS - free;
    if (free < 0 || dirty < 0 || dirty >= VMAP_BBMAP_BITS || free + dirty + used !== VMAP_BBMAP_BITS)
      errs.push(`${at}: free ${free} + dirty ${dirty} + used ${used} of ${VMAP_BBMAP_BITS}`);
    const map = vb + B.used_map;
    if (find_next_bit(map, VMAP_BBMAP_BITS, carved) < VMAP_BBMAP_BITS)
      errs.push(`${at}: used_map has page ${find_next_bit(map, VMAP_BBMAP_BITS, carved)} past the carved ${carved}`);

    const dmin = I32[(vb + B.dirty_min) >> 2]!;
    const dmax = I32[(vb + B.dirty_max) >> 2]!;
    const emptyRange = dmin === VMAP_BBMAP_BITS && dmax === 0;
    if (dirty === 0 ? !emptyRange : !emptyRange && (dmin < 0 || dmin >= dmax || dmax > carved))
      errs.push(`${at}: dirty range [${dmin}, ${dmax}) with dirty ${dirty}, carved ${carved}`);

    const lists = listedOn.get(vb) ?? [];
    if (lists.length > 1) errs.push(`${at}: on the free lists of CPUs ${lists.join(", ")}`);
    if (free > 0 && !(lists.length === 1 && lists[0] === cpu))
      errs.push(`${at}: free ${free} but not on CPU ${cpu}'s free list`);
    if (free === 0 && lists.length > 0) errs.push(`${at}: free 0 but on the free list of CPU ${lists[0]}`);

    // A page not handed out, or handed out and given back, has no PTE.
    for (let i = 0; i < VMAP_BBMAP_BITS; i++) {
      if (i < carved && I32[(map >> 2) + (i >>> 5)]! & (1 << (i & 31))) continue;
      if (kernel_pte_lookup(start + i * PAGE_SIZE) !== 0) {
        errs.push(`${at}: page ${i} is mapped but ${i < carved ? "not in used_map" : "was never handed out"}`);
        break;
      }
    }
  });

  for (const vb of listedOn.keys()) if (!seen.has(vb)) errs.push(`listed block ${vb} is in no xarray`);
  return errs;
}
