import { beforeEach, describe, expect, it } from "vitest";
import { type MachineConfig, makeConfig } from "../src/shared/config.js";
import { defineKernelFn } from "../src/shared/functab.js";
import { takeReports } from "../src/shared/report.js";
import { SP_LOCK, sched_op_point, sched_point } from "../src/sched/sched_point.js";
import { in_irq, in_softirq, irqs_disabled, local_irq_restore, local_irq_save } from "../src/percpu/preempt.js";
import {
  RCU_SOFTIRQ,
  kstat_softirqs_cpu,
  local_bh_disable,
  local_bh_enable,
  local_softirq_pending,
  open_softirq,
  raise_softirq,
} from "../src/percpu/softirq.js";
import { spin_lock, spin_lock_bh, spin_unlock, spin_unlock_bh } from "../src/locks/spinlock.js";
import { raise_irq_on, request_irq, runInIrq } from "../src/kernel/irq.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { INIT_WORK, schedule_work } from "../src/kernel/workqueue.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { kfree, kmalloc } from "../src/mm/slab.js";
import { call_rcu, rcu_cpu_starting } from "../src/rcu/tree.js";
import { start_kernel } from "../src/workers/boot.js";
import { percpuSelftestWork, percpu_selftest_lock } from "../src/workers/workloads/percpu.js";

/** TASKLET_SOFTIRQ: a vector vmsim opens no action for, the tests' own. */
const TEST_SOFTIRQ = 6;
const TEST_IRQ = 5;

/** Where code ran: the context flags, and what it interrupted (the test's own markers). */
interface Seen {
  what: string;
  hardirq: boolean;
  softirq: boolean;
  irqsOff: boolean;
  inWork: boolean;
  inCallback: boolean;
  lockHeld: boolean;
}
let seen: Seen[] = [];
let inWork = false;
let inCallback = false;
let lockHeld = false;

function note(what: string): void {
  seen.push({ what, hardirq: in_irq(), softirq: in_softirq(), irqsOff: irqs_disabled(), inWork, inCallback, lockHeld });
}

/** The test vector's action; raising the vector again from it once shows the restart. */
let raiseAgain = false;
const test_softirq_action = defineKernelFn("softirq_test_action", () => {
  note("softirq");
  if (raiseAgain) {
    raiseAgain = false;
    raise_softirq(TEST_SOFTIRQ);
  }
});

const test_irq_handler = defineKernelFn("softirq_test_irq_handler", () => note("irq"));

/** A work item that raises the test line on its own CPU, then passes sched points with interrupts on. */
const test_work_fn = defineKernelFn("softirq_test_work_fn", () => {
  inWork = true;
  raise_irq_on(0, TEST_IRQ);
  for (let i = 0; i < 4; i++) sched_point(SP_LOCK);
  inWork = false;
});

/** An RCU callback (RCU_SOFTIRQ) that raises the test line, passes sched points, and frees its record. */
const test_rcu_cb = defineKernelFn("softirq_test_rcu_cb", (head: number) => {
  inCallback = true;
  note("callback");
  raise_irq_on(0, TEST_IRQ);
  for (let i = 0; i < 4; i++) sched_point(SP_LOCK);
  inCallback = false;
  kfree(head);
});

function boot(over: Partial<MachineConfig> = {}): void {
  start_kernel(makeConfig({ cpus: 1, ...over }));
  percpuCpuOnline();
  rcu_cpu_starting(0);
  open_softirq(TEST_SOFTIRQ, test_softirq_action);
  seen = [];
  inWork = inCallback = lockHeld = raiseAgain = false;
  takeReports();
}

/** Passes sched points until `done` or `max` points; returns the points passed. */
function until(done: () => boolean, max: number): number {
  let n = 0;
  while (!done() && n < max) {
    sched_point(SP_LOCK);
    n++;
  }
  return n;
}

