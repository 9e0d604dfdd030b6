/**
 * `vmsim test --seeds A-B [--shard i/n] [--out f.json]` and `vmsim test
 * merge`: test_vmalloc over seeds, spread over hosts.
 *
 * The work items are (case × seed): the selected cases in the module's table
 * order, each with every seed of the range, ascending. Item k belongs to
 * shard (k mod n) + 1 (shardItems), so each shard gets about 1/n of every
 * case's seeds. An item is one `vmsim test` of one case (its run_test_mask
 * bit) on a fresh machine booted with its seed, with the same module
 * parameters for all; its result keeps the counts, the failures and the
 * command that reruns it alone. `vmsim test merge` joins the shards' files:
 * items by (case, seed), totals, failing items once, what is missing.
 */
import { writeFileSync } from "node:fs";
import { DEFAULT_CONFIG, type MachineConfig } from "../shared/config.js";
import { type HostInfo, hostInfo } from "../workers/measure.js";
import { plural } from "../workers/format.js";
import { TEST_VMALLOC_MODULES, type TestVmallocCase } from "../workers/workloads/test_vmalloc.js";
import { isShardOrNull } from "../workers/shard.js";
import { type SeedRange, type Shard, shardItems } from "./options.js";
import { ProgressBar } from "./progress.js";
import { abortOnSigint, readResultFiles, resultLine } from "./result.js";
import { type TestRunOptions, testRerun, testVmalloc } from "./test.js";

/** One work item: a case of the module's table and a seed. */
export interface TestItem {
  readonly test: TestVmallocCase;
  readonly seed: number;
}

/** The selected cases of `kernel`'s module with their run_test_mask bits, in table order. */
function casesOf(config: Pick<MachineConfig, "kernel">, runTestMask: number) {
  return TEST_VMALLOC_MODULES[config.kernel].cases
    .map((c, i) => ({ test: c.name, index: i, bit: 2 ** i }))
    .filter((c) => (runTestMask >>> c.index) & 1);
}

/** Every item of a campaign, in order: the selected cases in table order, each with every seed ascending. */
export function testItems(config: Pick<MachineConfig, "kernel">, runTestMask: number, seeds: SeedRange): TestItem[] {
  const seedList = Array.from({ length: seeds.to - seeds.from + 1 }, (_, k) => seeds.from + k);
  return casesOf(config, runTestMask).flatMap((c) => seedList.map((seed) => ({ test: c.test, seed })));
}

/** "fix_size_alloc_test seed 3". */
export const itemName = (i: TestItem) => `${i.test} seed ${i.seed}`;

/** One invocation's share of a campaign: its seeds, its shard, where and how long it ran. */
export interface TestCampaignPart {
  readonly seeds: SeedRange;
  readonly shard: Shard | null;
  readonly wallMs: number;
  readonly host: HostInfo;
  /** Ctrl-C ended it before every item ran (the rest are `missing`). */
  readonly interrupted: boolean;
}

/** One item's run: the module's counts summed over workers, the checks, what reruns it. */
export interface TestItemResult extends TestItem {
  readonly ok: boolean;
  readonly passed: number;
  readonly failed: number;
  readonly xfailed: number;
  /** Reports that failed the run. */
  readonly reports: number;
  readonly expectedReports: number;
  /** Pages the leak check found leaked; null when the run stopped before it. */
  readonly leakedPages: number | null;
  /** Wall time of the test, ms. */
  readonly durationMs: number;
  /** The command that reruns this item alone. */
  readonly rerun: string;
  /** Failing items: every failure, as `vmsim test` prints them. */
  readonly failures?: readonly string[];
}

/** The module's counts, summed. */
export interface TestRunCounts {
  readonly passed: number;
  readonly failed: number;
  readonly xfailed: number;
}

/** A campaign's results file (one shard's, or several merged). */
export interface TestCampaignFile {
  readonly command: "test-campaign";
  /** Every item passed and none is missing. */
  readonly ok: boolean;
  readonly parts: readonly TestCampaignPart[];
  /** The machine of every item, the seed aside. */
  readonly config: Omit<MachineConfig, "seed">;
  /** The module's parameters of every item (run_test_mask: all the campaign's cases), and the mode. */
  readonly options: Pick<TestRunOptions, "mode" | "nrThreads" | "params">;
  readonly totals: {
    readonly items: number;
    readonly passed: number;
    readonly failed: number;
    readonly missing: number;
    /** The module's test runs over every item. */
    readonly runs: TestRunCounts;
    readonly durationMs: number;
  };
  /** Per case, in table order: items that ran and the module's counts. */
  readonly tests: readonly ({ readonly test: TestVmallocCase; readonly items: number } & TestRunCounts)[];
  /** Failing items, each once, with the command that reruns it. */
  readonly failing: readonly {
    readonly test: TestVmallocCase;
    readonly seed: number;
    readonly rerun: string;
    readonly why: string;
  }[];
  /** Items a part asked for that no run answers ("fix_size_alloc_test seed 3"). */
  readonly missing: readonly string[];
  /** Shards of a sharded range that no part holds: "2/3 of seeds 1-4". */
  readonly missingShards: readonly string[];
  /** Every item's run, in item order. */
  readonly items: readonly TestItemResult[];
}

