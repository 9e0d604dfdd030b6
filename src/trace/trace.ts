/**
 * Span tracing: each CPU records the begin and end of what it does — API
 * calls, lock waits and holds, RCU read-side sections, interrupt handlers,
 * grace periods — into its own ring in the arena; src/workers/chrome_trace.ts
 * turns the rings into Chrome trace-event JSON (Perfetto).
 *
 * In the kernel's terms: the tracepoints are the kernel's own where it has
 * them (lock:lock_acquire/lock_release/lock_contended/lock_acquired,
 * irq:irq_handler_entry/exit, rcu:rcu_grace_period) and function_graph's
 * entry/return for API calls; each CPU writes only its own ring buffer in
 * overwrite mode (kernel/trace/ring_buffer.c), so a ring keeps the last
 * config.trace events of its CPU.
 *
 * Off (config.trace 0, the default) there is no ring, and every hook costs
 * its caller one test of the module boolean {@link tracing}: hooks are
 * written `if (tracing) trace_…(…)`.
 *
 * Clocks: under the deterministic scheduler an event's time is the global
 * step (schedGlobalStep, 1 step = 1000 ns) plus 4 ns per earlier event of
 * the same step (one CPU runs at a time, so the order is total and a replay
 * records the same times); free-running, it is performance.now() in ns
 * since the machine booted, on one clock for every thread.
 *
 * Only CPU workers record (traceCpuOnline, from percpuCpuOnline): the main
 * thread's checks between rounds take locks as CPU 0 but are not traced.
 */
import { DEFINE_GLOBAL, F64, I32, defineRegion, staticInit, theArena } from "../shared/arena.js";
import type { MachineConfig } from "../shared/config.js";
import { defineStruct } from "../shared/struct.js";
import { onSetCurrentCpu, smp_processor_id } from "../shared/smp.js";
import { schedDeterministic, schedGlobalStep } from "../sched/sched_det.js";

/*** Event types ***/

/** function_graph entry of an API call: key = TRACE_FUNCS index, a and b its arguments. */
export const TR_GRAPH_ENTRY = 1;
/** function_graph return: key = TRACE_FUNCS index, a = the return value. */
export const TR_GRAPH_RETURN = 2;
/** lock:lock_contended — the lock was taken, this CPU starts waiting: key = lock, a = class, b = LOCK_* kind. */
export const TR_LOCK_CONTENDED = 3;
/** lock:lock_acquired — the wait is over: key = lock. */
export const TR_LOCK_ACQUIRED = 4;
/** lock:lock_acquire — this CPU holds the lock: key = lock, a = class, b = LOCK_* kind. */
export const TR_LOCK_ACQUIRE = 5;
/** lock:lock_release: key = lock. */
export const TR_LOCK_RELEASE = 6;
/** Outermost rcu_read_lock / rcu_read_unlock. */
export const TR_RCU_READ_LOCK = 7;
export const TR_RCU_READ_UNLOCK = 8;
/** irq:irq_handler_entry / irq_handler_exit: key = irq, a = the handler's kernel function id. */
export const TR_IRQ_HANDLER_ENTRY = 9;
export const TR_IRQ_HANDLER_EXIT = 10;
/** rcu:rcu_grace_period "start" / "end": key = the grace period's gp_seq. */
export const TR_GP_START = 11;
export const TR_GP_END = 12;
/** Flag on the type: the event's time is the deterministic clock. */
export const TR_DET = 0x100;

/** Lock kinds (b of the lock events). */
export const LOCK_SPIN = 0;
export const LOCK_READ = 1;
export const LOCK_WRITE = 2;
export const LOCK_MUTEX = 3;

/** How a traced function's argument is shown. */
export type TraceArgFormat = "dec" | "kaddr" | "kaddr_or_null" | "ksym";

/** A traced API function: its name, its arguments (label, format) and its return value. */
export interface TraceFunc {
  readonly name: string;
  readonly a?: readonly [string, TraceArgFormat];
  readonly b?: readonly [string, TraceArgFormat];
  readonly ret?: readonly [string, TraceArgFormat];
}

/** The API functions a trace shows as spans; the key of a graph event is the index. */
export const TRACE_FUNCS = [
  { name: "__vmalloc_node_range", a: ["size", "dec"], b: ["caller", "ksym"], ret: ["addr", "kaddr_or_null"] },
  { name: "vfree", a: ["addr", "kaddr"] },
  { name: "vunmap", a: ["addr", "kaddr"] },
  { name: "vm_map_ram", a: ["count", "dec"], ret: ["addr", "kaddr_or_null"] },
  { name: "vm_unmap_ram", a: ["addr", "kaddr"], b: ["count", "dec"] },
  { name: "vm_unmap_aliases" },
  { name: "purge_vmap_area_lazy" },
  { name: "__purge_vmap_area_lazy", ret: ["purged", "dec"] },
  { name: "synchronize_rcu" },
  { name: "rcu_barrier" },
  /* /proc/vmallocinfo: s_show over every area, vmap_area_lock held */
  { name: "vmallocinfo", ret: ["areas", "dec"] },
] as const satisfies readonly TraceFunc[];

