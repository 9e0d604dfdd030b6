/**
 * Page-table and TLB workloads: map, unmap, flush and access kernel addresses
 * from a chosen CPU (the stale-TLB sequences of test/tlb.test.ts), and the
 * table-population race of test/pgtable.test.ts.
 */
import { DEFINE_GLOBAL, I32 } from "../../shared/arena.js";
import { PAGE_SIZE } from "../../shared/config.js";
import { type SP, SP_LOCK, addSchedSlowPath, removeSchedSlowPath } from "../../sched/sched_point.js";
import { GFP_KERNEL } from "../../mm/gfp.js";
import { __free_page, alloc_page, page_address } from "../../mm/page_alloc.js";
import { PAGE_KERNEL, PAGE_KERNEL_RO, vmap_page_range, vunmap_page_range } from "../../mm/pgtable.js";
import { flush_tlb_all, flush_tlb_kernel_range } from "../../mm/tlbflush.js";
import { mmuRead, mmuWrite } from "../../mm/mmu.js";
import { BARRIER, barrierWait } from "../barrier.js";
import { defineWorkload } from "../workload.js";

/** alloc_page(GFP_KERNEL), or an exception: these workloads do not test allocation failure. */
function allocPage(): number {
  const page = alloc_page(GFP_KERNEL);
  if (!page) throw new Error("pgtable workload: out of memory");
  return page;
}

/** Allocates `nr` pages and maps them at `start`; returns the pages, or the error. */
defineWorkload("pgtable_map", (a: { start: number; nr: number; ro?: boolean }) => {
  if (a.nr > PAGE_SIZE / 4) throw new RangeError("pgtable_map: at most 1024 pages (one pages array page)");
  // A page serves as the area->pages array (int32 struct page pointers).
  const arrPage = allocPage();
  const arr = page_address(arrPage);
  const pages: number[] = [];
  for (let i = 0; i < a.nr; i++) {
    const p = allocPage();
    I32[(arr >> 2) + i] = p;
    pages.push(p);
  }
  const r = vmap_page_range(a.start, a.start + a.nr * PAGE_SIZE, a.ro ? PAGE_KERNEL_RO : PAGE_KERNEL, arr);
  __free_page(arrPage);
  return r < 0 ? { error: r } : { pages };
});

/** vunmap_page_range without a flush (the lazy half of vunmap). */
defineWorkload("pgtable_unmap", (a: { start: number; end: number }) => {
  vunmap_page_range(a.start, a.end);
});

/** flush_tlb_kernel_range, or flush_tlb_all when `all`. */
defineWorkload("pgtable_flush", (a: { start: number; end: number; all?: boolean }) => {
  if (a.all) flush_tlb_all();
  else flush_tlb_kernel_range(a.start, a.end);
});

/** A load through the MMU on this CPU: the bytes, or the Fault. */
defineWorkload("pgtable_read", (a: { kaddr: number; len: number }) => mmuRead(a.kaddr, a.len));

/** A store through the MMU on this CPU: true, or the Fault. */
defineWorkload("pgtable_write", (a: { kaddr: number; bytes: Uint8Array }) => mmuWrite(a.kaddr, a.bytes));

/** Where the racing CPUs of pgtable_race meet, once per round. */
const pgtable_barrier = DEFINE_GLOBAL("pgtable_barrier", BARRIER);

/* The lockstep hook of pgtable_race: armed before a map, it stops this CPU at its first lock attempt until every racing CPU is at its own. */
let lockstepCpus = 0;
let lockstepArmed = false;
function lockstep(kind: SP): void {
  if (kind !== SP_LOCK || !lockstepArmed) return;
  lockstepArmed = false;
  barrierWait(pgtable_barrier.ptr, lockstepCpus, "pgtable_race");
}

/**
 * The table-population race, forced: in each of `iters` rounds every CPU maps
 * one fresh page into the same region (`span` bytes, a table's reach) whose
 * tables nobody has populated. A sched-point hook holds each CPU at its first
 * lock attempt in vmap_page_range (the zone lock of the table allocation, or
 * init_mm.page_table_lock) until all are there. Every CPU has checked the
 * missing entry before that point and nobody can populate it before taking
 * page_table_lock, so all of them find it empty, allocate a table, and all but
 * one lose the race: at least (cpus - 1) * iters losses. Slots are seeded and
 * disjoint between CPUs. Returns [kaddr, page] of every page this CPU mapped.
 * The hook runs at every sched point (period 1), which stays so on this CPU.
 */
defineWorkload("pgtable_race", (a: { base: number; iters: number; span: number; cpus: number }, ctx) => {
  const prng = ctx.prng();
  const share = Math.floor(512 / a.cpus);
  const mapped: [number, number][] = [];
  const arrPage = allocPage();
  const arr = page_address(arrPage);
  lockstepCpus = a.cpus;
  addSchedSlowPath(lockstep, 1);
  try {
    for (let i = 0; i < a.iters; i++) {
      const page = allocPage();
      I32[arr >> 2] = page;
      const kaddr = a.base + i * a.span + (ctx.cpu * share + prng.int(0, share - 1)) * PAGE_SIZE;
      lockstepArmed = true;
      if (vmap_page_range(kaddr, kaddr + PAGE_SIZE, PAGE_KERNEL, arr) !== 1)
        throw new Error(`pgtable_race: map failed at ${kaddr}`);
      if (lockstepArmed) throw new Error(`pgtable_race: round ${i} allocated no table (region not fresh)`);
      mapped.push([kaddr, page]);
    }
  } finally {
    lockstepArmed = false;
    removeSchedSlowPath(lockstep);
  }
  __free_page(arrPage);
  return mapped;
});
