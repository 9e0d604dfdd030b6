/**
 * Stutter: seeded random pauses that shift interleavings (the job of
 * rcutorture's and locktorture's stutter, done at finer grain). At each safe
 * point between two workload operations the CPU decides, with probability p,
 * to pause somewhere inside its next operation: at a sched point chosen
 * uniformly among the next STUTTER_WINDOW, which may be inside a critical
 * section, between a lock release and the next acquire, or in an RCU reader.
 * A pause either spins for 0.5–20 µs (the CPU keeps its core, as a long
 * interrupt would) or sleeps 50–500 µs in Atomics.wait (the OS may run
 * another CPU on the core, as preemption would).
 *
 * Every decision and length comes from the CPU's PRNG stream, so a seed
 * places the pauses at the same points of each CPU's operation stream; how
 * the other CPUs' work lines up with them is the OS's doing, as always in
 * free mode. Off (the default) nothing is plugged in and sched points cost
 * what they always do.
 */
import { machineStopping, onMachineReset } from "../shared/arena.js";
import { EV_STUTTER, trace_event } from "../shared/events.js";
import type { Prng } from "../shared/prng.js";
import { MachineStopped } from "../shared/report.js";
import { SP_OP, type SP, addSchedSlowPath, removeSchedSlowPath } from "./sched_point.js";

/** The pause lands at one of this many sched points after the safe point that decided it. */
export const STUTTER_WINDOW = 64;
const SPIN_MIN_NS = 500;
const SPIN_MAX_NS = 20_000;
const SLEEP_MIN_MS = 0.05;
const SLEEP_MAX_MS = 0.5;
/** Share of pauses that sleep rather than spin. */
const SLEEP_SHARE = 0.2;
/** "Not before the next safe point": the slow path's interval while no pause is armed. */
const NEVER = 1 << 29;

let probability = 0;
let rng: Prng | null = null;
/** A pause was decided at the last safe point and has not happened yet. */
let armed = false;
/** What a sleeping pause waits on: a private word nobody notifies (not kernel state). */
const sleepWord = new Int32Array(new SharedArrayBuffer(4));

/** One pause: bounded (≤ SLEEP_MAX_MS), and a stopped machine unwinds instead of pausing. */
function pause(r: Prng): void {
  if (machineStopping()) throw new MachineStopped();
  if (r.chance(SLEEP_SHARE)) {
    const ms = SLEEP_MIN_MS + r.next() * (SLEEP_MAX_MS - SLEEP_MIN_MS);
    trace_event(EV_STUTTER, Math.round(ms * 1e6), 1);
    Atomics.wait(sleepWord, 0, 0, ms);
    return;
  }
  const ns = r.int(SPIN_MIN_NS, SPIN_MAX_NS);
  trace_event(EV_STUTTER, ns, 0);
  const end = performance.now() + ns / 1e6;
  while (performance.now() < end);
}

/** The slow path: decides at safe points, pauses at the armed point. */
function stutterPoint(kind: SP): number {
  const r = rng!;
  if (kind === SP_OP) {
    // An operation shorter than the armed distance pauses at its end instead.
    if (armed) {
      armed = false;
      pause(r);
    }
    if (!r.chance(probability)) return NEVER;
    armed = true;
    return r.int(1, STUTTER_WINDOW);
  }
  if (armed) {
    armed = false;
    pause(r);
  }
  return NEVER;
}

/**
 * Harness: stutter on this CPU with probability `p` per operation (0 turns it
 * off), drawing from `prng` (a stream of this CPU's, e.g. cpuCtx.prng(n)).
 */
export function setStutter(p: number, prng: Prng): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`stutter probability must be in 0..1, got ${p}`);
  if (rng !== null) removeSchedSlowPath(stutterPoint);
  probability = p;
  armed = false;
  rng = p > 0 ? prng : null;
  if (rng !== null) addSchedSlowPath(stutterPoint, NEVER);
}

onMachineReset(() => {
  if (rng !== null) removeSchedSlowPath(stutterPoint);
  rng = null;
  armed = false;
});
