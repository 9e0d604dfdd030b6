/**
 * Work per second (issue 11 item 5): what a user gets done in a second of
 * vmsim, before and after the hot-path work. Writes
 * bench/results/<name>.{md,json} (default name "throughput").
 *
 *   node dist/bench/throughput.js [--duration 60s] [--explore-ms 2000] [--explore-budget 20s]
 *                                 [--repeats 3] [--name throughput] [--out <dir>]
 *
 * - stress ops/s: `vmsim stress --cpus 2 --seed 1 --duration 60s --json`
 *   of each kernel (4.19, 5.10, 6.12), the JSON's opsPerSec.
 * - explorations/s: bench/sched.ts's part c (`node dist/bench/sched.js
 *   --rows c`): PCT explorations of vmalloc_mix on 2 CPUs (50 ops each) and
 *   on 64 (5 ops each), restoring the machine before each, the median of `--repeats`.
 * - `vmsim explore` runs/s of the standard scenario: `vmsim explore
 *   --scenario stress --cpus 2 --seed 1 --budget 20s` (PCT, 50 operations
 *   per CPU), the SUMMARY's runsPerSec, the median of `--repeats`.
 *
 * Every command runs as a user runs it (a child process of the built CLI).
 * Progress goes to stderr on a terminal only.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseDuration } from "../src/workers/cmdline.js";
import { RESULTS_DIR, fmt, hostInfo, hostLine, positiveInt, runBenchMain, statsOf, writeResults } from "./report.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const VMSIM = join(ROOT, "dist/src/cli/main.js");
const SCHED_BENCH = join(ROOT, "dist/bench/sched.js");
const KERNELS = ["4.19", "5.10", "6.12"] as const;

/** One line of the results. */
interface Row {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** The command that gives it. */
  readonly command: string;
  readonly samples: readonly number[];
}

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`  ${text}\n`);
}

/** Runs node with `args`; resolves to stdout (a nonzero exit is fine where `okCodes` has it). */
function node(args: readonly string[], okCodes: readonly number[] = [0]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 64 * 1024 * 1024, cwd: ROOT }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      if (!okCodes.includes(code)) reject(new Error(`node ${args.join(" ")}: exit ${code}: ${stderr.trim()}`));
      else resolve(stdout);
    });
  });
}

const summaryOf = (stdout: string) =>
  JSON.parse(/^SUMMARY (.*)$/m.exec(stdout)?.[1] ?? "null") as Record<string, unknown>;

async function stressRows(duration: string): Promise<Row[]> {
  const rows: Row[] = [];
  for (const kernel of KERNELS) {
    progress(`stress, kernel ${kernel}, ${duration}`);
    const args = ["stress", "--kernel", kernel, "--cpus", "2", "--seed", "1", "--duration", duration, "--json"];
    const out = await node([VMSIM, ...args]);
    const json = JSON.parse(out) as { opsPerSec: number; ok: boolean };
    if (!json.ok) throw new Error(`vmsim ${args.join(" ")} failed`);
    rows.push({
      name: `stress ops/s, kernel ${kernel}, 2 CPUs`,
      value: json.opsPerSec,
      unit: "ops/s",
      command: `vmsim ${args.join(" ")}`,
      samples: [json.opsPerSec],
    });
  }
  return rows;
}

async function explorationRows(exploreMs: number, repeats: number): Promise<Row[]> {
  progress("explorations/s (bench/sched.ts part c)");
  const dir = mkdtempSync(join(tmpdir(), "vmsim-throughput-"));
  try {
    const args = ["--rows", "c", "--explore-ms", String(exploreMs), "--repeats", String(repeats)];
    await node([SCHED_BENCH, ...args, "--out", dir]);
    const { rows } = JSON.parse(readFileSync(join(dir, "sched.json"), "utf8")) as {
      rows: { name: string; unit: string; median: number }[];
    };
    return rows
      .filter((r) => r.unit === "explorations/s")
      .map((r) => ({
        name: r.name,
        value: r.median,
        unit: r.unit,
        command: `node dist/bench/sched.js ${args.join(" ")}`,
        samples: [r.median],
      }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function exploreRow(budget: string, repeats: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-throughput-"));
  const args = ["explore", "--scenario", "stress", "--cpus", "2", "--seed", "1", "--budget", budget];
  try {
    const rates: number[] = [];
    for (let i = 0; i < repeats; i++) {
      progress(`vmsim explore, repeat ${i + 1}/${repeats}`);
      // A found failure (exit 1) still measured runs; its replay file goes to a scratch folder.
      const s = summaryOf(await node([VMSIM, ...args, "--out", dir], [0, 1]));
      rates.push(s["runsPerSec"] as number);
    }
    return {
      name: "vmsim explore runs/s (stress, 2 CPUs, 50 ops each, PCT)",
      value: statsOf(rates).median,
      unit: "runs/s",
      command: `vmsim ${args.join(" ")}`,
      samples: rates,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function markdown(rows: readonly Row[], load: readonly number[]): string {
  return `${[
    hostLine(hostInfo()),
    "",
    `Load average (1 min) at the start and the end: ${load.map((l) => l.toFixed(2)).join(", ")}.`,
    "",
    "| measurement | value | unit | samples | command |",
    "|---|---:|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.value)} | ${r.unit} | ${r.samples.map((x) => fmt(x)).join(", ")} | \`${r.command}\` |`,
    ),
  ].join("\n")}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: "string", default: "60s" },
      "explore-ms": { type: "string", default: "2000" },
      "explore-budget": { type: "string", default: "20s" },
      repeats: { type: "string", default: "3" },
      name: { type: "string", default: "throughput" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  for (const flag of ["duration", "explore-budget"] as const)
    if (parseDuration(values[flag]) === null)
      throw new RangeError(`--${flag} must be a duration (60s, 2m), got ${values[flag]}`);
  const exploreMs = positiveInt("explore-ms", values["explore-ms"]);
  const repeats = positiveInt("repeats", values.repeats);
  const load = [loadavg()[0]!];
  const rows = [
    ...(await stressRows(values.duration)),
    ...(await explorationRows(exploreMs, repeats)),
    await exploreRow(values["explore-budget"], repeats),
  ];
  load.push(loadavg()[0]!);
  const md = markdown(rows, load);
  process.stdout.write(md);
  writeResults(values.out, values.name, md, { host: hostInfo(), load, rows });
}

await runBenchMain(main);
