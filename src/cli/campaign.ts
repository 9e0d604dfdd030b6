/**
 * Stress campaigns: `vmsim stress --seeds A-B [--jobs N] [--shard i/n] [--out f.json]`
 * runs one stress run (src/workers/stress.ts) per seed, `--jobs` machines at
 * once — each a piscina task (src/workers/campaign_worker.ts) that boots its
 * own machine, whose CPUs are worker threads of that task's thread. So a
 * campaign of 2-CPU machines on a 16-core host runs 8 machines at once.
 *
 * `--shard i/n` keeps the seeds s with (s − A) mod n = i − 1: shards 1/n … n/n
 * of one range are disjoint and together are the range, so any batch system
 * can run them on n hosts; `vmsim stress merge a.json b.json …` joins their
 * results: the runs by seed, the totals, the failing seeds with the command
 * that reruns each, and the seeds and shards no file has.
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import { compiledModule } from "../workers/compiled.js";
import { Piscina } from "piscina";
import { DEFAULT_CONFIG, type MachineConfig } from "../shared/config.js";
import type { StressTask } from "../workers/campaign_worker.js";
import { type HostInfo, hostInfo } from "../workers/measure.js";
import { type StressResult, type StressSettings, stressCommandLine } from "../workers/stress.js";
import { formatInt, plural } from "../workers/format.js";
import { isShardOrNull, missingShards } from "../workers/shard.js";
import { ProgressBar } from "./progress.js";
import { abortOnSigint, readResultFiles, resultLine } from "./result.js";
import {
  type CampaignCliOptions,
  STRESS_OPTIONS,
  type SeedRange,
  type Shard,
  type StressCliOptions,
} from "./options.js";

/*** Seeds and shards ***/

/** The seeds of `range` in `shard` (all of them without one), ascending. */
export function shardSeeds(range: SeedRange, shard: Shard | null): number[] {
  const step = shard?.count ?? 1;
  const seeds: number[] = [];
  for (let s = range.from + (shard === null ? 0 : shard.index - 1); s <= range.to; s += step) seeds.push(s);
  return seeds;
}

/** Machines a campaign runs at once by default: one per `cpus` host cores, at least one. */
export function defaultJobs(cpus: number, cores = os.availableParallelism()): number {
  return Math.max(1, Math.floor(cores / cpus));
}

const rangeText = (r: SeedRange) => `${r.from}-${r.to}`;
const shardText = (s: Shard) => `${s.index}/${s.count}`;

/*** Results ***/

/** One invocation's share of a campaign's results: its seeds, its shard, where and how long it ran. */
export interface CampaignPart {
  readonly seeds: SeedRange;
  readonly shard: Shard | null;
  readonly jobs: number;
  readonly wallMs: number;
  readonly host: HostInfo;
  /** Ctrl-C ended it before every seed ran (the rest are `missing`). */
  readonly interrupted: boolean;
}

/** One seed's run. */
export interface CampaignRun {
  readonly seed: number;
  readonly ok: boolean;
  readonly ops: number;
  readonly opsPerSec: number;
  /** Workload time, ms. */
  readonly durationMs: number;
  readonly rounds: number;
  readonly checks: number;
  readonly allocFailures: number;
  /** The command that reruns this seed alone. */
  readonly rerun: string;
  /** Failing runs: the first violation or report, or the harness error. */
  readonly why?: string;
  /** Failing runs: the whole stress result (violation report, each CPU's last events …); absent after a harness error. */
  readonly result?: StressResult;
}

/** The stress options every run of a campaign used (the `--json` switch aside). */
export type CampaignStressOptions = StressSettings;

/** A campaign's results file (one shard's, or several merged). */
export interface CampaignFile {
  readonly command: "stress-campaign";
  /** Every seed ran clean and none is missing. */
  readonly ok: boolean;
  /** The invocations whose runs this file holds. */
  readonly parts: readonly CampaignPart[];
  /** The machine of every run, the seed aside. */
  readonly config: Omit<MachineConfig, "seed">;
  readonly options: CampaignStressOptions;
  readonly totals: {
    readonly seeds: number;
    readonly passed: number;
    readonly failed: number;
    readonly missing: number;
    readonly ops: number;
    /** Workload time of all runs together, ms. */
    readonly durationMs: number;
  };
  /** Failing seeds, each with the command that reruns it. */
  readonly failing: readonly { readonly seed: number; readonly rerun: string; readonly why: string }[];
  /** Seeds a part asked for that no run answers (an interrupted part). */
  readonly missing: readonly number[];
  /** Shards of a sharded range that no part holds: "2/4 of 1-100". */
  readonly missingShards: readonly string[];
  /** Every run, by seed. */
  readonly runs: readonly CampaignRun[];
}

