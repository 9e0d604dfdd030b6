/**
 * The paravirtual queued spinlock: kernel/locking/qspinlock.c with
 * qspinlock_paravirt.h (v4.19; v5.10 and v6.12 run the same algorithm), the
 * lock of free-mode machines (`--spinlock pv-qspinlock`, the default).
 *
 * Why: with more CPUs than host cores, a ticket lock hands the lock to the
 * next ticket even when the host has descheduled that CPU or it sleeps in
 * Atomics.wait, and every CPU behind it waits too. A guest kernel meets the
 * same thing when its host preempts a vCPU, and this is its answer: waiters
 * queue in per-CPU MCS nodes, a queued waiter that spun SPIN_THRESHOLD halts
 * (pv_wait), the unlocker kicks the halted queue head (pv_kick, found through
 * _Q_SLOW_VAL in the locked byte and the lock hash), and a running CPU may
 * take a free lock ahead of a queue head that is not spinning (the hybrid
 * unfair trylock: lock stealing). Here a halt is Atomics.wait and a kick
 * Atomics.notify. arm64 itself has no pv spinlock (only vcpu_is_preempted):
 * this is vmsim's answer to host preemption, not arm64's code.
 *
 * The lock word (spinlock_t's first word, little-endian like arm64): byte 0
 * `locked`, byte 1 `pending`, bytes 2-3 `tail` — the last queued waiter as
 * (cpu + 1) << 2 | node index, as _Q_PENDING_BITS == 8 lays it out. Bytes and
 * the tail halfword are reached with Atomics on the U8 and U16 views, as the
 * kernel's byte and halfword accesses are.
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, I32, U8, U16, per_cpu_ptr } from "../shared/arena.js";
import { KernelBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { MAX_CPUS } from "../shared/config.js";
import { smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { SP_SPIN, sched_point } from "../sched/sched_point.js";
import { sched_wait } from "../sched/sched_det.js";
import { monotonicMs } from "../sched/watchdog_clock.js";
import {
  type LockHolderFn,
  SPIN_TRIES,
  WAIT_SLICE_MS,
  describerOf,
  lock_wait_check,
  lock_wait_slept,
  lock_wait_spun,
  lock_wait_start,
} from "./lock_wait.js";

/* The word's fields (include/asm-generic/qspinlock_types.h, _Q_PENDING_BITS == 8). */
export const _Q_LOCKED_VAL = 1;
export const _Q_LOCKED_MASK = 0xff;
export const _Q_PENDING_VAL = 1 << 8;
export const _Q_PENDING_MASK = 0xff00;
export const _Q_LOCKED_PENDING_MASK = 0xffff;
export const _Q_TAIL_MASK = 0xffff0000 | 0;
const _Q_TAIL_IDX_OFFSET = 16;
const _Q_TAIL_CPU_OFFSET = 18;
/** The locked byte of a lock whose halted queue head is hashed: its unlocker must kick (qspinlock_paravirt.h). */
export const _Q_SLOW_VAL = 3;

/** Nodes per CPU: task, softirq, hardirq, NMI nesting (qspinlock.c MAX_NODES). */
export const MAX_NODES = 4;
/**
 * Spins before a queued waiter halts. The kernel's 1 << 15 pause loops are
 * tens of µs; a try here (a sched point and a load) is ~10 ns, so SPIN_TRIES
 * (~40 µs) is the same time.
 */
export const SPIN_THRESHOLD = SPIN_TRIES;
/** pv_wait_early looks at the previous node's state once every this many spins. */
const PV_PREV_CHECK_MASK = 0xff;

/* enum vcpu_state */
const vcpu_running = 0;
const vcpu_halted = 1;
/** pv_hash'ed + vcpu_halted */
const vcpu_hashed = 2;

/** struct qnode: the mcs_spinlock and pv_node of one nesting level. */
const QNODE = defineStruct("qnode", [
  /** mcs.next: the node queued behind this one (0: none yet). */
  { name: "next", type: "ptr", guard: "atomic" },
  /** mcs.locked: set by the previous node when this one becomes the queue head. */
  { name: "locked", type: "i32", guard: "atomic" },
  /** mcs.count: nodes in use on this CPU (node 0's only). */
  { name: "count", type: "i32", guard: "owner" },
  /** pv_node.cpu */
  { name: "cpu", type: "i32", guard: "init" },
  /** pv_node.state: vcpu_running, vcpu_halted or vcpu_hashed. */
  { name: "state", type: "i32", guard: "atomic" },
  { name: "reserved", type: "i32", count: 3 },
]);
const QN = QNODE.off;