const rangeText = (r: SeedRange) => `${r.from}-${r.to}`;
const itemKey = (i: TestItem) => `${i.test} ${i.seed}`;

/** Shards of each sharded range that no part holds (a part without a shard holds its whole range). */
function missingShardsOf(parts: readonly TestCampaignPart[]): { text: string; seeds: SeedRange; shard: Shard }[] {
  const whole = new Set(parts.filter((p) => p.shard === null).map((p) => rangeText(p.seeds)));
  const held = new Map<string, { seeds: SeedRange; count: number; got: Set<number> }>();
  for (const p of parts) {
    if (p.shard === null || whole.has(rangeText(p.seeds))) continue;
    const key = `${p.shard.count} of seeds ${rangeText(p.seeds)}`;
    const h = held.get(key) ?? { seeds: p.seeds, count: p.shard.count, got: new Set<number>() };
    held.set(key, h);
    h.got.add(p.shard.index);
  }
  const out: { text: string; seeds: SeedRange; shard: Shard }[] = [];
  for (const [key, h] of held)
    for (let index = 1; index <= h.count; index++)
      if (!h.got.has(index)) out.push({ text: `${index}/${key}`, seeds: h.seeds, shard: { index, count: h.count } });
  return out;
}

/**
 * The file of these parts and item runs: items one per (case, seed) (the
 * first wins), totals and what is missing — in a merge (`whole`), the items
 * of the shards no part holds too; a shard's own file names those shards only.
 */
function campaignFile(
  parts: readonly TestCampaignPart[],
  config: Omit<MachineConfig, "seed">,
  options: TestCampaignFile["options"],
  all: readonly TestItemResult[],
  whole: boolean,
): TestCampaignFile {
  const absent = missingShardsOf(parts);
  const asked = [...parts, ...(whole ? absent : [])].flatMap((p) =>
    shardItems(testItems(config, options.params.runTestMask, p.seeds), p.shard),
  );
  const cases = casesOf(config, options.params.runTestMask).map((c) => c.test);
  const order = (i: TestItem) => cases.indexOf(i.test) * 2 ** 32 + i.seed;
  const seen = new Map<string, TestItemResult>();
  for (const r of all) if (!seen.has(itemKey(r))) seen.set(itemKey(r), r);
  const items = [...seen.values()].sort((a, b) => order(a) - order(b));
  const missing = [...new Map(asked.filter((i) => !seen.has(itemKey(i))).map((i) => [itemKey(i), i])).values()]
    .sort((a, b) => order(a) - order(b))
    .map(itemName);
  const failing = items
    .filter((r) => !r.ok)
    .map((r) => ({ test: r.test, seed: r.seed, rerun: r.rerun, why: r.failures?.[0] ?? "failed" }));
  const sum = (rs: readonly TestItemResult[]): TestRunCounts => ({
    passed: rs.reduce((a, r) => a + r.passed, 0),
    failed: rs.reduce((a, r) => a + r.failed, 0),
    xfailed: rs.reduce((a, r) => a + r.xfailed, 0),
  });
  return {
    command: "test-campaign",
    ok: failing.length === 0 && missing.length === 0,
    parts,
    config,
    options,
    totals: {
      items: items.length,
      passed: items.length - failing.length,
      failed: failing.length,
      missing: missing.length,
      runs: sum(items),
      durationMs: items.reduce((a, r) => a + r.durationMs, 0),
    },
    tests: cases.map((test) => {
      const rs = items.filter((r) => r.test === test);
      return { test, items: rs.length, ...sum(rs) };
    }),
    failing,
    missing,
    missingShards: absent.map((a) => a.text),
    items,
  };
}

/*** Running ***/

/** What a campaign runs. */
export interface TestCampaignOptions {
  readonly seeds: SeedRange;
  /** @defaultValue null (every item) */
  readonly shard?: Shard | null;
  /** Called as each item's run ends. */
  readonly onItem?: (r: TestItemResult, done: number, total: number) => void;
  /** Aborting starts no further item; the rest are `missing`. */
  readonly signal?: AbortSignal;
}

