/**
 * RCU read side and pointer publication (include/linux/rcupdate.h, v4.19), as
 * a userspace RCU: each CPU has a reader counter in the arena, odd while the
 * CPU may be inside a read-side section, and a plain nesting count.
 *
 * Reader epochs. Two SC stores per lock/unlock pair cost ~25 ns on the
 * development host (an Atomics.store is ~12 ns), over the 20 ns budget. So the
 * counter is changed lazily, as liburcu's QSBR flavour reports quiescent
 * states: the outermost rcu_read_lock makes the counter odd only if it is
 * even. The counter goes back to even at this CPU's next quiescent state
 * (rcu_qs), with nesting 0: at the outermost rcu_read_unlock when a grace
 * period waits for this CPU (below), at the sched-point slow path (every
 * RCU_CHECK_PERIOD points, tree.ts), when the CPU blocks (a context switch:
 * sched_wait), when the CPU goes idle (its workload call returns), when the
 * harness switches the thread to another CPU, and when the CPU itself waits
 * for a grace period. An odd span of the counter (an "epoch") thus covers one
 * or more read-side sections and nothing else that matters: a steady-state
 * lock/unlock pair is plain per-CPU accesses only.
 *
 * The reader's end is the end of its protection. A grace period that finds
 * this CPU's counter odd sets its need_qs word (the kernel's
 * rcu_read_unlock_special.b.need_qs, which its tick sets for a preempted
 * reader); the outermost rcu_read_unlock tests it with a plain load and, when
 * set, ends the epoch there (rcu_read_unlock_special), so the grace period can
 * end right after the unlock, not at the CPU's next tick: a use after
 * rcu_read_unlock can see the record freed. The plain load is a hint only: a
 * stale 0 leaves the epoch to the next rcu_qs (later, never sooner), and under
 * the deterministic scheduler the token handoff orders it after the store.
 *
 * A grace period (src/rcu/tree.ts) loads every CPU's counter after the
 * updater's unlink, then waits until each CPU whose value was odd has changed
 * it. Why that suffices, with sequentially consistent Atomics (one total
 * order S of all SC operations), for a reader section R on CPU X and the
 * grace period's load L of X's counter:
 * - L reads an odd value V: R's epoch is that one or a later one. The grace
 *   period ends only after it loads V+1, the store that ends the epoch, made
 *   with nesting 0, so after every read of every section of the epoch. A later
 *   epoch begins with a store that follows V+1, hence L, hence the unlink, in
 *   S; its rcu_dereference (an Atomics.load after that store) returns the new
 *   pointer: R cannot reach the removed record.
 * - L reads an even value: every earlier epoch of X ended before L; the next
 *   one begins after L in S, so again after the unlink.
 * The load that observes the epoch-ending store synchronizes with it, so the
 * reader's plain reads of a record happen before the updater frees it. Which
 * of the quiescent states above made the store does not enter the argument:
 * each is made with nesting 0.
 *
 * With lockdep on (PROVE_RCU), rcu_dereference and the RCU list walkers check
 * that the caller is a reader (or holds the update side's lock), and
 * might_sleep reports a sleep inside a reader (src/locks/lockdep_rcu.ts).
 *
 * The update side (synchronize_rcu, call_rcu, kfree_rcu, rcu_barrier) is in
 * src/rcu/tree.ts.
 */
