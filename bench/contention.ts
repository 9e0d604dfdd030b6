/**
 * The contention table (issue 11): for each lib/test_vmalloc.c case and CPU
 * count, the share of the CPUs' time in each lock's contended path — what
 * CONFIG_LOCK_STAT's waittime gives per lock class — measured as `vmsim
 * bench` measures it (src/workers/scaling.ts: spinlocks, rwlocks and mutexes
 * all wait in src/locks/lock_wait.ts, which counts every contended wait by
 * lock class). Then, for fix_size_alloc_test, what limits its 2 ÷ 1 per-pair
 * ratio: where a CPU's time goes in a traced run (holding a lock, waiting for
 * one, outside every lock) and what one cache-line handoff between two
 * threads costs on this host.
 *
 *   node dist/bench/contention.js [--tests all|fix_size,…] [--cpus 1,2,4] [--repeats 3] [--loops 20000] [--out <dir>]
 *
 * The production configuration (lockdep, slub_debug and tracing off), as
 * `vmsim bench`. `--loops` is fix_size's test_loop_count; the other cases run
 * a tenth. Writes bench/results/contention.{md,json}.
 */
import os from "node:os";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import {
  type LockHoldShares,
  type ScalingPoint,
  measureLockHold,
  measureTestVmalloc,
  memoryFor,
} from "../src/workers/scaling.js";
import { TEST_CASE_ARRAY, type TestVmallocCase } from "../src/workers/workloads/test_vmalloc.js";
import { RESULTS_DIR, fmt, hostInfo, hostLine, positiveInt, runBenchMain, statsOf, writeResults } from "./report.js";

/** Every case `vmsim bench` can time: all but the one meant to fail. */
const ALL_CASES: readonly TestVmallocCase[] = TEST_CASE_ARRAY.filter((c) => !c.xfail).map((c) => c.name);
/** A class's column appears when it reaches this share somewhere, percent; the rest are "others". */
const COLUMN_MIN_PCT = 0.5;
/** Round trips of the cache-line ping-pong. */
const PING_PONGS = 200_000;

