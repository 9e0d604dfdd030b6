/**
 * The vmalloc benchmark: issue 11's ratio table, every row measured in one
 * run. The kernel's lib/test_vmalloc.c loops (src/workers/workloads/
 * test_vmalloc.ts) on machines of 1, 2 and 4 CPUs, every CPU running the test
 * at once as the module's workers do (measured by src/workers/scaling.ts, as
 * `vmsim bench` does): µs per vmalloc+vfree pair is the median over repeats
 * and CPUs of each CPU's timed loop / its pairs.
 *
 *   node dist/bench/vmalloc.js [--repeats 3] [--loops 100000] [--out <dir>]
 *
 * Rows: fix_size_alloc_test on 1 CPU in `vmsim test`'s default configuration
 * (lockdep and slub_debug on), with `--no-lockdep`, and in the production
 * configuration (lockdep, slub_debug and tracing off, as `vmsim bench` and
 * `vmsim test --mode performance` boot); random_size and long_busy_list in
 * production; the per-pair time on 2 CPUs over 1 CPU (three rounds: the 1-CPU
 * rows are the medians of the same three); all-CPU pairs/s on 4 CPUs over 2
 * (five runs, median and worst). The configurations take turns in every
 * round, so that a change in the host's load hits them alike.
 *
 * `--loops` is fix_size's test_loop_count; random_size and long_busy_list run
 * a tenth (their pairs map 50 and 50.5 pages on average), and so do the 4-on-2
 * runs (4 CPUs time-share 2 cores: a pair costs a hundred times more). 256 MiB, no interrupts. The native
 * column is not measured here: it is issue 11's native C build of the same
 * v4.19 algorithm on the same host type. Writes bench/results/vmalloc.{md,json}.
 */
import os from "node:os";
import { parseArgs } from "node:util";
import { type ScalingPoint, measureTestVmalloc } from "../src/workers/scaling.js";
import type { TestVmallocCase } from "../src/workers/workloads/test_vmalloc.js";
import { RESULTS_DIR, fmt, hostInfo, hostLine, positiveInt, runBenchMain, statsOf, writeResults } from "./report.js";

const MEMORY = 256 * 1024 * 1024;
/** Rounds of the 1- and 2-CPU measurements (the 2 ÷ 1 ratio swings: its median of three). */
const ROUNDS_2_ON_1 = 3;
/** Runs of the 4 ÷ 2 ratio (oversubscribed: median and worst of five). */
const RUNS_4_ON_2 = 5;

/** The machine's debugging: `vmsim test`'s defaults, without lockdep, and production. */
const CONFIGS = {
  debug: { lockdep: true, slubDebug: true },
  noLockdep: { lockdep: false, slubDebug: true },
  production: { lockdep: false, slubDebug: false },
} as const;
type ConfigName = keyof typeof CONFIGS;

/**
 * Issue 11's native figures: a C build of the same v4.19 algorithm, same test
 * loop, page allocation and page-table work, on this host type (2 cores).
 */
const NATIVE = {
  fixSizeUs: [0.17, 0.22],
  randomSizeUs: 0.93,
  longBusyListUs: 1.5,
  perPair2on1: [15, 24],
} as const;

/** Issue 11's targets. */
const TARGET = {
  fixSizeUs: 1.0,
  /** The default debug configuration within this factor of production. */
  debugOverProduction: 2,
  /** random_size and long_busy_list within this factor of native. */
  overNative: 5,
  /** The 2 ÷ 1 ratio within this factor of native's range. */
  ratioWithin: 1.5,
  fourOnTwo: 0.5,
} as const;

/** One row of the ratio table. */
interface Row {
  readonly what: string;
  /** The figure, as printed. */
  readonly vmsim: string;
  readonly value: number;
  readonly native: string;
  /** vmsim ÷ native, as printed ("" where native has no figure). */
  readonly ratio: string;
  readonly target: string;
  readonly met: boolean;
}

const range = ([lo, hi]: readonly [number, number], f = (n: number) => String(n)) => `${f(lo)}–${f(hi)}`;
const times = (x: number) => `${x.toFixed(2)}×`;

async function measure(
  cpus: number,
  config: ConfigName,
  tests: readonly TestVmallocCase[],
  repeats: number,
  loops: number,
): Promise<ScalingPoint[]> {
  return measureTestVmalloc(cpus, { tests, repeats, loops, memory: MEMORY, ...CONFIGS[config] });
}

