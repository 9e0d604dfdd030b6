/**
 * What KCSAN costs: `vmsim stress` with and without `--kcsan` (default
 * sampling: CONFIG_KCSAN_SKIP_WATCH 4000, udelay 80/20 µs), interleaved
 * (plain, kcsan, plain, kcsan …) so that a busy host weighs on both alike.
 * Runs the built CLI as a user would, reads each SUMMARY line, and writes
 * bench/results/kcsan.{md,json}: ops/s of every run, the medians, their ratio
 * (the target: --kcsan at ≥ 1/4 of the plain ops/s) and KCSAN's counters.
 *
 *   node dist/bench/kcsan.js [--pairs 3] [--duration 10s] [--kernel 4.19] [--cpus 2] [--seed 1] [--out <dir>]
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { isKernelVersion } from "../src/shared/config.js";
import { formatDuration, parseDuration } from "../src/workers/cmdline.js";
import { formatInt } from "../src/workers/format.js";
import type { StressResult } from "../src/workers/stress.js";
import { RESULTS_DIR, hostInfo, hostLine, positiveInt, runBenchMain, writeResults } from "./report.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

/** Runs `vmsim <args>`; resolves to its parsed SUMMARY line. */
function stress(args: readonly string[]): Promise<StressResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("SUMMARY "));
      if (line === undefined) reject(new Error(`vmsim ${args.join(" ")} printed no SUMMARY line (exit ${code})`));
      else resolve(JSON.parse(line.slice("SUMMARY ".length)) as StressResult);
    });
  });
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pairs: { type: "string", default: "3" },
      duration: { type: "string", default: "10s" },
      kernel: { type: "string", default: "4.19" },
      cpus: { type: "string", default: "2" },
      seed: { type: "string", default: "1" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const pairs = positiveInt("pairs", values.pairs);
  const durationMs = parseDuration(values.duration);
  if (durationMs === null || durationMs <= 0) throw new RangeError("--duration: expected e.g. 10s or 1m");
  if (!isKernelVersion(values.kernel)) throw new RangeError(`--kernel: unknown kernel ${values.kernel}`);
  const base = [
    "stress",
    "--kernel",
    values.kernel,
    "--cpus",
    String(positiveInt("cpus", values.cpus)),
    "--seed",
    String(positiveInt("seed", values.seed)),
    "--duration",
    formatDuration(durationMs),
  ];
  const host = hostInfo();
  const runs: { kcsan: boolean; r: StressResult }[] = [];
  for (let i = 0; i < pairs; i++)
    for (const kcsan of [false, true]) {
      const r = await stress(kcsan ? [...base, "--kcsan"] : base);
      runs.push({ kcsan, r });
      process.stderr.write(`${kcsan ? "kcsan" : "plain"} run ${i + 1}: ${formatInt(r.opsPerSec)} ops/s\n`);
    }
  const plain = runs.filter((x) => !x.kcsan).map((x) => x.r.opsPerSec);
  const kcsan = runs.filter((x) => x.kcsan).map((x) => x.r.opsPerSec);
  const ratio = median(kcsan) / median(plain);
  const command = `vmsim ${base.join(" ")} [--kcsan]`;
  const md = `${[
    hostLine(host),
    "",
    `KCSAN's cost: \`${command}\`, ${pairs} runs each, interleaved (plain, --kcsan, plain, …); default sampling ` +
      "(skip_watch 4000 randomized, udelay 80/20 µs).",
    "",
    "| run | build | ops/s | watchpoints set up | slot busy | conflicting accesses | verdict |",
    "|---:|---|---:|---:|---:|---:|---|",
    ...runs.map(
      (x, i) =>
        `| ${(i >> 1) + 1} | ${x.kcsan ? "--kcsan" : "plain"} | ${formatInt(x.r.opsPerSec)} | ` +
        `${x.r.kcsan ? formatInt(x.r.kcsan.setup_watchpoints) : "–"} | ${x.r.kcsan ? formatInt(x.r.kcsan.no_capacity) : "–"} | ` +
        `${x.r.kcsan ? formatInt(x.r.kcsan.data_races) : "–"} | ${x.r.ok ? "clean" : "**FAILED**"} |`,
    ),
    "",
    `Median ops/s: plain ${formatInt(median(plain))}, --kcsan ${formatInt(median(kcsan))}: ` +
      `--kcsan runs at ${(ratio * 100).toFixed(0)}% of the plain build (target: ≥ 25%).`,
  ].join("\n")}\n`;
  process.stdout.write(md);
  writeResults(values.out, "kcsan", md, {
    host,
    command,
    pairs,
    runs: runs.map((x) => ({
      kcsan: x.kcsan,
      ok: x.r.ok,
      opsPerSec: x.r.opsPerSec,
      ops: x.r.ops,
      counters: x.r.kcsan,
    })),
    medianPlain: median(plain),
    medianKcsan: median(kcsan),
    ratio,
  });
}

await runBenchMain(main);
