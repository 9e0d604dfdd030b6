/**
 * The vmalloc benchmark: the kernel's lib/test_vmalloc.c loops
 * (fix_size_alloc_test, random_size_alloc_test, long_busy_list_alloc_test;
 * src/workers/workloads/test_vmalloc.ts) on machines of 1 and 2 CPUs, every
 * CPU running the test at once as the module's workers do (measured by
 * src/workers/scaling.ts, as `vmsim bench` does). Reports µs per
 * vmalloc+vfree pair — the median over repeats and CPUs of each CPU's timed
 * loop / its pairs — and writes bench/results/vmalloc.{md,json} with the
 * machine it ran on.
 *
 *   node dist/bench/vmalloc.js [--cpus 1,2] [--repeats 5] [--loops 100000] [--lockdep] [--out <dir>]
 *
 * `--loops` is fix_size's test_loop_count (the module's default is 1000000);
 * random_size and long_busy_list run a tenth of it (their pairs map 50 and
 * 50.5 pages on average, not 1). The machine has 256 MiB (long_busy_list keeps
 * 15000 one-page areas per CPU), lockdep off unless --lockdep (the kernel's
 * figure is from a production kernel), no interrupts.
 */
import { parseArgs } from "node:util";
import { type ScalingPoint, measureTestVmalloc } from "../src/workers/scaling.js";
import type { TestVmallocCase } from "../src/workers/workloads/test_vmalloc.js";
import { RESULTS_DIR, fmt, hostInfo, hostLine, writeResults, positiveInt, runBenchMain } from "./report.js";

/** The target of the vmalloc issue: a 1-page pair on 1 CPU. */
const TARGET_US = 2;
/** The kernel's published fix_size figure (µs per pair, 1 CPU, Threadripper 3970X). */
const KERNEL_US = 0.58;
const MEMORY = 256 * 1024 * 1024;
/** The module's loops this benchmark has tracked since the vmalloc issue. */
const TESTS: readonly TestVmallocCase[] = [
  "fix_size_alloc_test",
  "random_size_alloc_test",
  "long_busy_list_alloc_test",
];

/** One (test, CPU count) row: the measurement and the target it is held to. */
interface Point extends ScalingPoint {
  readonly target: string | null;
  readonly met: boolean | null;
}

async function measure(cpus: number, repeats: number, loops: number, lockdep: boolean): Promise<Point[]> {
  const points = await measureTestVmalloc(cpus, { tests: TESTS, repeats, loops, lockdep, memory: MEMORY });
  return points.map((p) => {
    const target = p.test === "fix_size_alloc_test" && cpus === 1 ? `≤ ${TARGET_US} µs` : null;
    return { ...p, target, met: target === null ? null : p.usPerPair <= TARGET_US };
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cpus: { type: "string", default: "1,2" },
      repeats: { type: "string", default: "5" },
      loops: { type: "string", default: "100000" },
      lockdep: { type: "boolean", default: false },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const cpuCounts = values.cpus.split(",").map((c) => positiveInt("cpus", c));
  const repeats = positiveInt("repeats", values.repeats);
  const loops = positiveInt("loops", values.loops);

  const points: Point[] = [];
  for (const cpus of cpuCounts) points.push(...(await measure(cpus, repeats, loops, values.lockdep)));

  const host = hostInfo();
  const md = `${[
    hostLine(host),
    "",
    `lib/test_vmalloc.c loops, every CPU at once; ${MEMORY / 2 ** 20} MiB, lockdep ${values.lockdep ? "on" : "off"}, slub_debug off, no interrupts; ` +
      `µs per vmalloc+vfree pair = median over ${repeats} repeats × CPUs of (timed loop / pairs).`,
    "",
    "| test | CPUs | loops | µs per pair (median) | ±rme | test usec (module's avg) | pairs/s (all CPUs) | target | met? |",
    "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ...points.map(
      (p) =>
        `| ${p.test} | ${p.cpus} | ${fmt(p.loops)} | ${fmt(p.usPerPair)} | ${p.rmePct.toFixed(2)}% | ${fmt(p.testUsec)} | ${fmt(p.pairsPerSec)} | ${p.target ?? ""} | ${p.met === null ? "" : p.met ? "yes" : "**no**"} |`,
    ),
    "",
    `The kernel's published fix_size_alloc_test figure: ${KERNEL_US} µs per pair on 1 CPU (Threadripper 3970X).`,
  ].join("\n")}\n`;
  process.stdout.write(md);
  writeResults(values.out, "vmalloc", md, { host, memory: MEMORY, lockdep: values.lockdep, repeats, points });
}

await runBenchMain(main);
