/**
 * Exploration campaigns across machines: `vmsim explore --shard i/n` writes
 * its share's results as `explore-shard-<i>-of-<n>.json` into its `--out`
 * folder, beside the replay files of the failures it found (the file names
 * them relative to itself, so the folder can travel as a CI artifact), and
 * `vmsim explore merge FILES…` adds shards up: runs, distinct schedules, the
 * preemption histogram, each failure once (by signature) with every replay
 * file of it, the shards missing, and whether the union covered the whole
 * bounded space. The file's shape follows `vmsim stress --out`'s
 * (src/cli/campaign.ts): `parts`, `config`, `options`, `totals`, `failing`,
 * `missingShards`.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import type { MachineConfig } from "../shared/config.js";
import type { ExploreStats } from "../explore/explore.js";
import type { ReplayScript, StrategyName } from "../explore/replay_file.js";
import { type HostInfo, hostInfo } from "../workers/measure.js";
import { formatInt, plural } from "../workers/format.js";
import type { Shard } from "../workers/shard.js";
import type { ExploreCliOptions } from "./options.js";
import { readResultFiles, resultLine } from "./result.js";

/** The options every shard of one campaign shares (the budget and `--jobs` are each shard's own). */
export type CampaignExploreOptions = Pick<
  ExploreCliOptions,
  "strategy" | "depth" | "p" | "quantum" | "bound" | "iterations" | "schedSeed" | "stepCap" | "keepGoing"
>;

/** One shard's invocation. */
export interface ExplorePart {
  readonly shard: Shard;
  readonly jobs: number;
  readonly wallMs: number;
  readonly host: HostInfo;
  /** Runs it counted (the runs every part makes to find its share are counted by shard 1 alone). */
  readonly runs: number;
  /** Runs it made that shard 1 counts: the non-preemptive run, the levels above a split tree's. */
  readonly shared: number;
  /** Seeded strategies: the first run (0-based, 0 the non-preemptive run) of its share it did not make; else null. */
  readonly nextRun: number | null;
  /** Exhaustive: it ran every schedule of its share of the bounded tree. */
  readonly exhausted: boolean;
}

/** A distinct failure (by signature): its first run, how many runs failed so, every replay file of it. */
export interface ExploreFailure {
  readonly signature: string;
  readonly kind: string;
  /** Its first line, as the kernel printed it on its first run. */
  readonly headline: string;
  readonly count: number;
  readonly first: {
    /** 0-based: 0 is the non-preemptive run (the output's "run 1"); exhaustive search: of its shard's runs. */
    readonly run: number;
    readonly seed: number;
    readonly strategy: StrategyName;
    readonly shard: string;
  };
  /** Replay files, relative to the results file's folder. */
  readonly replays: readonly string[];
}

/** One shard's results, or several merged. */
export interface ExploreCampaignFile {
  readonly command: "explore-campaign";
  /** No failure found. */
  readonly ok: boolean;
  readonly parts: readonly ExplorePart[];
  readonly config: MachineConfig;
  readonly scenario: { readonly name: string; readonly ops: number; readonly script: string | null };
  readonly options: CampaignExploreOptions;
  readonly totals: {
    readonly runs: number;
    readonly distinct: number;
    readonly preemptions: readonly number[];
    readonly byStrategy: Readonly<Record<string, number>>;
    /** Steps of the non-preemptive run (PCT's k). */
    readonly k: number;
  };
  readonly failing: readonly ExploreFailure[];
  readonly coverage: {
    /** Seeded strategies: runs 0 … made − 1 were all made; null for exhaustive search. */
    readonly made: number | null;
    /** Every run of the bounded space made: --iterations reached, or every exhaustive share exhausted, no shard missing. */
    readonly whole: boolean;
  };
  readonly missingShards: readonly string[];
  /** Hashes of the distinct schedules: what the merge counts distinct across shards. */
  readonly schedules: readonly string[];
}

export const shardText = (s: Shard): string => `${s.index}/${s.count}`;

/** The results file a shard writes into its `--out` folder. */
export function shardFileName(s: Shard): string {
  return `explore-shard-${s.index}-of-${s.count}.json`;
}

/** A script scenario's identity: the digest of its lines. */
export function scriptDigest(script: ReplayScript | undefined): string | null {
  return script === undefined ? null : createHash("sha1").update(JSON.stringify(script)).digest("hex").slice(0, 16);
}

