/**
 * The deterministic scheduler's benchmark workload (bench/sched.ts): a loop
 * of sched points and nothing else, so that what it costs is the scheduler's.
 */
import { SP_ATOMIC, sched_point } from "../../sched/sched_point.js";
import { touch_softlockup_watchdog } from "../../sched/watchdog.js";
import { monotonicMs } from "../../sched/watchdog_clock.js";
import { defineWorkload } from "../workload.js";

/** Arguments of `bench_sched_points`. */
export interface BenchSchedPointsArgs {
  /** Sched points this CPU passes. */
  readonly points: number;
}

/** When this CPU's loop ran: monotonicMs(), comparable between CPUs (each worker has its own performance.now() zero). */
export interface BenchSchedPointsResult {
  readonly start: number;
  readonly end: number;
}

/** Sched points between two touches of the soft-lockup watchdog: far below its deterministic bound of 2^22. */
const TOUCH_EVERY = 1 << 20;

/**
 * `points` sched points (SP_ATOMIC, as an atomic RMW passes one), timed. The
 * loop is the benchmark's, not one kernel call: it touches the watchdog
 * between chunks, as a long kernel loop calls touch_softlockup_watchdog.
 */
defineWorkload("bench_sched_points", (a: BenchSchedPointsArgs): BenchSchedPointsResult => {
  const start = monotonicMs();
  for (let done = 0; done < a.points; done += TOUCH_EVERY) {
    const n = Math.min(TOUCH_EVERY, a.points - done);
    for (let i = 0; i < n; i++) sched_point(SP_ATOMIC);
    touch_softlockup_watchdog();
  }
  return { start, end: monotonicMs() };
});
