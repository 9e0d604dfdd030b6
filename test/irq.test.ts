import { afterEach, describe, expect, it } from "vitest";
import { type MachineConfig, makeConfig } from "../src/shared/config.js";
import { defineKernelFn } from "../src/shared/functab.js";
import { takeReports } from "../src/shared/report.js";
import { SP_LOCK, sched_op_point, sched_point } from "../src/sched/sched_point.js";
import { spin_lock_irqsave, spin_unlock_irqrestore } from "../src/locks/spinlock.js";
import {
  in_interrupt,
  in_irq,
  irqs_disabled,
  local_irq_restore,
  local_irq_save,
  preempt_count,
} from "../src/percpu/preempt.js";
import {
  do_irq,
  free_irq,
  irq_err_count,
  kstat_cpu_irqs_sum,
  kstat_irqs_cpu,
  raise_irq_on,
  request_irq,
  runInIrq,
  show_interrupts,
} from "../src/kernel/irq.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { smp_processor_id } from "../src/shared/smp.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine } from "../src/workers/machine.js";
import { PERCPU_SELFTEST_IRQ, percpu_selftest_lock } from "../src/workers/workloads/percpu.js";

/* What the test handler saw, per call (the main thread is the only CPU in unit tests). */
interface Seen {
  dev: number;
  inIrq: boolean;
  inInterrupt: boolean;
  irqsOff: boolean;
  at: number;
  region: boolean;
}
let seen: Seen[] = [];
/** Position of the current sched point in a test loop, and whether it is in an irqs-off region. */
let at = -1;
let region = false;
/** When set, the handler raises its own line again and passes sched points (nesting must not happen). */
let reraise = false;

const TEST_IRQ = 5;
const test_handler = defineKernelFn("irq_test_handler", (dev: number) => {
  seen.push({ dev, inIrq: in_irq(), inInterrupt: in_interrupt(), irqsOff: irqs_disabled(), at, region });
  if (reraise) {
    reraise = false;
    raise_irq_on(smp_processor_id(), TEST_IRQ);
    sched_op_point();
    sched_op_point();
  }
});

function boot(over: Partial<MachineConfig> = {}): void {
  start_kernel(makeConfig({ cpus: 1, ...over }));
  percpuCpuOnline();
  seen = [];
  at = -1;
  region = false;
  takeReports();
}

/** Positions (sched point numbers) at which interrupts were taken in `n` SP_OP points. */
function positions(seed: number, irqRate: number, n: number): number[] {
  boot({ seed, irqRate });
  expect(request_irq(TEST_IRQ, test_handler, "test", 0)).toBe(0);
  for (at = 0; at < n; at++) sched_op_point();
  at = -1;
  return seen.map((s) => s.at);
}

describe("request_irq and free_irq", () => {
  it("a line takes one handler; free_irq frees it; bad requests fail", () => {
    boot();
    expect(request_irq(TEST_IRQ, test_handler, "test", 0x40)).toBe(0);
    expect(request_irq(TEST_IRQ, test_handler, "again", 0)).toBe(-16); // -EBUSY
    expect(request_irq(TEST_IRQ + 1, 0, "null", 0)).toBe(-22); // -EINVAL
    expect(() => request_irq(16, test_handler, "x", 0)).toThrow(RangeError);
    free_irq(TEST_IRQ, 0x40);
    expect(request_irq(TEST_IRQ, test_handler, "again", 0)).toBe(0);
    free_irq(TEST_IRQ, 0);
    expect(takeReports()).toEqual([]);
    free_irq(TEST_IRQ, 0);
    expect(takeReports().map((r) => r.text)).toEqual(["WARNING: Trying to free already-free IRQ 5"]);
  });
});

