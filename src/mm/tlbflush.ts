/**
 * Per-CPU TLBs and the kernel's TLB maintenance (arch/arm64/include/asm/
 * tlbflush.h, v4.19).
 *
 * The TLB: each CPU owns a direct-mapped cache of TLB_NR_ENTRIES translations
 * indexed by virtual page number, in its per-CPU area. Only its own CPU reads
 * or writes it, so the 64-bit tag (an f64: page numbers reach 2^36) can never
 * be seen torn. An entry also remembers the pte slot it was walked from, so a
 * use of an entry whose PTE was cleared or changed since is detectable (mmu.ts
 * reports it); the slot stays a pte slot because kernel tables are never freed.
 *
 * Broadcast invalidation. TLBI VAAE1IS/VMALLE1IS followed by DSB ISH drops the
 * entries on every CPU and completes only once all have. As a CPU may not touch
 * another's entries, the flusher appends its range to a global log of
 * broadcasts numbered by a generation `gen`; before every TLB lookup each CPU
 * compares `gen` with the last broadcast it applied and first applies the ones
 * it missed to its own entries.
 *
 * Why that is as synchronous as TLBI+DSB: the flusher stores `gen` (Atomics)
 * before flush_tlb_kernel_range returns, and every lookup starts by loading it
 * (Atomics). Atomics are sequentially consistent, so a lookup that starts after
 * the flush returned reads the new `gen` and drops the flushed entries before
 * it consults them: no CPU translates through them any more. A lookup that read
 * `gen` before is an access already in flight when the TLBI was issued, which
 * the DSB also lets complete; here it spans at most one page (mmu.ts looks up
 * once per page).
 *
 * One global generation rather than one per CPU: a range travels with it, so a
 * CPU drops exactly the flushed range and a flush of the wrong range leaves the
 * stale entries it missed detectable. The log holds TLBI_LOG_SIZE broadcasts; a
 * CPU that fell further behind, or whose unread slot was being rewritten, drops
 * all its entries instead, which a TLB may always do.
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, F64, I32, U32, per_cpu_ptr, staticInit, theArena } from "../shared/arena.js";
import { PAGE_SIZE } from "../shared/config.js";
import { defineStruct } from "../shared/struct.js";
import { onSetCurrentCpu, this_cpu_ptr } from "../shared/smp.js";
import { SPINLOCK_T, spin_lock_init, spin_lock_irqsave, spin_unlock_irqrestore } from "../locks/spinlock.js";

/** Translations each CPU caches. */
export const TLB_NR_ENTRIES = 64;
/** Broadcasts a CPU may fall behind by before it must drop its whole TLB. */
export const TLBI_LOG_SIZE = 64;
/** MAX_TLB_RANGE (v4.19): a larger kernel range is flushed with flush_tlb_all. */
export const MAX_TLB_RANGE = 1024 * PAGE_SIZE;
/** A page number above any kaddr's: flush_tlb_all's range end. */
const VPN_LIMIT = 2 ** 52;

/** One cached translation. */
export const TLB_ENTRY = defineStruct("tlb_entry", [
  /** Virtual page number (kaddr >> PAGE_SHIFT). */
  { name: "vpn", type: "f64", guard: "owner" },
  /** The descriptor as walked. */
  { name: "pte", type: "u32", guard: "owner" },
  /** The pte slot it was walked from; 0 marks an invalid entry. */
  { name: "ptep", type: "ptr", guard: "owner" },
]);
const E = TLB_ENTRY.off;
const TLB_ENTRY_SIZE = TLB_ENTRY.size;

/** A CPU's TLB and its counters. */
export const CPU_TLB = defineStruct("cpu_tlb", [
  /** The last broadcast generation applied to `entries`. */
  { name: "seen", type: "i32", guard: "owner" },
  { name: "nr_hits", type: "f64", guard: "owner" },
  { name: "nr_misses", type: "f64", guard: "owner" },
  /** Valid entries dropped by flushes. */
  { name: "nr_invalidated", type: "f64", guard: "owner" },
  /** Accesses served by a stale entry. */
  { name: "nr_stale", type: "f64", guard: "owner" },
  { name: "entries", type: TLB_ENTRY, count: TLB_NR_ENTRIES, guard: "owner" },
]);
const T = CPU_TLB.off;
const cpu_tlb = DEFINE_PER_CPU("cpu_tlb", CPU_TLB);

/** One broadcast range, in page numbers split into 32-bit halves (Atomics has no f64; lo read back >>> 0). */
const TLBI_OP = defineStruct("tlbi_op", [
  { name: "start_lo", type: "u32", guard: "atomic" },
  { name: "start_hi", type: "u32", guard: "atomic" },
  { name: "end_lo", type: "u32", guard: "atomic" },
  { name: "end_hi", type: "u32", guard: "atomic" },
]);