/** Runs sorted by seed, one per seed (the first file's wins). */
function bySeed(runs: readonly CampaignRun[]): CampaignRun[] {
  const seen = new Map<number, CampaignRun>();
  for (const r of runs) if (!seen.has(r.seed)) seen.set(r.seed, r);
  return [...seen.values()].sort((a, b) => a.seed - b.seed);
}

/** Shards of each sharded range that no part holds (a part without a shard holds its whole range). */
const missingShardsOf = (parts: readonly CampaignPart[]): string[] => missingShards(parts, (p) => rangeText(p.seeds));

/** The file for these parts and runs: totals, failing and missing seeds derived from the runs. */
function campaignFile(
  parts: readonly CampaignPart[],
  config: Omit<MachineConfig, "seed">,
  options: CampaignStressOptions,
  allRuns: readonly CampaignRun[],
): CampaignFile {
  const runs = bySeed(allRuns);
  const have = new Set(runs.map((r) => r.seed));
  const missing = [...new Set(parts.flatMap((p) => shardSeeds(p.seeds, p.shard)))]
    .filter((s) => !have.has(s))
    .sort((a, b) => a - b);
  const failing = runs.filter((r) => !r.ok).map((r) => ({ seed: r.seed, rerun: r.rerun, why: r.why ?? "" }));
  return {
    command: "stress-campaign",
    ok: failing.length === 0 && missing.length === 0,
    parts,
    config,
    options,
    totals: {
      seeds: runs.length,
      passed: runs.length - failing.length,
      failed: failing.length,
      missing: missing.length,
      ops: runs.reduce((a, r) => a + r.ops, 0),
      durationMs: runs.reduce((a, r) => a + r.durationMs, 0),
    },
    failing,
    missing,
    missingShards: missingShardsOf(parts),
    runs,
  };
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null;
const isSeed = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 0xffffffff;

/** The fields a merge computes on have the shape `vmsim stress --seeds … --out` writes (a file edited or cut short has not). */
function isCampaignFile(x: unknown): x is CampaignFile {
  if (!isObject(x) || x.command !== "stress-campaign" || !isObject(x.config) || !isObject(x.options)) return false;
  if (!Array.isArray(x.parts) || !Array.isArray(x.runs)) return false;
  const partOk = (p: unknown) =>
    isObject(p) &&
    isObject(p.seeds) &&
    isSeed(p.seeds.from) &&
    isSeed(p.seeds.to) &&
    p.seeds.from <= p.seeds.to &&
    isShardOrNull(p.shard);
  const runOk = (r: unknown) =>
    isObject(r) &&
    isSeed(r.seed) &&
    typeof r.ok === "boolean" &&
    typeof r.rerun === "string" &&
    Number.isFinite(r.ops) &&
    Number.isFinite(r.durationMs);
  return x.parts.every(partOk) && x.runs.every(runOk);
}

/**
 * Joins campaign files: their parts, their runs by seed (a seed in two files:
 * the first one's run), totals and failing seeds recomputed. Throws a
 * RangeError when the files ran different machines or options.
 */
export function mergeCampaigns(files: readonly CampaignFile[]): CampaignFile {
  const first = files[0];
  if (first === undefined) throw new RangeError("nothing to merge");
  // A file from before a field existed ran its default: no config.kernel ran 4.19, the only one there was;
  // no config.slubDebug ran with slub_debug on. The defaults' order makes the keys compare alike.
  const { seed: _, ...defaults } = DEFAULT_CONFIG;
  const configOf = (f: CampaignFile): Omit<MachineConfig, "seed"> => ({ ...defaults, ...f.config });
  // No options.mix ran the mix as it was (--mix came later): stressOptionsOf fills it in, in a fixed order.
  const key = (f: CampaignFile) => JSON.stringify([configOf(f), stressOptionsOf(f.options)]);
  for (const f of files) {
    if (f.command !== "stress-campaign") throw new RangeError("not a stress campaign's results");
    if (key(f) !== key(first))
      throw new RangeError(`the files ran different machines or options: ${key(first)} vs ${key(f)}`);
  }
  return campaignFile(
    files.flatMap((f) => f.parts),
    configOf(first),
    stressOptionsOf(first.options),
    files.flatMap((f) => f.runs),
  );
}

/*** Running ***/

/** What a campaign runs. */
export interface CampaignOptions {
  readonly seeds: SeedRange;
  /** @defaultValue null (every seed of the range) */
  readonly shard?: Shard | null;
  /** Machines at once. @defaultValue {@link defaultJobs} */
  readonly jobs?: number;
  /** The stress options of every run; absent fields take `vmsim stress`'s defaults. */
  readonly stress?: Partial<CampaignStressOptions>;
  /** Called as each seed's run ends. */
  readonly onSeed?: (run: CampaignRun, done: number, total: number) => void;
  /** Aborting hands out no further seed; runs under way finish, the rest are `missing`. */
  readonly signal?: AbortSignal;
}

/** The stress options with `vmsim stress`'s defaults filled in. */
function stressOptionsOf(s: Partial<CampaignStressOptions>): CampaignStressOptions {
  const d = STRESS_OPTIONS;
  return {
    durationMs: s.durationMs ?? d.durationMs.defaultValue,
    ops: s.ops ?? d.ops.defaultValue,
    failPageAlloc: s.failPageAlloc ?? d.failPageAlloc.defaultValue,
    stutter: s.stutter ?? d.stutter.defaultValue,
    rcuWalk: s.rcuWalk ?? d.rcuWalk.defaultValue,
    mix: s.mix ?? d.mix.defaultValue,
  };
}

function runOf(seed: number, rerun: string, r: StressResult | Error): CampaignRun {
  if (r instanceof Error)
    return {
      seed,
      ok: false,
      ops: 0,
      opsPerSec: 0,
      durationMs: 0,
      rounds: 0,
      checks: 0,
      allocFailures: 0,
      rerun,
      why: `harness error: ${r.message}`,
    };
  const base = {
    seed,
    ok: r.ok,
    ops: r.ops,
    opsPerSec: r.opsPerSec,
    durationMs: r.durationMs,
    rounds: r.rounds,
    checks: r.checks,
    allocFailures: r.allocFailures,
    rerun: r.rerun,
  };
  if (r.ok) return base;
  const first = r.reports[0];
  const why = r.violations[0] ?? (first ? `[CPU${first.cpu}] ${first.kind}: ${first.text.split("\n")[0]}` : "failed");
  return { ...base, why, result: r };
}

/**
 * Runs every seed of `opts.seeds` (in `opts.shard`) on machines of `config`
 * (its seed ignored), `opts.jobs` at once, and resolves to the campaign's
 * results. A seed whose run fails is a failing seed, not an error.
 */
export async function runCampaign(config: MachineConfig, opts: CampaignOptions): Promise<CampaignFile> {
  const shard = opts.shard ?? null;
  const seeds = shardSeeds(opts.seeds, shard);
  const jobs = Math.max(1, Math.min(opts.jobs ?? defaultJobs(config.cpus), seeds.length));
  const options = stressOptionsOf(opts.stress ?? {});
  const { seed: _, ...machine } = config;
  const t0 = performance.now();
  const host = hostInfo();
  const pool = new Piscina<StressTask, StressResult>({
    filename: compiledModule("workers/campaign_worker.js"),
    minThreads: jobs,
    maxThreads: jobs,
  });
  const runs: CampaignRun[] = [];
  let next = 0;
  const worker = async () => {
    while (next < seeds.length && !opts.signal?.aborted) {
      const seed = seeds[next++]!;
      const c = { ...config, seed };
      const task: StressTask = {
        config: c,
        options: {
          ...(options.durationMs !== null ? { durationMs: options.durationMs } : {}),
          ...(options.ops !== null ? { ops: options.ops } : {}),
          failPageAlloc: options.failPageAlloc,
          stutter: options.stutter,
          rcuWalk: options.rcuWalk,
          mix: options.mix,
        },
      };
      const r = await pool.run(task).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
      runs.push(runOf(seed, stressCommandLine(c, options), r));
      opts.onSeed?.(runs.at(-1)!, runs.length, seeds.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: jobs }, worker));
  } finally {
    await pool.destroy();
  }
  const part: CampaignPart = {
    seeds: opts.seeds,
    shard,
    jobs,
    wallMs: Math.round(performance.now() - t0),
    host,
    interrupted: runs.length < seeds.length,
  };
  return campaignFile([part], machine, options, runs);
}

