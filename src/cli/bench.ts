/**
 * `vmsim bench`: how vmalloc scales with CPUs, and how its generations compare.
 * Runs the chosen test_vmalloc cases on machines of each `--kernel` version
 * and CPU count (src/workers/scaling.ts: every CPU runs the case at once,
 * `--repeats` measured runs after a warm-up) and reports, per case, kernel and
 * CPU count, µs per vmalloc+vfree pair, pairs/s of all CPUs, the speedup of
 * pairs/s over 1 CPU, the factor over the first kernel, and the share of time
 * in contended lock waits, in all and per lock class. Writes scaling.json,
 * scaling.md, scaling.svg (pairs/s, a panel per case) and <case>.svg (µs per
 * pair, pairs/s and lock wait, a line per kernel) into `--out`, prints the
 * table and ends with one SUMMARY line.
 *
 * CPU counts beyond the host's cores time-share cores: the table marks them.
 * So does it mark (~, and `meaningful: false` in scaling.json) the figures a
 * run too small to mean anything gave, with a one-line warning on stderr.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_CONFIG, type KernelVersion, type SpinlockKind } from "../shared/config.js";
import { plural } from "../workers/format.js";
import { type HostInfo, fmt, hostInfo, hostLine } from "../workers/measure.js";
import { type ScalingPoint, measureTestVmallocRuns, memoryFor } from "../workers/scaling.js";
import { TEST_VMALLOC_MODULES, type TestVmallocCase } from "../workers/workloads/test_vmalloc.js";
import { type ChartPanel, scalingChartSvg } from "./chart.js";
import { debugConfigLine } from "./info.js";
import {
  type BenchPart,
  type BenchRuns,
  type BenchSample,
  benchRuns,
  benchRunsOf,
  hostKey,
  mergeBench,
  runKey,
  pointsOf,
  readBenchResult,
} from "./bench_shard.js";
import { type BenchOptions, shardItems } from "./options.js";
import { ProgressBar } from "./progress.js";
import { resultLine } from "./result.js";

/** One row of the results: a measurement and its speedups. */
export interface BenchPoint extends ScalingPoint {
  /** pairs/s over the same kernel's and case's pairs/s on 1 CPU; null when 1 CPU was not measured. */
  readonly speedup: number | null;
  /**
   * The first kernel's µs per pair over this one's, same case and CPU count: how many times
   * faster this generation is than the baseline (the first of --kernel); null with one kernel.
   */
  readonly vsBaseline: number | null;
  /** More CPUs than the host has cores: the CPUs time-share cores. */
  readonly oversubscribed: boolean;
  /** The timed loops ran at least MIN_LOOP_MS and there were MIN_SAMPLES samples: see {@link BENCH_MINIMUM}. */
  readonly meaningful: boolean;
  /** Merged results from more than one host: the labels (H1, H2 …) of the hosts whose runs this point's figures are of. */
  readonly hosts?: readonly string[];
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
  /** The generations, the baseline first. */
  readonly kernels: readonly KernelVersion[];
  readonly tests: readonly TestVmallocCase[];
  readonly cpus: readonly number[];
  readonly repeats: number;
  readonly loops: number;
  readonly lockdep: boolean;
  readonly slubDebug: boolean;
  /** Trace events each CPU kept (0: tracing off). */
  readonly trace: number;
  /** The machines' spinlock (src/locks/spinlock.ts); absent: DEFAULT_CONFIG's. */
  readonly spinlock?: SpinlockKind;
  /** Physical memory of each CPU count's machine, bytes. */
  readonly memory: Readonly<Record<string, number>>;
  /** Below these a point is not meaningful. */
  readonly minimum: typeof BENCH_MINIMUM;
  readonly points: readonly BenchPoint[];
  /** The invocations whose runs these are (src/cli/bench_shard.ts); absent in files from before --shard. */
  readonly parts?: readonly BenchPart[];
  /** Every measured run, the figures' source: what `vmsim bench merge` joins. */
  readonly samples?: readonly BenchSample[];
  /** Runs a part asked for that no sample answers ("fix_size_alloc_test on 2 CPUs, v4.19, run 3/5"). */
  readonly missing?: readonly string[];
  /** Shards of a sharded bench that no part holds ("2/3 of --cpus 1,2,4"). */
  readonly missingShards?: readonly string[];
}

