/**
 * One machine that runs a scenario again and again under the deterministic
 * scheduler: booted and set up once, snapshotted, then restored before each
 * run (far cheaper than a boot). Each run's outcome is its failure (if any),
 * the scheduler's record and a digest that equal runs share.
 */
import { createHash } from "node:crypto";
import type { MachineConfig } from "../shared/config.js";
import { TRACE_RING_SIZE, lastEvents, set_snapshot_on_warning } from "../shared/events.js";
import { type Report, kernelCallChain } from "../shared/report.js";
import {
  type SchedRecord,
  type Strategy,
  VERDICT_DIVERGED,
  schedOff,
  schedRecord,
  schedSetup,
} from "../sched/sched_det.js";
import { checkMachine } from "../check/index.js";
import { traceReset } from "../trace/trace.js";
import { Machine, MachineError } from "../workers/machine.js";
import type { Scenario, ScenarioParams } from "./scenario.js";

/** What broke a run. */
/** The kinds of failure a run can end in (a replay file names one). */
export const FAILURE_KINDS = ["bug", "soft-lockup", "report", "check", "deadlock", "livelock", "diverged"] as const;

export interface Failure {
  /**
   * bug (a CPU threw), soft-lockup (a CPU stayed inside one kernel call: src/sched/watchdog.ts), report (WARN,
   * fault, stale-tlb, lockdep …), check (an invariant), deadlock, livelock, diverged.
   */
  readonly kind: (typeof FAILURE_KINDS)[number];
  /** The failure with addresses and numbers blotted out: the same bug gives the same signature. */
  readonly signature: string;
  /**
   * The whole text: the BUG's message, the reports (each distinct one once,
   * with its count, its function and call trace), the violations.
   */
  readonly text: string;
  /**
   * The kernel call chain of the first failure, innermost first: `where[0]`
   * is the function it happened in. Empty for a check or a failure outside
   * kernel code; absent in replay files of older vmsims.
   */
  readonly where?: readonly string[];
}

export interface Outcome {
  readonly failure: Failure | null;
  readonly record: SchedRecord;
  /** Hash of the decisions, the workloads' results, the reports and every CPU's event ring. */
  readonly digest: string;
  /** Wall time of the run, restore included. */
  readonly ms: number;
}

/** A run's steps at most, unless told: far beyond any scenario's, so hitting it is a livelock. */
export const DEFAULT_STEP_CAP = 50_000_000;

/** The most steps a run may be capped at (`vmsim explore --step-cap`). */
export const MAX_STEP_CAP = 2_000_000_000;

/** The failure's first line as it happened (addresses and all): `[CPU1] fault in show_numa_info: Unable to …`. */
export function failureHeadline(f: Failure): string {
  return f.text.split("\n")[0] || f.signature;
}

/** Blots out what varies between two sightings of one bug: addresses, numbers. */
export function signatureOf(text: string): string {
  const first = text.split("\n")[0]!.trim();
  return first
    .replace(/0x[0-9a-f]+/gi, "0x…")
    .replace(/\d+/g, "#")
    .slice(0, 160);
}

function classify(
  error: MachineError | null,
  reports: readonly Report[],
  violations: readonly string[],
): Failure | null {
  if (error !== null) {
    const msg = error.error.message;
    // The scheduler's own verdicts are reports of kind "sched" thrown as BUGs.
    const verdict = reports.some((r) => r.kind === "sched" && r.text === msg);
    const kind = !verdict
      ? "bug"
      : msg.startsWith("deadlock")
        ? "deadlock"
        : msg.startsWith("livelock")
          ? "livelock"
          : "diverged";
    // A soft lockup is the verdict, whatever the looping CPU warned about on its way round.
    const lockup = reports.find((r) => r.kind === "soft-lockup" && r.text.split("\n")[0] === msg);
    // Its report leads (the FOUND line shows the lockup), then what the CPU warned about on its way round.
    if (lockup !== undefined)
      return {
        kind: "soft-lockup",
        signature: signatureOf(msg),
        text: reportsText([lockup, ...reports.filter((r) => r !== lockup)], ""),
        where: lockup.callers,
      };
    const first = reports.find((r) => r.kind !== "sched");
    // A BUG after a report (an oops after a WARN) is found by its first report.
    if (kind === "bug" && first !== undefined)
      return {
        kind: "report",
        signature: `${first.kind}: ${signatureOf(first.text)}`,
        text: reportsText(reports, msg),
        where: first.callers,
      };
    // The scheduler's verdicts are their own report: no second copy of the text.
    const where = kind === "bug" ? kernelCallChain(error.error.stack ?? "") : [];
    const tail = reports.some((r) => r.text === msg)
      ? ""
      : `CPU${error.cpu}: ${error.error.name}${where.length > 0 ? ` in ${where[0]}` : ""}: ${msg}${callTraceLine(where)}`;
    return {
      kind,
      signature: kind === "bug" ? `${error.error.name}: ${signatureOf(msg)}` : `sched: ${signatureOf(msg)}`,
      text: reportsText(reports, tail),
      where,
    };
  }
  if (reports.length > 0) {
    const r = reports[0]!;
    return {
      kind: "report",
      signature: `${r.kind}: ${signatureOf(r.text)}`,
      text: reportsText(reports, ""),
      where: r.callers,
    };
  }
  if (violations.length > 0)
    return {
      kind: "check",
      signature: `check: ${signatureOf(violations[0]!)}`,
      text: violations.join("\n"),
      where: [],
    };
  return null;
}

