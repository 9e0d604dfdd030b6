/**
 * KCSAN, the Kernel Concurrency Sanitizer (kernel/kcsan/core.c and encoding.h,
 * follows v6.12): the runtime that the instrumented build (dist-kcsan/, made
 * by tools/kcsan_build.ts) calls on every plain and marked access of the
 * arena views in the kernel folders. It sits on the sched floor so that every
 * kernel folder can call it and its stall can be a sched point.
 *
 * The API the instrumented code calls (stable: tools/kcsan_build.ts emits it):
 *
 *   __tsan_readN(i), __tsan_writeN(i), __tsan_read_writeN(i)
 *       a plain load, store, or compound (`+=`, `++`) access of element `i` of
 *       the N-byte view (N = 1: U8, 2: U16, 4: I32/U32, 8: F64); returns `i`,
 *       so `I32[i]` becomes `I32[__tsan_read4(i)]` and evaluates `i` once.
 *   __tsan_atomic_readN(i), __tsan_atomic_writeN(i), __tsan_atomic_read_writeN(i)
 *       the same for a marked access (an Atomics operation; READ_ONCE and
 *       WRITE_ONCE are Atomics inside): checked against watchpoints, never
 *       watched, as KCSAN treats marked accesses.
 *   __tsan_memset(c, from, to), __tsan_memcpy_from(from, to), __tsan_memcpy_to(src, at)
 *       `U8.fill(c, from, to)`, `U8.subarray(from, to)` (a copy's source) and
 *       `U8.set(src, at)`: plain range accesses, checked and never watched.
 *   kcsan_check_read(addr, size), kcsan_check_write(addr, size)
 *       an explicit check of a byte range (the kernel's kcsan_check_access).
 *
 * Accesses inside data_race(…) are left alone by the build (KCSAN ignores them).
 *
 * Free-running, the algorithm is KCSAN's: every instrumented access looks at
 * the one watchpoint slot of its address (the fast path: one Atomics load).
 * Every kcsan_skip_watch-th plain access (randomized) sets up a watchpoint on
 * its address and size, stalls (a busy udelay), reads the value again and
 * removes the watchpoint. Another CPU's conflicting access — overlapping
 * bytes, at least one a write — consumes the watchpoint and leaves its side
 * (call chain, held locks) in other_info; the watcher then reports the race. A
 * value that changed with no conflicting access seen is a race of unknown
 * origin. As the kernel's defaults, CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC
 * (plain aligned writes up to word size set up no watchpoint) and
 * CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY (a race whose value did not change is
 * not reported) hold; CONFIG_KCSAN_STRICT (`--kcsan-strict`) turns both off.
 * Reports (report.c's format) pass the debugfs report filter
 * (`--kcsan-skip-report`: a race with a listed function as either access'
 * top frame is counted, not reported) and are deduplicated per pair of
 * functions in the arena: each pair is reported once per machine.
 *
 * Under the deterministic scheduler every plain access is watched until its
 * CPU's next release instead (see "Deterministic mode" below): the stall is
 * the time the strategy keeps the CPU switched out, and the run's schedule is
 * the plain build's. The release points are the unlocks (the KCSAN build
 * starts them with __tsan_release) and the ordered Atomics writes.
 *
 * All KCSAN state — watchpoints, per-CPU skip counts and PRNG states,
 * other_info, the accesses in flight — lives in the arena's "kcsan" region
 * (empty without --kcsan), so a run, its replay and a restored snapshot watch
 * alike.
 */
import { I32, U8, U16, U32, defineRegion, readCString, staticInit, theArena, writeCString } from "../shared/arena.js";
import type { MachineConfig } from "../shared/config.js";
import { CALL_CHAIN_DEPTH, kernelCallChain, registerAfterOops, reportBug } from "../shared/report.js";
import { onSetCurrentCpu, smp_processor_id } from "../shared/smp.js";
import { defineStruct } from "../shared/struct.js";
import { kcsanSiteName } from "./kcsan_sites.js";
import { registerSwitchOut, schedDeterministic, schedGlobalStep, sched_yield } from "./sched_det.js";

/* Access types (include/linux/kcsan-checks.h). */
export const KCSAN_ACCESS_WRITE = 1 << 0;
export const KCSAN_ACCESS_COMPOUND = 1 << 1;
export const KCSAN_ACCESS_ATOMIC = 1 << 2;

/** CONFIG_KCSAN_NUM_WATCHPOINTS. */
export const CONFIG_KCSAN_NUM_WATCHPOINTS = 64;
/** Defaults of the tunables (CONFIG_KCSAN_SKIP_WATCH, CONFIG_KCSAN_UDELAY_TASK / _INTERRUPT, µs). */
export const CONFIG_KCSAN_SKIP_WATCH = 4000;
export const CONFIG_KCSAN_UDELAY_TASK = 80;
export const CONFIG_KCSAN_UDELAY_INTERRUPT = 20;

/* encoding.h: 0 is no watchpoint, 1 a consumed one; a live one has bit 1 set. */
const INVALID_WATCHPOINT = 0;
const CONSUMED_WATCHPOINT = 1;
const PAGE_SHIFT = 12;
const SLOT_MASK = CONFIG_KCSAN_NUM_WATCHPOINTS - 1;

/** Bytes of text one side of a report keeps in the arena: its call chain, its held locks, its task's name. */
const CHAIN_LEN = 256;
const LOCKS_LEN = 192;
const COMM_LEN = 16;
/** Function pairs reported so far (a hash set): past this many distinct pairs, no more reports. */
const NR_REPORTED = 256;

