/**
 * Generation 2's checker (src/check/v5.10/vmalloc.ts): after real workloads
 * on a `--kernel 5.10` machine every invariant holds, and each one fails
 * when the arena is corrupted on purpose — the violation names that
 * invariant and that object.
 *
 * The corruption tests run kernel code on the main thread (CPU 0) of a
 * 1-CPU, 16 MiB arm64-va48 machine with this scene (g = guard page; F = free):
 *
 *   A       B               C       D
 *   [ a  g ][ b       g    ][ c  g ][ F … (the rest of the KVA space)
 */
import { afterEach, describe, expect, it } from "vitest";
import { F64, I32, per_cpu_ptr, theArena } from "../src/shared/arena.js";
import { PAGE_SIZE, layoutOf, makeConfig } from "../src/shared/config.js";
import { formatKaddr } from "../src/shared/layouts.js";
import { Prng } from "../src/shared/prng.js";
import { takeReports } from "../src/shared/report.js";
import { LLIST_HEAD, llist_next } from "../src/lib/llist.js";
import { list_move, list_next } from "../src/lib/list.js";
import { RB_NODE, RB_ROOT, rb_left, rb_right } from "../src/lib/rbtree.js";
import { atomic_long_add } from "../src/locks/atomic.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { alloc_page, page_to_pfn } from "../src/mm/page_alloc.js";
import { PAGE_KERNEL, kernel_ptep_lookup, mk_pte, set_pte } from "../src/mm/pgtable.js";
import { kfree, kmalloc, slabinfo } from "../src/mm/slab.js";
import { __free_page } from "../src/mm/page_alloc.js";
import {
  purge_vmap_area_lazy,
  vfree,
  vm_map_ram,
  vm_unmap_ram,
  vmalloc,
  vmap,
  vunmap,
  vzalloc,
} from "../src/mm/vmalloc.js";
import { VM_MAP } from "../src/mm/vmalloc_generation.js";
import {
  MODULES_END,
  MODULES_VADDR,
  VMALLOC_END,
  VMALLOC_START,
  VMAP_AREA,
  VM_STRUCT,
  __vmalloc_node,
  compute_subtree_max_size,
  find_vmap_area,
  free_vmap_area_list,
  free_vmap_area_root,
  ne_fit_preload_node,
  va_end,
  va_start,
  va_vm,
  vmap_area_list,
  vmap_lazy_nr,
  vmap_purge_list,
} from "../src/mm/v5.10/vmalloc.js";
import { leakCheck, memorySnapshot } from "../src/check/leak.js";
import { checkMachine, checkVmalloc, holdHarnessPages, releaseHarnessPages } from "../src/check/index.js";
import { start_kernel } from "../src/workers/boot.js";
import { randomExecOnTwoCpus } from "./helpers/random_exec.js";

const VA = VMAP_AREA.off;
const ptr = (p: number) => `0x${p.toString(16).padStart(8, "0")}`;
const hex = (kaddr: number) => formatKaddr(layoutOf(theArena().config), kaddr);
/** How the checker names an area (its current bounds). */
const name = (va: number) => `va ${ptr(va)} [${hex(va_start(va))}-${hex(va_end(va))})`;

function boot(): void {
  start_kernel(makeConfig({ kernel: "5.10", cpus: 1, memory: 16 * 1024 * 1024, workqueue: "explicit" }));
  percpuCpuOnline();
}

/** The scene of the file header. */
function scene(): { a: number; b: number; c: number; A: number; B: number; C: number } {
  boot();
  const A = vmalloc(PAGE_SIZE);
  const B = vmalloc(2 * PAGE_SIZE);
  const C = vmalloc(PAGE_SIZE);
  expect([B - A, C - B]).toEqual([2 * PAGE_SIZE, 3 * PAGE_SIZE]);
  expect(checkMachine()).toEqual([]);
  return { a: find_vmap_area(A), b: find_vmap_area(B), c: find_vmap_area(C), A, B, C };
}

/** The free area containing `addr`. */
function freeAt(addr: number): number {
  for (let e = list_next(free_vmap_area_list.ptr); e !== free_vmap_area_list.ptr; e = list_next(e))
    if (va_start(e - VA.list) <= addr && addr < va_end(e - VA.list)) return e - VA.list;
  throw new Error(`no free area at ${hex(addr)}`);
}

/** Every free node's subtree_max_size recomputed bottom-up, as a correct propagation would leave it. */
function repropagate(): void {
  const visit = (rb: number): void => {
    if (rb === 0) return;
    visit(rb_left(rb));
    visit(rb_right(rb));
    F64[(rb - VA.rb_node + VA.subtree_max_size) >> 3] = compute_subtree_max_size(rb - VA.rb_node);
  };
  visit(I32[(free_vmap_area_root.ptr + RB_ROOT.off.rb_node) >> 2]!);
}