type TraceFuncName = (typeof TRACE_FUNCS)[number]["name"];
const func = (name: TraceFuncName): number => TRACE_FUNCS.findIndex((f) => f.name === name);
export const TF_VMALLOC = func("__vmalloc_node_range");
export const TF_VFREE = func("vfree");
export const TF_VUNMAP = func("vunmap");
export const TF_VM_MAP_RAM = func("vm_map_ram");
export const TF_VM_UNMAP_RAM = func("vm_unmap_ram");
export const TF_VM_UNMAP_ALIASES = func("vm_unmap_aliases");
export const TF_PURGE_VMAP_AREA_LAZY = func("purge_vmap_area_lazy");
/** __purge_vmap_area_lazy, the purge itself (vmap_purge_lock held). */
export const TF_PURGE_VMAP_AREA_LAZY_LOCKED = func("__purge_vmap_area_lazy");
export const TF_SYNCHRONIZE_RCU = func("synchronize_rcu");
export const TF_RCU_BARRIER = func("rcu_barrier");
export const TF_VMALLOCINFO = func("vmallocinfo");

/*** The rings ***/

/** One event. Only its CPU writes it; the reader looks while the CPUs are parked. */
const RING_BUFFER_EVENT = defineStruct("ring_buffer_event", [
  /** TR_* | TR_DET when the deterministic clock stamped it. */
  { name: "type", type: "i32", guard: "owner" },
  /** What the event is about: a TRACE_FUNCS index, a lock's address, an irq, a gp_seq. */
  { name: "key", type: "i32", guard: "owner" },
  /** ns: since boot (free) or step × 1000 + the order within the step (deterministic). */
  { name: "ts", type: "f64", guard: "owner" },
  { name: "a", type: "f64", guard: "owner" },
  { name: "b", type: "f64", guard: "owner" },
]);

/** A CPU's ring: this header, then config.trace entries. */
const RING_BUFFER_PER_CPU = defineStruct("ring_buffer_per_cpu", [
  /** Slot of the next event. */
  { name: "next", type: "i32", guard: "owner" },
  /** Events recorded since boot or the last traceReset (the ring keeps the last config.trace). */
  { name: "nr", type: "f64", guard: "owner" },
]);

/** Bytes of one CPU's ring, a whole number of cache lines (CPUs write their rings side by side). */
function bufferStride(c: MachineConfig): number {
  return Math.ceil((RING_BUFFER_PER_CPU.size + c.trace * RING_BUFFER_EVENT.size) / 64) * 64;
}

/** Every CPU's ring; empty when tracing is off. */
const trace_buffers = defineRegion("trace_buffers", (c) => (c.trace > 0 ? c.cpus * bufferStride(c) : 0));

const TRACE_CLOCK = defineStruct("trace_clock", [
  /** process.hrtime of the boot (main thread, at arena creation): the free clock's zero. */
  { name: "boot_ns", type: "f64", guard: "init" },
  /** Deterministic clock: the step of the last event and how many events that step had before it. */
  { name: "step", type: "f64", guard: "the run token" },
  { name: "sub", type: "i32", guard: "the run token" },
]);
const trace_clock = DEFINE_GLOBAL("trace_clock", TRACE_CLOCK);
staticInit(() => {
  F64[(trace_clock.ptr + TRACE_CLOCK.off.boot_ns) >> 3] = Number(process.hrtime.bigint());
  F64[(trace_clock.ptr + TRACE_CLOCK.off.step) >> 3] = -1;
});

/** Deterministic clock: ns per step, and per event within a step (the last SUB_MAX share one time). */
const STEP_NS = 1000;
const SUB_NS = 4;
const SUB_MAX = STEP_NS / SUB_NS - 1;

function bufferOf(cpu: number): number {
  return trace_buffers.base + cpu * bufferStride(theArena().config);
}

/*** This thread ***/

/** True while this thread is a CPU that records events (live binding: hooks test it directly). */
export let tracing = false;
/** The arena tracing was turned on for: a thread bound to a new machine stops recording. */
let tracedTo: SharedArrayBuffer | null = null;
let nextIdx = 0;
let nrIdx = 0;
let entries = 0;
let capacity = 0;
/** performance.now() × 1e6 + originNs = ns since boot. */
let originNs = 0;

