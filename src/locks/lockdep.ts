/**
 * lockdep (kernel/locking/lockdep.c, v4.19, as built with PROVE_LOCKING and
 * TRACE_IRQFLAGS): per-CPU held-lock stacks, lock classes by name (and by
 * nesting subclass), a class order graph, and the kernel's reports —
 * recursive locking, circular dependencies, inconsistent irq usage, irq lock
 * inversions, irq-safe → irq-unsafe orders, held locks freed — naming the
 * CPUs and classes.
 *
 * All of it lives in the arena, so the soft-lockup watchdog and the deadlock
 * report can read any CPU's held locks from another thread.
 *
 * Spinlocks, rwlocks and mutexes share one class namespace (a class is the
 * lock's name) and one order graph, as in the kernel. Two locks of one class
 * held at once are "possible recursive locking" unless the inner one is taken
 * with a nesting subclass (spin_lock_nested), a class of its own ("name/1").
 *
 * Read acquisitions of an rwlock: v4.19 arm64 rwlocks are queued (qrwlock),
 * where a reader in process context queues behind a waiting writer, so for
 * deadlocks it is as exclusive as a writer (read = 1: recursion-checked like
 * any lock). Only a reader in interrupt context passes a waiting writer, so
 * only that one is a recursive read (read = 2) that may nest in a read hold
 * of the same lock — the rule lockdep itself adopted in v5.10. Every
 * acquisition, reads included, is ordered: stricter than v4.19, whose
 * recursive reads added no order and so hid a writer deadlocking against an
 * interrupt-context reader.
 *
 * Irq states (lockdep_states.h): each class records its usage bits — taken in
 * hardirq or softirq context (IN-HARDIRQ, "irq-safe"), taken with hardirqs or
 * softirqs enabled (HARDIRQ-ON, "irq-unsafe"), each for write and for read —
 * with the CPU and call chain that first set each. A class that is both safe
 * and unsafe, or an order-graph path from a safe class to an unsafe one, is
 * reported as soon as the pattern exists, whether or not an interrupt ever
 * landed while the lock was held. Locks order only against locks taken in the
 * same irq context (an interrupt handler's locks do not nest in the locks of
 * the code it interrupted), as in the kernel.
 *
 * With lockdep off (`lockdepOn` false) callers skip every hook with one branch.
 */
import {
  DEFINE_GLOBAL,
  DEFINE_PER_CPU,
  I32,
  kernelName,
  onMachineReset,
  readCString,
  theArena,
  writeCString,
} from "../shared/arena.js";
import { HARDIRQ_MASK, HARDIRQ_OFFSET, SOFTIRQ_MASK, SOFTIRQ_OFFSET } from "../shared/preempt_mask.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { onSetCurrentCpu, per_cpu_ptr, smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { registerHeldLocksView } from "../sched/sched_det.js";
import { kcsanRegisterHeldLocks } from "../sched/kcsan.js";
import { irqs_disabled, preempt_count, registerIrqsOnTracer } from "../percpu/preempt.js";
import { frameText, save_stack_trace } from "./stacktrace.js";

export const MAX_LOCK_CLASSES = 128;
export const MAX_LOCK_DEPTH = 48;
/** Nesting subclasses of one class (MAX_LOCKDEP_SUBCLASSES). */
export const MAX_LOCKDEP_SUBCLASSES = 8;
/** The subclass of one lock taken inside another of its class (include/linux/lockdep.h). */
export const SINGLE_DEPTH_NESTING = 1;
const CLASS_NAME_LEN = 32;
/** Bytes of a usage trace: the call chain where a class's usage bit was first set. */
const USAGE_TRACE_LEN = 96;

/* enum lock_usage_bit (v4.19): bit 0 read, bit 1 enabled (else used in), bit 2 the state (hardirq, softirq). */
const LOCK_USED_IN_HARDIRQ = 0;
const LOCK_ENABLED_HARDIRQ = 2;
const LOCK_USED_IN_SOFTIRQ = 4;
const LOCK_ENABLED_SOFTIRQ = 6;
const LOCK_USAGE_STATES = 8;
const usage_str = [
  "IN-HARDIRQ-W",
  "IN-HARDIRQ-R",
  "HARDIRQ-ON-W",
  "HARDIRQ-ON-R",
  "IN-SOFTIRQ-W",
  "IN-SOFTIRQ-R",
  "SOFTIRQ-ON-W",
  "SOFTIRQ-ON-R",
];