/** Progress on a terminal only. */
function progress(what: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${what}`);
}

/**
 * Two threads hand one Int32 of a SharedArrayBuffer back and forth (each
 * waits, spinning, for the other's store): ns per one-way handoff, the
 * median of 5 runs. A CPU that takes a lock the other CPU released pays at
 * least this, as the kernel's CPUs do on the same cores (on a busy host a
 * descheduled thread makes it far dearer).
 */
async function cacheLineHandoffNs(): Promise<number[]> {
  // Both threads meet at word 1 before the clock starts: neither's start-up is timed.
  const src = `
    const { parentPort, workerData: { sab, parity, n } } = require("node:worker_threads");
    const w = new Int32Array(sab);
    Atomics.add(w, 1, 1);
    while (Atomics.load(w, 1) < 2);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      while ((Atomics.load(w, 0) & 1) !== parity);
      Atomics.add(w, 0, 1);
    }
    parentPort.postMessage(performance.now() - t0);`;
  const runs: number[] = [];
  for (let run = 0; run < 5; run++) {
    const sab = new SharedArrayBuffer(64);
    const ms = await Promise.all(
      [0, 1].map(
        (parity) =>
          new Promise<number>((resolve, reject) => {
            const w = new Worker(src, { eval: true, workerData: { sab, parity, n: PING_PONGS } });
            w.once("message", resolve);
            w.on("error", reject);
          }),
      ),
    );
    runs.push((Math.max(...ms) * 1e6) / (2 * PING_PONGS));
  }
  return runs;
}

const pct = (x: number) => `${x.toFixed(1)}%`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tests: { type: "string", default: "all" },
      cpus: { type: "string", default: "1,2,4" },
      repeats: { type: "string", default: "3" },
      loops: { type: "string", default: "20000" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const tests =
    values.tests === "all"
      ? ALL_CASES
      : values.tests.split(",").map((t) => {
          const found = ALL_CASES.find((c) => c === t || c === `${t}_alloc_test` || c === `${t}_test`);
          if (found === undefined)
            throw new RangeError(`--tests: unknown case ${t}; expected some of ${ALL_CASES.join(", ")}`);
          return found;
        });
  const cpuCounts = values.cpus.split(",").map((c) => positiveInt("cpus", c));
  const repeats = positiveInt("repeats", values.repeats);
  const loops = positiveInt("loops", values.loops);
  const loadBefore = os.loadavg()[0]!;
  const t0 = performance.now();

  const points: ScalingPoint[] = [];
  for (const cpus of cpuCounts) {
    let done = 0;
    points.push(
      ...(await measureTestVmalloc(cpus, {
        tests,
        repeats,
        loops,
        memory: memoryFor(cpus, tests, loops),
        onRun: (test) => progress(`${cpus} CPUs: ${test} (${++done}/${tests.length * (repeats + 1)})`),
      })),
    );
  }
  const holds: LockHoldShares[] = [];
  for (const cpus of cpuCounts) {
    progress(`fix_size_alloc_test traced on ${cpus} CPUs`);
    holds.push(await measureLockHold(cpus, { test: "fix_size_alloc_test", loops }));
  }
  progress("cache-line handoff");
  const handoff = await cacheLineHandoffNs();
  progress("");
  const handoffNs = statsOf(handoff).median;

  // The columns: every class that reaches COLUMN_MIN_PCT somewhere, by its largest share.
  const peak = new Map<string, number>();
  for (const p of points)
    for (const [name, share] of Object.entries(p.lockWaitByLock)) peak.set(name, Math.max(peak.get(name) ?? 0, share));
  const columns = [...peak]
    .filter(([, v]) => v >= COLUMN_MIN_PCT)
    .sort((a, b) => b[1] - a[1])
    .map(([n]) => n);
  const kinds = Object.assign({}, ...holds.map((h) => h.kinds)) as Record<string, string>;
  const cell = (v: number | undefined) => (v === undefined || v < 0.05 ? "" : pct(v));

  const fix = (cpus: number) => points.find((p) => p.test === "fix_size_alloc_test" && p.cpus === cpus);
  const one = fix(1);
  const two = fix(2);
  const hold1 = holds.find((h) => h.cpus === 1);
  const hold2 = holds.find((h) => h.cpus === 2);
  const host = hostInfo();
  const loadAfter = os.loadavg()[0]!;
  const minutes = (performance.now() - t0) / 60_000;
  const command = `npm run bench:contention -- --tests ${values.tests} --cpus ${cpuCounts.join(",")} --repeats ${repeats} --loops ${loops}`;
  const holdRow = (h: LockHoldShares) => {
    const p = fix(h.cpus);
    const byLock = Object.entries(h.heldByLock)
      .slice(0, 3)
      .map(([n, v]) => `${n} ${pct(v)}`)
      .join(", ");
    return `| ${h.cpus} | ${p ? fmt(p.usPerPair) : ""} | ${pct(h.heldPct)} | ${pct(h.waitPct)} | ${pct(h.outsidePct)} | ${byLock} |`;
  };
  const md = `${[
    hostLine(host),
    "",
    `\`${command}\`: ${minutes.toFixed(1)} min; host load average ${loadBefore.toFixed(2)} at the start, ` +
      `${loadAfter.toFixed(2)} at the end (1 min).`,
    "",
    "Production configuration (lockdep, slub_debug, tracing off), every CPU running the case at once. " +
      `Lock wait = the CPUs' time in contended lock waits (spinlocks, rwlocks and mutexes alike) over their time in ` +
      `the test, median of ${repeats} runs, in all and per lock class (each its own median: the classes need not add ` +
      `up to the total); a class gets a column where it reaches ${COLUMN_MIN_PCT}% somewhere, with its kind ` +
      `(spin, read, write, mutex) where the traced runs below took it. * = more CPUs than host cores.`,
    "",
    `| test | CPUs | µs per pair | lock wait | ${columns.map((c) => `${c}${kinds[c] ? ` (${kinds[c]})` : ""}`).join(" | ")} | others |`,
    `|---|---:|---:|---:|${columns.map(() => "---:|").join("")}---:|`,
    ...tests.flatMap((t) =>
      points
        .filter((p) => p.test === t)
        .map((p) => {
          const others = Object.entries(p.lockWaitByLock)
            .filter(([n]) => !columns.includes(n))
            .reduce((a, [, v]) => a + v, 0);
          return (
            `| ${t} | ${p.cpus}${p.cpus > host.cores ? "*" : ""} | ${fmt(p.usPerPair)} | ${pct(p.lockWaitPct)} | ` +
            `${columns.map((c) => cell(p.lockWaitByLock[c])).join(" | ")} | ${cell(others)} |`
          );
        }),
    ),
    "",
    "fix_size_alloc_test traced (lock events on: each costs a little, so these runs are somewhat slower than the " +
      "untraced ones above): where each CPU's time goes, over the last events of its ring.",
    "",
    "| CPUs | µs per pair (untraced) | lock held | waiting | outside every lock | held, by lock |",
    "|---:|---:|---:|---:|---:|---|",
    ...holds.map(holdRow),
    "",
    `One cache-line handoff between two threads (an Int32 of a SharedArrayBuffer stored by one, awaited by the ` +
      `other, ${fmt(PING_PONGS)} round trips, median of 5 runs): ${fmt(handoffNs)} ns ` +
      `(${handoff.map((n) => fmt(n)).join(", ")}).`,
    ...(one && two && hold1 && hold2
      ? [
          "",
          `fix_size 2 ÷ 1 per pair: ${(two.usPerPair / one.usPerPair).toFixed(2)}× (${fmt(one.usPerPair)} → ` +
            `${fmt(two.usPerPair)} µs); the second CPU adds ${fmt(two.usPerPair - one.usPerPair)} µs per pair, ` +
            `of which waiting ${pct(hold2.waitPct)} of the 2-CPU time ≈ ${fmt((hold2.waitPct / 100) * two.usPerPair)} µs.`,
        ]
      : []),
  ].join("\n")}\n`;
  process.stdout.write(md);
  writeResults(values.out, "contention", md, {
    host,
    command,
    loadAverage: { start: loadBefore, end: loadAfter },
    repeats,
    loops,
    points,
    holds,
    cacheLineHandoffNs: { median: handoffNs, runs: handoff },
  });
}

await runBenchMain(main);
