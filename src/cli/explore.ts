/**
 * `vmsim explore`, `vmsim replay` and `vmsim shrink`: hunting a race under the
 * deterministic scheduler, replaying the interleaving that broke an invariant
 * bit for bit, and making it as small as possible. A failure found writes a
 * replay file under a unique name and prints the one command that replays it.
 * Exit status: 0 nothing failed, 1 a failure (found, replayed, shrunk), 2 bad
 * arguments or a file that cannot be used.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { compiledModule } from "../workers/compiled.js";
import { Piscina } from "piscina";
import type { MachineConfig } from "../shared/config.js";
import { lastEvents } from "../shared/events.js";
import {
  type ExploreOptions,
  type ExploreStats,
  type FailureTally,
  type Found,
  explore,
  pctBound,
} from "../explore/explore.js";
import { Explorer, type Failure, failureHeadline } from "../explore/explorer.js";
import type { ExploreTask } from "../explore/explore_worker.js";
import {
  type ReplayFile,
  type ReplayScript,
  type StrategyName,
  decodeDecisions,
  replayFileOf,
  writeReplayFile,
} from "../explore/replay_file.js";
import type { Scenario, ScenarioParams } from "../explore/scenario.js";
import { scenarioOf } from "../explore/script.js";
import { ShrinkNotReplayed, shrink } from "../explore/shrink.js";
// The race catalog's scenarios (catalog:…) register themselves.
import "../explore/catalog.js";
import { timeline } from "../explore/timeline.js";
import { formatInt, plural } from "../workers/format.js";
import { drawMap } from "./map.js";
import { type ExploreCliOptions, type ReplayCliOptions, type ShrinkCliOptions, withTrace } from "./options.js";
import { writeChromeTrace } from "../workers/chrome_trace.js";
import { ProgressBar } from "./progress.js";
import { resultLine } from "./result.js";
import {
  type CampaignExploreOptions,
  preemptionText,
  scriptDigest,
  shardFile,
  shardFileName,
  shardText,
  kcsanReplayFlags,
} from "./explore_campaign.js";

/** The lines of a script scenario, for the replay file and the parallel jobs. */
type Script = ReplayScript | undefined;

/** A failure in one line for the result line: its kind and the first line of its real text. */
function failureLine(f: Failure): string {
  return `${f.kind}: ${f.text.split("\n")[0]}`;
}

function strategyText(s: StrategyName): string {
  switch (s.kind) {
    case "pct":
      return `pct d=${s.depth} k=${s.steps}`;
    case "random":
      return `random p=${s.p}`;
    case "rr":
      return `rr quantum=${s.quantum}`;
    case "exhaustive":
      return `exhaustive bound=${s.bound}`;
    case "shrunk":
      return `shrunk (from ${s.from})`;
  }
}

/** A unique, telling name: replay-<scenario>-<strategy>-s<seed>-<digest>.json in `dir`. */
function uniqueReplayPath(dir: string, scenario: string, strategy: StrategyName, seed: number, digest: string): string {
  mkdirSync(dir, { recursive: true });
  const base = `replay-${scenario.replace(/[^a-z0-9_]+/gi, "_")}-${strategy.kind}-s${seed}-${digest.slice(0, 8)}`;
  let path = join(dir, `${base}.json`);
  for (let i = 2; existsSync(path); i++) path = join(dir, `${base}-${i}.json`);
  return path;
}

/** Each job's first strategy seed: far apart, so the jobs never run the same schedule. */
const JOB_SEED_STRIDE = 1_000_000;

/**
 * Job j's task: without a shard, its own strategy seeds (far apart); within a
 * shard, shard j of the shard's share, so that a shard's results do not
 * depend on --jobs.
 */
function jobTask(task: ExploreTask, j: number, jobs: number): ExploreTask {
  const part = task.options.part ?? [];
  const options =
    part.length > 0
      ? { ...task.options, part: [...part, { index: j + 1, count: jobs }] }
      : { ...task.options, seed: task.options.seed + j * JOB_SEED_STRIDE };
  return { ...task, options };
}

