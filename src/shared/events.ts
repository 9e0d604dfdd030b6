/**
 * Per-CPU event rings: the last TRACE_RING_SIZE events of every CPU, in the
 * arena, so a violation report can show what each CPU did last — read on the
 * main thread while the CPUs are parked or after the machine stopped.
 *
 * In the kernel's terms this is a tiny ftrace: trace_event() is a tracepoint
 * — at the entry and exit of vmalloc, vfree, vunmap, vm_map_ram and the
 * purge, at the purge's flush (the range v6.3's include/trace/events/vmalloc.h
 * traces), at every vmap_area_lock acquisition — each CPU writes only its own ring
 * (kernel/trace/ring_buffer.c's per-CPU buffers, overwrite mode), and
 * the first report takes a snapshot of every ring (tracing_snapshot with
 * traceoff_on_warning's trigger), so the events that led to a WARN are not
 * scrolled away by the run going on.
 *
 * An entry is (seq × 256 + kind, a, b): seq counts this CPU's events, a and
 * b are the event's arguments (kernel addresses as kaddrs, printed in full
 * hex only by the reader). Four plain stores: the measured cost is in docs/benchmarks.md.
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, F64, I32, U8, per_cpu_ptr, theArena } from "./arena.js";
import { layoutOf } from "./config.js";
import { formatKaddr } from "./layouts.js";
import type { ReportKind } from "./report.js";
import { defineStruct } from "./struct.js";
import { HARDIRQ_MASK, NMI_MASK, SOFTIRQ_MASK } from "./preempt_mask.js";
import { onSetCurrentCpu, this_cpu_ptr } from "./smp.js";

/** Events each CPU keeps (a power of two: the slot is seq & (N - 1)). */
export const TRACE_RING_SIZE = 256;

/** How an event argument is printed. */
type ArgFormat = "kaddr" | "kaddr_or_null" | "kaddr_opt" | "dec" | "hex" | "site" | "report" | "context";

/** One kind of event: its name and its two arguments (label, format). */
interface TraceEventDef {
  readonly name: string;
  readonly a?: readonly [string, ArgFormat];
  readonly b?: readonly [string, ArgFormat];
}

/** Every event kind; the kind number is the index + 1 (0 marks an empty slot). */
const TRACE_EVENTS = [
  /* API entry and exit (mm/vmalloc.c) */
  { name: "vmalloc", a: ["size", "dec"], b: ["align", "hex"] },
  { name: "vmalloc ret", a: ["addr", "kaddr_or_null"] },
  { name: "vfree", a: ["addr", "kaddr"], b: ["in", "context"] },
  { name: "vunmap", a: ["addr", "kaddr"] },
  { name: "vm_map_ram", a: ["count", "dec"] },
  { name: "vm_map_ram ret", a: ["addr", "kaddr"], b: ["count", "dec"] },
  { name: "vm_unmap_ram", a: ["addr", "kaddr"], b: ["count", "dec"] },
  { name: "vm_unmap_aliases" },
  { name: "purge_vmap_area_lazy" },
  /* the lazy purge's TLB flush: the areas in [start, end) go back to the allocator */
  { name: "purge flush", a: ["start", "kaddr"], b: ["end", "kaddr"] },
  /* vmap_area_lock taken (alloc_vmap_area: with the address its search found) */
  { name: "spin_lock(vmap_area_lock)", a: ["in", "site"], b: ["addr", "kaddr_opt"] },
  /* the harness */
  { name: "report", a: ["kind", "report"], b: ["nr", "dec"] },
  { name: "stutter", a: ["ns", "dec"], b: ["sleep", "dec"] },
  { name: "rcu walk vmap_area_list", a: ["areas", "dec"] },
] as const satisfies readonly TraceEventDef[];

export type TraceEventName = (typeof TRACE_EVENTS)[number]["name"];

function kindOf(name: TraceEventName): number {
  return TRACE_EVENTS.findIndex((e) => e.name === name) + 1;
}

