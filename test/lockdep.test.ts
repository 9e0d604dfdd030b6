import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { takeReports } from "../src/shared/report.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine } from "../src/workers/machine.js";
import { bench_mutex, bench_rwlock, locks_test_a, locks_test_b } from "../src/workers/workloads/locks.js";
import { irq_enter, irq_exit, local_irq_disable, local_irq_enable } from "../src/percpu/preempt.js";
import { lockdep_assert_held, lockdep_depth, lockdep_print_held_locks } from "../src/locks/lockdep.js";
import { spin_lock, spin_trylock, spin_unlock } from "../src/locks/spinlock.js";
import { read_lock, read_unlock, write_lock, write_unlock } from "../src/locks/rwlock.js";
import { mutex_lock, mutex_unlock } from "../src/locks/mutex.js";
import { MIGHT_SLEEP_REPORTS, cond_resched, might_sleep } from "../src/locks/might_sleep.js";

const texts = () => takeReports().map((r) => `${r.kind}: ${r.text}`);

describe("lockdep on one CPU (main thread as CPU 0)", () => {
  const A = () => locks_test_a.ptr;
  const B = () => locks_test_b.ptr;
  beforeEach(() => {
    start_kernel(makeConfig({ cpus: 2, memory: 8 * 1024 * 1024 }));
    takeReports();
  });

  it("lockdep_assert_held WARNs when the lock is not held, and is silent when it is", () => {
    lockdep_assert_held(A(), "locks_test_a");
    expect(texts()).toEqual(["lockdep: WARNING: lockdep_assert_held(locks_test_a) failed on CPU0"]);
    spin_lock(A());
    lockdep_assert_held(A(), "locks_test_a");
    spin_unlock(A());
    expect(texts()).toEqual([]);
  });

  it("reports an AB-BA inversion with both classes and the scenario", () => {
    spin_lock(A());
    spin_lock(B());
    spin_unlock(B());
    spin_unlock(A());
    expect(texts()).toEqual([]);
    spin_lock(B());
    spin_lock(A());
    spin_unlock(A());
    spin_unlock(B());
    const r = texts();
    expect(r).toHaveLength(1);
    expect(r[0]).toContain("lockdep: WARNING: possible circular locking dependency detected");
    expect(r[0]).toContain("CPU0 is trying to acquire locks_test_a while holding locks_test_b;");
    expect(r[0]).toContain("CPU0 took locks_test_b while holding locks_test_a");
    expect(r[0]).toContain("*** DEADLOCK ***");
    // The same inversion again is not reported twice.
    spin_lock(B());
    spin_lock(A());
    spin_unlock(A());
    spin_unlock(B());
    expect(texts()).toEqual([]);
  });

  it("a trylock orders nothing: the reverse order afterwards is no inversion", () => {
    spin_lock(A());
    expect(spin_trylock(B())).toBe(true);
    spin_unlock(B());
    spin_unlock(A());
    spin_lock(B());
    spin_lock(A());
    spin_unlock(A());
    spin_unlock(B());
    expect(texts()).toEqual([]);
  });

  it("a reader is a held lock too: rwlock read against spinlock order is an inversion", () => {
    const rw = bench_rwlock.ptr;
    write_lock(rw);
    spin_lock(A());
    spin_unlock(A());
    write_unlock(rw);
    spin_lock(A());
    read_lock(rw);
    expect(lockdep_print_held_locks()).toBe("2 locks held by CPU0:\n #0: locks_test_a\n #1: bench_rwlock (read)");
    read_unlock(rw);
    spin_unlock(A());
    const r = texts();
    expect(r).toHaveLength(1);
    expect(r[0]).toContain("CPU0 is trying to acquire bench_rwlock while holding locks_test_a;");
  });

  it("reports recursive locking; a recursive read is allowed only in interrupt context", () => {
    const rw = bench_rwlock.ptr;
    read_lock(rw);
    irq_enter();
    read_lock(rw);
    read_unlock(rw);
    irq_exit();
    expect(texts()).toEqual([]);
    // In process context a second read_lock can deadlock behind a waiting writer.
    read_lock(rw);
    read_unlock(rw);
    read_unlock(rw);
    const r = texts();
    expect(r).toHaveLength(1);
    expect(r[0]!.split("\n").slice(0, 6)).toEqual([
      "lockdep: WARNING: possible recursive locking detected",
      "CPU0 is trying to acquire lock:",
      " (bench_rwlock){.?.+} (read)",
      "",
      "but CPU0 is already holding lock:",
      " (bench_rwlock){.?.+} (read)",
    ]);
    expect(r[0]).toContain(
      " May be due to missing lock nesting notation\n\n1 lock held by CPU0:\n #0: bench_rwlock (read)",
    );
    expect(lockdep_depth()).toBe(0);
  });

  it("might_sleep inside a spinlock reports the CPU, preempt_count, irq state and held locks", () => {
    spin_lock(A());
    might_sleep();
    spin_unlock(A());
    const r = texts();
    expect(r).toHaveLength(1);
    const lines = r[0]!.split("\n");
    expect(lines[0]).toMatch(/^lockdep: BUG: sleeping function called from invalid context at /);
    expect(lines[1]).toBe("in_atomic(): 1, irqs_disabled(): 0, CPU: 0, preempt_count: 0x1");
    expect(lines[2]).toBe("1 lock held by CPU0:");
    expect(lines[3]).toBe(" #0: locks_test_a");
    expect(lines[4]).toBe("Call trace:");
  });

  it("mutex_lock with interrupts off is a sleep in atomic context, named after mutex_lock", () => {
    local_irq_disable();
    mutex_lock(bench_mutex.ptr);
    mutex_unlock(bench_mutex.ptr);
    local_irq_enable();
    const r = texts();
    expect(r).toHaveLength(1);
    expect(r[0]).toContain("BUG: sleeping function called from invalid context at mutex_lock");
    expect(r[0]).toContain("in_atomic(): 0, irqs_disabled(): 1, CPU: 0, preempt_count: 0x0");
    // might_sleep comes first in mutex_lock: the mutex is not held yet.
    expect(r[0]).toContain("no locks held by CPU0.");
  });

  it("might_sleep and cond_resched are silent outside atomic context; reports are capped per CPU", () => {
    might_sleep();
    cond_resched();
    mutex_lock(bench_mutex.ptr);
    might_sleep();
    mutex_unlock(bench_mutex.ptr);
    expect(texts()).toEqual([]);
    spin_lock(A());
    for (let i = 0; i < MIGHT_SLEEP_REPORTS + 3; i++) cond_resched();
    spin_unlock(A());
    const r = texts();
    expect(r).toHaveLength(MIGHT_SLEEP_REPORTS);
    expect(r[MIGHT_SLEEP_REPORTS - 1]).toContain("(further reports from CPU0 suppressed)");
  });

  it("unlocking a mutex this CPU does not hold is a bad unlock balance", () => {
    mutex_unlock(bench_mutex.ptr);
    expect(texts()).toEqual([
      "lockdep: WARNING: bad unlock balance detected!\nCPU0 is trying to release a lock it does not hold",
    ]);
  });

  it("with lockdep off nothing is tracked or reported", () => {
    start_kernel(makeConfig({ cpus: 2, memory: 8 * 1024 * 1024, lockdep: false }));
    spin_lock(A());
    spin_lock(B());
    might_sleep();
    spin_unlock(B());
    spin_unlock(A());
    spin_lock(B());
    spin_lock(A());
    expect(lockdep_depth()).toBe(0);
    spin_unlock(A());
    spin_unlock(B());
    lockdep_assert_held(A(), "locks_test_a");
    expect(texts()).toEqual([]);
  });
});