/** Per CPU: the sampling state (kcsan_skip, kcsan_rand_state); only its own CPU touches it. */
const KCSAN_CPU = defineStruct("kcsan_cpu", [
  { name: "kcsan_skip", type: "i32", guard: "owner" },
  { name: "kcsan_rand_state", type: "u32", guard: "owner" },
  // Deterministic mode: releases so far; a write of its that ran into another CPU's read, to settle.
  { name: "epoch", type: "i32", guard: "the run token" },
  { name: "pend_valid", type: "i32", guard: "owner" },
  { name: "pend_entry", type: "i32", count: 6, guard: "owner" },
  { name: "pend_addr", type: "i32", guard: "owner" },
  { name: "pend_size", type: "i32", guard: "owner" },
  { name: "pend_type", type: "i32", guard: "owner" },
  { name: "pend_chain", type: "u32", count: CHAIN_LEN / 4, guard: "owner" },
  { name: "pend_locks", type: "u32", count: LOCKS_LEN / 4, guard: "owner" },
  // Whether it has watched an access since its last release, and its call chain where it was last switched
  // out with one (the side of a race it still has in flight).
  { name: "in_flight", type: "i32", guard: "owner" },
  { name: "switch_chain", type: "u32", count: CHAIN_LEN / 4, guard: "the run token" },
]);

/**
 * report.c's other_info: the consumer's side of a race, one per watchpoint
 * slot. The CPU whose cmpxchg consumed the slot's watchpoint owns it until it
 * sets `valid`; the watcher reads it after that and clears `valid`.
 */
const OTHER_INFO = defineStruct("kcsan_other_info", [
  { name: "valid", type: "i32", guard: "atomic" },
  { name: "cpu", type: "i32", guard: "owner" },
  { name: "in_task", type: "i32", guard: "owner" },
  { name: "type", type: "i32", guard: "owner" },
  { name: "addr", type: "i32", guard: "owner" },
  { name: "size", type: "i32", guard: "owner" },
  { name: "chain", type: "u32", count: CHAIN_LEN / 4, guard: "owner" },
  { name: "locks", type: "u32", count: LOCKS_LEN / 4, guard: "owner" },
  { name: "comm", type: "u32", count: COMM_LEN / 4, guard: "owner" },
]);

/** The statistics of kernel/kcsan/debugfs.c, machine-wide (Atomics). */
export const KCSAN_COUNTERS = [
  "setup_watchpoints",
  "no_capacity",
  "data_races",
  "races_unknown_origin",
  "unchanged_value_races",
  "filtered_reports",
] as const;
export type KcsanCounter = (typeof KCSAN_COUNTERS)[number];
const COUNTER_SETUP_WATCHPOINTS = 0;
const COUNTER_NO_CAPACITY = 1;
const COUNTER_DATA_RACES = 2;
const COUNTER_RACES_UNKNOWN_ORIGIN = 3;
/* Not debugfs counters: why a race went unreported (CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY; the report filter). */
const COUNTER_UNCHANGED_VALUE = 4;
const COUNTER_FILTERED_REPORTS = 5;
/* Not counters: reports made (the oops window waits for one), and whether an oops window ran. */
const COUNTER_REPORTS = 6;
const COUNTER_OOPS_WINDOWS = 7;

/**
 * The region's parts, in order: watchpoints[], counters, reported pairs, other_infos[], the accesses in flight,
 * one kcsan_cpu per CPU.
 */
const WP_BYTES = CONFIG_KCSAN_NUM_WATCHPOINTS * 4 + 16 * 4;
const REPORTED_BYTES = NR_REPORTED * 4;
const OTHER_BYTES = CONFIG_KCSAN_NUM_WATCHPOINTS * OTHER_INFO.size;
/**
 * Deterministic mode's accesses in flight: a 2-way set-associative table by
 * 8-byte granule. An entry: granule + 1, info (CPU, access type, size, offset,
 * interrupt context), the CPU's epoch at the access, its site, and the value it
 * read (two words). It is live while its CPU's epoch is unchanged.
 */
const IF_SETS = 8192;
const IF_WAYS = 2;
const IF_WORDS = 6;
const IF_BYTES = IF_SETS * IF_WAYS * IF_WORDS * 4;
const regionBytes = (c: MachineConfig): number =>
  c.kcsan ? WP_BYTES + REPORTED_BYTES + OTHER_BYTES + IF_BYTES + c.cpus * KCSAN_CPU.size : 0;
const kcsan_region = defineRegion("kcsan", regionBytes, 64, false);

/** The task names live where the watchdog keeps current->comm; it registers the reader. */
let commOf: (cpu: number) => string = () => "";
/** in_task() of this CPU: the percpu floor registers it (preempt_count lives there). */
let inTask: () => boolean = () => true;
/** The classes a CPU holds (lockdep, a floor above, registers it); null when lockdep is off. */
let heldLocksOf: (cpu: number) => string[] | null = () => null;

/** The watchdog registers how to read a CPU's current->comm. */
export function kcsanRegisterComm(fn: (cpu: number) => string): void {
  commOf = fn;
}
/** The percpu floor registers in_task(). */
export function kcsanRegisterInTask(fn: () => boolean): void {
  inTask = fn;
}
/** Lockdep registers its view of a CPU's held locks. */
export function kcsanRegisterHeldLocks(fn: (cpu: number) => string[] | null): void {
  heldLocksOf = fn;
}

/** kcsan_counter_inc (kcsan.h). */
function kcsan_counter_inc(c: number): void {
  Atomics.add(I32, wp0 + CONFIG_KCSAN_NUM_WATCHPOINTS + c, 1);
}

/**
 * /sys/kernel/debug/kcsan's counters of the machine this thread is attached
 * to (all zero without --kcsan): watchpoints set up, sampled accesses that
 * found every slot of theirs busy, races seen by a consumer, values that
 * changed under a watchpoint with no access seen.
 */
export function kcsanCounters(): Record<KcsanCounter, number> {
  const a = theArena();
  const out = {} as Record<KcsanCounter, number>;
  KCSAN_COUNTERS.forEach((name, i) => {
    out[name] =
      a.config.kcsan && kcsan_region.size > 0
        ? Atomics.load(I32, (kcsan_region.base >> 2) + CONFIG_KCSAN_NUM_WATCHPOINTS + i)
        : 0;
  });
  return out;
}