/** Runs every item of the campaign (in `opts.shard`), one machine at a time; resolves to its results. */
export async function runTestCampaign(
  config: MachineConfig,
  run: TestRunOptions,
  opts: TestCampaignOptions,
): Promise<TestCampaignFile> {
  const shard = opts.shard ?? null;
  const items = shardItems(testItems(config, run.params.runTestMask, opts.seeds), shard);
  const bits = new Map(casesOf(config, run.params.runTestMask).map((c) => [c.test, c.bit]));
  const t0 = performance.now();
  const host = hostInfo();
  const quiet = { log: () => {}, error: () => {}, progress: false };
  const results: TestItemResult[] = [];
  for (const item of items) {
    if (opts.signal?.aborted) break;
    const c = { ...config, seed: item.seed };
    const mask = bits.get(item.test)!;
    const s = await testVmalloc(c, { ...run, params: { ...run.params, runTestMask: mask } }, quiet);
    results.push({
      ...item,
      ok: s.ok,
      passed: s.passed,
      failed: s.failed,
      xfailed: s.xfailed,
      reports: s.reports,
      expectedReports: s.expectedReports,
      leakedPages: s.leak?.leakedPages ?? null,
      durationMs: s.durationMs,
      rerun: testRerun(c, run, mask),
      ...(s.ok ? {} : { failures: s.failures }),
    });
    opts.onItem?.(results.at(-1)!, results.length, items.length);
  }
  const { seed: _, ...machine } = config;
  const part: TestCampaignPart = {
    seeds: opts.seeds,
    shard,
    wallMs: Math.round(performance.now() - t0),
    host,
    interrupted: results.length < items.length,
  };
  const options = { mode: run.mode, nrThreads: run.nrThreads, params: run.params };
  return campaignFile([part], machine, options, results, false);
}

/*** Merging ***/

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null;
const isSeed = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 0xffffffff;
const counts = (x: Record<string, unknown>) =>
  Number.isInteger(x.passed) && Number.isInteger(x.failed) && Number.isInteger(x.xfailed);

/** The fields a merge computes on have the shape `vmsim test --seeds … --out` writes (a file edited or cut short has not). */
function isTestCampaignFile(x: unknown): x is TestCampaignFile {
  if (!isObject(x) || x.command !== "test-campaign" || !isObject(x.config) || !isObject(x.options)) return false;
  if (!isObject(x.options.params) || !Number.isInteger(x.options.params.runTestMask)) return false;
  if (!Array.isArray(x.parts) || !Array.isArray(x.items)) return false;
  const partOk = (p: unknown) =>
    isObject(p) &&
    isObject(p.seeds) &&
    isSeed(p.seeds.from) &&
    isSeed(p.seeds.to) &&
    p.seeds.from <= p.seeds.to &&
    isShardOrNull(p.shard);
  const itemOk = (r: unknown) =>
    isObject(r) &&
    typeof r.test === "string" &&
    isSeed(r.seed) &&
    typeof r.ok === "boolean" &&
    typeof r.rerun === "string" &&
    counts(r) &&
    Number.isFinite(r.durationMs);
  return x.parts.every(partOk) && x.items.every(itemOk);
}

/**
 * Joins campaign files: their parts, their items by (case, seed) (the first
 * file's wins), totals, failing and missing items recomputed (a shard no
 * file holds: its items are missing). Throws a RangeError
 * when the files ran different machines or module parameters.
 */
export function mergeTestCampaigns(files: readonly TestCampaignFile[]): TestCampaignFile {
  const first = files[0];
  if (first === undefined) throw new RangeError("nothing to merge");
  const { seed: _, ...defaults } = DEFAULT_CONFIG;
  const configOf = (f: TestCampaignFile): Omit<MachineConfig, "seed"> => ({ ...defaults, ...f.config });
  const key = (f: TestCampaignFile) => JSON.stringify([configOf(f), f.options]);
  for (const f of files)
    if (key(f) !== key(first))
      throw new RangeError(`the files ran different machines or test parameters: ${key(first)} vs ${key(f)}`);
  return campaignFile(
    files.flatMap((f) => f.parts),
    configOf(first),
    first.options,
    files.flatMap((f) => f.items),
    true,
  );
}

/*** The commands ***/

