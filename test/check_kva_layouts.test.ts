/**
 * Generations 2 and 3's checkers (src/check/v5.10, src/check/v6.12) on every
 * address layout: a seeded mix of vmalloc, vmap and vm_map_ram (small ones
 * from the per-CPU vmap blocks, large ones from the KVA allocator), freed in
 * random order from CPUs taken in turn, checked every 100 operations, after
 * a purge and after everything is freed. The KVA space the checkers tile is
 * [1, ULONG_MAX) of each layout: 2^64 on arm64 (va48, va39), 2^32 on arm32.
 */
import { afterEach, describe, expect, it } from "vitest";
import { I32 } from "../src/shared/arena.js";
import { makeConfig } from "../src/shared/config.js";
import { Prng } from "../src/shared/prng.js";
import { takeReports } from "../src/shared/report.js";
import { setCurrentCpu } from "../src/shared/smp.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { __free_page, alloc_page } from "../src/mm/page_alloc.js";
import { PAGE_KERNEL } from "../src/mm/pgtable.js";
import { kfree, kmalloc } from "../src/mm/slab.js";
import { purge_vmap_area_lazy, vfree, vm_map_ram, vm_unmap_ram, vmalloc, vmap, vunmap } from "../src/mm/vmalloc.js";
import { VM_MAP } from "../src/mm/vmalloc_generation.js";
import { checkMachine, holdHarnessPages, releaseHarnessPages } from "../src/check/index.js";
import { start_kernel } from "../src/workers/boot.js";

/** A live mapping: its address, how it was made, its page count. */
type Live = readonly [addr: number, kind: "vmalloc" | "vmap" | "vm_map_ram", pages: number];

function release([addr, kind, pages]: Live): void {
  if (kind === "vmalloc") vfree(addr);
  else if (kind === "vmap") vunmap(addr);
  else vm_unmap_ram(addr, pages);
}

afterEach(() => {
  takeReports();
});

describe("the KVA checkers hold after a seeded mixed workload", () => {
  for (const kernel of ["5.10", "6.12"] as const)
    for (const layout of ["arm64-va48", "arm64-va39", "arm32"] as const)
      for (const cpus of [1, 3])
        it(`${kernel} on ${layout}, ${cpus} CPU${cpus > 1 ? "s" : ""}`, () => {
          start_kernel(makeConfig({ kernel, layout, cpus, memory: 32 * 1024 * 1024, workqueue: "explicit" }));
          percpuCpuOnline();
          // vmap and vm_map_ram map pages their caller owns: the test holds 64, as vmsim exec does.
          const pages = kmalloc(64 * 4, GFP_KERNEL);
          for (let i = 0; i < 64; i++) I32[(pages >> 2) + i] = alloc_page(GFP_KERNEL);
          holdHarnessPages(64);
          const rng = new Prng(3, cpus);
          const live: Live[] = [];
          for (let i = 0; i < 600; i++) {
            if (i % 30 === 0) setCurrentCpu(rng.int(0, cpus - 1));
            if (live.length > 0 && rng.chance(0.45)) release(live.splice(rng.int(0, live.length - 1), 1)[0]!);
            else {
              const r = rng.next();
              const n = rng.int(1, r < 0.8 ? 8 : 40);
              const addr =
                r < 0.6
                  ? vmalloc(rng.int(1, 100_000))
                  : r < 0.8
                    ? vmap(pages, n, VM_MAP, PAGE_KERNEL)
                    : vm_map_ram(pages, n, -1, PAGE_KERNEL);
              if (addr !== 0) live.push([addr, r < 0.6 ? "vmalloc" : r < 0.8 ? "vmap" : "vm_map_ram", n]);
            }
            if (i % 100 === 99) expect(checkMachine()).toEqual([]);
          }
          purge_vmap_area_lazy();
          expect(checkMachine()).toEqual([]);
          for (const l of live) release(l);
          purge_vmap_area_lazy();
          expect(checkMachine()).toEqual([]);
          for (let i = 0; i < 64; i++) __free_page(I32[(pages >> 2) + i]!);
          kfree(pages);
          releaseHarnessPages(64);
          expect(checkMachine()).toEqual([]);
          expect(takeReports()).toEqual([]);
        });
});
