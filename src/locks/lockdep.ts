/**
 * lockdep-lite (kernel/locking/lockdep.c, v4.19 in spirit): per-CPU held-lock
 * stacks, lock classes by name, a class order graph, and reports for
 * recursion, ABBA order inversions and (with might_sleep.ts) sleeping in
 * atomic context, naming the CPUs and classes.
 *
 * All of it lives in the arena, so the soft-lockup watchdog and the deadlock
 * report can read any CPU's held locks from another thread.
 *
 * Spinlocks, rwlocks and mutexes share one class namespace (a class is the
 * lock's name) and one order graph, as in the kernel. Read acquisitions of an
 * rwlock: v4.19 arm64 rwlocks are queued (qrwlock), where a reader in process
 * context queues behind a waiting writer, so for deadlocks it is as exclusive
 * as a writer (read = 1: recursion-checked like any lock). Only a reader in
 * interrupt context passes a waiting writer, so only that one is a recursive
 * read (read = 2) that may nest in a read hold of the same lock — the rule
 * lockdep itself adopted in v5.10. Every acquisition, reads included, is
 * ordered: stricter than v4.19, whose recursive reads added no order and so
 * hid a writer deadlocking against an interrupt-context reader.
 *
 * With lockdep off (`lockdepOn` false) callers skip every hook with one branch.
 */
import {
  DEFINE_GLOBAL,
  DEFINE_PER_CPU,
  I32,
  onMachineReset,
  readCString,
  theArena,
  writeCString,
} from "../shared/arena.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { onSetCurrentCpu, per_cpu_ptr, smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { registerHeldLocksView } from "../sched/sched_det.js";

export const MAX_LOCK_CLASSES = 128;
export const MAX_LOCK_DEPTH = 48;
const CLASS_NAME_LEN = 32;

export const LOCKDEP_GRAPH = defineStruct("lockdep_graph", [
  /** Raw spin word for class registration and new edges (not itself tracked). */
  { name: "graph_lock", type: "i32", guard: "atomic" },
  { name: "nr_classes", type: "i32", guard: "atomic" },
  { name: "class_names", type: "u32", count: (MAX_LOCK_CLASSES * CLASS_NAME_LEN) / 4, guard: "graph_lock" },
  /** before[a*64+b] = 1 + the CPU that first took class b while holding a; 0 = no edge. */
  { name: "before", type: "i32", count: MAX_LOCK_CLASSES * MAX_LOCK_CLASSES, guard: "atomic" },
]);
const graph = DEFINE_GLOBAL("lockdep_graph", LOCKDEP_GRAPH);

/** held_locks[] of task_struct, per CPU (a CPU runs one task at a time here). */
export const HELD_LOCKS = defineStruct("held_locks", [
  { name: "depth", type: "i32", guard: "owner" },
  { name: "lock", type: "ptr", count: MAX_LOCK_DEPTH, guard: "owner" },
  { name: "class", type: "i32", count: MAX_LOCK_DEPTH, guard: "owner" },
  /** 0 exclusive, 1 read, 2 recursive read (held_lock.read). */
  { name: "read", type: "i32", count: MAX_LOCK_DEPTH, guard: "owner" },
]);
const held_locks = DEFINE_PER_CPU("held_locks", HELD_LOCKS);

/** Set from the machine config at attach; off, every hook below is one branch. */
export let lockdepOn = true;
/** Harness: turns lockdep on or off on this thread (tests, benches). */
export function setLockdep(on: boolean): void {
  lockdepOn = on;
}

