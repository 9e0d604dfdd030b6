import { beforeEach, describe, expect, it } from "vitest";
import { DEFINE_PER_CPU, per_cpu_ptr, theArena } from "../src/shared/arena.js";
import { KernelBug } from "../src/shared/bug.js";
import { makeConfig } from "../src/shared/config.js";
import { defineStruct } from "../src/shared/struct.js";
import { HARDIRQ_MASK, HARDIRQ_OFFSET, SOFTIRQ_DISABLE_OFFSET } from "../src/shared/preempt_mask.js";
import {
  in_atomic,
  in_interrupt,
  in_irq,
  in_softirq,
  irqs_disabled,
  local_irq_restore,
  local_irq_save,
  preempt_count,
} from "../src/percpu/preempt.js";
import { irq_enter, irq_exit, local_bh_disable, local_bh_enable } from "../src/percpu/softirq.js";
import {
  for_each_online_cpu,
  for_each_possible_cpu,
  get_cpu,
  num_possible_cpus,
  per_cpu,
  put_cpu,
  raw_cpu_ptr,
  this_cpu_add,
  this_cpu_dec,
  this_cpu_inc,
  this_cpu_read,
  this_cpu_write,
} from "../src/percpu/percpu.js";
import { setCurrentCpu, smp_processor_id, this_cpu_ptr } from "../src/shared/smp.js";
import { start_kernel } from "../src/workers/boot.js";

const COUNTERS = defineStruct("percpu_test_counters", [
  { name: "a", type: "i32", guard: "owner" },
  { name: "b", type: "i32", guard: "owner" },
]);
const counters = DEFINE_PER_CPU("percpu_test_counters", COUNTERS);

beforeEach(() => {
  start_kernel(makeConfig({ cpus: 4, seed: 1 }));
});

describe("per-CPU variables", () => {
  it("each CPU has its own instance, one whole number of cache lines apart", () => {
    const addrs = for_each_possible_cpu().map((cpu) => per_cpu_ptr(counters, cpu));
    expect(new Set(addrs).size).toBe(4);
    const stride = theArena().percpuStride;
    expect(stride % 64).toBe(0);
    expect(stride).toBeGreaterThanOrEqual(64);
    for (let cpu = 1; cpu < 4; cpu++) expect(addrs[cpu]! - addrs[cpu - 1]!).toBe(stride);
    // this CPU's instance is per_cpu_ptr of this CPU, raw or not.
    setCurrentCpu(2);
    expect(this_cpu_ptr(counters)).toBe(addrs[2]);
    expect(raw_cpu_ptr(counters)).toBe(addrs[2]);
    setCurrentCpu(0);
    expect(raw_cpu_ptr(counters)).toBe(addrs[0]);
  });

  it("this_cpu ops touch only this CPU's instance; per_cpu reads any", () => {
    for (const cpu of for_each_possible_cpu()) {
      setCurrentCpu(cpu);
      this_cpu_write(counters, "a", 10 * cpu);
      this_cpu_inc(counters, "a");
      this_cpu_add(counters, "b", 7);
      this_cpu_dec(counters, "b");
    }
    setCurrentCpu(3);
    expect(this_cpu_read(counters, "a")).toBe(31);
    for (const cpu of for_each_possible_cpu()) {
      expect(per_cpu(counters, cpu, "a")).toBe(10 * cpu + 1);
      expect(per_cpu(counters, cpu, "b")).toBe(6);
    }
    setCurrentCpu(0);
  });

  it("per_cpu_ptr of a CPU past the possible ones is UBSAN's out-of-bounds trap, a BUG", () => {
    expect(per_cpu_ptr(counters, 3)).toBe(per_cpu_ptr(counters, 0) + 3 * theArena().percpuStride);
    const slabPoison = 0x6b6b6b6b;
    for (const [cpu, shown] of [
      [4, 4],
      [slabPoison, slabPoison],
      [-1, 0xffffffff],
    ] as const)
      expect(() => per_cpu_ptr(counters, cpu)).toThrow(
        new KernelBug(
          `Internal error: UBSAN: array index out of bounds: per_cpu_ptr: index ${shown} is out of range ` +
            "for type 'unsigned long [4]' (__per_cpu_offset)",
        ),
      );
  });

  it("for_each_possible_cpu and for_each_online_cpu list every CPU", () => {
    expect(num_possible_cpus()).toBe(4);
    expect(for_each_possible_cpu()).toEqual([0, 1, 2, 3]);
    expect(for_each_online_cpu()).toEqual([0, 1, 2, 3]);
    start_kernel(makeConfig({ cpus: 2 }));
    expect(for_each_possible_cpu()).toEqual([0, 1]);
  });

  it("get_cpu disables preemption and returns this CPU; put_cpu restores", () => {
    setCurrentCpu(1);
    expect(preempt_count()).toBe(0);
    expect(get_cpu()).toBe(1);
    expect(preempt_count()).toBe(1);
    expect(in_atomic()).toBe(true);
    expect(in_interrupt()).toBe(false);
    put_cpu();
    expect(preempt_count()).toBe(0);
    expect(smp_processor_id()).toBe(1);
    setCurrentCpu(0);
  });
});

describe("preempt_count and the interrupt flag", () => {
  it("irq_enter sets the hardirq bits: in_interrupt and in_irq until irq_exit", () => {
    irq_enter();
    expect(preempt_count() & HARDIRQ_MASK).toBe(HARDIRQ_OFFSET);
    expect(in_irq()).toBe(true);
    expect(in_interrupt()).toBe(true);
    expect(in_softirq()).toBe(false);
    irq_exit();
    expect(preempt_count()).toBe(0);
    expect(in_interrupt()).toBe(false);
  });

  it("local_bh_disable: in_softirq and in_interrupt, not in_irq", () => {
    local_bh_disable();
    expect(preempt_count()).toBe(SOFTIRQ_DISABLE_OFFSET);
    expect(in_softirq()).toBe(true);
    expect(in_interrupt()).toBe(true);
    expect(in_irq()).toBe(false);
    local_bh_enable();
    expect(in_softirq()).toBe(false);
    expect(preempt_count()).toBe(0);
  });

  it("local_irq_save nests: each restore brings back the flag it saved", () => {
    expect(irqs_disabled()).toBe(false);
    const outer = local_irq_save();
    expect(irqs_disabled()).toBe(true);
    const inner = local_irq_save();
    expect(irqs_disabled()).toBe(true);
    local_irq_restore(inner);
    expect(irqs_disabled()).toBe(true);
    local_irq_restore(outer);
    expect(irqs_disabled()).toBe(false);
  });

  it("the context is per CPU", () => {
    irq_enter();
    setCurrentCpu(1);
    expect(in_irq()).toBe(false);
    setCurrentCpu(0);
    expect(in_irq()).toBe(true);
    irq_exit();
  });
});
