/**
 * The sched-point hook. Every lock operation, atomic RMW on shared state and
 * RCU operation calls sched_point(kind). In free mode it is one decrement and
 * one compare; every `period` points (or every point, when a deterministic
 * scheduler or interrupt injection needs it) the slow path runs: the machine
 * stop check, simulated interrupts, and whatever strategy is plugged in.
 */

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

export type SlowPath = (kind: SP) => void;

let budget = 1 << 30;
let period = 1 << 30;
const slowPaths: SlowPath[] = [];

export function sched_point(kind: SP): void {
  if (--budget <= 0) schedSlow(kind);
}

function schedSlow(kind: SP): void {
  budget = period;
  for (let i = 0; i < slowPaths.length; i++) slowPaths[i]!(kind);
}

/**
 * Plugs a slow path in behind the hook (machine-stop check, interrupt
 * injection, the deterministic scheduler). `every` = 1 runs it at every point.
 */
export function addSchedSlowPath(fn: SlowPath, every: number): void {
  slowPaths.push(fn);
  period = Math.max(1, Math.min(period, every));
  budget = Math.min(budget, period);
}

export function removeSchedSlowPath(fn: SlowPath): void {
  const i = slowPaths.indexOf(fn);
  if (i >= 0) slowPaths.splice(i, 1);
  if (slowPaths.length === 0) period = budget = 1 << 30;
}

/** Sets how many sched points pass between slow-path runs. */
export function setSchedPeriod(every: number): void {
  period = Math.max(1, every);
  budget = Math.min(budget, period);
}