/*** The commands ***/

/** The text after a campaign or a merge: totals, failing seeds with their rerun commands, what is missing (the result line apart). */
function formatCampaign(f: CampaignFile): string[] {
  const t = f.totals;
  const secs = t.durationMs / 1000;
  const out = [
    `seeds: ${t.seeds} run, ${t.passed} passed, ${t.failed} failed${t.missing > 0 ? `, ${t.missing} missing` : ""}; ` +
      `${formatInt(t.ops)} ops in ${secs.toFixed(1)} s of workload (${formatInt(secs > 0 ? t.ops / secs : 0)} ops/s per machine)`,
  ];
  for (const x of f.failing) out.push(`FAILED seed ${x.seed}: ${x.why}`, `  rerun: ${x.rerun}`);
  if (f.missing.length > 0)
    out.push(
      `missing seeds: ${f.missing.slice(0, 20).join(" ")}${f.missing.length > 20 ? ` … (${f.missing.length})` : ""}`,
    );
  if (f.missingShards.length > 0) out.push(`missing shards: ${f.missingShards.join(", ")}`);
  return out;
}

/** ok, FAILED (a seed failed), or interrupted / incomplete (seeds missing: Ctrl-C, or a part that never ran). */
function campaignResultLine(f: CampaignFile): string {
  const t = f.totals;
  if (t.failed > 0) return resultLine("FAILED", `${plural(t.failed, "failing seed")}, rerun commands above`);
  if (f.ok) return resultLine("ok", `${plural(t.passed, "seed")} ran clean`);
  const interrupted = f.parts.some((p) => p.interrupted);
  return resultLine(
    interrupted ? "interrupted" : "incomplete",
    `${interrupted ? "Ctrl-C; " : ""}${plural(t.passed, "seed")} ran clean, ${t.missing} missing`,
  );
}