export const LOCKDEP_GRAPH = defineStruct("lockdep_graph", [
  /** Raw spin word for class registration, new edges and new usage bits (not itself tracked). */
  { name: "graph_lock", type: "i32", guard: "atomic" },
  { name: "nr_classes", type: "i32", guard: "atomic" },
  { name: "class_names", type: "u32", count: (MAX_LOCK_CLASSES * CLASS_NAME_LEN) / 4, guard: "graph_lock" },
  /** before[a*128+b] = 1 + the CPU that first took class b while holding a; 0 = no edge. */
  { name: "before", type: "i32", count: MAX_LOCK_CLASSES * MAX_LOCK_CLASSES, guard: "atomic" },
  /** subclasses[c*8+s]: the class of class c taken with nesting subclass s; 0 until first used. */
  { name: "subclasses", type: "i32", count: MAX_LOCK_CLASSES * MAX_LOCKDEP_SUBCLASSES, guard: "atomic" },
  /** lock_class.usage_mask: bits set under graph_lock; read without it (a stale read takes the slow path). */
  { name: "usage_mask", type: "i32", count: MAX_LOCK_CLASSES, guard: "atomic" },
  /** lock_class.usage_traces: the CPU that first set each usage bit, and its call chain. */
  { name: "usage_cpu", type: "i32", count: MAX_LOCK_CLASSES * LOCK_USAGE_STATES, guard: "graph_lock" },
  {
    name: "usage_trace",
    type: "u32",
    count: (MAX_LOCK_CLASSES * LOCK_USAGE_STATES * USAGE_TRACE_LEN) / 4,
    guard: "graph_lock",
  },
]);
const graph = DEFINE_GLOBAL("lockdep_graph", LOCKDEP_GRAPH);

/** held_locks[] of task_struct, per CPU (a CPU runs one task at a time here). */
export const HELD_LOCKS = defineStruct("held_locks", [
  { name: "depth", type: "i32", guard: "owner" },
  { name: "lock", type: "ptr", count: MAX_LOCK_DEPTH, guard: "owner" },
  { name: "class", type: "i32", count: MAX_LOCK_DEPTH, guard: "owner" },
  /** 0 exclusive, 1 read, 2 recursive read (held_lock.read). */
  { name: "read", type: "i32", count: MAX_LOCK_DEPTH, guard: "owner" },
  /** held_lock.irq_context (2 × hardirq + softirq), and HL_ACQUIRING until the lock is taken. */
  { name: "state", type: "i32", count: MAX_LOCK_DEPTH, guard: "owner" },
]);
const held_locks = DEFINE_PER_CPU("held_locks", HELD_LOCKS);
const HL_IRQ_CONTEXT = 3;
/**
 * lock_acquire pushes the entry before the wait, as the kernel does, so a
 * deadlock is reported before it happens; until lock_acquired the entry is a
 * lock the CPU waits for, and reports say so instead of listing it as held.
 */
const HL_ACQUIRING = 4;

/** Set from the machine config at attach; off, every hook below is one branch. */
export let lockdepOn = true;
/** Harness: turns lockdep on or off on this thread (tests, benches). */
export function setLockdep(on: boolean): void {
  lockdepOn = on;
  // Off, interrupts coming back on cost no call at all.
  registerIrqsOnTracer(on ? lockdep_irqs_on : null);
}

let depthIdx = 0;
let lockIdx = 0;
let classIdx = 0;
let readIdx = 0;
let stateIdx = 0;
onSetCurrentCpu(() => {
  const p = this_cpu_ptr(held_locks);
  depthIdx = (p + HELD_LOCKS.off.depth) >> 2;
  lockIdx = (p + HELD_LOCKS.off.lock) >> 2;
  classIdx = (p + HELD_LOCKS.off.class) >> 2;
  readIdx = (p + HELD_LOCKS.off.read) >> 2;
  stateIdx = (p + HELD_LOCKS.off.state) >> 2;
});

function graphLock(): void {
  const i = (graph.ptr + LOCKDEP_GRAPH.off.graph_lock) >> 2;
  while (Atomics.compareExchange(I32, i, 0, 1) !== 0) Atomics.wait(I32, i, 1, 1);
}
function graphUnlock(): void {
  const i = (graph.ptr + LOCKDEP_GRAPH.off.graph_lock) >> 2;
  Atomics.store(I32, i, 0);
  Atomics.notify(I32, i, 1);
}

/* Per-thread cache of the arena's class registry; a new arena (a new machine in the same thread) empties it. */
const classCache = new Map<string, number>();
let cacheOf: SharedArrayBuffer | null = null;
// A restored snapshot may lack classes registered after it was taken.
onMachineReset(() => {
  cacheOf = null;
});

/** The class id of a lock name (lock_class_key); ids start at 1. */
export function lockdep_class(versionedName: string): number {
  const name = kernelName(versionedName);
  const sab = theArena().sab;
  if (cacheOf !== sab) {
    classCache.clear();
    cacheOf = sab;
  }
  const hit = classCache.get(name);
  if (hit !== undefined) return hit;
  const namesPtr = graph.ptr + LOCKDEP_GRAPH.off.class_names;
  const nrIdx = (graph.ptr + LOCKDEP_GRAPH.off.nr_classes) >> 2;
  graphLock();
  let id = 0;
  const n = Atomics.load(I32, nrIdx);
  for (let c = 0; c < n; c++) if (readCString(namesPtr + c * CLASS_NAME_LEN, CLASS_NAME_LEN) === name) id = c + 1;
  if (id === 0) {
    if (n >= MAX_LOCK_CLASSES) {
      graphUnlock();
      throw new Error(`lockdep: more than ${MAX_LOCK_CLASSES} lock classes`);
    }
    writeCString(namesPtr + n * CLASS_NAME_LEN, CLASS_NAME_LEN, name);
    Atomics.store(I32, nrIdx, n + 1);
    id = n + 1;
  }
  graphUnlock();
  classCache.set(name, id);
  return id;
}

/** The name of class `id`. */
export function lockdep_class_name(id: number): string {
  if (id <= 0) return "(unknown)";
  return readCString(graph.ptr + LOCKDEP_GRAPH.off.class_names + (id - 1) * CLASS_NAME_LEN, CLASS_NAME_LEN);
}

