/**
 * Grace periods and callbacks (kernel/rcu/tree.c and tree_plugin.h's
 * no-CBs offloading, v4.19), for the counter-based read side of
 * src/rcu/rcupdate.ts.
 *
 * Grace periods. rcu_state holds the sequence number (gp_seq, rcu.ts) and the
 * furthest one any callback or waiter needs (gp_seq_needed). There is no
 * grace-period kthread: rcu_gp_poll is its state machine made non-blocking,
 * so any CPU advances it at a safe point or while it waits, under a trylock
 * of the root rcu_node's lock:
 *   rcu_gp_init     start: snapshot every CPU's reader counter
 *   rcu_gp_fqs      a CPU whose snapshot was odd (in a reader epoch) has
 *                   passed a quiescent state once its counter changed (as the
 *                   kernel compares dynticks snapshots in
 *                   rcu_implicit_dynticks_qs)
 *   rcu_gp_cleanup  no CPU left: gp_seq ends, waiters are woken.
 *
 * Callbacks. Each CPU's rcu_data has a segmented callback list (rcu_segcblist)
 * under its own nocb_lock, as with CONFIG_RCU_NOCB_CPU: the list can be
 * advanced and its ready callbacks invoked from any CPU, so callbacks queued
 * by a CPU that has gone idle still run. Whoever invokes a list's callbacks
 * first claims it (nocb_runner, the stand-in for its rcuo kthread), so each
 * list is invoked in FIFO order by one CPU at a time. Callbacks run in softirq
 * context (SOFTIRQ_OFFSET in preempt_count), like RCU_SOFTIRQ.
 *
 * Where the work happens: rcu_check_callbacks is a sched-point slow path
 * (hooked in by rcu_cpu_starting), the scheduling-clock tick: it lands in
 * work items and softirqs too. Outside read-side sections it reports a
 * quiescent state (ends the reader epoch), then raises RCU_SOFTIRQ, which runs
 * at the tick's irq_exit where a softirq may (interrupts on, not in interrupt
 * context — locks the interrupted code holds do not matter), or at the next
 * irq_exit or local_bh_enable: rcu_process_callbacks polls the grace period
 * and, once gp_seq has moved since its last look, invokes the ready callbacks
 * of every CPU's list. synchronize_rcu and rcu_barrier drive the same
 * machinery themselves while they wait.
 */