/* This thread's view of the region (immutable after attach). */
let kcsan_enabled = false;
let wp0 = 0; // I32 index of watchpoints[0]
let reported0 = 0; // I32 index of the reported-pairs set
let other0 = 0; // byte address of other_infos[0]
let skipIdx = 0; // I32 index of this CPU's kcsan_skip
let myPercpu = 0; // this CPU's per-CPU area [myPercpu, myPercpuEnd)
let myPercpuEnd = 0;
let randIdx = 0;
let if0 = 0;
let cpus0 = 0;
let meCpu = 0;
let epochIdx = 0;
let pendIdx = 0;
let inFlightIdx = 0;
let kcsan_skip_watch = CONFIG_KCSAN_SKIP_WATCH;
let kcsan_udelay_task = CONFIG_KCSAN_UDELAY_TASK;
let kcsan_udelay_interrupt = CONFIG_KCSAN_UDELAY_INTERRUPT;
let kcsan_strict = false;
/** report_filterlist (debugfs.c): a blacklist of function names, from the machine's config. */
let report_filterlist: ReadonlySet<string> = new Set();

onSetCurrentCpu((cpu) => {
  const a = theArena();
  kcsan_enabled = a.config.kcsan && kcsan_region.size > 0;
  if (!kcsan_enabled) return;
  const base = kcsan_region.base;
  wp0 = base >> 2;
  reported0 = (base + WP_BYTES) >> 2;
  other0 = base + WP_BYTES + REPORTED_BYTES;
  if0 = (other0 + OTHER_BYTES) >> 2;
  cpus0 = other0 + OTHER_BYTES + IF_BYTES;
  meCpu = cpu;
  const me = cpus0 + cpu * KCSAN_CPU.size;
  epochIdx = (me + KCSAN_CPU.off.epoch) >> 2;
  pendIdx = (me + KCSAN_CPU.off.pend_valid) >> 2;
  inFlightIdx = (me + KCSAN_CPU.off.in_flight) >> 2;
  skipIdx = (me + KCSAN_CPU.off.kcsan_skip) >> 2;
  randIdx = (me + KCSAN_CPU.off.kcsan_rand_state) >> 2;
  myPercpu = a.percpuBase + cpu * a.percpuStride;
  myPercpuEnd = myPercpu + a.percpuStride;
  kcsan_skip_watch = a.config.kcsanSkipWatch;
  kcsan_udelay_task = a.config.kcsanUdelayTask;
  kcsan_udelay_interrupt = a.config.kcsanUdelayInterrupt;
  kcsan_strict = a.config.kcsanStrict;
  report_filterlist = new Set(a.config.kcsanSkipReport);
});

/* Each CPU's PRNG starts from the machine's seed; its skip count is drawn from it on first use (-1). */
staticInit(() => {
  const a = theArena();
  if (kcsan_region.size === 0) return;
  const cpus0 = kcsan_region.base + WP_BYTES + REPORTED_BYTES + OTHER_BYTES + IF_BYTES;
  for (let cpu = 0; cpu < a.config.cpus; cpu++) {
    const p = cpus0 + cpu * KCSAN_CPU.size;
    I32[(p + KCSAN_CPU.off.kcsan_skip) >> 2] = 0;
    U32[(p + KCSAN_CPU.off.kcsan_rand_state) >> 2] = (a.config.seed ^ Math.imul(cpu + 1, 0x9e3779b9)) >>> 0;
  }
});

/** prandom_u32_state's stand-in (kcsan's next_pseudo_random32, v5.10): an LCG on this CPU's state. */
function prandom_u32_max(ceil: number): number {
  const s = (Math.imul(U32[randIdx]!, 1664525) + 1013904223) >>> 0;
  U32[randIdx] = s;
  return Math.floor((s / 4294967296) * ceil);
}

/** reset_kcsan_skip (core.c): the next watch after skip_watch accesses, minus a random part. */
function reset_kcsan_skip(): void {
  I32[skipIdx] = kcsan_skip_watch - prandom_u32_max(kcsan_skip_watch);
}

/** watchpoint_slot (core.c): by page, as KCSAN. */
function watchpoint_slot(addr: number): number {
  return (addr >>> PAGE_SHIFT) & SLOT_MASK;
}

/** encode_watchpoint (encoding.h): the address less its slot bits, log2(size), is_write, and bit 1. */
function encode_watchpoint(addr: number, size: number, isWrite: boolean): number {
  const rest = (addr & 0xfff) | ((addr >>> (PAGE_SHIFT + 6)) << 12);
  return (rest << 5) | ((31 - Math.clz32(size)) << 3) | (isWrite ? 4 : 0) | 2;
}

const wpAddr = (w: number, slot: number): number =>
  ((w >>> 5) & 0xfff) | (slot << PAGE_SHIFT) | ((w >>> 17) << (PAGE_SHIFT + 6));
const wpSize = (w: number): number => 1 << ((w >>> 3) & 3);
const wpIsWrite = (w: number): boolean => (w & 4) !== 0;

/** matching_access (encoding.h): do [a1, a1+s1) and [a2, a2+s2) overlap? */
function matching_access(a1: number, s1: number, a2: number, s2: number): boolean {
  return a1 < a2 + s2 && a2 < a1 + s1;
}

/**
 * check_access (core.c): the fast path of every instrumented access — one
 * load of the address' watchpoint slot, one decrement of the skip count.
 */
function check_access(addr: number, size: number, type: number, site = 0): void {
  if (!kcsan_enabled) return;
  if (schedDeterministic) {
    inflight_access(addr, size, type, site);
    return;
  }
  const slot = (addr >>> PAGE_SHIFT) & SLOT_MASK;
  const w = Atomics.load(I32, wp0 + slot);
  if (w > CONSUMED_WATCHPOINT) {
    // find_watchpoint: a read conflicts only with a write watchpoint; a write with any.
    if ((type & KCSAN_ACCESS_WRITE || wpIsWrite(w)) && matching_access(wpAddr(w, slot), wpSize(w), addr, size)) {
      kcsan_found_watchpoint(addr, size, type, slot, w);
      return;
    }
  }
  if (--I32[skipIdx]! < 0) kcsan_setup_watchpoint(addr, size, type);
}