/**
 * The class of `cls` taken with nesting subclass `subclass` (look_up_lock_class,
 * v4.19): subclass 0 is the class itself, others are classes of their own,
 * named "<class>/<subclass>" as the kernel prints them.
 */
export function lockdep_subclass(cls: number, subclass: number): number {
  if (subclass === 0) return cls;
  if (!Number.isInteger(subclass) || subclass < 0 || subclass >= MAX_LOCKDEP_SUBCLASSES) {
    reportBug("lockdep", `BUG: looking up invalid subclass: ${subclass}`);
    return cls;
  }
  const i = ((graph.ptr + LOCKDEP_GRAPH.off.subclasses) >> 2) + (cls - 1) * MAX_LOCKDEP_SUBCLASSES + subclass;
  const known = Atomics.load(I32, i);
  if (known !== 0) return known;
  // lockdep_class dedupes by name under graph_lock: two CPUs registering at once get one class.
  const id = lockdep_class(`${lockdep_class_name(cls)}/${subclass}`);
  Atomics.store(I32, i, id);
  return id;
}

function nr_lock_classes(): number {
  return Atomics.load(I32, (graph.ptr + LOCKDEP_GRAPH.off.nr_classes) >> 2);
}

function edgeIdx(a: number, b: number): number {
  return ((graph.ptr + LOCKDEP_GRAPH.off.before) >> 2) + (a - 1) * MAX_LOCK_CLASSES + (b - 1);
}

/** The CPU that recorded the edge a → b. */
function edgeCpu(a: number, b: number): number {
  return Atomics.load(I32, edgeIdx(a, b)) - 1;
}

/** A path of classes from `from` to `to` along the order graph (both included), or null. */
function findChain(from: number, to: number, seen: Set<number>): number[] | null {
  if (from === to) return [to];
  seen.add(from);
  const n = nr_lock_classes();
  for (let c = 1; c <= n; c++) {
    if (seen.has(c) || Atomics.load(I32, edgeIdx(from, c)) === 0) continue;
    const rest = findChain(c, to, seen);
    if (rest) return [from, ...rest];
  }
  return null;
}

/*** Usage bits ***/

function usageIdx(cls: number): number {
  return ((graph.ptr + LOCKDEP_GRAPH.off.usage_mask) >> 2) + cls - 1;
}
function usageOf(cls: number): number {
  return Atomics.load(I32, usageIdx(cls));
}

/** exclusive_bit (v4.19): the usage that conflicts with `bit` — same state, the other direction, write. */
function exclusive_bit(bit: number): number {
  return (bit & ~3) | ((bit & 2) ^ 2);
}

/** state_name (v4.19): "HARDIRQ", "SOFTIRQ", or with "-READ" for a read bit. */
function state_name(bit: number): string {
  return `${bit & 4 ? "SOFTIRQ" : "HARDIRQ"}${bit & 1 ? "-READ" : ""}`;
}

/** get_usage_chars (v4.19): per state and read/write, "." unused, "-" irq-safe, "+" irq-unsafe, "?" both. */
function get_usage_chars(cls: number): string {
  const mask = usageOf(cls);
  let s = "";
  for (const bit of [LOCK_USED_IN_HARDIRQ, LOCK_USED_IN_HARDIRQ + 1, LOCK_USED_IN_SOFTIRQ, LOCK_USED_IN_SOFTIRQ + 1]) {
    const safe = (mask & (1 << bit)) !== 0;
    const unsafe = (mask & (1 << (bit + 2))) !== 0;
    s += safe ? (unsafe ? "?" : "-") : unsafe ? "+" : ".";
  }
  return s;
}

/** print_lock_name (v4.19): "(name){usage}". */
function print_lock_name(cls: number): string {
  return `(${lockdep_class_name(cls)}){${get_usage_chars(cls)}}`;
}

function traceSlot(cls: number, bit: number): number {
  return (cls - 1) * LOCK_USAGE_STATES + bit;
}

/** Where usage `bit` of `cls` was first set: "{IN-HARDIRQ-W} CPU1: handler (src/…) < generic_handle_irq < …". */
function usage_trace(cls: number, bit: number): string {
  const slot = traceSlot(cls, bit);
  const cpu = I32[((graph.ptr + LOCKDEP_GRAPH.off.usage_cpu) >> 2) + slot]!;
  const trace = readCString(graph.ptr + LOCKDEP_GRAPH.off.usage_trace + slot * USAGE_TRACE_LEN, USAGE_TRACE_LEN);
  return `  {${usage_str[bit]}} CPU${cpu}: ${trace}`;
}

