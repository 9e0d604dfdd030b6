/**
 * lockdep-lite (kernel/locking/lockdep.c, in spirit): per-CPU held-lock stacks,
 * lock classes by name, a class order graph, and reports for recursion, ABBA
 * order inversions and sleeping in atomic context, naming the CPUs and classes.
 *
 * All of it lives in the arena, so the soft-lockup watchdog and the deadlock
 * report can read any CPU's held locks from another thread.
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, I32, readCString, theArena, writeCString } from "../shared/arena.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { onSetCurrentCpu, per_cpu_ptr, smp_processor_id, this_cpu_ptr } from "../percpu/smp.js";

export const MAX_LOCK_CLASSES = 64;
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
]);
const held_locks = DEFINE_PER_CPU("held_locks", HELD_LOCKS);

/** Set from the machine config at attach; off, every hook below is one branch. */
export let lockdepOn = true;
export function setLockdep(on: boolean): void {
  lockdepOn = on;
}

let depthIdx = 0;
let lockIdx = 0;
let classIdx = 0;
onSetCurrentCpu(() => {
  const p = this_cpu_ptr(held_locks);
  depthIdx = (p + HELD_LOCKS.off.depth) >> 2;
  lockIdx = (p + HELD_LOCKS.off.lock) >> 2;
  classIdx = (p + HELD_LOCKS.off.class) >> 2;
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

const classCache = new Map<string, number>();

/** The class id of a lock name (lock_class_key); ids start at 1. */
export function lockdep_class(name: string): number {
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

export function lockdep_class_name(id: number): string {
  if (id <= 0) return "(unknown)";
  return readCString(graph.ptr + LOCKDEP_GRAPH.off.class_names + (id - 1) * CLASS_NAME_LEN, CLASS_NAME_LEN);
}

function edgeIdx(a: number, b: number): number {
  return ((graph.ptr + LOCKDEP_GRAPH.off.before) >> 2) + (a - 1) * MAX_LOCK_CLASSES + (b - 1);
}

/** Is there a path from class `from` to class `to` in the order graph? */
function reaches(from: number, to: number, seen: Set<number>): boolean {
  if (from === to) return true;
  seen.add(from);
  const n = Atomics.load(I32, (graph.ptr + LOCKDEP_GRAPH.off.nr_classes) >> 2);
  for (let c = 1; c <= n; c++)
    if (!seen.has(c) && Atomics.load(I32, edgeIdx(from, c)) !== 0 && reaches(c, to, seen)) return true;
  return false;
}

function heldList(): string {
  const d = I32[depthIdx]!;
  const rows: string[] = [];
  for (let i = 0; i < d; i++) rows.push(` #${i}: ${lockdep_class_name(I32[classIdx + i]!)}`);
  return rows.length ? rows.join("\n") : " (none)";
}

/** A new dependency held → cls: record it, and report the cycle it may close. */
function addEdge(held: number, cls: number): void {
  const e = edgeIdx(held, cls);
  if (Atomics.load(I32, e) !== 0) return;
  const cpu = smp_processor_id();
  graphLock();
  if (Atomics.load(I32, e) === 0) {
    if (reaches(cls, held, new Set())) {
      const back = Atomics.load(I32, edgeIdx(cls, held));
      reportBug(
        "lockdep",
        [
          "WARNING: possible circular locking dependency detected",
          `CPU${cpu} is trying to acquire ${lockdep_class_name(cls)} while holding ${lockdep_class_name(held)};`,
          back
            ? `CPU${back - 1} took ${lockdep_class_name(held)} while holding ${lockdep_class_name(cls)} (the reverse order).`
            : `an existing chain orders ${lockdep_class_name(cls)} before ${lockdep_class_name(held)}.`,
          "Possible unsafe locking scenario: ABBA deadlock.",
          `held locks on CPU${cpu}:`,
          heldList(),
        ].join("\n"),
      );
    }
    Atomics.store(I32, e, cpu + 1);
  }
  graphUnlock();
}

/** lock_acquire: push on this CPU's held stack, checking recursion and order. */
export function lock_acquire(lock: number, cls: number, trylock: boolean): void {
  const d = I32[depthIdx]!;
  for (let i = 0; i < d; i++) {
    if (I32[lockIdx + i] === lock) {
      reportBug(
        "lockdep",
        `WARNING: possible recursive locking detected\nCPU${smp_processor_id()} is trying to acquire ${lockdep_class_name(cls)} which it already holds:\n${heldList()}`,
      );
      break;
    }
    // A trylock cannot deadlock, so it adds no order edge (as the kernel's check=1 for trylock).
    if (!trylock && I32[classIdx + i] !== cls) addEdge(I32[classIdx + i]!, cls);
  }
  if (d >= MAX_LOCK_DEPTH) throw new Error(`lockdep: held-lock stack overflow on CPU${smp_processor_id()}`);
  I32[lockIdx + d] = lock;
  I32[classIdx + d] = cls;
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

/** Held locks of any CPU, as class names (watchdog and deadlock reports read them cross-CPU). */
export function heldLocksOf(cpu: number): string[] {
  const p = per_cpu_ptr(held_locks, cpu);
  const d = Math.min(Atomics.load(I32, (p + HELD_LOCKS.off.depth) >> 2), MAX_LOCK_DEPTH);
  const out: string[] = [];
  for (let i = 0; i < d; i++) out.push(lockdep_class_name(Atomics.load(I32, ((p + HELD_LOCKS.off.class) >> 2) + i)));
  return out;
}

/** Harness: applies the machine config on this thread. */
export function lockdepAttach(): void {
  lockdepOn = theArena().config.lockdep;
}
