/**
 * The deterministic scheduler's benchmark workload (bench/sched.ts): a loop
 * of sched points and nothing else, so that what it costs is the scheduler's.
 */
import { SP_ATOMIC, sched_point } from "../../sched/sched_point.js";
import { touch_softlockup_watchdog } from "../../sched/watchdog.js";
import { defineWorkload } from "../workload.js";

/** Arguments of `bench_sched_points`. */
export interface BenchSchedPointsArgs {
  /** Sched points this CPU passes. */
  readonly points: number;
}

/** When this CPU's loop ran: ms since the epoch, comparable between CPUs (each worker has its own timeOrigin). */
export interface BenchSchedPointsResult {
  readonly start: number;
  readonly end: number;
}

/** Points between two touches of the soft-lockup watchdog (which fires past 2^22 points in one call). */
const TOUCH_EVERY = 1 << 20;

/** `points` sched points (SP_ATOMIC, as an atomic RMW passes one), timed. */
defineWorkload("bench_sched_points", (a: BenchSchedPointsArgs): BenchSchedPointsResult => {
  const start = performance.timeOrigin + performance.now();
  for (let done = 0; done < a.points; done += TOUCH_EVERY) {
    // A long loop that means it: touch_softlockup_watchdog, as kernel loops of that kind do.
    touch_softlockup_watchdog();
    for (let i = 0, n = Math.min(TOUCH_EVERY, a.points - done); i < n; i++) sched_point(SP_ATOMIC);
  }
  return { start, end: performance.timeOrigin + performance.now() };
});
