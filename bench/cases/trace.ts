/**
 * Span tracing (src/trace/trace.ts) switched on: what a traced lock pair and
 * a traced vmalloc+vfree cost, to set beside the untraced cases of
 * bench/cases/locks.ts and bench/cases/vmalloc.ts (tracing off, each hook is
 * one test of a module boolean). A traced uncontended lock pair records two
 * events; a one-page vmalloc+vfree about fourteen (its two API spans and
 * every lock it takes, down to zone->lock, the purge's share included).
 */
import { makeConfig } from "../../src/shared/config.js";
import { start_kernel } from "../../src/workers/boot.js";
import { percpuCpuOnline } from "../../src/kernel/cpuhp.js";
import { rcu_cpu_starting } from "../../src/rcu/tree.js";
import { spin_lock, spin_unlock } from "../../src/locks/spinlock.js";
import { vfree, vmalloc } from "../../src/mm/vmalloc.js";
import { traceCpuOnline } from "../../src/trace/trace.js";
import { bench_spinlock } from "../../src/workers/workloads/locks.js";
import type { BenchCase } from "./types.js";

/** Events each CPU keeps: the default of `--trace`. */
const TRACE = 65536;

export const cases: BenchCase[] = [
  {
    name: "spin_lock+spin_unlock (uncontended, tracing on)",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1, lockdep: false, trace: TRACE }));
      traceCpuOnline();
    },
    fn: () => {
      spin_lock(bench_spinlock.ptr);
      spin_unlock(bench_spinlock.ptr);
    },
  },
  {
    name: "vmalloc+vfree 1 page (lockdep, slub_debug off; tracing on)",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1, lockdep: false, slubDebug: false, trace: TRACE }));
      rcu_cpu_starting(0);
      percpuCpuOnline();
    },
    fn: () => {
      vfree(vmalloc(4096));
    },
  },
];