/** performance.now()'s zero on process.hrtime's scale, in ns: the closest of a few bracketed reads. */
function perfOriginNs(): number {
  let best = Number.POSITIVE_INFINITY;
  let origin = 0;
  for (let i = 0; i < 32; i++) {
    const h1 = process.hrtime.bigint();
    const p = performance.now();
    const h2 = process.hrtime.bigint();
    const window = Number(h2 - h1);
    if (window < best) {
      best = window;
      origin = (Number(h1) + Number(h2)) / 2 - p * 1e6;
    }
  }
  return origin;
}

function bindRing(cpu: number): void {
  const p = bufferOf(cpu);
  nextIdx = (p + RING_BUFFER_PER_CPU.off.next) >> 2;
  nrIdx = (p + RING_BUFFER_PER_CPU.off.nr) >> 3;
  entries = p + RING_BUFFER_PER_CPU.size;
  capacity = theArena().config.trace;
}

onSetCurrentCpu((cpu) => {
  if (tracedTo === null) return;
  if (tracedTo !== theArena().sab) {
    tracing = false;
    tracedTo = null;
  } else bindRing(cpu);
});

/**
 * Harness: this thread, a CPU coming online, records events when the
 * machine's config.trace is nonzero (percpuCpuOnline calls it).
 */
export function traceCpuOnline(): void {
  const a = theArena();
  tracing = a.config.trace > 0;
  tracedTo = tracing ? a.sab : null;
  if (!tracing) return;
  bindRing(smp_processor_id());
  originNs = perfOriginNs() - F64[(trace_clock.ptr + TRACE_CLOCK.off.boot_ns) >> 3]!;
}

/** The deterministic clock: the step, then 4 ns per event already recorded in it (by any CPU). */
function detNs(): number {
  const step = schedGlobalStep();
  const s = (trace_clock.ptr + TRACE_CLOCK.off.step) >> 3;
  const k = (trace_clock.ptr + TRACE_CLOCK.off.sub) >> 2;
  let sub = 0;
  if (F64[s] === step) sub = I32[k]! + 1;
  else F64[s] = step;
  I32[k] = sub;
  return step * STEP_NS + Math.min(sub, SUB_MAX) * SUB_NS;
}

/* The hot path's offsets, from the table. */
const EVENT_SIZE = RING_BUFFER_EVENT.size;
const EV_TYPE = RING_BUFFER_EVENT.off.type;
const EV_KEY = RING_BUFFER_EVENT.off.key;
const EV_TS = RING_BUFFER_EVENT.off.ts;
const EV_A = RING_BUFFER_EVENT.off.a;
const EV_B = RING_BUFFER_EVENT.off.b;

/** Records one event on this CPU: plain stores to its own ring, no sched point. */
function trace_record(type: number, key: number, a: number, b: number): void {
  const det = schedDeterministic;
  const ts = det ? detNs() : performance.now() * 1e6 + originNs;
  const next = I32[nextIdx]!;
  const e = entries + next * EVENT_SIZE;
  I32[(e + EV_TYPE) >> 2] = det ? type | TR_DET : type;
  I32[(e + EV_KEY) >> 2] = key;
  F64[(e + EV_TS) >> 3] = ts;
  F64[(e + EV_A) >> 3] = a;
  F64[(e + EV_B) >> 3] = b;
  I32[nextIdx] = next + 1 === capacity ? 0 : next + 1;
  F64[nrIdx]!++;
}

/*** Tracepoints (call them only `if (tracing)`) ***/

/** function_graph entry of TRACE_FUNCS[fn] with its arguments. */
export function trace_graph_entry(fn: number, a: number, b: number): void {
  trace_record(TR_GRAPH_ENTRY, fn, a, b);
}

/** function_graph return of TRACE_FUNCS[fn] with its return value. */
export function trace_graph_return(fn: number, ret: number): void {
  trace_record(TR_GRAPH_RETURN, fn, ret, 0);
}

/** lock_contended: `lock` (of class `cls`, kind LOCK_*) is taken; this CPU starts waiting. */
export function trace_lock_contended(lock: number, cls: number, kind: number): void {
  trace_record(TR_LOCK_CONTENDED, lock, cls, kind);
}

/** lock_acquired: the wait for `lock` is over (the acquisition follows). */
export function trace_lock_acquired(lock: number): void {
  trace_record(TR_LOCK_ACQUIRED, lock, 0, 0);
}

/** lock_acquire: this CPU holds `lock` now (after the lock word says so). */
export function trace_lock_acquire(lock: number, cls: number, kind: number): void {
  trace_record(TR_LOCK_ACQUIRE, lock, cls, kind);
}

