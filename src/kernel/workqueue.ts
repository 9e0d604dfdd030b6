/**
 * Workqueues (kernel/workqueue.c, v4.19), reduced to what the kernel's
 * schedule_work users see: the per-CPU system_wq, one worker pool per CPU.
 *
 * A work_struct is queued on a CPU's pool (its worklist, under pool->lock) by
 * schedule_work / schedule_work_on, from any context, interrupts included; its
 * PENDING bit, claimed with Atomics, makes a second queueing a no-op until the
 * work starts running. The pool's worker (the CPU's kworker) runs the items in
 * order, in process context, PENDING cleared before each call — so a work may
 * requeue itself — and a work never runs on two CPUs at once: queueing a work
 * that still runs elsewhere puts it behind that run (__queue_work).
 *
 * When the kworker runs (config.workqueue):
 * - "auto": at this CPU's workload safe points (sched points of kind SP_OP)
 *   when no lock is held, preemption and interrupts are enabled;
 * - "explicit": only when asked — run_pending_work, flush_work,
 *   flush_scheduled_work (vmsim exec: deferred work runs when the script says).
 *
 * One worker per pool, and a CPU parked between workloads runs nothing. So a
 * flusher whose target pool has no worker running becomes that pool's worker
 * itself and runs its items up to the flushed one, as an unbound worker (or
 * the kernel's rescuer) would: the work then runs on the flusher's CPU.
 * A flush waits only while another CPU is the pool's worker, which is running
 * the items in order and so reaches the flush's barrier. A work item that
 * flushes a later item of its own pool runs the items up to it nested, as the
 * second worker the kernel wakes when the first sleeps (v6.12's purge helpers
 * need it); one that flushes itself would wait for itself: that is reported.
 */
import { DEFINE_PER_CPU, I32, per_cpu_ptr, theArena } from "../shared/arena.js";
import { callKernelFn, defineKernelFn, kernelFnName } from "../shared/functab.js";
import { KernelBug, reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, sched_point } from "../sched/sched_point.js";
import { sched_wait, sched_wake } from "../sched/sched_det.js";
import { INIT_LIST_HEAD, LIST_HEAD, list_add_tail, list_del_init, list_empty, list_next } from "../lib/list.js";
import { lock_wait_check } from "../locks/lock_wait.js";
import { lockdep_depth, lockdep_print_held_locks } from "../locks/lockdep.js";
import { might_sleep } from "../locks/might_sleep.js";
import {
  SPINLOCK_T,
  spin_lock,
  spin_lock_init,
  spin_lock_irq,
  spin_unlock,
  spin_unlock_irq,
} from "../locks/spinlock.js";
import { for_each_possible_cpu } from "../percpu/percpu.js";
import { in_atomic, irqs_disabled, local_irq_restore, local_irq_save, preempt_count } from "../percpu/preempt.js";
import { onSetCurrentCpu, smp_processor_id, this_cpu_ptr } from "../shared/smp.js";

/*** struct work_struct ***/

/** work_struct->data bits (include/linux/workqueue.h, v4.19). */
export const WORK_STRUCT_PENDING = 1 << 0;
/** The pool bits name the pool the work is queued on (the kernel stores a pwq pointer there). */
export const WORK_STRUCT_PWQ = 1 << 2;
/** Off queue, data >>> WORK_OFFQ_POOL_SHIFT is the pool the work last ran on. */
export const WORK_OFFQ_POOL_SHIFT = 5;
/** The pool bits of a work that was never queued (WORK_STRUCT_NO_POOL). */
export const WORK_OFFQ_POOL_NONE = (1 << (32 - WORK_OFFQ_POOL_SHIFT)) - 1;
const WORK_STRUCT_NO_POOL = WORK_OFFQ_POOL_NONE << WORK_OFFQ_POOL_SHIFT;

/** struct work_struct (v4.19). */
export const WORK_STRUCT = defineStruct("work_struct", [
  /** PENDING | PWQ | pool id << WORK_OFFQ_POOL_SHIFT; PENDING is claimed with Atomics, read without a lock. */
  { name: "data", type: "i32", guard: "atomic" },
  { name: "entry", type: LIST_HEAD, guard: "pool->lock" },
  /** work_func_t, a kernel function id; called with the work's address. */
  { name: "func", type: "i32", guard: "init" },
]);
const W = WORK_STRUCT.off;

/** INIT_WORK(work, func) (v4.19): an idle work item that will run kernel function `func` (a defineKernelFn id). */
export function INIT_WORK(work: number, func: number): void {
  Atomics.store(I32, (work + W.data) >> 2, WORK_STRUCT_NO_POOL);
  INIT_LIST_HEAD(work + W.entry);
  I32[(work + W.func) >> 2] = func;
}