describe("lockdep across CPUs", () => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it("CPU0 takes A then B, later CPU1 takes B then A: one report naming both CPUs and classes (seed 401)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 401, memory: 8 * 1024 * 1024 });
    await m.run(0, "lock_order", { order: "ab" });
    expect(m.reports).toEqual([]);
    await m.run(1, "lock_order", { order: "ba" });
    expect(m.reports).toHaveLength(1);
    const r = m.reports[0]!;
    expect([r.kind, r.cpu]).toEqual(["lockdep", 1]);
    expect(r.text).toContain("WARNING: possible circular locking dependency detected");
    expect(r.text).toContain("CPU1 is trying to acquire locks_test_a while holding locks_test_b;");
    expect(r.text).toContain("CPU0 took locks_test_b while holding locks_test_a");
    expect(r.text).toMatch(/CPU0\s+CPU1\n/);
  });

  it("mutex_lock inside spin_lock on CPU1 is a sleeping function called from invalid context (seed 402)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 402, memory: 8 * 1024 * 1024 });
    await m.run(1, "mutex_in_spinlock");
    expect(m.reports).toHaveLength(1);
    const r = m.reports[0]!;
    expect([r.kind, r.cpu]).toEqual(["lockdep", 1]);
    expect(r.text).toContain("BUG: sleeping function called from invalid context at mutex_lock");
    expect(r.text).toContain("in_atomic(): 1, irqs_disabled(): 0, CPU: 1, preempt_count: 0x1");
    expect(r.text).toContain("1 lock held by CPU1:\n #0: locks_test_a\nCall trace:");
  });
});
