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
 * So does it mark (~, and `meaningful: false` in scaling.json) the figures a
 * run too small to mean anything gave, with a one-line warning on stderr.
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
  /** The timed loops ran at least MIN_LOOP_MS and there were MIN_SAMPLES samples: see {@link BENCH_MINIMUM}. */
  readonly meaningful: boolean;
}

/**
 * What makes a figure mean something. A timed loop of fix_size under ~50 ms
 * is mostly the JIT warming up and timer noise: on the 2-core reference host
 * `--loops 10000` (25 ms loops) read 25–75 % slow, `--loops 30000` (60 ms)
 * within 5 % of the default's. ±rme needs a few samples: of one it is 0.
 */
export const BENCH_MINIMUM = { loopMs: 50, samples: 5 } as const;

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
  /** Below these a point is not meaningful. */
  readonly minimum: typeof BENCH_MINIMUM;
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
    return {
      ...p,
      speedup: one ? p.pairsPerSec / one.pairsPerSec : null,
      oversubscribed: p.cpus > cores,
      meaningful: p.loopMs >= BENCH_MINIMUM.loopMs && p.samples >= BENCH_MINIMUM.samples,
    };
  });
}

/** "min–max" of `xs`, or the one value. */
function span(xs: readonly number[], f: (n: number) => string = fmt): string {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? f(lo) : `${f(lo)}–${f(hi)}`;
}

/** Rounds up to two significant digits (a --loops to suggest). */
function roundUp2(n: number): number {
  const unit = 10 ** Math.max(0, Math.floor(Math.log10(n)) - 1);
  return Math.ceil(n / unit) * unit;
}

/**
 * The one-line warning for points that are not meaningful (null when all
 * are): which minimum each missed and the flag that reaches it. The --loops
 * suggested is a lower bound: a pair gets cheaper as the JIT warms up.
 */
export function benchWarning(r: BenchResult): string | null {
  const bad = r.points.filter((p) => !p.meaningful);
  if (bad.length === 0) return null;
  const short = bad.filter((p) => p.loopMs < r.minimum.loopMs);
  const few = bad.filter((p) => p.samples < r.minimum.samples);
  const why: string[] = [];
  if (short.length > 0) {
    const loops = Math.min(
      100_000_000,
      roundUp2(Math.max(...short.map((p) => (r.loops * r.minimum.loopMs) / p.loopMs))),
    );
    why.push(
      `a timed loop must run ≥ ${r.minimum.loopMs} ms, ${short.length === bad.length ? "theirs" : `${short.length}`} ran ${span(short.map((p) => p.loopMs))} ms: --loops ${loops} at least`,
    );
  }
  if (few.length > 0) {
    const cpus = Math.min(...few.map((p) => p.cpus));
    why.push(
      `±rme needs ≥ ${r.minimum.samples} samples (repeats × CPUs), ${few.length === bad.length ? "theirs" : `${few.length}`} had ${span(
        few.map((p) => p.samples),
        String,
      )}: ` + `--repeats ${Math.ceil(r.minimum.samples / cpus)} or more`,
    );
  }
  return `vmsim: warning: ${bad.length} of ${r.points.length} figures (marked ~) mean nothing: ${why.join("; ")}`;
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
      "lock wait = CPU time in contended lock waits / CPU time in the test (median). * = more CPUs than host cores." +
      (r.points.some((p) => !p.meaningful)
        ? ` ~ = not meaningful: timed loops under ${r.minimum.loopMs} ms or fewer than ${r.minimum.samples} samples.`
        : ""),
    "",
    "| test | CPUs | loops | µs per pair | ±rme | pairs/s (all CPUs) | speedup | lock wait |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    ...r.points.map((p) => {
      const mark = p.meaningful ? "" : "~";
      return (
        `| ${p.test} | ${p.cpus}${p.oversubscribed ? "*" : ""} | ${fmt(p.loops)} | ${mark}${fmt(p.usPerPair)} | ${mark}${p.rmePct.toFixed(1)}% | ` +
        `${fmt(p.pairsPerSec)} | ${p.speedup === null ? "" : `${p.speedup.toFixed(2)}×`} | ${p.lockWaitPct.toFixed(1)}% |`
      );
    }),
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
    minimum: BENCH_MINIMUM,
    points: withSpeedup(points, host.cores),
  };
  const md = benchMarkdown(result);
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(join(opts.out, "scaling.json"), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(opts.out, "scaling.md"), md);
  writeFileSync(join(opts.out, "scaling.svg"), benchSvg(result));
  process.stdout.write(md);
  console.log("");
  const warning = benchWarning(result);
  if (warning !== null) console.error(warning);
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