describe("softirqs run where kernel/softirq.c runs them", () => {
  beforeEach(() => boot());

  it("at local_bh_enable: raised with softirqs off, they wait, then run in softirq context with interrupts on", () => {
    local_bh_disable();
    raise_softirq(TEST_SOFTIRQ);
    for (let i = 0; i < 300; i++) sched_op_point();
    expect(seen).toEqual([]);
    local_bh_enable();
    expect(seen).toEqual([
      {
        what: "softirq",
        hardirq: false,
        softirq: true,
        irqsOff: false,
        inWork: false,
        inCallback: false,
        lockHeld: false,
      },
    ]);
    expect(in_softirq()).toBe(false);
    expect(local_softirq_pending()).toBe(0);
    expect(kstat_softirqs_cpu(TEST_SOFTIRQ, 0)).toBe(1);
  });

  it("at irq_exit: right after the handler, out of hardirq context; one raised meanwhile runs in a second round", () => {
    raiseAgain = true;
    runInIrq(() => {
      raise_softirq(TEST_SOFTIRQ);
      note("handler");
    });
    expect(seen.map((s) => [s.what, s.hardirq, s.softirq, s.irqsOff])).toEqual([
      ["handler", true, false, true],
      ["softirq", false, true, false],
      ["softirq", false, true, false],
    ]);
    expect(irqs_disabled()).toBe(false);
    expect(kstat_softirqs_cpu(TEST_SOFTIRQ, 0)).toBe(2);
  });

  it("not at the irq_exit of an interrupt that landed in a softirq or with softirqs off", () => {
    local_bh_disable();
    runInIrq(() => raise_softirq(TEST_SOFTIRQ));
    expect(seen).toEqual([]);
    local_bh_enable();
    expect(seen.length).toBe(1);
  });
});

describe("interrupts land where the kernel has them enabled", () => {
  it("inside a work item the auto kworker runs (process context, interrupts on)", () => {
    boot({ workqueue: "auto" });
    expect(request_irq(TEST_IRQ, test_irq_handler, "softirq_test", 0)).toBe(0);
    // The interrupt path sees the handler at its next run and from then on checks every point.
    sched_op_point();
    const w = percpuSelftestWork(0, 0);
    INIT_WORK(w, test_work_fn);
    schedule_work(w);
    sched_op_point();
    expect(seen.map((s) => [s.what, s.hardirq, s.inWork])).toEqual([["irq", true, true]]);
  });

  it("inside an RCU callback (RCU_SOFTIRQ, interrupts on), in hardirq context above the softirq", () => {
    boot();
    expect(request_irq(TEST_IRQ, test_irq_handler, "softirq_test", 0)).toBe(0);
    call_rcu(kmalloc(16, GFP_KERNEL), test_rcu_cb);
    until(() => seen.length >= 2, 4096);
    expect(seen.map((s) => [s.what, s.hardirq, s.softirq, s.inCallback])).toEqual([
      ["callback", false, true, true],
      ["irq", true, true, true],
    ]);
  });

  it("RCU callbacks run at the tick's irq_exit while the interrupted code holds a spinlock; not under spin_lock_bh", () => {
    boot();
    const lock = percpu_selftest_lock.ptr;
    call_rcu(kmalloc(16, GFP_KERNEL), test_rcu_cb);
    spin_lock_bh(lock);
    lockHeld = true;
    until(() => false, 2048);
    expect(seen).toEqual([]);
    expect(local_softirq_pending() & (1 << RCU_SOFTIRQ)).not.toBe(0);
    lockHeld = false;
    // local_bh_enable runs the RCU softirq raised meanwhile: the callback runs here.
    spin_unlock_bh(lock);
    expect(seen.map((s) => [s.what, s.softirq, s.lockHeld])).toEqual([["callback", true, false]]);

    seen = [];
    call_rcu(kmalloc(16, GFP_KERNEL), test_rcu_cb);
    spin_lock(lock);
    lockHeld = true;
    until(() => seen.length > 0, 4096);
    lockHeld = false;
    spin_unlock(lock);
    expect(seen.map((s) => [s.what, s.softirq, s.lockHeld])).toEqual([["callback", true, true]]);
    expect(takeReports()).toEqual([]);
  });

  it("never with interrupts off: the tick's softirq waits for interrupts on", () => {
    boot();
    call_rcu(kmalloc(16, GFP_KERNEL), test_rcu_cb);
    const flags = local_irq_save();
    until(() => false, 2048);
    expect(seen).toEqual([]);
    local_irq_restore(flags);
    until(() => seen.length > 0, 4096);
    expect(seen.map((s) => [s.what, s.softirq, s.irqsOff])).toEqual([["callback", true, false]]);
  });
});