/** DEFINE_PER_CPU_ALIGNED(struct qnode, qnodes[MAX_NODES]). */
const qnodes = DEFINE_PER_CPU("qnodes", defineStruct("qnodes", [{ name: "node", type: QNODE, count: MAX_NODES }]));

/**
 * The vCPU's halt state: kicks counts pv_kick()s. pv_wait sleeps on it while
 * it stays what it was before the condition was checked, so a kick between
 * the check and the sleep is never lost (a hypervisor's halt/kick pair).
 */
const PV_VCPU = defineStruct("pv_vcpu", [{ name: "kicks", type: "i32", guard: "atomic" }]);
const pv_vcpu = DEFINE_PER_CPU("pv_vcpu", PV_VCPU);

/**
 * The lock hash: (lock, node) of each halted queue head, so that the unlocker
 * finds whom to kick. 4 entries per possible CPU (__pv_init_lock_hash), one
 * nesting level each, open addressing from hash_ptr(lock).
 */
const PV_HASH_SIZE = 4 * MAX_CPUS;
const pv_lock_hash_bits = 31 - Math.clz32(PV_HASH_SIZE);
/** Entries per 64-byte line: the probe starts at the line's first entry (for_each_hash_entry). */
const PV_HE_PER_LINE = 8;
const PV_HASH_ENTRY = defineStruct("pv_hash_entry", [
  { name: "lock", type: "ptr", guard: "atomic" },
  { name: "node", type: "ptr", guard: "atomic" },
]);
const pv_lock_hash = DEFINE_GLOBAL(
  "pv_lock_hash",
  defineStruct("pv_lock_hash", [{ name: "entry", type: PV_HASH_ENTRY, count: PV_HASH_SIZE }]),
);

/*** The word ***/

/** encode_tail: CPU and nesting level of a queued node, as the word's upper half (exported for tests). */
export function encode_tail(cpu: number, idx: number): number {
  return ((cpu + 1) << _Q_TAIL_CPU_OFFSET) | (idx << _Q_TAIL_IDX_OFFSET);
}

/** decode_tail: the node a tail names. */
function decode_tail(tail: number): number {
  const cpu = (tail >>> _Q_TAIL_CPU_OFFSET) - 1;
  const idx = (tail >>> _Q_TAIL_IDX_OFFSET) & 3;
  return grab_mcs_node(per_cpu_ptr(qnodes, cpu), idx);
}

/** grab_mcs_node: node `idx` of the CPU whose node 0 is `base`. */
function grab_mcs_node(base: number, idx: number): number {
  return base + idx * QNODE.size;
}

/** xchg_tail: publish `tail`, returning the previous tail (in the word's upper half). */
function xchg_tail(lock: number, tail: number): number {
  return Atomics.exchange(U16, (lock + 2) >> 1, tail >>> _Q_TAIL_IDX_OFFSET) << _Q_TAIL_IDX_OFFSET;
}

/** set_locked: *,*,0 -> *,0,1 (we are the queue head and the lock is free). */
function set_locked(lock: number): void {
  Atomics.store(U8, lock, _Q_LOCKED_VAL);
}

/** cpu_relax in a spin loop: the sched point where interrupts, the stop check and the strategies come in. */
function cpu_relax(): void {
  sched_point(SP_SPIN);
}

/*** The lock ***/

/** queued_spin_trylock (asm-generic/qspinlock.h): takes a lock nobody holds or waits for. */
export function queued_spin_trylock(lock: number): boolean {
  const w = lock >> 2;
  return Atomics.load(I32, w) === 0 && Atomics.compareExchange(I32, w, 0, _Q_LOCKED_VAL) === 0;
}

/** queued_spin_is_locked: any state but all-zero (asm-generic/qspinlock.h). */
export function queued_spin_is_locked(lock: number): boolean {
  return Atomics.load(I32, lock >> 2) !== 0;
}

/** queued_spin_is_contended: someone pends or queues besides the holder. */
export function queued_spin_is_contended(lock: number): boolean {
  return (Atomics.load(I32, lock >> 2) & ~_Q_LOCKED_MASK) !== 0;
}

/**
 * __pv_queued_spin_unlock (qspinlock_paravirt.h): clear the locked byte; a
 * _Q_SLOW_VAL there means a halted queue head waits for a kick.
 */
export function __pv_queued_spin_unlock(lock: number): void {
  const locked = Atomics.compareExchange(U8, lock, _Q_LOCKED_VAL, 0);
  if (locked === _Q_LOCKED_VAL) return;
  __pv_queued_spin_unlock_slowpath(lock, locked);
}