/** The text after a campaign or a merge: per case, the totals, failing items with their reruns, what is missing. */
function formatCampaign(f: TestCampaignFile): string[] {
  const t = f.totals;
  const out = f.tests.map(
    (c) => `  ${c.test}: ${plural(c.items, "item")}, passed: ${c.passed} failed: ${c.failed} xfailed: ${c.xfailed}`,
  );
  out.push(
    `items: ${t.items} run, ${t.passed} passed, ${t.failed} failed${t.missing > 0 ? `, ${t.missing} missing` : ""}; ` +
      `test runs: ${t.runs.passed} passed, ${t.runs.failed} failed, ${t.runs.xfailed} xfailed; ` +
      `${(t.durationMs / 1000).toFixed(1)} s of tests`,
  );
  for (const x of f.failing) out.push(`FAILED ${itemName(x)}: ${x.why}`, `  rerun: ${x.rerun}`);
  if (f.missing.length > 0)
    out.push(
      `missing items: ${f.missing.slice(0, 10).join(", ")}${f.missing.length > 10 ? ` … (${f.missing.length})` : ""}`,
    );
  if (f.missingShards.length > 0) out.push(`missing shards: ${f.missingShards.join(", ")}`);
  return out;
}

function campaignResultLine(f: TestCampaignFile): string {
  const t = f.totals;
  if (t.failed > 0) return resultLine("FAILED", `${plural(t.failed, "failing item")}, rerun commands above`);
  if (f.ok) return resultLine("ok", `${plural(t.passed, "item")} passed`);
  const interrupted = f.parts.some((p) => p.interrupted);
  return resultLine(
    interrupted ? "interrupted" : "incomplete",
    `${interrupted ? "Ctrl-C; " : ""}${plural(t.passed, "item")} passed, ${t.missing} missing`,
  );
}

/** The end of both commands: the text (or the JSON), the file, the SUMMARY line. Resolves to the exit code. */
function finish(f: TestCampaignFile, out: string | null, json: boolean): number {
  if (out !== null) writeFileSync(out, `${JSON.stringify(f, null, 2)}\n`);
  if (json) console.log(JSON.stringify(f, null, 2));
  else {
    for (const line of formatCampaign(f)) console.log(line);
    for (const r of f.items)
      for (const line of r.failures ?? []) console.error(`vmsim: FAILED: ${itemName(r)}: ${line}`);
    if (out !== null) console.log(`wrote ${out}`);
    console.log(campaignResultLine(f));
    const { items: _, ...summary } = f;
    console.log(`SUMMARY ${JSON.stringify(summary)}`);
  }
  return f.failing.length > 0 ? 1 : 0;
}

/** `vmsim test --seeds … [--shard i/n] [--out f.json]`; resolves to the exit code (0 every item passed, 1 an item failed). */
export async function testCampaign(
  config: MachineConfig,
  run: TestRunOptions,
  c: { readonly seeds: SeedRange; readonly shard: Shard | null; readonly out: string | null },
): Promise<number> {
  const items = shardItems(testItems(config, run.params.runTestMask, c.seeds), c.shard);
  console.log(
    `test campaign: seeds ${rangeText(c.seeds)}${c.shard === null ? "" : `, shard ${c.shard.index}/${c.shard.count}`} ` +
      `(${plural(items.length, "item")}: a case on a seed each), ${plural(config.cpus, "CPU")}, mode ${run.mode}, ` +
      `${plural(run.nrThreads, "worker")}, test_repeat_count=${run.params.testRepeatCount} test_loop_count=${run.params.testLoopCount}`,
  );
  const bar = ProgressBar.start({
    label: "test campaign",
    total: items.length,
    unit: null,
    fields: "{value}/{total} items | {failing} failing",
    initial: { failing: 0 },
  });
  let failing = 0;
  let f: TestCampaignFile;
  try {
    f = await abortOnSigint((signal) =>
      runTestCampaign(config, run, {
        seeds: c.seeds,
        shard: c.shard,
        signal,
        onItem: (r, done) => {
          if (!r.ok) failing++;
          bar?.update(done, done, { failing });
        },
      }),
    );
  } finally {
    bar?.stop();
  }
  return finish(f, c.out, false);
}

/** `vmsim test merge a.json b.json …`: resolves to the exit code (0 no failing item, 1 failing items). Throws RangeError on unreadable or incompatible files. */
export function testMergeCommand(
  files: readonly string[],
  opts: { readonly out: string | null; readonly json: boolean },
): number {
  const read = readResultFiles(files, isTestCampaignFile, "a test campaign's results");
  const f = mergeTestCampaigns(read);
  if (!opts.json) console.log(`merged ${plural(files.length, "file")}: ${plural(f.parts.length, "part")}`);
  return finish(f, opts.out, opts.json);
}