/** Runs `jobs` explorations at once (piscina), stopping the others at the first failure (unless they keep going). */
async function exploreJobs(task: ExploreTask, jobs: number): Promise<ExploreStats[]> {
  const pool = new Piscina<ExploreTask, ExploreStats>({
    filename: compiledModule("explore/explore_worker.js"),
    minThreads: jobs,
    maxThreads: jobs,
  });
  const abort = new AbortController();
  try {
    const runs = Array.from({ length: jobs }, (_, j) =>
      pool.run(jobTask(task, j, jobs), { signal: abort.signal }).then((s) => {
        if (s.found && task.options.keepGoing !== true) abort.abort();
        return s;
      }),
    );
    const settled = await Promise.allSettled(runs);
    const done = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    if (done.length === 0) throw (settled[0] as PromiseRejectedResult).reason;
    return done;
  } finally {
    await pool.destroy();
  }
}

/**
 * Sums the jobs' statistics: each distinct failure (by signature) once, the
 * earliest run's first, which is the one reported. Schedules are counted once
 * however many jobs ran them (each job's non-preemptive run is the same schedule).
 */
function mergeStats(all: readonly ExploreStats[]): ExploreStats {
  const first = all[0]!;
  const failures = mergeFailures(all.flatMap((s) => s.failures));
  const byStrategy: Record<string, number> = {};
  for (const s of all) for (const [k, n] of Object.entries(s.byStrategy)) byStrategy[k] = (byStrategy[k] ?? 0) + n;
  const schedules = new Set(all.flatMap((s) => s.schedules ?? []));
  return {
    iterations: all.reduce((a, s) => a + s.iterations, 0),
    runs: all.reduce((a, s) => a + s.runs, 0),
    ms: Math.max(...all.map((s) => s.ms)),
    distinct: schedules.size,
    schedules: [...schedules],
    preemptions: first.preemptions.map((_, i) => all.reduce((a, s) => a + s.preemptions[i]!, 0)),
    byStrategy,
    k: first.k,
    exhausted: all.every((s) => s.exhausted),
    found: failures[0]?.found ?? null,
    failures,
    nextRun: all.some((s) => s.nextRun === null) ? null : Math.min(...all.map((s) => s.nextRun!)),
    shared: all.reduce((a, s) => a + s.shared, 0),
  };
}

/** Each signature once, its earliest run's, the counts added up; earliest run first. */
function mergeFailures(all: readonly FailureTally[]): FailureTally[] {
  const by = new Map<string, FailureTally>();
  for (const t of all) {
    const sig = t.found.outcome.failure!.signature;
    const had = by.get(sig);
    if (had === undefined) by.set(sig, t);
    else
      by.set(sig, {
        found: had.found.iteration <= t.found.iteration ? had.found : t.found,
        count: had.count + t.count,
      });
  }
  return [...by.values()].sort((a, b) => a.found.iteration - b.found.iteration);
}

