/**
 * Micro-benchmarks: every case of bench/cases/ (tinybench, one CPU: the main
 * thread as CPU 0), then the contended cases (a workload on a booted
 * machine's CPUs that measures itself). Prints a Markdown table and writes it,
 * with the machine it ran on, to bench/results/micro.{md,json}.
 *
 *   node dist/bench/micro.js [--filter <text>] [--time <ms>] [--out <dir>]
 *
 * Each tinybench sample times a batch of calls, calibrated so that one batch
 * takes at least 20 µs: the timer's own cost (~50 ns a read) stays below 1 %
 * even for a 10 ns operation (the JSON records each case's `batch`). ns/op is
 * the median sample, ±rme the 95 % margin of error of the mean.
 */
import { parseArgs } from "node:util";
import { Bench, type FnReturnedObject } from "tinybench";
import { makeConfig } from "../src/shared/config.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine } from "../src/workers/machine.js";
import { workloadNames } from "../src/workers/workload.js";
import * as caseModules from "./cases/index.js";
import type { BenchCase } from "./cases/types.js";
import {
  type HostInfo,
  RESULTS_DIR,
  type Stats,
  fmt,
  hostInfo,
  hostLine,
  statsOf,
  writeResults,
  runBenchMain,
} from "./report.js";

/** A workload that times itself on `cpus` CPUs at once and returns its ns per operation. */
interface ContendedCase {
  readonly name: string;
  readonly workload: string;
  readonly cpus: number;
  readonly args: unknown;
  /** Runs of the workload; the table reports their median. */
  readonly repeats: number;
  /** The ns/op one CPU's result reports; null when the result lacks it. */
  readonly nsPerOp: (result: unknown) => number | null;
  readonly target?: string;
}

function numberField(name: string): (result: unknown) => number | null {
  return (r) => {
    const v = typeof r === "object" && r !== null ? (r as Record<string, unknown>)[name] : undefined;
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  };
}

const CONTENDED: readonly ContendedCase[] = [
  {
    name: "spin_lock+spin_unlock, 2 CPUs contending (per pair)",
    workload: "bench_spin_contended",
    cpus: 2,
    args: { iters: 200_000 },
    repeats: 7,
    nsPerOp: numberField("nsPerPair"),
  },
];

/** One row of the results. */
export interface Row {
  readonly name: string;
  readonly kind: "micro" | "contended";
  readonly nsPerOp: number;
  readonly opsPerSec: number;
  /** Relative margin of error of the mean, percent (95 %). */
  readonly rmePct: number;
  readonly samples: number;
  /** Calls timed together per sample (micro cases); null for contended ones. */
  readonly batch: number | null;
  readonly target: string | null;
  /** Whether the target was met; null without a (readable) target. */
  readonly met: boolean | null;
}

/**
 * Reads a target: "< 50 ns/op", "<= 1.5 µs", "> 2M ops/s", "≥ 300K ops/s".
 * Returns whether `nsPerOp` meets it, or null when the target is not in that form.
 */
export function targetMet(target: string, nsPerOp: number): boolean | null {
  const m = /^\s*(<=|>=|<|>|≤|≥)\s*([\d.]+)\s*(ns|µs|us|ms|[KMG]?\s*ops\/s)(?:\/op)?\s*$/.exec(target);
  if (!m) return null;
  const [, op, num, rawUnit] = m as unknown as [string, string, string, string];
  const unit = rawUnit.replace("µ", "u");
  const mult: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, K: 1e3, M: 1e6, G: 1e9 };
  const isRate = unit.endsWith("ops/s");
  const limit = Number(num) * (isRate ? (mult[unit.trim()[0]!] ?? 1) : mult[unit]!);
  const value = isRate ? 1e9 / nsPerOp : nsPerOp;
  switch (op) {
    case "<":
      return value < limit;
    case "<=":
    case "≤":
      return value <= limit;
    case ">":
      return value > limit;
    default:
      return value >= limit;
  }
}

/** A row from the median ns/op and its statistics. */
function rowOf(
  name: string,
  s: Stats,
  { kind, batch, target }: Pick<Row, "kind" | "batch"> & { target?: string },
): Row {
  return {
    name,
    kind,
    nsPerOp: s.median,
    opsPerSec: 1e9 / s.median,
    rmePct: s.rmePct,
    samples: s.samples,
    batch,
    target: target ?? null,
    met: target ? targetMet(target, s.median) : null,
  };
}

