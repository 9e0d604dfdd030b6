/**
 * Two tiny races for the deterministic scheduler's own tests and for a first
 * `vmsim explore` (scenarios demo:lost-update and demo:abba): small enough
 * that bounded exhaustive search covers every schedule in a second.
 *
 * - lost_update: each CPU adds 1 to a shared counter `ops` times as a load,
 *   a sched point (an interrupt, a preemption) and a store — no lock, no
 *   atomic RMW. One preemption between another CPU's load and store loses an
 *   update; lost_update_check WARNs when the sum is short.
 * - abba: CPU0 takes demo_lock_a then demo_lock_b, the others b then a: one
 *   preemption while a CPU holds its first lock deadlocks the machine.
 */
import { DEFINE_GLOBAL, I32, staticInit } from "../../shared/arena.js";
import { reportBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { SP_ATOMIC, sched_op_point, sched_point } from "../../sched/sched_point.js";
import { num_online_cpus } from "../../shared/smp.js";
import { DEFINE_SPINLOCK, spin_lock, spin_unlock } from "../../locks/spinlock.js";
import { defineWorkload } from "../workload.js";

export const DEMO_COUNTER = defineStruct("demo_counter", [
  /** Racy on purpose: a plain load and store with a sched point between them. */
  { name: "value", type: "i32", guard: "none: the lost update is the point" },
]);
const demo_counter = DEFINE_GLOBAL("demo_counter", DEMO_COUNTER);
staticInit(() => {
  I32[demo_counter.ptr >> 2] = 0;
});

const demo_lock_a = DEFINE_SPINLOCK("demo_lock_a");
const demo_lock_b = DEFINE_SPINLOCK("demo_lock_b");

defineWorkload("lost_update", (a: { ops: number; skip?: readonly number[] }): void => {
  const skip = new Set(a.skip ?? []);
  const w = demo_counter.ptr >> 2;
  for (let i = 0; i < a.ops; i++) {
    if (skip.has(i)) continue;
    const v = Atomics.load(I32, w);
    sched_point(SP_ATOMIC);
    Atomics.store(I32, w, v + 1);
    sched_op_point();
  }
});

/** WARNs when updates were lost: `expected` = the increments every CPU made. */
defineWorkload("lost_update_check", (a: { expected: number }): number => {
  const v = Atomics.load(I32, demo_counter.ptr >> 2);
  if (v !== a.expected)
    reportBug("WARN", `WARNING: lost update: counter is ${v}, expected ${a.expected} (${num_online_cpus()} CPUs)`);
  return v;
});

defineWorkload("abba", (a: { ops: number; skip?: readonly number[] }, ctx): void => {
  const skip = new Set(a.skip ?? []);
  const [first, second] = ctx.cpu === 0 ? [demo_lock_a, demo_lock_b] : [demo_lock_b, demo_lock_a];
  for (let i = 0; i < a.ops; i++) {
    if (skip.has(i)) continue;
    spin_lock(first.ptr);
    spin_lock(second.ptr);
    spin_unlock(second.ptr);
    spin_unlock(first.ptr);
    sched_op_point();
  }
});
