/**
 * The soft-lockup detector (kernel/watchdog.c, v4.19): a CPU that runs one
 * kernel call for longer than the machine's watchdogMs (scaled with the
 * host's load: src/sched/watchdog_clock.ts) without getting back
 * to its workload — looping over a list a double free turned into a cycle,
 * or waiting on a lock that never comes free — is reported as
 *
 *   watchdog: BUG: soft lockup - CPU#0 stuck for 10s! [exec_op]
 *
 * with that CPU's last events, and the machine stops.
 *
 * The kernel's watchdog thread touches watchdog_touch_ts each time it gets
 * to run; its hrtimer compares. Here a CPU touches it where it leaves a
 * kernel call for its workload loop (every sched_op_point, and the start of
 * each workload call), and checks it on the sched-point slow path — at the
 * points inside other slow paths too, since an interrupt handler or a work
 * item run from a safe point may be what loops — and between the slices of
 * a sleeping lock wait (src/locks/lock_wait.ts).
 *
 * Deterministic runs (explore, replay, shrink) cannot read a clock and still
 * replay bit for bit: there the CPU's own sched points since the touch are
 * the clock, and a call that passes SOFTLOCKUP_SCHED_POINTS of them is the
 * soft lockup.
 */
import { DEFINE_PER_CPU, F64, per_cpu_ptr, readCString, theArena, writeCString } from "../shared/arena.js";
import { lastEvents } from "../shared/events.js";
import { KernelBug, reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { schedDeterministic } from "./sched_det.js";
import { kcsanRegisterComm } from "./kcsan.js";
import { SP_OP, type SP, addSchedSlowPath, schedPointCount } from "./sched_point.js";
import { monotonicMs, watchdogExpired } from "./watchdog_clock.js";

/**
 * Sched points of one CPU inside one kernel call that make a deterministic
 * run's soft lockup. Honest calls stay far below: the longest measured, a
 * vmalloc of 1 GiB on a 1.5 GiB machine (`vmsim explore --script` with one
 * line, k = 552,878), takes about two points per page, and no call can touch
 * more pages than the machine has (393,216 at most). A looping CPU passes
 * it in about two seconds.
 */
export const SOFTLOCKUP_SCHED_POINTS = 1 << 22;

/** Sched points between two checks: a clock read per 4096 points costs nothing measurable. */
const WATCHDOG_CHECK_EVERY = 4096;

/** Events of the stuck CPU the report shows. */
export const SOFTLOCKUP_EVENTS = 16;

/** TASK_COMM_LEN (include/linux/sched.h): a task's name, NUL included. */
const TASK_COMM_LEN = 16;

/**
 * DEFINE_PER_CPU(unsigned long, watchdog_touch_ts), with the deterministic
 * clock beside the wall clock.
 */
const WATCHDOG_TOUCH_TS = defineStruct("watchdog_touch_ts", [
  /** monotonicMs() at the last touch; only its CPU reads it. */
  { name: "ts", type: "f64", guard: "owner" },
  /** This CPU's sched-point clock at the last touch (src/sched/sched_point.ts). */
  { name: "sched_points", type: "f64", guard: "owner" },
]);
const watchdog_touch_ts = DEFINE_PER_CPU("watchdog_touch_ts", WATCHDOG_TOUCH_TS);
const T = WATCHDOG_TOUCH_TS.off;

/**
 * This thread is a CPU whose detector runs (watchdog_enable ran here). The
 * main thread standing in for a CPU has none: the per-CPU touch it would read
 * is never written (a machine booted in-thread) or is the CPU thread's own,
 * from before that CPU parked.
 */
let watchdogEnabled = false;

/** The running task's name (current->comm): the workload a CPU runs, which the report names. */
const TASK_COMM = defineStruct("task_comm", [{ name: "comm", type: "u32", count: TASK_COMM_LEN / 4, guard: "owner" }]);
const current_comm = DEFINE_PER_CPU("current_comm", TASK_COMM);

// KCSAN's report names the task of each side.
kcsanRegisterComm((cpu) => readCString(per_cpu_ptr(current_comm, cpu), TASK_COMM_LEN));

/** touch_softlockup_watchdog (v4.19): this CPU made progress; restart its soft-lockup clock. */
export function touch_softlockup_watchdog(): void {
  const p = this_cpu_ptr(watchdog_touch_ts);
  F64[(p + T.ts) >> 3] = monotonicMs();
  F64[(p + T.sched_points) >> 3] = schedPointCount();
}

/** __set_task_comm (v4.19): names the task this CPU runs now (truncated to TASK_COMM_LEN − 1, as the kernel does). */
export function set_task_comm(name: string): void {
  writeCString(this_cpu_ptr(current_comm), TASK_COMM_LEN, name);
}

/** The soft-lockup report's first line. */
function softlockupHeadline(stuck: string): string {
  return `watchdog: BUG: soft lockup - CPU#${smp_processor_id()} stuck for ${stuck}! [${readCString(this_cpu_ptr(current_comm), TASK_COMM_LEN)}]`;
}

/**
 * The soft-lockup check (watchdog_timer_fn's is_softlockup, v4.19): when this
 * CPU has been in one kernel call longer than the watchdog allows, report it
 * — the headline (with the host's oversubscription, if the limit was scaled),
 * `why` (what a waiting CPU waits for), this CPU's last events — and throw the
 * BUG that stops the machine.
 */
export function softlockup_check(why?: () => string): void {
  if (!watchdogEnabled) return;
  const p = this_cpu_ptr(watchdog_touch_ts);
  let headline: string;
  if (schedDeterministic) {
    const points = schedPointCount() - F64[(p + T.sched_points) >> 3]!;
    if (points <= SOFTLOCKUP_SCHED_POINTS) return;
    headline = softlockupHeadline(`${points} sched points`);
  } else {
    const ms = monotonicMs() - F64[(p + T.ts) >> 3]!;
    const { watchdogMs, cpus } = theArena().config;
    const limit = watchdogExpired(ms, watchdogMs, cpus);
    if (limit === null) return;
    // The kernel counts whole seconds; a watchdog set below one second is shown in ms.
    headline = softlockupHeadline(ms < 1000 ? `${Math.round(ms)}ms` : `${Math.round(ms / 1000)}s`) + limit.note;
  }
  const cpu = smp_processor_id();
  // The live ring, not a snapshot a first WARN took: the report shows the loop.
  const events = lastEvents(cpu, SOFTLOCKUP_EVENTS, true);
  const lines = [headline];
  if (why !== undefined) lines.push(why());
  lines.push(`last ${events.length} events of CPU#${cpu}:`, ...events.map((e) => `  ${e}`));
  reportBug("soft-lockup", lines.join("\n"));
  throw new KernelBug(headline);
}

/** The watchdog's slow path: a safe point between operations touches, every other point checks. */
function watchdog_sched_point(kind: SP): void {
  if (kind === SP_OP) touch_softlockup_watchdog();
  else softlockup_check();
}

/**
 * watchdog_enable (v4.19, as a CPU comes online): this CPU's detector starts,
 * touched now. CPU threads only: the main thread runs kernel code only while
 * the CPUs are parked, and never for long.
 */
export function watchdog_enable(): void {
  watchdogEnabled = true;
  touch_softlockup_watchdog();
  addSchedSlowPath(watchdog_sched_point, WATCHDOG_CHECK_EVERY, true);
}