/** This CPU's current wait (lock_wait.ts accounting): its lock class, spin tries and ms halted. */
let waitCls = 0;
let waitTries = 0;
let waitSleptMs = 0;

/**
 * __pv_queued_spin_lock_slowpath (qspinlock.c with pv_enabled(): no pending
 * step, straight to the queue), after queued_spin_lock's compare-exchange
 * found the lock taken. `cls` is the lockdep class (wait accounting) and
 * `holder` names the lock for the soft-lockup report.
 */
export function __pv_queued_spin_lock_slowpath(lock: number, cls: number, holder: LockHolderFn): void {
  // An interrupt taken while we spin may wait for another lock: its wait nests in ours.
  const outer = [waitCls, waitTries, waitSleptMs] as const;
  const t0 = lock_wait_start(cls);
  waitCls = cls;
  waitTries = 0;
  waitSleptMs = 0;
  const node0 = this_cpu_ptr(qnodes);
  const idx = I32[(node0 + QN.count) >> 2]!;
  I32[(node0 + QN.count) >> 2] = idx + 1;
  try {
    queue(lock, node0, idx, holder);
  } finally {
    I32[(node0 + QN.count) >> 2] = idx;
    // A timed wait prices its spins only: its halts are counted apart, as sleeps.
    lock_wait_spun(cls, waitTries, t0 < 0 ? t0 : t0 + waitSleptMs);
    [waitCls, waitTries, waitSleptMs] = outer;
  }
}

/** The MCS queue part of the slowpath, on node `idx` of this CPU (the `pv_queue:` label on). */
function queue(lock: number, node0: number, idx: number, holder: LockHolderFn): void {
  const cpu = smp_processor_id();
  const tail = encode_tail(cpu, idx);
  // Nested deeper than the nodes go (not expected): spin on the lock itself.
  if (idx >= MAX_NODES) {
    while (!pv_hybrid_queued_unfair_trylock(lock)) cpu_relax_check(lock, holder);
    return;
  }
  const node = grab_mcs_node(node0, idx);
  Atomics.store(I32, (node + QN.locked) >> 2, 0);
  Atomics.store(I32, (node + QN.next) >> 2, 0);
  pv_init_node(node, cpu);
  // The queued_spin_trylock of the pv slowpath is the hybrid unfair one: steal a free lock.
  if (pv_hybrid_queued_unfair_trylock(lock)) return;

  const old = xchg_tail(lock, tail);
  let next = 0;
  if ((old & _Q_TAIL_MASK) !== 0) {
    const prev = decode_tail(old);
    Atomics.store(I32, (prev + QN.next) >> 2, node);
    pv_wait_node(lock, node, prev, holder);
    // arch_mcs_spin_lock_contended: pv_wait_node returns only once node->locked is set.
    next = Atomics.load(I32, (node + QN.next) >> 2);
  }
  // The pv head waits for the lock and takes it: val has the locked byte set.
  const val = pv_wait_head_or_lock(lock, node, holder);
  // Alone in the queue: clear the tail as we keep the lock (n,0,1 -> 0,0,1).
  if ((val & _Q_TAIL_MASK) === tail && Atomics.compareExchange(I32, lock >> 2, val, _Q_LOCKED_VAL) === val) return;
  set_locked(lock);
  // Someone queued behind us: wait for its link (smp_cond_load_relaxed on node->next), pass the MCS lock on.
  while (next === 0) {
    next = Atomics.load(I32, (node + QN.next) >> 2);
    if (next === 0) cpu_relax_check(lock, holder);
  }
  Atomics.store(I32, (next + QN.locked) >> 2, 1);
  pv_kick_node(lock, next);
}

/** A spin that no halt bounds (the unqueued fallback, the wait for a successor's link): stop and watchdog checks too. */
function cpu_relax_check(lock: number, holder: LockHolderFn): void {
  cpu_relax();
  if ((++waitTries & (SPIN_THRESHOLD - 1)) === 0) lock_wait_check(lock, holder);
}

/**
 * pv_hybrid_queued_unfair_trylock: take the lock if neither held nor pending;
 * keep trying (unfair mode) while waiters are queued but their head is not
 * spinning (pending clear). vmsim bounds that mode at SPIN_THRESHOLD tries,
 * then queues: a guest's spinning vCPU is stopped by the host's pause-loop
 * exiting, a thread here by nothing.
 */