/** Takes the only area off vmap_purge_list and out of vmap_lazy_nr: its range is then in no structure. */
function dropLazy(va: number): void {
  const first = vmap_purge_list.ptr + LLIST_HEAD.off.first;
  expect(I32[first >> 2]).toBe(va + VA.purge_list);
  I32[first >> 2] = llist_next(va + VA.purge_list);
  atomic_long_add(-(va_end(va) - va_start(va)) / PAGE_SIZE, vmap_lazy_nr.ptr);
}

/** The root of the free tree: its subtree_max_size no other node's value depends on. */
function freeRoot(): number {
  return I32[(free_vmap_area_root.ptr + RB_ROOT.off.rb_node) >> 2]! - VA.rb_node;
}

afterEach(() => {
  takeReports();
});

describe("v5.10: after real workloads every invariant holds", () => {
  it("on the main thread: vmalloc, vzalloc with a vmalloc'ed page array, vmap, vm_map_ram, lazy frees, purge", () => {
    boot();
    const big = vzalloc(600 * PAGE_SIZE);
    const small = vmalloc(3 * PAGE_SIZE);
    const gone = vmalloc(PAGE_SIZE);
    vfree(gone);
    const pages = kmalloc(5 * 4, GFP_KERNEL);
    for (let i = 0; i < 5; i++) I32[(pages >> 2) + i] = alloc_page(GFP_KERNEL);
    holdHarnessPages(5);
    const mapped = vmap(pages, 2, VM_MAP, PAGE_KERNEL);
    const ram = vm_map_ram(pages + 8, 3, -1, PAGE_KERNEL);
    const large = vm_map_ram(pages, 5, -1, PAGE_KERNEL);
    expect([big, small, mapped, ram].every((x) => x !== 0)).toBe(true);
    expect(checkMachine()).toEqual([]);

    vunmap(mapped);
    vm_unmap_ram(ram, 3);
    if (large !== 0) vm_unmap_ram(large, 5);
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

  it("on the main thread: seeded vmallocs, aligned ones up to 2 MiB, lazy frees past lazy_max_pages, purges", () => {
    boot();
    const rng = new Prng(15, 0);
    const live: number[] = [];
    for (let i = 0; i < 800; i++) {
      if (live.length > 0 && rng.chance(0.45)) vfree(live.splice(rng.int(0, live.length - 1), 1)[0]!);
      else {
        const size = rng.int(1, 400_000);
        const addr = rng.chance(0.25)
          ? __vmalloc_node(size, PAGE_SIZE << rng.int(1, 9), GFP_KERNEL, -1)
          : vmalloc(size);
        if (addr !== 0) live.push(addr);
      }
      if (i % 100 === 99) expect(checkMachine()).toEqual([]);
    }
    purge_vmap_area_lazy();
    expect(checkMachine()).toEqual([]);
    for (const addr of live) vfree(addr);
    expect(checkMachine()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });

  it("on 2 CPUs running seeded random exec ops at once, aligned and irq-context ones included (seed 12)", async () => {
    await randomExecOnTwoCpus("5.10", 12);
  });
});

describe("v5.10: the leak check", () => {
  it("does not count the per-CPU spare vmap_areas (ne_fit_preload_node) as leaked", () => {
    boot();
    const raw = () => slabinfo().find((c) => c.name === "vmap_area")!.active_objs;
    const start = memorySnapshot();
    const rawStart = raw();
    expect(I32[per_cpu_ptr(ne_fit_preload_node, 0) >> 2]).toBe(0);
    // alloc_vmap_area preloads CPU0 with a spare when it has none: a no-edge split takes it, an edge fit leaves it.
    const a = vmalloc(3 * PAGE_SIZE);
    vfree(vmalloc(3 * PAGE_SIZE));
    vfree(a);
    purge_vmap_area_lazy();
    const end = memorySnapshot();
    expect(I32[per_cpu_ptr(ne_fit_preload_node, 0) >> 2]).not.toBe(0);
    expect(raw()).toBe(rawStart + 1);
    expect(leakCheck(start, end).violations).toEqual([]);
  });
});

describe("v5.10: each invariant can fail", () => {
  it("free tree: a red root", () => {
    scene();
    const root = I32[(free_vmap_area_root.ptr + RB_ROOT.off.rb_node) >> 2]!;
    I32[(root + RB_NODE.off.__rb_parent_color) >> 2] = I32[(root + RB_NODE.off.__rb_parent_color) >> 2]! & ~1;
    expect(checkVmalloc()).toContain(`rbtree: free_vmap_area_root: root 0x${root.toString(16)} is red`);
  });

  it("augmented values: a subtree_max_size one page too big (DEBUG_AUGMENT_PROPAGATE_CHECK)", () => {
    scene();
    const f = freeRoot();
    const right = F64[(f + VA.subtree_max_size) >> 3]!;
    F64[(f + VA.subtree_max_size) >> 3] = right + PAGE_SIZE;
    expect(checkVmalloc()).toEqual([
      `free_vmap_area_root: ${name(f)} has subtree_max_size ${right + PAGE_SIZE}, its subtree's largest is ${right}`,
    ]);
  });

  it("merge on free: the free block below b grown over b's dropped lazy range, touching the one above", () => {
    const { b, A, B, C } = scene();
    vfree(A);
    vfree(C);
    purge_vmap_area_lazy(); // a's and c's ranges merge into the free blocks around them
    vfree(B);
    dropLazy(b);
    const below = freeAt(A);
    const above = freeAt(C);
    F64[(below + VA.va_end) >> 3] = C;
    repropagate();
    expect(checkVmalloc()).toEqual([
      `free_vmap_area_root: ${name(below)} and ${name(above)} are adjacent but not merged`,
    ]);
  });

  it("tiling: a lazy area dropped from vmap_purge_list leaves a gap", () => {
    const { a, b, B, C } = scene();
    vfree(B);
    dropLazy(b);
    expect(checkVmalloc()).toEqual([
      `tiling: [${hex(B)}-${hex(C)}) is in no tree, list or pool (after busy ${name(a)})`,
    ]);
  });

  it("tiling: a free block grown into a lazy area overlaps it", () => {
    const { b, B, C } = scene();
    vfree(C);
    purge_vmap_area_lazy();
    vfree(B);
    const above = freeAt(C);
    F64[(above + VA.va_start) >> 3] = C - PAGE_SIZE;
    repropagate();
    expect(checkVmalloc()).toEqual([`tiling: lazy ${name(b)} overlaps free ${name(above)}`]);
  });

  it("range: a busy area reaching past VMALLOC_END", () => {
    const { c } = scene();
    F64[(c + VA.va_end) >> 3] = VMALLOC_END + PAGE_SIZE;
    expect(checkVmalloc()).toContain(
      `range: ${name(c)} is outside [VMALLOC_START, VMALLOC_END) = [${hex(VMALLOC_START)}-${hex(VMALLOC_END)}) ` +
        `and the modules area [${hex(MODULES_VADDR)}-${hex(MODULES_END)})`,
    );
  });

  it("busy list == tree: c moved to the front of vmap_area_list", () => {
    const { c } = scene();
    const first = list_next(vmap_area_list.ptr) - VA.list;
    list_move(c + VA.list, vmap_area_list.ptr);
    expect(checkVmalloc()).toContain(`vmap_area_root list: entry 0 is ${name(c)}, the tree's is ${name(first)}`);
  });

  it("vmap_lazy_nr: one page more than the purge list holds", () => {
    const { B } = scene();
    vfree(B);
    atomic_long_add(1, vmap_lazy_nr.ptr);
    expect(checkVmalloc()).toEqual(["vmap_lazy_nr: 4, but the 1 areas on vmap_purge_list span 3 pages"]);
  });

  it("ne_fit_preload_node: CPU0's spare object is a busy area", () => {
    const { b } = scene();
    I32[per_cpu_ptr(ne_fit_preload_node, 0) >> 2] = b;
    expect(checkVmalloc()).toEqual([`ne_fit_preload_node: CPU0's spare ${name(b)} is in use`]);
  });

  it("vm_struct: vm->size that is not the area's", () => {
    const { b } = scene();
    const vm = va_vm(b);
    F64[(vm + VM_STRUCT.off.size) >> 3] = PAGE_SIZE;
    expect(checkVmalloc()).toContain(`vm_struct: ${name(b)} has vm ${ptr(vm)} at ${hex(va_start(b))} of 4096 bytes`);
  });

  it("PTEs: one in an area awaiting the lazy purge, one in b's guard page", () => {
    const { b, c, B, C } = scene();
    vfree(B);
    const page = alloc_page(GFP_KERNEL);
    holdHarnessPages(1);
    set_pte(kernel_ptep_lookup(B), mk_pte(page, PAGE_KERNEL));
    set_pte(kernel_ptep_lookup(C + PAGE_SIZE), mk_pte(page, PAGE_KERNEL));
    const pfn = page_to_pfn(page);
    expect(checkMachine()).toEqual([
      `PTE: ${hex(B)} maps pfn ${pfn} but lies in no busy vmap_area (in lazy ${name(b)})`,
      `PTE: ${hex(C + PAGE_SIZE)} maps pfn ${pfn}, the guard page of ${name(c)}`,
    ]);
  });
});