/** work_pending(work) (v4.19): queued and not yet started. */
export function work_pending(work: number): boolean {
  return (Atomics.load(I32, (work + W.data) >> 2) & WORK_STRUCT_PENDING) !== 0;
}

/*** struct worker_pool ***/

/** struct worker_pool (v4.19) of a per-CPU pool with one worker, that worker's state folded in. */
export const WORKER_POOL = defineStruct("worker_pool", [
  { name: "lock", type: SPINLOCK_T },
  { name: "cpu", type: "i32", guard: "init" },
  { name: "id", type: "i32", guard: "init" },
  { name: "worklist", type: LIST_HEAD, guard: "pool->lock" },
  /** CPU running this pool's items now, -1 when none: the owner's kworker, or a flusher. */
  { name: "worker_cpu", type: "i32", guard: "pool->lock" },
  /** worker->current_work and current_func: the item running now (find_worker_executing_work). */
  { name: "current_work", type: "ptr", guard: "pool->lock" },
  { name: "current_func", type: "i32", guard: "pool->lock" },
]);
const P = WORKER_POOL.off;
const cpu_worker_pools = DEFINE_PER_CPU("cpu_worker_pools", WORKER_POOL);

/** struct wq_barrier (v4.19): flush's marker, queued right behind the work it waits for. */
export const WQ_BARRIER = defineStruct("wq_barrier", [
  { name: "work", type: WORK_STRUCT },
  /** struct completion done: set by the barrier's own work function. */
  { name: "done", type: "i32", guard: "atomic" },
]);
const B = WQ_BARRIER.off;

/** Nested flushes a CPU may have in flight (a work item run by a flusher may flush too). */
const WQ_FLUSH_DEPTH = 4;
/** The kernel keeps a flush's barrier on the flusher's stack; here each CPU has a small stack of them. */
export const WQ_FLUSHER = defineStruct("wq_flusher", [
  { name: "depth", type: "i32", guard: "owner" },
  { name: "barr", type: WQ_BARRIER, count: WQ_FLUSH_DEPTH },
]);
const wq_flusher = DEFINE_PER_CPU("wq_flusher", WQ_FLUSHER);

/* This CPU's pool and flusher, cached: the auto kworker peeks at the worklist at every safe point. */
let myPool = 0;
let myFlusher = 0;
onSetCurrentCpu(() => {
  myPool = this_cpu_ptr(cpu_worker_pools);
  myFlusher = this_cpu_ptr(wq_flusher);
});

/** The pool of CPU `cpu` (per_cpu(cpu_worker_pools, cpu)). */
function cpu_pool(cpu: number): number {
  return per_cpu_ptr(cpu_worker_pools, cpu);
}

/** workqueue_init_early (v4.19): every CPU's pool, empty and without a running worker. */
export function workqueue_init_early(): void {
  for (const cpu of for_each_possible_cpu()) {
    const pool = cpu_pool(cpu);
    spin_lock_init(pool + P.lock, "&pool->lock");
    I32[(pool + P.cpu) >> 2] = cpu;
    I32[(pool + P.id) >> 2] = cpu;
    INIT_LIST_HEAD(pool + P.worklist);
    I32[(pool + P.worker_cpu) >> 2] = -1;
    I32[(pool + P.current_work) >> 2] = 0;
    I32[(pool + P.current_func) >> 2] = 0;
  }
}

/** get_work_pool (v4.19): the pool `work` is queued on or last ran on, 0 when it never was queued. */
function get_work_pool(work: number): number {
  const id = Atomics.load(I32, (work + W.data) >> 2) >>> WORK_OFFQ_POOL_SHIFT;
  return id === WORK_OFFQ_POOL_NONE ? 0 : cpu_pool(id);
}

/*** Queueing ***/

/** insert_work (v4.19): link `work`, which we own (PENDING), before `head` on `pool`. Under pool->lock. */
function insert_work(pool: number, work: number, head: number): void {
  Atomics.store(
    I32,
    (work + W.data) >> 2,
    (I32[(pool + P.id) >> 2]! << WORK_OFFQ_POOL_SHIFT) | WORK_STRUCT_PWQ | WORK_STRUCT_PENDING,
  );
  list_add_tail(work + W.entry, head);
}

