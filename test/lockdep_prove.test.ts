/**
 * lockdep as strict as a kernel built with PROVE_LOCKING (src/locks/lockdep.ts):
 * irq usage states, recursion by class and nesting subclasses, held locks
 * freed, and a lock still waited for reported as such. Each test is a
 * deliberate misuse and the kernel's words for it.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { SOFTIRQ_OFFSET } from "../src/shared/preempt_mask.js";
import { takeReports } from "../src/shared/report.js";
import { setCurrentCpu } from "../src/shared/smp.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine, MachineError } from "../src/workers/machine.js";
import { schedOff, schedSetup } from "../src/sched/sched_det.js";
import { runInIrq } from "../src/kernel/irq.js";
import { local_irq_disable, local_irq_enable, preempt_count_add, preempt_count_sub } from "../src/percpu/preempt.js";
import {
  SINGLE_DEPTH_NESTING,
  heldLocksOf,
  lock_acquire,
  lock_acquired,
  lock_release,
  lockdep_class,
  lockdep_print_held_locks,
  waitingLocksOf,
} from "../src/locks/lockdep.js";
import {
  SPINLOCK_T,
  spin_lock,
  spin_lock_bh,
  spin_lock_init,
  spin_lock_irqsave,
  spin_lock_nested,
  spin_unlock,
  spin_unlock_bh,
  spin_unlock_irqrestore,
} from "../src/locks/spinlock.js";
import { read_lock, read_unlock, write_lock, write_unlock } from "../src/locks/rwlock.js";
import { MUTEX, mutex_init, mutex_lock, mutex_lock_nested, mutex_unlock } from "../src/locks/mutex.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { kfree, kmalloc } from "../src/mm/slab.js";
import { __free_pages, alloc_pages } from "../src/mm/page_alloc.js";
import { page_address } from "../src/mm/mm_types.js";
import { bench_rwlock, locks_test_a, locks_test_b } from "../src/workers/workloads/locks.js";

const texts = () => takeReports().map((r) => `${r.kind}: ${r.text}`);
/** The report's first `n` lines. */
const head = (r: string | undefined, n: number) => (r ?? "").split("\n").slice(0, n);

/** Runs `fn` as a softirq runs: SOFTIRQ_OFFSET in preempt_count, as __do_softirq adds it. */
function inSoftirq(fn: () => void): void {
  preempt_count_add(SOFTIRQ_OFFSET);
  try {
    fn();
  } finally {
    preempt_count_sub(SOFTIRQ_OFFSET);
  }
}