function pv_hybrid_queued_unfair_trylock(lock: number): boolean {
  const w = lock >> 2;
  for (let loop = SPIN_THRESHOLD; ; ) {
    const val = Atomics.load(I32, w);
    if ((val & _Q_LOCKED_PENDING_MASK) === 0 && Atomics.compareExchange(U8, lock, 0, _Q_LOCKED_VAL) === 0) return true;
    if ((val & _Q_TAIL_MASK) === 0 || (val & _Q_PENDING_MASK) !== 0 || --loop === 0) return false;
    waitTries++;
    cpu_relax();
  }
}

/** pv_init_node */
function pv_init_node(node: number, cpu: number): void {
  I32[(node + QN.cpu) >> 2] = cpu;
  Atomics.store(I32, (node + QN.state) >> 2, vcpu_running);
}

/** pv_wait_early: every PV_PREV_CHECK_MASK + 1 spins, is the previous node halted? Then halt early. */
function pv_wait_early(prev: number, loop: number): boolean {
  if ((loop & PV_PREV_CHECK_MASK) !== 0) return false;
  return Atomics.load(I32, (prev + QN.state) >> 2) !== vcpu_running;
}

/**
 * pv_wait_node: spin for node->locked, halting after SPIN_THRESHOLD (or at
 * once when the node ahead halted). pv_kick_node may advance a halted node to
 * vcpu_hashed instead of waking it; the unlock's kick wakes it then.
 */
function pv_wait_node(lock: number, node: number, prev: number, holder: LockHolderFn): void {
  const locked = (node + QN.locked) >> 2;
  const state = (node + QN.state) >> 2;
  for (;;) {
    for (let loop = SPIN_THRESHOLD; loop > 0; loop--) {
      if (Atomics.load(I32, locked) !== 0) return;
      if (pv_wait_early(prev, loop)) break;
      waitTries++;
      cpu_relax();
    }
    // The store and the load are SC: either we see locked, or pv_kick_node sees us halted.
    Atomics.store(I32, state, vcpu_halted);
    if (Atomics.load(I32, locked) === 0) pv_wait(lock, I32, state, vcpu_halted, holder);
    // Keep vcpu_hashed if pv_kick_node set it: pv_wait_head_or_lock must not hash the lock again.
    Atomics.compareExchange(I32, state, vcpu_halted, vcpu_running);
    if (Atomics.load(I32, locked) !== 0) return;
  }
}

/**
 * pv_kick_node: we hold the lock and just made `node` the queue head. If it
 * halted, do not wake it (it would only wait again): hash it and mark the
 * lock _Q_SLOW_VAL, so that our unlock kicks it.
 */
function pv_kick_node(lock: number, node: number): void {
  if (Atomics.compareExchange(I32, (node + QN.state) >> 2, vcpu_halted, vcpu_hashed) !== vcpu_halted) return;
  // Only we (the holder) look at the locked byte until our unlock.
  Atomics.store(U8, lock, _Q_SLOW_VAL);
  pv_hash(lock, node);
}

/** set_pending / clear_pending: the head spins on the lock; no stealing meanwhile. */
function set_pending(lock: number, on: number): void {
  Atomics.store(U8, lock + 1, on);
}

/** trylock_clear_pending: 0,1,0 -> 0,0,1 on the locked_pending halfword. */
function trylock_clear_pending(lock: number): boolean {
  return (
    Atomics.load(U8, lock) === 0 &&
    Atomics.compareExchange(U16, lock >> 1, _Q_PENDING_VAL, _Q_LOCKED_VAL) === _Q_PENDING_VAL
  );
}

/**
 * pv_wait_head_or_lock: the queue head spins for the lock with pending set;
 * after SPIN_THRESHOLD it hashes itself, sets _Q_SLOW_VAL and halts until the
 * unlocker kicks it. Returns the lock word, taken by us.
 */
function pv_wait_head_or_lock(lock: number, node: number, holder: LockHolderFn): number {
  const state = (node + QN.state) >> 2;
  // Already hashed by pv_kick_node: do not hash again.
  let hashed = Atomics.load(I32, state) === vcpu_hashed;
  for (;;) {
    Atomics.store(I32, state, vcpu_running);
    set_pending(lock, 1);
    for (let loop = SPIN_THRESHOLD; loop > 0; loop--) {
      if (trylock_clear_pending(lock)) return Atomics.load(I32, lock >> 2) | _Q_LOCKED_VAL;
      waitTries++;
      cpu_relax();
    }
    set_pending(lock, 0);
    if (!hashed) {
      const he = pv_hash(lock, node);
      hashed = true;
      // Hash before _Q_SLOW_VAL: an unlocker that sees _Q_SLOW_VAL finds the entry.
      if (Atomics.exchange(U8, lock, _Q_SLOW_VAL) === 0) {
        // The lock was free and is ours: back to _Q_LOCKED_VAL, and unhash.
        Atomics.store(U8, lock, _Q_LOCKED_VAL);
        Atomics.store(I32, he >> 2, 0);
        return Atomics.load(I32, lock >> 2) | _Q_LOCKED_VAL;
      }
    }
    Atomics.store(I32, state, vcpu_hashed);
    // Lock stealing may beat us to it after the kick: then we wait again.
    pv_wait(lock, U8, lock, _Q_SLOW_VAL, holder);
  }
}