/** __queue_work (v4.19): queue on `cpu`'s pool, or behind the run of `work` on the pool where it still runs. */
function __queue_work(cpu: number, work: number): void {
  let pool = cpu_pool(cpu);
  const last = get_work_pool(work);
  if (last !== 0 && last !== pool) {
    spin_lock(last + P.lock);
    if (I32[(last + P.current_work) >> 2] === work) {
      pool = last; // still running there: queue behind it, so it never runs on two CPUs at once
    } else {
      spin_unlock(last + P.lock);
      spin_lock(pool + P.lock);
    }
  } else {
    spin_lock(pool + P.lock);
  }
  if (!list_empty(work + W.entry)) {
    spin_unlock(pool + P.lock);
    reportBug("WARN", `WARNING: __queue_work: ${kernelFnName(I32[(work + W.func) >> 2]!)} is already on a list`);
    return;
  }
  insert_work(pool, work, pool + P.worklist);
  spin_unlock(pool + P.lock);
}

/**
 * queue_work_on(cpu, system_wq, work) (v4.19): queue `work` on CPU `cpu`'s
 * pool. False when it was already pending. Any context, interrupts included.
 */
export function schedule_work_on(cpu: number, work: number): boolean {
  if (!(cpu >= 0 && cpu < theArena().config.cpus)) throw new RangeError(`schedule_work_on: no CPU ${cpu}`);
  sched_point(SP_ATOMIC);
  // PENDING is claimed and the work queued with interrupts off: an interrupt here could not queue it half-way.
  const flags = local_irq_save();
  let ret = false;
  if ((Atomics.or(I32, (work + W.data) >> 2, WORK_STRUCT_PENDING) & WORK_STRUCT_PENDING) === 0) {
    __queue_work(cpu, work);
    ret = true;
  }
  local_irq_restore(flags);
  return ret;
}

/** schedule_work(work) (v4.19): queue on this CPU's pool; false when already pending. */
export function schedule_work(work: number): boolean {
  return schedule_work_on(smp_processor_id(), work);
}

/*** The worker ***/

/** The work items this CPU is running as a pool's worker, outermost first (its kworker's call stack). */
const executing: number[] = [];

/**
 * process_one_work (v4.19): runs `work`, the head of `pool`'s list, in process
 * context on this CPU, the pool's worker. Called and returns with pool->lock
 * held (interrupts off); drops it around the call.
 */
function process_one_work(pool: number, work: number): void {
  const func = I32[(work + W.func) >> 2]!;
  I32[(pool + P.current_work) >> 2] = work;
  I32[(pool + P.current_func) >> 2] = func;
  list_del_init(work + W.entry);
  // set_work_pool_and_clear_pending: PENDING off before the call, so the function may requeue its work.
  Atomics.store(I32, (work + W.data) >> 2, I32[(pool + P.id) >> 2]! << WORK_OFFQ_POOL_SHIFT);
  spin_unlock_irq(pool + P.lock);
  // A nested worker (worker_run_nested) runs inside an item that holds its own locks: compare with them.
  const depth = lockdep_depth();
  executing.push(work);
  try {
    callKernelFn(func, work);
  } finally {
    executing.pop();
  }
  if (in_atomic() || lockdep_depth() !== depth)
    reportBug(
      "WARN",
      `BUG: workqueue leaked lock or atomic: kworker/${I32[(pool + P.cpu) >> 2]}/0x${preempt_count().toString(16).padStart(8, "0")}\n` +
        `     last function: ${kernelFnName(func)}\n${lockdep_print_held_locks()}`,
    );
  spin_lock_irq(pool + P.lock);
  I32[(pool + P.current_work) >> 2] = 0;
  I32[(pool + P.current_func) >> 2] = 0;
}

/**
 * worker_thread's loop (v4.19): unless another CPU is `pool`'s worker, become
 * it and run items from the head until the list is empty or the completion at
 * I32 index `until` (0: none) is done. Returns the items run, -1 when another
 * CPU is the worker.
 */
function worker_run(pool: number, until: number): number {
  spin_lock_irq(pool + P.lock);
  if (I32[(pool + P.worker_cpu) >> 2] !== -1) {
    spin_unlock_irq(pool + P.lock);
    return -1;
  }
  I32[(pool + P.worker_cpu) >> 2] = smp_processor_id();
  let n = 0;
  const head = pool + P.worklist;
  while (!list_empty(head) && (until === 0 || Atomics.load(I32, until) === 0)) {
    process_one_work(pool, list_next(head) - W.entry);
    n++;
  }
  I32[(pool + P.worker_cpu) >> 2] = -1;
  spin_unlock_irq(pool + P.lock);
  return n;
}

/**
 * A second worker of `pool`, whose worker is this CPU, inside one of its
 * items that flushes a later one: the kernel's concurrency management wakes
 * another worker of the pool when the running one sleeps (in flush_work), so
 * the items ahead of the barrier at I32 index `until` run here, nested.
 */