/** Nanoseconds `batch` calls of `fn` take. */
function timeBatch(fn: () => void, batch: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < batch; i++) fn();
  return Number(process.hrtime.bigint() - t0);
}

/**
 * Calls in one timed batch: after 10 ms of warm-up (so a cold first call,
 * compiled or faulted in, does not end the search early), doubles until the
 * fastest of three batches takes 20 µs.
 */
function calibrate(fn: () => void): number {
  const warm = performance.now();
  while (performance.now() - warm < 10) fn();
  const search = () => {
    for (let batch = 1; ; batch *= 2) {
      const ns = Math.min(timeBatch(fn, batch), timeBatch(fn, batch), timeBatch(fn, batch));
      if (ns >= 20_000 || batch >= 1 << 20) return batch;
    }
  };
  // Twice: the first search's long loops may get the batch loop optimized, making calls faster.
  return Math.max(search(), search());
}

async function runMicro(c: BenchCase, timeMs: number): Promise<Row> {
  await c.setup?.();
  const batch = calibrate(c.fn);
  // One Bench per case: tinybench warms every task up before running any, and a case's setup must precede its run.
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(100, timeMs), throws: true });
  const fn = c.fn;
  bench.add(c.name, (): FnReturnedObject => {
    const ms = timeBatch(fn, batch) / 1e6;
    return { overriddenDuration: ms / batch, overriddenIterationCost: ms };
  });
  await bench.run();
  const r = bench.tasks[0]!.result;
  if (r.state !== "completed") throw new Error(`case ${c.name}: ${r.state}`);
  // tinybench reports latency in ms.
  return rowOf(
    c.name,
    { median: r.latency.p50 * 1e6, mean: r.latency.mean * 1e6, rmePct: r.latency.rme, samples: r.latency.samplesCount },
    { kind: "micro", batch, ...(c.target ? { target: c.target } : {}) },
  );
}

async function runContended(c: ContendedCase): Promise<Row | string> {
  if (!workloadNames().includes(c.workload)) return `workload ${c.workload} is not registered`;
  const m = await Machine.boot({ cpus: c.cpus, seed: 1 });
  try {
    const samples: number[] = [];
    for (let i = 0; i < c.repeats; i++) {
      const perCpu = (await m.runAll(c.workload, c.args)).map(c.nsPerOp);
      if (perCpu.some((v) => v === null)) return `workload ${c.workload} returned no ns/op`;
      samples.push((perCpu as number[]).reduce((a, b) => a + b, 0) / perCpu.length);
    }
    return rowOf(c.name, statsOf(samples), {
      kind: "contended",
      batch: null,
      ...(c.target ? { target: c.target } : {}),
    });
  } finally {
    await m.shutdown();
  }
}

function markdown(rows: readonly Row[], skipped: readonly string[], host: HostInfo): string {
  const lines = [
    hostLine(host),
    "",
    "| case | ns/op (median) | ops/s | ±rme | samples | target | met? |",
    "|---|---:|---:|---:|---:|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.nsPerOp)} | ${fmt(r.opsPerSec)} | ${r.rmePct.toFixed(2)}% | ${r.samples} | ${r.target ?? ""} | ${r.met === null ? "" : r.met ? "yes" : "**no**"} |`,
    ),
  ];
  if (skipped.length > 0) lines.push("", ...skipped.map((s) => `Skipped: ${s}`));
  return `${lines.join("\n")}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      filter: { type: "string", default: "" },
      time: { type: "string", default: "500" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const timeMs = Number(values.time);
  if (!(timeMs > 0)) throw new RangeError(`--time must be a positive number of ms, got ${values.time}`);
  const wanted = (name: string) => name.includes(values.filter);

  const rows: Row[] = [];
  const skipped: string[] = [];
  start_kernel(makeConfig({ cpus: 1 }));
  const cases = (Object.values(caseModules) as BenchCase[][]).flat().filter((c) => wanted(c.name));
  for (const c of cases) {
    rows.push(await runMicro(c, timeMs));
    process.stderr.write(`  ${c.name}\n`);
  }
  for (const c of CONTENDED.filter((c) => wanted(c.name))) {
    const r = await runContended(c);
    if (typeof r === "string") skipped.push(`${c.name}: ${r}`);
    else rows.push(r);
  }

  const host = hostInfo();
  const md = markdown(rows, skipped, host);
  process.stdout.write(md);
  writeResults(values.out, "micro", md, { host, timeMs, rows, skipped });
}

await runBenchMain(main);
