/**
 * The replay file: everything that reproduces one deterministic run — the
 * format version, the vmsim version, the full machine config (its seed fixes
 * every workload choice and interrupt), the scenario and its size, the
 * strategy that found the run and its seed, and the decisions, compact: one
 * "Δstep.cpu.mask.why.local" group per switch, base 36, steps as deltas
 * (local: the deciding CPU's own sched-point count, "-" for a start; mask:
 * the runnable CPUs as one integer of up to 64 bits).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { type MachineConfig, makeConfig } from "../shared/config.js";
import { type Decision, SCHED_MAX_CPUS, decisionMask, withMask } from "../sched/sched_det.js";
import type { ScriptLine } from "../workers/workloads/exec_script.js";
import { FAILURE_KINDS, type Failure, MAX_STEP_CAP, type Outcome } from "./explorer.js";
import { MAX_OPS, type ScenarioParams } from "./scenario.js";
import { checkScript, scenarioOf } from "./script.js";
import { checkScenarioKernel } from "./scenario.js";
// The race catalog's scenarios (catalog:…) register themselves: a file may name one.
import "./catalog.js";

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
      const s = `${(d.step - prev).toString(36)}.${d.cpu.toString(36)}.${decisionMask(d).toString(36)}.${d.why}.${d.local < 0 ? "-" : d.local.toString(36)}`;
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
    const d = { step, cpu: Number.parseInt(m[2]!, 36), mask: 0, why: Number(m[4]), local };
    out.push(withMask(d, parseBase36(m[3]!, g)));
  }
  return out;
}

/** A runnable set in base 36, exactly (64 bits are past a double's 53). */
function parseBase36(digits: string, group: string): bigint {
  let v = 0n;
  for (const c of digits) v = v * 36n + BigInt(Number.parseInt(c, 36));
  if (v >> 64n !== 0n) throw new RangeError(`bad decision "${group}" (its mask is wider than ${SCHED_MAX_CPUS} CPUs)`);
  return v;
}

export function writeReplayFile(path: string, f: ReplayFile): void {
  writeFileSync(path, `${JSON.stringify(f, null, 1)}\n`);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown, max = Number.MAX_SAFE_INTEGER): v is number =>
  Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max;

const STRATEGY_FIELDS: Readonly<Record<StrategyName["kind"], Readonly<Record<string, "number" | "string">>>> = {
  random: { p: "number" },
  pct: { depth: "number", steps: "number" },
  rr: { quantum: "number" },
  exhaustive: { bound: "number" },
  shrunk: { from: "string" },
};

/** Checks a replay file's parsed JSON field by field; throws RangeError naming the first field that is wrong. */
export function checkReplayFile(raw: unknown): ReplayFile {
  const bad = (what: string, got: unknown) => new RangeError(`${what}, got ${JSON.stringify(got) ?? String(got)}`);
  if (!isRecord(raw) || raw["format"] !== REPLAY_FORMAT) throw new RangeError("not a vmsim replay file");
  if (raw["version"] !== REPLAY_VERSION)
    throw bad(`replay format version ${REPLAY_VERSION} expected (the one this vmsim reads)`, raw["version"]);
  if (typeof raw["vmsim"] !== "string") throw bad('"vmsim" must be a version string', raw["vmsim"]);
  if (!isRecord(raw["config"])) throw bad('"config" must be an object', raw["config"]);
  // A file without config.kernel predates the generations: makeConfig gives it 4.19, the only one there was.
  const config = makeConfig(raw["config"] as Partial<MachineConfig>);
  // The deterministic scheduler's runnable set is a 64-bit cpumask (explore's --cpus).
  if (config.cpus > SCHED_MAX_CPUS) throw bad(`config.cpus must be at most ${SCHED_MAX_CPUS}`, config.cpus);
  const sc = raw["scenario"];
  if (!isRecord(sc)) throw bad('"scenario" must be an object', sc);
  if (typeof sc["name"] !== "string") throw bad("scenario.name must be a string", sc["name"]);
  if (!isCount(sc["ops"], MAX_OPS) || sc["ops"] < 1)
    throw bad(`scenario.ops must be an integer in 1..${MAX_OPS}`, sc["ops"]);
  const ops = sc["ops"];
  const skip = sc["skip"];
  if (
    !Array.isArray(skip) ||
    skip.length > config.cpus ||
    !skip.every((l) => Array.isArray(l) && l.every((i) => isCount(i, ops - 1)))
  )
    throw bad(`scenario.skip must be one list of operation numbers (0..${ops - 1}) per CPU`, skip);
  const script = sc["script"] === undefined ? undefined : checkScript(sc["script"], config);
  checkScenarioKernel(scenarioOf(sc["name"], script), config.kernel);
  const st = raw["strategy"];
  const fields =
    isRecord(st) && typeof st["kind"] === "string" ? STRATEGY_FIELDS[st["kind"] as StrategyName["kind"]] : undefined;
  if (
    !isRecord(st) ||
    !Object.hasOwn(STRATEGY_FIELDS, st["kind"] as string) ||
    fields === undefined ||
    Object.entries(fields).some(([k, t]) => typeof st[k] !== t)
  )
    throw bad(`strategy must be one of ${Object.keys(STRATEGY_FIELDS).join(", ")} with its settings`, st);
  if (!isCount(raw["seed"], 0xffffffff)) throw bad("seed must be an integer in 0..2^32-1", raw["seed"]);
  if (!isCount(raw["stepCap"], MAX_STEP_CAP) || raw["stepCap"] < 1)
    throw bad(`stepCap must be an integer in 1..${MAX_STEP_CAP}`, raw["stepCap"]);
  for (const k of ["steps", "switches", "preemptions"])
    if (!isCount(raw[k])) throw bad(`${k} must be a non-negative integer`, raw[k]);
  if (typeof raw["decisions"] !== "string") throw bad("decisions must be a string", raw["decisions"]);
  for (const d of decodeDecisions(raw["decisions"]))
    if (d.cpu >= config.cpus || decisionMask(d) >> BigInt(config.cpus) !== 0n)
      throw new RangeError(
        `decision at step ${d.step} names CPU ${d.cpu} or mask ${decisionMask(d).toString(2)} of a ${config.cpus}-CPU machine`,
      );
  const f = raw["failure"];
  if (
    f !== null &&
    !(
      isRecord(f) &&
      FAILURE_KINDS.includes(f["kind"] as Failure["kind"]) &&
      typeof f["signature"] === "string" &&
      typeof f["text"] === "string"
    )
  )
    throw bad(`failure must be null or {kind (${FAILURE_KINDS.join(", ")}), signature, text}`, f);
  if (typeof raw["digest"] !== "string") throw bad("digest must be a string", raw["digest"]);
  return { ...(raw as unknown as ReplayFile), config };
}

/** Reads and checks a replay file; throws RangeError naming the file and what is wrong. */
export function readReplayFile(path: string): ReplayFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new RangeError(`cannot read replay file ${path}: ${(e as Error).message}`);
  }
  try {
    return checkReplayFile(raw);
  } catch (e) {
    if (e instanceof RangeError) throw new RangeError(`${path}: ${e.message}`);
    throw e;
  }
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
