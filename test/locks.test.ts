import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { I32, pfn_to_data } from "../src/shared/arena.js";
import { makeConfig } from "../src/shared/config.js";
import { takeReports } from "../src/shared/report.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine, MachineError } from "../src/workers/machine.js";
import { bench_mutex, bench_rwlock, bench_spinlock } from "../src/workers/workloads/locks.js";
import {
  in_softirq,
  irqs_disabled,
  local_irq_disable,
  local_irq_enable,
  preempt_count,
} from "../src/percpu/preempt.js";
import { irq_enter, irq_exit } from "../src/percpu/softirq.js";
import {
  spin_is_contended,
  spin_is_locked,
  spin_lock,
  spin_lock_bh,
  spin_lock_irq,
  spin_lock_irqsave,
  spin_owner,
  spin_trylock,
  spin_unlock,
  spin_unlock_bh,
  spin_unlock_irq,
  spin_unlock_irqrestore,
} from "../src/locks/spinlock.js";
import {
  _QW_WAITING,
  read_lock,
  read_lock_bh,
  read_trylock,
  read_unlock,
  read_unlock_bh,
  rwlock_readers,
  rwlock_writer,
  write_lock_bh,
  write_lock_irqsave,
  write_trylock,
  write_unlock,
  write_unlock_bh,
  write_unlock_irqrestore,
} from "../src/locks/rwlock.js";
import { _Q_LOCKED_MASK, _Q_LOCKED_VAL, _Q_SLOW_VAL, encode_tail } from "../src/locks/qspinlock.js";
import { lockWaitTime, resetLockWaitTime } from "../src/locks/lock_wait.js";
import { VERDICT_OK, schedOff, schedRecord, schedSetup } from "../src/sched/sched_det.js";
import { mutex_is_locked, mutex_lock, mutex_owner, mutex_trylock, mutex_unlock } from "../src/locks/mutex.js";
import {
  READ_ONCE,
  WRITE_ONCE,
  atomic_add,
  atomic_add_return,
  atomic_cmpxchg,
  atomic_dec,
  atomic_dec_and_test,
  atomic_inc,
  atomic_inc_return,
  atomic_long_add_return,
  atomic_long_read,
  atomic_read,
  atomic_set,
  atomic_sub,
  atomic_sub_return,
  atomic_xchg,
  cmpxchg,
  xchg,
} from "../src/locks/atomic.js";