import { schedDeterministic, sched_wake, sched_yield } from "../sched/sched_det.js";
import { monotonicMs, watchdogExpired } from "../sched/watchdog_clock.js";
import { DEFINE_GLOBAL, DEFINE_PER_CPU, I32, machineStopping, per_cpu_ptr, theArena } from "../shared/arena.js";
import { defineKernelFn } from "../shared/functab.js";
import { KernelBug, MachineStopped, reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import {
  SP_ATOMIC,
  SP_RCU,
  SP_SPIN,
  addSchedSlowPath,
  removeSchedSlowPath,
  sched_point,
} from "../sched/sched_point.js";
import { num_online_cpus, onSetCurrentCpu, smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { irqs_disabled, preempt_count_add, preempt_count_sub } from "../percpu/preempt.js";
import { RCU_SOFTIRQ, do_softirq, open_softirq, raise_softirq } from "../percpu/softirq.js";
import { SOFTIRQ_OFFSET } from "../shared/preempt_mask.js";
import {
  SPINLOCK_T,
  spin_lock_init,
  spin_lock_irqsave,
  spin_trylock,
  spin_unlock,
  spin_unlock_irqrestore,
} from "../locks/spinlock.js";
import { might_sleep } from "../locks/might_sleep.js";
import { RCU_HEAD, RCU_READER, rcu_preempt_depth, rcu_qs, rcu_reader } from "./rcupdate.js";
import {
  TF_RCU_BARRIER,
  TF_SYNCHRONIZE_RCU,
  trace_graph_entry,
  trace_graph_return,
  trace_rcu_gp_end,
  trace_rcu_gp_start,
  tracing,
} from "../trace/trace.js";
import {
  RCU_SEQ_CTR_SHIFT,
  ULONG_CMP_GE,
  ULONG_CMP_LT,
  __is_kfree_rcu_offset,
  __rcu_reclaim,
  rcu_seq_done,
  rcu_seq_endval,
  rcu_seq_snap,
  rcu_seq_start,
  rcu_seq_state,
} from "./rcu.js";
import {
  RCU_SEGCBLIST,
  rcu_segcblist_accelerate,
  rcu_segcblist_advance,
  rcu_segcblist_enqueue,
  rcu_segcblist_extract_done_cbs,
  rcu_segcblist_init,
} from "./rcu_segcblist.js";

/** The global grace-period state (struct rcu_state with its root rcu_node: a one-level tree). */
export const RCU_STATE = defineStruct("rcu_state", [
  /** The root rcu_node's lock: serializes grace-period start, scans and end. */
  { name: "lock", type: SPINLOCK_T },
  /** Current grace-period sequence number; written under rcu_node_0, read locklessly. */
  { name: "gp_seq", type: "i32", guard: "atomic" },
  /** Furthest gp_seq some callback or waiter needs (rcu_start_this_gp raises it). */
  { name: "gp_seq_needed", type: "i32", guard: "atomic" },
  /** CPUs the grace period in progress still waits for (the root's qsmask, counted). */
  { name: "qs_left", type: "i32", guard: "rcu_node_0" },
  /** CPUs sleeping in Atomics.wait on gp_seq; rcu_gp_cleanup notifies only when nonzero. */
  { name: "gp_waiters", type: "i32", guard: "atomic" },
]);
const rcu_state = DEFINE_GLOBAL("rcu_state", RCU_STATE);

/** Per-CPU RCU state (struct rcu_data). */
export const RCU_DATA = defineStruct("rcu_data", [
  /** Protects cblist; taken by this CPU and by any CPU invoking its callbacks. */
  { name: "nocb_lock", type: SPINLOCK_T },
  { name: "cblist", type: RCU_SEGCBLIST, guard: "rcu_data.nocb_lock" },
  /** Callbacks ever queued here / invoked from here: rcu_barrier compares the two. */
  { name: "n_cbs_queued", type: "i32", guard: "atomic" },
  { name: "n_cbs_invoked", type: "i32", guard: "atomic" },
  /** 1 + the CPU invoking this list's callbacks (its rcuo kthread's stand-in), 0 when none. */
  { name: "nocb_runner", type: "i32", guard: "atomic" },
  /** Set by a CPU that found the list claimed: the runner looks again before it lets go. */
  { name: "nocb_rerun", type: "i32", guard: "atomic" },
  /** This CPU's reader counter when the grace period in progress started. */
  { name: "gp_ctr_snap", type: "i32", guard: "rcu_node_0" },
  /** 1 while the grace period in progress waits for this CPU. */
  { name: "qs_pending", type: "i32", guard: "rcu_node_0" },
  /** gp_seq when this CPU last looked for ready callbacks. */
  { name: "swept_gp_seq", type: "i32", guard: "owner" },
]);
const rcu_data = DEFINE_PER_CPU("rcu_data", RCU_DATA);

/** Sched points between two rcu_check_callbacks runs on a CPU (the scheduling-clock tick's stand-in). */
const RCU_CHECK_PERIOD = 256;
/** Polls a waiter makes before it sleeps between polls. */
const RCU_WAIT_SPINS = 256;
/** A sleeping waiter polls again at least this often: a reader's unlock does not notify. */
const RCU_WAIT_SLICE_MS = 1;

const LOCK = RCU_STATE.off.lock;
const NOCB_LOCK = RCU_DATA.off.nocb_lock;
const CBLIST = RCU_DATA.off.cblist;

function gpSeqIdx(): number {
  return (rcu_state.ptr + RCU_STATE.off.gp_seq) >> 2;
}
function readerCtrIdx(cpu: number): number {
  return (per_cpu_ptr(rcu_reader, cpu) + RCU_READER.off.ctr) >> 2;
}
function readerNeedQsIdx(cpu: number): number {
  return (per_cpu_ptr(rcu_reader, cpu) + RCU_READER.off.need_qs) >> 2;
}
function rdpIdx(rdp: number, off: number): number {
  return (rdp + off) >> 2;
}

/** rcu_get_gp_seq (v4.19): the current grace-period sequence number. */
export function rcu_get_gp_seq(): number {
  return Atomics.load(I32, gpSeqIdx());
}

/*** Grace-period state machine (rcu_gp_kthread, polled) ***/

/** rcu_start_this_gp (v4.19): make sure grace periods run until gp_seq reaches `snap`. */
function rcu_start_this_gp(snap: number): void {
  const i = (rcu_state.ptr + RCU_STATE.off.gp_seq_needed) >> 2;
  sched_point(SP_ATOMIC);
  for (;;) {
    const cur = Atomics.load(I32, i);
    if (ULONG_CMP_GE(cur, snap) || Atomics.compareExchange(I32, i, cur, snap) === cur) return;
  }
}

/**
 * rcu_gp_init (v4.19): start a grace period; note which CPUs are in a reader
 * epoch and ask each of them for a quiescent state at its outermost
 * rcu_read_unlock (need_qs, after the counter's load: see rcu_qs).
 */
function rcu_gp_init(): void {
  const g = gpSeqIdx();
  // SC store, then SC loads of the counters: every updater that read gp_seq before
  // this store unlinked its records before these snapshots (see rcupdate.ts).
  Atomics.store(I32, g, rcu_seq_start(I32[g]!));
  if (tracing) trace_rcu_gp_start(I32[g]!);
  let left = 0;
  for (let cpu = 0, n = num_online_cpus(); cpu < n; cpu++) {
    const rdp = per_cpu_ptr(rcu_data, cpu);
    const ctr = Atomics.load(I32, readerCtrIdx(cpu));
    const inside = ctr & 1;
    I32[rdpIdx(rdp, RCU_DATA.off.gp_ctr_snap)] = ctr;
    I32[rdpIdx(rdp, RCU_DATA.off.qs_pending)] = inside;
    if (inside) Atomics.store(I32, readerNeedQsIdx(cpu), 1);
    left += inside;
  }
  I32[(rcu_state.ptr + RCU_STATE.off.qs_left) >> 2] = left;
}

/**
 * rcu_gp_fqs (v4.19, with rcu_implicit_dynticks_qs): a CPU the grace period
 * waits for has passed a quiescent state once its reader counter differs from
 * the snapshot (that epoch ended). Returns true when no CPU is left.
 */
function rcu_gp_fqs(): boolean {
  const leftIdx = (rcu_state.ptr + RCU_STATE.off.qs_left) >> 2;
  let left = I32[leftIdx]!;
  for (let cpu = 0, n = num_online_cpus(); left > 0 && cpu < n; cpu++) {
    const rdp = per_cpu_ptr(rcu_data, cpu);
    const pending = rdpIdx(rdp, RCU_DATA.off.qs_pending);
    if (I32[pending] === 0) continue;
    // SC load: observing the epoch-ending store orders the epoch's reads before the grace period's end.
    if (Atomics.load(I32, readerCtrIdx(cpu)) !== I32[rdpIdx(rdp, RCU_DATA.off.gp_ctr_snap)]) {
      I32[pending] = 0;
      left--;
    }
  }
  I32[leftIdx] = left;
  return left === 0;
}

/** rcu_gp_cleanup (v4.19): end the grace period and wake the CPUs sleeping on gp_seq. */
function rcu_gp_cleanup(): void {
  const g = gpSeqIdx();
  if (tracing) trace_rcu_gp_end(I32[g]!);
  Atomics.store(I32, g, rcu_seq_endval(I32[g]!));
  if (Atomics.load(I32, (rcu_state.ptr + RCU_STATE.off.gp_waiters) >> 2) !== 0) sched_wake(g);
}

/**
 * One step of the grace-period kthread, without blocking: scan the grace
 * period in progress (ending it when no CPU is left), then start the next one
 * if some callback or waiter needs it. A CPU that finds the lock taken leaves
 * the step to its holder.
 */
function rcu_gp_poll(): void {
  const g = gpSeqIdx();
  const neededIdx = (rcu_state.ptr + RCU_STATE.off.gp_seq_needed) >> 2;
  const s = Atomics.load(I32, g);
  if (rcu_seq_state(s) === 0 && ULONG_CMP_GE(s, Atomics.load(I32, neededIdx))) return;
  const lock = rcu_state.ptr + LOCK;
  if (!spin_trylock(lock)) return;
  if (rcu_seq_state(I32[g]!) !== 0 && rcu_gp_fqs()) rcu_gp_cleanup();
  if (rcu_seq_state(I32[g]!) === 0 && ULONG_CMP_LT(I32[g]!, Atomics.load(I32, neededIdx))) {
    rcu_gp_init();
    if (rcu_gp_fqs()) rcu_gp_cleanup();
  }
  spin_unlock(lock);
}

/*** Callbacks ***/

/** rcu_accelerate_cbs (v4.19): give new callbacks the grace period that will cover them, and request it. */
function rcu_accelerate_cbs(rdp: number): void {
  const snap = rcu_seq_snap(Atomics.load(I32, gpSeqIdx()));
  if (rcu_segcblist_accelerate(rdp + CBLIST, snap)) rcu_start_this_gp(snap);
}

/** rcu_advance_cbs (v4.19): move callbacks whose grace period ended to DONE, then accelerate the rest. */
function rcu_advance_cbs(rdp: number): void {
  rcu_segcblist_advance(rdp + CBLIST, Atomics.load(I32, gpSeqIdx()));
  rcu_accelerate_cbs(rdp);
}

/** __call_rcu (v4.19): queue `head` on this CPU's list; `func` is a function id or a kfree_rcu offset. */
function __call_rcu(head: number, func: number): void {
  sched_point(SP_RCU);
  // Not yet reachable by any other CPU: the lock below publishes it.
  I32[(head + RCU_HEAD.off.func) >> 2] = func;
  const rdp = this_cpu_ptr(rcu_data);
  const flags = spin_lock_irqsave(rdp + NOCB_LOCK);
  rcu_segcblist_enqueue(rdp + CBLIST, head);
  Atomics.add(I32, rdpIdx(rdp, RCU_DATA.off.n_cbs_queued), 1);
  rcu_accelerate_cbs(rdp);
  spin_unlock_irqrestore(rdp + NOCB_LOCK, flags);
}

/**
 * call_rcu (v4.19): invoke kernel function `func` (a defineKernelFn id) with
 * `head` after a grace period that starts after this call. `head` is the
 * rcu_head embedded in the record; the callback finds the record from it.
 */
export function call_rcu(head: number, func: number): void {
  if (__is_kfree_rcu_offset(func))
    throw new KernelBug(`call_rcu: function id 0x${(func >>> 0).toString(16)} collides with a kfree_rcu offset`);
  __call_rcu(head, func);
}

/**
 * kfree_rcu (v4.19): kfree the kmalloc'ed record `ptr` after a grace period;
 * `headOffset` is the offset of its rcu_head (below 4096, as in the kernel).
 */
export function kfree_rcu(ptr: number, headOffset: number): void {
  if (!__is_kfree_rcu_offset(headOffset)) throw new KernelBug(`kfree_rcu: rcu_head offset ${headOffset} >= 4096`);
  __call_rcu(ptr + headOffset, headOffset);
}

/** Advance `rdp`'s list and invoke its ready callbacks until none is left; the caller is its runner. */
function rcu_invoke_ready_cbs(rdp: number): void {
  const invoked = rdpIdx(rdp, RCU_DATA.off.n_cbs_invoked);
  for (;;) {
    const flags = spin_lock_irqsave(rdp + NOCB_LOCK);
    rcu_advance_cbs(rdp);
    let rhp = rcu_segcblist_extract_done_cbs(rdp + CBLIST);
    spin_unlock_irqrestore(rdp + NOCB_LOCK, flags);
    if (rhp === 0) return;
    let n = 0;
    while (rhp !== 0) {
      // The chain is ours since the extraction; read the link before the callback frees the record.
      const next = I32[(rhp + RCU_HEAD.off.next) >> 2]!;
      __rcu_reclaim(rhp);
      rhp = next;
      n++;
    }
    sched_point(SP_ATOMIC);
    Atomics.add(I32, invoked, n);
  }
}

/**
 * rcu_do_batch (v4.19, as the rcuo kthread of CPU `cpu` runs it): claim
 * `cpu`'s list, invoke its ready callbacks, let go. A CPU that finds the list
 * claimed sets nocb_rerun first, so the runner, which checks it after letting
 * go (SC store then load), never leaves behind callbacks that were ready.
 */
function rcu_do_batch(cpu: number): void {
  const rdp = per_cpu_ptr(rcu_data, cpu);
  const runner = rdpIdx(rdp, RCU_DATA.off.nocb_runner);
  const rerun = rdpIdx(rdp, RCU_DATA.off.nocb_rerun);
  const me = smp_processor_id() + 1;
  for (;;) {
    Atomics.store(I32, rerun, 1);
    sched_point(SP_ATOMIC);
    if (Atomics.compareExchange(I32, runner, 0, me) !== 0) return;
    Atomics.store(I32, rerun, 0);
    try {
      rcu_invoke_ready_cbs(rdp);
    } finally {
      Atomics.store(I32, runner, 0);
    }
    if (Atomics.load(I32, rerun) === 0) return;
  }
}

/** Does CPU `cpu`'s list hold callbacks not yet invoked? */
function rcu_cbs_pending(cpu: number): boolean {
  const rdp = per_cpu_ptr(rcu_data, cpu);
  return (
    Atomics.load(I32, rdpIdx(rdp, RCU_DATA.off.n_cbs_queued)) !==
    Atomics.load(I32, rdpIdx(rdp, RCU_DATA.off.n_cbs_invoked))
  );
}

/**
 * rcu_process_callbacks (v4.19, RCU_SOFTIRQ): poll the grace period; once
 * gp_seq moved since this CPU last looked, invoke every CPU's ready callbacks,
 * its own first.
 */
const rcu_process_callbacks = defineKernelFn("rcu_process_callbacks", () => {
  rcu_gp_poll();
  const swept = rdpIdx(this_cpu_ptr(rcu_data), RCU_DATA.off.swept_gp_seq);
  const seq = Atomics.load(I32, gpSeqIdx());
  if (seq === I32[swept]) return;
  I32[swept] = seq;
  const me = smp_processor_id();
  const n = num_online_cpus();
  for (let i = 0; i < n; i++) {
    const cpu = (me + i) % n;
    if (rcu_cbs_pending(cpu)) rcu_do_batch(cpu);
  }
});

/**
 * rcu_check_callbacks (v4.19, from the scheduling-clock interrupt): the sched
 * point slow path. Outside a read-side section this is a quiescent state.
 * Then RCU_SOFTIRQ is raised and, as the tick's irq_exit would, run now when
 * interrupts are on and this CPU is not in interrupt context (do_softirq
 * checks that); otherwise it waits for the next irq_exit or local_bh_enable.
 */
function rcu_check_callbacks(): void {
  if (rcu_preempt_depth() === 0) rcu_qs();
  raise_softirq(RCU_SOFTIRQ);
  if (!irqs_disabled()) do_softirq();
}

/*** Waiting for grace periods and callbacks ***/

/**
 * The checks at the top of a primitive that waits for a grace period: inside
 * a read-side section it would wait for itself forever (BUG, not a hang); it
 * may sleep (might_sleep reports atomic context). Then this CPU, about to
 * block, is quiescent: its reader epoch ends.
 */
function rcu_might_wait(what: string): void {
  const cpu = smp_processor_id();
  if (rcu_preempt_depth() > 0) {
    const text = `Illegal ${what}() in RCU read-side critical section on CPU#${cpu}: the grace period would wait for this CPU forever`;
    reportBug("rcu", text);
    throw new KernelBug(text);
  }
  might_sleep();
  rcu_qs();
}

/**
 * The RCU CPU stall warning (kernel/rcu/tree.c print_other_cpu_stall, v4.19), fatal here: the wait would never end.
 * `note` says whether the limit was scaled for an oversubscribed host (src/sched/watchdog_clock.ts).
 */
function rcu_stall(what: string, waited: number, note: string): never {
  const inside: number[] = [];
  for (let cpu = 0, n = num_online_cpus(); cpu < n; cpu++)
    if (Atomics.load(I32, readerCtrIdx(cpu)) & 1) inside.push(cpu);
  const text =
    `INFO: rcu_preempt detected stalls on CPUs/tasks: { ${inside.join(" ")} } ` +
    `(detected by ${smp_processor_id()}, ${what} waited ${Math.round(waited)} ms, gp_seq ${rcu_get_gp_seq()})${note}`;
  reportBug("rcu", text);
  throw new KernelBug(text);
}

/**
 * Wait until `step` (which may advance callbacks) says the wait is over,
 * polling the grace period meanwhile: spin first, then sleep on gp_seq in
 * short slices (a grace period's end wakes the sleepers); check the machine
 * stop word and the stall watchdog between slices.
 */
function rcu_wait(what: string, step: () => boolean): void {
  const g = gpSeqIdx();
  const waiters = (rcu_state.ptr + RCU_STATE.off.gp_waiters) >> 2;
  let start = 0;
  for (let i = 0; ; i++) {
    rcu_gp_poll();
    if (step()) return;
    sched_point(SP_SPIN);
    if (machineStopping()) throw new MachineStopped();
    // Deterministic mode: the grace period needs the others' quiescent states, so let them run.
    if (schedDeterministic) {
      sched_yield();
      continue;
    }
    if (i < RCU_WAIT_SPINS) continue;
    if (start === 0) start = monotonicMs();
    const s = Atomics.load(I32, g);
    // Counted before the re-check: a grace period that ends after it sees us and notifies.
    Atomics.add(I32, waiters, 1);
    if (!step()) Atomics.wait(I32, g, s, RCU_WAIT_SLICE_MS);
    Atomics.sub(I32, waiters, 1);
    const waited = monotonicMs() - start;
    const { watchdogMs, cpus } = theArena().config;
    const limit = watchdogExpired(waited, watchdogMs, cpus);
    if (limit !== null) rcu_stall(what, waited, limit.note);
  }
}

/**
 * synchronize_rcu (v4.19): return once a full grace period has elapsed, i.e.
 * every read-side section that was running when it was called has ended.
 * This CPU drives the grace period itself (the polled form of wait_rcu_gp).
 */
export function synchronize_rcu(): void {
  rcu_might_wait("synchronize_rcu");
  if (tracing) trace_graph_entry(TF_SYNCHRONIZE_RCU, 0, 0);
  sched_point(SP_RCU);
  const snap = rcu_seq_snap(Atomics.load(I32, gpSeqIdx()));
  rcu_start_this_gp(snap);
  const g = gpSeqIdx();
  rcu_wait("synchronize_rcu", () => rcu_seq_done(Atomics.load(I32, g), snap));
  if (tracing) trace_graph_return(TF_SYNCHRONIZE_RCU, 0);
}

/**
 * rcu_barrier (v4.19): return once every callback queued (on any CPU) before
 * the call has been invoked. Instead of entraining a barrier callback on each
 * CPU's list it waits for each list's invoked count to reach the queued count
 * it saw: each list is invoked in FIFO order by one runner at a time, so the
 * count reaching it means exactly those callbacks ran, and concurrent barriers
 * need no barrier_mutex. While waiting it invokes ready callbacks of any CPU
 * itself, so idle CPUs' callbacks do not hold it up.
 */
export function rcu_barrier(): void {
  rcu_might_wait("rcu_barrier");
  if (tracing) trace_graph_entry(TF_RCU_BARRIER, 0, 0);
  sched_point(SP_RCU);
  const n = num_online_cpus();
  const want: number[] = [];
  for (let cpu = 0; cpu < n; cpu++)
    want.push(Atomics.load(I32, rdpIdx(per_cpu_ptr(rcu_data, cpu), RCU_DATA.off.n_cbs_queued)));
  rcu_wait("rcu_barrier", () => {
    let done = true;
    for (let cpu = 0; cpu < n; cpu++) {
      const invoked = Atomics.load(I32, rdpIdx(per_cpu_ptr(rcu_data, cpu), RCU_DATA.off.n_cbs_invoked));
      if (ULONG_CMP_GE(invoked, want[cpu]!)) continue;
      done = false;
      preempt_count_add(SOFTIRQ_OFFSET);
      try {
        rcu_do_batch(cpu);
      } finally {
        preempt_count_sub(SOFTIRQ_OFFSET);
      }
    }
    return done;
  });
  if (tracing) trace_graph_return(TF_RCU_BARRIER, 0);
}

/** Harness: callbacks queued on any CPU and not yet invoked (leak checks, tests). */
export function rcuCallbacksPending(): number {
  let pending = 0;
  for (let cpu = 0, n = num_online_cpus(); cpu < n; cpu++) {
    const rdp = per_cpu_ptr(rcu_data, cpu);
    pending +=
      (Atomics.load(I32, rdpIdx(rdp, RCU_DATA.off.n_cbs_queued)) -
        Atomics.load(I32, rdpIdx(rdp, RCU_DATA.off.n_cbs_invoked))) |
      0;
  }
  return pending;
}

/*** Boot and CPU bring-up ***/

/** The arena this thread's rcu_check_callbacks hook serves: a thread that binds to a new machine drops it. */
let hookedTo: SharedArrayBuffer | null = null;

/**
 * rcu_cpu_starting (v4.19): runs on CPU `cpu` as it comes online; hooks RCU's
 * quiescent-state reports and callback processing into its sched points. The
 * main thread does not call it at boot (it must not act as CPU 0 while the
 * CPUs run); a unit test running kernel code there calls it after start_kernel.
 */
export function rcu_cpu_starting(cpu: number): void {
  if (cpu !== smp_processor_id()) throw new Error(`rcu_cpu_starting(${cpu}) runs on CPU${smp_processor_id()}`);
  // Nested: the tick lands inside work items and softirqs (never in its own softirq: no reentry).
  if (hookedTo === null) addSchedSlowPath(rcu_check_callbacks, RCU_CHECK_PERIOD, true);
  hookedTo = theArena().sab;
}

onSetCurrentCpu(() => {
  if (hookedTo !== null && hookedTo !== theArena().sab) {
    removeSchedSlowPath(rcu_check_callbacks);
    hookedTo = null;
  }
});

/**
 * rcu_init (v4.19, with rcu_init_one and rcu_boot_init_percpu_data): the
 * grace-period state and every CPU's callback list. gp_seq starts 300 grace
 * periods before it wraps, as the kernel's does, so wrap handling is exercised.
 */
export function rcu_init(): void {
  const st = rcu_state.ptr;
  spin_lock_init(st + LOCK, "rcu_node_0");
  open_softirq(RCU_SOFTIRQ, rcu_process_callbacks);
  const seq0 = (-300 << RCU_SEQ_CTR_SHIFT) | 0;
  I32[(st + RCU_STATE.off.gp_seq) >> 2] = seq0;
  I32[(st + RCU_STATE.off.gp_seq_needed) >> 2] = seq0;
  for (let cpu = 0, n = num_online_cpus(); cpu < n; cpu++) {
    const rdp = per_cpu_ptr(rcu_data, cpu);
    spin_lock_init(rdp + NOCB_LOCK, "rcu_data.nocb_lock");
    rcu_segcblist_init(rdp + CBLIST);
    I32[rdpIdx(rdp, RCU_DATA.off.swept_gp_seq)] = seq0;
  }
}
