/**
 * Scaling: one workload on machines of 1, 2, 4 … CPUs, every CPU running it at
 * once, timed from the main thread (boot excluded). Prints a Markdown table
 * and writes bench/results/scaling.{md,json}.
 *
 *   node dist/bench/scaling.js [--cpus 1,2,4] [--workload spin_counter] [--iters 200000] [--repeats 5]
 *
 * The workload gets `{ iters }` on every CPU and must do `iters` operations;
 * ns/op is wall time / (cpus × iters), the median of the repeats. CPUs start
 * as their request arrives (microseconds apart): keep `iters` large enough that
 * this skew is noise. A machine with more CPUs than the host has cores
 * time-shares them: read those rows as oversubscription, not as scaling.
 */
import { parseArgs } from "node:util";
import { Machine } from "../src/workers/machine.js";
import { workloadNames } from "../src/workers/workload.js";
import "../src/workers/boot.js";
import {
  RESULTS_DIR,
  type Stats,
  fmt,
  hostInfo,
  hostLine,
  statsOf,
  writeResults,
  positiveInt,
  runBenchMain,
} from "./report.js";

/** One CPU count. */
interface Point {
  readonly cpus: number;
  /** Operations per second, all CPUs together (median of the repeats). */
  readonly opsPerSec: number;
  /** Wall time per operation, all CPUs together. */
  readonly nsPerOp: number;
  readonly opsPerSecPerCpu: number;
  readonly rmePct: number;
  readonly repeats: number;
}

function pointOf(cpus: number, wallNsPerOp: Stats): Point {
  const opsPerSec = 1e9 / wallNsPerOp.median;
  return {
    cpus,
    opsPerSec,
    nsPerOp: wallNsPerOp.median,
    opsPerSecPerCpu: opsPerSec / cpus,
    rmePct: wallNsPerOp.rmePct,
    repeats: wallNsPerOp.samples,
  };
}

async function measure(cpus: number, workload: string, iters: number, repeats: number): Promise<Point> {
  const m = await Machine.boot({ cpus, seed: 1 });
  try {
    await m.runAll(workload, { iters: Math.min(iters, 10_000) }); // warm up: JIT every CPU's code path
    const samples: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      await m.runAll(workload, { iters });
      samples.push(((performance.now() - t0) * 1e6) / (cpus * iters));
    }
    return pointOf(cpus, statsOf(samples));
  } finally {
    await m.shutdown();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cpus: { type: "string", default: "1,2,4" },
      workload: { type: "string", default: "spin_counter" },
      iters: { type: "string", default: "200000" },
      repeats: { type: "string", default: "5" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const cpuCounts = values.cpus.split(",").map((c) => positiveInt("cpus", c));
  const iters = positiveInt("iters", values.iters);
  const repeats = positiveInt("repeats", values.repeats);
  if (!workloadNames().includes(values.workload))
    throw new RangeError(`unknown workload ${values.workload}; registered: ${workloadNames().join(", ")}`);

  const points: Point[] = [];
  for (const cpus of cpuCounts) points.push(await measure(cpus, values.workload, iters, repeats));

  const host = hostInfo();
  const md = `${[
    hostLine(host),
    "",
    `Workload ${values.workload}, ${iters} operations per CPU, median of ${repeats} runs.`,
    "",
    "| CPUs | ops/s (all CPUs) | ns/op (wall) | ops/s per CPU | ±rme |",
    "|---:|---:|---:|---:|---:|",
    ...points.map(
      (p) =>
        `| ${p.cpus} | ${fmt(p.opsPerSec)} | ${fmt(p.nsPerOp)} | ${fmt(p.opsPerSecPerCpu)} | ${p.rmePct.toFixed(2)}% |`,
    ),
  ].join("\n")}\n`;
  process.stdout.write(md);
  writeResults(values.out, "scaling", md, { host, workload: values.workload, iters, repeats, points });
}

await runBenchMain(main);
