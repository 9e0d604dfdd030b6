/**
 * The soak run: `vmsim stress` on the unbroken build, 2 CPUs, for a long
 * duration (default 10 minutes) — the other half of the proof that stress
 * hunts races: the builds broken on purpose (src/shared/inject.ts) are caught in
 * well under a second, this one must stay clean for the whole run. Runs the
 * built CLI as a user would, reads its SUMMARY line, and writes
 * bench/results/soak.{md,json}: ops done, ops/s, rounds and checks,
 * violations and kernel reports (expected 0), the leak check, the seed and
 * the command.
 *
 *   node dist/bench/soak.js [--duration 10m] [--seed 1] [--cpus 2] [--out <dir>]
 *
 * Exits 1 when the run was not clean.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatDuration, parseDuration } from "../src/workers/cmdline.js";
import { formatInt } from "../src/workers/format.js";
import type { StressResult } from "../src/workers/stress.js";
import { RESULTS_DIR, hostInfo, hostLine, writeResults, runBenchMain } from "./report.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

/**
 * Runs `vmsim <args>` with its stderr on ours (on a terminal, its progress
 * bar; its failure report); resolves to its exit code and the parsed SUMMARY
 * line (null when it printed none).
 */
function vmsim(args: readonly string[]): Promise<{ code: number; summary: StressResult | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("SUMMARY "));
      resolve({
        code: code ?? -1,
        summary: line === undefined ? null : (JSON.parse(line.slice("SUMMARY ".length)) as StressResult),
      });
    });
  });
}

function nonNegativeInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`--${name} must be a non-negative integer, got ${raw}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: "string", default: "10m" },
      seed: { type: "string", default: "1" },
      cpus: { type: "string", default: "2" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const durationMs = parseDuration(values.duration);
  if (durationMs === null || durationMs <= 0) throw new RangeError(`--duration: expected e.g. 90s or 10m`);
  const seed = nonNegativeInt("seed", values.seed);
  const cpus = nonNegativeInt("cpus", values.cpus);
  const args = ["stress", "--cpus", String(cpus), "--seed", String(seed), "--duration", formatDuration(durationMs)];
  const command = `vmsim ${args.join(" ")}`;

  const host = hostInfo();
  const t0 = performance.now();
  const { code, summary: r } = await vmsim(args);
  const wallS = (performance.now() - t0) / 1000;
  if (r === null) throw new Error(`${command} printed no SUMMARY line (exit ${code}; its stderr is above)`);

  const failures = r.violations.length + r.nrReports;
  const md = `${[
    hostLine(host),
    "",
    `Soak: \`${command}\` — the unbroken build (no \`--inject\`), ${cpus} CPUs, stress defaults ` +
      `(stutter ${r.options.stutter}, RCU walks ${r.options.rcuWalk}, fail_page_alloc ${r.options.failPageAlloc}%, ` +
      `irq rate ${r.config.irqRate}).`,
    "",
    "| seed | workload time | ops | ops/s | rounds | checks | violations | kernel reports | leaked pages | verdict |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    `| ${r.seed} | ${(r.durationMs / 1000).toFixed(1)} s | ${formatInt(r.ops)} | ${formatInt(r.opsPerSec)} | ${formatInt(r.rounds)} | ` +
      `${formatInt(r.checks)} | ${r.violations.length} | ${r.nrReports} | ${r.leak?.leakedPages ?? "not run"} | ` +
      `${r.ok ? "clean" : "**FAILED**"} |`,
    "",
    `Wall time ${wallS.toFixed(1)} s (boot, checks between rounds, drain, leak check included); exit status ${code}.`,
    ...(r.ok ? [] : ["", "```", ...r.report, "```"]),
  ].join("\n")}\n`;
  process.stdout.write(md);
  writeResults(values.out, "soak", md, {
    host,
    command,
    exitCode: code,
    wallS,
    seed: r.seed,
    ok: r.ok,
    ops: r.ops,
    opsPerSec: r.opsPerSec,
    durationMs: r.durationMs,
    rounds: r.rounds,
    checks: r.checks,
    violations: r.violations,
    nrReports: r.nrReports,
    failures,
    leak: r.leak,
    apis: r.apis,
    rerun: r.rerun,
  });
  if (!r.ok) process.exitCode = 1;
}

await runBenchMain(main);
