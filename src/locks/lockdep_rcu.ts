/**
 * CONFIG_PROVE_RCU, lockdep's half (kernel/locking/lockdep.c and
 * include/linux/rcupdate.h, v4.19): RCU_LOCKDEP_WARN and the "suspicious RCU
 * usage" splat of lockdep_rcu_suspicious. PROVE_RCU rides on PROVE_LOCKING,
 * so the checks run only with lockdep on.
 *
 * RCU sits floors above (src/rcu) and registers its reader nesting here at
 * load, where the kernel has a declaration: might_sleep and the RCU list
 * walkers of src/lib check it too.
 */
import { DEFINE_PER_CPU, I32 } from "../shared/arena.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { onSetCurrentCpu, this_cpu_ptr } from "../shared/smp.js";
import { lockdep_print_held_locks } from "./lockdep.js";
import { frameText, save_stack_trace } from "./stacktrace.js";

/** rcu_dereference() and rcu_dereference_check() outside a read-side section, without the update-side condition. */
export const RCU_DEREFERENCE_CHECK = "suspicious rcu_dereference_check() usage";
/** rcu_dereference_protected() without the update-side condition. */
export const RCU_DEREFERENCE_PROTECTED = "suspicious rcu_dereference_protected() usage";
/** An RCU list walked outside a read-side section (v5.4's CONFIG_PROVE_RCU_LIST wording; v4.19's walkers do not check). */
export const RCU_LIST_NON_READER = "RCU-list traversed in non-reader section!";
/** Each message's bit in rcu_lockdep.warned. */
const MESSAGES = [RCU_DEREFERENCE_CHECK, RCU_DEREFERENCE_PROTECTED, RCU_LIST_NON_READER] as const;
type RcuLockdepMessage = (typeof MESSAGES)[number];

/**
 * RCU_LOCKDEP_WARN's `static bool __warned` of each call site, per CPU and per
 * message: a replayed run reports the same splats.
 */
const RCU_LOCKDEP = defineStruct("rcu_lockdep", [{ name: "warned", type: "i32", guard: "owner" }]);
const rcu_lockdep = DEFINE_PER_CPU("rcu_lockdep", RCU_LOCKDEP);

let warnedIdx = 0;
onSetCurrentCpu(() => {
  warnedIdx = (this_cpu_ptr(rcu_lockdep) + RCU_LOCKDEP.off.warned) >> 2;
});

/* current->rcu_read_lock_nesting, from src/rcu/rcupdate.ts once it has loaded. */
let nesting = (): number => 0;

/** RCU hands lockdep its reader nesting (once, at module load). */
export function registerRcuReadLockNesting(fn: () => number): void {
  nesting = fn;
}

/** current->rcu_read_lock_nesting (v4.19, preemptible RCU): this CPU's read-side depth, 0 outside readers. */
export function rcu_read_lock_nesting(): number {
  return nesting();
}

/**
 * lockdep_rcu_suspicious (v4.19): the splat, naming the caller of the checked
 * primitive (the outermost frame whose function is one of `checked`: one
 * checked primitive may call another).
 */
function lockdep_rcu_suspicious(checked: readonly string[], s: RcuLockdepMessage): void {
  const frames = save_stack_trace();
  let at = -1;
  frames.forEach((f, i) => {
    if (checked.includes(f.fn)) at = i;
  });
  const trace = frames.slice(at + 1, at + 9);
  const site = trace[0]?.loc ?? "?";
  reportBug(
    "lockdep",
    [
      "WARNING: suspicious RCU usage",
      "-----------------------------",
      `${site} ${s}!`,
      "",
      "other info that might help us debug this:",
      "",
      "rcu_scheduler_active = 2, debug_locks = 1",
      lockdep_print_held_locks(),
      "",
      "stack backtrace:",
      ...trace.map((f) => ` ${frameText(f)}`),
    ].join("\n"),
  );
}

/**
 * RCU_LOCKDEP_WARN (v4.19): the splat, once per CPU and message, when `c`
 * holds. `checked` names the primitives that check (their caller is the site
 * named, as the kernel's __FILE__:__LINE__). Callers test lockdepOn first.
 */
export function RCU_LOCKDEP_WARN(c: boolean, checked: readonly string[], s: RcuLockdepMessage): void {
  if (!c) return;
  const bit = 1 << MESSAGES.indexOf(s);
  const warned = I32[warnedIdx]!;
  if (warned & bit) return;
  I32[warnedIdx] = warned | bit;
  lockdep_rcu_suspicious(checked, s);
}