/**
 * kcsan_found_watchpoint (core.c): this access conflicts with another CPU's
 * watchpoint. The CPU whose cmpxchg consumes it leaves its side of the report
 * in the slot's other_info (kcsan_report_set_info).
 */
function kcsan_found_watchpoint(addr: number, size: number, type: number, slot: number, w: number): void {
  if (Atomics.compareExchange(I32, wp0 + slot, w, CONSUMED_WATCHPOINT) !== w) return;
  kcsan_counter_inc(COUNTER_DATA_RACES);
  const o = other0 + slot * OTHER_INFO.size;
  const cpu = smp_processor_id();
  I32[(o + OTHER_INFO.off.cpu) >> 2] = cpu;
  I32[(o + OTHER_INFO.off.in_task) >> 2] = inTask() ? 1 : 0;
  I32[(o + OTHER_INFO.off.type) >> 2] = type;
  I32[(o + OTHER_INFO.off.addr) >> 2] = addr;
  I32[(o + OTHER_INFO.off.size) >> 2] = size;
  writeCString(o + OTHER_INFO.off.chain, CHAIN_LEN, callChain().join(" "));
  writeCString(o + OTHER_INFO.off.locks, LOCKS_LEN, heldLocksText(cpu));
  writeCString(o + OTHER_INFO.off.comm, COMM_LEN, commOf(cpu));
  Atomics.store(I32, (o + OTHER_INFO.off.valid) >> 2, 1);
}

/*
 * Deterministic mode (docs/kcsan.md, "Deterministic runs"). One CPU runs at a
 * time, and the strategy switches CPUs only at sched points, so the stall of
 * a watchpoint is the time until its CPU runs again: every plain access is
 * watched from the moment it is made until its CPU's next release
 * (__tsan_release: an unlock, a publication, a fully ordered atomic), and any
 * other CPU that runs meanwhile and touches the same bytes — one of the two a
 * write — has raced with it. Nothing is sampled and nobody stalls: the run's
 * schedule is the one the plain build makes.
 */

const cpuBase = (cpu: number): number => cpus0 + cpu * KCSAN_CPU.size;
const epochOf = (cpu: number): number => I32[(cpuBase(cpu) + KCSAN_CPU.off.epoch) >> 2]!;

const INFO_WRITE = 1 << 7;
const INFO_COMPOUND = 1 << 8;
const INFO_IRQ = 1 << 14;

/** __tsan_release: this CPU's plain accesses so far are ordered before whatever it does next. */
export function __tsan_release(): void {
  if (!kcsan_enabled || !schedDeterministic) return;
  inflight_settle();
  I32[epochIdx]!++;
  I32[inFlightIdx] = 0;
}

/** The low and high words of the `size` bytes at `addr` (a watched read's value). */
function value_lo(addr: number, size: number): number {
  return size === 1 ? U8[addr]! : size === 2 ? U16[addr >> 1]! : U32[addr >> 2]!;
}
const value_hi = (addr: number, size: number): number => (size === 8 ? U32[(addr >> 2) + 1]! : 0);
const value_of = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
/** The value of `size` bytes at `addr` (8 bytes: its two words, low first). */
const read_value = (addr: number, size: number): bigint => value_of(value_lo(addr, size), value_hi(addr, size));

/** The side of a race that is still in flight on another CPU, from its entry at `e`. */
function inflight_side(e: number): Side {
  const info = I32[e + 1]!;
  const cpu = info & 127;
  const g = I32[e]! - 1;
  const at = readCString(cpuBase(cpu) + KCSAN_CPU.off.switch_chain, CHAIN_LEN)
    .split(" ")
    .filter((f) => f !== "");
  return {
    cpu,
    task: (info & INFO_IRQ) === 0,
    type: (info & INFO_WRITE ? KCSAN_ACCESS_WRITE : 0) | (info & INFO_COMPOUND ? KCSAN_ACCESS_COMPOUND : 0),
    addr: (g << 3) + ((info >>> 11) & 7),
    size: 1 << ((info >>> 9) & 3),
    chain: [kcsanSiteName(I32[e + 3]!)],
    switchedAt: at,
    locks: heldLocksText(cpu),
    comm: commOf(cpu),
  };
}

/**
 * A write of this CPU ran into another CPU's read in flight: the report waits
 * until the write is done (this CPU's next instrumented access or release),
 * so that the value change can be told (CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY).
 * Nothing when no such write is pending.
 */
function inflight_settle(): void {
  if (I32[pendIdx] === 0) return;
  I32[pendIdx] = 0;
  const p = cpuBase(meCpu);
  const e = (p + KCSAN_CPU.off.pend_entry) >> 2;
  const other = inflight_side(e);
  const old = value_of(I32[e + 4]!, I32[e + 5]!);
  const now = read_value(other.addr, other.size);
  if (old === now && !kcsan_strict) {
    kcsan_counter_inc(COUNTER_UNCHANGED_VALUE);
    return;
  }
  const me = {
    cpu: meCpu,
    task: inTask(),
    type: I32[(p + KCSAN_CPU.off.pend_type) >> 2]!,
    addr: I32[(p + KCSAN_CPU.off.pend_addr) >> 2]!,
    size: I32[(p + KCSAN_CPU.off.pend_size) >> 2]!,
    chain: readCString(p + KCSAN_CPU.off.pend_chain, CHAIN_LEN)
      .split(" ")
      .filter((f) => f !== ""),
    locks: readCString(p + KCSAN_CPU.off.pend_locks, LOCKS_LEN),
  };
  kcsan_report_known_origin(me, other, old, now);
}

/**
 * Deterministic mode: checks this access against the other CPUs' accesses in
 * flight on granule `g` (and reports a conflict); returns the way this CPU's
 * own access of it goes to: its own entry, a dead one, else the set's last.
 */