/** The caller's chain outside the lock code: the first frame with its place, then two callers by name. */
function acquire_chain(): string {
  const frames = save_stack_trace().filter((f) => !/^src\/(locks|percpu)\//.test(f.loc));
  const chain = frames
    .slice(0, 3)
    .map((f, i) => (i === 0 ? frameText(f) : f.fn))
    .join(" < ");
  return chain || "(no vmsim caller)";
}

/** The context of this CPU as the kernel prints a task's: "CPU0 [HC1[1]:SC0[0]:HE0:SE1]". */
function irq_state_text(): string {
  const pc = preempt_count();
  const hc = (pc & HARDIRQ_MASK) !== 0 ? 1 : 0;
  const sc = (pc & SOFTIRQ_OFFSET) !== 0 ? 1 : 0;
  const he = irqs_disabled() ? 0 : 1;
  const se = (pc & SOFTIRQ_MASK) === 0 ? 1 : 0;
  return `CPU${smp_processor_id()} [HC${hc}[${(pc & HARDIRQ_MASK) / HARDIRQ_OFFSET}]:SC${sc}[${(pc & SOFTIRQ_MASK) / SOFTIRQ_OFFSET}]:HE${he}:SE${se}]`;
}

/** print_irq_lock_scenario (v4.19): the two-CPU picture of an irq-safe lock that waits for an irq-unsafe one. */
function print_irq_lock_scenario(safe: number, unsafe: number, prev: number, next: number): string[] {
  const middle = prev === safe ? next : prev;
  const name = lockdep_class_name;
  const out: string[] = [];
  if (middle !== unsafe) out.push("Chain exists of:", `  ${name(safe)} --> ${name(middle)} --> ${name(unsafe)}`, "");
  out.push(
    " Possible interrupt unsafe locking scenario:",
    "",
    "       CPU0                    CPU1",
    "       ----                    ----",
    `  lock(${name(unsafe)});`,
    "                               local_irq_disable();",
    `                               lock(${name(safe)});`,
    `                               lock(${name(middle)});`,
    "  <Interrupt>",
    `    lock(${name(safe)});`,
    "",
    " *** DEADLOCK ***",
    "",
  );
  return out;
}

/** The links of a path as the CPUs that made them: " CPU1 took b while holding a". */
function dependency_lines(path: number[], forwards: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < path.length; i++) {
    const [a, b] = forwards ? [path[i]!, path[i + 1]!] : [path[i + 1]!, path[i]!];
    out.push(` CPU${edgeCpu(a, b)} took ${lockdep_class_name(b)} while holding ${lockdep_class_name(a)}`);
  }
  return out;
}

/**
 * __bfs_forwards / __bfs_backwards with usage_match (v4.19): the shortest path
 * from `root` (itself included) to a class with usage `bit`, along the order
 * graph forwards (the classes taken after root) or backwards (those it was
 * taken after). Under graph_lock.
 */
function find_usage(root: number, bit: number, forwards: boolean): number[] | null {
  const n = nr_lock_classes();
  const parent = new Int32Array(n + 1).fill(-1);
  parent[root] = 0;
  const queue = [root];
  for (let q = 0; q < queue.length; q++) {
    const c = queue[q]!;
    if (usageOf(c) & (1 << bit)) {
      const path = [c];
      for (let p = parent[c]!; p !== 0; p = parent[p]!) path.unshift(p);
      return path;
    }
    for (let x = 1; x <= n; x++) {
      if (parent[x] !== -1) continue;
      if (Atomics.load(I32, forwards ? edgeIdx(c, x) : edgeIdx(x, c)) === 0) continue;
      parent[x] = c;
      queue.push(x);
    }
  }
  return null;
}

/** print_usage_bug (v4.19): one class both irq-safe and irq-unsafe. */
function print_usage_bug(cls: number, read: number, prevBit: number, newBit: number): void {
  const name = lockdep_class_name(cls);
  reportBug(
    "lockdep",
    [
      "WARNING: inconsistent lock state",
      `inconsistent {${usage_str[prevBit]}} -> {${usage_str[newBit]}} usage.`,
      `${irq_state_text()} takes:`,
      ` ${print_lock_name(cls)}${read ? " (read)" : ""}`,
      `{${usage_str[prevBit]}} state was registered at:`,
      usage_trace(cls, prevBit),
      "",
      "other info that might help us debug this:",
      " Possible unsafe locking scenario:",
      "",
      "       CPU0",
      "       ----",
      `  lock(${name});`,
      "  <Interrupt>",
      `    lock(${name});`,
      "",
      " *** DEADLOCK ***",
      "",
      lockdep_print_held_locks(),
    ].join("\n"),
  );
}

/** print_irq_inversion_bug (v4.19): `path` runs from `cls`, whose state just changed, to the conflicting class. */
function print_irq_inversion_bug(cls: number, path: number[], forwards: boolean, irqclass: string): void {
  const other = path[path.length - 1]!;
  const [safe, unsafe] = forwards ? [cls, other] : [other, cls];
  reportBug(
    "lockdep",
    [
      "WARNING: possible irq lock inversion dependency detected",
      `CPU${smp_processor_id()} just changed the state of lock:`,
      ` ${print_lock_name(cls)}`,
      forwards
        ? `but this lock took another, ${irqclass}-unsafe lock in the past:`
        : `but this lock was taken by another, ${irqclass}-safe lock in the past:`,
      ` ${print_lock_name(other)}`,
      "",
      "and interrupts could create inverse lock ordering between them.",
      "",
      "other info that might help us debug this:",
      ...print_irq_lock_scenario(safe, unsafe, path[1]!, forwards ? other : cls),
      lockdep_print_held_locks(),
      "",
      "the shortest dependencies between 2nd lock and 1st lock:",
      ...dependency_lines(path, forwards),
    ].join("\n"),
  );
}

