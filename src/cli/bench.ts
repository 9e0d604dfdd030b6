/**
 * `vmsim bench`: how vmalloc scales with CPUs. Runs the chosen test_vmalloc
 * cases on machines of each CPU count (src/workers/scaling.ts: every CPU runs
 * the case at once, `--repeats` measured runs after a warm-up) and reports,
 * per case and CPU count, µs per vmalloc+vfree pair, pairs/s of all CPUs, the
 * speedup of pairs/s over 1 CPU and the share of time in contended lock
 * waits. Writes scaling.json, scaling.md and scaling.svg into `--out`, prints
 * the table and ends with one SUMMARY line.
 *
 * CPU counts beyond the host's cores time-share cores: the table marks them.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { plural } from "../workers/format.js";
import { type HostInfo, fmt, hostInfo, hostLine } from "../workers/measure.js";
import { type ScalingPoint, measureTestVmalloc, memoryFor } from "../workers/scaling.js";
import { scalingChartSvg } from "./chart.js";
import type { BenchOptions } from "./options.js";
import { ProgressBar } from "./progress.js";
import { resultLine } from "./result.js";

/** One row of the results: a measurement and its speedup. */
export interface BenchPoint extends ScalingPoint {
  /** pairs/s over the same case's pairs/s on 1 CPU; null when 1 CPU was not measured. */
  readonly speedup: number | null;
  /** More CPUs than the host has cores: the CPUs time-share cores. */
  readonly oversubscribed: boolean;
}

/** scaling.json, and the SUMMARY line's object (without the points). */
export interface BenchResult {
  readonly command: "bench";
  readonly host: HostInfo;
  readonly tests: readonly string[];
  readonly cpus: readonly number[];
  readonly repeats: number;
  readonly loops: number;
  readonly lockdep: boolean;
  /** Physical memory of each CPU count's machine, bytes. */
  readonly memory: Readonly<Record<string, number>>;
  readonly points: readonly BenchPoint[];
}

/** The file names written into `--out`. */
export const BENCH_FILES = ["scaling.json", "scaling.md", "scaling.svg"] as const;

/**
 * Checks what can be checked before booting anything (every machine fits in
 * memory); throws a RangeError saying what is wrong.
 */
export function checkBench(opts: BenchOptions): void {
  for (const cpus of opts.cpus) memoryFor(cpus, opts.tests, opts.loops);
}

/** The speedups and host facts added to the measurements. */
function withSpeedup(points: readonly ScalingPoint[], cores: number): BenchPoint[] {
  return points.map((p) => {
    const one = points.find((q) => q.test === p.test && q.cpus === 1);
    return { ...p, speedup: one ? p.pairsPerSec / one.pairsPerSec : null, oversubscribed: p.cpus > cores };
  });
}

/** scaling.md: the host, how it was measured, the table. */
export function benchMarkdown(r: BenchResult): string {
  return `${[
    hostLine(r.host),
    "",
    `\`vmsim bench --tests ${r.tests.join(",")} --cpus ${r.cpus.join(",")} --repeats ${r.repeats} --loops ${r.loops}${r.lockdep ? " --lockdep" : ""}\``,
    "",
    "lib/test_vmalloc.c cases, every CPU at once; lockdep " +
      `${r.lockdep ? "on" : "off"}, slub_debug off, no interrupts. µs per vmalloc+vfree pair = median over ` +
      `${r.repeats} runs × CPUs of (timed loop / pairs); pairs/s for all CPUs; speedup = pairs/s over 1 CPU's; ` +
      "lock wait = CPU time in contended lock waits / CPU time in the test (median). * = more CPUs than host cores.",
    "",
    "| test | CPUs | loops | µs per pair | ±rme | pairs/s (all CPUs) | speedup | lock wait |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    ...r.points.map(
      (p) =>
        `| ${p.test} | ${p.cpus}${p.oversubscribed ? "*" : ""} | ${fmt(p.loops)} | ${fmt(p.usPerPair)} | ${p.rmePct.toFixed(1)}% | ` +
        `${fmt(p.pairsPerSec)} | ${p.speedup === null ? "" : `${p.speedup.toFixed(2)}×`} | ${p.lockWaitPct.toFixed(1)}% |`,
    ),
  ].join("\n")}\n`;
}

/** scaling.svg: pairs/s against CPUs, one panel per case. */
export function benchSvg(r: BenchResult): string {
  return scalingChartSvg(
    r.tests.map((test) => ({
      title: test,
      points: r.points.filter((p) => p.test === test).map((p) => ({ x: p.cpus, y: p.pairsPerSec })),
    })),
    {
      title: `vmalloc+vfree pairs/s, all CPUs — ${r.host.cpu}, ${r.host.cores} cores`,
      xLabel: "CPUs",
      yLabel: "pairs/s",
      hostCores: r.host.cores,
    },
  );
}

/** Runs the command; resolves to the exit code (0 ok, 1 a case failed). */
export async function runBench(opts: BenchOptions): Promise<number> {
  const host = hostInfo();
  const bar = ProgressBar.start({
    label: "bench",
    total: opts.cpus.length * opts.tests.length * (opts.repeats + 1),
    unit: "runs",
    fields: "{what}",
    initial: { what: "booting" },
  });
  let runs = 0;
  const points: ScalingPoint[] = [];
  const memory: Record<string, number> = {};
  try {
    for (const cpus of opts.cpus) {
      memory[cpus] = memoryFor(cpus, opts.tests, opts.loops);
      points.push(
        ...(await measureTestVmalloc(cpus, {
          tests: opts.tests,
          repeats: opts.repeats,
          loops: opts.loops,
          lockdep: opts.lockdep,
          memory: memory[cpus],
          onRun: (test, n) => {
            runs++;
            bar?.update(runs, runs, { what: `${test} on ${n} CPUs` });
          },
        })),
      );
    }
  } catch (e) {
    bar?.stop();
    console.error(`vmsim: FAILED: ${(e as Error).message}`);
    console.log(resultLine("FAILED", "listed on stderr"));
    console.log(`SUMMARY ${JSON.stringify({ command: "bench", ok: false, error: (e as Error).message })}`);
    return 1;
  }
  bar?.stop();
  const result: BenchResult = {
    command: "bench",
    host,
    tests: opts.tests,
    cpus: opts.cpus,
    repeats: opts.repeats,
    loops: opts.loops,
    lockdep: opts.lockdep,
    memory,
    points: withSpeedup(points, host.cores),
  };
  const md = benchMarkdown(result);
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(join(opts.out, "scaling.json"), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(opts.out, "scaling.md"), md);
  writeFileSync(join(opts.out, "scaling.svg"), benchSvg(result));
  process.stdout.write(md);
  console.log("");
  console.log(`wrote ${BENCH_FILES.map((f) => join(opts.out, f)).join(", ")}`);
  console.log(
    resultLine(
      "ok",
      `${plural(result.points.length, "point")} measured: ${plural(opts.tests.length, "case")} on ${opts.cpus.join(", ")} CPUs`,
    ),
  );
  const summary = result.points.map((p) => ({
    test: p.test,
    cpus: p.cpus,
    usPerPair: p.usPerPair,
    pairsPerSec: Math.round(p.pairsPerSec),
    speedup: p.speedup,
    lockWaitPct: p.lockWaitPct,
  }));
  console.log(`SUMMARY ${JSON.stringify({ command: "bench", ok: true, out: opts.out, points: summary })}`);
  return 0;
}
