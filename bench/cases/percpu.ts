/** Per-CPU machinery: the sched-point hook every CPU runs, queueing and running work, taking an interrupt. */
import { makeConfig } from "../../src/shared/config.js";
import { defineKernelFn } from "../../src/shared/functab.js";
import { SP_LOCK, sched_point } from "../../src/sched/sched_point.js";
import { percpuCpuOnline } from "../../src/kernel/cpuhp.js";
import { do_irq, request_irq } from "../../src/kernel/irq.js";
import { INIT_WORK, run_pending_work, schedule_work } from "../../src/kernel/workqueue.js";
import { start_kernel } from "../../src/workers/boot.js";
import { percpuSelftestWork } from "../../src/workers/workloads/percpu.js";
import type { BenchCase } from "./types.js";

const bench_nop = defineKernelFn("bench_percpu_nop", () => {});
const BENCH_IRQ = 7;
let work = 0;

export const cases: BenchCase[] = [
  {
    name: "sched_point with the per-CPU hook (no interrupt pending, kworker idle)",
    target: "< 10 ns/op",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1 }));
      percpuCpuOnline();
    },
    fn: () => sched_point(SP_LOCK),
  },
  {
    name: "schedule_work + run_pending_work, empty work function",
    target: "< 500 ns/op",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1, workqueue: "explicit" }));
      percpuCpuOnline();
      work = percpuSelftestWork(0, 0);
      INIT_WORK(work, bench_nop);
    },
    fn: () => {
      schedule_work(work);
      run_pending_work();
    },
  },
  {
    name: "do_irq, empty handler",
    target: "< 200 ns/op",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1 }));
      percpuCpuOnline();
      request_irq(BENCH_IRQ, bench_nop, "bench", 0);
    },
    fn: () => do_irq(BENCH_IRQ),
  },
];
