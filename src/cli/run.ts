/**
 * `vmsim run`: boot a machine, print its layout, run every CPU on a real
 * workload for a while, check the result, and end with one SUMMARY line.
 *
 * The workload is selftest's spin_counter: each CPU increments one shared
 * counter with a plain (non-atomic) add under a spinlock, in rounds, until the
 * time is up (the run ends at the first round boundary after it). The counter
 * must equal the number of increments: a lost update means the lock did not
 * exclude.
 */
import cliProgress from "cli-progress";
import type { MachineConfig } from "../shared/config.js";
import type { Report } from "../shared/report.js";
import { Machine, MachineError } from "../workers/machine.js";
import { describeMachine, formatMachineInfo } from "./info.js";
import { plural } from "./format.js";
import { formatDuration } from "./options.js";

/**
 * Rounds are sized to take this long: long enough that the CPUs, which start a
 * round as their request arrives, overlap for most of it; short enough that the
 * progress bar moves and the run ends close to its deadline.
 */
const ROUND_MS = 50;

/** The last line of a run, after `SUMMARY `: what tools parse. */
export interface RunSummary {
  readonly command: "run";
  /** True when the run found no failure. */
  readonly ok: boolean;
  readonly cpus: number;
  readonly layout: string;
  readonly memory: number;
  readonly seed: number;
  readonly workload: string;
  readonly durationMs: number;
  /** Lock-protected increments done, all CPUs. */
  readonly ops: number;
  readonly opsPerSec: number;
  /** True when Ctrl-C ended the run early. */
  readonly interrupted: boolean;
  readonly reports: number;
  readonly failures: readonly string[];
  /** The command that reruns this exact configuration. */
  readonly rerun: string;
}

function formatReport(r: Report): string {
  return `[CPU${r.cpu}] ${r.kind}: ${r.text}`;
}

/** How long to run, and the command line that reruns this configuration (printed on failure). */
export interface RunMachineOptions {
  readonly durationMs: number;
  readonly rerun: string;
}

/** Runs the command; resolves to the exit code (0 ok, 1 a failure was found). */
export async function runMachine(config: MachineConfig, opts: RunMachineOptions): Promise<number> {
  return runOn(await Machine.boot(config), opts);
}

function progressBar(): cliProgress.SingleBar | null {
  if (!process.stderr.isTTY) return null;
  return new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: "  spin_counter [{bar}] {percentage}% | {duration_formatted} of {limit} | {ops} increments",
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
}

async function runOn(m: Machine, { durationMs, rerun }: RunMachineOptions): Promise<number> {
  const config = m.config;
  const failures: string[] = [];
  let ops = 0;
  let elapsed = 0;
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.once("SIGINT", onSigint);
  const bar = progressBar();
  try {
    for (const line of formatMachineInfo(describeMachine(m.arena))) console.log(line);
    console.log("");
    await m.runAll("read_counter"); // every CPU is up (its worker loaded) before the clock starts
    bar?.start(durationMs, 0, { ops: 0, limit: formatDuration(durationMs) });
    const start = performance.now();
    let iters = 1000;
    while (!interrupted && elapsed < durationMs) {
      const t0 = performance.now();
      await m.runAll("spin_counter", { iters });
      ops += config.cpus * iters;
      elapsed = performance.now() - start;
      // Size the next round from this one's rate: ROUND_MS long, or what is left of the run.
      const budget = Math.min(ROUND_MS, durationMs - elapsed);
      iters = Math.max(100, Math.min(iters * 2, Math.round((iters * budget) / Math.max(performance.now() - t0, 0.01))));
      bar?.update(Math.min(elapsed, durationMs), { ops });
    }
    bar?.stop();
    const counter = await m.run(0, "read_counter");
    console.log(
      `spin_counter: ${plural(config.cpus, "CPU")}, ${ops} increments under one spinlock in ${(elapsed / 1000).toFixed(2)} s` +
        ` (${Math.round(ops / (elapsed / 1000))} ops/s); counter ${counter}`,
    );
    if (counter !== ops) failures.push(`spin_counter: lost updates: counter ${counter}, expected ${ops}`);
  } catch (e) {
    bar?.stop();
    if (!(e instanceof MachineError)) throw e;
    failures.push(e.message);
  } finally {
    process.removeListener("SIGINT", onSigint);
    await m.shutdown();
  }
  for (const r of m.reports) failures.push(formatReport(r));
  for (const f of failures) console.error(`vmsim: FAILED: ${f}`);
  if (failures.length > 0) console.error(`vmsim: rerun with: ${rerun}`);
  const summary: RunSummary = {
    command: "run",
    ok: failures.length === 0,
    cpus: config.cpus,
    layout: config.layout,
    memory: config.memory,
    seed: config.seed,
    workload: "spin_counter",
    durationMs: Math.round(elapsed),
    ops,
    opsPerSec: elapsed > 0 ? Math.round(ops / (elapsed / 1000)) : 0,
    interrupted,
    reports: m.reports.length,
    failures,
    rerun,
  };
  console.log(`SUMMARY ${JSON.stringify(summary)}`);
  return summary.ok ? 0 : 1;
}
