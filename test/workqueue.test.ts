import { afterEach, describe, expect, it } from "vitest";
import { type MachineConfig, makeConfig } from "../src/shared/config.js";
import { defineKernelFn } from "../src/shared/functab.js";
import { takeReports } from "../src/shared/report.js";
import { SP_LOCK, sched_op_point, sched_point } from "../src/sched/sched_point.js";
import { spin_lock, spin_unlock } from "../src/locks/spinlock.js";
import {
  in_interrupt,
  local_irq_restore,
  local_irq_save,
  preempt_count,
  preempt_disable,
  preempt_enable,
} from "../src/percpu/preempt.js";
import { do_irq, request_irq } from "../src/kernel/irq.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { setCurrentCpu, smp_processor_id } from "../src/shared/smp.js";
import {
  INIT_WORK,
  flush_scheduled_work,
  flush_work,
  run_pending_work,
  schedule_work,
  schedule_work_on,
  work_pending,
} from "../src/kernel/workqueue.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine } from "../src/workers/machine.js";
import { percpuSelftestWork, percpu_selftest_lock } from "../src/workers/workloads/percpu.js";

/* One record per run of a test work function: which work, on which CPU, in which context. */
interface Run {
  work: number;
  cpu: number;
  inInterrupt: boolean;
  preempt: number;
  pending: boolean;
}
let runs: Run[] = [];
/** The test work function does this (once) after recording its run. */
let then: ((work: number) => void) | null = null;

const test_work_fn = defineKernelFn("wq_test_work_fn", (work: number) => {
  runs.push({
    work,
    cpu: smp_processor_id(),
    inInterrupt: in_interrupt(),
    preempt: preempt_count(),
    pending: work_pending(work),
  });
  const f = then;
  then = null;
  f?.(work);
});

/** Queues this CPU's work `i` from hardirq context. */
const test_irq_handler = defineKernelFn("wq_test_irq_handler", (i: number) => {
  schedule_work(percpuSelftestWork(smp_processor_id(), i));
});

function boot(over: Partial<MachineConfig> = {}): void {
  start_kernel(makeConfig({ cpus: 4, ...over }));
  percpuCpuOnline();
  runs = [];
  then = null;
  takeReports();
}

/** Work item `i` of CPU `cpu`, (re)initialised to run the test function. */
function work(cpu: number, i: number): number {
  const w = percpuSelftestWork(cpu, i);
  INIT_WORK(w, test_work_fn);
  return w;
}

describe("schedule_work (explicit mode)", () => {
  it("queues once while pending; the kworker runs it once, PENDING cleared before the call", () => {
    boot({ workqueue: "explicit" });
    const w = work(0, 0);
    expect(work_pending(w)).toBe(false);
    expect(schedule_work(w)).toBe(true);
    expect(schedule_work(w)).toBe(false);
    expect(work_pending(w)).toBe(true);
    for (let i = 0; i < 10; i++) sched_op_point();
    expect(runs).toEqual([]);
    expect(run_pending_work()).toBe(1);
    expect(runs).toEqual([{ work: w, cpu: 0, inInterrupt: false, preempt: 0, pending: false }]);
    expect(work_pending(w)).toBe(false);
    expect(run_pending_work()).toBe(0);
    expect(schedule_work(w)).toBe(true);
    expect(run_pending_work()).toBe(1);
    expect(runs.length).toBe(2);
  });

  it("runs items in queueing order; a work may requeue itself from its function", () => {
    boot({ workqueue: "explicit" });
    const [a, b, c] = [work(0, 0), work(0, 1), work(0, 2)];
    schedule_work(b);
    schedule_work(a);
    schedule_work(c);
    then = (w) => expect(schedule_work(w)).toBe(true);
    expect(run_pending_work()).toBe(4);
    expect(runs.map((r) => r.work)).toEqual([b, a, c, b]);
  });

  it("a work queued for another CPU while it runs here is queued behind that run (never on two CPUs at once)", () => {
    boot({ workqueue: "explicit" });
    const w = work(0, 0);
    schedule_work(w);
    then = (x) => expect(schedule_work_on(1, x)).toBe(true);
    expect(run_pending_work()).toBe(2); // both runs on CPU 0's pool
    setCurrentCpu(1);
    expect(run_pending_work()).toBe(0);
    setCurrentCpu(0);
    expect(runs.map((r) => r.cpu)).toEqual([0, 0]);
  });

  it("schedule_work_on queues on that CPU's pool only", () => {
    boot({ workqueue: "explicit" });
    const w = work(0, 0);
    schedule_work_on(2, w);
    expect(run_pending_work()).toBe(0);
    setCurrentCpu(2);
    expect(run_pending_work()).toBe(1);
    setCurrentCpu(0);
    expect(runs.map((r) => r.cpu)).toEqual([2]);
  });

  it("a kworker leaking preempt_count is reported", () => {
    boot({ workqueue: "explicit" });
    schedule_work(work(0, 0));
    then = () => preempt_disable();
    run_pending_work();
    preempt_enable();
    const reports = takeReports();
    expect(reports.length).toBe(1);
    expect(reports[0]!.text).toMatch(
      /^BUG: workqueue leaked lock or atomic: kworker\/0\/0x00000001\n {5}last function: wq_test_work_fn/,
    );
  });
});

