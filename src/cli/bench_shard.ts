/**
 * `vmsim bench --shard i/n` and `vmsim bench merge`: a bench spread over hosts.
 *
 * The work items are the measured runs, in table order: CPU count (as given),
 * kernel, case, repeat. Shard i/n measures run k when k mod n = i − 1
 * (shardItems) — on one machine per CPU count and kernel, each case's warm-up
 * before its runs — and writes its folder as `vmsim bench` does, with every
 * run's samples and the host that measured them in scaling.json. `vmsim bench
 * merge` joins such folders: the samples by run (the first folder's wins), the
 * points recomputed from them (medians over repeats × CPUs, speedups, lock
 * waits), the runs and shards no folder has listed. Folders of different CPU
 * counts with the same settings merge too: a big host measures the big counts.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { KernelVersion } from "../shared/config.js";
import type { HostInfo } from "../workers/measure.js";
import { type ScalingPoint, type ScalingSample, memoryFor, scalingPoint } from "../workers/scaling.js";
import type { TestVmallocCase } from "../workers/workloads/test_vmalloc.js";
import { plural } from "../workers/format.js";
import { isShardOrNull, missingShards } from "../workers/shard.js";
import { type Shard, shardItems } from "./options.js";
import type { BenchResult } from "./bench.js";

/** One measured run: the work item a shard takes. */
export interface BenchRun {
  readonly cpus: number;
  readonly kernel: KernelVersion;
  readonly test: TestVmallocCase;
  /** 0-based. */
  readonly repeat: number;
}

/** Every run of these settings, in table order: CPU count, kernel, case, repeat. */
export function benchRuns(
  cpus: readonly number[],
  kernels: readonly KernelVersion[],
  tests: readonly TestVmallocCase[],
  repeats: number,
): BenchRun[] {
  return cpus.flatMap((c) =>
    kernels.flatMap((kernel) =>
      tests.flatMap((test) => Array.from({ length: repeats }, (_, repeat) => ({ cpus: c, kernel, test, repeat }))),
    ),
  );
}

/** "fix_size_alloc_test on 2 CPUs, v4.19, run 3/5": a run as the missing list names it. */
export function runName(r: BenchRun, repeats: number): string {
  return `${r.test} on ${plural(r.cpus, "CPU")}, v${r.kernel}, run ${r.repeat + 1}/${repeats}`;
}

/** A run's identity in a Set. */
export const runKey = (r: BenchRun) => `${r.cpus} ${r.kernel} ${r.test} ${r.repeat}`;

/** One invocation's share of a bench: the CPU counts it was given, its shard, its host. */
export interface BenchPart {
  readonly cpus: readonly number[];
  readonly shard: Shard | null;
  readonly host: HostInfo;
  readonly wallMs: number;
}

/** A measured run, with the part (index into `parts`) whose host measured it. */
export interface BenchSample extends ScalingSample {
  readonly part: number;
}

/** The settings every part of a bench shares: what a merge compares. */
export type BenchSettings = Pick<
  BenchResult,
  "kernels" | "tests" | "repeats" | "loops" | "lockdep" | "slubDebug" | "trace" | "spinlock"
>;

function settingsOf(r: BenchSettings): BenchSettings {
  const { kernels, tests, repeats, loops, lockdep, slubDebug, trace, spinlock } = r;
  return { kernels, tests, repeats, loops, lockdep, slubDebug, trace, spinlock };
}

/** "Intel Xeon, 2 cores, Node v20, linux x64": a host without the date (one host measures many parts). */
export const hostKey = (h: HostInfo) => `${h.cpu}, ${h.cores} cores, Node ${h.node}, ${h.platform}`;

/** Shards of each sharded CPU list that no part holds: "2/3 of --cpus 1,2". */
const missingShardsOf = (parts: readonly BenchPart[]): string[] =>
  missingShards(parts, (p) => `--cpus ${p.cpus.join(",")}`);

/** A bench's runs, before the figures: its parts, its samples by run, what is missing. */
export type BenchRuns = Omit<BenchResult, "minimum" | "points"> &
  Required<Pick<BenchResult, "parts" | "samples" | "missing" | "missingShards">>;

/**
 * The runs of these parts and samples: the CPU counts of all parts, the
 * samples one per run (the first wins) in table order, and the runs a part
 * asked for that no sample answers — in a merge (`whole`), the runs of the
 * shards no part holds too; a shard's own result names those shards only.
 */
