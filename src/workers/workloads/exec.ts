/**
 * The operations of `vmsim exec` (docs/exec.md), one script line per call:
 * the line's kernel call, run on the line's CPU — between irq_enter and
 * irq_exit when the line says `"irq": true`, so in_interrupt() is true and
 * vfree takes the deferred path — and the harness bookkeeping around it.
 *
 * The bookkeeping is the pages behind vmap and vm_map_ram: the caller of those
 * APIs owns the pages it maps, so exec allocates them (zeroed, so a reference
 * model can predict what a read returns), keeps them in a kmalloc'd array of
 * struct page pointers, counts them as harness pages for the page
 * conservation check, and frees them once the mapping is gone.
 *
 * Addresses travel as kaddrs; src/workers/exec_op.ts parses them and the
 * CLI (src/cli/exec.ts) formats them. Kernel failures are the kernel's: a
 * NULL return, a report (WARN, fault …) that the machine collects, or a BUG
 * that stops the machine.
 */
import { I32, theArena } from "../../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { reportBug } from "../../shared/report.js";
import { sched_op_point } from "../../sched/sched_point.js";
import { runInIrq } from "../../kernel/irq.js";
import { run_pending_work } from "../../kernel/workqueue.js";
import { GFP_KERNEL, __GFP_ZERO } from "../../mm/gfp.js";
import { __free_page, alloc_page, totalram_pages } from "../../mm/page_alloc.js";
import { kfree, kmalloc } from "../../mm/slab.js";
import { PAGE_KERNEL } from "../../mm/pgtable.js";
import { isFault, mmuRead, mmuWrite } from "../../mm/mmu.js";
import {
  type VmallocInfo,
  VM_MAP,
  __vmalloc_node,
  find_vm_area,
  get_vmalloc_info,
  purge_vmap_area_lazy,
  vfree,
  vm_map_ram,
  vm_unmap_ram,
  vmalloc,
  vmallocinfo,
  vmap,
  vunmap,
  vzalloc,
} from "../../mm/vmalloc.js";
import { ksym } from "../../kernel/kallsyms.js";
import { holdHarnessPages, releaseHarnessPages } from "../../check/pages.js";
import { defineWorkload } from "../workload.js";

/** NUMA_NO_NODE (include/linux/numa.h): the machine has one node. */
const NUMA_NO_NODE = -1;

/** Pages exec allocated and mapped with vmap or vm_map_ram: an arena array of `count` struct page pointers. */
export interface HeldPages {
  /** The kaddr they are mapped at. */
  readonly start: number;
  readonly count: number;
  /** Arena address of the kmalloc'd int32 array of struct page pointers. */
  readonly pages: number;
}

/** One script line, validated, with labels resolved to kaddrs. */
export type ExecRequest =
  | { readonly op: "vmalloc"; readonly size: number; readonly align: number | null; readonly irq: boolean }
  | { readonly op: "vzalloc"; readonly size: number; readonly irq: boolean }
  | {
      readonly op: "vfree" | "vunmap";
      readonly addr: number;
      readonly irq: boolean;
      /** The vmap pages mapped in the area `addr` lies in, if exec mapped them: freed once the area is gone. */
      readonly held: HeldPages | null;
    }
  | { readonly op: "vmap" | "vm_map_ram"; readonly count: number; readonly irq: boolean }
  | {
      readonly op: "vm_unmap_ram";
      readonly addr: number;
      readonly count: number;
      readonly irq: boolean;
      /** The pages exec mapped at exactly `addr` with exactly `count` pages: freed after the unmap. */
      readonly held: HeldPages | null;
    }
  /** `nullBase`: `addr` is an offset from a NULL pointer (a label whose allocation returned NULL), not a kaddr. */
  | {
      readonly op: "write";
      readonly addr: number;
      readonly hex: string;
      readonly irq: boolean;
      readonly nullBase?: boolean;
    }
  | {
      readonly op: "read";
      readonly addr: number;
      readonly len: number;
      readonly irq: boolean;
      readonly nullBase?: boolean;
    }
  | { readonly op: "purge" | "flush_work" | "vmallocinfo" | "meminfo"; readonly irq: boolean }
  /** Harness: frees the vmap pages whose area is gone (after deferred vfrees ran). */
  | { readonly op: "release_unmapped"; readonly held: readonly HeldPages[] };

/** What an operation returned; the CLI turns it into the result line. */
export interface ExecReply {
  /** vmalloc, vzalloc, vmap, vm_map_ram: the kaddr, 0 for NULL. */
  addr?: number;
  /** vmap, vm_map_ram: the pages now held at `addr`. */
  held?: HeldPages;
  /** Starts of HeldPages whose pages were freed. */
  released?: number[];
  /** read: the bytes as lowercase hex (also when a stale TLB entry served them). */
  hex?: string;
  /** read, write: the faulting kaddr's oops (reported too). */
  fault?: string;
  /** Why the harness could not make the kernel call (vmap's pages could not be allocated). */
  failed?: string;
  lines?: string[];
  meminfo?: VmallocInfo;
}

/** Runs the kernel call `fn` in interrupt context when the line asked for it. */
function call<T>(irq: boolean, fn: () => T): T {
  return irq ? runInIrq(fn) : fn();
}