/** The file names written into `--out`: the results, the overview chart, and a chart per case. */
export function benchFiles(tests: readonly string[]): string[] {
  return ["scaling.json", "scaling.md", "scaling.svg", ...tests.map((t) => `${t}.svg`)];
}

/**
 * Checks what can be checked before booting anything (every kernel's module
 * has every case, every machine fits in memory); throws a RangeError saying
 * what is wrong.
 */
export function checkBench(opts: BenchOptions): void {
  for (const kernel of opts.kernels) {
    const module = TEST_VMALLOC_MODULES[kernel];
    const missing = opts.tests.find((t) => !module.cases.some((c) => c.name === t));
    if (missing !== undefined) throw new RangeError(`${module.source} (kernel ${kernel}) has no ${missing}`);
  }
  for (const cpus of opts.cpus) memoryFor(cpus, opts.tests, opts.loops);
}

/**
 * The speedups and host facts added to the measurements, in table order: by
 * case (as given), then CPU count, then kernel (as given), so that the
 * generations' rows for one case and CPU count stand together.
 */
export function benchPoints(
  points: readonly ScalingPoint[],
  kernels: readonly KernelVersion[],
  tests: readonly string[],
  cores: number | ((p: ScalingPoint) => number),
): BenchPoint[] {
  const coresOf = typeof cores === "number" ? () => cores : cores;
  const sorted = [...points].sort(
    (a, b) =>
      tests.indexOf(a.test) - tests.indexOf(b.test) ||
      a.cpus - b.cpus ||
      kernels.indexOf(a.kernel) - kernels.indexOf(b.kernel),
  );
  return sorted.map((p) => {
    const one = points.find((q) => q.kernel === p.kernel && q.test === p.test && q.cpus === 1);
    const base = points.find((q) => q.kernel === kernels[0] && q.test === p.test && q.cpus === p.cpus);
    return {
      ...p,
      speedup: one ? p.pairsPerSec / one.pairsPerSec : null,
      vsBaseline: kernels.length > 1 && base ? base.usPerPair / p.usPerPair : null,
      oversubscribed: p.cpus > coresOf(p),
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

/** Lock classes shown in a row's "waits by lock" cell, largest first; the rest are summed. */
const LOCKS_SHOWN = 3;

/** "vmap_area_lock 20.1%, free_vmap_area_lock 3.2%": the classes a row's lock wait went to (≥ 0.05 %). */
export function waitsByLock(byLock: Readonly<Record<string, number>>): string {
  const shares = Object.entries(byLock)
    .filter(([, pct]) => pct >= 0.05)
    .sort((a, b) => b[1] - a[1]);
  const shown = shares.slice(0, LOCKS_SHOWN).map(([name, pct]) => `${name} ${pct.toFixed(1)}%`);
  const rest = shares.slice(LOCKS_SHOWN).reduce((a, [, pct]) => a + pct, 0);
  return [...shown, ...(rest > 0 ? [`others ${rest.toFixed(1)}%`] : [])].join(", ");
}

/** The command line that reproduces `r`. */
export function benchCommand(r: BenchResult): string {
  return (
    `vmsim bench --kernel ${r.kernels.join(",")} --tests ${r.tests.join(",")} --cpus ${r.cpus.join(",")} ` +
    `--repeats ${r.repeats} --loops ${r.loops}${r.lockdep ? " --lockdep" : ""}${r.slubDebug ? " --slub-debug" : ""}` +
    (r.trace > 0 ? ` --trace-buffer ${r.trace}` : "") +
    ((r.spinlock ?? DEFAULT_CONFIG.spinlock) === DEFAULT_CONFIG.spinlock ? "" : ` --spinlock ${r.spinlock}`) +
    (r.parts?.length === 1 && r.parts[0]!.shard !== null
      ? ` --shard ${r.parts[0]!.shard.index}/${r.parts[0]!.shard.count}`
      : "")
  );
}

/** The distinct hosts of a result's parts (the date aside), in part order: H1, H2 … in the table. */
function hostsOf(r: Pick<BenchResult, "host" | "parts">): HostInfo[] {
  const byKey = new Map<string, HostInfo>();
  for (const p of r.parts ?? [{ host: r.host }]) if (!byKey.has(hostKey(p.host))) byKey.set(hostKey(p.host), p.host);
  return [...byKey.values()];
}

/**
 * The result of a bench's runs: the figures of each (case, CPU count,
 * kernel) recomputed from its samples. A CPU count is oversubscribed on the
 * host with the fewest cores among those that measured it; with runs from
 * several hosts each point names its hosts.
 */
export function benchResult(runs: BenchRuns): BenchResult {
  const keys = hostsOf(runs).map(hostKey);
  const samplesOf = (p: ScalingPoint) =>
    runs.samples.filter((s) => s.cpus === p.cpus && s.kernel === p.kernel && s.test === p.test);
  const hostOf = (s: BenchSample) => runs.parts[s.part]!.host;
  const points = benchPoints(pointsOf(runs.samples), runs.kernels, runs.tests, (p) =>
    Math.min(...samplesOf(p).map((s) => hostOf(s).cores)),
  );
  return {
    command: "bench",
    host: runs.host,
    kernels: runs.kernels,
    tests: runs.tests,
    cpus: runs.cpus,
    repeats: runs.repeats,
    loops: runs.loops,
    lockdep: runs.lockdep,
    slubDebug: runs.slubDebug,
    trace: runs.trace,
    spinlock: runs.spinlock,
    memory: runs.memory,
    minimum: BENCH_MINIMUM,
    points:
      keys.length > 1
        ? points.map((p) => ({
            ...p,
            hosts: [...new Set(samplesOf(p).map((s) => `H${keys.indexOf(hostKey(hostOf(s))) + 1}`))].sort(),
          }))
        : points,
    parts: runs.parts,
    samples: runs.samples,
    missing: runs.missing,
    missingShards: runs.missingShards,
  };
}

/** scaling.md: the host, how it was measured, the table. */
export function benchMarkdown(r: BenchResult): string {
  const base = r.kernels.length > 1 ? r.kernels[0]! : null;
  const hosts = hostsOf(r);
  const many = hosts.length > 1;
  const missing = r.missing ?? [];
  const missingShards = r.missingShards ?? [];
  return `${[
    ...(many ? hosts.map((h, i) => hostLine(h).replace(/^Machine:/, `Machine H${i + 1}:`)) : [hostLine(r.host)]),
    "",
    `\`${benchCommand(r)}\``,
    "",
    `lib/test_vmalloc.c cases, every CPU at once; ${debugConfigLine(r)}, no interrupts, ${r.spinlock ?? DEFAULT_CONFIG.spinlock} spinlocks. µs per vmalloc+vfree pair = median over ` +
      `${r.repeats} runs × CPUs of (timed loop / pairs); pairs/s for all CPUs; speedup = pairs/s over the same kernel's on 1 CPU; ` +
      (base === null ? "" : `vs ${base} = ${base}'s µs per pair over this row's (same case and CPUs); `) +
      "lock wait = CPU time in contended lock waits / CPU time in the test (median), in all and by lock class. " +
      "* = more CPUs than host cores." +
      (many ? " host = the machines whose runs a row's figures are of: compare rows of one host." : "") +
      (r.points.some((p) => !p.meaningful)
        ? ` ~ = not meaningful: timed loops under ${r.minimum.loopMs} ms or fewer than ${r.minimum.samples} samples.`
        : ""),
    "",
    `| test | CPUs | kernel | loops | µs per pair | ±rme | pairs/s (all CPUs) | speedup |${base === null ? "" : ` vs ${base} |`} lock wait | waits by lock |${many ? " host |" : ""}`,
    `|---|---:|---|---:|---:|---:|---:|---:|${base === null ? "" : "---:|"}---:|---|${many ? "---|" : ""}`,
    ...r.points.map((p) => {
      const mark = p.meaningful ? "" : "~";
      const x = (f: number | null) => (f === null ? "" : `${f.toFixed(2)}×`);
      return (
        `| ${p.test} | ${p.cpus}${p.oversubscribed ? "*" : ""} | ${p.kernel} | ${fmt(p.loops)} | ${mark}${fmt(p.usPerPair)} | ` +
        `${mark}${p.rmePct.toFixed(1)}% | ${fmt(p.pairsPerSec)} | ${x(p.speedup)} |${base === null ? "" : ` ${x(p.vsBaseline)} |`} ` +
        `${p.lockWaitPct.toFixed(1)}% | ${waitsByLock(p.lockWaitByLock)} |${many ? ` ${(p.hosts ?? []).join(", ")} |` : ""}`
      );
    }),
    ...(missing.length > 0
      ? [
          "",
          `Missing: ${plural(missing.length, "run")}: ${missing.slice(0, 10).join("; ")}${missing.length > 10 ? " …" : ""}.`,
        ]
      : []),
    ...(missingShards.length > 0 ? ["", `Missing shards: ${missingShards.join(", ")}.`] : []),
  ].join("\n")}\n`;
}

/** A series per kernel of `value` against CPUs for `test`. */
function seriesOf(r: BenchResult, test: string, value: (p: BenchPoint) => number): ChartPanel["series"] {
  return r.kernels.map((k) => ({
    name: `v${k}`,
    points: r.points.filter((p) => p.kernel === k && p.test === test).map((p) => ({ x: p.cpus, y: value(p) })),
  }));
}

/** Who measured it, for chart titles. */
const onHost = (r: BenchResult) =>
  hostsOf(r).length > 1 ? `${hostsOf(r).length} hosts` : `${r.host.cpu}, ${r.host.cores} cores`;

/** scaling.svg: pairs/s against CPUs, one panel per case, a line per kernel. */
export function benchSvg(r: BenchResult): string {
  return scalingChartSvg(
    r.tests.map((test) => ({
      title: test,
      yLabel: "pairs/s, all CPUs",
      series: seriesOf(r, test, (p) => p.pairsPerSec),
      ideal: true,
    })),
    { title: `vmalloc+vfree pairs/s, all CPUs — ${onHost(r)}`, xLabel: "CPUs", hostCores: r.host.cores },
  );
}

/** <test>.svg: µs per pair, pairs/s and lock wait against CPUs for one case, a line per kernel. */
export function benchCaseSvg(r: BenchResult, test: string): string {
  return scalingChartSvg(
    [
      {
        title: "µs per pair (lower is better)",
        yLabel: "µs per vmalloc+vfree",
        series: seriesOf(r, test, (p) => p.usPerPair),
      },
      {
        title: "pairs/s (higher is better)",
        yLabel: "pairs/s, all CPUs",
        series: seriesOf(r, test, (p) => p.pairsPerSec),
        ideal: true,
      },
      { title: "lock wait", yLabel: "% of CPU time", series: seriesOf(r, test, (p) => p.lockWaitPct) },
    ],
    { title: `${test} — ${onHost(r)}`, xLabel: "CPUs", hostCores: r.host.cores },
  );
}

/** Runs the command (its shard of the runs); resolves to the exit code (0 ok, 1 a case failed). */
export async function runBench(opts: BenchOptions): Promise<number> {
  const host = hostInfo();
  const t0 = performance.now();
  const share = shardItems(benchRuns(opts.cpus, opts.kernels, opts.tests, opts.repeats), opts.shard);
  const mine = new Set(share.map(runKey));
  // Each (CPU count, kernel, case) with a run here: a warm-up first.
  const cases = new Set(share.map((r) => runKey({ ...r, repeat: -1 })));
  const bar = ProgressBar.start({
    label: "bench",
    total: mine.size + cases.size,
    unit: "runs",
    fields: "{what}",
    initial: { what: "booting" },
  });
  let runs = 0;
  const samples: BenchSample[] = [];
  let measuring = "";
  try {
    // The kernels take turns at each CPU count, so that a change in the host's load hits them alike.
    for (const cpus of opts.cpus) {
      for (const kernel of opts.kernels) {
        const only = (test: TestVmallocCase, repeat: number) => mine.has(runKey({ cpus, kernel, test, repeat }));
        if (!opts.tests.some((test) => cases.has(runKey({ cpus, kernel, test, repeat: -1 })))) continue;
        measuring = `kernel ${kernel}, ${plural(cpus, "CPU")}: `;
        const measured = await measureTestVmallocRuns(cpus, {
          kernel,
          tests: opts.tests,
          repeats: opts.repeats,
          loops: opts.loops,
          lockdep: opts.lockdep,
          slubDebug: opts.slubDebug,
          trace: opts.trace,
          spinlock: opts.spinlock,
          memory: memoryFor(cpus, opts.tests, opts.loops),
          only,
          onRun: (test, n) => {
            runs++;
            bar?.update(runs, runs, { what: `${test} on ${n} CPUs, v${kernel}` });
          },
        });
        samples.push(...measured.map((s) => ({ ...s, part: 0 })));
      }
    }
  } catch (e) {
    bar?.stop();
    const error = `${measuring}${(e as Error).message}`;
    console.error(`vmsim: FAILED: ${error}`);
    console.log(resultLine("FAILED", "listed on stderr"));
    console.log(`SUMMARY ${JSON.stringify({ command: "bench", ok: false, error })}`);
    return 1;
  }
  bar?.stop();
  const part: BenchPart = { cpus: opts.cpus, shard: opts.shard, host, wallMs: Math.round(performance.now() - t0) };
  return writeBench(benchResult(benchRunsOf(opts, [part], samples, false)), opts.out);
}

/** `vmsim bench merge PATHS…`: joins bench folders (or their scaling.json) into `out`; resolves to the exit code. Throws RangeError on unreadable or incompatible files. */
export function benchMergeCommand(paths: readonly string[], out: string): number {
  const merged = benchResult(mergeBench(paths.map(readBenchResult)));
  const hosts = hostsOf(merged).length;
  console.log(
    `merged ${plural(paths.length, "result")}: ${plural(merged.parts?.length ?? 0, "part")}, ` +
      `${plural(merged.samples?.length ?? 0, "run")}${hosts > 1 ? `, from ${hosts} hosts` : ""}`,
  );
  return writeBench(merged, out);
}

/** Writes `r`'s files into `out` and prints its table, warning, result and SUMMARY lines; 0. */
function writeBench(r: BenchResult, out: string): number {
  const md = benchMarkdown(r);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "scaling.json"), `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(join(out, "scaling.md"), md);
  writeFileSync(join(out, "scaling.svg"), benchSvg(r));
  for (const test of r.tests) writeFileSync(join(out, `${test}.svg`), benchCaseSvg(r, test));
  process.stdout.write(md);
  console.log("");
  const warning = benchWarning(r);
  if (warning !== null) console.error(warning);
  console.log(
    `wrote ${benchFiles(r.tests)
      .map((f) => join(out, f))
      .join(", ")}`,
  );
  const missing = r.missing?.length ?? 0;
  // A missing shard's runs are missing runs too (src/cli/bench_shard.ts): one count says both.
  const measured =
    `${plural(r.points.length, "point")} measured: ${plural(r.tests.length, "case")} on ${r.cpus.join(", ")} CPUs, ` +
    `${r.kernels.length === 1 ? "kernel" : "kernels"} ${r.kernels.join(", ")}`;
  console.log(
    missing > 0
      ? resultLine("incomplete", `${measured}; ${plural(missing, "run")} missing, listed above`)
      : resultLine("ok", measured),
  );
  const summary = r.points.map((p) => ({
    kernel: p.kernel,
    test: p.test,
    cpus: p.cpus,
    usPerPair: p.usPerPair,
    pairsPerSec: Math.round(p.pairsPerSec),
    speedup: p.speedup,
    vsBaseline: p.vsBaseline,
    lockWaitPct: p.lockWaitPct,
    lockWaitByLock: p.lockWaitByLock,
  }));
  console.log(
    `SUMMARY ${JSON.stringify({ command: "bench", ok: true, out, spinlock: r.spinlock, ...(missing > 0 ? { missing } : {}), points: summary })}`,
  );
  return 0;
}
