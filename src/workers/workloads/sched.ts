/**
 * The deterministic scheduler's benchmark workload (bench/sched.ts): a loop
 * of sched points and nothing else, so that what it costs is the scheduler's.
 */
import { SP_ATOMIC, sched_point } from "../../sched/sched_point.js";
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

/** `points` sched points (SP_ATOMIC, as an atomic RMW passes one), timed. */
defineWorkload("bench_sched_points", (a: BenchSchedPointsArgs): BenchSchedPointsResult => {
  const start = monotonicMs();
  for (let i = 0; i < a.points; i++) sched_point(SP_ATOMIC);
  return { start, end: monotonicMs() };
});
