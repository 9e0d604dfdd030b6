/**
 * might_sleep and cond_resched (include/linux/kernel.h, include/linux/sched.h;
 * the check is ___might_sleep of kernel/sched/core.c, v4.19, as built with
 * CONFIG_DEBUG_ATOMIC_SLEEP). A function that may sleep says so first; called
 * with preemption or interrupts off, or inside an RCU read-side section
 * (v4.19's preempt_count_equals counts rcu_preempt_depth() in), that is the
 * report "BUG: sleeping function called from invalid context".
 *
 * The check runs with lockdep (the config's `lockdep` covers atomic-sleep
 * checks); the sched point runs always — a sleeping point is where a
 * deterministic schedule may switch CPUs.
 */
import { DEFINE_PER_CPU, I32 } from "../shared/arena.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_SLEEP, sched_point } from "../sched/sched_point.js";
import { onSetCurrentCpu, smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { in_atomic, irqs_disabled, preempt_count } from "../percpu/preempt.js";
import { lockdep_print_held_locks, lockdepOn } from "./lockdep.js";
import { rcu_read_lock_nesting } from "./lockdep_rcu.js";
import { frameText, save_stack_trace } from "./stacktrace.js";

/**
 * Reports per CPU before the check goes quiet. The kernel rate-limits to one
 * a second; a count keeps a replayed run's reports identical.
 */
export const MIGHT_SLEEP_REPORTS = 8;

const MIGHT_SLEEP_STATE = defineStruct("might_sleep_state", [{ name: "nr_reports", type: "i32", guard: "owner" }]);
const might_sleep_state = DEFINE_PER_CPU("might_sleep_state", MIGHT_SLEEP_STATE);

let nrIdx = 0;
onSetCurrentCpu(() => {
  nrIdx = (this_cpu_ptr(might_sleep_state) + MIGHT_SLEEP_STATE.off.nr_reports) >> 2;
});

/** The kernel frames above might_sleep, innermost first: "mutex_lock (src/locks/mutex.js:62:5)" … */
function callTrace(): string[] {
  const frames = save_stack_trace();
  const at = frames.findIndex((f) => f.fn === "might_sleep" || f.fn === "cond_resched");
  return frames.slice(at + 1, at + 9).map(frameText);
}

/** ___might_sleep (v4.19): report a sleep from atomic context, with the CPU's state and held locks. */
function ___might_sleep(): void {
  const n = I32[nrIdx]!;
  if (n >= MIGHT_SLEEP_REPORTS) return;
  I32[nrIdx] = n + 1;
  const trace = callTrace();
  const where = trace[0]?.split(" ")[0] ?? "?";
  const rcuDepth = rcu_read_lock_nesting();
  reportBug(
    "lockdep",
    [
      `BUG: sleeping function called from invalid context at ${where}`,
      `in_atomic(): ${in_atomic() ? 1 : 0}, irqs_disabled(): ${irqs_disabled() ? 1 : 0}, CPU: ${smp_processor_id()}, preempt_count: 0x${preempt_count().toString(16)}`,
      // The line later kernels (v5.16) print; v4.19 counts the depth in but does not show it.
      ...(rcuDepth !== 0 ? [`RCU nest depth: ${rcuDepth}, expected: 0`] : []),
      lockdep_print_held_locks(),
      "Call trace:",
      ...trace.map((f) => ` ${f}`),
      ...(n + 1 === MIGHT_SLEEP_REPORTS ? [`(further reports from CPU${smp_processor_id()} suppressed)`] : []),
    ].join("\n"),
  );
}

/** preempt_count_equals(0) of ___might_sleep (v4.19) failed: preemption or interrupts off, or inside an RCU reader. */
function sleep_invalid(): boolean {
  return in_atomic() || irqs_disabled() || rcu_read_lock_nesting() !== 0;
}

/** might_sleep (v4.19): this point may sleep; reports when called in atomic context or an RCU reader. */
export function might_sleep(): void {
  if (lockdepOn && sleep_invalid()) ___might_sleep();
  sched_point(SP_SLEEP);
}

/** cond_resched (v4.19): a voluntary preemption point in a long loop; may sleep, so checked as might_sleep. */
export function cond_resched(): void {
  if (lockdepOn && sleep_invalid()) ___might_sleep();
  sched_point(SP_SLEEP);
}