function worker_run_nested(pool: number, until: number): void {
  spin_lock_irq(pool + P.lock);
  const current_work = I32[(pool + P.current_work) >> 2]!;
  const current_func = I32[(pool + P.current_func) >> 2]!;
  const head = pool + P.worklist;
  for (let e = list_next(head); e !== head && Atomics.load(I32, until) === 0; ) {
    const work = e - W.entry;
    // A work never runs on two workers at once: one requeued while an outer frame runs it waits for that
    // run to end (the kernel's find_worker_executing_work), so it stays queued here.
    if (executing.includes(work)) {
      e = list_next(e);
      continue;
    }
    process_one_work(pool, work);
    e = list_next(head);
  }
  I32[(pool + P.current_work) >> 2] = current_work;
  I32[(pool + P.current_func) >> 2] = current_func;
  spin_unlock_irq(pool + P.lock);
}

/**
 * This CPU's kworker, now: runs this CPU's pending work in process context and
 * returns how many items ran (0 as well while a flusher on another CPU is
 * running them). Not from atomic context: a kworker runs only where the CPU
 * could schedule.
 */
export function run_pending_work(): number {
  if (in_atomic() || irqs_disabled()) {
    reportBug(
      "WARN",
      `BUG: scheduling while atomic: run_pending_work on CPU${smp_processor_id()}/0x${preempt_count().toString(16).padStart(8, "0")}`,
    );
    return 0;
  }
  return Math.max(0, worker_run(myPool, 0));
}

/**
 * The workqueue half of this CPU's sched-point hook, at a workload safe point
 * (SP_OP) in "auto" mode: the kworker runs when work is pending and the CPU
 * could schedule (no lock held, preemption and interrupts enabled).
 */
export function workqueueSafePoint(): void {
  // list_empty's READ_ONCE(head->next), as a plain read (an Atomics.load costs ~10 ns): a lockless
  // peek, rechecked under pool->lock; an item another CPU just queued is seen at a later point.
  if (I32[(myPool + P.worklist + LIST_HEAD.off.next) >> 2] === myPool + P.worklist) return;
  if (preempt_count() !== 0 || irqs_disabled() || lockdep_depth() !== 0) return;
  worker_run(myPool, 0);
}

/**
 * Harness: the function of the work item this CPU is running now, as any
 * pool's worker (0 when none) — what an interrupt handler interrupted. Only
 * this CPU writes the fields it reads while it is that pool's worker.
 */
export function workqueueCurrentFunc(): number {
  for (const cpu of for_each_possible_cpu()) {
    const pool = cpu_pool(cpu);
    if (I32[(pool + P.worker_cpu) >> 2] === smp_processor_id()) return I32[(pool + P.current_func) >> 2]!;
  }
  return 0;
}

/*** Flushing ***/

const wq_barrier_func = defineKernelFn("wq_barrier_func", (work: number) => {
  const done = (work - WQ_BARRIER.off.work + B.done) >> 2;
  // complete(&barr->done): the flusher owns the barrier again once it sees this.
  Atomics.store(I32, done, 1);
  sched_wake(done);
});

/** A barrier from this CPU's stack (the kernel's on-stack wq_barrier). */
function barrier_get(): number {
  const d = I32[(myFlusher + WQ_FLUSHER.off.depth) >> 2]!;
  if (d >= WQ_FLUSH_DEPTH)
    throw new KernelBug(`flush_work nested more than ${WQ_FLUSH_DEPTH} deep on CPU${smp_processor_id()}`);
  I32[(myFlusher + WQ_FLUSHER.off.depth) >> 2] = d + 1;
  return myFlusher + WQ_FLUSHER.off.barr + d * WQ_BARRIER.size;
}

function barrier_put(): void {
  I32[(myFlusher + WQ_FLUSHER.off.depth) >> 2] = I32[(myFlusher + WQ_FLUSHER.off.depth) >> 2]! - 1;
}

/** insert_wq_barrier (v4.19): queue `barr` before `head` on `pool`. Under pool->lock. */
function insert_wq_barrier(pool: number, barr: number, head: number): void {
  INIT_WORK(barr + B.work, wq_barrier_func);
  Atomics.store(I32, (barr + B.done) >> 2, 0);
  insert_work(pool, barr + B.work, head);
}

/**
 * A flush that would wait for this CPU itself: it is the pool's worker, inside
 * the very item it flushes (a later item is run nested, see worker_run_nested).
 */
