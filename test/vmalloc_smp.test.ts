/**
 * vmalloc on 2 and 4 CPUs: seeded random vmalloc/vzalloc/vfree mixes
 * (workload vmalloc_random: remote frees, frees from interrupt context and
 * vfree_atomic), then the structures are walked while the CPUs are parked:
 * tree order == list order, no overlap, flags and vm_struct links
 * consistent, vmap_lazy_nr == the lazily freed pages, every page accounted
 * for, and no report (WARN, fault, stale TLB, lockdep) on any CPU.
 */
import { afterEach, describe, expect, it } from "vitest";
import { F64, I32 } from "../src/shared/arena.js";
import { PAGE_SIZE } from "../src/shared/config.js";
import { Machine } from "../src/workers/machine.js";
import type { VmallocRandomResult } from "../src/workers/workloads/vmalloc.js";
import { tlbStats } from "../src/mm/tlbflush.js";
import { list_next } from "../src/lib/list.js";
import {
  NR_PAGETABLE,
  NR_SLAB_UNRECLAIMABLE,
  free_pcp_pages,
  global_zone_page_state,
  nr_free_pages,
  totalram_pages,
} from "../src/mm/page_alloc.js";
import {
  VMALLOC_END,
  VMALLOC_START,
  VMAP_AREA,
  VM_LAZY_FREE,
  VM_STRUCT,
  VM_VM_AREA,
  forEachVmapArea,
  get_vmalloc_info,
  vmap_area_list,
  vmap_lazy_nr_read,
} from "../src/mm/v4.19/vmalloc.js";

const P = PAGE_SIZE;
const A = VMAP_AREA.off;
const S = VM_STRUCT.off;

/** The structure walk of the invariant checks (docs/architecture.md) that vmalloc-core can do on its own; [] when consistent. */
function checkVmapAreas(): string[] {
  const errs: string[] = [];
  const tree: number[] = [];
  forEachVmapArea((va) => tree.push(va));
  const list: number[] = [];
  const head = vmap_area_list.ptr;
  for (let e = list_next(head); e !== head && list.length <= tree.length; e = list_next(e)) list.push(e - A.list);
  if (list.join() !== tree.join()) errs.push(`list (${list.length}) != in-order tree walk (${tree.length})`);
  let prevEnd = 0;
  let lazy = 0;
  for (const va of tree) {
    const start = F64[(va + A.va_start) >> 3]!;
    const end = F64[(va + A.va_end) >> 3]!;
    const flags = I32[(va + A.flags) >> 2]!;
    const at = `area 0x${start.toString(16)}-0x${end.toString(16)}`;
    if (!(start < end) || start % P || end % P) errs.push(`${at}: bad bounds`);
    if (start < prevEnd) errs.push(`${at}: overlaps the area before it`);
    if (start < VMALLOC_START || end > VMALLOC_END) errs.push(`${at}: outside the vmalloc area`);
    prevEnd = end;
    if (flags & VM_LAZY_FREE) {
      lazy += (end - start) / P;
      if (flags & VM_VM_AREA) errs.push(`${at}: both VM_LAZY_FREE and VM_VM_AREA`);
    } else if (flags & VM_VM_AREA) {
      const vm = I32[(va + A.vm) >> 2]!;
      if (F64[(vm + S.addr) >> 3] !== start || F64[(vm + S.size) >> 3] !== end - start)
        errs.push(`${at}: its vm_struct says 0x${F64[(vm + S.addr) >> 3]!.toString(16)}+${F64[(vm + S.size) >> 3]}`);
    }
  }
  if (lazy !== vmap_lazy_nr_read()) errs.push(`vmap_lazy_nr ${vmap_lazy_nr_read()} != ${lazy} lazily freed pages`);
  const free = nr_free_pages() + free_pcp_pages();
  const slab = global_zone_page_state(NR_SLAB_UNRECLAIMABLE);
  const tables = global_zone_page_state(NR_PAGETABLE);
  const vmalloced = get_vmalloc_info().VmallocUsed / (P / 1024);
  if (free + slab + tables + vmalloced !== totalram_pages())
    errs.push(`pages: ${free} free + ${slab} slab + ${tables} tables + ${vmalloced} vmalloc != ${totalram_pages()}`);
  return errs;
}

let m: Machine | undefined;
afterEach(async () => {
  await m?.shutdown();
  m = undefined;
});

describe.each([
  { cpus: 2, seed: 0x5eed2, layout: "arm64-va48" },
  { cpus: 4, seed: 0x5eed4, layout: "arm64-va48" },
  { cpus: 2, seed: 0x5eed32, layout: "arm32" },
] as const)("vmalloc_random on $cpus CPUs ($layout), seed $seed", ({ cpus, seed, layout }) => {
  it("ends with a consistent tree and list, no overlap, every page accounted for", async () => {
    m = await Machine.boot({ cpus, seed, layout });
    const results = (await m.runAll("vmalloc_random", { iters: 1500 })) as VmallocRandomResult[];
    // Not vacuous: every CPU allocated, freed through both paths, and lazy purges (TLB flushes) ran.
    expect(results.every((r) => r.allocs === 1500 && r.frees > 1400 && r.deferred > 300)).toBe(true);
    const t = tlbStats();
    expect(t.flushRange + t.flushAll).toBeGreaterThan(0);
    await m.runAll("vmalloc_drain", {});
    // Mid-run state: live and lazily freed areas side by side.
    expect(checkVmapAreas()).toEqual([]);

    await m.run(0, "vmalloc_random_release");
    await m.runAll("vmalloc_drain", {});
    await m.run(0, "vmalloc_drain", { purge: true });
    expect(checkVmapAreas()).toEqual([]);
    expect(vmap_lazy_nr_read()).toBe(0);
    expect(get_vmalloc_info().VmallocUsed).toBe(0);
    // Only the boot-time areas (arm64: the kernel image's five segments) are left.
    const left: number[] = [];
    forEachVmapArea((va) => left.push(I32[(va + A.flags) >> 2]!));
    expect(left.length).toBe(layout === "arm32" ? 0 : 5);
    expect(m.reports).toEqual([]);
  });
});
