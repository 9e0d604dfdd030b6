/**
 * The sched-point hook. Every lock operation, atomic RMW on shared state and
 * RCU operation calls sched_point(kind). In free mode it is one decrement and
 * one compare; every `period` points (or every point, when a deterministic
 * scheduler or interrupt injection needs it) the slow path runs: the machine
 * stop check, simulated interrupts, and whatever strategy is plugged in.
 */

import { onMachineReset } from "../shared/arena.js";

/* Why a sched point was reached (traces and strategies key on it). */
export const SP_LOCK = 1;
export const SP_UNLOCK = 2;
/** A CPU waiting for something another CPU must change (lock, grace period, flush). */
export const SP_SPIN = 3;
export const SP_ATOMIC = 4;
export const SP_RCU = 5;
export const SP_SLEEP = 6;
export const SP_IRQ = 7;
/** Between two workload operations: a safe point (no locks, not atomic). */
export const SP_OP = 8;
export type SP = number;

/**
 * A slow path runs at most `every` points after its last run, and at every
 * sched_op_point (a safe point between workload operations). It may return the
 * number of points until it wants to run again (an interrupt arrival gap …).
 */
// biome-ignore lint/suspicious/noConfusingVoidType: a path that wants its default interval simply returns nothing
export type SlowPath = (kind: SP) => number | void;

interface Path {
  readonly fn: SlowPath;
  readonly every: number;
  /** Runs also at points reached inside another slow path (an interrupt handler, the kworker). */
  readonly nested: boolean;
  /** Runs also at points reached inside its own run (interrupts: softirq at irq_exit takes interrupts). */
  readonly reentrant: boolean;
  left: number;
  /** The interval it last asked for: the points inside its own next run count down from it. */
  gap: number;
  /** Runs of it on this thread's stack now. */
  running: number;
}

/** "No point due": 2^30 - 1, the largest small integer (Smi) V8 keeps unboxed; 2^30 is a heap number per store. */
const IDLE = 0x3fffffff;
/** Points left before the next slow-path run; `armed` is what it was set to. */
let budget = IDLE;
let armed = IDLE;
let paths: Path[] = [];
/** Points counted before the current arming (see {@link schedPointCount}). */
let counted = 0;
/** Slow-path runs on this thread's stack: 0 at a point reached by plain kernel code. */
let depth = 0;
/**
 * The deterministic scheduler's hook (src/sched/sched_det.ts): it runs when
 * `detLeft` points have passed, also inside another slow path (an interrupt
 * handler blocks and is preempted like any code), and returns its next gap.
 */
let detHook: ((kind: SP) => number) | null = null;
let detLeft = IDLE;

export function sched_point(kind: SP): void {
  if (--budget <= 0) schedSlow(kind);
}

/**
 * A safe point between two workload operations (no locks held, not atomic):
 * a sched point that also runs every slow path — the kworker runs here in
 * "auto" mode, RCU notes a quiescent state, a pending interrupt is taken.
 */
export function sched_op_point(): void {
  budget--;
  schedSlow(SP_OP);
}

/** Sched points this thread has passed since {@link sched_point_reset}: the deterministic scheduler's clock. */
export function schedPointCount(): number {
  return counted + (armed - budget);
}

/** Moves the points since the last arming into `counted` and every interval. */
function account(): void {
  const elapsed = armed - budget;
  budget = armed = IDLE;
  // Inside the slow path no point passed since the last call: nothing to move.
  if (elapsed === 0) return;
  counted += elapsed;
  detLeft -= elapsed;
  const ps = paths;
  for (let i = 0; i < ps.length; i++) ps[i]!.left -= elapsed;
}

/**
 * Can `p` run at a point reached inside a slow path? Only the nested ones (an
 * interrupt inside a work item or a softirq, the soft-lockup watchdog inside a
 * handler that loops), and inside its own run only a reentrant one. At depth
 * 0 every path can.
 */
function runnableNested(p: Path): boolean {
  return p.nested && (p.running === 0 || p.reentrant);
}

/** Arms the budget for the next point at the current depth: the nearest due runnable path or the scheduler. */
function rearm(): void {
  const top = depth === 0;
  let next = detHook !== null ? Math.max(1, detLeft) : IDLE;
  const ps = paths;
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i]!;
    if (top || runnableNested(p)) next = Math.min(next, Math.max(1, p.left));
  }
  budget = armed = next;
}

function schedSlow(kind: SP): void {
  account();
  const top = depth === 0;
  const all = top && kind === SP_OP;
  depth++;
  try {
    // The deterministic scheduler decides at every depth: handler code is preempted like any code.
    runDet(kind);
    const ps = paths;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i]!;
      if ((p.left > 0 && !all) || !(top || runnableNested(p))) continue;
      runPath(p, kind);
    }
  } finally {
    account();
    depth--;
    rearm();
  }
}

/**
 * Runs one due slow path; the points inside it count down for the paths that
 * may nest there. Most runs reach no point, so instead of arming for the
 * nested depth (a scan of every path) the budget is one: the first point
 * inside, if any, enters schedSlow, which finds nothing due that the scan
 * would not have found and arms properly. schedSlow's exit arms once for all.
 */
function runPath(p: Path, kind: SP): void {
  account();
  p.left = p.gap;
  p.running++;
  budget = armed = 1;
  let want: number | undefined;
  try {
    want = p.fn(kind) ?? undefined;
  } finally {
    p.running--;
  }
  if (typeof want === "number") p.gap = p.left = Math.max(1, Math.min(want, p.every));
  else p.gap = p.every;
}

function runDet(kind: SP): void {
  if (detHook !== null && detLeft <= 0) detLeft = detHook(kind);
}

/**
 * Plugs a slow path in behind the hook (machine-stop check, interrupts, RCU
 * callbacks). `every` = 1 runs it at every point. A `nested` path runs also
 * at the points reached inside another slow path (a watchdog must see a
 * handler that never returns; an interrupt lands inside a work item); a
 * `reentrant` one also inside its own run (its own code decides, from the
 * CPU's context, what may nest: an interrupt in a softirq, never in a hardirq).
 */
export function addSchedSlowPath(fn: SlowPath, every: number, nested = false, reentrant = false): void {
  const e = Math.max(1, Math.floor(every));
  account();
  paths = [...paths, { fn, every: e, nested, reentrant, left: e, gap: e, running: 0 }];
  rearm();
}

export function removeSchedSlowPath(fn: SlowPath): void {
  account();
  paths = paths.filter((p) => p.fn !== fn);
  rearm();
}

/**
 * Installs (or, with null, removes) the deterministic scheduler's hook; it
 * first runs after `first` points.
 */
export function setSchedDetHook(fn: ((kind: SP) => number) | null, first = IDLE): void {
  account();
  detHook = fn;
  detLeft = first;
  rearm();
}

/** The deterministic scheduler asks to run again after `n` points (a wake that may preempt: 1). */
export function schedDetRearm(n: number): void {
  account();
  detLeft = n;
  rearm();
}

/**
 * Restarts this thread's sched-point clock and every slow path's interval, as
 * at boot: a machine restored from a snapshot replays the same points.
 */
export function sched_point_reset(): void {
  counted = 0;
  for (const p of paths) p.left = p.gap = p.every;
  detHook = null;
  detLeft = IDLE;
  budget = armed = IDLE;
  rearm();
}

onMachineReset(sched_point_reset);
