/**
 * The arena: one SharedArrayBuffer that is the whole simulated machine.
 *
 * Every piece of kernel state lives here, at a byte offset; a pointer is an
 * int32 byte offset and 0 is NULL. The typed-array views below are per thread
 * (each worker attaches its own), the bytes they see are shared.
 *
 * Region map (fixed at boot, recorded in the header, read-only afterwards):
 *
 *   0            header     magic, layout hash, region table, control words
 *   globals      static kernel variables (DEFINE_GLOBAL), sorted by name
 *   percpu       one area per CPU (DEFINE_PER_CPU variables), 64-byte aligned
 *   <regions>    sized from the config (mem_map …), in registration-name order
 *   pagedata     4 KiB of contents per page frame, pfn * 4096 from its base
 *
 * Layout is derived from static registrations, so every thread that imported
 * the same kernel modules computes the same offsets; attach checks the hash.
 */
import { KernelBug } from "./bug.js";
import { type MachineConfig, PAGE_SIZE } from "./config.js";
import { type StructDef, defineStruct } from "./struct.js";

/** Per-thread views of the shared bytes (live ESM bindings, rebound on attach). */
export let I32: Int32Array = new Int32Array(0);
export let U32: Uint32Array = new Uint32Array(0);
export let U16: Uint16Array = new Uint16Array(0);
export let U8: Uint8Array = new Uint8Array(0);
export let F64: Float64Array = new Float64Array(0);
/** Base of the page contents region (cached here: it is on the load/store path). */
export let PAGEDATA_BASE = 0;

const MAGIC = 0x766d7369; // "vmsi"
const FORMAT_VERSION = 1;

/** The arena header. Control words are Atomics-only: any CPU and the main thread touch them. */
export const ARENA_HEADER = defineStruct("arena_header", [
  { name: "magic", type: "u32", guard: "init" },
  { name: "version", type: "u32", guard: "init" },
  { name: "layout_hash", type: "u32", guard: "init" },
  { name: "nr_cpus", type: "i32", guard: "init" },
  { name: "nr_pages", type: "i32", guard: "init" },
  { name: "arena_size", type: "f64", guard: "init" },
  { name: "globals_base", type: "i32", guard: "init" },
  { name: "percpu_base", type: "i32", guard: "init" },
  { name: "percpu_stride", type: "i32", guard: "init" },
  { name: "pagedata_base", type: "i32", guard: "init" },
  /** Nonzero once the machine is stopping: every wait loop checks it and bails out. */
  { name: "stop", type: "i32", guard: "atomic" },
  /** CPU that stopped the machine (panic, soft lockup), -1 for none. */
  { name: "stop_cpu", type: "i32", guard: "atomic" },
  /** Reports (lockdep, faults, WARNs) raised so far, all CPUs. */
  { name: "nr_reports", type: "i32", guard: "atomic" },
]);
const H = ARENA_HEADER.off;

export interface GlobalVar<S extends StructDef = StructDef> {
  readonly name: string;
  readonly struct: S;
  /** Arena address of the variable; valid once the arena is created or attached. */
  ptr: number;
}

export interface PerCpuVar<S extends StructDef = StructDef> {
  readonly name: string;
  readonly struct: S;
  /** Offset inside each CPU's per-CPU area. */
  offset: number;
}

export interface Region {
  readonly name: string;
  readonly bytes: (c: MachineConfig) => number;
  readonly align: number;
  /** An empty region leaves the layout (hash and region table) as it was without it: a region only some machines have. */
  readonly hashedWhenEmpty: boolean;
  base: number;
  size: number;
}

const globals = new Map<string, GlobalVar>();
const percpus = new Map<string, PerCpuVar>();
const regions = new Map<string, Region>();
let frozen = false;

function register<T>(map: Map<string, T>, kind: string, name: string, v: T): T {
  if (frozen) throw new Error(`${kind} ${name} registered after the arena layout was fixed`);
  if (map.has(name)) throw new Error(`${kind} ${name} defined twice`);
  map.set(name, v);
  return v;
}

/**
 * The kernel's name of a static. A later vmalloc generation registers its
 * statics under its version ("5.10:vmap_area_lock"), so that the generations'
 * same-named statics coexist in one arena; reports print the kernel's name.
 */
export function kernelName(name: string): string {
  const m = /^\d+\.\d+:/.exec(name);
  return m ? name.slice(m[0].length) : name;
}

/** A static kernel variable (`static struct rb_root vmap_area_root` …). */
export function DEFINE_GLOBAL<S extends StructDef>(name: string, struct: S): GlobalVar<S> {
  const v: GlobalVar<S> = { name, struct, ptr: 0 };
  register(globals as Map<string, GlobalVar<S>>, "global", name, v);
  return v;
}

/** DEFINE_PER_CPU: one instance in every CPU's per-CPU area. */
export function DEFINE_PER_CPU<S extends StructDef>(name: string, struct: S): PerCpuVar<S> {
  const v: PerCpuVar<S> = { name, struct, offset: 0 };
  register(percpus as Map<string, PerCpuVar<S>>, "per-cpu variable", name, v);
  return v;
}