function inflight_check(g: number, addr: number, size: number, type: number): number {
  const set = if0 + (g & (IF_SETS - 1)) * IF_WAYS * IF_WORDS;
  let mine = -1;
  let dead = -1;
  for (let w = 0; w < IF_WAYS; w++) {
    const e = set + w * IF_WORDS;
    const info = I32[e + 1]!;
    const cpu = info & 127;
    if (I32[e] === 0 || I32[e + 2] !== epochOf(cpu)) {
      if (dead < 0) dead = e;
      continue;
    }
    if (cpu === meCpu) {
      if (mine < 0 || I32[e] === g + 1) mine = e;
      continue;
    }
    if (I32[e] !== g + 1) continue;
    const oWrite = (info & INFO_WRITE) !== 0;
    if (!(oWrite || type & KCSAN_ACCESS_WRITE)) continue;
    const oAddr = (g << 3) + ((info >>> 11) & 7);
    if (!matching_access(oAddr, 1 << ((info >>> 9) & 3), addr, size)) continue;
    kcsan_counter_inc(COUNTER_DATA_RACES);
    if (!oWrite) {
      // A write against a read: reported once the write is done and its value known.
      const p = cpuBase(meCpu);
      for (let k = 0; k < IF_WORDS; k++) I32[((p + KCSAN_CPU.off.pend_entry) >> 2) + k] = I32[e + k]!;
      I32[(p + KCSAN_CPU.off.pend_addr) >> 2] = addr;
      I32[(p + KCSAN_CPU.off.pend_size) >> 2] = size;
      I32[(p + KCSAN_CPU.off.pend_type) >> 2] = type;
      writeCString(p + KCSAN_CPU.off.pend_chain, CHAIN_LEN, callChain().join(" "));
      writeCString(p + KCSAN_CPU.off.pend_locks, LOCKS_LEN, heldLocksText(meCpu));
      I32[pendIdx] = 1;
    } else if (type & KCSAN_ACCESS_WRITE || kcsan_strict) {
      // Against a write in flight the value the watcher saw is gone: as KCSAN, a write against a write is
      // reported, a read against a write only under the strict rules (skip_report's value-change rule).
      kcsan_report_known_origin({ cpu: meCpu, task: inTask(), type, addr, size }, inflight_side(e), 0n, 0n);
    } else kcsan_counter_inc(COUNTER_UNCHANGED_VALUE);
  }
  return mine >= 0 && (I32[mine] === g + 1 || dead < 0) ? mine : dead >= 0 ? dead : set + (IF_WAYS - 1) * IF_WORDS;
}

/** Deterministic mode's check_access: checked against the accesses in flight, then watched itself if plain. */
function inflight_access(addr: number, size: number, type: number, site: number): void {
  inflight_settle();
  const g = addr >>> 3;
  const e = inflight_check(g, addr, size, type);
  if (type & KCSAN_ACCESS_ATOMIC) return;
  // CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC (off when strict), and this CPU's own per-CPU data, as kcsan_setup_watchpoint.
  if (!kcsan_strict && (type & (KCSAN_ACCESS_WRITE | KCSAN_ACCESS_COMPOUND)) === KCSAN_ACCESS_WRITE) return;
  if (addr >= myPercpu && addr < myPercpuEnd) return;
  I32[e] = g + 1;
  I32[e + 1] =
    meCpu |
    (type & KCSAN_ACCESS_WRITE ? INFO_WRITE : 0) |
    (type & KCSAN_ACCESS_COMPOUND ? INFO_COMPOUND : 0) |
    ((31 - Math.clz32(size)) << 9) |
    ((addr & 7) << 11) |
    (inTask() ? 0 : INFO_IRQ);
  I32[e + 2] = I32[epochIdx]!;
  I32[e + 3] = site;
  I32[e + 4] = value_lo(addr, size);
  I32[e + 5] = value_hi(addr, size);
  I32[inFlightIdx] = 1;
}

/** Deterministic mode's check_range (memset, memcpy): checked against the accesses in flight, never watched. */
function inflight_range(addr: number, size: number, type: number): void {
  inflight_settle();
  for (let g = addr >>> 3; g <= (addr + size - 1) >>> 3; g++) inflight_check(g, addr, size, type);
}

/**
 * The sched-point floor's note of a switch: a CPU switched out with accesses in flight keeps its call chain for
 * the reports (most switches come right after an unlock, with none: the stack is not read).
 */
function kcsan_switch_out(): void {
  if (!kcsan_enabled || I32[inFlightIdx] === 0) return;
  writeCString(cpuBase(meCpu) + KCSAN_CPU.off.switch_chain, CHAIN_LEN, callChain().join(" "));
}
registerSwitchOut(kcsan_switch_out);

/** Sched points the other CPUs run on after an oops while the oopsing CPU's accesses stay watched. */
export const KCSAN_OOPS_WINDOW = 1000;

/**
 * An oops ends the task that took it, not the other CPUs, which run on in the
 * kernel. Deterministic mode, before vmsim stops the machine: the CPU that
 * oopsed hands the token on until the others have run KCSAN_OOPS_WINDOW
 * sched points, finished or blocked, or one of them ran into the accesses it
 * still has in flight — the race whose read made the oops, reported with
 * the write that came too late.
 */
export function kcsan_oops_window(): void {
  if (!kcsan_enabled || !schedDeterministic) return;
  inflight_settle();
  // Once per run: the first oops is the one the race made.
  if (Atomics.add(I32, wp0 + CONFIG_KCSAN_NUM_WATCHPOINTS + COUNTER_OOPS_WINDOWS, 1) > 0) return;
  const reports = wp0 + CONFIG_KCSAN_NUM_WATCHPOINTS + COUNTER_REPORTS;
  const seen = Atomics.load(I32, reports);
  const end = schedGlobalStep() + KCSAN_OOPS_WINDOW;
  for (let now = schedGlobalStep(); now < end && Atomics.load(I32, reports) === seen; ) {
    sched_yield();
    const after = schedGlobalStep();
    if (after === now) return; // nobody else could run
    now = after;
  }
}

registerAfterOops(kcsan_oops_window);

/** udelay: a busy wait of `us` microseconds (the watch window of a free-running CPU). */
function udelay(us: number): void {
  const end = performance.now() + us / 1000;
  while (performance.now() < end) {}
}

