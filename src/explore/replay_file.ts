/**
 * The replay file: everything that reproduces one deterministic run — the
 * format version, the vmsim version, the full machine config (its seed fixes
 * every workload choice and interrupt), the scenario and its size, the
 * strategy that found the run and its seed, and the decisions, compact: one
 * "Δstep.cpu.mask.why.local" group per switch, base 36, steps as deltas
 * (local: the deciding CPU's own sched-point count, "-" for a start).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { type MachineConfig, makeConfig } from "../shared/config.js";
import type { Decision } from "../sched/sched_det.js";
import type { ScriptLine } from "../workers/workloads/exec_script.js";
import type { Failure, Outcome } from "./explorer.js";
import type { ScenarioParams } from "./scenario.js";

export const REPLAY_FORMAT = "vmsim-replay";
export const REPLAY_VERSION = 1;

/** The strategy that produced a run, as the file names it (its decisions replay it in any case). */
export type StrategyName =
  | { readonly kind: "random"; readonly p: number }
  | { readonly kind: "pct"; readonly depth: number; readonly steps: number }
  | { readonly kind: "rr"; readonly quantum: number }
  | { readonly kind: "exhaustive"; readonly bound: number }
  | { readonly kind: "shrunk"; readonly from: string };

/** A script scenario's lines, by CPU. */
export type ReplayScript = readonly (readonly ScriptLine[])[];

export interface ReplayFile {
  readonly format: typeof REPLAY_FORMAT;
  readonly version: typeof REPLAY_VERSION;
  /** The vmsim that wrote it (package.json's version). */
  readonly vmsim: string;
  readonly config: MachineConfig;
  readonly scenario: {
    readonly name: string;
    readonly ops: number;
    readonly skip: readonly (readonly number[])[];
    /** The script scenario's lines, by CPU. */
    readonly script?: ReplayScript;
  };
  readonly strategy: StrategyName;
  /** The seed of the strategy's own random choices. */
  readonly seed: number;
  readonly stepCap: number;
  readonly steps: number;
  readonly switches: number;
  readonly preemptions: number;
  readonly decisions: string;
  readonly failure: Failure | null;
  /** The run's digest (src/explore/explorer.ts): a replay that reproduces it bit for bit has the same. */
  readonly digest: string;
}

/** The version of this vmsim (package.json), for replay files. */
export function vmsimVersion(): string {
  // src/explore → the package root, from the sources (vitest) and from dist/src/explore alike.
  for (const up of ["../../package.json", "../../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "vmsim" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // not at this level
    }
  }
  return "unknown";
}

export function encodeDecisions(ds: readonly Decision[]): string {
  let prev = 0;
  return ds
    .map((d) => {
      const s = `${(d.step - prev).toString(36)}.${d.cpu.toString(36)}.${d.mask.toString(36)}.${d.why}.${d.local < 0 ? "-" : d.local.toString(36)}`;
      prev = d.step;
      return s;
    })
    .join(" ");
}

export function decodeDecisions(s: string): Decision[] {
  const out: Decision[] = [];
  let step = 0;
  for (const g of s.split(" ")) {
    if (g === "") continue;
    const m = /^([0-9a-z]+)\.([0-9a-z]+)\.([0-9a-z]+)\.([0-4])\.(-|[0-9a-z]+)$/.exec(g);
    if (!m) throw new RangeError(`bad decision "${g}" (expected Δstep.cpu.mask.why.local in base 36)`);
    step += Number.parseInt(m[1]!, 36);
    const local = m[5] === "-" ? -1 : Number.parseInt(m[5]!, 36);
    out.push({ step, cpu: Number.parseInt(m[2]!, 36), mask: Number.parseInt(m[3]!, 36), why: Number(m[4]), local });
  }
  return out;
}

export function writeReplayFile(path: string, f: ReplayFile): void {
  writeFileSync(path, `${JSON.stringify(f, null, 1)}\n`);
}

/** Reads and checks a replay file; throws RangeError naming what is wrong. */
export function readReplayFile(path: string): ReplayFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new RangeError(`cannot read replay file ${path}: ${(e as Error).message}`);
  }
  const f = raw as ReplayFile;
  if (typeof raw !== "object" || raw === null || f.format !== REPLAY_FORMAT)
    throw new RangeError(`${path} is not a vmsim replay file`);
  if (f.version !== REPLAY_VERSION)
    throw new RangeError(`${path} has replay format version ${f.version}; this vmsim reads version ${REPLAY_VERSION}`);
  if (typeof f.decisions !== "string" || typeof f.scenario?.name !== "string" || !Number.isInteger(f.scenario.ops))
    throw new RangeError(`${path}: missing decisions or scenario`);
  // Validates the config (a hand-edited file gets makeConfig's message).
  makeConfig(f.config);
  decodeDecisions(f.decisions);
  return f;
}

/** What a replay file is made of: the run, and what it ran. */
export interface RunOf {
  readonly config: MachineConfig;
  /** The scenario's name. */
  readonly scenario: string;
  readonly script: ReplayScript | undefined;
  readonly params: ScenarioParams;
  readonly strategy: StrategyName;
  readonly seed: number;
  readonly stepCap: number;
  readonly outcome: Outcome;
}

/** The replay file of a run. */
export function replayFileOf(r: RunOf): ReplayFile {
  const o = r.outcome;
  return {
    format: REPLAY_FORMAT,
    version: REPLAY_VERSION,
    vmsim: vmsimVersion(),
    config: r.config,
    scenario: { name: r.scenario, ops: r.params.ops, skip: r.params.skip, ...(r.script ? { script: r.script } : {}) },
    strategy: r.strategy,
    seed: r.seed,
    stepCap: r.stepCap,
    steps: o.record.steps,
    switches: o.record.switches,
    preemptions: o.record.preemptions,
    decisions: encodeDecisions(o.record.decisions),
    failure: o.failure,
    digest: o.digest,
  };
}