/**
 * A region sized from the config (mem_map, …). With `hashedWhenEmpty` false, a
 * machine whose config gives it no bytes has the layout (hash and region
 * table) it had before the region existed.
 */
export function defineRegion(
  name: string,
  bytes: (c: MachineConfig) => number,
  align = 64,
  hashedWhenEmpty = true,
): Region {
  return register(regions, "region", name, { name, bytes, align, hashedWhenEmpty, base: 0, size: 0 });
}

export interface Arena {
  readonly sab: SharedArrayBuffer;
  readonly config: MachineConfig;
  readonly hash: number;
  readonly globalsBase: number;
  readonly percpuBase: number;
  readonly percpuStride: number;
  readonly pagedataBase: number;
  readonly nrPages: number;
  /** Region table, in address order, for `vmsim info`. */
  readonly map: readonly { name: string; base: number; size: number }[];
}

const staticInits: (() => void)[] = [];

/**
 * A static initializer (DEFINE_SPINLOCK's `= __SPIN_LOCK_UNLOCKED(name)`, an
 * initialized list head …): run once, in registration order, when the arena is
 * created, before anything else touches it.
 */
export function staticInit(fn: () => void): void {
  if (frozen) throw new Error("static initializer registered after the arena layout was fixed");
  staticInits.push(fn);
}