export const EV_VMALLOC = kindOf("vmalloc");
export const EV_VMALLOC_RET = kindOf("vmalloc ret");
export const EV_VFREE = kindOf("vfree");
export const EV_VUNMAP = kindOf("vunmap");
export const EV_VM_MAP_RAM = kindOf("vm_map_ram");
export const EV_VM_MAP_RAM_RET = kindOf("vm_map_ram ret");
export const EV_VM_UNMAP_RAM = kindOf("vm_unmap_ram");
export const EV_VM_UNMAP_ALIASES = kindOf("vm_unmap_aliases");
export const EV_PURGE_VMAP_AREA_LAZY = kindOf("purge_vmap_area_lazy");
export const EV_PURGE_FLUSH = kindOf("purge flush");
export const EV_VMAP_AREA_LOCK = kindOf("spin_lock(vmap_area_lock)");
export const EV_REPORT = kindOf("report");
export const EV_STUTTER = kindOf("stutter");
export const EV_RCU_WALK = kindOf("rcu walk vmap_area_list");

/** Where vmap_area_lock was taken: the `a` of EV_VMAP_AREA_LOCK is an index of this list. */
export const LOCK_SITES = [
  "alloc_vmap_area",
  "free_vmap_area",
  "__purge_vmap_area_lazy",
  "find_vmap_area",
  "setup_vmalloc_vm",
  "remove_vm_area",
  "vread",
  "vwrite",
] as const;
const site = (name: (typeof LOCK_SITES)[number]): number => LOCK_SITES.indexOf(name);
export const LK_ALLOC_VMAP_AREA = site("alloc_vmap_area");
export const LK_FREE_VMAP_AREA = site("free_vmap_area");
export const LK_PURGE = site("__purge_vmap_area_lazy");
export const LK_FIND_VMAP_AREA = site("find_vmap_area");
export const LK_SETUP_VMALLOC_VM = site("setup_vmalloc_vm");
export const LK_REMOVE_VM_AREA = site("remove_vm_area");
export const LK_VREAD = site("vread");
export const LK_VWRITE = site("vwrite");

/** The report kinds, numbered for EV_REPORT's argument. */
const REPORT_KINDS: readonly ReportKind[] = [
  "WARN",
  "lockdep",
  "fault",
  "stale-tlb",
  "rcu",
  "soft-lockup",
  "bad-page",
  "slab",
  "sched",
  "kcsan",
];

/** One event. Only its CPU writes it; readers look while that CPU is parked or stopped. */
export const TRACE_ENTRY = defineStruct("trace_entry", [
  /**
   * seq × 256 + kind, one store: seq is this CPU's event number (mod 2^32),
   * which tells a reader the lap of the ring the slot holds; kind is the
   * index + 1 of the event in TRACE_EVENTS (0: an empty slot).
   */
  { name: "tag", type: "f64", guard: "owner" },
  { name: "a", type: "f64", guard: "owner" },
  { name: "b", type: "f64", guard: "owner" },
]);

/** A CPU's ring. */
export const TRACE_RING = defineStruct("trace_ring", [
  /** Events this CPU recorded so far (mod 2^32); the next goes to slot head & (N - 1). */
  { name: "head", type: "u32", guard: "owner" },
  { name: "entries", type: TRACE_ENTRY, count: TRACE_RING_SIZE, guard: "owner" },
]);
const trace_ring = DEFINE_PER_CPU("trace_ring", TRACE_RING);

/**
 * The snapshot (kernel/trace/trace.c's tracing_snapshot): a copy of every
 * CPU's ring taken at the first report, so the events that led to a WARN are
 * not scrolled away by the run going on. trace_event never looks at it.
 */
export const TRACE_SNAPSHOT = defineStruct("trace_snapshot", [
  /** 0 none, 1 being taken, 2 taken: the compareExchange claims it, the store publishes the copy. */
  { name: "state", type: "i32", guard: "atomic" },
  /** Nonzero: the first report that is not an allocation failure takes the snapshot (traceoff_on_warning). */
  { name: "snapshot_on_warning", type: "i32", guard: "atomic" },
]);
const trace_snapshot = DEFINE_GLOBAL("trace_snapshot", TRACE_SNAPSHOT);
/** Each CPU's copy of its ring at the snapshot. */
const trace_snapshot_ring = DEFINE_PER_CPU("trace_snapshot_ring", TRACE_RING);