/** The broadcast log: the interconnect carrying TLBI ...IS to every CPU. */
export const TLBI_BROADCAST = defineStruct("tlbi_broadcast", [
  /** Serializes flushers (the interconnect orders broadcasts). */
  { name: "lock", type: SPINLOCK_T },
  /** Broadcasts published so far; slot gen % TLBI_LOG_SIZE holds the last one. */
  { name: "gen", type: "i32", guard: "atomic" },
  /** The broadcast being written: its slot may be torn until `gen` reaches it. */
  { name: "wgen", type: "i32", guard: "atomic" },
  { name: "nr_range", type: "f64", guard: "tlbi_broadcast.lock" },
  { name: "nr_all", type: "f64", guard: "tlbi_broadcast.lock" },
  { name: "log", type: TLBI_OP, count: TLBI_LOG_SIZE, guard: "atomic" },
]);
const B = TLBI_BROADCAST.off;
const tlbi = DEFINE_GLOBAL("tlbi_broadcast", TLBI_BROADCAST);
staticInit(() => spin_lock_init(tlbi.ptr + B.lock, "tlbi_broadcast.lock"));

/* This CPU's TLB, cached: it is on every load and store. */
let tlb = 0;
let entries = 0;
onSetCurrentCpu(() => {
  tlb = this_cpu_ptr(cpu_tlb);
  entries = tlb + T.entries;
});

const HI = 2 ** 32;

/*** The TLB (owner only) ***/

/**
 * The entry page `vpn` maps to (direct-mapped): vpn mod TLB_NR_ENTRIES by a
 * mask, as page numbers pass 2^31 and a float modulo is slow (ToInt32 keeps the low bits).
 */
function tlb_slot(vpn: number): number {
  return entries + (vpn & (TLB_NR_ENTRIES - 1)) * TLB_ENTRY_SIZE;
}

/** Drops this CPU's valid entries with page numbers in [start, end). */
function tlb_invalidate(start: number, end: number): void {
  let n = 0;
  for (let i = 0; i < TLB_NR_ENTRIES; i++) {
    const e = entries + i * TLB_ENTRY_SIZE;
    if (I32[(e + E.ptep) >> 2] === 0) continue;
    const vpn = F64[(e + E.vpn) >> 3]!;
    if (vpn >= start && vpn < end) {
      I32[(e + E.ptep) >> 2] = 0;
      n++;
    }
  }
  F64[(tlb + T.nr_invalidated) >> 3] += n;
}

/** local_flush_tlb_all (TLBI VMALLE1): drops every entry of this CPU's TLB. */
export function local_flush_tlb_all(): void {
  tlb_invalidate(0, VPN_LIMIT);
}

/** Applies the broadcasts this CPU has not seen yet, up to generation `gen`. */
function tlb_catch_up(gen: number): void {
  const seen = I32[(tlb + T.seen) >> 2]!;
  if (((gen - seen) | 0) > TLBI_LOG_SIZE) {
    local_flush_tlb_all();
  } else {
    const base = tlbi.ptr + B.log;
    for (let g = (seen + 1) | 0; g !== ((gen + 1) | 0); g = (g + 1) | 0) {
      const op = (base + (g & (TLBI_LOG_SIZE - 1)) * TLBI_OP.size) >> 2;
      const start = Atomics.load(I32, op + 1) * HI + (Atomics.load(I32, op) >>> 0);
      const end = Atomics.load(I32, op + 3) * HI + (Atomics.load(I32, op + 2) >>> 0);
      tlb_invalidate(start, end);
    }
    // The flusher stores wgen before rewriting a slot: if any slot read above
    // was being rewritten, that store came first and wgen now passes our oldest.
    const wgen = Atomics.load(I32, (tlbi.ptr + B.wgen) >> 2);
    if (((wgen - seen - 1) | 0) >= TLBI_LOG_SIZE) local_flush_tlb_all();
  }
  I32[(tlb + T.seen) >> 2] = gen;
}

/**
 * The entry translating page `vpn` on this CPU, or 0 on a miss. Applies the
 * pending broadcasts first (the load of `gen` is what makes flushes synchronous).
 */
export function tlb_lookup(vpn: number): number {
  const e = tlbProbe(vpn);
  F64[(tlb + (e !== 0 ? T.nr_hits : T.nr_misses)) >> 3] += 1;
  return e;
}