/** valid_state (v4.19): false, after the report, when `cls` already has the usage `bad` conflicting with `newBit`. */
function valid_state(cls: number, read: number, newBit: number, bad: number): boolean {
  if ((usageOf(cls) & (1 << bad)) === 0) return true;
  print_usage_bug(cls, read, bad, newBit);
  return false;
}

/**
 * check_usage_forwards / check_usage_backwards (v4.19): a class that became
 * irq-safe must not reach an irq-unsafe one along the graph, nor an
 * irq-unsafe one be reached from an irq-safe one.
 */
function check_usage_dir(cls: number, newBit: number, bad: number, irqclass: string): boolean {
  const forwards = (newBit & 2) === 0;
  const path = find_usage(cls, bad, forwards);
  if (path === null) return true;
  print_irq_inversion_bug(cls, path, forwards, irqclass);
  return false;
}

/**
 * mark_lock_irq (v4.19, STRICT_READ_CHECKS): the checks of a new usage bit.
 * A write usage conflicts with both the write and the read usage of the other
 * direction; a read usage only with the write one (an interrupt-context reader
 * passes a waiting writer, so read-in-irq beside read-with-irqs-on is safe).
 */
function mark_lock_irq(cls: number, read: number, newBit: number): boolean {
  const excl = exclusive_bit(newBit);
  if (!valid_state(cls, read, newBit, excl)) return false;
  if (!check_usage_dir(cls, newBit, excl, state_name(newBit & ~1))) return false;
  if ((newBit & 1) === 0) {
    if (!valid_state(cls, read, newBit, excl + 1)) return false;
    if (!check_usage_dir(cls, newBit, excl + 1, state_name(newBit + 1))) return false;
  }
  return true;
}

/**
 * mark_lock (v4.19): sets usage `bit` of `cls`, recording this CPU and call
 * chain, and checks it. False when it reported (the bit stays set: the same
 * conflict is reported once).
 */
function mark_lock(cls: number, read: number, bit: number): boolean {
  if (usageOf(cls) & (1 << bit)) return true;
  const chain = acquire_chain();
  graphLock();
  const old = Atomics.or(I32, usageIdx(cls), 1 << bit);
  let ok = true;
  if ((old & (1 << bit)) === 0) {
    const slot = traceSlot(cls, bit);
    I32[((graph.ptr + LOCKDEP_GRAPH.off.usage_cpu) >> 2) + slot] = smp_processor_id();
    writeCString(graph.ptr + LOCKDEP_GRAPH.off.usage_trace + slot * USAGE_TRACE_LEN, USAGE_TRACE_LEN, chain);
    ok = mark_lock_irq(cls, read, bit);
  }
  graphUnlock();
  return ok;
}

/** mark_irqflags (v4.19): the usage bits in `need` that `cls` lacks, in the kernel's order; stops at a report. */
function mark_irqflags(cls: number, read: number, need: number): void {
  const r = read !== 0 ? 1 : 0;
  for (const state of [LOCK_USED_IN_HARDIRQ, LOCK_USED_IN_SOFTIRQ, LOCK_ENABLED_HARDIRQ, LOCK_ENABLED_SOFTIRQ]) {
    const bit = state + r;
    if ((need & (1 << bit)) !== 0 && !mark_lock(cls, read, bit)) return;
  }
}

/**
 * trace_hardirqs_on / trace_softirqs_on (v4.19): interrupts (`hardirq`) or
 * softirqs are about to be enabled, so every held lock is now held with them
 * enabled (mark_held_locks).
 */
function lockdep_irqs_on(hardirq: boolean): void {
  const d = I32[depthIdx];
  if (!d) return;
  const pc = preempt_count();
  // Softirqs count as enabled only with hardirqs enabled too.
  if (!hardirq && irqs_disabled()) return;
  const softirqsOn = !hardirq || (pc & SOFTIRQ_MASK) === 0;
  for (let i = 0; i < d; i++) {
    const cls = I32[classIdx + i]!;
    const read = I32[readIdx + i]!;
    const r = read !== 0 ? 1 : 0;
    const need = (hardirq ? 1 << (LOCK_ENABLED_HARDIRQ + r) : 0) | (softirqsOn ? 1 << (LOCK_ENABLED_SOFTIRQ + r) : 0);
    if ((I32[usageIdx(cls)]! & need) !== need) mark_irqflags(cls, read, need);
  }
}
registerIrqsOnTracer(lockdep_irqs_on);

/*** Dependencies ***/

/** print_circular_bug, shortened: the two acquisitions, the chain that closes the cycle, the scenario. */
function circularBug(cpu: number, held: number, cls: number, chain: number[]): string {
  const h = lockdep_class_name(held);
  const c = lockdep_class_name(cls);
  const other = edgeCpu(chain[0]!, chain[1]!);
  const left = other === cpu ? "another CPU" : `CPU${other}`;
  const right = `CPU${cpu}`;
  const col = (a: string, b: string) => `       ${a.padEnd(24)}${b}`.trimEnd();
  return [
    "WARNING: possible circular locking dependency detected",
    `CPU${cpu} is trying to acquire ${c} while holding ${h};`,
    "which lock already depends on the new lock. The existing dependency chain:",
    ...dependency_lines(chain, true),
    "",
    " Possible unsafe locking scenario:",
    "",
    col(left, right),
    col("----", "----"),
    col(`lock(${c});`, ""),
    col("", `lock(${h});`),
    col("", `lock(${c});`),
    col(`lock(${h});`, ""),
    "",
    " *** DEADLOCK ***",
    "",
    lockdep_print_held_locks(),
  ].join("\n");
}