/** The arena this thread is attached to. */
export let arena: Arena | null = null;

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;
const byName = <T extends { name: string }>(m: Map<string, T>) =>
  [...m.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

interface Plan {
  size: number;
  hash: number;
  globalsBase: number;
  percpuBase: number;
  percpuStride: number;
  pagedataBase: number;
  nrPages: number;
  map: { name: string; base: number; size: number }[];
}

/** Fixes the layout: deterministic in (registrations, config) on every thread. */
function plan(config: MachineConfig): Plan {
  frozen = true;
  const map: Plan["map"] = [];
  const sig: string[] = [];
  let at = alignUp(ARENA_HEADER.size, 64);
  map.push({ name: "header", base: 0, size: ARENA_HEADER.size });

  const globalsBase = at;
  for (const g of byName(globals)) {
    at = alignUp(at, Math.max(8, g.struct.align));
    g.ptr = at;
    at += g.struct.size;
    sig.push(`g:${g.name}:${g.struct.size}`);
  }
  map.push({ name: "globals", base: globalsBase, size: at - globalsBase });

  at = alignUp(at, 64);
  const percpuBase = at;
  let stride = 0;
  for (const v of byName(percpus)) {
    stride = alignUp(stride, Math.max(8, v.struct.align));
    v.offset = stride;
    stride += v.struct.size;
    sig.push(`p:${v.name}:${v.struct.size}`);
  }
  stride = alignUp(Math.max(stride, 8), 64); // one cache line apart: no false sharing between CPUs
  at += stride * config.cpus;
  map.push({ name: "percpu", base: percpuBase, size: stride * config.cpus });

  for (const r of byName(regions)) {
    at = alignUp(at, r.align);
    r.base = at;
    r.size = r.bytes(config);
    at += r.size;
    if (r.size === 0 && !r.hashedWhenEmpty) continue;
    map.push({ name: r.name, base: r.base, size: r.size });
    sig.push(`r:${r.name}:${r.size}`);
  }

  const nrPages = config.memory / PAGE_SIZE;
  const pagedataBase = alignUp(at, PAGE_SIZE);
  map.push({ name: "pagedata", base: pagedataBase, size: nrPages * PAGE_SIZE });
  const size = pagedataBase + nrPages * PAGE_SIZE;
  if (size >= 2 ** 31) throw new RangeError("arena exceeds 2 GiB: int32 pointers cannot address it");
  sig.push(`cpus:${config.cpus}`, `pages:${nrPages}`);
  return {
    size,
    hash: fnv1a(sig.join(";")),
    globalsBase,
    percpuBase,
    percpuStride: stride,
    pagedataBase,
    nrPages,
    map,
  };
}

function bindViews(sab: SharedArrayBuffer): void {
  I32 = new Int32Array(sab);
  U32 = new Uint32Array(sab);
  U16 = new Uint16Array(sab);
  U8 = new Uint8Array(sab);
  F64 = new Float64Array(sab);
}

function toArena(sab: SharedArrayBuffer, config: MachineConfig, p: Plan): Arena {
  return {
    sab,
    config,
    hash: p.hash,
    globalsBase: p.globalsBase,
    percpuBase: p.percpuBase,
    percpuStride: p.percpuStride,
    pagedataBase: p.pagedataBase,
    nrPages: p.nrPages,
    map: p.map,
  };
}

/** Allocates a zeroed arena for `config` and attaches this thread to it. */
export function createArena(config: MachineConfig): Arena {
  const p = plan(config);
  const sab = new SharedArrayBuffer(p.size);
  bindViews(sab);
  U32[H.magic >> 2] = MAGIC;
  U32[H.version >> 2] = FORMAT_VERSION;
  U32[H.layout_hash >> 2] = p.hash;
  I32[H.nr_cpus >> 2] = config.cpus;
  I32[H.nr_pages >> 2] = p.nrPages;
  F64[H.arena_size >> 3] = p.size;
  I32[H.globals_base >> 2] = p.globalsBase;
  I32[H.percpu_base >> 2] = p.percpuBase;
  I32[H.percpu_stride >> 2] = p.percpuStride;
  I32[H.pagedata_base >> 2] = p.pagedataBase;
  I32[H.stop_cpu >> 2] = -1;
  arena = toArena(sab, config, p);
  PAGEDATA_BASE = p.pagedataBase;
  for (const fn of staticInits) fn();
  return arena;
}

/** Attaches this thread (a CPU worker, a checker) to an existing arena. */
export function attachArena(sab: SharedArrayBuffer, config: MachineConfig): Arena {
  const p = plan(config);
  const u32 = new Uint32Array(sab);
  if (u32[H.magic >> 2] !== MAGIC || u32[H.version >> 2] !== FORMAT_VERSION)
    throw new Error("not a vmsim arena (bad magic or format version)");
  if (u32[H.layout_hash >> 2] !== p.hash)
    throw new Error(
      "arena layout differs from this thread's (stale build? run `npm run build`): " +
        `${u32[H.layout_hash >> 2]!.toString(16)} != ${p.hash.toString(16)}`,
    );
  bindViews(sab);
  arena = toArena(sab, config, p);
  PAGEDATA_BASE = p.pagedataBase;
  return arena;
}

/** The attached arena; throws when this thread has none (a bug in the harness). */
export function theArena(): Arena {
  if (arena === null) throw new Error("no arena attached to this thread");
  return arena;
}

/**
 * Address of `var` in CPU `cpu`'s per-CPU area (per_cpu_ptr). The kernel
 * indexes __per_cpu_offset[NR_CPUS] with `cpu`; an index past the possible
 * CPUs (a garbage CPU number read from an uninitialised field) is UBSAN's
 * array-index-out-of-bounds, a trap on arm64 (CONFIG_UBSAN_TRAP): a BUG here.
 */
export function per_cpu_ptr(v: PerCpuVar, cpu: number): number {
  const a = theArena();
  if (cpu >>> 0 >= a.config.cpus) perCpuIndexOutOfBounds(cpu, a.config.cpus);
  return a.percpuBase + cpu * a.percpuStride + v.offset;
}

/** The UBSAN trap of a per-CPU index outside the possible CPUs. */
function perCpuIndexOutOfBounds(cpu: number, nrCpus: number): never {
  throw new KernelBug(
    `Internal error: UBSAN: array index out of bounds: per_cpu_ptr: index ${cpu >>> 0} is out of range ` +
      `for type 'unsigned long [${nrCpus}]' (__per_cpu_offset)`,
  );
}

/*** Snapshots: a cheap machine reset between deterministic explorations ***/

const resetHooks: (() => void)[] = [];

/**
 * Thread-local state tied to the machine's contents (caches of arena ids,
 * PRNG positions, the sched-point clock) registers here: a machine restored
 * from a snapshot makes every thread forget it.
 */
export function onMachineReset(fn: () => void): void {
  resetHooks.push(fn);
}

/** Harness: this thread forgets its state of the machine (after a restore). */
export function machineResetThread(): void {
  for (const fn of resetHooks) fn();
}

/** A copy of the whole arena (CPUs parked). */
export function snapshotArena(): Uint8Array {
  return new Uint8Array(theArena().sab).slice();
}

/** Puts a snapshot back (CPUs parked); each thread then runs {@link machineResetThread}. */
export function restoreArena(snap: Uint8Array): void {
  new Uint8Array(theArena().sab).set(snap);
}

/* Control words: the order of these Atomics is the machine's shutdown protocol. */

/** Asks every CPU to stop: their wait loops see it and unwind. */
export function machineStop(cpu: number): void {
  Atomics.compareExchange(I32, H.stop_cpu >> 2, -1, cpu);
  Atomics.store(I32, H.stop >> 2, 1);
  Atomics.notify(I32, H.stop >> 2);
}

export function machineStopping(): boolean {
  return Atomics.load(I32, H.stop >> 2) !== 0;
}

export function machineStopCpu(): number {
  return Atomics.load(I32, H.stop_cpu >> 2);
}

export function countReport(): number {
  return Atomics.add(I32, H.nr_reports >> 2, 1) + 1;
}

export function reportCount(): number {
  return Atomics.load(I32, H.nr_reports >> 2);
}

/** Fixed-size NUL-terminated ASCII strings in the arena (names, callers). */
export function writeCString(ptr: number, max: number, s: string): void {
  const n = Math.min(s.length, max - 1);
  for (let i = 0; i < n; i++) U8[ptr + i] = s.charCodeAt(i) & 0x7f;
  U8[ptr + n] = 0;
}

export function readCString(ptr: number, max: number): string {
  let s = "";
  for (let i = 0; i < max; i++) {
    const c = U8[ptr + i]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/** Address of the contents of page frame `pfn` (the kernel's page_address via the linear map). */
export function pfn_to_data(pfn: number): number {
  return PAGEDATA_BASE + pfn * PAGE_SIZE;
}