/**
 * kcsan_setup_watchpoint (core.c): every kcsan_skip_watch-th access. Arms a
 * watchpoint on a plain read or read-modify-write, stalls, re-reads the value,
 * removes the watchpoint, and reports what it saw.
 */
function kcsan_setup_watchpoint(addr: number, size: number, type: number): void {
  reset_kcsan_skip();
  // Marked accesses are never watched; CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC (off when strict): nor plain
  // aligned writes (vmsim's views make every access aligned).
  if (type & KCSAN_ACCESS_ATOMIC) return;
  if (!kcsan_strict && (type & (KCSAN_ACCESS_WRITE | KCSAN_ACCESS_COMPOUND)) === KCSAN_ACCESS_WRITE) return;
  if (size > 8) return; // not encodable: checked against watchpoints, never watched
  // This CPU's own per-CPU data is the kernel's this_cpu_*() ops, which KCSAN does not instrument.
  if (addr >= myPercpu && addr < myPercpuEnd) return;
  const slot = watchpoint_slot(addr);
  const encoded = encode_watchpoint(addr, size, (type & KCSAN_ACCESS_WRITE) !== 0);
  // insert_watchpoint: a busy slot means no watch this time.
  if (Atomics.compareExchange(I32, wp0 + slot, INVALID_WATCHPOINT, encoded) !== INVALID_WATCHPOINT) {
    kcsan_counter_inc(COUNTER_NO_CAPACITY);
    return;
  }
  kcsan_counter_inc(COUNTER_SETUP_WATCHPOINTS);
  const task = inTask();
  const old = read_value(addr, size);
  try {
    // The stall: another CPU may run into the watchpoint now; this CPU runs nothing else meanwhile
    // (CONFIG_KCSAN_INTERRUPT_WATCHER=n: no interrupt on the watcher's CPU).
    udelay(task ? kcsan_udelay_task : kcsan_udelay_interrupt);
  } catch (e) {
    // The machine stopped (or deadlocked) while this CPU waited: the watchpoint goes with it.
    Atomics.store(I32, wp0 + slot, INVALID_WATCHPOINT);
    throw e;
  }
  const now = read_value(addr, size);
  // remove_watchpoint; what it held tells whether another CPU consumed it.
  const consumed = Atomics.exchange(I32, wp0 + slot, INVALID_WATCHPOINT) === CONSUMED_WATCHPOINT;
  const changed = now !== old;
  const me = { cpu: smp_processor_id(), task, type, addr, size };
  if (consumed) {
    const other = take_other_info(slot);
    // CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY (off when strict): the other side may have rewritten the same value.
    if (!changed && !kcsan_strict) kcsan_counter_inc(COUNTER_UNCHANGED_VALUE);
    else if (other !== null) kcsan_report_known_origin(me, other, old, now);
  } else if (changed) {
    kcsan_counter_inc(COUNTER_RACES_UNKNOWN_ORIGIN);
    kcsan_report_unknown_origin(me, old, now);
  }
}

interface Side {
  cpu: number;
  task: boolean;
  type: number;
  addr: number;
  size: number;
  chain?: string[];
  /** Deterministic mode, a side still in flight: its CPU's call chain where the strategy switched it out. */
  switchedAt?: string[];
  locks?: string;
  comm?: string;
}

/** The consumer's other_info, once it is complete (it fills it right after its cmpxchg). */
function take_other_info(slot: number): Side | null {
  const o = other0 + slot * OTHER_INFO.size;
  const valid = (o + OTHER_INFO.off.valid) >> 2;
  // A free-running consumer may still be writing it; a bounded wait, as report.c's.
  const end = performance.now() + 100;
  while (Atomics.load(I32, valid) === 0) if (performance.now() > end) return null;
  const side: Side = {
    cpu: I32[(o + OTHER_INFO.off.cpu) >> 2]!,
    task: I32[(o + OTHER_INFO.off.in_task) >> 2] !== 0,
    type: I32[(o + OTHER_INFO.off.type) >> 2]!,
    addr: I32[(o + OTHER_INFO.off.addr) >> 2]!,
    size: I32[(o + OTHER_INFO.off.size) >> 2]!,
    chain: readCString(o + OTHER_INFO.off.chain, CHAIN_LEN)
      .split(" ")
      .filter((s) => s !== ""),
    locks: readCString(o + OTHER_INFO.off.locks, LOCKS_LEN),
    comm: readCString(o + OTHER_INFO.off.comm, COMM_LEN),
  };
  Atomics.store(I32, valid, 0);
  return side;
}

/** This thread's kernel call chain (report path only). */
function callChain(): string[] {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  return kernelCallChain(stack);
}

function heldLocksText(cpu: number): string {
  const held = heldLocksOf(cpu);
  return held === null ? "(lockdep off)" : held.length === 0 ? "(none)" : held.join(", ");
}

/** get_access_type (report.c). */
function access_type(type: number): string {
  const rw =
    type & KCSAN_ACCESS_COMPOUND
      ? type & KCSAN_ACCESS_WRITE
        ? "read-write"
        : "read"
      : type & KCSAN_ACCESS_WRITE
        ? "write"
        : "read";
  return type & KCSAN_ACCESS_ATOMIC ? `${rw} (marked)` : rw;
}

const hex = (v: bigint, size: number): string => `0x${v.toString(16).padStart(size * 2, "0")}`;

