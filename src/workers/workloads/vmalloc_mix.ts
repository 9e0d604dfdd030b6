/**
 * vmalloc_mix: the main job's workload (`vmsim run`). Every CPU runs seeded
 * random operations over every API of mm/vmalloc.c and the per-CPU vmap_block
 * allocator, holding a bounded set of live allocations, and checks what it
 * reads back through the page tables against what it wrote.
 *
 * - Allocations: vmalloc, vzalloc, vmalloc_node, vzalloc_node, vmalloc_user,
 *   vmalloc_32, __vmalloc, __vmalloc_node_range with a random alignment,
 *   get_vm_area (unmapped, or mapped with map_vm_area as alloc_vm_area does),
 *   vmap of alloc_page pages, vm_map_ram (block path and, above VMAP_MAX_ALLOC,
 *   the vmap_area path). Each page of a new area gets an 8-byte stamp
 *   (tag, page index) through the MMU; zeroing APIs are checked zero first.
 * - Accesses: mmuRead of a stamp, vread, vwrite + mmuRead, vmalloc_to_page
 *   (against the page the area maps, then the stamp read from the frame),
 *   find_vm_area (address, size with the guard page).
 * - Frees: each kind by its own API (vfree, vfree_atomic, vunmap,
 *   vm_unmap_ram, remove_vm_area + kfree), after checking a stamp. Some vfree
 *   areas leave the CPU: handed to another CPU through its handoff slot, or to
 *   this CPU's interrupt handler (vmalloc_mix_irq_handler vfree's it in hardirq
 *   context, so vfree takes the deferred path: vfree_deferred + free_work).
 * - Now and then: purge_vmap_area_lazy, vm_unmap_aliases, and an RCU
 *   reader that walks vmap_area_list under rcu_read_lock with list_next_rcu
 *   while the other CPUs insert and delete (`rcuWalk`; only on a generation
 *   whose vmap_area_list RCU readers may walk: v4.19).
 * - Options for `vmsim stress` (src/workers/stress.ts): stutter (seeded
 *   pauses inside operations, src/sched/stutter.ts) and fault injection
 *   (set by the caller; a failed allocation is counted, its fail path must
 *   free everything — the leak check at the end says whether it did).
 *
 * Every choice comes from the CPU's PRNG stream (cpuCtx.prng). The live set,
 * the handoff slots and the op counters live in the arena (per-CPU), so the
 * main thread's checker sees the live areas as allocated and a run can be
 * inspected between rounds. A call runs until `ops` operations or `deadline`
 * (monotonicMs(), the same on every thread); the CPUs park between calls.
 */