describe("lockdep irq states (main thread as CPU 0)", () => {
  const A = () => locks_test_a.ptr;
  const B = () => locks_test_b.ptr;
  beforeEach(() => {
    start_kernel(makeConfig({ cpus: 2, memory: 8 * 1024 * 1024 }));
    takeReports();
  });

  it("a lock taken with interrupts on, later in an interrupt: inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W}, no interrupt needed while it is held", () => {
    spin_lock(A());
    spin_unlock(A());
    expect(texts()).toEqual([]);
    runInIrq(() => {
      spin_lock(A());
      spin_unlock(A());
    });
    const r = texts();
    expect(r).toHaveLength(1);
    expect(head(r[0], 5)).toEqual([
      "lockdep: WARNING: inconsistent lock state",
      "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage.",
      "CPU0 [HC1[1]:SC0[0]:HE0:SE1] takes:",
      " (locks_test_a){?.+.}",
      "{HARDIRQ-ON-W} state was registered at:",
    ]);
    // The first acquisition that set the state: this CPU, and the test's own frame as the caller.
    expect(r[0]!.split("\n")[5]).toMatch(/^ {2}\{HARDIRQ-ON-W\} CPU0: .*\(test\/lockdep_prove\.test\.ts:\d+:\d+\)/);
    expect(r[0]).toContain("  lock(locks_test_a);\n  <Interrupt>\n    lock(locks_test_a);\n\n *** DEADLOCK ***");
    // Reported once: the class keeps both states.
    runInIrq(() => {
      spin_lock(A());
      spin_unlock(A());
    });
    spin_lock(A());
    spin_unlock(A());
    expect(texts()).toEqual([]);
  });

  it("the other way round: used in an interrupt, then taken with interrupts on is {IN-HARDIRQ-W} -> {HARDIRQ-ON-W}", () => {
    runInIrq(() => {
      spin_lock(A());
      spin_unlock(A());
    });
    expect(texts()).toEqual([]);
    spin_lock(A());
    spin_unlock(A());
    const r = texts();
    expect(head(r[0], 4)).toEqual([
      "lockdep: WARNING: inconsistent lock state",
      "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage.",
      "CPU0 [HC0[0]:SC0[0]:HE1:SE1] takes:",
      " (locks_test_a){?...}",
    ]);
    // As in the kernel, the check runs before the lock joins the held stack.
    expect(r[0]).toMatch(/ \*\*\* DEADLOCK \*\*\*\n\nno locks held by CPU0\.$/);
  });

  it("irqsave everywhere, or bh in process context against a softirq user, is consistent", () => {
    runInIrq(() => {
      spin_lock(A());
      spin_unlock(A());
    });
    spin_unlock_irqrestore(A(), spin_lock_irqsave(A()));
    inSoftirq(() => {
      spin_lock(B());
      spin_unlock(B());
    });
    spin_lock_bh(B());
    spin_unlock_bh(B());
    expect(texts()).toEqual([]);
  });

  it("softirq forms: {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W}", () => {
    spin_lock(B());
    spin_unlock(B());
    inSoftirq(() => {
      spin_lock(B());
      spin_unlock(B());
    });
    const r = texts();
    expect(r).toHaveLength(1);
    expect(head(r[0], 3)).toEqual([
      "lockdep: WARNING: inconsistent lock state",
      "inconsistent {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W} usage.",
      "CPU0 [HC0[0]:SC1[1]:HE1:SE0] takes:",
    ]);
  });

  it("locks held when interrupts come back on become irq-unsafe (trace_hardirqs_on)", () => {
    local_irq_disable();
    spin_lock(A());
    local_irq_enable();
    spin_unlock(A());
    expect(texts()).toEqual([]);
    runInIrq(() => {
      spin_lock(A());
      spin_unlock(A());
    });
    expect(head(texts()[0], 2)).toEqual([
      "lockdep: WARNING: inconsistent lock state",
      "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage.",
    ]);
  });

  it("rwlock reads: read in an interrupt beside reads with interrupts on is fine; a write with interrupts on is not", () => {
    const rw = bench_rwlock.ptr;
    runInIrq(() => {
      read_lock(rw);
      read_unlock(rw);
    });
    read_lock(rw);
    read_unlock(rw);
    expect(texts()).toEqual([]);
    write_lock(rw);
    write_unlock(rw);
    const r = texts();
    expect(r).toHaveLength(1);
    expect(head(r[0], 2)).toEqual([
      "lockdep: WARNING: inconsistent lock state",
      "inconsistent {IN-HARDIRQ-R} -> {HARDIRQ-ON-W} usage.",
    ]);
  });

  it("irq-safe A taken before B, then B taken with interrupts on: possible irq lock inversion dependency", () => {
    runInIrq(() => {
      spin_lock(A());
      spin_unlock(A());
    });
    const flags = spin_lock_irqsave(A());
    spin_lock(B());
    spin_unlock(B());
    spin_unlock_irqrestore(A(), flags);
    expect(texts()).toEqual([]);
    spin_lock(B());
    spin_unlock(B());
    const r = texts();
    expect(r).toHaveLength(1);
    expect(head(r[0], 7)).toEqual([
      "lockdep: WARNING: possible irq lock inversion dependency detected",
      "CPU0 just changed the state of lock:",
      " (locks_test_b){+...}",
      "but this lock was taken by another, HARDIRQ-safe lock in the past:",
      " (locks_test_a){-...}",
      "",
      "and interrupts could create inverse lock ordering between them.",
    ]);
    expect(r[0]).toContain(
      "  lock(locks_test_b);\n                               local_irq_disable();\n                               lock(locks_test_a);",
    );
    expect(r[0]).toContain(
      "the shortest dependencies between 2nd lock and 1st lock:\n CPU0 took locks_test_b while holding locks_test_a",
    );
  });

  it("B irq-unsafe and taken under A, then A used in an interrupt: the inversion seen forwards", () => {
    spin_lock(B());
    spin_unlock(B());
    const flags = spin_lock_irqsave(A());
    spin_lock(B());
    spin_unlock(B());
    spin_unlock_irqrestore(A(), flags);
    expect(texts()).toEqual([]);
    runInIrq(() => {
      spin_lock(A());
      spin_unlock(A());
    });
    const r = texts();
    expect(r).toHaveLength(1);
    expect(head(r[0], 4)).toEqual([
      "lockdep: WARNING: possible irq lock inversion dependency detected",
      "CPU0 just changed the state of lock:",
      " (locks_test_a){-...}",
      "but this lock took another, HARDIRQ-unsafe lock in the past:",
    ]);
  });

  it("a new dependency from an irq-safe lock to an irq-unsafe one: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", () => {
    runInIrq(() => {
      spin_lock(A());
      spin_unlock(A());
    });
    spin_lock(B());
    spin_unlock(B());
    expect(texts()).toEqual([]);
    const flags = spin_lock_irqsave(A());
    spin_lock(B());
    spin_unlock(B());
    spin_unlock_irqrestore(A(), flags);
    const r = texts();
    expect(r).toHaveLength(1);
    expect(head(r[0], 9)).toEqual([
      "lockdep: WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
      "CPU0 [HC0[0]:SC0[0]:HE0:SE1] is trying to acquire:",
      " (locks_test_b){+.+.}",
      "",
      "and this CPU is already holding:",
      " (locks_test_a){-...}",
      "which would create a new lock dependency:",
      " (locks_test_a){-...} -> (locks_test_b){+.+.}",
      "",
    ]);
    expect(r[0]).toContain("but this new dependency connects a HARDIRQ-irq-safe lock:\n (locks_test_a){-...}");
    expect(r[0]).toContain("to a HARDIRQ-irq-unsafe lock:\n (locks_test_b){+.+.}");
    expect(r[0]).toMatch(/\.\.\. which became HARDIRQ-irq-safe at:\n {2}\{IN-HARDIRQ-W\} CPU0: /);
  });

  it("the same order through a middle lock: the chain is named", () => {
    const m = bench_rwlock.ptr;
    runInIrq(() => {
      spin_lock(A());
      spin_unlock(A());
    });
    const flags = spin_lock_irqsave(A());
    write_lock(m);
    write_unlock(m);
    spin_unlock_irqrestore(A(), flags);
    spin_lock(B());
    spin_unlock(B());
    expect(texts()).toEqual([]);
    const f2 = spin_lock_irqsave(m);
    spin_lock(B());
    spin_unlock(B());
    spin_unlock_irqrestore(m, f2);
    const r = texts();
    expect(r).toHaveLength(1);
    expect(r[0]).toContain("HARDIRQ-safe -> HARDIRQ-unsafe lock order detected");
    expect(r[0]).toContain("Chain exists of:\n  locks_test_a --> bench_rwlock --> locks_test_b");
    expect(r[0]).toContain(
      "the dependencies between HARDIRQ-irq-safe lock and the holding lock:\n CPU0 took bench_rwlock while holding locks_test_a",
    );
  });

  it("a handler's locks do not nest in the locks of the code it interrupted: no order across contexts", () => {
    local_irq_disable();
    spin_lock(A());
    runInIrq(() => {
      spin_lock(B());
      spin_unlock(B());
    });
    spin_unlock(A());
    local_irq_enable();
    // B before A: no cycle, since A → B (the interrupt inside A) was never an order.
    const flags = spin_lock_irqsave(B());
    spin_lock(A());
    spin_unlock(A());
    spin_unlock_irqrestore(B(), flags);
    expect(texts()).toEqual([]);
  });
});