import { DEFINE_PER_CPU, I32 } from "../shared/arena.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_RCU, sched_point } from "../sched/sched_point.js";
import { onSetCurrentCpu, smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { registerContextSwitchNote } from "../sched/sched_det.js";
import { lockdepOn } from "../locks/lockdep.js";
import {
  RCU_DEREFERENCE_CHECK,
  RCU_DEREFERENCE_PROTECTED,
  RCU_LOCKDEP_WARN,
  registerRcuReadLockNesting,
} from "../locks/lockdep_rcu.js";
import { trace_rcu_read_lock, trace_rcu_read_unlock, tracing } from "../trace/trace.js";

/**
 * struct callback_head (include/linux/types.h): embedded in a record that is
 * freed through call_rcu. `func` is a kernel function id (src/shared/functab.ts)
 * or, for kfree_rcu, the offset of the rcu_head in its record (below 4096).
 */
export const RCU_HEAD = defineStruct("rcu_head", [
  { name: "next", type: "ptr", guard: "rcu_data.nocb_lock" },
  { name: "func", type: "i32", guard: "rcu_data.nocb_lock" },
]);

/** A CPU's reader state (liburcu's per-thread struct urcu_reader). */
export const RCU_READER = defineStruct("rcu_reader", [
  /** Odd during a reader epoch; only its CPU writes it, grace periods load it from any CPU. */
  { name: "ctr", type: "i32", guard: "atomic" },
  /** Read-side nesting depth (current->rcu_read_lock_nesting). */
  { name: "nesting", type: "i32", guard: "owner" },
  /**
   * rcu_read_unlock_special.b.need_qs: a grace period waits for this CPU's
   * epoch. Grace periods set it, its CPU clears it, both with Atomics; the
   * outermost rcu_read_unlock reads it plainly (a hint: see the file comment).
   */
  { name: "need_qs", type: "i32", guard: "atomic" },
]);
/** Every CPU's reader state; src/rcu/tree.ts snapshots the counters. */
export const rcu_reader = DEFINE_PER_CPU("rcu_reader", RCU_READER);

/* I32 indexes of this CPU's reader words, cached: they are the whole read-side fast path. */
let ctrIdx = 0;
let nestingIdx = 0;
let needQsIdx = 0;
/** The arena view the indexes were computed for: a new arena (a new boot) invalidates them. */
let boundTo: Int32Array | null = null;
/** An rcu_idle_enter is queued on this thread's event loop. */
let idleQueued: NodeJS.Immediate | null = null;

onSetCurrentCpu(() => {
  // Leaving a CPU is a context switch: a quiescent state for the CPU left behind.
  if (boundTo === I32 && I32[nestingIdx] === 0) rcu_qs();
  const p = this_cpu_ptr(rcu_reader);
  ctrIdx = (p + RCU_READER.off.ctr) >> 2;
  nestingIdx = (p + RCU_READER.off.nesting) >> 2;
  needQsIdx = (p + RCU_READER.off.need_qs) >> 2;
  boundTo = I32;
});

/**
 * rcu_qs (v4.19, what rcu_note_context_switch reports): end this CPU's reader
 * epoch. Only with nesting 0; the SC store follows every read of the epoch's
 * sections. A grace period that asked for it loaded the counter before it set
 * need_qs, so clearing the request after the store loses none.
 */
export function rcu_qs(): void {
  const c = I32[ctrIdx]!;
  if (c & 1) Atomics.store(I32, ctrIdx, c + 1);
  if (Atomics.load(I32, needQsIdx) !== 0) Atomics.store(I32, needQsIdx, 0);
}

/**
 * rcu_note_context_switch (v4.19): this CPU is about to block (sched_wait: a
 * lock, a mutex, a barrier, a flush). Outside a reader that is a quiescent
 * state, as a context switch is in the kernel; inside one (spinning on a lock
 * within a read-side section) the epoch goes on.
 */
function rcu_note_context_switch(): void {
  if (boundTo === I32 && I32[nestingIdx] === 0) rcu_qs();
}
registerContextSwitchNote(rcu_note_context_switch);

/**
 * rcu_idle_enter (v4.19): the CPU went idle, an extended quiescent state. It
 * runs when a CPU worker parks (rcu_idle_park), or from the thread's event
 * loop, which turns only between workloads; a workload that returned inside a
 * read-side section is reported instead.
 */
function rcu_idle_enter(): void {
  idleQueued = null;
  const n = I32[nestingIdx]!;
  if (n === 0) rcu_qs();
  else
    reportBug(
      "rcu",
      `WARNING: CPU#${smp_processor_id()} went idle inside an RCU read-side critical section (nesting ${n}): rcu_read_unlock() missing`,
    );
}

/**
 * Harness: a CPU worker's workload call ended and the CPU parks. It goes idle
 * now rather than from its event loop, at a moment no schedule decides; after
 * a failed call (the machine stopped) the pending idle entry is only dropped.
 */
export function rcu_idle_park(ok: boolean): void {
  if (idleQueued === null) return;
  clearImmediate(idleQueued);
  if (ok) rcu_idle_enter();
  else idleQueued = null;
}

/** Starts a reader epoch: out of line, the fast path only tests the counter's parity. */
function rcu_epoch_begin(c: number): void {
  // SC store before the section's first rcu_dereference: a grace period that loads
  // the counter after this store waits for the epoch; one that loaded it before
  // did so after its unlink, which this section's loads then follow.
  Atomics.store(I32, ctrIdx, c + 1);
  idleQueued ??= setImmediate(rcu_idle_enter);
}

/** rcu_read_lock (v4.19, preemptible RCU's __rcu_read_lock): enter a read-side section; sections nest. */
export function rcu_read_lock(): void {
  sched_point(SP_RCU);
  const n = I32[nestingIdx]!;
  I32[nestingIdx] = n + 1;
  // Only this CPU writes its counter, so the plain read of it is current.
  if (n === 0) {
    const c = I32[ctrIdx]!;
    if ((c & 1) === 0) rcu_epoch_begin(c);
    if (tracing) trace_rcu_read_lock();
  }
}

/**
 * rcu_read_unlock_special (v4.19): the outermost unlock found need_qs set, a
 * grace period waiting for this CPU: report the quiescent state now.
 */
function rcu_read_unlock_special(): void {
  rcu_qs();
}

/**
 * rcu_read_unlock (v4.19, __rcu_read_unlock): leave a read-side section. The
 * outermost one ends the epoch when a grace period waits for it; otherwise
 * the epoch ends at the next rcu_qs.
 */
export function rcu_read_unlock(): void {
  const n = I32[nestingIdx]!;
  if (n <= 0) {
    reportBug("rcu", `WARNING: rcu_read_unlock() without a matching rcu_read_lock() on CPU#${smp_processor_id()}`);
    return;
  }
  I32[nestingIdx] = n - 1;
  if (n === 1) {
    // READ_ONCE(t->rcu_read_unlock_special.s): a grace period sets it from another CPU.
    if (Atomics.load(I32, needQsIdx) !== 0) rcu_read_unlock_special();
    if (tracing) trace_rcu_read_unlock();
  }
  sched_point(SP_RCU);
}

/** rcu_preempt_depth (v4.19): this CPU's read-side nesting depth. */
export function rcu_preempt_depth(): number {
  return I32[nestingIdx]!;
}
registerRcuReadLockNesting(rcu_preempt_depth);

/** rcu_read_lock_held (v4.19): is this CPU inside a read-side section? (For assertions.) */
export function rcu_read_lock_held(): boolean {
  return I32[nestingIdx]! > 0;
}

/**
 * rcu_assign_pointer (v4.19): publish `value` in the pointer slot at arena
 * address `slot`. The SC store orders every plain write that initialized the
 * record before the pointer a reader can load.
 */
export function rcu_assign_pointer(slot: number, value: number): void {
  sched_point(SP_RCU);
  Atomics.store(I32, slot >> 2, value);
}

/** The checking primitives: the splat names their caller. */
const DEREFERENCE_FRAME = ["rcu_dereference", "rcu_dereference_check", "rcu_dereference_protected"] as const;

/**
 * rcu_dereference (v4.19): load an RCU-protected pointer inside a read-side
 * section. The Atomics.load pairs with rcu_assign_pointer's store, so the
 * record's fields read afterwards are the published ones. Outside a reader,
 * with lockdep on: "suspicious rcu_dereference_check() usage".
 */
export function rcu_dereference(slot: number): number {
  sched_point(SP_RCU);
  if (lockdepOn) RCU_LOCKDEP_WARN(I32[nestingIdx] === 0, DEREFERENCE_FRAME, RCU_DEREFERENCE_CHECK);
  return Atomics.load(I32, slot >> 2);
}

/**
 * rcu_dereference_check (v4.19): rcu_dereference for code that runs either
 * inside a reader or on the update side, where `c` says the updaters' lock is
 * held (lock_is_held(lock)). Neither, with lockdep on: the splat.
 */
export function rcu_dereference_check(slot: number, c: boolean): number {
  sched_point(SP_RCU);
  if (lockdepOn) RCU_LOCKDEP_WARN(!c && I32[nestingIdx] === 0, DEREFERENCE_FRAME, RCU_DEREFERENCE_CHECK);
  return Atomics.load(I32, slot >> 2);
}

/**
 * rcu_dereference_protected (v4.19): load an RCU-protected pointer on the
 * update side, where `c` says the updaters' lock is held. Without it, with
 * lockdep on: "suspicious rcu_dereference_protected() usage" (a reader does
 * not count: this form is for updaters only).
 */
export function rcu_dereference_protected(slot: number, c: boolean): number {
  if (lockdepOn) RCU_LOCKDEP_WARN(!c, DEREFERENCE_FRAME, RCU_DEREFERENCE_PROTECTED);
  return Atomics.load(I32, slot >> 2);
}