/** The caller of a vmap/vm_map_ram: `count` fresh zeroed pages in a kmalloc'd array, or why not. */
function allocHeldPages(count: number): number | string {
  if (count > totalram_pages()) return `cannot allocate ${count} pages: the machine manages ${totalram_pages()}`;
  const pages = kmalloc(count * 4, GFP_KERNEL);
  if (pages === 0) return `no memory for an array of ${count} page pointers`;
  for (let i = 0; i < count; i++) {
    const page = alloc_page(GFP_KERNEL | __GFP_ZERO);
    if (page === 0) {
      for (let j = 0; j < i; j++) __free_page(I32[(pages >> 2) + j]!);
      kfree(pages);
      return `page allocation failure: ${i} of ${count} pages allocated`;
    }
    I32[(pages >> 2) + i] = page;
  }
  holdHarnessPages(count);
  return pages;
}

function freeHeldPages(pages: number, count: number): void {
  for (let i = 0; i < count; i++) __free_page(I32[(pages >> 2) + i]!);
  kfree(pages);
  releaseHarnessPages(count);
}

/** vmap or vm_map_ram of `count` fresh pages. */
function mapFresh(op: "vmap" | "vm_map_ram", count: number, irq: boolean): ExecReply {
  const pages = allocHeldPages(count);
  if (typeof pages === "string") return { addr: 0, failed: pages };
  const addr = call(irq, () =>
    op === "vmap" ? vmap(pages, count, VM_MAP, PAGE_KERNEL) : vm_map_ram(pages, count, NUMA_NO_NODE, PAGE_KERNEL),
  );
  if (addr === 0) {
    freeHeldPages(pages, count);
    return { addr };
  }
  return { addr, held: { start: addr, count, pages } };
}

/** Frees the pages of each `held` whose vm area no longer exists. */
function releaseUnmapped(held: readonly HeldPages[]): number[] {
  const released: number[] = [];
  for (const h of held) {
    if (find_vm_area(h.start) !== 0) continue;
    freeHeldPages(h.pages, h.count);
    released.push(h.start);
  }
  return released;
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/**
 * A load or store through a NULL pointer plus `off`: a user address, which
 * the kernel's page tables never map — __do_kernel_fault's oops (arm64,
 * v4.19), "NULL pointer dereference" below PAGE_SIZE.
 */
function null_deref(off: number): ExecReply {
  const what = off < PAGE_SIZE ? "NULL pointer dereference" : "paging request";
  const digits = layoutOf(theArena().config).vaBits > 32 ? 16 : 8;
  reportBug("fault", `Unable to handle kernel ${what} at virtual address 0x${off.toString(16).padStart(digits, "0")}`);
  return { fault: what };
}

/** Runs one exec request on this CPU. */
export function execOp(r: ExecRequest): ExecReply {
  // A safe point between operations: RCU's quiescent state, pending interrupts.
  sched_op_point();
  switch (r.op) {
    case "vmalloc":
      return {
        addr: call(r.irq, () =>
          r.align === null
            ? vmalloc(r.size)
            : __vmalloc_node(r.size, r.align, GFP_KERNEL, PAGE_KERNEL, NUMA_NO_NODE, ksym("vmalloc")),
        ),
      };
    case "vzalloc":
      return { addr: call(r.irq, () => vzalloc(r.size)) };
    case "vfree":
    case "vunmap":
      call(r.irq, () => (r.op === "vfree" ? vfree(r.addr) : vunmap(r.addr)));
      return { released: r.held ? releaseUnmapped([r.held]) : [] };
    case "vmap":
    case "vm_map_ram":
      return mapFresh(r.op, r.count, r.irq);
    case "vm_unmap_ram":
      call(r.irq, () => vm_unmap_ram(r.addr, r.count));
      if (r.held === null) return { released: [] };
      freeHeldPages(r.held.pages, r.held.count);
      return { released: [r.held.start] };
    case "write": {
      if (r.nullBase === true) return call(r.irq, () => null_deref(r.addr));
      const done = call(r.irq, () => mmuWrite(r.addr, Uint8Array.from(Buffer.from(r.hex, "hex"))));
      return isFault(done) ? { fault: done.fault } : {};
    }
    case "read": {
      if (r.nullBase === true) return call(r.irq, () => null_deref(r.addr));
      const got = call(r.irq, () => mmuRead(r.addr, r.len));
      return isFault(got) ? { fault: got.fault } : { hex: hexOf(got) };
    }
    case "purge":
      call(r.irq, () => purge_vmap_area_lazy());
      return {};
    case "flush_work":
      // This CPU's kworker runs what is pending on it: vfree_deferred's free_work among others.
      call(r.irq, () => run_pending_work());
      return {};
    case "vmallocinfo":
      return { lines: call(r.irq, () => vmallocinfo()) };
    case "meminfo":
      return { meminfo: call(r.irq, () => get_vmalloc_info()) };
    case "release_unmapped":
      return { released: releaseUnmapped(r.held) };
  }
}

defineWorkload("exec_op", (r: ExecRequest) => execOp(r));