export function benchRunsOf(
  settings: BenchSettings,
  parts: readonly BenchPart[],
  all: readonly BenchSample[],
  whole: boolean,
): BenchRuns {
  const seen = new Map<string, BenchSample>();
  for (const s of all) if (!seen.has(runKey(s))) seen.set(runKey(s), s);
  const cpus = [...new Set(parts.flatMap((p) => p.cpus))].sort((a, b) => a - b);
  const order = new Map(
    benchRuns(cpus, settings.kernels, settings.tests, settings.repeats).map((r, k) => [runKey(r), k]),
  );
  const samples = [...seen.values()].sort((a, b) => order.get(runKey(a))! - order.get(runKey(b))!);
  // The runs asked for: those of every part, and in a merge of every shard of a sharded CPU list that no part holds.
  const missingShards = whole ? missingShardsOf(parts) : [];
  const absent = missingShards.map((m) => {
    const [, index, count, list] = /^(\d+)\/(\d+) of --cpus (.*)$/.exec(m)!;
    return { cpus: list!.split(",").map(Number), shard: { index: Number(index), count: Number(count) } };
  });
  const asked = new Map<string, BenchRun>();
  for (const p of [...parts, ...absent])
    for (const r of shardItems(benchRuns(p.cpus, settings.kernels, settings.tests, settings.repeats), p.shard))
      asked.set(runKey(r), r);
  const missing = [...asked.values()]
    .filter((r) => !seen.has(runKey(r)))
    .sort((a, b) => order.get(runKey(a))! - order.get(runKey(b))!)
    .map((r) => runName(r, settings.repeats));
  return {
    command: "bench",
    host: parts[0]!.host,
    ...settingsOf(settings),
    cpus,
    memory: Object.fromEntries(cpus.map((c) => [c, memoryFor(c, settings.tests, settings.loops)])),
    parts,
    samples,
    missing,
    missingShards: missingShardsOf(parts),
  };
}

/** The point of each (kernel, case, CPU count) that has samples, from them. */
export function pointsOf(samples: readonly ScalingSample[]): ScalingPoint[] {
  const groups = new Map<string, ScalingSample[]>();
  for (const s of samples) {
    const key = `${s.cpus} ${s.kernel} ${s.test}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  return [...groups.values()].map(scalingPoint);
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null;
const numbers = (x: unknown) => Array.isArray(x) && x.every((n) => Number.isFinite(n));

/** The fields a merge computes on have the shape `vmsim bench` writes (a file edited, cut short or older has not). */
function isMergeable(x: unknown): x is BenchResult & { parts: BenchPart[]; samples: BenchSample[] } {
  if (!isObject(x) || x.command !== "bench" || !Array.isArray(x.parts) || !Array.isArray(x.samples)) return false;
  if (!Array.isArray(x.kernels) || !Array.isArray(x.tests) || !Number.isInteger(x.repeats)) return false;
  const partOk = (p: unknown) =>
    isObject(p) && numbers(p.cpus) && isObject(p.host) && Number.isInteger(p.host.cores) && isShardOrNull(p.shard);
  const parts = x.parts.length;
  const sampleOk = (s: unknown) =>
    isObject(s) &&
    Number.isInteger(s.cpus) &&
    Number.isInteger(s.repeat) &&
    Number.isInteger(s.part) &&
    (s.part as number) >= 0 &&
    (s.part as number) < parts &&
    numbers(s.perPairUs) &&
    numbers(s.loopUsec) &&
    numbers(s.testUsec) &&
    Number.isFinite(s.lockWaitPct) &&
    isObject(s.lockWaitByLock);
  return parts > 0 && x.parts.every(partOk) && x.samples.every(sampleOk);
}

/** Reads a bench folder's scaling.json (or the file named); throws a RangeError saying what is wrong. */
export function readBenchResult(path: string): BenchResult & { parts: BenchPart[]; samples: BenchSample[] } {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, "scaling.json") : path;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new RangeError(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (!isMergeable(raw))
    throw new RangeError(`${file} is not a bench result with its runs (written by vmsim bench before --shard?)`);
  return raw;
}

/**
 * Joins bench results: their parts (each sample's part renumbered), their
 * samples by run (the figures are recomputed from them: benchResult). Throws a RangeError when the files
 * measured different settings (kernels, cases, repeats, loops, debug options,
 * spinlock).
 */
export function mergeBench(
  files: readonly (BenchResult & { parts: readonly BenchPart[]; samples: readonly BenchSample[] })[],
): BenchRuns {
  const first = files[0];
  if (first === undefined) throw new RangeError("nothing to merge");
  const key = (f: BenchSettings) => JSON.stringify(settingsOf(f));
  for (const f of files)
    if (key(f) !== key(first))
      throw new RangeError(`the files measured different settings: ${key(first)} vs ${key(f)}`);
  const parts: BenchPart[] = [];
  const samples: BenchSample[] = [];
  for (const f of files) {
    samples.push(...f.samples.map((s) => ({ ...s, part: s.part + parts.length })));
    parts.push(...f.parts);
  }
  return benchRunsOf(settingsOf(first), parts, samples, true);
}