/** "\n    call trace: f ← g ← h" for a chain of two or more (one is in the headline already), else "". */
function callTraceLine(chain: readonly string[]): string {
  return chain.length > 1 ? `\n    call trace: ${chain.join(" ← ")}` : "";
}

/**
 * The reports, one entry per distinct report (same CPU, kind, text and call
 * chain) in the order they first came, with how often it came: a reader
 * that oopses on every area says so once. Each names the function it came
 * from and, below it, its call trace.
 */
function reportsText(reports: readonly Report[], tail: string): string {
  const seen = new Map<string, { r: Report; n: number }>();
  for (const r of reports) {
    const key = JSON.stringify([r.cpu, r.kind, r.text, r.callers]);
    const e = seen.get(key);
    if (e) e.n++;
    else seen.set(key, { r, n: 1 });
  }
  const lines = [...seen.values()].map(
    ({ r, n }) =>
      `[CPU${r.cpu}] ${r.kind}${r.callers.length > 0 ? ` in ${r.callers[0]}` : ""}${n > 1 ? ` (${n} times)` : ""}: ` +
      `${r.text}${callTraceLine(r.callers)}`,
  );
  if (tail !== "") lines.push(tail);
  return lines.join("\n");
}

/** Boots a machine, sets the scenario up, and takes the snapshot every run starts from. */
async function prepare(config: MachineConfig, scenario: Scenario): Promise<{ m: Machine; snap: Uint8Array }> {
  const m = await Machine.boot(config);
  try {
    // The first report freezes every CPU's event ring: what a run's digest and report show is the
    // moment of the failure, not the unwinding after it (which may involve the CPUs' event loops).
    set_snapshot_on_warning(true);
    await scenario.setup(m);
    return { m, snap: m.snapshot() };
  } catch (e) {
    await m.shutdown();
    throw e;
  }
}

export class Explorer {
  private constructor(
    private m: Machine,
    private snap: Uint8Array,
    readonly config: MachineConfig,
    readonly scenario: Scenario,
  ) {}

  /** Boots the machine, sets the scenario up and takes the snapshot every run starts from. */
  static async start(config: MachineConfig, scenario: Scenario): Promise<Explorer> {
    const { m, snap } = await prepare(config, scenario);
    return new Explorer(m, snap, m.config, scenario);
  }

  /** One run from the snapshot under `strategy`. */
  async runOnce(
    strategy: Strategy,
    seed: number,
    params: ScenarioParams,
    stepCap = DEFAULT_STEP_CAP,
  ): Promise<Outcome> {
    const t0 = performance.now();
    await this.m.restore(this.snap);
    // The snapshot holds the trace rings as they were: a traced run starts empty.
    if (this.config.trace > 0) traceReset();
    const before = this.m.reports.length;
    schedSetup({ strategy, seed, stepCap });
    let value: unknown = null;
    let error: MachineError | null = null;
    try {
      value = await this.scenario.run(this.m, params);
    } catch (e) {
      if (!(e instanceof MachineError)) throw e;
      error = e;
    }
    const record = schedRecord();
    schedOff();
    const expected = this.scenario.expected;
    const reports = this.m.reports.slice(before).filter((r) => expected === undefined || !expected(r));
    let failure = classify(error, reports, error === null && reports.length === 0 ? checkMachine() : []);
    if (failure === null && record.planLeft > 0 && strategy.kind === "replay" && record.verdict !== VERDICT_DIVERGED)
      failure = {
        kind: "diverged",
        signature: "sched: replay diverged: the run ended before the recording",
        text: `replay diverged: the run ended at step ${record.steps} with ${record.planLeft} recorded decisions left`,
      };
    const digest = this.digest(record, value, reports);
    // A CPU that looped without sched points was terminated: only a new machine runs again.
    if (error?.error.name === "HardLockup") await this.reboot();
    return { failure, record, digest, ms: performance.now() - t0 };
  }

  private digest(record: SchedRecord, value: unknown, reports: readonly Report[]): string {
    const h = createHash("sha256");
    h.update(JSON.stringify(record.decisions));
    h.update(JSON.stringify(value) ?? "");
    for (const r of reports) h.update(`${r.cpu}:${r.kind}:${r.text}`);
    for (let cpu = 0; cpu < this.config.cpus; cpu++) h.update(lastEvents(cpu, TRACE_RING_SIZE).join("\n"));
    return h.digest("hex").slice(0, 16);
  }

  private async reboot(): Promise<void> {
    await this.m.shutdown();
    ({ m: this.m, snap: this.snap } = await prepare(this.config, this.scenario));
  }

  /** The machine (for a trace or a look at its state after a run). */
  get machine(): Machine {
    return this.m;
  }

  async close(): Promise<void> {
    await this.m.shutdown();
  }
}