const SNAP_NONE = 0;
const SNAP_TAKING = 1;
const SNAP_TAKEN = 2;

/* The hot path in F64 elements, from the tables: an entry's length and its fields' indexes. */
const ENTRY_F64 = TRACE_ENTRY.size >> 3;
const E_TAG = TRACE_ENTRY.off.tag >> 3;
const E_A = TRACE_ENTRY.off.a >> 3;
const E_B = TRACE_ENTRY.off.b >> 3;
const MASK = TRACE_RING_SIZE - 1;
/** tag = seq × KIND_SPAN + kind. */
const KIND_SPAN = 256;

/* This CPU's ring, cached per thread: the head's I32 index and the first entry's F64 index. */
let headIdx = 0;
let entries = 0;
onSetCurrentCpu(() => {
  const p = this_cpu_ptr(trace_ring);
  headIdx = (p + TRACE_RING.off.head) >> 2;
  entries = (p + TRACE_RING.off.entries) >> 3;
});

/**
 * Records event `kind` with arguments `a`, `b` on this CPU: four plain stores
 * and no sched point, so an interrupt (taken only at sched points) never
 * lands in the middle of one. The tag goes first: a snapshot that catches the
 * slot half-written reads the new seq there, which the reader rejects (that
 * slot's expected event is the one a lap earlier).
 */
export function trace_event(kind: number, a: number, b: number): void {
  const i32 = I32;
  const f64 = F64;
  const seq = i32[headIdx]!;
  const e = entries + (seq & MASK) * ENTRY_F64;
  f64[e + E_TAG] = (seq >>> 0) * KIND_SPAN + kind;
  f64[e + E_A] = a;
  f64[e + E_B] = b;
  i32[headIdx] = seq + 1;
}

/**
 * tracing_snapshot (v4.19): copy every CPU's ring, once per machine (later
 * calls keep the first). The other CPUs may be writing meanwhile: a slot
 * caught half-written fails the reader's seq check and is left out (see
 * trace_event).
 */
export function tracing_snapshot(): void {
  const st = (trace_snapshot.ptr + TRACE_SNAPSHOT.off.state) >> 2;
  if (Atomics.compareExchange(I32, st, SNAP_NONE, SNAP_TAKING) !== SNAP_NONE) return;
  for (let cpu = 0; cpu < theArena().config.cpus; cpu++) {
    const from = per_cpu_ptr(trace_ring, cpu);
    U8.copyWithin(per_cpu_ptr(trace_snapshot_ring, cpu), from, from + TRACE_RING.size);
  }
  // Publishes the copies: a reader that loads SNAP_TAKEN reads them whole.
  Atomics.store(I32, st, SNAP_TAKEN);
}

/** Drops the snapshot: the reader shows the live rings again. Main thread, CPUs parked. */
export function tracing_snapshot_clear(): void {
  Atomics.store(I32, (trace_snapshot.ptr + TRACE_SNAPSHOT.off.state) >> 2, SNAP_NONE);
}

/** The traceoff_on_warning switch (kernel parameter, v4.19), taking the snapshot instead of stopping. */
export function set_snapshot_on_warning(on: boolean): void {
  Atomics.store(I32, (trace_snapshot.ptr + TRACE_SNAPSHOT.off.snapshot_on_warning) >> 2, on ? 1 : 0);
}

/**
 * Is this report an allocation failure — warn_alloc's "page allocation
 * failure" / "vmalloc: allocation failure", SLUB's "Unable to allocate
 * memory", alloc_vmap_area's "vmap allocation … failed"? Those are the
 * expected outcome of fault injection, not bugs.
 */