/** `vmsim explore`: resolves to the exit status. */
export async function exploreCommand(
  config: MachineConfig,
  scenario: Scenario,
  o: ExploreCliOptions,
  script?: Script,
): Promise<number> {
  const params: ScenarioParams = { ops: o.ops ?? scenario.ops, skip: [] };
  const options: ExploreOptions = {
    strategy: o.strategy,
    depth: o.depth,
    p: o.p,
    quantum: o.quantum,
    bound: o.bound,
    budgetMs: o.budgetMs,
    iterations: o.iterations,
    seed: o.schedSeed,
    stepCap: o.stepCap,
    part: o.shard === null ? [] : [o.shard],
    keepGoing: o.keepGoing,
  };
  const say = o.json ? () => {} : (s: string) => console.log(s);
  say(
    `vmsim explore: scenario ${scenario.name} (${formatInt(params.ops)} ops per CPU), ${plural(config.cpus, "CPU")}, ` +
      `${config.memory / 1048576} MiB, ${config.layout}, kernel ${config.kernel}, seed ${config.seed}` +
      `${config.inject.length > 0 ? `, inject ${config.inject.join(",")}` : ""}; strategy ${o.strategy}, ` +
      `${plural(o.jobs, "job")}, budget ${o.budgetMs / 1000} s${o.iterations !== null ? ` or ${plural(o.iterations, "run")}` : ""}` +
      `${o.shard === null ? "" : `; shard ${shardText(o.shard)}`}${o.keepGoing ? "; keep going after a failure" : ""}`,
  );
  const t0 = performance.now();
  let stats: ExploreStats;
  if (o.jobs > 1) {
    const task: ExploreTask = { config, scenario: scenario.name, params, options, ...(script ? { script } : {}) };
    // The jobs report only when they end: the bar shows the budget's time.
    const bar = o.json
      ? null
      : ProgressBar.start({ label: "explore", total: o.budgetMs, unit: null, fields: `${o.jobs} jobs` });
    const tick = setInterval(() => bar?.update(Math.min(o.budgetMs, performance.now() - t0), 0), 500);
    try {
      stats = mergeStats(await exploreJobs(task, o.jobs));
    } finally {
      clearInterval(tick);
      bar?.stop();
    }
  } else {
    const ex = await Explorer.start(config, scenario);
    // The nearer of the budget and --iterations, in thousandths.
    const bar = o.json
      ? null
      : ProgressBar.start({
          label: "explore",
          total: 1000,
          unit: "runs",
          fields: "{runs} runs | {distinct} distinct",
          initial: { runs: 0, distinct: 0 },
        });
    try {
      stats = await explore(ex, params, options, (_, st) => {
        if (bar === null) return;
        const s = st();
        const done = Math.max(s.ms / o.budgetMs, o.iterations === null ? 0 : s.iterations / o.iterations);
        bar.update(Math.round(Math.min(1, done) * 1000), s.iterations, {
          runs: formatInt(s.runs),
          distinct: formatInt(s.distinct),
        });
      });
    } finally {
      bar?.stop();
      await ex.close();
    }
  }
  const n = config.cpus;
  if (o.strategy === "pct" || o.strategy === "portfolio") {
    const d = o.strategy === "pct" ? o.depth : 3;
    say(
      `pct: n = ${n} CPUs, k = ${formatInt(stats.k)} steps (the non-preemptive run), d = ${d}: each run finds a depth-${d} bug ` +
        `with probability ≥ 1/(n·k^(d−1)) = ${pctBound(n, stats.k, d).toExponential(2)}`,
    );
  }
  // Every run counts, the non-preemptive one(s) included: the preemption histogram and the schedules count them.
  const rate = (stats.runs * 1000) / Math.max(1, stats.ms);
  const exhausted = stats.exhausted
    ? o.shard === null
      ? ", every schedule within the bound explored"
      : ", every schedule of this shard's share explored"
    : "";
  say(
    `runs: ${formatInt(stats.runs)} in ${(stats.ms / 1000).toFixed(1)} s (${rate.toFixed(1)} runs/s), ` +
      `${formatInt(stats.distinct)} distinct schedule${stats.distinct === 1 ? "" : "s"}${exhausted}` +
      (stats.shared > 0 ? `; plus ${plural(stats.shared, "run")} every shard makes, counted by shard 1` : ""),
  );
  say(`preemptions per run: ${preemptionText(stats.preemptions)}`);
  if (o.strategy === "portfolio")
    say(
      `portfolio: ${Object.entries(stats.byStrategy)
        .map(([k, v]) => `${k} ${formatInt(v)}`)
        .join(", ")}`,
    );
  const found = stats.found;
  // Each distinct failure's replay file (without --keep-going, the one failure's).
  const replays = stats.failures.map((t) => reportFound(config, scenario.name, script, params, t, o));
  if (found !== null) {
    if (o.trace !== null) await traceFound(config, scenario, params, found, o.trace);
    if (!o.json) {
      for (const l of timeline(
        found.outcome.record.decisions,
        found.outcome.record.steps,
        found.outcome.failure,
        [],
        config.kcsan,
      ))
        console.log(l);
    }
  }
  let results: string | null = null;
  if (o.shard !== null) {
    results = join(o.out, shardFileName(o.shard));
    const campaign = { name: scenario.name, ops: params.ops, script: scriptDigest(script) };
    const file = shardFile(
      o.shard,
      config,
      campaign,
      campaignOptionsOf(o),
      stats,
      replays.map((r) => relative(o.out, r)),
      o.jobs,
      performance.now() - t0,
    );
    mkdirSync(o.out, { recursive: true });
    writeFileSync(results, `${JSON.stringify(file)}\n`);
    say(`wrote ${results} (join the shards' files with vmsim explore merge)`);
  }
  if (found !== null) {
    const more = stats.failures.length > 1 ? `; ${plural(stats.failures.length, "distinct failure")}` : "";
    say(
      resultLine(
        "FAILED",
        `${failureLine(found.outcome.failure!)}, on run ${found.iteration + 1}; replay file ${replays[0]}${more}`,
      ),
    );
  } else say(resultLine("ok", `no failure in ${plural(stats.runs, "run")}${exhausted}`));
  console.log(
    `SUMMARY ${JSON.stringify({
      command: "explore",
      ok: found === null,
      scenario: scenario.name,
      strategy: o.strategy,
      kernel: config.kernel,
      cpus: n,
      runs: stats.runs,
      runsPerSec: Number(rate.toFixed(1)),
      distinct: stats.distinct,
      k: stats.k,
      exhausted: stats.exhausted,
      found: found !== null,
      failure: found?.outcome.failure?.signature ?? null,
      replay: replays[0] ?? null,
      preemptions: stats.preemptions,
      failures: stats.failures.map((t, i) => ({
        signature: t.found.outcome.failure!.signature,
        count: t.count,
        run: t.found.iteration + 1,
        replay: replays[i],
      })),
      ...(o.shard === null ? {} : { shard: shardText(o.shard), results }),
    })}`,
  );
  return found !== null ? 1 : 0;
}

