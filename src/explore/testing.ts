/**
 * Deterministic tests of your own, in vitest (or any runner): describe what
 * the CPUs do — an op script (docs/exec.md) whose lines say their CPU, or a scenario
 * by name — and `checkInterleavings` explores it under the deterministic
 * scheduler. A failing interleaving fails the test with its text, writes a
 * replay file and says how to get it again. As loom's and Shuttle's
 * variables do, the environment steers a run without touching the test:
 *
 * - VMSIM_SEED=n        the first strategy seed (run i uses n + i − 1; default 1)
 * - VMSIM_STRATEGY=s    pct[:depth] | random[:p] | rr[:quantum] | exhaustive[:bound] | portfolio
 * - VMSIM_ITERATIONS=n  runs at most
 * - VMSIM_REPLAY=file   replay that file instead of exploring (the same failure, every time)
 */
import { makeConfig } from "../shared/config.js";
import type { InjectName } from "../shared/inject.js";
import type { ScriptLine } from "../workers/workloads/exec_script.js";
import {
  type ExploreOptions,
  type ExploreStats,
  type ExploreStrategy,
  EXPLORE_STRATEGIES,
  explore,
} from "./explore.js";
import { DEFAULT_STEP_CAP, Explorer, type Failure } from "./explorer.js";
import { decodeDecisions, readReplayFile, replayFileOf, writeReplayFile } from "./replay_file.js";
import { findScenario, type Scenario } from "./scenario.js";
import { parseScript, resolveScenario, scriptScenario } from "./script.js";
// The race catalog's scenarios (catalog:…) register themselves.
import "./catalog.js";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export interface InterleavingTest {
  /** An op script (docs/exec.md): JSON Lines text, or its line objects; each line's `cpu` picks the CPU. */
  readonly script?: string | readonly Record<string, unknown>[];
  /** Or a scenario by name (stress, test_vmalloc:<case>, demo:…, a race-catalog scenario). */
  readonly scenario?: string;
  /** @defaultValue 2 */
  readonly cpus?: number;
  /** Machine seed: the workload's choices and interrupts. @defaultValue 1 */
  readonly seed?: number;
  /** @defaultValue 8 MiB, or what the scenario needs */
  readonly memory?: number;
  readonly inject?: readonly InjectName[];
  /** Operations per CPU (a script: its lines). @defaultValue the scenario's */
  readonly ops?: number;
  /** @defaultValue "pct" (VMSIM_STRATEGY overrides) */
  readonly strategy?: ExploreStrategy;
  /** PCT depth. @defaultValue 3 */
  readonly depth?: number;
  /** Random: switch probability. @defaultValue 0.05 */
  readonly p?: number;
  /** Exhaustive: preemption bound. @defaultValue 2 */
  readonly bound?: number;
  /** @defaultValue 100 (VMSIM_ITERATIONS overrides) */
  readonly iterations?: number;
  /** @defaultValue 60 s */
  readonly budgetMs?: number;
  /** Where a failure's replay file goes. @defaultValue "vmsim-replay" */
  readonly replayDir?: string;
}

/** A failing interleaving: the test fails with this error. */
export class InterleavingFailure extends Error {
  constructor(
    readonly failure: Failure,
    readonly replayFile: string,
  ) {
    super(
      `${failure.kind}: ${failure.text}\n` +
        `replay file: ${replayFile}\n` +
        `the same failure again: VMSIM_REPLAY=${replayFile} npx vitest run   (or: vmsim replay ${replayFile})`,
    );
    this.name = "InterleavingFailure";
  }
}

/** VMSIM_STRATEGY: "pct:4", "random:0.01", "exhaustive:1" … */
function strategyFromEnv(o: ExploreOptions): ExploreOptions {
  const raw = process.env["VMSIM_STRATEGY"];
  if (raw === undefined || raw === "") return o;
  const [name, arg] = raw.split(":");
  const s = EXPLORE_STRATEGIES.find((x) => x === name);
  if (s === undefined)
    throw new RangeError(`VMSIM_STRATEGY=${raw}: expected one of ${EXPLORE_STRATEGIES.join(", ")}[:n]`);
  const n = arg === undefined ? Number.NaN : Number(arg);
  // A preemption bound may be 0; every other parameter is positive.
  if (arg !== undefined && !(n > 0 || (s === "exhaustive" && n === 0)))
    throw new RangeError(`VMSIM_STRATEGY=${raw}: the parameter must be a positive number`);
  const has = arg !== undefined;
  return {
    ...o,
    strategy: s,
    ...(s === "pct" && has ? { depth: n } : {}),
    ...(s === "random" && has ? { p: n } : {}),
    ...(s === "rr" && has ? { quantum: n } : {}),
    ...(s === "exhaustive" && has ? { bound: n } : {}),
  };
}

