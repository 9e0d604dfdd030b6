/**
 * RCU workloads, in the spirit of kernel/rcu/rcutorture.c: writers replace an
 * RCU-protected record and free the old one through RCU; readers check that
 * what they dereference was never freed. Freed slab objects are poisoned
 * (POISON_FREE), so a reader that outlives its grace period reads 0x6b6b6b6b.
 */
import { DEFINE_GLOBAL, I32, staticInit, theArena } from "../../shared/arena.js";
import { KernelBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { sched_op_point } from "../../sched/sched_point.js";
import { monotonicMs, watchdogExpired } from "../../sched/watchdog_clock.js";
import { local_irq_restore, local_irq_save } from "../../percpu/preempt.js";
import { SPINLOCK_T, spin_lock, spin_lock_init, spin_unlock } from "../../locks/spinlock.js";
import { DEFINE_MUTEX, mutex_lock, mutex_unlock } from "../../locks/mutex.js";
import { lock_is_held } from "../../locks/lockdep.js";
import { GFP_ATOMIC, GFP_KERNEL } from "../../mm/gfp.js";
import { POISON_FREE, kfree, kmalloc } from "../../mm/slab.js";
import {
  INIT_LIST_HEAD,
  LIST_HEAD,
  list_add_rcu,
  list_add_tail_rcu,
  list_del_rcu,
  list_empty,
  list_next,
  list_next_rcu,
} from "../../lib/list.js";
import {
  RCU_HEAD,
  rcu_assign_pointer,
  rcu_dereference,
  rcu_dereference_protected,
  rcu_read_lock,
  rcu_read_unlock,
} from "../../rcu/rcupdate.js";
import { kfree_rcu, rcu_barrier, rcuCallbacksPending, synchronize_rcu } from "../../rcu/tree.js";
import { handshakeSet, handshakeWait } from "../barrier.js";
import { defineWorkload } from "../workload.js";

/** A word of a freed slab object (four POISON_FREE bytes; the object's last byte is POISON_END). */
export const POISON_FREE_WORD = POISON_FREE * 0x01010101;
/** `check` = `seq` ^ this: a record whose two fields disagree was torn or reused. */
const RCU_TORTURE_MAGIC = 0x5a17c0de;

/** struct rcu_torture (rcutorture.c): the record readers find through rcu_torture_current. */
const RCU_TORTURE = defineStruct("rcu_torture", [
  { name: "rtort_rcu", type: RCU_HEAD },
  { name: "seq", type: "i32", guard: "init" },
  { name: "check", type: "i32", guard: "init" },
]);

/** An entry of the RCU-protected torture list. */
const RCU_TORTURE_ENTRY = defineStruct("rcu_torture_entry", [
  { name: "rcu", type: RCU_HEAD },
  { name: "node", type: LIST_HEAD },
  { name: "seq", type: "i32", guard: "init" },
  { name: "check", type: "i32", guard: "init" },
]);

const RCU_TORTURE_STATE = defineStruct("rcu_torture_state", [
  /** Serializes the writers of `current` and of `list`. */
  { name: "lock", type: SPINLOCK_T },
  /** rcu_torture_current: the RCU-protected pointer readers dereference. */
  { name: "current", type: "ptr", guard: "atomic" },
  { name: "list", type: LIST_HEAD, guard: "rcu_torture_lock" },
  { name: "list_len", type: "i32", guard: "rcu_torture_lock" },
  /** Writers that have finished. */
  { name: "writers_done", type: "i32", guard: "atomic" },
  /** Step of the reader/updater handshake. */
  { name: "stage", type: "i32", guard: "atomic" },
]);
const rcu_torture = DEFINE_GLOBAL("rcu_torture", RCU_TORTURE_STATE);
const S = RCU_TORTURE_STATE.off;
staticInit(() => {
  spin_lock_init(rcu_torture.ptr + S.lock, "rcu_torture_lock");
  INIT_LIST_HEAD(rcu_torture.ptr + S.list);
});

function word(p: number): number {
  return I32[p >> 2]!;
}

/** What a reader found: records read, and those that were freed (poisoned) or inconsistent. */
export interface RcuReadStats {
  reads: number;
  poisoned: number;
  torn: number;
}

/** Checks one record's (seq, check) pair as a reader sees it. */
function checkRecord(seqAddr: number, checkAddr: number, st: RcuReadStats): void {
  const seq = word(seqAddr);
  const check = word(checkAddr);
  st.reads++;
  if (seq === POISON_FREE_WORD || check === POISON_FREE_WORD) st.poisoned++;
  else if ((seq ^ RCU_TORTURE_MAGIC) !== check || word(seqAddr) !== seq) st.torn++;
}

/** A new record with a consistent (seq, check) pair. */
function newRecord(size: number, seqOff: number, checkOff: number, seq: number, gfp = GFP_KERNEL): number {
  const p = kmalloc(size, gfp);
  if (p === 0) throw new KernelBug("rcu_torture: kmalloc failed");
  I32[(p + seqOff) >> 2] = seq;
  I32[(p + checkOff) >> 2] = seq ^ RCU_TORTURE_MAGIC;
  return p;
}

/**
 * rcu_torture_writer: `updates` times, publish a new record and retire the
 * old one — kfree_rcu, or synchronize_rcu + kfree every `syncEvery`th time,
 * or (`broken`, to prove the readers' check works) a plain kfree.
 */
defineWorkload("rcu_torture_writer", (a: { id: number; updates: number; syncEvery?: number; broken?: boolean }) => {
  const lock = rcu_torture.ptr + S.lock;
  const slot = rcu_torture.ptr + S.current;
  for (let i = 1; i <= a.updates; i++) {
    const p = newRecord(RCU_TORTURE.size, RCU_TORTURE.off.seq, RCU_TORTURE.off.check, (a.id << 24) | i);
    spin_lock(lock);
    const old = rcu_dereference_protected(slot, lock_is_held(lock));
    rcu_assign_pointer(slot, p);
    spin_unlock(lock);
    if (old === 0) continue;
    if (a.broken) kfree(old);
    else if (a.syncEvery && i % a.syncEvery === 0) {
      synchronize_rcu();
      kfree(old);
    } else kfree_rcu(old, RCU_TORTURE.off.rtort_rcu);
  }
  Atomics.add(I32, (rcu_torture.ptr + S.writers_done) >> 2, 1);
  return a.updates;
});

/** rcu_torture_reader: dereference the current record until `writers` writers are done (and `minReads` reads). */
defineWorkload("rcu_torture_reader", (a: { writers: number; minReads: number }): RcuReadStats => {
  const slot = rcu_torture.ptr + S.current;
  const done = (rcu_torture.ptr + S.writers_done) >> 2;
  const st: RcuReadStats = { reads: 0, poisoned: 0, torn: 0 };
  while (st.reads < a.minReads || Atomics.load(I32, done) < a.writers) {
    rcu_read_lock();
    const p = rcu_dereference(slot);
    if (p !== 0) checkRecord(p + RCU_TORTURE.off.seq, p + RCU_TORTURE.off.check, st);
    rcu_read_unlock();
  }
  return st;
});

/** Unpublishes the last record, waits for every callback; returns the callbacks still pending (0). */
defineWorkload("rcu_torture_cleanup", () => {
  const lock = rcu_torture.ptr + S.lock;
  const slot = rcu_torture.ptr + S.current;
  spin_lock(lock);
  const old = rcu_dereference_protected(slot, lock_is_held(lock));
  rcu_assign_pointer(slot, 0);
  spin_unlock(lock);
  if (old !== 0) kfree_rcu(old, RCU_TORTURE.off.rtort_rcu);
  rcu_barrier();
  return rcuCallbacksPending();
});

/*** Handshake: one reader section against one update, step by step ***/

function setStage(v: number): void {
  handshakeSet((rcu_torture.ptr + S.stage) >> 2, v);
}

/** Waits (bounded slices, machine stop, watchdog) until the handshake reaches step `v`. */
function waitStage(v: number): void {
  handshakeWait((rcu_torture.ptr + S.stage) >> 2, v, "rcu handshake");
}

/**
 * The reader's half: dereference the current record inside a read-side
 * section, let the updater replace and free it (step 1 → 2), read the record
 * again under the torture lock, leave the section and tell the updater
 * (step 3). `unlockEarly` (the broken reader, "an unlock placed too early")
 * leaves the section and tells the updater before that last read.
 */
function rcuHandshakeReader(a: { unlockEarly?: boolean }): { before: number; after: number } {
  const lock = rcu_torture.ptr + S.lock;
  rcu_read_lock();
  const p = rcu_dereference(rcu_torture.ptr + S.current);
  const before = word(p + RCU_TORTURE.off.seq);
  setStage(1);
  waitStage(2);
  if (a.unlockEarly) {
    rcu_read_unlock();
    setStage(3);
  }
  spin_lock(lock);
  const after = word(p + RCU_TORTURE.off.seq);
  spin_unlock(lock);
  if (!a.unlockEarly) {
    rcu_read_unlock();
    setStage(3);
  }
  return { before, after };
}
defineWorkload("rcu_handshake_reader", rcuHandshakeReader);

/**
 * The updater's half: once the reader holds the record, publish a new one and
 * free the old one with kfree_rcu (or kfree when `broken`), drive RCU for
 * `ticks` sched points, let the reader look (step 2), then rcu_barrier.
 * Returns the old record's seq as read after the barrier: poisoned once freed.
 */
function rcuHandshakeUpdater(a: { broken: boolean; ticks: number }): { freedSeq: number } {
  const lock = rcu_torture.ptr + S.lock;
  const slot = rcu_torture.ptr + S.current;
  waitStage(1);
  const p = newRecord(RCU_TORTURE.size, RCU_TORTURE.off.seq, RCU_TORTURE.off.check, 0x7e57);
  spin_lock(lock);
  const old = rcu_dereference_protected(slot, lock_is_held(lock));
  rcu_assign_pointer(slot, p);
  spin_unlock(lock);
  if (a.broken) kfree(old);
  else kfree_rcu(old, RCU_TORTURE.off.rtort_rcu);
  // Grace periods and callbacks advance at these safe points; none may free `old` while the reader is inside.
  for (let i = 0; i < a.ticks; i++) sched_op_point();
  setStage(2);
  waitStage(3);
  rcu_barrier();
  return { freedSeq: word(old + RCU_TORTURE.off.seq) };
}
defineWorkload("rcu_handshake_updater", rcuHandshakeUpdater);

/** The handshake's reader or updater, as each CPU's arguments say (a deterministic run calls every CPU at once). */
defineWorkload(
  "rcu_handshake",
  (a: { reader: { unlockEarly?: boolean } } | { updater: { broken: boolean; ticks: number } }) =>
    "reader" in a ? rcuHandshakeReader(a.reader) : rcuHandshakeUpdater(a.updater),
);

/*** A CPU blocked on a mutex while another waits for a grace period ***/

/** What the blocked CPU waits for; held by the CPU that calls synchronize_rcu. */
const rcu_torture_mutex = DEFINE_MUTEX("rcu_torture_mutex");

/**
 * The holder (`holder`) takes the mutex, lets the other CPU run its reader
 * and block on the mutex (step 1 → 2), waits for a grace period and lets go.
 * The waiter runs a read-side section (no grace period waits for it yet, so
 * its epoch stays open), then blocks on the mutex. The grace period ends only
 * if blocking is a quiescent state. Returns the step each reached (2).
 */
defineWorkload("rcu_blocked_on_mutex", (a: { holder: boolean }): number => {
  const mutex = rcu_torture_mutex.ptr;
  if (a.holder) {
    mutex_lock(mutex);
    setStage(1);
    waitStage(2);
    synchronize_rcu();
    mutex_unlock(mutex);
  } else {
    waitStage(1);
    rcu_read_lock();
    rcu_dereference(rcu_torture.ptr + S.current);
    rcu_read_unlock();
    setStage(2);
    mutex_lock(mutex);
    mutex_unlock(mutex);
  }
  return Atomics.load(I32, (rcu_torture.ptr + S.stage) >> 2);
});

/** Runs safe points until no callback is pending on any CPU (or the watchdog fires); returns the points run. */
defineWorkload("rcu_drain_at_safe_points", () => {
  const start = monotonicMs();
  const { watchdogMs, cpus } = theArena().config;
  let ticks = 0;
  while (rcuCallbacksPending() !== 0) {
    sched_op_point();
    ticks++;
    const limit = watchdogExpired(monotonicMs() - start, watchdogMs, cpus);
    if (limit !== null) throw new KernelBug(`rcu callbacks never ran${limit.note}`);
  }
  return ticks;
});

/**
 * Queues `n` kfree_rcu'd records on this CPU with interrupts off (no tick's
 * RCU softirq runs here meanwhile, so this CPU processes none of them; with
 * preemption off alone it would, at the tick's irq_exit) and returns: the CPU
 * goes idle with all of them pending. Returns how many are pending.
 */
defineWorkload("rcu_queue_kfree_rcu", (a: { n: number }) => {
  const flags = local_irq_save();
  for (let i = 0; i < a.n; i++) {
    const p = newRecord(RCU_TORTURE.size, RCU_TORTURE.off.seq, RCU_TORTURE.off.check, i, GFP_ATOMIC);
    kfree_rcu(p, RCU_TORTURE.off.rtort_rcu);
  }
  local_irq_restore(flags);
  return rcuCallbacksPending();
});

/*** An RCU-protected list ***/

const E = RCU_TORTURE_ENTRY.off;

/**
 * rcu_list_updater: `updates` random insertions (list_add_rcu or
 * list_add_tail_rcu) and deletions (list_del_rcu + kfree_rcu) under the lock,
 * keeping the list near `target` entries.
 */
defineWorkload("rcu_list_updater", (a: { id: number; updates: number; target: number }, ctx) => {
  const prng = ctx.prng();
  const lock = rcu_torture.ptr + S.lock;
  const head = rcu_torture.ptr + S.list;
  const lenIdx = (rcu_torture.ptr + S.list_len) >> 2;
  for (let i = 1; i <= a.updates; i++) {
    const add = prng.int(0, 2 * a.target) >= I32[lenIdx]!;
    const n = add ? newRecord(RCU_TORTURE_ENTRY.size, E.seq, E.check, (a.id << 24) | i) : 0;
    spin_lock(lock);
    const len = I32[lenIdx]!;
    if (add) {
      if (prng.chance(0.5)) list_add_rcu(n + E.node, head);
      else list_add_tail_rcu(n + E.node, head);
      I32[lenIdx] = len + 1;
      spin_unlock(lock);
    } else if (len > 0) {
      let e = list_next(head);
      for (let k = prng.int(0, len - 1); k > 0; k--) e = list_next(e);
      list_del_rcu(e);
      I32[lenIdx] = len - 1;
      spin_unlock(lock);
      kfree_rcu(e - E.node, E.rcu);
    } else spin_unlock(lock);
  }
  Atomics.add(I32, (rcu_torture.ptr + S.writers_done) >> 2, 1);
  return a.updates;
});

/** rcu_list_reader: walk the list inside read-side sections until `writers` updaters are done. */
defineWorkload("rcu_list_reader", (a: { writers: number; minWalks: number; maxLen: number }) => {
  const head = rcu_torture.ptr + S.list;
  const done = (rcu_torture.ptr + S.writers_done) >> 2;
  const st: RcuReadStats = { reads: 0, poisoned: 0, torn: 0 };
  let walks = 0;
  while (walks < a.minWalks || Atomics.load(I32, done) < a.writers) {
    rcu_read_lock();
    let steps = 0;
    for (let e = list_next_rcu(head); e !== head; e = list_next_rcu(e)) {
      checkRecord(e - E.node + E.seq, e - E.node + E.check, st);
      if (++steps > a.maxLen) throw new KernelBug(`rcu list walk longer than ${a.maxLen}: corrupted list`);
    }
    rcu_read_unlock();
    walks++;
  }
  return { ...st, walks };
});

/** Empties the list (list_del_rcu + kfree_rcu) and waits for every callback; returns those still pending (0). */
defineWorkload("rcu_list_cleanup", () => {
  const lock = rcu_torture.ptr + S.lock;
  const head = rcu_torture.ptr + S.list;
  spin_lock(lock);
  while (!list_empty(head)) {
    const e = list_next(head);
    list_del_rcu(e);
    kfree_rcu(e - E.node, E.rcu);
  }
  I32[(rcu_torture.ptr + S.list_len) >> 2] = 0;
  spin_unlock(lock);
  rcu_barrier();
  return rcuCallbacksPending();
});
