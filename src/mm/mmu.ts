/**
 * The MMU: loads and stores through kernel virtual addresses, as a CPU makes
 * them — translated by this CPU's TLB (tlbflush.ts), filled on a miss by a walk
 * of the kernel page tables (pgtable.ts), served from the page contents in the
 * arena. These are hardware, not kernel functions, hence camelCase: they stand
 * for the accesses vmalloc's users make through the pointer they got
 * (test_vmalloc's `*p = 0`, a driver filling its buffer).
 *
 * - No present PTE: an oops, reportBug("fault", "Unable to handle kernel paging
 *   request at virtual address 0x…") with the walk (show_pte), and a Fault is
 *   returned. A store through a PTE_RDONLY mapping is a permission fault,
 *   reported the same way (arch/arm64/mm/fault.c's wording, v4.19).
 * - A TLB hit whose PTE was cleared or changed since the fill (unmapped, flush
 *   still pending) is reported as "stale-tlb" with the address, the stale pfn
 *   and the CPU, and is still served through the stale translation, as
 *   hardware would: the use-after-unmap that the lazy purge's flush prevents.
 *
 * An access crossing pages is translated page by page; the pages before a
 * faulting one have been read or written (stores before the faulting one retire).
 * The main thread uses CPU 0's TLB: once the CPUs run it must not access
 * memory through here (worker 0 owns that TLB); it walks with kernel_pte_lookup.
 */
import { I32, U32, U8, pfn_to_data, theArena } from "../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../shared/config.js";
import { formatKaddr } from "../shared/layouts.js";
import { reportBug } from "../shared/report.js";
import { smp_processor_id } from "../shared/smp.js";
import { mmuTableWalk, ptep_get, pte_pfn, pte_present, pte_rdonly, show_pte } from "./pgtable.js";
import { TLB_ENTRY, tlbProbe, tlb_count_stale, tlb_fill, tlb_lookup } from "./tlbflush.js";

/** A faulting access (the oops was reported). */
export interface Fault {
  /** What the oops names: "paging request" or "write to read-only memory". */
  readonly fault: string;
  /** The kaddr that faulted. */
  readonly kaddr: number;
}

/** Narrows a read/write result to its Fault. */
export function isFault(r: unknown): r is Fault {
  return typeof r === "object" && r !== null && "fault" in r;
}

/** 1 / PAGE_SIZE: kaddr * PAGE_SCALE is exact (a power of two), its floor the page number. */
const PAGE_SCALE = 1 / PAGE_SIZE;

function pageFault(addr: number, what: string): Fault {
  reportBug(
    "fault",
    `Unable to handle kernel ${what} at virtual address ${formatKaddr(layoutOf(theArena().config), addr)}\n${show_pte(addr)}`,
  );
  return { fault: what, kaddr: addr };
}

function staleTlbHit(addr: number, write: boolean, pte: number, now: number): void {
  tlb_count_stale();
  reportBug(
    "stale-tlb",
    `CPU${smp_processor_id()}: ${write ? "write" : "read"} at virtual address ${formatKaddr(layoutOf(theArena().config), addr)} ` +
      `served by a stale TLB entry for pfn ${pte_pfn(pte)} (0x${pte_pfn(pte).toString(16)}): its PTE is now 0x${now.toString(16).padStart(8, "0")} and no TLB flush has happened`,
  );
}

/**
 * Translates page `vpn` on this CPU for an access at kaddr `addr` in it: the
 * arena address of the page's contents, or the Fault it raised.
 */
function translatePage(addr: number, vpn: number, write: boolean): number | Fault {
  const e = tlb_lookup(vpn);
  let pte: number;
  if (e) {
    pte = U32[(e + TLB_ENTRY.off.pte) >> 2]!;
    const now = ptep_get(I32[(e + TLB_ENTRY.off.ptep) >> 2]!);
    if (now !== pte) staleTlbHit(addr, write, pte, now);
  } else {
    const ptep = mmuTableWalk(vpn * PAGE_SIZE);
    pte = ptep ? ptep_get(ptep) : 0;
    if (!pte_present(pte)) return pageFault(addr, "paging request");
    tlb_fill(vpn, pte, ptep);
  }
  if (write && pte_rdonly(pte)) return pageFault(addr, "write to read-only memory");
  return pfn_to_data(pte_pfn(pte));
}

/*
 * Both accessors split the access at page boundaries; kaddrs pass 2^32, so the
 * page number comes from an exact float scaling, not a shift. Short copies are
 * byte loops: a subarray would allocate on every store (test_vmalloc's `*p = 0`).
 */
const SHORT_COPY = 64;

/** Loads `len` bytes from kaddr `kaddr` on this CPU. */
export function mmuRead(kaddr: number, len: number): Uint8Array | Fault {
  const out = new Uint8Array(len);
  for (let done = 0; done < len; ) {
    const addr = kaddr + done;
    const vpn = Math.floor(addr * PAGE_SCALE);
    const data = translatePage(addr, vpn, false);
    if (typeof data !== "number") return data;
    const off = addr - vpn * PAGE_SIZE;
    const n = Math.min(len - done, PAGE_SIZE - off);
    const p = data + off;
    if (n <= SHORT_COPY) for (let i = 0; i < n; i++) out[done + i] = U8[p + i]!;
    else out.set(U8.subarray(p, p + n), done);
    done += n;
  }
  return out;
}

/** Stores `bytes` at kaddr `kaddr` on this CPU; true, or the Fault of the first page that faulted. */
export function mmuWrite(kaddr: number, bytes: Uint8Array): true | Fault {
  const len = bytes.length;
  for (let done = 0; done < len; ) {
    const addr = kaddr + done;
    const vpn = Math.floor(addr * PAGE_SCALE);
    const data = translatePage(addr, vpn, true);
    if (typeof data !== "number") return data;
    const off = addr - vpn * PAGE_SIZE;
    const n = Math.min(len - done, PAGE_SIZE - off);
    const p = data + off;
    if (n <= SHORT_COPY) for (let i = 0; i < n; i++) U8[p + i] = bytes[done + i]!;
    else U8.set(bytes.subarray(done, done + n), p);
    done += n;
  }
  return true;
}

/**
 * The pfn this CPU's TLB still translates kaddr `addr` to although its PTE
 * was cleared or changed since the fill and no flush has dropped it, or -1:
 * the alias vm_unmap_aliases promises to leave nowhere. A look at the TLB,
 * not an access (nothing is reported or counted).
 */
export function staleTranslation(addr: number): number {
  const e = tlbProbe(Math.floor(addr * PAGE_SCALE));
  if (e === 0) return -1;
  const pte = U32[(e + TLB_ENTRY.off.pte) >> 2]!;
  return ptep_get(I32[(e + TLB_ENTRY.off.ptep) >> 2]!) === pte ? -1 : pte_pfn(pte);
}