function flush_self_deadlock(pool: number, what: string): boolean {
  if (I32[(pool + P.worker_cpu) >> 2] !== smp_processor_id()) return false;
  reportBug(
    "lockdep",
    `WARNING: possible recursive locking detected\nCPU${smp_processor_id()} runs ${what} from work ${kernelFnName(I32[(pool + P.current_func) >> 2]!)} ` +
      `of the same pool (kworker/${I32[(pool + P.cpu) >> 2]}), whose one worker is this CPU: it would wait for itself`,
  );
  return true;
}

/**
 * wait_for_completion(&barr->done) for a barrier queued on `pool`: waits while
 * another CPU is the pool's worker, and becomes the worker when none is.
 */
function wait_for_barrier(pool: number, barr: number, what: string): void {
  const done = (barr + B.done) >> 2;
  const holder = () => `${what}: kworker/${I32[(pool + P.cpu) >> 2]} runs on CPU#${I32[(pool + P.worker_cpu) >> 2]}`;
  while (Atomics.load(I32, done) === 0) {
    // This CPU is the pool's worker (the flush comes from one of its items): run the items ahead, nested.
    if (I32[(pool + P.worker_cpu) >> 2] === smp_processor_id()) worker_run_nested(pool, done);
    // Another CPU is running the items in order and will reach the barrier; it notifies done.
    else if (worker_run(pool, done) < 0) sched_wait(done, 0, 1, pool);
    lock_wait_check(pool, holder);
  }
}

/**
 * A flush may sleep (might_sleep reports it from atomic context). From there
 * vmsim does not wait at all: the kernel would sleep in atomic context, and
 * running work items here would run them inside the caller's critical section.
 */
function flush_may_sleep(): boolean {
  might_sleep();
  return !in_atomic() && !irqs_disabled();
}

/**
 * start_flush_work (v4.19): queue a barrier right behind `work` (or first in
 * line when it is running). False when it is neither queued nor running.
 */
function start_flush_work(work: number, barr: number): number {
  const pool = get_work_pool(work);
  if (pool === 0) return 0;
  spin_lock_irq(pool + P.lock);
  const data = Atomics.load(I32, (work + W.data) >> 2);
  let head: number;
  if (data & WORK_STRUCT_PWQ) {
    // Requeued on another pool since we read it: that queueing is after our flush began.
    if (cpu_pool(data >>> WORK_OFFQ_POOL_SHIFT) !== pool) head = 0;
    else head = list_next(work + W.entry);
  } else if (I32[(pool + P.current_work) >> 2] === work) {
    head = list_next(pool + P.worklist);
  } else {
    head = 0;
  }
  const running = I32[(pool + P.current_work) >> 2] === work;
  if (head === 0 || (running && flush_self_deadlock(pool, `flush_work(${kernelFnName(I32[(work + W.func) >> 2]!)})`))) {
    spin_unlock_irq(pool + P.lock);
    return 0;
  }
  insert_wq_barrier(pool, barr, head);
  spin_unlock_irq(pool + P.lock);
  return pool;
}

/**
 * flush_work(work) (v4.19): waits until the last queueing of `work` has
 * finished executing; true when it waited, false when the work was idle.
 */
export function flush_work(work: number): boolean {
  if (!flush_may_sleep()) return false;
  const barr = barrier_get();
  try {
    const pool = start_flush_work(work, barr);
    if (pool === 0) return false;
    wait_for_barrier(pool, barr, `flush_work(${kernelFnName(I32[(work + W.func) >> 2]!)})`);
    return true;
  } finally {
    barrier_put();
  }
}

/**
 * flush_scheduled_work (v4.19: flush_workqueue(system_wq)): waits until every
 * work item queued before the call, on every CPU, has finished. Items queued
 * meanwhile do not make it wait longer.
 */
export function flush_scheduled_work(): void {
  if (!flush_may_sleep()) return;
  const barr = barrier_get();
  try {
    for (const cpu of for_each_possible_cpu()) {
      const pool = cpu_pool(cpu);
      spin_lock_irq(pool + P.lock);
      const idle = list_empty(pool + P.worklist) && I32[(pool + P.current_work) >> 2] === 0;
      if (idle || flush_self_deadlock(pool, "flush_scheduled_work")) {
        spin_unlock_irq(pool + P.lock);
        continue;
      }
      // Behind everything queued now, and after the item running now.
      insert_wq_barrier(pool, barr, pool + P.worklist);
      spin_unlock_irq(pool + P.lock);
      wait_for_barrier(pool, barr, `flush_scheduled_work (CPU${cpu})`);
    }
  } finally {
    barrier_put();
  }
}