describe("locks on one CPU (main thread as CPU 0)", () => {
  beforeEach(() => {
    start_kernel(makeConfig({ cpus: 2, memory: 8 * 1024 * 1024 }));
    takeReports();
  });
  afterEach(() => {
    // Nothing these tests do should splat: lockdep is on.
    expect(takeReports()).toEqual([]);
  });

  it("spin_trylock on a held lock fails, and succeeds once it is released", () => {
    const l = bench_spinlock.ptr;
    expect(spin_trylock(l)).toBe(true);
    expect(spin_is_locked(l)).toBe(true);
    expect(spin_owner(l)).toBe(0);
    expect(spin_trylock(l)).toBe(false);
    spin_unlock(l);
    expect(spin_is_locked(l)).toBe(false);
    expect(spin_owner(l)).toBe(-1);
    spin_lock(l);
    expect(spin_trylock(l)).toBe(false);
    spin_unlock(l);
    expect(preempt_count()).toBe(0);
  });

  it("the ticket halves wrap at 2^16 without corrupting the lock", () => {
    start_kernel(makeConfig({ cpus: 2, memory: 8 * 1024 * 1024, spinlock: "ticket" }));
    const l = bench_spinlock.ptr;
    I32[l >> 2] = 0xfffe | (0xfffe << 16);
    for (let i = 0; i < 4; i++) {
      spin_lock(l);
      expect(spin_trylock(l)).toBe(false);
      spin_unlock(l);
      expect(spin_is_locked(l)).toBe(false);
    }
    expect(I32[l >> 2]! >>> 0).toBe(0x00020002);
  });

  it("spin_lock_irqsave saves and spin_unlock_irqrestore restores the interrupt flag", () => {
    const l = bench_spinlock.ptr;
    const f = spin_lock_irqsave(l);
    expect(f).toBe(0);
    expect(irqs_disabled()).toBe(true);
    spin_unlock_irqrestore(l, f);
    expect(irqs_disabled()).toBe(false);

    local_irq_disable();
    const g = spin_lock_irqsave(l);
    spin_unlock_irqrestore(l, g);
    expect(irqs_disabled()).toBe(true);
    local_irq_enable();

    spin_lock_irq(l);
    expect(irqs_disabled()).toBe(true);
    spin_unlock_irq(l);
    expect(irqs_disabled()).toBe(false);

    const h = write_lock_irqsave(bench_rwlock.ptr);
    expect(irqs_disabled()).toBe(true);
    write_unlock_irqrestore(bench_rwlock.ptr, h);
    expect(irqs_disabled()).toBe(false);
  });

  it("_bh variants disable softirqs and preemption through preempt_count", () => {
    spin_lock_bh(bench_spinlock.ptr);
    expect(preempt_count()).toBe(0x201);
    expect(in_softirq()).toBe(true);
    spin_unlock_bh(bench_spinlock.ptr);
    expect(preempt_count()).toBe(0);

    read_lock_bh(bench_rwlock.ptr);
    expect(preempt_count()).toBe(0x201);
    read_unlock_bh(bench_rwlock.ptr);
    write_lock_bh(bench_rwlock.ptr);
    expect(preempt_count()).toBe(0x201);
    write_unlock_bh(bench_rwlock.ptr);
    expect(preempt_count()).toBe(0);
  });

  it("rwlock: readers share, a writer excludes readers and writers", () => {
    const l = bench_rwlock.ptr;
    read_lock(l);
    expect(read_trylock(l)).toBe(true);
    expect(rwlock_readers(l)).toBe(2);
    expect(write_trylock(l)).toBe(false);
    read_unlock(l);
    read_unlock(l);
    expect(rwlock_readers(l)).toBe(0);
    expect(preempt_count()).toBe(0);

    expect(write_trylock(l)).toBe(true);
    expect(rwlock_writer(l)).toBe(0);
    expect(read_trylock(l)).toBe(false);
    expect(write_trylock(l)).toBe(false);
    write_unlock(l);
    expect(rwlock_writer(l)).toBe(-1);
    expect(I32[l >> 2]).toBe(0);
  });

  it("rwlock: a reader in interrupt context nests in this CPU's read hold", () => {
    const l = bench_rwlock.ptr;
    read_lock(l);
    irq_enter();
    read_lock(l);
    expect(rwlock_readers(l)).toBe(2);
    read_unlock(l);
    irq_exit();
    read_unlock(l);
    expect(I32[l >> 2]).toBe(0);
  });

  it("mutex: trylock, owner, is_locked; no effect on preempt_count", () => {
    const m = bench_mutex.ptr;
    expect(mutex_is_locked(m)).toBe(false);
    expect(mutex_trylock(m)).toBe(true);
    expect(mutex_is_locked(m)).toBe(true);
    expect(mutex_owner(m)).toBe(0);
    expect(preempt_count()).toBe(0);
    expect(mutex_trylock(m)).toBe(false);
    mutex_unlock(m);
    expect(mutex_is_locked(m)).toBe(false);
    expect(mutex_owner(m)).toBe(-1);
    mutex_lock(m);
    expect(mutex_is_locked(m)).toBe(true);
    mutex_unlock(m);
    expect(I32[m >> 2]).toBe(0);
  });

  it("atomic_t ops return the kernel's values and wrap at 32 bits", () => {
    const v = pfn_to_data(1);
    atomic_set(v, 5);
    atomic_inc(v);
    atomic_add(10, v);
    atomic_sub(3, v);
    atomic_dec(v);
    expect(atomic_read(v)).toBe(12);
    expect(atomic_add_return(3, v)).toBe(15);
    expect(atomic_sub_return(5, v)).toBe(10);
    expect(atomic_inc_return(v)).toBe(11);
    expect(atomic_cmpxchg(v, 7, 1)).toBe(11);
    expect(atomic_read(v)).toBe(11);
    expect(atomic_cmpxchg(v, 11, 1)).toBe(11);
    expect(atomic_read(v)).toBe(1);
    expect(atomic_dec_and_test(v)).toBe(true);
    expect(atomic_dec_and_test(v)).toBe(false);
    expect(atomic_xchg(v, 42)).toBe(-1);
    atomic_set(v, 0x7fffffff);
    expect(atomic_inc_return(v)).toBe(-0x80000000);
    atomic_set(v, 100);
    expect(atomic_long_add_return(28, v)).toBe(128);
    expect(atomic_long_read(v)).toBe(128);

    const w = pfn_to_data(1) + 4;
    WRITE_ONCE(w, 9);
    expect(READ_ONCE(w)).toBe(9);
    expect(cmpxchg(w, 8, 1)).toBe(9);
    expect(cmpxchg(w, 9, 1)).toBe(9);
    expect(xchg(w, 3)).toBe(1);
    expect(READ_ONCE(w)).toBe(3);
  });
});

