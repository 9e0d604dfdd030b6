/**
 * The invariant checkers (src/check): after real workloads every invariant
 * holds, and each one can fail — the arena is corrupted on purpose and the
 * violation naming that invariant and that object must appear.
 *
 * The corruption tests run kernel code on the main thread (CPU 0) of a 1-CPU,
 * 16 MiB arm64-va48 machine with this scene (g = guard page):
 *
 *   0xffff0000080 00000   01000   02000   03000   04000   05000   06000   07000
 *                [ a       a       g     ][ b       g     ][ c       g     ]
 */
import { afterEach, describe, expect, it } from "vitest";
import { F64, I32 } from "../src/shared/arena.js";
import { PAGE_SIZE, makeConfig } from "../src/shared/config.js";
import { KERNEL_LAYOUTS, formatKaddr } from "../src/shared/layouts.js";
import { takeReports } from "../src/shared/report.js";
import { list_move, list_next } from "../src/lib/list.js";
import { RB_NODE, RB_ROOT } from "../src/lib/rbtree.js";
import { atomic_add } from "../src/locks/atomic.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import {
  FREE_AREA,
  NR_PAGETABLE,
  ZONE,
  __free_page,
  alloc_page,
  mod_zone_page_state,
  page_to_pfn,
  zone_normal,
} from "../src/mm/page_alloc.js";
import { set_page_count } from "../src/mm/mm_types.js";
import { PAGE_KERNEL, kernel_ptep_lookup, mk_pte, pte_clear, set_pte } from "../src/mm/pgtable.js";
import { kfree, kmalloc } from "../src/mm/slab.js";
import {
  VMAP_AREA,
  VM_LAZY_FREE,
  VM_MAP,
  VM_STRUCT,
  find_vm_area,
  find_vmap_area,
  free_vmap_cache,
  nr_vmalloc_pages,
  purge_vmap_area_lazy,
  vfree,
  vmStructPage,
  vmalloc,
  vmap,
  vmap_area_list,
  vmap_area_root,
  vmap_lazy_nr,
  vunmap,
  vzalloc,
} from "../src/mm/v4.19/vmalloc.js";
import { vm_map_ram, vm_unmap_ram } from "../src/mm/v4.19/vmap_block.js";
import { checkMachine, checkVmalloc, holdHarnessPages, releaseHarnessPages } from "../src/check/index.js";
import { start_kernel } from "../src/workers/boot.js";
import { randomExecOnTwoCpus } from "./helpers/random_exec.js";

const A = 0x8000000; // VMALLOC_START as a kaddr on arm64-va48
const B = A + 0x3000;
const C = A + 0x5000;
const LAYOUT = KERNEL_LAYOUTS["4.19"]["arm64-va48"];
const hex = (kaddr: number) => formatKaddr(LAYOUT, kaddr);
const ptr = (p: number) => `0x${p.toString(16).padStart(8, "0")}`;
/** How the checker names an area. */
const areaName = (va: number, start: number, end: number) => `va ${ptr(va)} [${hex(start)}-${hex(end)})`;

function boot(): void {
  start_kernel(makeConfig({ cpus: 1, memory: 16 * 1024 * 1024, workqueue: "explicit" }));
  percpuCpuOnline();
}

/** The scene of the file header; returns the three vmap_areas. */
function scene(): { a: number; b: number; c: number } {
  boot();
  expect([vmalloc(8192), vmalloc(4096), vmalloc(4096)]).toEqual([A, B, C]);
  expect(checkMachine()).toEqual([]);
  return { a: find_vmap_area(A), b: find_vmap_area(B), c: find_vmap_area(C) };
}

const vmOf = (va: number) => I32[(va + VMAP_AREA.off.vm) >> 2]!;

afterEach(() => {
  takeReports();
});