function missingShardsOf(parts: readonly ExplorePart[]): string[] {
  const n = parts[0]?.shard.count ?? 0;
  const held = new Set(parts.map((p) => p.shard.index));
  const out: string[] = [];
  for (let i = 1; i <= n; i++) if (!held.has(i)) out.push(`${i}/${n}`);
  return out;
}

function coverageOf(parts: readonly ExplorePart[], o: CampaignExploreOptions): ExploreCampaignFile["coverage"] {
  const missing = missingShardsOf(parts).map((s) => Number(s.split("/")[0]));
  if (o.strategy === "exhaustive")
    return { made: null, whole: missing.length === 0 && parts.every((p) => p.exhausted) };
  // Shard i makes runs i − 1, i − 1 + n … in order: every run below the least first unmade one was made.
  const made = Math.min(...parts.map((p) => p.nextRun ?? 0), ...missing.map((i) => i - 1));
  return { made, whole: o.iterations !== null && made > o.iterations };
}

/** A shard's results file from its statistics and the replay files of its failures (in `stats.failures`' order). */
export function shardFile(
  shard: Shard,
  config: MachineConfig,
  scenario: ExploreCampaignFile["scenario"],
  options: CampaignExploreOptions,
  stats: ExploreStats,
  replays: readonly string[],
  jobs: number,
  wallMs: number,
): ExploreCampaignFile {
  const part: ExplorePart = {
    shard,
    jobs,
    wallMs: Math.round(wallMs),
    host: hostInfo(),
    runs: stats.runs,
    shared: stats.shared,
    nextRun: stats.nextRun,
    exhausted: stats.exhausted,
  };
  const failing = stats.failures.map(
    (t, i): ExploreFailure => ({
      signature: t.found.outcome.failure!.signature,
      kind: t.found.outcome.failure!.kind,
      headline: t.found.outcome.failure!.text.split("\n")[0]!,
      count: t.count,
      first: { run: t.found.iteration, seed: t.found.seed, strategy: t.found.strategy, shard: shardText(shard) },
      replays: [replays[i]!],
    }),
  );
  return {
    command: "explore-campaign",
    ok: failing.length === 0,
    parts: [part],
    config,
    scenario,
    options,
    totals: {
      runs: stats.runs,
      distinct: stats.distinct,
      preemptions: stats.preemptions,
      byStrategy: stats.byStrategy,
      k: stats.k,
    },
    failing,
    coverage: coverageOf([part], options),
    missingShards: missingShardsOf([part]),
    schedules: stats.schedules ?? [],
  };
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null;
const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/** The fields a merge computes on have the shape `vmsim explore --shard` writes (a file edited or cut short has not). */
function isCampaignFile(x: unknown): x is ExploreCampaignFile {
  if (!isObject(x) || x.command !== "explore-campaign") return false;
  if (!isObject(x.config) || !isObject(x.scenario) || !isObject(x.options) || !isObject(x.totals)) return false;
  if (!Array.isArray(x.parts) || !Array.isArray(x.failing) || !Array.isArray(x.schedules)) return false;
  const t = x.totals;
  const partOk = (p: unknown) =>
    isObject(p) &&
    isObject(p.shard) &&
    isCount(p.shard.index) &&
    isCount(p.shard.count) &&
    p.shard.index >= 1 &&
    p.shard.index <= p.shard.count &&
    isCount(p.runs) &&
    (p.nextRun === null || isCount(p.nextRun)) &&
    typeof p.exhausted === "boolean";
  const failureOk = (f: unknown) =>
    isObject(f) &&
    typeof f.signature === "string" &&
    isCount(f.count) &&
    isObject(f.first) &&
    isCount(f.first.run) &&
    Array.isArray(f.replays) &&
    f.replays.every((r) => typeof r === "string");
  return (
    x.parts.length > 0 &&
    x.parts.every(partOk) &&
    x.failing.every(failureOk) &&
    x.schedules.every((s) => typeof s === "string") &&
    isCount(t.runs) &&
    isCount(t.k) &&
    Array.isArray(t.preemptions) &&
    t.preemptions.every(isCount) &&
    isObject(t.byStrategy)
  );
}

/** A file's replay paths as seen from `to` (a folder), from where they are: beside the file `from`. */
function rebase(f: ExploreCampaignFile, from: string, to: string): ExploreCampaignFile {
  const failing = f.failing.map((x) => ({ ...x, replays: x.replays.map((r) => relative(to, join(dirname(from), r))) }));
  return { ...f, failing };
}

/**
 * Adds shards' results up: their parts, runs, histogram and strategies
 * summed, distinct schedules counted over all, each failure once (the
 * earliest run's, every replay file kept). Throws a RangeError when the files
 * ran different campaigns (machine, scenario, strategy options, shard count)
 * or two hold the same shard.
 */
export function mergeExplorations(files: readonly ExploreCampaignFile[]): ExploreCampaignFile {
  const first = files[0];
  if (first === undefined) throw new RangeError("nothing to merge");
  const key = (f: ExploreCampaignFile) =>
    JSON.stringify([f.config, f.scenario, f.options, f.parts[0]!.shard.count, f.totals.preemptions.length]);
  for (const f of files)
    if (key(f) !== key(first)) throw new RangeError(`the files ran different explorations: ${key(first)} vs ${key(f)}`);
  const parts = files.flatMap((f) => f.parts);
  const seenShards = new Set<number>();
  for (const p of parts) {
    if (seenShards.has(p.shard.index)) throw new RangeError(`shard ${shardText(p.shard)} is in two of the files`);
    seenShards.add(p.shard.index);
  }
  const failing = new Map<string, ExploreFailure>();
  for (const x of files.flatMap((f) => f.failing)) {
    const had = failing.get(x.signature);
    if (had === undefined) failing.set(x.signature, x);
    else {
      const earlier = had.first.run <= x.first.run ? had : x;
      // The earliest run's replay file first.
      const replays = earlier === had ? [...had.replays, ...x.replays] : [...x.replays, ...had.replays];
      failing.set(x.signature, { ...earlier, count: had.count + x.count, replays });
    }
  }
  const sum = (f: (x: ExploreCampaignFile) => number) => files.reduce((a, x) => a + f(x), 0);
  const byStrategy: Record<string, number> = {};
  for (const f of files)
    for (const [s, n] of Object.entries(f.totals.byStrategy)) byStrategy[s] = (byStrategy[s] ?? 0) + n;
  const schedules = [...new Set(files.flatMap((f) => f.schedules))];
  const ordered = [...failing.values()].sort((a, b) => a.first.run - b.first.run);
  return {
    command: "explore-campaign",
    ok: ordered.length === 0,
    parts,
    config: first.config,
    scenario: first.scenario,
    options: first.options,
    totals: {
      runs: sum((f) => f.totals.runs),
      distinct: schedules.length,
      preemptions: first.totals.preemptions.map((_, i) => sum((f) => f.totals.preemptions[i]!)),
      byStrategy,
      k: first.totals.k,
    },
    failing: ordered,
    coverage: coverageOf(parts, first.options),
    missingShards: missingShardsOf(parts),
    schedules,
  };
}

/** "0: 1, 1: 20, 7+: 3": runs by preemption count. */
export function preemptionText(h: readonly number[]): string {
  return h
    .map((n, i) => (n > 0 ? `${i}${i === h.length - 1 ? "+" : ""}: ${formatInt(n)}` : ""))
    .filter((s) => s !== "")
    .join(", ");
}

/** What the coverage says in words (runs counted from 1, as explore's output counts them). */
function coverageText(f: ExploreCampaignFile): string {
  const c = f.coverage;
  if (c.made === null)
    return c.whole
      ? "every schedule within the bound explored (every shard exhausted its share)"
      : `not every schedule within the bound explored (${f.parts
          .filter((p) => !p.exhausted)
          .map((p) => shardText(p.shard))
          .concat(f.missingShards)
          .join(", ")} not exhausted)`;
  const all = f.options.iterations === null ? "" : ` of ${formatInt(f.options.iterations + 1)}`;
  const made = c.made === 1 ? "run 1" : `runs 1-${formatInt(c.made)}`;
  if (c.whole) return `every run made (${made}${all})`;
  const why = "(a shard missing, out of budget or stopped at its failure)";
  return c.made === 0 ? `run 1 not made ${why}` : `${made}${all} made; run ${formatInt(c.made + 1)} not ${why}`;
}

/** The text after a merge: totals, each failure with its replay commands, coverage, missing shards (the result line apart). */
function formatMerged(f: ExploreCampaignFile): string[] {
  const t = f.totals;
  const out = [
    `runs: ${formatInt(t.runs)}, ${plural(t.distinct, "distinct schedule")}; preemptions per run: ${preemptionText(t.preemptions)}`,
  ];
  for (const x of f.failing) {
    // Exhaustive search numbers each shard's runs (their order is each shard's own), the others the campaign's.
    const first =
      f.options.strategy === "exhaustive"
        ? `first on shard ${x.first.shard}'s run ${formatInt(x.first.run + 1)}`
        : `first on run ${formatInt(x.first.run + 1)}, shard ${x.first.shard}, sched seed ${x.first.seed}`;
    out.push(`FAILED ${x.kind}: ${x.headline} (${plural(x.count, "run")}; ${first})`, `  signature: ${x.signature}`);
    for (const r of x.replays) out.push(`  replay it: vmsim replay ${kcsanReplayFlags(f.config)}${r}`);
  }
  out.push(`coverage: ${coverageText(f)}`);
  if (f.missingShards.length > 0) out.push(`missing shards: ${f.missingShards.join(", ")}`);
  return out;
}

/** `vmsim explore merge FILES…`: resolves to the exit code (1 a failure listed). Throws RangeError on unreadable or mismatched files. */
export function exploreMergeCommand(
  files: readonly string[],
  opts: { readonly out: string | null; readonly json: boolean },
): number {
  // Replay paths as the reader sees them: from here, or from the merged file's folder when one is written.
  const base = opts.out === null ? "." : dirname(opts.out);
  const read = readResultFiles(files, isCampaignFile, "the results of vmsim explore --shard").map((raw, i) =>
    rebase(raw, files[i]!, base),
  );
  const f = mergeExplorations(read);
  if (opts.out !== null) writeFileSync(opts.out, `${JSON.stringify(f)}\n`);
  const failures = f.failing.length;
  if (opts.json) console.log(JSON.stringify({ ...f, schedules: undefined }, null, 2));
  else {
    const shown = opts.out === null ? f : rebase(f, opts.out, ".");
    console.log(
      `merged ${plural(files.length, "file")}: ${plural(f.parts.length, "part")} (shards ${f.parts
        .map((p) => p.shard)
        .sort((a, b) => a.index - b.index)
        .map(shardText)
        .join(", ")}) of ${f.scenario.name}, strategy ${f.options.strategy}` +
        `${f.options.iterations === null ? "" : `, --iterations ${f.options.iterations}`}`,
    );
    for (const line of formatMerged(shown)) console.log(line);
    if (opts.out !== null) console.log(`wrote ${opts.out}`);
    console.log(
      failures > 0
        ? resultLine("FAILED", `${plural(failures, "distinct failure")}, replay commands above`)
        : f.missingShards.length > 0
          ? resultLine(
              "incomplete",
              `no failure in ${plural(f.totals.runs, "run")}; ${plural(f.missingShards.length, "shard")} missing`,
            )
          : resultLine("ok", `no failure in ${plural(f.totals.runs, "run")}`),
    );
    console.log(`SUMMARY ${JSON.stringify(summaryOf(f))}`);
  }
  return failures > 0 ? 1 : 0;
}

/** The SUMMARY line's object of a merge: what `vmsim explore`'s own SUMMARY says, for the same comparisons. */
function summaryOf(f: ExploreCampaignFile): unknown {
  return {
    command: "explore-merge",
    ok: f.ok,
    scenario: f.scenario.name,
    strategy: f.options.strategy,
    kernel: f.config.kernel,
    cpus: f.config.cpus,
    runs: f.totals.runs,
    distinct: f.totals.distinct,
    k: f.totals.k,
    preemptions: f.totals.preemptions,
    failures: f.failing.map((x) => ({ signature: x.signature, count: x.count, run: x.first.run + 1 })),
    coverage: f.coverage,
    missingShards: f.missingShards,
  };
}

/** The flags `vmsim replay` requires of a file recorded with this config (src/cli/main.ts refuses a mismatch). */
export function kcsanReplayFlags(c: MachineConfig): string {
  return `${c.kcsan ? "--kcsan " : ""}${c.kcsanStrict ? "--kcsan-strict " : ""}`;
}