let depthIdx = 0;
let lockIdx = 0;
let classIdx = 0;
let readIdx = 0;
onSetCurrentCpu(() => {
  const p = this_cpu_ptr(held_locks);
  depthIdx = (p + HELD_LOCKS.off.depth) >> 2;
  lockIdx = (p + HELD_LOCKS.off.lock) >> 2;
  classIdx = (p + HELD_LOCKS.off.class) >> 2;
  readIdx = (p + HELD_LOCKS.off.read) >> 2;
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
export function lockdep_class(name: string): number {
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

function edgeIdx(a: number, b: number): number {
  return ((graph.ptr + LOCKDEP_GRAPH.off.before) >> 2) + (a - 1) * MAX_LOCK_CLASSES + (b - 1);
}

/** A path of classes from `from` to `to` along the order graph (both included), or null. */
function findChain(from: number, to: number, seen: Set<number>): number[] | null {
  if (from === to) return [to];
  seen.add(from);
  const n = Atomics.load(I32, (graph.ptr + LOCKDEP_GRAPH.off.nr_classes) >> 2);
  for (let c = 1; c <= n; c++) {
    if (seen.has(c) || Atomics.load(I32, edgeIdx(from, c)) === 0) continue;
    const rest = findChain(c, to, seen);
    if (rest) return [from, ...rest];
  }
  return null;
}

function heldList(): string {
  const d = I32[depthIdx]!;
  const rows: string[] = [];
  for (let i = 0; i < d; i++)
    rows.push(` #${i}: ${lockdep_class_name(I32[classIdx + i]!)}${I32[readIdx + i] ? " (read)" : ""}`);
  return rows.length ? rows.join("\n") : " (none)";
}

/** print_circular_bug, shortened: the two acquisitions, the chain that closes the cycle, the scenario. */
function circularBug(cpu: number, held: number, cls: number, chain: number[]): string {
  const h = lockdep_class_name(held);
  const c = lockdep_class_name(cls);
  const links: string[] = [];
  for (let i = 0; i + 1 < chain.length; i++) {
    const by = Atomics.load(I32, edgeIdx(chain[i]!, chain[i + 1]!)) - 1;
    links.push(`CPU${by} took ${lockdep_class_name(chain[i + 1]!)} while holding ${lockdep_class_name(chain[i]!)}`);
  }
  const other = Atomics.load(I32, edgeIdx(chain[0]!, chain[1]!)) - 1;
  const left = other === cpu ? "another CPU" : `CPU${other}`;
  const right = `CPU${cpu}`;
  const col = (a: string, b: string) => `       ${a.padEnd(24)}${b}`.trimEnd();
  return [
    "WARNING: possible circular locking dependency detected",
    `CPU${cpu} is trying to acquire ${c} while holding ${h};`,
    "which lock already depends on the new lock. The existing dependency chain:",
    ...links.map((l) => ` ${l}`),
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
    `held locks on CPU${cpu}:`,
    heldList(),
  ].join("\n");
}

/** A new dependency held → cls: record it, and report the cycle it may close. */
function addEdge(held: number, cls: number): void {
  const e = edgeIdx(held, cls);
  if (Atomics.load(I32, e) !== 0) return;
  const cpu = smp_processor_id();
  graphLock();
  if (Atomics.load(I32, e) === 0) {
    const chain = findChain(cls, held, new Set());
    if (chain) reportBug("lockdep", circularBug(cpu, held, cls, chain));
    // Recorded even after a report: the same inversion is reported once, as lockdep does.
    Atomics.store(I32, e, cpu + 1);
  }
  graphUnlock();
}

/**
 * lock_acquire: push on this CPU's held stack, checking recursion and order.
 * `read`: 0 exclusive, 1 read, 2 recursive read (see the file comment).
 */
export function lock_acquire(lock: number, cls: number, trylock: boolean, read = 0): void {
  const d = I32[depthIdx]!;
  // A trylock cannot deadlock: it is neither recursion-checked nor ordered (v4.19 validate_chain).
  const checked = trylock ? 0 : d;
  for (let i = 0; i < checked; i++) {
    if (I32[lockIdx + i] === lock) {
      if (read === 2 && I32[readIdx + i] !== 0) continue;
      reportBug(
        "lockdep",
        `WARNING: possible recursive locking detected\nCPU${smp_processor_id()} is trying to acquire ${lockdep_class_name(cls)}${read ? " (read)" : ""} which it already holds:\n${heldList()}`,
      );
      break;
    }
    if (I32[classIdx + i] !== cls) addEdge(I32[classIdx + i]!, cls);
  }
  if (d >= MAX_LOCK_DEPTH) throw new Error(`lockdep: held-lock stack overflow on CPU${smp_processor_id()}`);
  I32[lockIdx + d] = lock;
  I32[classIdx + d] = cls;
  I32[readIdx + d] = read;
  I32[depthIdx] = d + 1;
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

/** Does this CPU hold `lock`? */
export function lock_is_held(lock: number): boolean {
  const d = I32[depthIdx]!;
  for (let i = 0; i < d; i++) if (I32[lockIdx + i] === lock) return true;
  return false;
}

/** Number of locks this CPU holds. */
export function lockdep_depth(): number {
  return I32[depthIdx]!;
}

/** lockdep_assert_held: WARNs when this CPU does not hold `lock`. */
export function lockdep_assert_held(lock: number, name: string): void {
  if (lockdepOn && !lock_is_held(lock))
    reportBug("lockdep", `WARNING: lockdep_assert_held(${name}) failed on CPU${smp_processor_id()}`);
}

/**
 * Held locks of any CPU, as class names. Watchdog and deadlock reports read
 * them from another thread: a snapshot, exact only while that CPU is stuck.
 */
export function heldLocksOf(cpu: number): string[] {
  const p = per_cpu_ptr(held_locks, cpu);
  const d = Math.min(Atomics.load(I32, (p + HELD_LOCKS.off.depth) >> 2), MAX_LOCK_DEPTH);
  const out: string[] = [];
  for (let i = 0; i < d; i++) out.push(lockdep_class_name(Atomics.load(I32, ((p + HELD_LOCKS.off.class) >> 2) + i)));
  return out;
}

/** The CPUs whose held stack has `lock` (who holds an rwlock for read); a snapshot, as heldLocksOf. */
export function lockHolders(lock: number): number[] {
  const out: number[] = [];
  for (let cpu = 0; cpu < theArena().config.cpus; cpu++) {
    const p = per_cpu_ptr(held_locks, cpu);
    const d = Math.min(Atomics.load(I32, (p + HELD_LOCKS.off.depth) >> 2), MAX_LOCK_DEPTH);
    for (let i = 0; i < d; i++)
      if (Atomics.load(I32, ((p + HELD_LOCKS.off.lock) >> 2) + i) === lock) {
        out.push(cpu);
        break;
      }
  }
  return out;
}

/** The class name under which `cpu` holds `lock` (deadlock reports); "?" when it does not. */
export function heldClassOf(cpu: number, lock: number): string {
  const p = per_cpu_ptr(held_locks, cpu);
  const d = Math.min(Atomics.load(I32, (p + HELD_LOCKS.off.depth) >> 2), MAX_LOCK_DEPTH);
  for (let i = 0; i < d; i++)
    if (Atomics.load(I32, ((p + HELD_LOCKS.off.lock) >> 2) + i) === lock)
      return lockdep_class_name(Atomics.load(I32, ((p + HELD_LOCKS.off.class) >> 2) + i));
  return "?";
}

registerHeldLocksView({ lockdepOn: () => lockdepOn, lockHolders, heldClassOf, heldLocksOf });

/** lockdep_print_held_locks (v4.19) for this CPU: "N locks held by CPUi:" and one line per lock. */
export function lockdep_print_held_locks(): string {
  if (!lockdepOn) return "INFO: lockdep is turned off.";
  const d = I32[depthIdx]!;
  if (d === 0) return `no locks held by CPU${smp_processor_id()}.`;
  return `${d} lock${d > 1 ? "s" : ""} held by CPU${smp_processor_id()}:\n${heldList()}`;
}

/** Harness: applies the machine config on this thread. */
export function lockdepAttach(): void {
  lockdepOn = theArena().config.lockdep;
}