/** The options every shard of a campaign must share. */
function campaignOptionsOf(o: ExploreCliOptions): CampaignExploreOptions {
  const { strategy, depth, p, quantum, bound, iterations, schedSeed, stepCap, keepGoing } = o;
  return { strategy, depth, p, quantum, bound, iterations, schedSeed, stepCap, keepGoing };
}

/** Writes the failure's replay file and prints the failure and the commands that replay and shrink it. */
function reportFound(
  config: MachineConfig,
  scenario: string,
  script: Script,
  params: ScenarioParams,
  t: FailureTally,
  o: ExploreCliOptions,
): string {
  const f = t.found;
  const file = replayFileOf({
    config,
    scenario,
    script,
    params,
    strategy: f.strategy,
    seed: f.seed,
    stepCap: o.stepCap,
    outcome: f.outcome,
  });
  const path = uniqueReplayPath(o.out, scenario, f.strategy, f.seed, f.outcome.digest);
  writeReplayFile(path, file);
  const fail = f.outcome.failure!;
  const say = o.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
  // Runs count from 1, the non-preemptive one (iteration 0) first, as the runs line counts them; each job its own.
  // A shard's runs are numbered as the whole campaign's, whichever job made them.
  const job =
    o.jobs > 1 && o.shard === null ? ` of job ${Math.floor((f.seed - o.schedSeed) / JOB_SEED_STRIDE) + 1}` : "";
  say(
    `FOUND on run ${f.iteration + 1}${job} (${strategyText(f.strategy)}, sched seed ${f.seed}): ${failureHeadline(fail)}`,
  );
  for (const l of fail.text.split("\n").slice(1, 40)) say(`  ${l}`);
  say(
    `signature: ${fail.signature} (what runs of the same bug share${o.keepGoing ? `; ${plural(t.count, "run")} failed so` : ""})`,
  );
  say(
    `replay file: ${path} (${plural(f.outcome.record.preemptions, "preemption")}, ${formatInt(f.outcome.record.steps)} steps)`,
  );
  if (f.outcome.record.lost > 0)
    say(
      `warning: the run switched more often than the log holds (${formatInt(f.outcome.record.lost)} decisions lost): ` +
        "its replay will diverge; a lower --p or a smaller --ops keeps it whole",
    );
  say(`replay it:   vmsim replay ${kcsanReplayFlags(config)}${path}`);
  say(`shrink it:   vmsim shrink ${path}`);
  return path;
}