describe("lockdep classes, nesting and freed locks (main thread as CPU 0)", () => {
  beforeEach(() => {
    start_kernel(makeConfig({ cpus: 2, memory: 8 * 1024 * 1024 }));
    takeReports();
  });
  afterEach(() => setCurrentCpu(0));

  /** Two kmalloc'ed objects with a spinlock each, of one class (as two instances of one struct). */
  function twoObjects(): [number, number] {
    const o1 = kmalloc(SPINLOCK_T.size, GFP_KERNEL);
    const o2 = kmalloc(SPINLOCK_T.size, GFP_KERNEL);
    spin_lock_init(o1, "&obj->lock");
    spin_lock_init(o2, "&obj->lock");
    return [o1, o2];
  }

  it("a second lock of a held class is possible recursive locking, whichever instance it is", () => {
    const [o1, o2] = twoObjects();
    spin_lock(o1);
    spin_lock(o2);
    spin_unlock(o2);
    spin_unlock(o1);
    const r = texts();
    expect(r).toHaveLength(1);
    expect(head(r[0], 6)).toEqual([
      "lockdep: WARNING: possible recursive locking detected",
      "CPU0 is trying to acquire lock:",
      " (&obj->lock){+.+.}",
      "",
      "but CPU0 is already holding lock:",
      " (&obj->lock){+.+.}",
    ]);
    expect(r[0]).toContain(" *** DEADLOCK ***\n\n May be due to missing lock nesting notation\n\n1 lock held by CPU0:");
  });

  it("spin_lock_nested makes the inner lock a class of its own, ordered like any other", () => {
    const [o1, o2] = twoObjects();
    const A = locks_test_a.ptr;
    spin_lock(o1);
    spin_lock_nested(o2, SINGLE_DEPTH_NESTING);
    spin_lock(A);
    expect(lockdep_print_held_locks()).toBe(
      "3 locks held by CPU0:\n #0: &obj->lock\n #1: &obj->lock/1\n #2: locks_test_a",
    );
    spin_unlock(A);
    spin_unlock(o2);
    spin_unlock(o1);
    expect(texts()).toEqual([]);
    // locks_test_a then &obj->lock/1 inverts &obj->lock/1 → locks_test_a.
    spin_lock(o2);
    spin_lock(A);
    spin_lock_nested(o1, SINGLE_DEPTH_NESTING);
    spin_unlock(o1);
    spin_unlock(A);
    spin_unlock(o2);
    const r = texts();
    expect(r).toHaveLength(1);
    expect(r[0]).toContain("WARNING: possible circular locking dependency detected");
    expect(r[0]).toContain("CPU0 is trying to acquire &obj->lock/1 while holding locks_test_a;");
  });

  it("mutex_lock_nested: the same for mutexes; an invalid subclass is reported", () => {
    const m1 = kmalloc(MUTEX.size, GFP_KERNEL);
    const m2 = kmalloc(MUTEX.size, GFP_KERNEL);
    mutex_init(m1, "&dev->mutex");
    mutex_init(m2, "&dev->mutex");
    mutex_lock(m1);
    mutex_lock_nested(m2, SINGLE_DEPTH_NESTING);
    mutex_unlock(m2);
    mutex_unlock(m1);
    expect(texts()).toEqual([]);
    mutex_lock(m1);
    mutex_lock(m2);
    mutex_unlock(m2);
    mutex_unlock(m1);
    expect(head(texts()[0], 1)).toEqual(["lockdep: WARNING: possible recursive locking detected"]);
    spin_lock_nested(locks_test_a.ptr, 8);
    spin_unlock(locks_test_a.ptr);
    expect(texts()).toEqual(["lockdep: BUG: looking up invalid subclass: 8"]);
  });

  it("kfree of an object whose lock is held: WARNING: held lock freed!", () => {
    const [o1] = twoObjects();
    spin_lock(o1);
    kfree(o1);
    const r = texts();
    expect(r).toHaveLength(1);
    const hex = (n: number) => `0x${n.toString(16)}`;
    expect(head(r[0], 5)).toEqual([
      "lockdep: WARNING: held lock freed!",
      `CPU0 is freeing memory ${hex(o1)}-${hex(o1 + 31)}, with a lock still held there!`,
      ` (&obj->lock){+.+.}, at: ${hex(o1)}, held by CPU0`,
      "1 lock held by CPU0:",
      " #0: &obj->lock",
    ]);
  });

  it("another CPU's held lock counts too; a released one does not", () => {
    const [o1, o2] = twoObjects();
    setCurrentCpu(1);
    spin_lock(o1);
    setCurrentCpu(0);
    kfree(o1);
    expect(texts()[0]).toContain(", held by CPU1");
    spin_lock(o2);
    spin_unlock(o2);
    kfree(o2);
    expect(texts()).toEqual([]);
  });

  it("__free_pages of a page holding a held mutex: held lock freed", () => {
    const page = alloc_pages(GFP_KERNEL, 1);
    const m = page_address(page) + 4096 + 64;
    mutex_init(m, "&page_obj->mutex");
    mutex_lock(m);
    __free_pages(page, 1);
    const r = texts();
    expect(r).toHaveLength(1);
    const base = page_address(page);
    expect(head(r[0], 3)).toEqual([
      "lockdep: WARNING: held lock freed!",
      `CPU0 is freeing memory 0x${base.toString(16)}-0x${(base + 8191).toString(16)}, with a lock still held there!`,
      ` (&page_obj->mutex){+.+.}, at: 0x${m.toString(16)}, held by CPU0`,
    ]);
  });

  it("a lock being acquired is waited for, not held, until lock_acquired", () => {
    const A = locks_test_a.ptr;
    const B = locks_test_b.ptr;
    spin_lock(A);
    lock_acquire(B, lockdep_class("locks_test_b"), false);
    expect(heldLocksOf(0)).toEqual(["locks_test_a"]);
    expect(waitingLocksOf(0)).toEqual(["locks_test_b"]);
    expect(lockdep_print_held_locks()).toBe("1 lock held by CPU0:\n #0: locks_test_a\n waiting for: locks_test_b");
    lock_acquired(B);
    expect(heldLocksOf(0)).toEqual(["locks_test_a", "locks_test_b"]);
    expect(waitingLocksOf(0)).toEqual([]);
    lock_release(B);
    spin_unlock(A);
    expect(texts()).toEqual([]);
  });
});