import { DEFINE_PER_CPU, F64, I32, U8, per_cpu_ptr, pfn_to_data, theArena } from "../../shared/arena.js";
import { type MachineConfig, PAGE_SHIFT, PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { defineKernelFn } from "../../shared/functab.js";
import { ksym } from "../../kernel/kallsyms.js";
import { formatKaddr } from "../../shared/layouts.js";
import type { Prng } from "../../shared/prng.js";
import { EV_RCU_WALK, trace_event, tracing_snapshot } from "../../shared/events.js";
import { KernelBug, MachineStopped } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { SP_ATOMIC, SP_RCU, sched_point, sched_op_point } from "../../sched/sched_point.js";
import { setStutter } from "../../sched/stutter.js";
import { monotonicMs } from "../../sched/watchdog_clock.js";
import { free_irq, raise_irq_on, request_irq } from "../../kernel/irq.js";
import { smp_processor_id, this_cpu_ptr } from "../../shared/smp.js";
import { flush_scheduled_work } from "../../kernel/workqueue.js";
import { rcu_read_lock, rcu_read_unlock } from "../../rcu/rcupdate.js";
import { rcu_barrier } from "../../rcu/tree.js";
import { list_next_rcu } from "../../lib/list.js";
import { GFP_KERNEL, __GFP_ZERO } from "../../mm/gfp.js";
import { __free_page, alloc_page, page_to_pfn } from "../../mm/page_alloc.js";
import { PAGE_KERNEL } from "../../mm/pgtable.js";
import { kfree, kmalloc } from "../../mm/slab.js";
import { type Fault, isFault, mmuRead, mmuWrite } from "../../mm/mmu.js";
import {
  NUMA_NO_NODE,
  type RcuVmapAreaList,
  VM_IOREMAP,
  VM_MAP,
  VM_NO_GUARD,
  VMAP_MAX_ALLOC,
  __vmalloc,
  __vmalloc_node_range,
  find_vm_area,
  get_vm_area,
  is_vmalloc_addr,
  map_vm_area,
  purge_vmap_area_lazy,
  rcu_vmap_area_list,
  remove_vm_area,
  vfree,
  vfree_atomic,
  vmalloc,
  vmalloc_32,
  vmalloc_node,
  vmalloc_to_page,
  vmalloc_user,
  vmStructPage,
  vm_addr,
  vm_flags,
  vm_map_ram,
  vm_size,
  vm_unmap_aliases,
  vm_unmap_ram,
  vmap,
  vread,
  vunmap,
  vwrite,
  vzalloc,
  vzalloc_node,
} from "../../mm/vmalloc.js";
import { holdHarnessPages, releaseHarnessPages } from "../../check/pages.js";
import { defineWorkload } from "../workload.js";
import { MIX_WEIGHTED_OPS } from "../mix_weights.js";

/** The interrupt line of the mix's device: its handler vfree's what the CPU handed it. */
export const VMALLOC_MIX_IRQ = 5;
/** Live allocations a CPU holds at most. */
export const MIX_MAX_LIVE = 48;
/** PRNG stream of the mix (apart from the other workloads' streams of the same CPU). */
const MIX_STREAM = 0x3a1;
/** PRNG stream of the CPU's stutter: its pauses do not shift the mix's own draws. */
const STUTTER_STREAM = 0x3a2;
/** Chance per operation of an RCU walk of vmap_area_list, unless the caller says otherwise. */
export const MIX_RCU_WALK = 0.005;
/** An RCU walk longer than this is a cycle in vmap_area_list. */
const RCU_WALK_MAX = 1 << 22;

/** What the mix counts, one counter each: the API calls, checks and failures. */
export const MIX_OPS = [
  "vmalloc",
  "vzalloc",
  "vmalloc_node",
  "vzalloc_node",
  "vmalloc_user",
  "vmalloc_32",
  "__vmalloc",
  "__vmalloc_node_range",
  "get_vm_area",
  "map_vm_area",
  "vmap",
  "vm_map_ram",
  "vfree",
  "vfree_atomic",
  "vfree (irq)",
  "vfree (other CPU)",
  "vunmap",
  "vm_unmap_ram",
  "remove_vm_area",
  "mmu read",
  "mmu write",
  "vread",
  "vwrite",
  "vmalloc_to_page",
  "find_vm_area",
  "rcu walk",
  "purge_vmap_area_lazy",
  "vm_unmap_aliases",
  "allocation failed",
] as const;
export type MixOp = (typeof MIX_OPS)[number];
const op = (name: MixOp): number => MIX_OPS.indexOf(name);
const OP_VMALLOC = op("vmalloc");
const OP_VZALLOC = op("vzalloc");
const OP_VMALLOC_NODE = op("vmalloc_node");
const OP_VZALLOC_NODE = op("vzalloc_node");
const OP_VMALLOC_USER = op("vmalloc_user");
const OP_VMALLOC_32 = op("vmalloc_32");
const OP_VMALLOC_GFP = op("__vmalloc");
const OP_VMALLOC_NODE_RANGE = op("__vmalloc_node_range");
const OP_GET_VM_AREA = op("get_vm_area");
const OP_MAP_VM_AREA = op("map_vm_area");
const OP_VMAP = op("vmap");
const OP_VM_MAP_RAM = op("vm_map_ram");
const OP_VFREE = op("vfree");
const OP_VFREE_ATOMIC = op("vfree_atomic");
const OP_VFREE_IRQ = op("vfree (irq)");
const OP_VFREE_OTHER = op("vfree (other CPU)");
const OP_VUNMAP = op("vunmap");
const OP_VM_UNMAP_RAM = op("vm_unmap_ram");
const OP_REMOVE_VM_AREA = op("remove_vm_area");
const OP_MMU_READ = op("mmu read");
const OP_MMU_WRITE = op("mmu write");
const OP_VREAD = op("vread");
const OP_VWRITE = op("vwrite");
const OP_VMALLOC_TO_PAGE = op("vmalloc_to_page");
const OP_FIND_VM_AREA = op("find_vm_area");
const OP_RCU_WALK = op("rcu walk");
const OP_PURGE = op("purge_vmap_area_lazy");
const OP_UNMAP_ALIASES = op("vm_unmap_aliases");
const OP_FAILED = op("allocation failed");

/** How a live area is given back. */
const KIND_VFREE = 1;
const KIND_VMAP = 2;
const KIND_VM_MAP_RAM = 3;
/** get_vm_area with nothing mapped (an ioremap-style reservation). */
const KIND_VM_AREA = 4;
/** get_vm_area + map_vm_area of alloc_page pages (alloc_vm_area's way). */
const KIND_VM_AREA_MAPPED = 5;

/** One live allocation of a CPU. */
export const MIX_AREA = defineStruct("vmalloc_mix_area", [
  { name: "kind", type: "i32", guard: "owner" },
  /** Stamp tag: page i of the area holds (tag, i) at its offset 0. */
  { name: "tag", type: "u32", guard: "owner" },
  /** Pages behind the area (0 for an unmapped get_vm_area). */
  { name: "nr_pages", type: "i32", guard: "owner" },
  /** kmalloc'd array of nr_pages struct page pointers (vmap, vm_map_ram, mapped vm areas); 0 for vmalloc. */
  { name: "pages", type: "ptr", guard: "owner" },
  /** The vm_struct of a get_vm_area area. */
  { name: "vm", type: "ptr", guard: "owner" },
  /** Which API allocated it (an index of MIX_OPS). */
  { name: "api", type: "i32", guard: "owner" },
  { name: "addr", type: "f64", guard: "owner" },
  /** Bytes asked for. */
  { name: "size", type: "f64", guard: "owner" },
]);
const A = MIX_AREA.off;

/** Handoff slot states: the state word is the only Atomics field; it publishes the others. */
const SLOT_EMPTY = 0;
const SLOT_FILLING = 1;
const SLOT_FULL = 2;

/** A vfree-able area on its way to another CPU or to this CPU's interrupt handler. */
export const MIX_HANDOFF = defineStruct("vmalloc_mix_handoff", [
  /** SLOT_EMPTY → (claimed by a giver) SLOT_FILLING → (published) SLOT_FULL → (taken) SLOT_EMPTY. */
  { name: "state", type: "i32", guard: "atomic" },
  { name: "tag", type: "u32", guard: "init" },
  { name: "api", type: "i32", guard: "init" },
  { name: "addr", type: "f64", guard: "init" },
  { name: "size", type: "f64", guard: "init" },
]);
const H = MIX_HANDOFF.off;

/** A CPU's part of the mix. */
export const MIX_CPU = defineStruct("vmalloc_mix_cpu", [
  { name: "nr_live", type: "i32", guard: "owner" },
  /** Areas another CPU hands to this one, which vfree's them. */
  { name: "incoming", type: MIX_HANDOFF },
  /** An area this CPU hands to its own interrupt handler. */
  { name: "to_irq", type: MIX_HANDOFF },
  /** Cumulative count of each MIX_OPS entry (the interrupt handler counts its vfrees here too). */
  { name: "counts", type: "f64", count: MIX_OPS.length, guard: "owner" },
  /** Operations the CPU's vmalloc_mix calls ran since vmalloc_mix_start (the drain's frees not counted). */
  { name: "ops", type: "f64", guard: "owner" },
  { name: "live", type: MIX_AREA, count: MIX_MAX_LIVE },
]);
const C = MIX_CPU.off;
const vmalloc_mix_cpu = DEFINE_PER_CPU("vmalloc_mix_cpu", MIX_CPU);

/* This CPU's mix state (a CPU is a thread): its area, its PRNG stream, a stamp buffer. */
let me = 0;
let rng: Prng | null = null;
const stampBuf = new Uint8Array(8);
const stampView = new DataView(stampBuf.buffer);

function count(cpuArea: number, o: number, n = 1): void {
  const i = (cpuArea + C.counts) >> 3;
  F64[i + o] = F64[i + o]! + n;
}

function countsOf(cpuArea: number): number[] {
  const i = (cpuArea + C.counts) >> 3;
  return Array.from(F64.subarray(i, i + MIX_OPS.length));
}

/** A CPU's counters since vmalloc_mix_start, read from the arena. */
export interface MixCounters {
  /** Operations its vmalloc_mix calls ran. */
  readonly ops: number;
  /** Count of each MIX_OPS entry. */
  readonly counts: readonly number[];
}

/**
 * CPU `cpu`'s counters, read by the main thread with the CPUs parked — also
 * after a call that failed, whose result never came back.
 */
export function mixCounters(cpu: number): MixCounters {
  const cpuArea = per_cpu_ptr(vmalloc_mix_cpu, cpu);
  return { ops: F64[(cpuArea + C.ops) >> 3]!, counts: countsOf(cpuArea) };
}

function area(cpuArea: number, k: number): number {
  return cpuArea + C.live + k * MIX_AREA.size;
}

function kaddrText(addr: number): string {
  return formatKaddr(layoutOf(theArena().config), addr);
}

/*** Stamps: what each page of an area must hold ***/

function stampOf(tag: number, i: number): void {
  stampView.setUint32(0, tag, true);
  stampView.setUint32(4, i, true);
}

/** A fault was reported by the MMU: the oops ends the run. */
function oops(f: Fault, what: string): never {
  throw new KernelBug(`vmalloc_mix: ${what}: ${f.fault} at ${kaddrText(f.kaddr)}`);
}

function writeStamp(o: number, addr: number, tag: number, i: number): void {
  stampOf(tag, i);
  const r = mmuWrite(addr + i * PAGE_SIZE, stampBuf);
  if (isFault(r)) oops(r, `stamping page ${i} of a ${MIX_OPS[o]} area`);
}

function checkBytes(got: Uint8Array, tag: number, i: number, what: string, addr: number): void {
  stampOf(tag, i);
  for (let b = 0; b < 8; b++)
    if (got[b] !== stampBuf[b])
      throw new KernelBug(
        `vmalloc_mix: ${what} of page ${i} of the area at ${kaddrText(addr)} read ` +
          `${Buffer.from(got.subarray(0, 8)).toString("hex")}, expected ${Buffer.from(stampBuf).toString("hex")}: ` +
          "the page was overwritten, or is not the page that was stamped",
      );
}

function checkStamp(addr: number, tag: number, i: number, what: string): void {
  const got = mmuRead(addr + i * PAGE_SIZE, 8);
  if (isFault(got)) oops(got, what);
  checkBytes(got, tag, i, what, addr);
}

/** A zeroing allocation must read zero before it is stamped: the first and last 64 bytes of one page. */
function checkZero(addr: number, size: number, o: number): void {
  const pages = Math.ceil(size / PAGE_SIZE);
  const i = rng!.int(0, pages - 1);
  const len = Math.min(64, size - i * PAGE_SIZE);
  for (const off of [i * PAGE_SIZE, Math.min(i * PAGE_SIZE + PAGE_SIZE, size) - len]) {
    const got = mmuRead(addr + off, len);
    if (isFault(got)) oops(got, `reading a new ${MIX_OPS[o]} area`);
    if (got.some((b) => b !== 0))
      throw new KernelBug(`vmalloc_mix: ${MIX_OPS[o]} returned ${kaddrText(addr)} not zeroed at offset ${off}`);
  }
}

/*** Sizes ***/

/** Bytes for a vmalloc: mostly 1–4 pages, sometimes up to 16 or 64, rarely 256; a multiple of 8. */
function randomSize(r: Prng): number {
  const x = r.next();
  const maxPages = x < 0.55 ? 4 : x < 0.9 ? 16 : x < 0.99 ? 64 : 256;
  return r.int(8, (maxPages * PAGE_SIZE) / 8) * 8;
}

/*** Allocation ***/

function addLive(cpuArea: number, kind: number, api: number, addr: number, size: number, nrPages: number): number {
  const k = I32[(cpuArea + C.nr_live) >> 2]!;
  const a = area(cpuArea, k);
  I32[(a + A.kind) >> 2] = kind;
  I32[(a + A.api) >> 2] = api;
  F64[(a + A.addr) >> 3] = addr;
  F64[(a + A.size) >> 3] = size;
  I32[(a + A.nr_pages) >> 2] = nrPages;
  I32[(a + A.pages) >> 2] = 0;
  I32[(a + A.vm) >> 2] = 0;
  I32[(a + A.tag) >> 2] = rng!.u32() | 1;
  I32[(cpuArea + C.nr_live) >> 2] = k + 1;
  return a;
}

function tagOf(a: number): number {
  return I32[(a + A.tag) >> 2]! >>> 0;
}

function stampAll(a: number): void {
  const addr = F64[(a + A.addr) >> 3]!;
  const n = I32[(a + A.nr_pages) >> 2]!;
  const tag = tagOf(a);
  const o = I32[(a + A.api) >> 2]!;
  for (let i = 0; i < n; i++) writeStamp(o, addr, tag, i);
}

/**
 * `n` pages from the buddy allocator in a kmalloc'd array of struct page
 * pointers; 0 when memory ran out. The pages are the mix's own (the caller of
 * vmap owns them, not vmalloc): the page census counts them as harness pages.
 */
function allocPages(n: number): number {
  const arr = kmalloc(n * 4, GFP_KERNEL);
  if (arr === 0) return 0;
  for (let i = 0; i < n; i++) {
    const page = alloc_page(GFP_KERNEL);
    if (page === 0) {
      for (let j = 0; j < i; j++) __free_page(I32[(arr >> 2) + j]!);
      kfree(arr);
      return 0;
    }
    I32[(arr >> 2) + i] = page;
  }
  holdHarnessPages(n);
  return arr;
}

function freePages(arr: number, n: number): void {
  for (let i = 0; i < n; i++) __free_page(I32[(arr >> 2) + i]!);
  releaseHarnessPages(n);
  kfree(arr);
}

/** One of the vmalloc family, which vfree gives back. */
function allocVfreeable(cpuArea: number, r: Prng): void {
  const size = randomSize(r);
  const which = r.int(0, 7);
  let addr = 0;
  let o = OP_VMALLOC;
  let zeroed = false;
  let align = PAGE_SIZE;
  switch (which) {
    case 0:
      addr = vmalloc(size);
      break;
    case 1:
      o = OP_VZALLOC;
      addr = vzalloc(size);
      zeroed = true;
      break;
    case 2:
      o = OP_VMALLOC_NODE;
      addr = vmalloc_node(size, r.chance(0.5) ? 0 : NUMA_NO_NODE);
      break;
    case 3:
      o = OP_VZALLOC_NODE;
      addr = vzalloc_node(size, r.chance(0.5) ? 0 : NUMA_NO_NODE);
      zeroed = true;
      break;
    case 4:
      o = OP_VMALLOC_USER;
      addr = vmalloc_user(size);
      zeroed = true;
      break;
    case 5:
      o = OP_VMALLOC_32;
      addr = vmalloc_32(size);
      break;
    case 6: {
      o = OP_VMALLOC_GFP;
      zeroed = r.chance(0.5);
      addr = __vmalloc(size, GFP_KERNEL | (zeroed ? __GFP_ZERO : 0), PAGE_KERNEL);
      break;
    }
    default: {
      o = OP_VMALLOC_NODE_RANGE;
      align = 1 << r.int(PAGE_SHIFT, 20);
      const l = layoutOf(theArena().config);
      addr = __vmalloc_node_range(
        size,
        align,
        l.vmallocStart,
        l.vmallocEnd,
        GFP_KERNEL,
        PAGE_KERNEL,
        0,
        NUMA_NO_NODE,
        ksym("__vmalloc_node_range"),
      );
      break;
    }
  }
  count(cpuArea, o);
  if (addr === 0) {
    count(cpuArea, OP_FAILED);
    return;
  }
  if (addr % align !== 0)
    throw new KernelBug(`vmalloc_mix: ${MIX_OPS[o]} with align ${align} returned ${kaddrText(addr)}`);
  if (zeroed) checkZero(addr, size, o);
  const a = addLive(cpuArea, KIND_VFREE, o, addr, size, Math.ceil(size / PAGE_SIZE));
  stampAll(a);
  count(cpuArea, OP_MMU_WRITE, Math.ceil(size / PAGE_SIZE));
}

function allocVmap(cpuArea: number, r: Prng): void {
  const n = r.int(1, 16);
  count(cpuArea, OP_VMAP);
  const pages = allocPages(n);
  const addr = pages === 0 ? 0 : vmap(pages, n, VM_MAP, PAGE_KERNEL);
  if (addr === 0) {
    if (pages !== 0) freePages(pages, n);
    count(cpuArea, OP_FAILED);
    return;
  }
  const a = addLive(cpuArea, KIND_VMAP, OP_VMAP, addr, n * PAGE_SIZE, n);
  I32[(a + A.pages) >> 2] = pages;
  stampAll(a);
  count(cpuArea, OP_MMU_WRITE, n);
}

function allocVmMapRam(cpuArea: number, r: Prng): void {
  // Mostly the per-CPU block path; above VMAP_MAX_ALLOC pages vm_map_ram takes a vmap_area of its own.
  const n = r.chance(0.85) ? r.int(1, VMAP_MAX_ALLOC) : r.int(VMAP_MAX_ALLOC + 1, 2 * VMAP_MAX_ALLOC);
  count(cpuArea, OP_VM_MAP_RAM);
  const pages = allocPages(n);
  const addr = pages === 0 ? 0 : vm_map_ram(pages, n, NUMA_NO_NODE, PAGE_KERNEL);
  if (addr === 0) {
    if (pages !== 0) freePages(pages, n);
    count(cpuArea, OP_FAILED);
    return;
  }
  const a = addLive(cpuArea, KIND_VM_MAP_RAM, OP_VM_MAP_RAM, addr, n * PAGE_SIZE, n);
  I32[(a + A.pages) >> 2] = pages;
  stampAll(a);
  count(cpuArea, OP_MMU_WRITE, n);
}

function allocVmArea(cpuArea: number, r: Prng): void {
  const n = r.int(1, 16);
  const mapped = r.chance(0.5);
  count(cpuArea, OP_GET_VM_AREA);
  const vm = get_vm_area(n * PAGE_SIZE, mapped ? VM_MAP : VM_IOREMAP);
  if (vm === 0) {
    count(cpuArea, OP_FAILED);
    return;
  }
  const addr = vm_addr(vm);
  if (!mapped) {
    const a = addLive(cpuArea, KIND_VM_AREA, OP_GET_VM_AREA, addr, n * PAGE_SIZE, 0);
    I32[(a + A.vm) >> 2] = vm;
    return;
  }
  count(cpuArea, OP_MAP_VM_AREA);
  const pages = allocPages(n);
  if (pages === 0 || map_vm_area(vm, PAGE_KERNEL, pages) !== 0) {
    // As alloc_vm_area's failure path: take the area down again.
    if (pages !== 0) freePages(pages, n);
    kfree(remove_vm_area(addr));
    count(cpuArea, OP_FAILED);
    return;
  }
  const a = addLive(cpuArea, KIND_VM_AREA_MAPPED, OP_GET_VM_AREA, addr, n * PAGE_SIZE, n);
  I32[(a + A.pages) >> 2] = pages;
  I32[(a + A.vm) >> 2] = vm;
  stampAll(a);
  count(cpuArea, OP_MMU_WRITE, n);
}

/*** Accesses ***/

/** The struct page that maps page `i` of live area `a`, as its owner knows it (vmalloc: vm->pages[i]). */
function expectedPage(a: number, i: number): number {
  const pages = I32[(a + A.pages) >> 2]!;
  if (pages !== 0) return I32[(pages >> 2) + i]!;
  const vm = find_vm_area(F64[(a + A.addr) >> 3]!);
  return vm === 0 ? 0 : vmStructPage(vm, i);
}

/** Is `a` a vm area that vread/vwrite see (VM_VM_AREA, not ioremap)? */
function vreadable(kind: number): boolean {
  return kind === KIND_VFREE || kind === KIND_VMAP || kind === KIND_VM_AREA_MAPPED;
}

/** vread of page `i`'s stamp, through the page frames (vread walks vmap_area_list to find the area). */
function vreadStamp(cpuArea: number, addr: number, tag: number, i: number): void {
  count(cpuArea, OP_VREAD);
  const buf = new Uint8Array(8);
  const got = vread(buf, addr + i * PAGE_SIZE, 8);
  if (got !== 8) throw new KernelBug(`vmalloc_mix: vread of ${kaddrText(addr + i * PAGE_SIZE)} returned ${got}`);
  checkBytes(buf, tag, i, "vread", addr);
}

function access(cpuArea: number, r: Prng, a: number): void {
  const kind = I32[(a + A.kind) >> 2]!;
  const addr = F64[(a + A.addr) >> 3]!;
  const n = I32[(a + A.nr_pages) >> 2]!;
  const tag = tagOf(a);
  if (kind === KIND_VM_AREA || r.chance(0.2)) {
    count(cpuArea, OP_FIND_VM_AREA);
    const vm = find_vm_area(addr);
    if (kind === KIND_VM_MAP_RAM) {
      // vm_map_ram areas have no vm_struct.
      if (vm !== 0) throw new KernelBug(`vmalloc_mix: find_vm_area(${kaddrText(addr)}) found a vm_map_ram area`);
      return;
    }
    const size = F64[(a + A.size) >> 3]!;
    const guard = vm === 0 || (vm_flags(vm) & VM_NO_GUARD) !== 0 ? 0 : PAGE_SIZE;
    const want = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE + guard;
    if (vm === 0 || vm_addr(vm) !== addr || vm_size(vm) !== want)
      throw new KernelBug(
        `vmalloc_mix: find_vm_area(${kaddrText(addr)}) = ${vm}: expected the ${MIX_OPS[I32[(a + A.api) >> 2]!]} area of ${want} bytes`,
      );
    if (!is_vmalloc_addr(addr)) throw new KernelBug(`vmalloc_mix: is_vmalloc_addr(${kaddrText(addr)}) is false`);
    return;
  }
  const i = r.int(0, n - 1);
  const x = r.next();
  if (x < 0.4) {
    count(cpuArea, OP_MMU_READ);
    checkStamp(addr, tag, i, "a load");
  } else if (x < 0.6 && vreadable(kind)) vreadStamp(cpuArea, addr, tag, i);
  else if (x < 0.75 && vreadable(kind)) {
    // A second stamp at offset 8, written by vwrite (through the page frames), read through the MMU.
    count(cpuArea, OP_VWRITE);
    stampOf(~tag >>> 0, i);
    const at = addr + i * PAGE_SIZE + 8;
    if (vwrite(stampBuf.slice(), at, 8) !== 8) throw new KernelBug(`vmalloc_mix: vwrite of ${kaddrText(at)} failed`);
    count(cpuArea, OP_MMU_READ);
    const got = mmuRead(at, 8);
    if (isFault(got)) oops(got, "a load after vwrite");
    checkBytes(got, ~tag >>> 0, i, "a load after vwrite", addr + 8);
  } else {
    count(cpuArea, OP_VMALLOC_TO_PAGE);
    const page = vmalloc_to_page(addr + i * PAGE_SIZE);
    const want = expectedPage(a, i);
    if (page !== want)
      throw new KernelBug(
        `vmalloc_mix: vmalloc_to_page(${kaddrText(addr + i * PAGE_SIZE)}) = ${page}, expected ${want}: ` +
          `page ${i} of the ${MIX_OPS[I32[(a + A.api) >> 2]!]} area at ${kaddrText(addr)}`,
      );
    const data = pfn_to_data(page_to_pfn(page));
    checkBytes(U8.subarray(data, data + 8), tag, i, "the page frame", addr);
  }
}

/*** RCU readers ***/

/**
 * An RCU reader of vmap_area_list, as get_vmalloc_info walked it (v4.2:
 * rcu_read_lock + list_for_each_entry_rcu) while other CPUs insert with
 * list_add_rcu and delete with list_del_rcu + kfree_rcu. What a reader may
 * rely on: every entry it reaches is an initialized area (published before
 * the link to it), not yet freed (its grace period waits for this reader),
 * and the list is address-sorted — a deleted entry keeps its `next`, which
 * only ever points to a higher area — so the areas it sees come in
 * increasing order without overlap. A violation is BUG(): a broken list.
 */
function rcuWalk(cpuArea: number, list: RcuVmapAreaList): void {
  const head = list.head;
  let prevEnd = Number.NEGATIVE_INFINITY;
  let n = 0;
  rcu_read_lock();
  for (let e = list_next_rcu(head); e !== head; e = list_next_rcu(e)) {
    // Each rcu_dereference is an RCU operation: interrupts and stutter may land between two.
    sched_point(SP_RCU);
    const va = e - list.list;
    const start = list.va_start(va);
    const end = list.va_end(va);
    if (!(start < end) || start < prevEnd || ++n > RCU_WALK_MAX)
      throw new KernelBug(
        `vmalloc_mix: RCU walk of vmap_area_list: area ${n} (${va}) is ${kaddrText(start)}-${kaddrText(end)} ` +
          `after one ending at ${Number.isFinite(prevEnd) ? kaddrText(prevEnd) : "the head"}: ` +
          "not increasing, overlapping or empty (an entry freed or relinked under a reader)",
      );
    prevEnd = end;
  }
  rcu_read_unlock();
  trace_event(EV_RCU_WALK, n, 0);
  count(cpuArea, OP_RCU_WALK);
}

/*** Frees ***/

function removeLive(cpuArea: number, k: number): void {
  const last = I32[(cpuArea + C.nr_live) >> 2]! - 1;
  if (k !== last) U8.copyWithin(area(cpuArea, k), area(cpuArea, last), area(cpuArea, last) + MIX_AREA.size);
  I32[(cpuArea + C.nr_live) >> 2] = last;
}

/**
 * Claims `slot` for a giver: SLOT_EMPTY → SLOT_FILLING. The compareExchange
 * orders the claim before the payload writes; false when the slot is taken.
 */
function claimSlot(slot: number): boolean {
  sched_point(SP_ATOMIC);
  return Atomics.compareExchange(I32, (slot + H.state) >> 2, SLOT_EMPTY, SLOT_FILLING) === SLOT_EMPTY;
}

function fillSlot(slot: number, a: number): void {
  I32[(slot + H.tag) >> 2] = I32[(a + A.tag) >> 2]!;
  I32[(slot + H.api) >> 2] = I32[(a + A.api) >> 2]!;
  F64[(slot + H.addr) >> 3] = F64[(a + A.addr) >> 3]!;
  F64[(slot + H.size) >> 3] = F64[(a + A.size) >> 3]!;
  // Publishes the payload: a taker that loads SLOT_FULL reads it complete.
  Atomics.store(I32, (slot + H.state) >> 2, SLOT_FULL);
}

/** Takes `slot`'s area if it is full: returns its address (payload read before the slot is released), or 0. */
function takeSlot(slot: number): number {
  const st = (slot + H.state) >> 2;
  if (Atomics.load(I32, st) !== SLOT_FULL) return 0;
  const addr = F64[(slot + H.addr) >> 3]!;
  // Only the owner takes from its slot, so FULL cannot change under us; the store releases it to givers.
  sched_point(SP_ATOMIC);
  Atomics.store(I32, st, SLOT_EMPTY);
  return addr;
}

/** vfree's an area another CPU handed over, after checking its first stamp through this CPU's MMU. */
function takeIncoming(cpuArea: number): void {
  const slot = cpuArea + C.incoming;
  if (Atomics.load(I32, (slot + H.state) >> 2) !== SLOT_FULL) return;
  checkStamp(F64[(slot + H.addr) >> 3]!, I32[(slot + H.tag) >> 2]! >>> 0, 0, "a load by the receiving CPU");
  count(cpuArea, OP_MMU_READ);
  vfree(takeSlot(slot));
  count(cpuArea, OP_VFREE_OTHER);
}

/**
 * The device's interrupt handler: vfree's the area this CPU handed to
 * interrupt context, if any. In hardirq context vfree cannot sleep, so it
 * queues the area on this CPU's vfree_deferred for free_work.
 */
const vmalloc_mix_irq_handler = defineKernelFn("vmalloc_mix_irq_handler", () => {
  const cpuArea = this_cpu_ptr(vmalloc_mix_cpu);
  const addr = takeSlot(cpuArea + C.to_irq);
  if (addr === 0) return;
  vfree(addr);
  count(cpuArea, OP_VFREE_IRQ);
});

function free(cpuArea: number, r: Prng, k: number): void {
  const a = area(cpuArea, k);
  const kind = I32[(a + A.kind) >> 2]!;
  const addr = F64[(a + A.addr) >> 3]!;
  const n = I32[(a + A.nr_pages) >> 2]!;
  const pages = I32[(a + A.pages) >> 2]!;
  if (n > 0) {
    count(cpuArea, OP_MMU_READ);
    checkStamp(addr, tagOf(a), r.int(0, n - 1), "a load before the free");
  }
  switch (kind) {
    case KIND_VFREE: {
      const x = r.next();
      const cpus = theArena().config.cpus;
      if (x < 0.12 && cpus > 1) {
        const to = (me + r.int(1, cpus - 1)) % cpus;
        const slot = per_cpu_ptr(vmalloc_mix_cpu, to) + C.incoming;
        if (claimSlot(slot)) {
          fillSlot(slot, a);
          break;
        }
      } else if (x < 0.24) {
        const slot = cpuArea + C.to_irq;
        if (claimSlot(slot)) {
          fillSlot(slot, a);
          // Without random device interrupts the CPU raises the line itself (an IPI to itself).
          if (theArena().config.irqRate === 0) raise_irq_on(me, VMALLOC_MIX_IRQ);
          break;
        }
      } else if (x < 0.3) {
        vfree_atomic(addr);
        count(cpuArea, OP_VFREE_ATOMIC);
        break;
      }
      vfree(addr);
      count(cpuArea, OP_VFREE);
      break;
    }
    case KIND_VMAP:
      vunmap(addr);
      freePages(pages, n);
      count(cpuArea, OP_VUNMAP);
      break;
    case KIND_VM_MAP_RAM:
      vm_unmap_ram(addr, n);
      freePages(pages, n);
      count(cpuArea, OP_VM_UNMAP_RAM);
      break;
    default: {
      const vm = remove_vm_area(addr);
      if (vm !== I32[(a + A.vm) >> 2])
        throw new KernelBug(`vmalloc_mix: remove_vm_area(${kaddrText(addr)}) = ${vm}, not the area's vm_struct`);
      kfree(vm);
      if (pages !== 0) freePages(pages, n);
      count(cpuArea, OP_REMOVE_VM_AREA);
    }
  }
  removeLive(cpuArea, k);
}

/** Frees live area `k` the plain way (vfree in process context for the vmalloc family): the drain. */
function freePlain(cpuArea: number, k: number): void {
  const a = area(cpuArea, k);
  if (I32[(a + A.kind) >> 2] !== KIND_VFREE) {
    free(cpuArea, rng!, k);
    return;
  }
  const n = I32[(a + A.nr_pages) >> 2]!;
  checkStamp(F64[(a + A.addr) >> 3]!, tagOf(a), n - 1, "a load before the free");
  count(cpuArea, OP_MMU_READ);
  vfree(F64[(a + A.addr) >> 3]!);
  count(cpuArea, OP_VFREE);
  removeLive(cpuArea, k);
}

/*** The workloads ***/

/** Arguments of `vmalloc_mix`. */
export interface VmallocMixArgs {
  /** Operations to run at most. */
  readonly ops: number;
  /** Stop at this monotonicMs() (src/sched/watchdog_clock.ts) even if `ops` are not done. */
  readonly deadline: number;
  /** Live allocations to hold at most (≤ MIX_MAX_LIVE). @defaultValue MIX_MAX_LIVE */
  readonly maxLive?: number;
  /** Chance per operation of an RCU walk of vmap_area_list (0: none). @defaultValue MIX_RCU_WALK */
  readonly rcuWalk?: number;
  /** Operation numbers of this call (0-based) to leave out, drawing nothing (the shrinker's cuts). @defaultValue [] */
  readonly skip?: readonly number[];
  /** `--mix`: the share of operations each MIX_WEIGHTED_OPS entry takes (src/workers/mix_weights.ts). @defaultValue none */
  readonly weights?: readonly number[];
}

/** Arguments of `vmalloc_mix_start`. */
export interface VmallocMixStartArgs {
  /** Chance per operation of a stutter pause inside it (src/sched/stutter.ts); 0: off. @defaultValue 0 */
  readonly stutter?: number;
}

/** Live areas a CPU may hold: at most MIX_MAX_LIVE, fewer when many CPUs share a small memory. */
export function maxLiveFor(config: MachineConfig): number {
  const pages = config.memory / PAGE_SIZE;
  return Math.max(4, Math.min(MIX_MAX_LIVE, Math.floor(pages / (config.cpus * 64))));
}

/** What a CPU reports after a call. */
export interface VmallocMixResult {
  /** Cumulative count of each MIX_OPS entry on this CPU since vmalloc_mix_start. */
  readonly counts: number[];
  /** Operations this call ran. */
  readonly ops: number;
  /** Live allocations this CPU holds now. */
  readonly live: number;
}

/** Starts the mix on this CPU: its PRNG stream, an empty live set, zero counters, stutter on or off. */
defineWorkload("vmalloc_mix_start", (a: VmallocMixStartArgs, ctx): void => {
  me = ctx.cpu;
  rng = ctx.prng(MIX_STREAM);
  setStutter(a.stutter ?? 0, ctx.prng(STUTTER_STREAM));
  const cpuArea = this_cpu_ptr(vmalloc_mix_cpu);
  if (I32[(cpuArea + C.nr_live) >> 2] !== 0) throw new Error("vmalloc_mix_start: the CPU still holds areas");
  F64.fill(0, (cpuArea + C.counts) >> 3, ((cpuArea + C.counts) >> 3) + MIX_OPS.length);
  F64[(cpuArea + C.ops) >> 3] = 0;
});

/** Installs (on) or removes (off) the mix's interrupt handler; returns request_irq's result. */
defineWorkload("vmalloc_mix_irq", (a: { on: boolean }): number => {
  if (a.on) return request_irq(VMALLOC_MIX_IRQ, vmalloc_mix_irq_handler, "vmalloc_mix", 0);
  free_irq(VMALLOC_MIX_IRQ, 0);
  return 0;
});

/**
 * Runs seeded random operations until `ops` are done or the deadline passed.
 * A BUG on this CPU takes the event snapshot before it unwinds, so the report
 * shows every CPU's events at the moment of the BUG.
 */
defineWorkload("vmalloc_mix", (args: VmallocMixArgs): VmallocMixResult => {
  try {
    return mixLoop(args);
  } catch (e) {
    if (!(e instanceof MachineStopped)) tracing_snapshot();
    throw e;
  }
});

function mixLoop(args: VmallocMixArgs): VmallocMixResult {
  const r = rng;
  if (r === null || smp_processor_id() !== me) throw new Error("vmalloc_mix: run vmalloc_mix_start first");
  const cpuArea = this_cpu_ptr(vmalloc_mix_cpu);
  const maxLive = Math.min(args.maxLive ?? MIX_MAX_LIVE, MIX_MAX_LIVE);
  const walk = args.rcuWalk ?? MIX_RCU_WALK;
  // Only a generation whose readers may walk vmap_area_list under RCU (v4.19) has the walk.
  const walkList = rcu_vmap_area_list;
  const skip = new Set(args.skip ?? []);
  const weights = args.weights ?? [];
  const weighted = weights.reduce((a, b) => a + b, 0);
  const opsAt = (cpuArea + C.ops) >> 3;
  let done = 0;
  while (done < args.ops && ((done & 15) !== 0 || monotonicMs() < args.deadline)) {
    F64[opsAt] = F64[opsAt]! + 1;
    if (skip.has(done)) {
      done++;
      continue;
    }
    takeIncoming(cpuArea);
    const live = I32[(cpuArea + C.nr_live) >> 2]!;
    const x0 = r.next();
    // --mix: the weighted operations take their share first; the mix's own choice spreads over the rest.
    const x = weighted === 0 ? x0 : (x0 - weighted) / (1 - weighted);
    // Drawn only when walks are on, so a run without them makes the choices it always made.
    if (walkList !== undefined && walk > 0 && r.chance(walk)) rcuWalk(cpuArea, walkList);
    else if (x0 < weighted) weightedOp(cpuArea, r, x0, weights);
    else if (x < 0.002) {
      purge_vmap_area_lazy();
      count(cpuArea, OP_PURGE);
    } else if (x < 0.003) {
      vm_unmap_aliases();
      count(cpuArea, OP_UNMAP_ALIASES);
    } else if (live < maxLive && (live === 0 || x < 0.4)) {
      const y = r.next();
      if (y < 0.6) allocVfreeable(cpuArea, r);
      else if (y < 0.75) allocVmMapRam(cpuArea, r);
      else if (y < 0.88) allocVmap(cpuArea, r);
      else allocVmArea(cpuArea, r);
    } else if (x < 0.75 || live === maxLive) free(cpuArea, r, r.int(0, live - 1));
    else access(cpuArea, r, area(cpuArea, r.int(0, live - 1)));
    done++;
    // A safe point between operations: interrupts, RCU, and the kworker (free_work of deferred vfrees).
    sched_op_point();
  }
  return { counts: countsOf(cpuArea), ops: done, live: I32[(cpuArea + C.nr_live) >> 2]! };
}

/**
 * The `--mix` operation that `x` (below the weights' sum) falls on: vm_unmap_aliases,
 * purge_vmap_area_lazy, or a vread of a random live area's page (an allocation
 * when the CPU holds no area, another access when the drawn one is not vread's).
 */
function weightedOp(cpuArea: number, r: Prng, x: number, weights: readonly number[]): void {
  let k = 0;
  for (let at = weights[0]!; x >= at && k < weights.length - 1; at += weights[++k]!) {}
  const op = MIX_WEIGHTED_OPS[k]!;
  if (op === "vm_unmap_aliases") {
    vm_unmap_aliases();
    count(cpuArea, OP_UNMAP_ALIASES);
  } else if (op === "purge_vmap_area_lazy") {
    purge_vmap_area_lazy();
    count(cpuArea, OP_PURGE);
  } else {
    const live = I32[(cpuArea + C.nr_live) >> 2]!;
    const a = live === 0 ? 0 : area(cpuArea, r.int(0, live - 1));
    if (a === 0) allocVfreeable(cpuArea, r);
    else if (!vreadable(I32[(a + A.kind) >> 2]!)) access(cpuArea, r, a);
    else vreadStamp(cpuArea, F64[(a + A.addr) >> 3]!, tagOf(a), r.int(0, I32[(a + A.nr_pages) >> 2]! - 1));
  }
}

/**
 * Ends the mix on this CPU: frees every area it holds and the areas handed to
 * it or to its interrupt handler and not yet freed (all CPUs run this at once,
 * after every CPU stopped giving). Returns the counters.
 */
defineWorkload("vmalloc_mix_drain", (): VmallocMixResult => {
  const cpuArea = this_cpu_ptr(vmalloc_mix_cpu);
  let done = 0;
  for (let k = I32[(cpuArea + C.nr_live) >> 2]!; k > 0; k--) {
    freePlain(cpuArea, k - 1);
    done++;
    sched_op_point();
  }
  takeIncoming(cpuArea);
  const left = takeSlot(cpuArea + C.to_irq);
  if (left !== 0) {
    vfree(left);
    count(cpuArea, OP_VFREE);
  }
  return { counts: countsOf(cpuArea), ops: done, live: 0 };
});

/**
 * The end of the mix, on one CPU with the others parked and drained: the
 * handler goes, deferred vfrees run (flush_scheduled_work), vmap blocks and
 * lazily freed areas are purged (vm_unmap_aliases, purge_vmap_area_lazy),
 * and the RCU callbacks that free vmap_areas and vmap_blocks run (rcu_barrier).
 */
defineWorkload("vmalloc_mix_finish", (): void => {
  free_irq(VMALLOC_MIX_IRQ, 0);
  flush_scheduled_work();
  vm_unmap_aliases();
  purge_vmap_area_lazy();
  rcu_barrier();
});