/** lock_release: this CPU lets `lock` go (before the lock word says so, so a waiter's acquire follows it). */
export function trace_lock_release(lock: number): void {
  trace_record(TR_LOCK_RELEASE, lock, 0, 0);
}

/** The outermost rcu_read_lock of a read-side section. */
export function trace_rcu_read_lock(): void {
  trace_record(TR_RCU_READ_LOCK, 0, 0, 0);
}

/** The outermost rcu_read_unlock. */
export function trace_rcu_read_unlock(): void {
  trace_record(TR_RCU_READ_UNLOCK, 0, 0, 0);
}

/** irq_handler_entry: this CPU runs the handler (kernel function `handler`, 0: none) of `irq`. */
export function trace_irq_handler_entry(irq: number, handler: number): void {
  trace_record(TR_IRQ_HANDLER_ENTRY, irq, handler, 0);
}

/** irq_handler_exit. */
export function trace_irq_handler_exit(irq: number): void {
  trace_record(TR_IRQ_HANDLER_EXIT, irq, 0, 0);
}

/** rcu_grace_period "start": grace period `gpSeq` (its gp_seq while in progress) begins on this CPU. */
export function trace_rcu_gp_start(gpSeq: number): void {
  trace_record(TR_GP_START, gpSeq, 0, 0);
}

/** rcu_grace_period "end" of grace period `gpSeq` (the same value trace_rcu_gp_start got). */
export function trace_rcu_gp_end(gpSeq: number): void {
  trace_record(TR_GP_END, gpSeq, 0, 0);
}

/*** The reader (main thread, CPUs parked or stopped) ***/

/** One recorded event. */
export interface TraceEntry {
  /** TR_* (without TR_DET). */
  readonly type: number;
  /** True when the deterministic clock stamped it. */
  readonly det: boolean;
  readonly key: number;
  /** ns (see the clocks above). */
  readonly ts: number;
  readonly a: number;
  readonly b: number;
}

/** Events each CPU's ring keeps (config.trace); 0: tracing is off. */
export function traceCapacity(): number {
  return theArena().config.trace;
}

/** Events CPU `cpu` recorded since boot or the last {@link traceReset}; those beyond the capacity were overwritten. */
export function traceRecorded(cpu: number): number {
  if (traceCapacity() === 0) return 0;
  return F64[(bufferOf(cpu) + RING_BUFFER_PER_CPU.off.nr) >> 3]!;
}

/** The events CPU `cpu`'s ring holds, oldest first. */
export function traceEntries(cpu: number): TraceEntry[] {
  const cap = traceCapacity();
  if (cap === 0) return [];
  const p = bufferOf(cpu);
  const nr = F64[(p + RING_BUFFER_PER_CPU.off.nr) >> 3]!;
  const next = I32[(p + RING_BUFFER_PER_CPU.off.next) >> 2]!;
  const n = Math.min(nr, cap);
  const out: TraceEntry[] = [];
  for (let i = 0; i < n; i++) {
    const e = p + RING_BUFFER_PER_CPU.size + ((next - n + i + cap) % cap) * RING_BUFFER_EVENT.size;
    const type = I32[(e + RING_BUFFER_EVENT.off.type) >> 2]!;
    out.push({
      type: type & ~TR_DET,
      det: (type & TR_DET) !== 0,
      key: I32[(e + RING_BUFFER_EVENT.off.key) >> 2]!,
      ts: F64[(e + RING_BUFFER_EVENT.off.ts) >> 3]!,
      a: F64[(e + RING_BUFFER_EVENT.off.a) >> 3]!,
      b: F64[(e + RING_BUFFER_EVENT.off.b) >> 3]!,
    });
  }
  return out;
}

/**
 * Empties every CPU's ring and restarts the deterministic clock's order:
 * call it (CPUs parked) before the run a trace should show — after
 * machine.restore(), since a snapshot holds the rings as they were.
 */
export function traceReset(): void {
  const cpus = theArena().config.cpus;
  if (traceCapacity() > 0)
    for (let cpu = 0; cpu < cpus; cpu++) {
      const p = bufferOf(cpu);
      I32[(p + RING_BUFFER_PER_CPU.off.next) >> 2] = 0;
      F64[(p + RING_BUFFER_PER_CPU.off.nr) >> 3] = 0;
    }
  F64[(trace_clock.ptr + TRACE_CLOCK.off.step) >> 3] = -1;
  I32[(trace_clock.ptr + TRACE_CLOCK.off.sub) >> 2] = 0;
}

/** The rings' region (base and size in bytes): size 0 when tracing is off. */
export function traceRegion(): { readonly base: number; readonly size: number } {
  return { base: trace_buffers.base, size: trace_buffers.size };
}