/** Progress on a terminal only: a log or a pipe gets the results alone. */
function progress(what: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${what}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      repeats: { type: "string", default: "3" },
      loops: { type: "string", default: "100000" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const repeats = positiveInt("repeats", values.repeats);
  const loops = positiveInt("loops", values.loops);
  const loops4on2 = Math.max(1, Math.round(loops / 10));
  const loadBefore = os.loadavg()[0]!;
  const t0 = performance.now();

  const fix = "fix_size_alloc_test";
  const one: Record<ConfigName, ScalingPoint[]> = { debug: [], noLockdep: [], production: [] };
  const random1: ScalingPoint[] = [];
  const busy1: ScalingPoint[] = [];
  const two: ScalingPoint[] = [];
  for (let round = 1; round <= ROUNDS_2_ON_1; round++) {
    for (const config of ["debug", "noLockdep"] as const) {
      progress(`round ${round}/${ROUNDS_2_ON_1}: 1 CPU, ${config}`);
      one[config].push(...(await measure(1, config, [fix], repeats, loops)));
    }
    progress(`round ${round}/${ROUNDS_2_ON_1}: 1 CPU, production`);
    const [f, r, b] = await measure(
      1,
      "production",
      [fix, "random_size_alloc_test", "long_busy_list_alloc_test"],
      repeats,
      loops,
    );
    one.production.push(f!);
    random1.push(r!);
    busy1.push(b!);
    progress(`round ${round}/${ROUNDS_2_ON_1}: 2 CPUs, production`);
    two.push(...(await measure(2, "production", [fix], repeats, loops)));
  }
  const fourOnTwo: { two: ScalingPoint; four: ScalingPoint; ratio: number }[] = [];
  for (let run = 1; run <= RUNS_4_ON_2; run++) {
    progress(`4 ÷ 2 run ${run}/${RUNS_4_ON_2}`);
    const [p2] = await measure(2, "production", [fix], repeats, loops4on2);
    const [p4] = await measure(4, "production", [fix], repeats, loops4on2);
    fourOnTwo.push({ two: p2!, four: p4!, ratio: p4!.pairsPerSec / p2!.pairsPerSec });
  }
  progress("");

  const median = (ps: readonly ScalingPoint[]) => statsOf(ps.map((p) => p.usPerPair)).median;
  const debugUs = median(one.debug);
  const noLockdepUs = median(one.noLockdep);
  const prodUs = median(one.production);
  const randomUs = median(random1);
  const busyUs = median(busy1);
  const ratios21 = two.map((p, i) => p.usPerPair / one.production[i]!.usPerPair);
  const ratio21 = statsOf(ratios21).median;
  const ratios42 = fourOnTwo.map((r) => r.ratio);
  const ratio42 = statsOf(ratios42).median;
  const worst42 = Math.min(...ratios42);
  const nativeFix = range(NATIVE.fixSizeUs);
  const overFix = (us: number) => `${(us / NATIVE.fixSizeUs[1]).toFixed(0)}–${(us / NATIVE.fixSizeUs[0]).toFixed(0)}×`;
  const us = (x: number) => `${fmt(x)} µs`;
  const lo21 = NATIVE.perPair2on1[0] / TARGET.ratioWithin;
  const hi21 = NATIVE.perPair2on1[1] * TARGET.ratioWithin;
  const rows: Row[] = [
    {
      what: "fix_size_alloc_test, 1 CPU, `vmsim test` defaults (lockdep and slub_debug on)",
      vmsim: `${us(debugUs)} (${times(debugUs / prodUs)} production)`,
      value: debugUs,
      native: `${nativeFix} µs`,
      ratio: overFix(debugUs),
      target: `≤ ${TARGET.debugOverProduction}× production`,
      met: debugUs <= TARGET.debugOverProduction * prodUs,
    },
    {
      what: "fix_size_alloc_test, 1 CPU, `--no-lockdep` (slub_debug on)",
      vmsim: `${us(noLockdepUs)} (${times(noLockdepUs / prodUs)} production)`,
      value: noLockdepUs,
      native: `${nativeFix} µs`,
      ratio: overFix(noLockdepUs),
      target: `≤ ${TARGET.debugOverProduction}× production`,
      met: noLockdepUs <= TARGET.debugOverProduction * prodUs,
    },
    {
      what: "fix_size_alloc_test, 1 CPU, production (lockdep, slub_debug, tracing off)",
      vmsim: us(prodUs),
      value: prodUs,
      native: `${nativeFix} µs`,
      ratio: overFix(prodUs),
      target: `≤ ${TARGET.fixSizeUs.toFixed(1)} µs`,
      met: prodUs <= TARGET.fixSizeUs,
    },
    {
      what: "random_size_alloc_test, 1 CPU, production",
      vmsim: us(randomUs),
      value: randomUs,
      native: `${NATIVE.randomSizeUs} µs`,
      ratio: `${(randomUs / NATIVE.randomSizeUs).toFixed(1)}×`,
      target: `≤ ${fmt(TARGET.overNative * NATIVE.randomSizeUs)} µs`,
      met: randomUs <= TARGET.overNative * NATIVE.randomSizeUs,
    },
    {
      what: "long_busy_list_alloc_test, 1 CPU, production",
      vmsim: us(busyUs),
      value: busyUs,
      native: `${NATIVE.longBusyListUs} µs`,
      ratio: `${(busyUs / NATIVE.longBusyListUs).toFixed(1)}×`,
      target: `≤ ${fmt(TARGET.overNative * NATIVE.longBusyListUs)} µs`,
      met: busyUs <= TARGET.overNative * NATIVE.longBusyListUs,
    },
    {
      what: `fix_size per-pair time, 2 CPUs ÷ 1 CPU, production (median of ${ROUNDS_2_ON_1})`,
      vmsim: `${times(ratio21)} (${ratios21.map(times).join(", ")})`,
      value: ratio21,
      native: `${range(NATIVE.perPair2on1)}×`,
      ratio: "",
      target: `within ${TARGET.ratioWithin}× of native: ${fmt(lo21)}–${fmt(hi21)}×`,
      met: ratio21 >= lo21 && ratio21 <= hi21,
    },
    {
      what: `fix_size all-CPU pairs/s, 4 CPUs ÷ 2 CPUs on ${os.availableParallelism()} cores, production (${RUNS_4_ON_2} runs)`,
      vmsim: `median ${ratio42.toFixed(3)}, worst ${worst42.toFixed(3)} (${ratios42.map((r) => r.toFixed(3)).join(", ")})`,
      value: worst42,
      native: "—",
      ratio: "",
      target: `≥ ${TARGET.fourOnTwo} in every run`,
      met: worst42 >= TARGET.fourOnTwo,
    },
  ];

  const host = hostInfo();
  const loadAfter = os.loadavg()[0]!;
  const minutes = (performance.now() - t0) / 60_000;
  const md = `${[
    hostLine(host),
    "",
    `\`npm run bench:vmalloc -- --repeats ${repeats} --loops ${loops}\`: ${minutes.toFixed(1)} min; host load average ` +
      `${loadBefore.toFixed(2)} at the start, ${loadAfter.toFixed(2)} at the end (1 min).`,
    "",
    `lib/test_vmalloc.c loops, every CPU at once, ${MEMORY / 2 ** 20} MiB, no interrupts. µs per vmalloc+vfree pair = ` +
      `median over ${repeats} repeats × CPUs of (timed loop / pairs); the 1- and 2-CPU rows are the medians of ` +
      `${ROUNDS_2_ON_1} rounds in which every configuration takes its turn. fix_size runs ${fmt(loops)} loops, ` +
      `random_size and long_busy_list ${fmt(loops / 10)}, the 4 ÷ 2 runs ${fmt(loops4on2)}.`,
    "",
    "| | vmsim | native | vmsim ÷ native | target | met? |",
    "|---|---:|---:|---:|---|---|",
    ...rows.map(
      (r) => `| ${r.what} | ${r.vmsim} | ${r.native} | ${r.ratio} | ${r.target} | ${r.met ? "yes" : "**no**"} |`,
    ),
    "",
    "Native: issue 11's figures from its native C build of the same v4.19 algorithm (same test loop, same page " +
      "allocation and page-table work) on this host type, measured beside vmsim when the issue was filed — not " +
      "by this benchmark. Its 2-CPU figure is 4.2–4.4 µs per pair per thread.",
    "",
    "Each round's figures (µs per pair; 4 ÷ 2: all-CPU pairs/s):",
    "",
    "| round | 1 CPU debug | 1 CPU --no-lockdep | 1 CPU production | 2 CPUs production | 2 ÷ 1 | random_size | long_busy_list |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...two.map(
      (p, i) =>
        `| ${i + 1} | ${fmt(one.debug[i]!.usPerPair)} | ${fmt(one.noLockdep[i]!.usPerPair)} | ${fmt(one.production[i]!.usPerPair)} | ` +
        `${fmt(p.usPerPair)} | ${times(ratios21[i]!)} | ${fmt(random1[i]!.usPerPair)} | ${fmt(busy1[i]!.usPerPair)} |`,
    ),
    "",
    "| 4 ÷ 2 run | 2 CPUs: µs per pair | pairs/s | 4 CPUs: µs per pair | pairs/s | 4 ÷ 2 |",
    "|---:|---:|---:|---:|---:|---:|",
    ...fourOnTwo.map(
      (r, i) =>
        `| ${i + 1} | ${fmt(r.two.usPerPair)} | ${fmt(r.two.pairsPerSec)} | ${fmt(r.four.usPerPair)} | ${fmt(r.four.pairsPerSec)} | ${r.ratio.toFixed(3)} |`,
    ),
  ].join("\n")}\n`;
  process.stdout.write(md);
  writeResults(values.out, "vmalloc", md, {
    host,
    loadAverage: { start: loadBefore, end: loadAfter },
    memory: MEMORY,
    repeats,
    loops,
    loops4on2,
    configs: CONFIGS,
    native: NATIVE,
    target: TARGET,
    rows,
    rounds: {
      debug: one.debug,
      noLockdep: one.noLockdep,
      production: one.production,
      randomSize: random1,
      longBusyList: busy1,
      twoCpus: two,
      ratios2on1: ratios21,
    },
    fourOnTwo,
  });
}

await runBenchMain(main);