/** print_bad_irq_dependency (v4.19), shortened: the new edge prev → next joins an irq-safe class to an irq-unsafe one. */
function print_bad_irq_dependency(
  prev: number,
  prevRead: number,
  next: number,
  nextRead: number,
  backwards: number[],
  forwards: number[],
  bitBack: number,
  bitFwd: number,
  irqclass: string,
): void {
  const safe = backwards[backwards.length - 1]!;
  const unsafe = forwards[forwards.length - 1]!;
  reportBug(
    "lockdep",
    [
      `WARNING: ${irqclass}-safe -> ${irqclass}-unsafe lock order detected`,
      `${irq_state_text()} is trying to acquire:`,
      ` ${print_lock_name(next)}${nextRead ? " (read)" : ""}`,
      "",
      "and this CPU is already holding:",
      ` ${print_lock_name(prev)}${prevRead ? " (read)" : ""}`,
      "which would create a new lock dependency:",
      ` ${print_lock_name(prev)} -> ${print_lock_name(next)}`,
      "",
      `but this new dependency connects a ${irqclass}-irq-safe lock:`,
      ` ${print_lock_name(safe)}`,
      `... which became ${irqclass}-irq-safe at:`,
      usage_trace(safe, bitBack),
      "",
      `to a ${irqclass}-irq-unsafe lock:`,
      ` ${print_lock_name(unsafe)}`,
      `... which became ${irqclass}-irq-unsafe at:`,
      usage_trace(unsafe, bitFwd),
      "",
      "other info that might help us debug this:",
      "",
      ...print_irq_lock_scenario(safe, unsafe, prev, next),
      lockdep_print_held_locks(),
      // The paths through the graph, when the safe lock is not the held one or the unsafe not the new one.
      ...(backwards.length > 1 ? ["", `the dependencies between ${irqclass}-irq-safe lock and the holding lock:`] : []),
      ...dependency_lines(backwards, false),
      ...(forwards.length > 1
        ? ["", `the dependencies between the lock to be acquired and ${irqclass}-irq-unsafe lock:`]
        : []),
      ...dependency_lines(forwards, true),
    ].join("\n"),
  );
}

/**
 * check_prev_add_irq (v4.19): for each state, an irq-safe class before `prev`
 * must not meet an irq-unsafe class after `next`. The pairs are mark_lock_irq's,
 * so the verdict does not depend on which came first, the edge or the usage:
 * safe-write against unsafe-write or unsafe-read (v4.19 checks the latter only
 * when the usage comes last), safe-read against unsafe-write.
 */
function check_prev_add_irq(prev: number, prevRead: number, next: number, nextRead: number): boolean {
  for (const state of [LOCK_USED_IN_HARDIRQ, LOCK_USED_IN_SOFTIRQ]) {
    const rules: [number, number, string][] = [
      [state, state + 2, state_name(state)],
      [state + 1, state + 2, state_name(state + 1)],
      [state, state + 3, state_name(state)],
    ];
    for (const [bitBack, bitFwd, irqclass] of rules) {
      const backwards = find_usage(prev, bitBack, false);
      if (backwards === null) continue;
      const forwards = find_usage(next, bitFwd, true);
      if (forwards === null) continue;
      print_bad_irq_dependency(prev, prevRead, next, nextRead, backwards, forwards, bitBack, bitFwd, irqclass);
      return false;
    }
  }
  return true;
}

/** check_prev_add (v4.19): a new dependency prev → next: report the cycle or irq conflict it creates, record it. */
function check_prev_add(prev: number, prevRead: number, next: number, nextRead: number): void {
  const e = edgeIdx(prev, next);
  if (Atomics.load(I32, e) !== 0) return;
  const cpu = smp_processor_id();
  graphLock();
  if (Atomics.load(I32, e) === 0) {
    const chain = findChain(next, prev, new Set());
    if (chain) reportBug("lockdep", circularBug(cpu, prev, next, chain));
    else check_prev_add_irq(prev, prevRead, next, nextRead);
    // Recorded even after a report: the same inversion is reported once, as lockdep does.
    Atomics.store(I32, e, cpu + 1);
  }
  graphUnlock();
}

/** print_deadlock_bug (v4.19), shortened: a second lock of a class this CPU holds. */
function print_deadlock_bug(cls: number, read: number, heldRead: number): void {
  const name = lockdep_class_name(cls);
  const cpu = smp_processor_id();
  reportBug(
    "lockdep",
    [
      "WARNING: possible recursive locking detected",
      `CPU${cpu} is trying to acquire lock:`,
      ` ${print_lock_name(cls)}${read ? " (read)" : ""}`,
      "",
      `but CPU${cpu} is already holding lock:`,
      ` ${print_lock_name(cls)}${heldRead ? " (read)" : ""}`,
      "",
      "other info that might help us debug this:",
      " Possible unsafe locking scenario:",
      "",
      "       CPU0",
      "       ----",
      `  lock(${name});`,
      `  lock(${name});`,
      "",
      " *** DEADLOCK ***",
      "",
      " May be due to missing lock nesting notation",
      "",
      lockdep_print_held_locks(),
    ].join("\n"),
  );
}

