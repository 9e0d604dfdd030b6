/**
 * vmalloc-core workloads: seeded random vmalloc/vzalloc/vfree mixes on every
 * CPU, with frees spread over CPUs and contexts (process context, interrupt
 * context — the deferred path — and vfree_atomic).
 *
 * Each allocation is parked in a shared slot; the CPU that allocates swaps
 * its area into a random slot and frees what was there, usually an area
 * another CPU allocated. Every area carries a live mark in its first bytes,
 * stored and checked through this CPU's MMU (page tables + TLB): an area
 * handed out twice, or reached through a stale translation, is caught.
 */
import { DEFINE_GLOBAL, I32 } from "../../shared/arena.js";
import { PAGE_SIZE } from "../../shared/config.js";
import { KernelBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { SP_ATOMIC, sched_point, sched_op_point } from "../../sched/sched_point.js";
import { runInIrq } from "../../kernel/irq.js";
import { run_pending_work } from "../../kernel/workqueue.js";
import { isFault, mmuRead, mmuWrite } from "../../mm/mmu.js";
import { VMALLOC_START, purge_vmap_area_lazy, vfree, vfree_atomic, vmalloc, vzalloc } from "../../mm/vmalloc.js";
import { defineWorkload } from "../workload.js";

/** Shared slots for parked areas. */
export const VMALLOC_RANDOM_SLOTS = 64;

const VMALLOC_RANDOM = defineStruct("vmalloc_random_slots", [
  /** (kaddr - VMALLOC_START) / PAGE_SIZE + 1 of a parked area, 0 = empty. */
  { name: "slot", type: "i32", count: VMALLOC_RANDOM_SLOTS, guard: "atomic" },
]);
const slots = DEFINE_GLOBAL("vmalloc_random_slots", VMALLOC_RANDOM);

/** The live mark: "VMAL" then the allocating CPU and its sequence number. */
const LIVE = 0x4c414d56;

function park(addr: number): number {
  const v = (addr - VMALLOC_START) / PAGE_SIZE + 1;
  if (!(v > 0 && v < 2 ** 31)) throw new KernelBug(`vmalloc_random: area ${addr} beyond the slot encoding`);
  return v;
}

function unpark(v: number): number {
  return VMALLOC_START + (v - 1) * PAGE_SIZE;
}

function word(bytes: Uint8Array, i: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getInt32(4 * i, true);
}

/** Checks and clears the live mark of a parked area, then frees it from context `how`. */
function freeParked(addr: number, how: number): void {
  const got = mmuRead(addr, 8);
  if (isFault(got)) throw new KernelBug(`vmalloc_random: parked area ${addr} does not map`);
  if (word(got, 0) !== LIVE) throw new KernelBug(`vmalloc_random: area ${addr} lost its live mark: handed out twice?`);
  mmuWrite(addr, new Uint8Array(8));
  if (how === 0) vfree(addr);
  else if (how === 1) runInIrq(() => vfree(addr));
  else vfree_atomic(addr);
}

export interface VmallocRandomArgs {
  /** Operations on this CPU. */
  readonly iters: number;
  /** Percent of allocations that are vzalloc (checked zero). @defaultValue 30 */
  readonly zeroPercent?: number;
  /** Percent of frees from interrupt context (deferred to free_work). @defaultValue 20 */
  readonly irqPercent?: number;
}

export interface VmallocRandomResult {
  readonly allocs: number;
  /** Frees of displaced areas, `deferred` of them through vfree_deferred (interrupt context, vfree_atomic). */
  readonly frees: number;
  readonly deferred: number;
  readonly failures: number;
}

/**
 * vmalloc_random: `iters` allocations of 1–4 pages mostly, up to 64
 * sometimes and 513–600 (a vmalloc'ed page array on arm64) rarely, each
 * marked live and swapped into a random slot; the displaced area is checked
 * and freed — by vfree, by vfree in an interrupt, or by vfree_atomic.
 */
defineWorkload("vmalloc_random", (a: VmallocRandomArgs, ctx): VmallocRandomResult => {
  const rnd = ctx.prng(0x766d);
  const zeroPercent = a.zeroPercent ?? 30;
  const irqPercent = a.irqPercent ?? 20;
  const base = slots.ptr >> 2;
  const mark = new Uint8Array(8);
  const view = new DataView(mark.buffer);
  let allocs = 0;
  let frees = 0;
  let deferred = 0;
  let failures = 0;
  for (let n = 0; n < a.iters; n++) {
    sched_op_point();
    const r = rnd.int(0, 99);
    const pages = r < 85 ? rnd.int(1, 4) : r < 98 ? rnd.int(5, 64) : rnd.int(513, 600);
    const zero = rnd.int(0, 99) < zeroPercent;
    const size = pages * PAGE_SIZE - rnd.int(0, PAGE_SIZE - 1);
    const addr = zero ? vzalloc(size) : vmalloc(size);
    if (addr === 0) {
      failures++;
      continue;
    }
    allocs++;
    if (zero) {
      // Its last (up to) 8 bytes: a recycled page that was not zeroed still holds old data there.
      const got = mmuRead(addr + Math.max(0, size - 8), Math.min(8, size));
      if (isFault(got) || got.some((b) => b !== 0))
        throw new KernelBug(`vmalloc_random: vzalloc'ed area ${addr} is not zero at its end`);
    }
    view.setInt32(0, LIVE, true);
    view.setInt32(4, (ctx.cpu << 24) | (n & 0xffffff), true);
    if (isFault(mmuWrite(addr, mark))) throw new KernelBug(`vmalloc_random: new area ${addr} does not map`);
    sched_point(SP_ATOMIC);
    // Publishes the area and its mark to the CPU that takes the slot; hands over the displaced one.
    const old = Atomics.exchange(I32, base + rnd.int(0, VMALLOC_RANDOM_SLOTS - 1), park(addr));
    if (old !== 0) {
      const p = rnd.int(0, 99);
      const how = p < irqPercent ? 1 : p < irqPercent + 10 ? 2 : 0;
      freeParked(unpark(old), how);
      frees++;
      if (how !== 0) deferred++;
    }
  }
  return { allocs, frees, deferred, failures };
});

/** vmalloc_random_release: frees every parked area (on one CPU, after the mix); returns how many. */
defineWorkload("vmalloc_random_release", (): number => {
  const base = slots.ptr >> 2;
  let n = 0;
  for (let i = 0; i < VMALLOC_RANDOM_SLOTS; i++) {
    sched_point(SP_ATOMIC);
    const v = Atomics.exchange(I32, base + i, 0);
    if (v !== 0) {
      freeParked(unpark(v), 0);
      n++;
    }
  }
  return n;
});

/** vmalloc_drain: runs this CPU's pending work (deferred vfrees); with `purge`, then purges the lazy areas. */
defineWorkload("vmalloc_drain", (a: { purge?: boolean }): number => {
  const n = run_pending_work();
  if (a.purge) purge_vmap_area_lazy();
  return n;
});