describe("locks across CPUs", () => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it.each([
    [2, 101],
    [4, 102],
  ])("an rwlock-protected pair of counters loses no update and tears no read on %i CPUs (seed %i)", async (cpus, seed) => {
    m = await Machine.boot({ cpus, seed, memory: 8 * 1024 * 1024 });
    const res = (await m.runAll("rwlock_counter", { iters: 20_000 })) as { writes: number; torn: number }[];
    const writes = res.reduce((s, r) => s + r.writes, 0);
    expect(writes).toBeGreaterThan(0);
    expect(res.map((r) => r.torn)).toEqual(Array(cpus).fill(0));
    expect(await m.run(0, "rwlock_read_counters")).toEqual({ a: writes, b: writes });
    expect(m.reports).toEqual([]);
  });

  it.each([
    [2, 201],
    [4, 202],
  ])("a mutex-protected counter loses no update on %i CPUs (seed %i)", async (cpus, seed) => {
    m = await Machine.boot({ cpus, seed, memory: 8 * 1024 * 1024 });
    await m.runAll("mutex_counter", { iters: 20_000 });
    expect(await m.run(0, "read_mutex_counter")).toBe(cpus * 20_000);
    expect(m.reports).toEqual([]);
  });

  it("readers on two CPUs share the rwlock; a writer on one shuts out the other (seed 301)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 301, memory: 8 * 1024 * 1024 });
    await m.run(0, "rwlock_hold", { write: false });
    expect(await m.run(1, "rwlock_try")).toEqual({ read: true, write: false });
    await m.run(0, "rwlock_release", { write: false });
    await m.run(0, "rwlock_hold", { write: true });
    expect(await m.run(1, "rwlock_try")).toEqual({ read: false, write: false });
    await m.run(0, "rwlock_release", { write: true });
    expect(await m.run(1, "rwlock_try")).toEqual({ read: true, write: true });
    expect(m.reports).toEqual([]);
  });

  it("a waiting writer turns new readers away (qrwlock fairness), then gets the lock (seed 302)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 302, memory: 8 * 1024 * 1024 });
    const w = bench_rwlock.ptr >> 2;
    await m.run(0, "rwlock_hold", { write: false });
    const writer = m.run(1, "rwlock_hold", { write: true });
    // CPU1 blocks in write_lock; wait (bounded by the test timeout) until it has flagged itself waiting.
    while ((Atomics.load(I32, w) & _QW_WAITING) === 0) await new Promise((r) => setTimeout(r, 1));
    expect(await m.run(0, "rwlock_try")).toEqual({ read: false, write: false });
    await m.run(0, "rwlock_release", { write: false });
    await writer;
    expect(rwlock_writer(bench_rwlock.ptr)).toBe(1);
    await m.run(1, "rwlock_release", { write: true });
    expect(Atomics.load(I32, w)).toBe(0);
    expect(m.reports).toEqual([]);
  });

  it("a CPU stuck on a spinlock held forever gets a soft-lockup report naming the owner CPU (seed 303)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 303, memory: 8 * 1024 * 1024, watchdogMs: 300 });
    await m.run(0, "lock_forever");
    const err = await m.run(1, "lock_forever").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MachineError);
    expect((err as MachineError).message).toMatch(
      // 300 ms, or more on an oversubscribed host, which the headline then says (src/sched/watchdog_clock.ts).
      /^CPU1: KernelBug: watchdog: BUG: soft lockup - CPU#1 stuck for \d+m?s! \[lock_forever\]( \(host oversubscribed: [^)]+\))? \(seed 303\)$/,
    );
    expect(m.reports.map((r) => [r.kind, r.cpu])).toEqual([["soft-lockup", 1]]);
    expect(m.reports[0]!.text.split("\n")[1]).toBe(
      "waiting for locks_forever, held by CPU#0 (which holds: locks_forever)",
    );
    expect(m.stopped).toBe(true);
  });

  it("a CPU blocked on a mutex held forever gets a hung-task report naming the owner CPU (seed 304)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 304, memory: 8 * 1024 * 1024, watchdogMs: 300 });
    await m.run(0, "mutex_hold");
    const err = await m.run(1, "mutex_counter", { iters: 1, cpus: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MachineError);
    expect((err as MachineError).message).toMatch(
      /CPU1: KernelBug: INFO: task on CPU#1 blocked for more than \d+ seconds, waiting for bench_mutex, held by CPU#0 \(which holds: bench_mutex\)/,
    );
  });
});