/** __pv_queued_spin_unlock_slowpath: unhash the halted head, release, kick it. */
function __pv_queued_spin_unlock_slowpath(lock: number, locked: number): void {
  if (locked !== _Q_SLOW_VAL)
    throw new KernelBug(
      `pvqspinlock: lock 0x${lock.toString(16)} has corrupted value 0x${(Atomics.load(I32, lock >> 2) >>> 0).toString(16)}!`,
    );
  const node = pv_unhash(lock);
  Atomics.store(U8, lock, 0);
  pv_kick(I32[(node + QN.cpu) >> 2]!);
}

/*** Halt and kick, and the hash ***/

/**
 * pv_wait(ptr, val): halt this CPU if view[at] still holds `val`, until a
 * kick or the end of one wait slice (the caller's loop looks again, as after
 * a spurious wakeup); then the stop and watchdog checks.
 */
function pv_wait(lock: number, view: Int32Array | Uint8Array, at: number, val: number, holder: LockHolderFn): void {
  const kicks = (this_cpu_ptr(pv_vcpu) + PV_VCPU.off.kicks) >> 2;
  const k = Atomics.load(I32, kicks);
  if (Atomics.load(view, at) === val) {
    const t = monotonicMs();
    sched_wait(kicks, k, WAIT_SLICE_MS, lock, describerOf(holder));
    waitSleptMs += lock_wait_slept(waitCls, t);
  }
  // Also when it did not halt: a head that lost the lock to a stealer spins on, and is watched here.
  lock_wait_check(lock, holder);
}

/** pv_kick(cpu): wake a halted CPU; a running one only sees a spare kick. */
function pv_kick(cpu: number): void {
  const kicks = (per_cpu_ptr(pv_vcpu, cpu) + PV_VCPU.off.kicks) >> 2;
  Atomics.add(I32, kicks, 1);
  Atomics.notify(I32, kicks);
}

/** hash_ptr(lock, pv_lock_hash_bits) (include/linux/hash.h hash_32). */
function hash_ptr(lock: number): number {
  return Math.imul(lock, 0x61c88647) >>> (32 - pv_lock_hash_bits);
}

/** pv_hash: enter (lock, node); returns the entry's address (its `lock` field). */
function pv_hash(lock: number, node: number): number {
  const start = hash_ptr(lock) & ~(PV_HE_PER_LINE - 1);
  for (let offset = 0; offset < PV_HASH_SIZE; offset++) {
    const he = pv_lock_hash.ptr + ((start + offset) & (PV_HASH_SIZE - 1)) * PV_HASH_ENTRY.size;
    if (Atomics.compareExchange(I32, he >> 2, 0, lock) === 0) {
      Atomics.store(I32, (he + PV_HASH_ENTRY.off.node) >> 2, node);
      return he;
    }
  }
  // Every blocked lock takes one entry and a CPU blocks on at most MAX_NODES: there is always room.
  throw new KernelBug("pv_hash: no free entry in the lock hash");
}

/** pv_unhash: take `lock`'s entry out; returns its node. Only the holder that saw _Q_SLOW_VAL calls it. */
function pv_unhash(lock: number): number {
  const start = hash_ptr(lock) & ~(PV_HE_PER_LINE - 1);
  for (let offset = 0; offset < PV_HASH_SIZE; offset++) {
    const he = pv_lock_hash.ptr + ((start + offset) & (PV_HASH_SIZE - 1)) * PV_HASH_ENTRY.size;
    if (Atomics.load(I32, he >> 2) === lock) {
      const node = Atomics.load(I32, (he + PV_HASH_ENTRY.off.node) >> 2);
      Atomics.store(I32, he >> 2, 0);
      return node;
    }
  }
  throw new KernelBug(`pv_unhash: lock 0x${lock.toString(16)} has _Q_SLOW_VAL but no hash entry`);
}
