/**
 * vmalloc: the kernel's lib/test_vmalloc.c fix_size_alloc_test loop body — a
 * one-page vmalloc and its vfree — on one CPU. The lazy purge (one every
 * lazy_max_pages / 2 pairs: 4096 on one CPU) is part of the measured cost, as
 * it is in the kernel's figure. Like that figure (a production kernel), the
 * machine runs without lockdep and without slub_debug poisoning.
 */
import { makeConfig } from "../../src/shared/config.js";
import { start_kernel } from "../../src/workers/boot.js";
import { percpuCpuOnline } from "../../src/kernel/cpuhp.js";
import { rcu_cpu_starting } from "../../src/rcu/tree.js";
import { vfree, vmalloc } from "../../src/mm/vmalloc.js";
import type { BenchCase } from "./types.js";

export const cases: BenchCase[] = [
  {
    name: "vmalloc+vfree 1 page (fix_size_alloc_test loop; lockdep, slub_debug off)",
    target: "≤ 2 µs/op",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1, lockdep: false, slubDebug: false }));
      // RCU and the kworker on the main thread: the purge's kfree_rcu'd vmap_areas must come back.
      rcu_cpu_starting(0);
      percpuCpuOnline();
    },
    fn: () => {
      vfree(vmalloc(4096));
    },
  },
];