/** The SUMMARY line's object: the file without its runs. */
function summaryOf(f: CampaignFile): unknown {
  const { runs: _, ...rest } = f;
  return rest;
}

/** The end of both commands: the text (or the JSON), the file, the SUMMARY line. Resolves to the exit code. */
function finish(f: CampaignFile, out: string | null, json: boolean): number {
  if (out !== null) writeFileSync(out, `${JSON.stringify(f, null, 2)}\n`);
  if (json) console.log(JSON.stringify(f, null, 2));
  else {
    for (const line of formatCampaign(f)) console.log(line);
    for (const r of f.runs) for (const line of r.result?.report ?? []) console.error(line);
    if (out !== null) console.log(`wrote ${out}`);
    console.log(campaignResultLine(f));
    console.log(`SUMMARY ${JSON.stringify(summaryOf(f))}`);
  }
  return f.failing.length > 0 ? 1 : 0;
}

/** `vmsim stress --seeds …`; resolves to the exit code (0 every seed clean, 1 a seed failed). */
export async function stressCampaign(
  config: MachineConfig,
  o: StressCliOptions,
  c: CampaignCliOptions,
): Promise<number> {
  const range = c.seeds;
  if (range === null) throw new RangeError("a campaign needs --seeds");
  const { json, ...stress } = o;
  const seeds = shardSeeds(range, c.shard);
  const jobs = Math.min(c.jobs ?? defaultJobs(config.cpus), Math.max(1, seeds.length));
  if (!json)
    console.log(
      `stress campaign: seeds ${rangeText(range)}${c.shard === null ? "" : `, shard ${shardText(c.shard)}`} ` +
        `(${plural(seeds.length, "seed")}), ${plural(config.cpus, "CPU")} each, ${plural(jobs, "machine")} at once`,
    );
  const bar = json
    ? null
    : ProgressBar.start({
        label: "campaign",
        total: seeds.length,
        unit: "ops",
        fields: "{value}/{total} seeds | {failing} failing",
        initial: { failing: 0 },
      });
  let ops = 0;
  let failing = 0;
  let f: CampaignFile;
  try {
    f = await abortOnSigint((signal) =>
      runCampaign(config, {
        seeds: range,
        shard: c.shard,
        jobs,
        stress,
        signal,
        onSeed: (r, done) => {
          ops += r.ops;
          if (!r.ok) failing++;
          bar?.update(done, ops, { failing });
        },
      }),
    );
  } finally {
    bar?.stop();
  }
  return finish(f, c.out, json);
}

/** `vmsim stress merge a.json b.json …`: resolves to the exit code (0 no failing seed, 1 failing seeds). Throws RangeError on unreadable or incompatible files. */
export function mergeCommand(
  files: readonly string[],
  opts: { readonly out: string | null; readonly json: boolean },
): number {
  const read = readResultFiles(files, isCampaignFile, "a stress campaign's results");
  const f = mergeCampaigns(read);
  if (!opts.json) console.log(`merged ${plural(files.length, "file")}: ${plural(f.parts.length, "part")}`);
  return finish(f, opts.out, opts.json);
}