describe("taking an interrupt", () => {
  it("do_irq runs the handler in hardirq context with interrupts masked, and counts it", () => {
    boot();
    request_irq(TEST_IRQ, test_handler, "test_dev", 0x1234);
    do_irq(TEST_IRQ);
    expect(seen).toEqual([{ dev: 0x1234, inIrq: true, inInterrupt: true, irqsOff: true, at: -1, region: false }]);
    expect(preempt_count()).toBe(0);
    expect(irqs_disabled()).toBe(false);
    expect(kstat_irqs_cpu(TEST_IRQ, 0)).toBe(1);
    expect(kstat_cpu_irqs_sum(0)).toBe(1);
    expect(show_interrupts()).toBe(
      ["           CPU0", "  5:          1  vmsim  test_dev", "Err:          0"].join("\n"),
    );
  });

  it("runInIrq runs harness code in interrupt context and returns its value", () => {
    boot();
    expect(runInIrq(() => [in_irq(), irqs_disabled()])).toEqual([true, true]);
    expect(in_irq()).toBe(false);
    expect(kstat_cpu_irqs_sum(0)).toBe(1);
  });

  it("a raised interrupt is taken at the next sched point, not before", () => {
    boot();
    request_irq(TEST_IRQ, test_handler, "test", 0);
    // A CPU notices a newly requested line at its next safe point (or within IRQ_IDLE_PERIOD points).
    sched_op_point();
    raise_irq_on(0, TEST_IRQ);
    expect(seen).toEqual([]);
    at = 1;
    sched_point(SP_LOCK);
    expect(seen.map((s) => s.at)).toEqual([1]);
    sched_point(SP_LOCK);
    expect(seen.length).toBe(1);
  });

  it("with interrupts masked it waits, and is taken at the first sched point after they are enabled", () => {
    boot();
    request_irq(TEST_IRQ, test_handler, "test", 0);
    const flags = local_irq_save();
    raise_irq_on(0, TEST_IRQ);
    for (let i = 0; i < 5; i++) sched_op_point();
    expect(seen).toEqual([]);
    local_irq_restore(flags);
    sched_op_point();
    expect(seen.length).toBe(1);
  });

  it("does not nest: raised inside a handler, it is taken after that handler returns", () => {
    boot();
    request_irq(TEST_IRQ, test_handler, "test", 0);
    reraise = true;
    do_irq(TEST_IRQ);
    expect(seen.length).toBe(1);
    sched_op_point();
    expect(seen.length).toBe(2);
    expect(seen.every((s) => s.inIrq)).toBe(true);
  });

  it("an interrupt on a line with no handler counts as an error", () => {
    boot();
    raise_irq_on(0, 9);
    sched_op_point();
    expect(irq_err_count()).toBe(1);
    expect(kstat_irqs_cpu(9, 0)).toBe(1);
  });
});

describe("random interrupts (irqRate)", () => {
  it("are off by default, and at every sched point with irqRate 1", () => {
    expect(positions(1, 0, 2000)).toEqual([]);
    expect(positions(1, 1, 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("arrive at the same sched points for the same seed (seed 7 vs 8)", () => {
    const a = positions(7, 0.05, 2000);
    const b = positions(7, 0.05, 2000);
    const c = positions(8, 0.05, 2000);
    expect(a).toEqual(b);
    expect(a.length).toBeGreaterThan(50);
    expect(a.length).toBeLessThan(150);
    expect(c).not.toEqual(a);
  });

  it("never arrive inside spin_lock_irqsave regions, and the handler always runs in hardirq context", () => {
    boot({ seed: 3, irqRate: 0.3 });
    request_irq(TEST_IRQ, test_handler, "test", 0);
    for (let i = 0; i < 500; i++) {
      sched_op_point();
      const flags = spin_lock_irqsave(percpu_selftest_lock.ptr);
      region = true;
      for (let j = 0; j < 3; j++) sched_op_point();
      region = false;
      spin_unlock_irqrestore(percpu_selftest_lock.ptr, flags);
    }
    expect(seen.length).toBeGreaterThan(100);
    expect(seen.filter((s) => s.region)).toEqual([]);
    expect(seen.every((s) => s.inIrq && s.inInterrupt && s.irqsOff)).toBe(true);
  });
});

describe("interrupts on a machine (2 CPUs, seed 11)", () => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it("an interrupt raised on another CPU is taken at that CPU's next sched point", async () => {
    m = await Machine.boot({ cpus: 2, seed: 11 });
    expect(await m.run(0, "percpu_irq_request")).toBe(0);
    await m.run(0, "percpu_irq_raise", { cpu: 1 });
    expect(await m.run(1, "percpu_irq_take_next")).toEqual([0, 1]);
    expect(await m.run(0, "percpu_irq_take_next")).toEqual([0, 0]);
    const stats = (await m.run(0, "percpu_selftest_stats")) as { irqsHandled: number; badContext: number };
    expect(stats.irqsHandled).toBe(1);
    expect(stats.badContext).toBe(0);
    expect(kstat_irqs_cpu(PERCPU_SELFTEST_IRQ, 1)).toBe(1);
  });
});