function envInt(name: string): number | null {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return null;
  if (!/^\d+$/.test(raw)) throw new RangeError(`${name}=${raw}: expected a non-negative integer`);
  return Number(raw);
}

/**
 * Explores `t`; resolves to the statistics when no interleaving fails,
 * rejects with an {@link InterleavingFailure} when one does.
 */
export async function checkInterleavings(t: InterleavingTest): Promise<ExploreStats | null> {
  const replay = process.env["VMSIM_REPLAY"];
  if (replay !== undefined && replay !== "") return replayOrThrow(replay);
  const cpus = t.cpus ?? 2;
  const base = makeConfig({ cpus, seed: t.seed ?? 1, memory: t.memory ?? 8 * 1024 * 1024, inject: t.inject ?? [] });
  let scenario: Scenario;
  let script: ScriptLine[][] | undefined;
  if (t.script !== undefined) {
    const text = typeof t.script === "string" ? t.script : t.script.map((l) => JSON.stringify(l)).join("\n");
    script = parseScript(text, base);
    scenario = scriptScenario(script);
  } else {
    const s = findScenario(t.scenario ?? "");
    if (s === undefined)
      throw new RangeError(`checkInterleavings: give a script or a known scenario, not ${t.scenario}`);
    scenario = s;
  }
  const params = { ops: t.ops ?? scenario.ops, skip: [] };
  const memory = t.memory ?? scenario.memory?.(cpus, params.ops) ?? base.memory;
  const config = makeConfig({ ...base, memory, ...scenario.config });
  const options = strategyFromEnv({
    strategy: t.strategy ?? "pct",
    depth: t.depth ?? 3,
    p: t.p ?? 0.05,
    quantum: 1,
    bound: t.bound ?? 2,
    budgetMs: t.budgetMs ?? 60_000,
    iterations: envInt("VMSIM_ITERATIONS") ?? t.iterations ?? 100,
    seed: envInt("VMSIM_SEED") ?? 1,
  });
  const ex = await Explorer.start(config, scenario);
  let stats: ExploreStats;
  try {
    stats = await explore(ex, params, options);
  } finally {
    await ex.close();
  }
  const f = stats.found;
  if (f === null) return stats;
  const dir = t.replayDir ?? "vmsim-replay";
  mkdirSync(dir, { recursive: true });
  const path = join(
    dir,
    `replay-${scenario.name.replace(/[^a-z0-9_]+/gi, "_")}-s${f.seed}-${f.outcome.digest.slice(0, 8)}.json`,
  );
  writeReplayFile(
    path,
    replayFileOf({
      config,
      scenario: scenario.name,
      script,
      params,
      strategy: f.strategy,
      seed: f.seed,
      stepCap: DEFAULT_STEP_CAP,
      outcome: f.outcome,
    }),
  );
  throw new InterleavingFailure(f.outcome.failure!, path);
}

/** VMSIM_REPLAY: the recorded run again; rejects with its failure (or a divergence). */
async function replayOrThrow(path: string): Promise<null> {
  const f = readReplayFile(path);
  const scenario = resolveScenario(f.scenario.name, f.scenario.script);
  if (scenario === undefined) throw new RangeError(`${path}: unknown scenario ${f.scenario.name}`);
  const ex = await Explorer.start(f.config, scenario);
  try {
    const out = await ex.runOnce(
      { kind: "replay", plan: decodeDecisions(f.decisions) },
      f.seed,
      { ops: f.scenario.ops, skip: f.scenario.skip },
      f.stepCap,
    );
    if (out.failure) throw new InterleavingFailure(out.failure, path);
    return null;
  } finally {
    await ex.close();
  }
}