describe("the pv queued spinlock (--spinlock pv-qspinlock)", () => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it("a running CPU steals a free lock ahead of a queued head that is not spinning; trylock does not", () => {
    start_kernel(makeConfig({ cpus: 2, memory: 8 * 1024 * 1024, spinlock: "pv-qspinlock" }));
    takeReports();
    const l = bench_spinlock.ptr;
    // CPU1's node 0 queued and halted: tail set, pending clear (its head is not spinning), lock free.
    const tail = encode_tail(1, 0);
    I32[l >> 2] = tail;
    expect(spin_trylock(l)).toBe(false);
    spin_lock(l);
    expect(I32[l >> 2]).toBe(tail | _Q_LOCKED_VAL);
    expect(spin_owner(l)).toBe(0);
    expect(spin_is_contended(l)).toBe(true);
    spin_unlock(l);
    expect(I32[l >> 2]).toBe(tail);
    I32[l >> 2] = 0;
    expect(spin_trylock(l)).toBe(true);
    expect(spin_is_contended(l)).toBe(false);
    spin_unlock(l);
    expect(I32[l >> 2]).toBe(0);
    expect(preempt_count()).toBe(0);
    expect(takeReports()).toEqual([]);
  });

  it.each([
    [4, 401],
    [8, 402],
  ])("a spinlock-protected counter loses no update on %i CPUs (seed %i)", async (cpus, seed) => {
    m = await Machine.boot({ cpus, seed, memory: 8 * 1024 * 1024 });
    expect(m.config.spinlock).toBe("pv-qspinlock");
    await m.runAll("spin_forms_counter", { iters: 20_000 });
    expect(await m.run(0, "read_spin_forms_counter")).toBe(cpus * 20_000);
    expect(I32[bench_spinlock.ptr >> 2]).toBe(0);
    expect(m.reports).toEqual([]);
  });

  it("a deterministic call between free ones runs the ticket lock and leaves every lock 0 for the pv lock (seed 404)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 404, memory: 8 * 1024 * 1024 });
    const l = bench_spinlock.ptr;
    await m.runAll("spin_forms_counter", { iters: 2000 });
    schedSetup({ strategy: { kind: "random", p: 0.05 }, seed: 1, stepCap: 1e7 });
    try {
      await m.runAll("spin_forms_counter", { iters: 2000 });
      expect(schedRecord().verdict).toBe(VERDICT_OK);
    } finally {
      schedOff();
    }
    // The ticket lock's unlock put the word back to 0 (free in both formats), not (n, n).
    expect(I32[l >> 2]).toBe(0);
    await m.runAll("spin_forms_counter", { iters: 2000 });
    expect(await m.run(0, "read_spin_forms_counter")).toBe(3 * 2 * 2000);
    expect(I32[l >> 2]).toBe(0);
    expect(m.reports).toEqual([]);
  });

  it("a waiter that halted is hashed under _Q_SLOW_VAL and kicked by the unlock (seed 403)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 403, memory: 8 * 1024 * 1024 });
    const l = bench_spinlock.ptr;
    resetLockWaitTime();
    await m.run(0, "spin_hold");
    expect(I32[l >> 2]).toBe(_Q_LOCKED_VAL);
    const waiter = m.run(1, "spin_hold");
    // CPU1 queues, spins SPIN_THRESHOLD, hashes itself and halts: wait (bounded by the test timeout) for that.
    while ((Atomics.load(I32, l >> 2) & _Q_LOCKED_MASK) !== _Q_SLOW_VAL) await new Promise((r) => setTimeout(r, 1));
    expect(Atomics.load(I32, l >> 2)).toBe(encode_tail(1, 0) | _Q_SLOW_VAL);
    await m.run(0, "spin_release");
    await waiter;
    // CPU1 holds it now, alone: the tail is cleared.
    expect(Atomics.load(I32, l >> 2)).toBe(_Q_LOCKED_VAL);
    expect(spin_owner(l)).toBe(1);
    await m.run(1, "spin_release");
    expect(Atomics.load(I32, l >> 2)).toBe(0);
    const waits = lockWaitTime();
    expect(waits[1]!.waits).toBe(1);
    expect(waits[1]!.byLock["bench_spinlock"]).toBeGreaterThan(0);
    expect(m.reports).toEqual([]);
  });
});