export function isAllocFailureReport(kind: ReportKind, text: string): boolean {
  return (
    kind === "WARN" &&
    /page allocation failure|vmalloc: allocation failure|SLUB: Unable to allocate memory|vmap allocation for size \d+ failed|vmalloc error: size \d+|vmalloc_node_range for size \d+ failed/.test(
      text,
    )
  );
}

/**
 * The trace side of reportBug: an EV_REPORT event, then — with
 * snapshot_on_warning and unless the report is an allocation failure — the
 * snapshot, as the kernel's __warn turns tracing off with traceoff_on_warning.
 */
export function trace_report(kind: ReportKind, text: string, nr: number): void {
  trace_event(EV_REPORT, REPORT_KINDS.indexOf(kind), nr);
  const on = Atomics.load(I32, (trace_snapshot.ptr + TRACE_SNAPSHOT.off.snapshot_on_warning) >> 2);
  if (on !== 0 && !isAllocFailureReport(kind, text)) tracing_snapshot();
}

/*** The reader (main thread, CPUs parked or stopped) ***/

/** Events CPU `cpu` recorded since boot (mod 2^32). */
export function traceEventCount(cpu: number): number {
  return I32[(per_cpu_ptr(trace_ring, cpu) + TRACE_RING.off.head) >> 2]! >>> 0;
}

function formatArg(fmt: ArgFormat, v: number): string {
  switch (fmt) {
    case "kaddr":
      return formatKaddr(layoutOf(theArena().config), v);
    case "kaddr_opt":
    case "kaddr_or_null":
      return v === 0 ? "NULL" : formatKaddr(layoutOf(theArena().config), v);
    case "context":
      return v & NMI_MASK ? "nmi" : v & HARDIRQ_MASK ? "hardirq" : v & SOFTIRQ_MASK ? "softirq" : "process";
    case "hex":
      return `0x${v.toString(16)}`;
    case "site":
      return LOCK_SITES[v] ?? `site ${v}`;
    case "report":
      return REPORT_KINDS[v] ?? `kind ${v}`;
    default:
      return String(v);
  }
}

/** True when a snapshot was taken: {@link lastEvents} shows the rings as they were then. */
export function tracingSnapshotTaken(): boolean {
  return Atomics.load(I32, (trace_snapshot.ptr + TRACE_SNAPSHOT.off.state) >> 2) === SNAP_TAKEN;
}

/**
 * The last `n` events of CPU `cpu` (of its snapshot, when one was taken and
 * `live` is false), oldest first, one line each: `CPU1 #4711 vfree
 * addr=0xffff000008a52000 in=hardirq`. At most TRACE_RING_SIZE; a slot whose
 * seq is not the one expected (caught half-written) is left out.
 */
export function lastEvents(cpu: number, n: number, live = false): string[] {
  const ring = per_cpu_ptr(!live && tracingSnapshotTaken() ? trace_snapshot_ring : trace_ring, cpu);
  const head = I32[(ring + TRACE_RING.off.head) >> 2]! >>> 0;
  const count = Math.min(n, TRACE_RING_SIZE, head);
  const out: string[] = [];
  for (let k = count; k > 0; k--) {
    const seq = (head - k) >>> 0;
    const e = ((ring + TRACE_RING.off.entries) >> 3) + (seq & MASK) * ENTRY_F64;
    const tag = F64[e + E_TAG]!;
    if (Math.floor(tag / KIND_SPAN) !== seq) continue;
    const def: TraceEventDef | undefined = TRACE_EVENTS[(tag % KIND_SPAN) - 1];
    if (def === undefined) continue;
    const args: string[] = [];
    for (const [arg, v] of [
      [def.a, F64[e + E_A]!],
      [def.b, F64[e + E_B]!],
    ] as const)
      if (arg !== undefined && !(arg[1] === "kaddr_opt" && v <= 0)) args.push(`${arg[0]}=${formatArg(arg[1], v)}`);
    out.push(`CPU${cpu} #${seq} ${def.name}${args.length > 0 ? ` ${args.join(" ")}` : ""}`);
  }
  return out;
}