describe("after real workloads every invariant holds", () => {
  it("on the main thread: vmalloc, vzalloc with a vmalloc'ed page array, vmap, vm_map_ram, lazy frees, purge", () => {
    boot();
    const big = vzalloc(600 * PAGE_SIZE); // 600 * 8 bytes of page pointers: the array is vmalloc'ed ("vpages")
    const small = vmalloc(3 * PAGE_SIZE);
    const gone = vmalloc(PAGE_SIZE);
    vfree(gone); // lazily freed: on vmap_purge_list, counted in vmap_lazy_nr
    // vmap and vm_map_ram map pages their caller owns: the test holds them, as vmsim exec does.
    const pages = kmalloc(5 * 4, GFP_KERNEL);
    for (let i = 0; i < 5; i++) I32[(pages >> 2) + i] = alloc_page(GFP_KERNEL);
    holdHarnessPages(5);
    const mapped = vmap(pages, 2, VM_MAP, PAGE_KERNEL);
    const ram = vm_map_ram(pages + 8, 3, -1, PAGE_KERNEL);
    expect([big, small, mapped, ram].every((x) => x !== 0)).toBe(true);
    expect(checkMachine()).toEqual([]);

    vunmap(mapped);
    vm_unmap_ram(ram, 3);
    vfree(big);
    expect(checkMachine()).toEqual([]);
    purge_vmap_area_lazy();
    vfree(small);
    for (let i = 0; i < 5; i++) __free_page(I32[(pages >> 2) + i]!);
    kfree(pages);
    releaseHarnessPages(5);
    expect(checkMachine()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });

  it("on 2 CPUs running seeded random exec ops at once, some aligned, irq-context vfrees included (seed 11)", async () => {
    await randomExecOnTwoCpus("4.19", 11);
  });
});

describe("each invariant can fail", () => {
  it("rbtree: a red root", () => {
    scene();
    const root = I32[(vmap_area_root.ptr + RB_ROOT.off.rb_node) >> 2]!;
    I32[(root + RB_NODE.off.__rb_parent_color) >> 2] = I32[(root + RB_NODE.off.__rb_parent_color) >> 2]! & ~1;
    expect(checkVmalloc()).toEqual([`rbtree: vmap_area_root: root ${`0x${root.toString(16)}`} is red`]);
  });

  it("list == tree: b moved to the front of vmap_area_list", () => {
    const { a, b } = scene();
    list_move(b + VMAP_AREA.off.list, vmap_area_list.ptr);
    expect(checkVmalloc()).toContain(
      `vmap_area_list: entry 0 is ${areaName(b, B, C)}, the tree's is ${areaName(a, A, B)}`,
    );
  });

  it("list links: a prev pointer that is not the reverse of next", () => {
    const { b } = scene();
    I32[(b + VMAP_AREA.off.list + 4) >> 2] = vmap_area_list.ptr; // b.list.prev = the head
    const first = list_next(vmap_area_list.ptr);
    expect(checkVmalloc()).toContain(
      `vmap_area_list: va ${ptr(first - VMAP_AREA.off.list)} [${hex(A)}-${hex(B)}): next ${ptr(b + VMAP_AREA.off.list)} has prev ${ptr(vmap_area_list.ptr)}`,
    );
  });

  it("no overlaps: a grown into b", () => {
    const { a, b } = scene();
    F64[(a + VMAP_AREA.off.va_end) >> 3] = B + PAGE_SIZE;
    expect(checkVmalloc()).toContain(`overlap: ${areaName(a, A, B + PAGE_SIZE)} overlaps ${areaName(b, B, C)}`);
  });

  it("ranges: an area reaching past VMALLOC_END", () => {
    scene();
    const last = find_vmap_area(0x9022000); // the kernel image's .data/.bss, the highest area
    F64[(last + VMAP_AREA.off.va_end) >> 3] = LAYOUT.vmallocEnd + PAGE_SIZE;
    expect(checkVmalloc()).toContain(
      `range: ${areaName(last, 0x8f10000, LAYOUT.vmallocEnd + PAGE_SIZE)} is outside [VMALLOC_START, VMALLOC_END) = ` +
        `[${hex(LAYOUT.vmallocStart)}-${hex(LAYOUT.vmallocEnd)}) and the modules area [${hex(0)}-${hex(A)})`,
    );
  });

  it("vm_struct: vm->size that is not the area's", () => {
    const { b } = scene();
    const vm = vmOf(b);
    F64[(vm + VM_STRUCT.off.size) >> 3] = 3 * PAGE_SIZE;
    expect(checkVmalloc()).toContain(`vm_struct: ${areaName(b, B, C)} has vm ${ptr(vm)} at ${hex(B)} of 12288 bytes`);
  });

  it("guard page: b's guard page mapped", () => {
    const { b } = scene();
    const page = alloc_page(GFP_KERNEL);
    holdHarnessPages(1);
    set_pte(kernel_ptep_lookup(B + PAGE_SIZE), mk_pte(page, PAGE_KERNEL));
    expect(checkMachine()).toEqual([
      `guard page: ${areaName(b, B, C)}: its guard page ${hex(B + PAGE_SIZE)} is mapped`,
    ]);
  });

  it("mapped PTEs == area pages: a cleared PTE", () => {
    const { a } = scene();
    const pfn = page_to_pfn(vmStructPage(vmOf(a), 1));
    pte_clear(kernel_ptep_lookup(A + PAGE_SIZE));
    expect(checkMachine()).toEqual([
      `PTE: ${areaName(a, A, B)}: page 1 (${hex(A + PAGE_SIZE)}) is not mapped; pages[1] is pfn ${pfn}`,
    ]);
  });

  it("mapped PTEs == area pages: a PTE in no area, and one in an area awaiting the lazy purge", () => {
    const { b } = scene();
    vfree(B);
    const page = alloc_page(GFP_KERNEL);
    holdHarnessPages(1);
    const hole = A + 0x40000;
    set_pte(kernel_ptep_lookup(hole), mk_pte(page, PAGE_KERNEL));
    set_pte(kernel_ptep_lookup(B), mk_pte(page, PAGE_KERNEL));
    const pfn = page_to_pfn(page);
    expect(checkMachine()).toEqual([
      `PTE: ${hex(B)} maps pfn ${pfn} but ${areaName(b, B, C)} was unmapped for the lazy purge`,
      `PTE: ${hex(hole)} maps pfn ${pfn} but lies in no vmap_area`,
    ]);
  });

  it("page refcounts and owners: a vmalloc page with no reference, one page in two areas", () => {
    const { a, b } = scene();
    const page = vmStructPage(vmOf(a), 0);
    const pfn = page_to_pfn(page);
    set_page_count(page, 0);
    expect(checkVmalloc()).toEqual([
      `page: ${areaName(a, A, B)}: pages[0] pfn ${pfn} is refcount 0`,
      `PTE: ${hex(A)} maps pfn ${pfn}, a free page (refcount 0)`,
    ]);
    set_page_count(page, 1);
    const pages = F64[(vmOf(b) + VM_STRUCT.off.pages) >> 3]!;
    const own = I32[pages >> 2]!;
    I32[pages >> 2] = page; // b's pages[0] now names a's first page
    expect(checkVmalloc()).toEqual([
      `PTE: ${areaName(b, B, C)}: page 0 (${hex(B)}) maps pfn ${page_to_pfn(own)}, pages[0] is pfn ${pfn}`,
      `page: pfn ${pfn} backs both ${areaName(a, A, B)} and ${areaName(b, B, C)}`,
    ]);
  });

  it("pages conserved: a leaked page, and a harness page counted that nobody holds", () => {
    scene();
    alloc_page(GFP_KERNEL);
    expect(checkMachine()).toEqual([expect.stringMatching(/^pages conserved: free \d+ .* \(1 unaccounted\)$/)]);
    holdHarnessPages(2);
    expect(checkMachine()).toEqual([
      expect.stringMatching(/^pages conserved: .* \+ harness 2 = \d+, but 4095 pages are managed \(1 counted twice\)$/),
    ]);
  });

  it("buddy lists consistent: nr_free that is not the list's length", () => {
    scene();
    const nrFree = (zone_normal.ptr + ZONE.off.free_area + 3 * FREE_AREA.size + FREE_AREA.off.nr_free) >> 2;
    I32[nrFree] = I32[nrFree]! + 1;
    expect(checkMachine()).toContainEqual(expect.stringMatching(/^buddy lists: order 3: nr_free \d+ but \d+ listed$/));
  });

  it("page tables: NR_PAGETABLE off by one", () => {
    scene();
    mod_zone_page_state(zone_normal.ptr, NR_PAGETABLE, 1);
    expect(checkMachine()).toEqual(["page tables: NR_PAGETABLE is 5, 4 table pages are reachable from swapper_pg_dir"]);
  });

  it("vmap_lazy_nr accounting: a count the purge list does not have, a VM_LAZY_FREE area not queued", () => {
    const { c } = scene();
    vfree(B);
    atomic_add(1, vmap_lazy_nr.ptr);
    expect(checkVmalloc()).toEqual(["vmap_lazy_nr: 3, but the 1 areas on vmap_purge_list span 2 pages"]);
    I32[(c + VMAP_AREA.off.flags) >> 2] = VM_LAZY_FREE;
    expect(checkVmalloc()).toContain(
      `lazy free: ${areaName(c, C, C + 0x2000)} is VM_LAZY_FREE but not on vmap_purge_list`,
    );
  });

  it("nr_vmalloc_pages (meminfo's VmallocUsed) that is not the areas' pages", () => {
    scene();
    atomic_add(1, nr_vmalloc_pages.ptr);
    expect(checkVmalloc()).toEqual(["nr_vmalloc_pages: 5, but VM_ALLOC areas hold 4 pages (meminfo's VmallocUsed)"]);
  });

  it("free_vmap_cache: a node that is no longer in the tree", () => {
    const { b } = scene();
    vfree(B);
    purge_vmap_area_lazy();
    expect(find_vm_area(B)).toBe(0);
    I32[free_vmap_cache.ptr >> 2] = b + VMAP_AREA.off.rb_node;
    expect(checkVmalloc()).toEqual([
      `free_vmap_cache: ${ptr(b + VMAP_AREA.off.rb_node)} is not the rb_node of an area in vmap_area_root`,
    ]);
  });
});