/**
 * lock_acquire (v4.19 __lock_acquire): the usage bits of this acquisition,
 * the recursion check, the order after the locks held in this irq context,
 * then the push — before the caller waits for the lock, so a deadlock is
 * reported before it happens; lock_acquired marks the end of the wait.
 * `read`: 0 exclusive, 1 read, 2 recursive read (see the file comment).
 */
export function lock_acquire(lock: number, cls: number, trylock: boolean, read = 0): void {
  const d = I32[depthIdx]!;
  if (d >= MAX_LOCK_DEPTH) throw new Error(`lockdep: held-lock stack overflow on CPU${smp_processor_id()}`);
  const pc = preempt_count();
  const ctx = ((pc & HARDIRQ_MASK) !== 0 ? 2 : 0) | ((pc & SOFTIRQ_OFFSET) !== 0 ? 1 : 0);
  const r = read !== 0 ? 1 : 0;
  let need = 0;
  // A trylock cannot deadlock against an interrupt: it only marks the enabled states (v4.19 mark_irqflags).
  if (!trylock)
    need = (ctx & 2 ? 1 << (LOCK_USED_IN_HARDIRQ + r) : 0) | (ctx & 1 ? 1 << (LOCK_USED_IN_SOFTIRQ + r) : 0);
  if (!irqs_disabled())
    need |= (1 << (LOCK_ENABLED_HARDIRQ + r)) | ((pc & SOFTIRQ_MASK) === 0 ? 1 << (LOCK_ENABLED_SOFTIRQ + r) : 0);
  if ((I32[usageIdx(cls)]! & need) !== need) mark_irqflags(cls, read, need);
  // A trylock cannot deadlock: it is neither recursion-checked nor ordered (v4.19 validate_chain).
  if (!trylock) {
    // check_deadlock: any held lock of this class, unless a recursive read nests in a read hold.
    for (let i = 0; i < d; i++) {
      if (I32[classIdx + i] !== cls) continue;
      if (read === 2 && I32[readIdx + i] !== 0) continue;
      print_deadlock_bug(cls, read, I32[readIdx + i]!);
      break;
    }
    // check_prevs_add: after every lock held in this irq context (the stack above its last context switch).
    for (let i = d - 1; i >= 0 && (I32[stateIdx + i]! & HL_IRQ_CONTEXT) === ctx; i--)
      if (I32[classIdx + i] !== cls) check_prev_add(I32[classIdx + i]!, I32[readIdx + i]!, cls, read);
  }
  I32[lockIdx + d] = lock;
  I32[classIdx + d] = cls;
  I32[readIdx + d] = read;
  I32[stateIdx + d] = trylock ? ctx : ctx | HL_ACQUIRING;
  I32[depthIdx] = d + 1;
}

/** lock_acquired (v4.19's lock_stat hook, here also the end of the wait): `lock` is now held, not waited for. */
export function lock_acquired(lock: number): void {
  for (let i = I32[depthIdx]! - 1; i >= 0; i--)
    if (I32[lockIdx + i] === lock) {
      I32[stateIdx + i] = I32[stateIdx + i]! & ~HL_ACQUIRING;
      return;
    }
}

/** lock_release: locks may be released out of order, as in the kernel. */
export function lock_release(lock: number): void {
  const d = I32[depthIdx]!;
  for (let i = d - 1; i >= 0; i--) {
    if (I32[lockIdx + i] === lock) {
      for (let j = i; j < d - 1; j++) {
        I32[lockIdx + j] = I32[lockIdx + j + 1]!;
        I32[classIdx + j] = I32[classIdx + j + 1]!;
        I32[readIdx + j] = I32[readIdx + j + 1]!;
        I32[stateIdx + j] = I32[stateIdx + j + 1]!;
      }
      I32[depthIdx] = d - 1;
      return;
    }
  }
  reportBug(
    "lockdep",
    `WARNING: bad unlock balance detected!\nCPU${smp_processor_id()} is trying to release a lock it does not hold`,
  );
}

/** Does this CPU hold `lock` (taken, not still waited for)? */
export function lock_is_held(lock: number): boolean {
  const d = I32[depthIdx]!;
  for (let i = 0; i < d; i++) if (I32[lockIdx + i] === lock && (I32[stateIdx + i]! & HL_ACQUIRING) === 0) return true;
  return false;
}

/** Number of locks on this CPU's stack (held, or being acquired). */
export function lockdep_depth(): number {
  return I32[depthIdx]!;
}

/** lockdep_assert_held: WARNs when this CPU does not hold `lock`. */
export function lockdep_assert_held(lock: number, name: string): void {
  if (lockdepOn && !lock_is_held(lock))
    reportBug("lockdep", `WARNING: lockdep_assert_held(${name}) failed on CPU${smp_processor_id()}`);
}

/*** Held locks of any CPU, for reports ***/

/** One entry of a CPU's held-lock stack. */
interface HeldLock {
  readonly lock: number;
  readonly cls: number;
  readonly read: number;
  readonly acquiring: boolean;
}

/**
 * The held-lock stack of `cpu`, outermost first. Another CPU's is a snapshot,
 * exact only while that CPU is stuck (what the watchdog and deadlock reports read).
 */