/** One access of a report: its line, call chain and held locks. */
function sideText(s: Side, unknownOrigin = false): string {
  const who = s.task ? `task ${s.cpu}` : "interrupt";
  const head = `${access_type(s.type)} to 0x${s.addr.toString(16)} of ${s.size} bytes by ${who} on cpu ${s.cpu}:`;
  const chain = (s.chain ?? []).map((f) => ` ${f}`);
  const at =
    s.switchedAt === undefined
      ? []
      : [` (in flight; cpu ${s.cpu} was switched out in:)`, ...s.switchedAt.map((f) => `  ${f}`)];
  return [
    unknownOrigin ? `race at unknown origin, with ${head}` : head,
    ...(chain.length > 0 ? chain : [" (no kernel frames)"]),
    ...at,
    ` locks held: ${s.locks ?? ""}`,
  ].join("\n");
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

/**
 * rate_limit_report (report.c), per machine: true the first time a pair of
 * functions races, false after (and once NR_REPORTED pairs were reported).
 */
function rate_limit_report(pair: string): boolean {
  const h = fnv1a(pair) | 0;
  for (let i = 0; i < NR_REPORTED; i++) {
    const at = reported0 + ((h + i) & (NR_REPORTED - 1));
    const was = Atomics.compareExchange(I32, at, 0, h);
    if (was === 0) return true;
    if (was === h) return false;
  }
  return false;
}

/**
 * kcsan_skip_report_debugfs (debugfs.c), as skip_report (report.c) asks it of
 * each access' top frame: a race in a listed function is counted, not reported.
 */
function kcsan_skip_report_debugfs(func: string): boolean {
  if (!report_filterlist.has(func)) return false;
  kcsan_counter_inc(COUNTER_FILTERED_REPORTS);
  return true;
}

function reportedOn(cpu: number, comm: string): string {
  return `Reported by Kernel Concurrency Sanitizer on:\nCPU: ${cpu} Comm: ${comm || "?"}`;
}

/** kcsan_report_known_origin (report.c): both accesses, the value change, who reported it. */
function kcsan_report_known_origin(me: Side, other: Side, old: bigint, now: bigint): void {
  me.chain ??= callChain();
  me.locks ??= heldLocksText(me.cpu);
  const a = me.chain[0] ?? "?";
  const b = other.chain?.[0] ?? "?";
  // print_report checks the filter before the rate limit: a filtered race leaves no trace in it.
  if (kcsan_skip_report_debugfs(a) || kcsan_skip_report_debugfs(b)) return;
  // print_report: the title names both functions in a fixed order, so a pair reads alike from either side.
  const [f1, f2] = a <= b ? [a, b] : [b, a];
  if (!rate_limit_report(`${f1}/${f2}`)) return;
  kcsan_counter_inc(COUNTER_REPORTS);
  reportBug(
    "kcsan",
    [
      `BUG: KCSAN: data-race in ${f1} / ${f2}`,
      "",
      sideText(other),
      "",
      sideText(me),
      "",
      // print_report: the value change only when there was one (a strict report may have none).
      ...(old === now ? [] : [`value changed: ${hex(old, me.size)} -> ${hex(now, me.size)}`, ""]),
      reportedOn(me.cpu, commOf(me.cpu)),
    ].join("\n"),
    me.chain.slice(0, CALL_CHAIN_DEPTH),
  );
}

/** kcsan_report_unknown_origin (report.c): the value changed under the watch and no access was seen. */
function kcsan_report_unknown_origin(me: Side, old: bigint, now: bigint): void {
  me.chain = callChain();
  me.locks = heldLocksText(me.cpu);
  const f = me.chain[0] ?? "?";
  if (kcsan_skip_report_debugfs(f) || !rate_limit_report(f)) return;
  kcsan_counter_inc(COUNTER_REPORTS);
  reportBug(
    "kcsan",
    [
      `BUG: KCSAN: data-race in ${f}`,
      "",
      sideText(me, true),
      "",
      `value changed: ${hex(old, me.size)} -> ${hex(now, me.size)}`,
      "",
      reportedOn(me.cpu, commOf(me.cpu)),
    ].join("\n"),
  );
}

/* The entry points of the instrumented build: `i` is an element index of the N-byte view. */

/** A plain load of U8[i]. */
export function __tsan_read1(i: number, site: number): number {
  check_access(i, 1, 0, site);
  return i;
}
/** A plain load of U16[i]. */
export function __tsan_read2(i: number, site: number): number {
  check_access(i << 1, 2, 0, site);
  return i;
}
/** A plain load of I32[i] or U32[i]. */
export function __tsan_read4(i: number, site: number): number {
  check_access(i << 2, 4, 0, site);
  return i;
}
/** A plain load of F64[i]. */
export function __tsan_read8(i: number, site: number): number {
  check_access(i << 3, 8, 0, site);
  return i;
}
/** A plain store to U8[i]. */
export function __tsan_write1(i: number, site: number): number {
  check_access(i, 1, KCSAN_ACCESS_WRITE, site);
  return i;
}
/** A plain store to U16[i]. */
export function __tsan_write2(i: number, site: number): number {
  check_access(i << 1, 2, KCSAN_ACCESS_WRITE, site);
  return i;
}
/** A plain store to I32[i] or U32[i]. */
export function __tsan_write4(i: number, site: number): number {
  check_access(i << 2, 4, KCSAN_ACCESS_WRITE, site);
  return i;
}
/** A plain store to F64[i]. */
export function __tsan_write8(i: number, site: number): number {
  check_access(i << 3, 8, KCSAN_ACCESS_WRITE, site);
  return i;
}
/** A plain read-modify-write (`+=`, `++`) of U8[i]. */
export function __tsan_read_write1(i: number, site: number): number {
  check_access(i, 1, KCSAN_ACCESS_WRITE | KCSAN_ACCESS_COMPOUND, site);
  return i;
}
/** A plain read-modify-write of U16[i]. */
export function __tsan_read_write2(i: number, site: number): number {
  check_access(i << 1, 2, KCSAN_ACCESS_WRITE | KCSAN_ACCESS_COMPOUND, site);
  return i;
}
/** A plain read-modify-write of I32[i] or U32[i]. */
export function __tsan_read_write4(i: number, site: number): number {
  check_access(i << 2, 4, KCSAN_ACCESS_WRITE | KCSAN_ACCESS_COMPOUND, site);
  return i;
}
/** A plain read-modify-write of F64[i]. */
export function __tsan_read_write8(i: number, site: number): number {
  check_access(i << 3, 8, KCSAN_ACCESS_WRITE | KCSAN_ACCESS_COMPOUND, site);
  return i;
}
/** Atomics.load of U8[i]. */
export function __tsan_atomic_read1(i: number): number {
  check_access(i, 1, KCSAN_ACCESS_ATOMIC);
  return i;
}
/** Atomics.load of U16[i]. */
export function __tsan_atomic_read2(i: number): number {
  check_access(i << 1, 2, KCSAN_ACCESS_ATOMIC);
  return i;
}
/** Atomics.load of I32[i] or U32[i] (READ_ONCE, atomic_read). */
export function __tsan_atomic_read4(i: number): number {
  check_access(i << 2, 4, KCSAN_ACCESS_ATOMIC);
  return i;
}
/** Atomics.store to U8[i]. */
export function __tsan_atomic_write1(i: number): number {
  check_access(i, 1, KCSAN_ACCESS_ATOMIC | KCSAN_ACCESS_WRITE);
  return i;
}
/** Atomics.store to U16[i]. */
export function __tsan_atomic_write2(i: number): number {
  check_access(i << 1, 2, KCSAN_ACCESS_ATOMIC | KCSAN_ACCESS_WRITE);
  return i;
}
/** Atomics.store to I32[i] or U32[i] (WRITE_ONCE, atomic_set). */
export function __tsan_atomic_write4(i: number): number {
  check_access(i << 2, 4, KCSAN_ACCESS_ATOMIC | KCSAN_ACCESS_WRITE);
  return i;
}
/** An Atomics read-modify-write (add, exchange, compareExchange …) of U8[i]. */
export function __tsan_atomic_read_write1(i: number): number {
  check_access(i, 1, KCSAN_ACCESS_ATOMIC | KCSAN_ACCESS_WRITE | KCSAN_ACCESS_COMPOUND);
  return i;
}
/** An Atomics read-modify-write of U16[i]. */
export function __tsan_atomic_read_write2(i: number): number {
  check_access(i << 1, 2, KCSAN_ACCESS_ATOMIC | KCSAN_ACCESS_WRITE | KCSAN_ACCESS_COMPOUND);
  return i;
}
/** An Atomics read-modify-write of I32[i] or U32[i] (atomic_add, cmpxchg, xchg). */
export function __tsan_atomic_read_write4(i: number): number {
  check_access(i << 2, 4, KCSAN_ACCESS_ATOMIC | KCSAN_ACCESS_WRITE | KCSAN_ACCESS_COMPOUND);
  return i;
}
/** An Atomics store that releases (rcu_assign_pointer, an unlock's store) to U8[i]. */
export function __tsan_atomic_write_release1(i: number): number {
  __tsan_release();
  return __tsan_atomic_write1(i);
}
/** An Atomics store that releases, to U16[i]. */
export function __tsan_atomic_write_release2(i: number): number {
  __tsan_release();
  return __tsan_atomic_write2(i);
}
/** An Atomics store that releases, to I32[i] or U32[i]. */
export function __tsan_atomic_write_release4(i: number): number {
  __tsan_release();
  return __tsan_atomic_write4(i);
}
/** A fully ordered Atomics read-modify-write (a value-returning atomic, cmpxchg, xchg) of U8[i]. */
export function __tsan_atomic_read_write_mb1(i: number): number {
  __tsan_release();
  return __tsan_atomic_read_write1(i);
}
/** A fully ordered Atomics read-modify-write of U16[i]. */
export function __tsan_atomic_read_write_mb2(i: number): number {
  __tsan_release();
  return __tsan_atomic_read_write2(i);
}
/** A fully ordered Atomics read-modify-write of I32[i] or U32[i]. */
export function __tsan_atomic_read_write_mb4(i: number): number {
  __tsan_release();
  return __tsan_atomic_read_write4(i);
}

/**
 * check_access of a range longer than a watchpoint can encode (memset,
 * memcpy): checked against the slot of every page it covers, never watched.
 */
function check_range(addr: number, size: number, type: number): void {
  if (!kcsan_enabled || size <= 0) return;
  if (schedDeterministic) {
    inflight_range(addr, size, type);
    return;
  }
  const first = addr >>> PAGE_SHIFT;
  const last = Math.min((addr + size - 1) >>> PAGE_SHIFT, first + SLOT_MASK);
  for (let page = first; page <= last; page++) {
    const slot = page & SLOT_MASK;
    const w = Atomics.load(I32, wp0 + slot);
    if (w <= CONSUMED_WATCHPOINT || !(type & KCSAN_ACCESS_WRITE || wpIsWrite(w))) continue;
    if (matching_access(wpAddr(w, slot), wpSize(w), addr, size)) {
      kcsan_found_watchpoint(addr, size, type, slot, w);
      return;
    }
  }
  if (--I32[skipIdx]! < 0) kcsan_setup_watchpoint(addr, size, type);
}

/** kcsan_check_read (include/linux/kcsan-checks.h): a plain read of `size` bytes at `addr`. */
export function kcsan_check_read(addr: number, size: number): void {
  if (size <= 8) check_access(addr, size, 0);
  else check_range(addr, size, 0);
}
/** kcsan_check_write: a plain write of `size` bytes at `addr`. */
export function kcsan_check_write(addr: number, size: number): void {
  if (size <= 8) check_access(addr, size, KCSAN_ACCESS_WRITE);
  else check_range(addr, size, KCSAN_ACCESS_WRITE);
}

/** __tsan_memset: `U8.fill(c, from, to)`, a plain write of [from, to). */
export function __tsan_memset(c: number, from: number, to: number): Uint8Array {
  check_range(from, to - from, KCSAN_ACCESS_WRITE);
  return U8.fill(c, from, to);
}
/** The source side of __tsan_memcpy: `U8.subarray(from, to)`, a plain read of [from, to). */
export function __tsan_memcpy_from(from: number, to: number): Uint8Array {
  check_range(from, to - from, 0);
  return U8.subarray(from, to);
}
/** The destination side of __tsan_memcpy: `U8.set(src, at)`, a plain write of src.length bytes at `at`. */
export function __tsan_memcpy_to(src: ArrayLike<number>, at: number): void {
  check_range(at, src.length, KCSAN_ACCESS_WRITE);
  U8.set(src, at);
}
