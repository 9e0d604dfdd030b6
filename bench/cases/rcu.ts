/** RCU: the read-side pair every lockless lookup pays, and one callback through a full grace period. */
import { makeConfig } from "../../src/shared/config.js";
import { defineKernelFn } from "../../src/shared/functab.js";
import { GFP_KERNEL } from "../../src/mm/gfp.js";
import { kzalloc } from "../../src/mm/slab.js";
import { rcu_read_lock, rcu_read_unlock } from "../../src/rcu/rcupdate.js";
import { call_rcu, rcu_barrier } from "../../src/rcu/tree.js";
import { start_kernel } from "../../src/workers/boot.js";
import type { BenchCase } from "./types.js";

let head = 0;
const bench_rcu_callback = defineKernelFn("bench_rcu_callback", () => {});

export const cases: BenchCase[] = [
  {
    name: "rcu_read_lock+rcu_read_unlock pair",
    target: "≤ 20 ns/op",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1 }));
      // Warm: the first call queues the idle hook and is JIT-cold, which would skew batch calibration.
      for (let i = 0; i < 10_000; i++) {
        rcu_read_lock();
        rcu_read_unlock();
      }
    },
    fn: () => {
      rcu_read_lock();
      rcu_read_unlock();
    },
  },
  {
    name: "call_rcu+rcu_barrier, one callback, 1 CPU (a full grace period)",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1 }));
      head = kzalloc(16, GFP_KERNEL);
      for (let i = 0; i < 1000; i++) {
        call_rcu(head, bench_rcu_callback);
        rcu_barrier();
      }
    },
    fn: () => {
      call_rcu(head, bench_rcu_callback);
      rcu_barrier();
    },
  },
];