function held_locks_of(cpu: number): HeldLock[] {
  const p = per_cpu_ptr(held_locks, cpu);
  const d = Math.min(Atomics.load(I32, (p + HELD_LOCKS.off.depth) >> 2), MAX_LOCK_DEPTH);
  const at = (field: number, i: number) => Atomics.load(I32, ((p + field) >> 2) + i);
  const out: HeldLock[] = [];
  for (let i = 0; i < d; i++)
    out.push({
      lock: at(HELD_LOCKS.off.lock, i),
      cls: at(HELD_LOCKS.off.class, i),
      read: at(HELD_LOCKS.off.read, i),
      acquiring: (at(HELD_LOCKS.off.state, i) & HL_ACQUIRING) !== 0,
    });
  return out;
}

/** The classes `cpu` holds, outermost first (not those it waits for). */
export function heldLocksOf(cpu: number): string[] {
  return held_locks_of(cpu)
    .filter((h) => !h.acquiring)
    .map((h) => lockdep_class_name(h.cls));
}

/** The classes `cpu` is waiting to acquire (pushed by lock_acquire, not yet taken): at most one per context. */
export function waitingLocksOf(cpu: number): string[] {
  return held_locks_of(cpu)
    .filter((h) => h.acquiring)
    .map((h) => lockdep_class_name(h.cls));
}

/** The CPUs that hold `lock` (who holds an rwlock for read); a snapshot, as heldLocksOf. */
export function lockHolders(lock: number): number[] {
  const out: number[] = [];
  for (let cpu = 0; cpu < theArena().config.cpus; cpu++)
    if (held_locks_of(cpu).some((h) => h.lock === lock && !h.acquiring)) out.push(cpu);
  return out;
}

/** The class name under which `cpu` holds `lock` (deadlock reports); "?" when it does not. */
export function heldClassOf(cpu: number, lock: number): string {
  const h = held_locks_of(cpu).find((e) => e.lock === lock && !e.acquiring);
  return h ? lockdep_class_name(h.cls) : "?";
}

registerHeldLocksView({ lockdepOn: () => lockdepOn, lockHolders, heldClassOf, heldLocksOf });
kcsanRegisterHeldLocks((cpu) => (lockdepOn ? heldLocksOf(cpu) : null));

/**
 * lockdep_print_held_locks (v4.19) for this CPU: "N locks held by CPUi:" and
 * one line per lock, then the lock it is still waiting for, if any.
 */
export function lockdep_print_held_locks(): string {
  if (!lockdepOn) return "INFO: lockdep is turned off.";
  const cpu = smp_processor_id();
  const all = held_locks_of(cpu);
  const held = all.filter((h) => !h.acquiring);
  const rows = held.map((h, i) => ` #${i}: ${lockdep_class_name(h.cls)}${h.read ? " (read)" : ""}`);
  for (const h of all)
    if (h.acquiring) rows.push(` waiting for: ${lockdep_class_name(h.cls)}${h.read ? " (read)" : ""}`);
  const n = held.length;
  const head = n === 0 ? `no locks held by CPU${cpu}.` : `${n} lock${n > 1 ? "s" : ""} held by CPU${cpu}:`;
  return [head, ...rows].join("\n");
}

/*** Freed memory ***/

/**
 * debug_check_no_locks_freed (v4.19): memory [from, from + len) is being
 * freed; a lock in it that a CPU holds or waits for is "held lock freed".
 * The kernel checks the freeing task's locks; here every CPU's stack is
 * checked (a range compare per entry), since another CPU's lock in freed
 * memory is the same use after free.
 */
export function debug_check_no_locks_freed(from: number, len: number): void {
  const a = theArena();
  for (let cpu = 0; cpu < a.config.cpus; cpu++) {
    const p = a.percpuBase + cpu * a.percpuStride + held_locks.offset;
    const d = Math.min(Atomics.load(I32, (p + HELD_LOCKS.off.depth) >> 2), MAX_LOCK_DEPTH);
    const locks = (p + HELD_LOCKS.off.lock) >> 2;
    for (let i = 0; i < d; i++) {
      const lock = Atomics.load(I32, locks + i);
      if (lock >= from && lock < from + len) {
        print_freed_lock_bug(from, len, cpu);
        return;
      }
    }
  }
}

/** print_freed_lock_bug (v4.19), shortened: the range, the lock and who holds it, this CPU's held locks. */
function print_freed_lock_bug(from: number, len: number, cpu: number): void {
  const h = held_locks_of(cpu).find((e) => e.lock >= from && e.lock < from + len);
  if (h === undefined) return; // released meanwhile: that CPU's stack is a snapshot
  const hex = (n: number) => `0x${n.toString(16)}`;
  reportBug(
    "lockdep",
    [
      "WARNING: held lock freed!",
      `CPU${smp_processor_id()} is freeing memory ${hex(from)}-${hex(from + len - 1)}, with a lock still held there!`,
      ` ${print_lock_name(h.cls)}, at: ${hex(h.lock)}, ${h.acquiring ? "being acquired" : "held"} by CPU${cpu}`,
      lockdep_print_held_locks(),
    ].join("\n"),
  );
}

/** Harness: applies the machine config on this thread. */
export function lockdepAttach(): void {
  setLockdep(theArena().config.lockdep);
}