describe("auto mode: the kworker runs at safe points", () => {
  it("at the next SP_OP point, not at lock points", () => {
    boot();
    schedule_work(work(0, 0));
    sched_point(SP_LOCK);
    expect(runs).toEqual([]);
    sched_op_point();
    expect(runs.length).toBe(1);
  });

  it("not while a lock is held, preemption or interrupts are off", () => {
    boot();
    schedule_work(work(0, 0));
    spin_lock(percpu_selftest_lock.ptr);
    sched_op_point();
    spin_unlock(percpu_selftest_lock.ptr);
    preempt_disable();
    sched_op_point();
    preempt_enable();
    const flags = local_irq_save();
    sched_op_point();
    local_irq_restore(flags);
    expect(runs).toEqual([]);
    sched_op_point();
    expect(runs.length).toBe(1);
  });

  it("work queued from an interrupt runs later, in process context, on the interrupted CPU", () => {
    boot();
    request_irq(4, test_irq_handler, "wq_test", 3);
    setCurrentCpu(2);
    work(2, 3);
    do_irq(4);
    expect(runs).toEqual([]);
    sched_op_point();
    setCurrentCpu(0);
    expect(runs).toEqual([{ work: percpuSelftestWork(2, 3), cpu: 2, inInterrupt: false, preempt: 0, pending: false }]);
  });
});

describe("flush_work", () => {
  it("returns false for an idle work, runs a queued one and returns true", () => {
    boot({ workqueue: "explicit" });
    const w = work(0, 0);
    expect(flush_work(w)).toBe(false);
    schedule_work(w);
    expect(flush_work(w)).toBe(true);
    expect(runs.length).toBe(1);
    expect(flush_work(w)).toBe(false);
  });

  it("runs the items queued before the flushed one, not those after it", () => {
    boot({ workqueue: "explicit" });
    const [a, b, c] = [work(0, 0), work(0, 1), work(0, 2)];
    schedule_work(a);
    schedule_work(b);
    schedule_work(c);
    expect(flush_work(b)).toBe(true);
    expect(runs.map((r) => r.work)).toEqual([a, b]);
    expect(work_pending(c)).toBe(true);
  });

  it("runs a work queued on a parked CPU's pool here, as an unbound worker", () => {
    boot({ workqueue: "explicit" });
    const w = work(0, 0);
    schedule_work_on(3, w);
    expect(flush_work(w)).toBe(true);
    expect(runs.map((r) => r.cpu)).toEqual([0]);
  });

  it("from the work's own function: a lockdep report instead of waiting for itself", () => {
    boot({ workqueue: "explicit" });
    const w = work(0, 0);
    schedule_work(w);
    let flushed: boolean | undefined;
    then = (x) => {
      flushed = flush_work(x);
    };
    run_pending_work();
    expect(flushed).toBe(false);
    expect(takeReports().map((r) => r.kind)).toEqual(["lockdep"]);
  });

  it("from atomic context: a might_sleep report, and no wait", () => {
    boot({ workqueue: "explicit" });
    const w = work(0, 0);
    schedule_work(w);
    spin_lock(percpu_selftest_lock.ptr);
    expect(flush_work(w)).toBe(false);
    spin_unlock(percpu_selftest_lock.ptr);
    expect(takeReports()[0]!.text).toMatch(/^BUG: sleeping function called from invalid context/);
    expect(runs).toEqual([]);
  });

  it("flush_scheduled_work runs what every CPU has queued", () => {
    boot({ workqueue: "explicit" });
    for (let cpu = 0; cpu < 4; cpu++) for (let i = 0; i < 2; i++) schedule_work_on(cpu, work(cpu, i));
    flush_scheduled_work();
    expect(runs.length).toBe(8);
    for (let cpu = 0; cpu < 4; cpu++) {
      setCurrentCpu(cpu);
      expect(run_pending_work()).toBe(0);
    }
    setCurrentCpu(0);
  });
});

interface Stats {
  workRan: number;
  irqWorkQueued: number;
  irqWorkRan: number;
  irqsHandled: number;
  badContext: number;
}

describe.each([
  { cpus: 2, seed: 21 },
  { cpus: 4, seed: 22 },
])("work and interrupts on $cpus CPUs (seed $seed)", ({ cpus, seed }) => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it("auto: every successful queueing runs exactly once, always in process context", async () => {
    m = await Machine.boot({ cpus, seed, irqRate: 0.01 });
    expect(await m.run(0, "percpu_irq_request")).toBe(0);
    const queued = (await m.runAll("percpu_wq_storm", {
      rounds: 3000,
      cross: true,
      flushEvery: 7,
      flushAtEnd: true,
    })) as number[];
    await m.runAll("percpu_quiesce_flush");
    const s = (await m.run(0, "percpu_selftest_stats")) as Stats;
    expect(s.workRan).toBe(queued.reduce((a, b) => a + b, 0));
    expect(s.irqsHandled).toBeGreaterThan(0);
    expect(s.irqWorkQueued).toBeGreaterThan(0);
    expect(s.irqWorkRan).toBe(s.irqWorkQueued);
    expect(s.badContext).toBe(0);
    expect(m.reports).toEqual([]);
  });

  it("explicit: nothing runs until asked, then everything once", async () => {
    m = await Machine.boot({ cpus, seed, workqueue: "explicit" });
    const args = { rounds: 200, cross: false, flushEvery: 0, flushAtEnd: false };
    // 200 safe points per CPU and nothing ran: each of a CPU's 8 items was queued once, then stayed pending.
    const queued = (await m.runAll("percpu_wq_storm", args)) as number[];
    expect(queued).toEqual(Array(cpus).fill(8));
    expect(((await m.run(0, "percpu_selftest_stats")) as Stats).workRan).toBe(0);
    expect(await m.runAll("percpu_run_pending_work")).toEqual(queued);
    expect(((await m.run(0, "percpu_selftest_stats")) as Stats).workRan).toBe(8 * cpus);
    expect(await m.runAll("percpu_run_pending_work")).toEqual(Array(cpus).fill(0));
    expect(m.reports).toEqual([]);
  });
});