describe("lockdep across CPUs", () => {
  let m: Machine | undefined;
  afterEach(async () => {
    schedOff();
    await m?.shutdown();
    m = undefined;
  });

  it("CPU0 takes pair lock 1 then 2, CPU1 2 then 1: each nesting is recursive locking, before any deadlock (seed 403)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 403, memory: 8 * 1024 * 1024 });
    await m.run(0, "lock_pair", { order: "12" });
    await m.run(1, "lock_pair", { order: "21" });
    expect(m.reports.map((r) => [r.kind, r.cpu, head(r.text, 3).join("|")])).toEqual([
      [
        "lockdep",
        0,
        "WARNING: possible recursive locking detected|CPU0 is trying to acquire lock:| (&pair->lock){+.+.}",
      ],
      [
        "lockdep",
        1,
        "WARNING: possible recursive locking detected|CPU1 is trying to acquire lock:| (&pair->lock){+.+.}",
      ],
    ]);
  });

  it("annotated with spin_lock_nested, the same nesting is trusted, as the kernel trusts it (seed 404)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 404, memory: 8 * 1024 * 1024 });
    await m.run(0, "lock_pair", { order: "12", nested: true });
    await m.run(1, "lock_pair", { order: "21", nested: true });
    expect(m.reports).toEqual([]);
  });

  it("an ABBA deadlock names what each CPU holds and what it waits for, never the waited-for lock as held (seed 405)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 405, memory: 8 * 1024 * 1024 });
    schedSetup({ strategy: { kind: "rr", quantum: 1 }, seed: 405, stepCap: 1e6 });
    const err = await m.runAll("abba", { ops: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MachineError);
    const text = (err as MachineError).message;
    expect(text).toMatch(/deadlock at step \d+: no CPU can run/);
    expect(text).toContain(
      "CPU#0 waits for demo_lock_b, held by CPU#1 (which holds: demo_lock_b; waits for demo_lock_a); holds: demo_lock_a",
    );
    expect(text).toContain(
      "CPU#1 waits for demo_lock_a, held by CPU#0 (which holds: demo_lock_a; waits for demo_lock_b); holds: demo_lock_b",
    );
  });
});