/** `vmsim replay FILE`: resolves to the exit status (1 when the run fails, as recorded or not). */
export async function replayCommand(f: ReplayFile, path: string, o: ReplayCliOptions): Promise<number> {
  const scenario = scenarioOf(f.scenario.name, f.scenario.script);
  const params: ScenarioParams = { ops: f.scenario.ops, skip: f.scenario.skip };
  const plan = decodeDecisions(f.decisions);
  console.log(
    `vmsim replay ${path}: scenario ${f.scenario.name} (${formatInt(f.scenario.ops)} ops per CPU), ` +
      `${plural(f.config.cpus, "CPU")}, seed ${f.config.seed}${f.config.inject.length ? `, inject ${f.config.inject.join(",")}` : ""}; ` +
      `${plural(plan.length, "decision")}, ${plural(f.preemptions, "preemption")} (${strategyText(f.strategy)}, written by vmsim ${f.vmsim})`,
  );
  const ex = await Explorer.start(withTrace(f.config, o.trace), scenario);
  try {
    const strategy = { kind: "replay" as const, plan, continueRandom: o.continueWith === "random" };
    const out = await ex.runOnce(strategy, f.seed, params, f.stepCap);
    const traced = o.trace === null || writeTrace(o.trace);
    const fail = out.failure;
    // The machine as the run left it: at the failure (every CPU stopped or parked), or at the end.
    if (fail?.kind === "diverged") {
      console.log(`DIVERGED: ${fail.text}`);
      console.log("the run left the recording: a different vmsim, config or scenario than the file's?");
      console.log(resultLine("FAILED", "diverged from the recording"));
      console.log(
        `SUMMARY ${JSON.stringify({ command: "replay", ok: false, file: path, diverged: true, failure: fail.signature })}`,
      );
      return 1;
    }
    const same = fail?.signature === f.failure?.signature;
    const exact = out.digest === f.digest;
    if (fail) {
      console.log(
        `FAILS: ${failureHeadline(fail)}${same ? " (as recorded)" : ` (recorded: ${f.failure?.signature ?? "no failure"})`}`,
      );
      for (const l of fail.text.split("\n").slice(1, 40)) console.log(`  ${l}`);
      console.log(`signature: ${fail.signature}`);
    } else console.log(`no failure${f.failure ? ` (recorded: ${f.failure.signature})` : " (as recorded)"}`);
    // The machine as the run left it: at the failure (every CPU stopped or parked), or at the end.
    ex.machine.bind();
    const point = fail
      ? `at the failure of the replay of ${basename(path)}: ${fail.text.split("\n")[0]}`
      : `at the end of the replay of ${basename(path)} (no failure)`;
    const mapped = o.map === null || drawMap(o.map, point);
    console.log(
      `steps ${formatInt(out.record.steps)}, switches ${formatInt(out.record.switches)}, preemptions ${formatInt(out.record.preemptions)}; ` +
        `digest ${out.digest} ${exact ? "= the recorded run's (bit for bit)" : `≠ recorded ${f.digest}`}`,
    );
    if (o.timeline) {
      const events = Array.from({ length: f.config.cpus }, (_, cpu) => lastEvents(cpu, 8));
      for (const l of timeline(out.record.decisions, out.record.steps, out.failure, events, f.config.kcsan))
        console.log(l);
    }
    let repeated: { runs: number; asRecorded: number; bitForBit: number } | null = null;
    if (o.repeat > 1) {
      repeated = { runs: 1, asRecorded: same ? 1 : 0, bitForBit: exact ? 1 : 0 };
      for (; repeated.runs < o.repeat; repeated.runs++) {
        const again = await ex.runOnce(strategy, f.seed, params, f.stepCap);
        if (again.failure?.signature === f.failure?.signature) repeated.asRecorded++;
        if (again.digest === f.digest) repeated.bitForBit++;
      }
      console.log(
        `repeat: ${repeated.asRecorded}/${repeated.runs} replays ${f.failure ? "failed as recorded" : "ran clean as recorded"}, ` +
          `${repeated.bitForBit}/${repeated.runs} bit for bit`,
      );
    }
    let deterministic = true;
    if (o.checkDeterminism) {
      const again = await ex.runOnce(strategy, f.seed, params, f.stepCap);
      deterministic = again.digest === out.digest;
      console.log(
        `determinism: second replay digest ${again.digest} ${deterministic ? "= first (identical decisions, results, events)" : `≠ first ${out.digest}`}`,
      );
    }
    const ok = fail === null && deterministic;
    const asRecordedText = same ? "as recorded" : `recorded: ${f.failure?.signature ?? "no failure"}`;
    console.log(
      fail !== null
        ? resultLine("FAILED", `${failureLine(fail)}, ${asRecordedText}${exact ? ", bit for bit" : ""}`)
        : !deterministic
          ? resultLine("FAILED", "the second replay differs from the first")
          : resultLine("ok", `no failure, ${asRecordedText}${exact ? ", bit for bit" : ""}`),
    );
    console.log(
      `SUMMARY ${JSON.stringify({
        command: "replay",
        ok,
        file: path,
        kernel: f.config.kernel,
        failure: fail?.signature ?? null,
        asRecorded: same,
        digest: out.digest,
        bitForBit: exact,
        ...(o.checkDeterminism ? { deterministic } : {}),
        ...(repeated ? { repeat: repeated } : {}),
        trace: o.trace,
      })}`,
    );
    return ok && mapped && traced ? 0 : 1;
  } finally {
    await ex.close();
  }
}

