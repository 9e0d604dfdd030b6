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
  left: number;
}

const IDLE = 1 << 30;
/** Points left before the next slow-path run; `armed` is what it was set to. */
let budget = IDLE;
let armed = IDLE;
let paths: Path[] = [];

export function sched_point(kind: SP): void {
  if (--budget <= 0) schedSlow(kind);
}

/**
 * A safe point between two workload operations (no locks held, not atomic):
 * sched_point(SP_OP) that always runs every slow path — the kworker runs here
 * in "auto" mode, RCU notes a quiescent state, a pending interrupt is taken.
 */
export function sched_op_point(): void {
  schedSlow(SP_OP);
}

let inSlow = false;

function schedSlow(kind: SP): void {
  // Points reached inside a slow path (an interrupt handler taking locks) do not re-enter it.
  if (inSlow) return;
  inSlow = true;
  const elapsed = armed - budget;
  budget = armed = IDLE;
  try {
    for (const p of paths) {
      p.left -= elapsed;
      if (p.left <= 0 || kind === SP_OP) {
        p.left = p.every;
        const want = p.fn(kind);
        if (typeof want === "number") p.left = Math.max(1, Math.min(want, p.every));
      }
    }
  } finally {
    let next = IDLE;
    for (const p of paths) next = Math.min(next, Math.max(1, p.left));
    budget = armed = next;
    inSlow = false;
  }
}

function rearm(): void {
  const elapsed = armed - budget;
  let next = IDLE;
  for (const p of paths) {
    p.left = Math.max(1, p.left - elapsed);
    if (p.left < next) next = p.left;
  }
  budget = armed = next;
}

/**
 * Plugs a slow path in behind the hook (machine-stop check, interrupts, RCU
 * callbacks, the deterministic scheduler). `every` = 1 runs it at every point.
 */
export function addSchedSlowPath(fn: SlowPath, every: number): void {
  const e = Math.max(1, Math.floor(every));
  rearm();
  paths = [...paths, { fn, every: e, left: e }];
  rearm();
}

export function removeSchedSlowPath(fn: SlowPath): void {
  rearm();
  paths = paths.filter((p) => p.fn !== fn);
  rearm();
}