/**
 * The entry translating page `vpn` on this CPU, or 0, once the pending
 * broadcasts are applied: tlb_lookup without counting a hit or a miss (a
 * look at the TLB, not an access).
 */
export function tlbProbe(vpn: number): number {
  const gen = Atomics.load(I32, (tlbi.ptr + B.gen) >> 2);
  if (gen !== I32[(tlb + T.seen) >> 2]) tlb_catch_up(gen);
  const e = tlb_slot(vpn);
  return I32[(e + E.ptep) >> 2] !== 0 && F64[(e + E.vpn) >> 3] === vpn ? e : 0;
}

/** Caches the walk of page `vpn` (descriptor `pte` read from slot `ptep`), evicting the slot's entry. */
export function tlb_fill(vpn: number, pte: number, ptep: number): void {
  const e = tlb_slot(vpn);
  F64[(e + E.vpn) >> 3] = vpn;
  U32[(e + E.pte) >> 2] = pte;
  I32[(e + E.ptep) >> 2] = ptep;
}

/** Counts an access served by a stale entry. */
export function tlb_count_stale(): void {
  F64[(tlb + T.nr_stale) >> 3] += 1;
}

/*** Broadcast maintenance (tlbflush.h) ***/

/** Publishes one broadcast of page range [start, end) to every CPU. */
function tlbi_broadcast(start: number, end: number, all: boolean): void {
  const lock = tlbi.ptr + B.lock;
  const flags = spin_lock_irqsave(lock);
  const g = (Atomics.load(I32, (tlbi.ptr + B.gen) >> 2) + 1) | 0;
  // Announce the slot rewrite before touching it (readers validate against wgen), then publish with gen.
  Atomics.store(I32, (tlbi.ptr + B.wgen) >> 2, g);
  const op = (tlbi.ptr + B.log + (g & (TLBI_LOG_SIZE - 1)) * TLBI_OP.size) >> 2;
  Atomics.store(I32, op, (start % HI) | 0);
  Atomics.store(I32, op + 1, Math.floor(start / HI));
  Atomics.store(I32, op + 2, (end % HI) | 0);
  Atomics.store(I32, op + 3, Math.floor(end / HI));
  Atomics.store(I32, (tlbi.ptr + B.gen) >> 2, g);
  F64[(tlbi.ptr + (all ? B.nr_all : B.nr_range)) >> 3] += 1;
  spin_unlock_irqrestore(lock, flags);
}

/** flush_tlb_all (v4.19: TLBI VMALLE1IS + DSB ISH): every CPU drops every entry. */
export function flush_tlb_all(): void {
  tlbi_broadcast(0, VPN_LIMIT, true);
}

/**
 * flush_tlb_kernel_range (v4.19): every CPU drops its entries for the pages of
 * kaddrs [start, end) (start >> PAGE_SHIFT up to, not including, end >>
 * PAGE_SHIFT, as the TLBI loop runs). Over MAX_TLB_RANGE it is flush_tlb_all.
 */
export function flush_tlb_kernel_range(start: number, end: number): void {
  if (end - start > MAX_TLB_RANGE) {
    flush_tlb_all();
    return;
  }
  tlbi_broadcast(Math.floor(start / PAGE_SIZE), Math.floor(end / PAGE_SIZE), false);
}

/*** Counters (harness) ***/

/** TLB counters, all CPUs; read while the CPUs are parked. */
export interface TlbStats {
  /** flush_tlb_kernel_range broadcasts (those not turned into flush_tlb_all). */
  readonly flushRange: number;
  /** flush_tlb_all broadcasts. */
  readonly flushAll: number;
  /** Valid entries dropped by flushes, summed over CPUs. */
  readonly invalidated: number;
  readonly hits: number;
  readonly misses: number;
  /** Accesses served by a stale entry. */
  readonly stale: number;
}

/** Sums the TLB counters of every CPU and the broadcast counts. */
export function tlbStats(): TlbStats {
  let invalidated = 0;
  let hits = 0;
  let misses = 0;
  let stale = 0;
  for (let cpu = 0; cpu < theArena().config.cpus; cpu++) {
    const t = per_cpu_ptr(cpu_tlb, cpu);
    invalidated += F64[(t + T.nr_invalidated) >> 3]!;
    hits += F64[(t + T.nr_hits) >> 3]!;
    misses += F64[(t + T.nr_misses) >> 3]!;
    stale += F64[(t + T.nr_stale) >> 3]!;
  }
  return {
    flushRange: F64[(tlbi.ptr + B.nr_range) >> 3]!,
    flushAll: F64[(tlbi.ptr + B.nr_all) >> 3]!,
    invalidated,
    hits,
    misses,
    stale,
  };
}