/**
 * Writes the Chrome trace of the run that just ended (its machine booted with
 * tracing on); false (one line on stderr) when the file cannot be written.
 */
function writeTrace(file: string): boolean {
  try {
    const s = writeChromeTrace(file);
    console.log(`trace: ${file} (${formatInt(s.events)} events; open it in ui.perfetto.dev)`);
    return true;
  } catch (e) {
    console.error(`vmsim: error: ${(e as Error).message}`);
    return false;
  }
}

/** Replays a found run on a machine with tracing on and writes its trace. */
async function traceFound(config: MachineConfig, scenario: Scenario, params: ScenarioParams, f: Found, file: string) {
  const ex = await Explorer.start(withTrace(config, file), scenario);
  try {
    await ex.runOnce({ kind: "replay", plan: f.outcome.record.decisions }, f.seed, params, f.outcome.record.steps + 1);
    writeTrace(file);
  } finally {
    await ex.close();
  }
}

/** `vmsim shrink FILE`: resolves to the exit status (1: the shrunk run fails, as it should). */
export async function shrinkCommand(f: ReplayFile, path: string, o: ShrinkCliOptions): Promise<number> {
  const plan = decodeDecisions(f.decisions);
  const skipped = (s: readonly (readonly number[])[]) => s.reduce((a, x) => a + x.length, 0);
  console.log(
    `vmsim shrink ${path}: ${f.failure?.signature ?? "no failure"}; ${plural(f.config.cpus, "CPU")}, ` +
      `${formatInt(f.scenario.ops)} ops per CPU, ${plural(f.preemptions, "preemption")}, ${plural(plan.length, "decision")}`,
  );
  const bar = ProgressBar.start({
    label: "shrink",
    total: o.budgetMs,
    unit: "runs",
    fields: "{runs} runs | {pass}",
    initial: { runs: 0, pass: "" },
  });
  const t0 = performance.now();
  let r: Awaited<ReturnType<typeof shrink>>;
  try {
    r = await shrink(f, o.budgetMs, (p) =>
      bar?.update(Math.min(o.budgetMs, performance.now() - t0), p.runs, { runs: formatInt(p.runs), pass: p.pass }),
    );
  } catch (e) {
    bar?.stop();
    // A file whose failure does not happen again (another vmsim, a hand edit): one line, exit 2.
    if (e instanceof RangeError) {
      console.error(`vmsim: error: ${e.message}`);
      return 2;
    }
    // Not even the recorded run replays strictly: vmsim's own fault, one line and nothing written.
    if (!(e instanceof ShrinkNotReplayed)) throw e;
    console.error(`vmsim: error: ${e.message} (please report it with ${path})`);
    console.log(resultLine("FAILED", "no shrunk run replays as recorded: nothing written"));
    console.log(`SUMMARY ${JSON.stringify({ command: "shrink", ok: false, file: null, replayed: false })}`);
    return 1;
  }
  bar?.stop();
  const out = o.out ?? `${path.replace(/(\.min)?\.json$/, "")}.min.json`;
  writeReplayFile(out, r.file);
  const s = r.file;
  console.log(
    `shrunk in ${plural(r.runs, "run")} (${(r.ms / 1000).toFixed(1)} s${r.cut ? ", budget spent" : ""}): ` +
      `CPUs ${f.config.cpus} → ${s.config.cpus}, ops per CPU ${f.scenario.ops} → ${s.scenario.ops}` +
      `${skipped(s.scenario.skip) > 0 ? ` (${skipped(s.scenario.skip)} left out)` : ""}, ` +
      `preemptions ${f.preemptions} → ${s.preemptions}, decisions ${plan.length} → ${decodeDecisions(s.decisions).length}, ` +
      `steps ${formatInt(f.steps)} → ${formatInt(s.steps)}`,
  );
  console.log(`shrunk file: ${out}`);
  console.log(`replay it:   vmsim replay ${kcsanReplayFlags(f.config)}${out}`);
  for (const l of timeline(
    r.outcome.record.decisions,
    r.outcome.record.steps,
    r.outcome.failure,
    r.events,
    f.config.kcsan,
  ))
    console.log(l);
  const shrunk = r.outcome.failure;
  // The smallest run found did not replay: the file holds the smallest that does, and vmsim has a bug to report.
  if (r.unreplayed !== null)
    console.error(
      `vmsim: error: the smallest shrunk run did not replay as recorded (${r.unreplayed}): a nondeterminism bug ` +
        `in vmsim (please report it with ${path}); ${out} holds the smallest run that does`,
    );
  console.log(
    resultLine(
      "FAILED",
      `the shrunk run still fails: ${shrunk ? failureLine(shrunk) : "no failure"}` +
        (r.unreplayed !== null ? "; the smallest run found did not replay (a vmsim bug, see stderr)" : ""),
    ),
  );
  console.log(
    `SUMMARY ${JSON.stringify({
      command: "shrink",
      ok: false,
      file: out,
      failure: s.failure?.signature ?? null,
      kernel: s.config.kernel,
      cpus: s.config.cpus,
      ops: s.scenario.ops,
      skipped: skipped(s.scenario.skip),
      preemptions: s.preemptions,
      decisions: decodeDecisions(s.decisions).length,
      steps: s.steps,
      runs: r.runs,
      replayed: r.unreplayed === null,
    })}`,
  );
  return 1;
}
