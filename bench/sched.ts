/**
 * The deterministic scheduler's benchmark (src/sched/sched_det.ts,
 * docs/architecture.md): what a sched point, a switch, an exploration and a replay cost.
 * Prints a Markdown table and writes bench/results/sched.{md,json} with the
 * machine it ran on.
 *
 *   node dist/bench/sched.js [--repeats 5] [--points 20000000] [--switches 400000]
 *                            [--explore-ms 2000] [--replay-ops 1000] [--rows a,b,c,d] [--out <dir>]
 *
 * a. Sched points per second on 1 CPU that never switch: `bench_sched_points`
 *    (src/workers/workloads/sched.ts) under round-robin with a quantum past the
 *    run's end, against the same loop in free mode.
 * b. Switches per second (token handoffs): the same loop under round-robin
 *    with quantum 1 — every sched point a switch — on 2 CPUs and on 4, 8 and
 *    64 (MAX_CPUS), which outnumber a 2-core host's cores (then a handoff
 *    wakes a sleeping thread). `--switches` is the 2-CPU run's count; the
 *    others run a twentieth of it.
 * c. Explorations per second of a small scenario: 2 CPUs, vmalloc_mix 50
 *    operations each (vmalloc_mix_start, vmalloc_mix, vmalloc_mix_drain),
 *    PCT depth 3 with a fresh seed each, the machine restored from a snapshot
 *    before each; and what one restore costs against one Machine.boot. Then
 *    the same on 64 CPUs (MAX_CPUS) with 5 operations each.
 * d. Replay overhead: the scenario with `--replay-ops` operations per CPU run
 *    free, recorded (PCT), and replayed from the recording — wall time each.
 *    A replay that does not return the recorded results fails the run.
 *
 * `--rows` picks the parts to run (bench/throughput.ts runs c alone).
 * Every figure is the median of `--repeats` runs after a warm-up run; the
 * rates of a and b are timed inside the CPUs (first loop start to last loop
 * end), c and d from the main thread. Progress goes to stderr on a terminal only.
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import {
  type SchedRecord,
  type Strategy,
  VERDICT_OK,
  schedOff,
  schedRecord,
  schedSetup,
} from "../src/sched/sched_det.js";
import { Machine } from "../src/workers/machine.js";
import type { BenchSchedPointsResult } from "../src/workers/workloads/sched.js";
import "../src/workers/boot.js";
import {
  type HostInfo,
  RESULTS_DIR,
  type Stats,
  fmt,
  hostInfo,
  hostLine,
  positiveInt,
  runBenchMain,
  statsOf,
  writeResults,
} from "./report.js";

/** Targets of the deterministic-scheduling issue. */
const TARGET_POINTS_PER_SEC = 5e6;
const TARGET_SWITCHES_FIT = 500e3;
const TARGET_SWITCHES_OVER = 25e3;
const TARGET_EXPLORATIONS = 200;
/** Deterministic runs take the ticket lock, as src/explore/explorer.ts boots them. */
const DET_SPINLOCK = "ticket";
/** The scenario of c and d (as the exploration example runs it). */
const SCENARIO = { cpus: 2, memory: 8 * 1024 * 1024, seed: 7, spinlock: DET_SPINLOCK } as const;
const EXPLORE_OPS = 50;
/** c's 64-CPU scenario: every CPU deterministic mode covers, a few operations each. */
const SCENARIO_64 = { cpus: 64, memory: 16 * 1024 * 1024, seed: 7, spinlock: DET_SPINLOCK } as const;
const EXPLORE_OPS_64 = 5;
const PCT_DEPTH = 3;
/** A run longer than this many steps is a livelock (the measured runs are far shorter). */
const STEP_CAP = 1e12;

/** One line of the results. */
interface Row {
  readonly name: string;
  readonly unit: string;
  readonly median: number;
  readonly rmePct: number;
  readonly samples: number;
  /** "≥ 5,000,000" and the like; null: no target. */
  readonly target: string | null;
  readonly met: boolean | null;
  /** What else the reader needs: counts per run, ratios. */
  readonly note: string;
}

function row(name: string, unit: string, s: Stats, note = "", min?: number): Row {
  return {
    name,
    unit,
    median: s.median,
    rmePct: s.rmePct,
    samples: s.samples,
    target: min === undefined ? null : `≥ ${fmt(min)}`,
    met: min === undefined ? null : s.median >= min,
    note,
  };
}

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`  ${text}\n`);
}

/** A deterministic run's record, checked: the bench measures runs that finished. */
function finished(what: string): SchedRecord {
  const rec = schedRecord();
  schedOff();
  if (rec.verdict !== VERDICT_OK) throw new Error(`${what}: verdict ${rec.verdict}`);
  return rec;
}

/** bench_sched_points on every CPU of `m`: points per CPU, the record (deterministic), and the span in ms. */
async function pointsRun(
  m: Machine,
  points: number,
  strategy: Strategy | null,
): Promise<{ rec: SchedRecord | null; ms: number }> {
  if (strategy) schedSetup({ strategy, seed: 1, stepCap: STEP_CAP });
  const rs = (await m.runAll("bench_sched_points", { points })) as BenchSchedPointsResult[];
  const rec = strategy ? finished("bench_sched_points") : null;
  return { rec, ms: Math.max(...rs.map((r) => r.end)) - Math.min(...rs.map((r) => r.start)) };
}

/** a: non-switching sched points per second on 1 CPU, free and deterministic. */
async function measurePoints(points: number, repeats: number): Promise<Row[]> {
  const m = await Machine.boot({ cpus: 1, memory: 8 * 1024 * 1024, seed: 1, spinlock: DET_SPINLOCK });
  try {
    const rr: Strategy = { kind: "rr", quantum: 2 ** 31 - 1 };
    const free: number[] = [];
    const det: number[] = [];
    await pointsRun(m, Math.min(points, 1e6), null);
    await pointsRun(m, Math.min(points, 1e6), rr);
    for (let i = 0; i < repeats; i++) {
      progress(`sched points, repeat ${i + 1}/${repeats}`);
      free.push((points * 1000) / (await pointsRun(m, points, null)).ms);
      const d = await pointsRun(m, points, rr);
      if (d.rec!.switches !== 0 || d.rec!.steps !== points)
        throw new Error(`sched points: ${d.rec!.switches} switches, ${d.rec!.steps} steps (want 0, ${points})`);
      det.push((points * 1000) / d.ms);
    }
    const note = `${fmt(points)} points per run`;
    return [
      row("sched points/s, 1 CPU, free mode", "points/s", statsOf(free), note),
      row(
        "sched points/s, 1 CPU, deterministic (rr, no switch)",
        "points/s",
        statsOf(det),
        note,
        TARGET_POINTS_PER_SEC,
      ),
    ];
  } finally {
    await m.shutdown();
  }
}

/** b: token handoffs per second, every sched point a switch, on `cpus` CPUs. */
async function measureSwitches(cpus: number, switches: number, repeats: number, cores: number): Promise<Row> {
  const m = await Machine.boot({ cpus, memory: 8 * 1024 * 1024, seed: 1, spinlock: DET_SPINLOCK });
  try {
    const rr: Strategy = { kind: "rr", quantum: 1 };
    const points = Math.ceil(switches / cpus);
    await pointsRun(m, Math.ceil(points / 10), rr);
    const rates: number[] = [];
    for (let i = 0; i < repeats; i++) {
      progress(`switches on ${cpus} CPUs, repeat ${i + 1}/${repeats}`);
      const r = await pointsRun(m, points, rr);
      if (r.rec!.switches < cpus * points - 1)
        throw new Error(`switches on ${cpus} CPUs: ${r.rec!.switches}, want ${cpus * points - 1} at least`);
      rates.push((r.rec!.switches * 1000) / r.ms);
    }
    const fits = cpus <= cores;
    return row(
      `switches/s, ${cpus} CPUs (rr quantum 1)`,
      "switches/s",
      statsOf(rates),
      `${fmt(cpus * points)} switches per run; ${fits ? "fits the cores" : "more CPUs than cores"}`,
      fits ? TARGET_SWITCHES_FIT : TARGET_SWITCHES_OVER,
    );
  } finally {
    await m.shutdown();
  }
}

/** The scenario once on `m`: start, `ops` mix operations per CPU, drain. Resolves to the CPUs' results. */
async function scenario(m: Machine, ops: number): Promise<unknown[]> {
  const start = await m.runAll("vmalloc_mix_start", {});
  const mix = await m.runAll("vmalloc_mix", { ops, deadline: Number.MAX_SAFE_INTEGER });
  return [...start, ...mix, ...(await m.runAll("vmalloc_mix_drain"))];
}

/** A booted scenario machine with the mix's interrupt handler installed, and its snapshot. */
async function scenarioMachine(
  config: typeof SCENARIO | typeof SCENARIO_64 = SCENARIO,
): Promise<{ m: Machine; snap: Uint8Array }> {
  const m = await Machine.boot(config);
  await m.run(0, "vmalloc_mix_irq", { on: true });
  return { m, snap: m.snapshot() };
}

/** Steps of the scenario with `ops` operations per CPU, run without a preemption: PCT's k. */
async function scenarioSteps(m: Machine, snap: Uint8Array, ops: number): Promise<number> {
  await m.restore(snap);
  schedSetup({ strategy: { kind: "rr", quantum: 2 ** 31 - 1 }, seed: 1, stepCap: STEP_CAP });
  await scenario(m, ops);
  return finished("scenario").steps;
}

/** One exploration: restore, a PCT run with `seed`. */
async function explore(m: Machine, snap: Uint8Array, steps: number, seed: number, ops = EXPLORE_OPS): Promise<void> {
  await m.restore(snap);
  schedSetup({ strategy: { kind: "pct", depth: PCT_DEPTH, steps }, seed, stepCap: STEP_CAP });
  await scenario(m, ops);
  finished(`exploration ${seed}`);
}

/** c on 64 CPUs: explorations per second (restore before each). */
async function measureExplorations64(exploreMs: number, repeats: number): Promise<Row> {
  const { m, snap } = await scenarioMachine(SCENARIO_64);
  try {
    const steps = await scenarioSteps(m, snap, EXPLORE_OPS_64);
    let seed = 0;
    await explore(m, snap, steps, seed++, EXPLORE_OPS_64);
    const rates: number[] = [];
    for (let i = 0; i < repeats; i++) {
      progress(`explorations on 64 CPUs, repeat ${i + 1}/${repeats}`);
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < exploreMs) {
        await explore(m, snap, steps, seed++, EXPLORE_OPS_64);
        n++;
      }
      rates.push((n * 1000) / (performance.now() - t0));
    }
    return row(
      `explorations/s (64 CPUs, vmalloc_mix ${EXPLORE_OPS_64} ops each, PCT depth ${PCT_DEPTH}, restore before each)`,
      "explorations/s",
      statsOf(rates),
      `${fmt(steps)} steps per exploration; ${fmt(exploreMs)} ms per repeat; ${SCENARIO_64.memory / 2 ** 20} MiB`,
    );
  } finally {
    await m.shutdown();
  }
}

/** c: explorations per second, and one restore against one boot. */
async function measureExplorations(exploreMs: number, repeats: number): Promise<Row[]> {
  const { m, snap } = await scenarioMachine();
  try {
    const steps = await scenarioSteps(m, snap, EXPLORE_OPS);
    let seed = 0;
    for (const end = performance.now() + Math.min(exploreMs, 1000); performance.now() < end; )
      await explore(m, snap, steps, seed++);
    const rates: number[] = [];
    for (let i = 0; i < repeats; i++) {
      progress(`explorations, repeat ${i + 1}/${repeats}`);
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < exploreMs) {
        await explore(m, snap, steps, seed++);
        n++;
      }
      rates.push((n * 1000) / (performance.now() - t0));
    }
    const restores: number[] = [];
    for (let i = 0; i < 20 * repeats; i++) {
      const t0 = performance.now();
      await m.restore(snap);
      restores.push(performance.now() - t0);
    }
    const boots: number[] = [];
    for (let i = 0; i < repeats; i++) {
      progress(`boot, repeat ${i + 1}/${repeats}`);
      const t0 = performance.now();
      const b = await Machine.boot(SCENARIO);
      // Machine.boot resolves before the CPU workers have loaded: a machine is ready once every CPU answered.
      await b.runAll("read_counter");
      boots.push(performance.now() - t0);
      await b.shutdown();
    }
    const restore = statsOf(restores);
    const boot = statsOf(boots);
    const mib = (snap.length / 2 ** 20).toFixed(1);
    return [
      row(
        `explorations/s (2 CPUs, vmalloc_mix ${EXPLORE_OPS} ops each, PCT depth ${PCT_DEPTH}, restore before each)`,
        "explorations/s",
        statsOf(rates),
        `${fmt(steps)} steps per exploration; ${fmt(exploreMs)} ms per repeat`,
        TARGET_EXPLORATIONS,
      ),
      row("Machine.restore (2 CPUs, 8 MiB)", "ms", restore, `${mib} MiB arena`),
      row(
        "Machine.boot until every CPU answers (2 CPUs, 8 MiB)",
        "ms",
        boot,
        `${fmt(boot.median / restore.median)}× a restore`,
      ),
    ];
  } finally {
    await m.shutdown();
  }
}

/** d: the scenario with `ops` operations per CPU: free, recorded (PCT), replayed. */
async function measureReplay(ops: number, repeats: number): Promise<Row[]> {
  const { m, snap } = await scenarioMachine();
  try {
    const steps = await scenarioSteps(m, snap, ops);
    const timed = async (strategy: Strategy | null, seed: number) => {
      await m.restore(snap);
      if (strategy) schedSetup({ strategy, seed, stepCap: STEP_CAP });
      const t0 = performance.now();
      const results = JSON.stringify(await scenario(m, ops));
      const ms = performance.now() - t0;
      return { ms, results, rec: strategy ? finished(`replay scenario (${strategy.kind})`) : null };
    };
    const free: number[] = [];
    const recorded: number[] = [];
    const replayed: number[] = [];
    await timed(null, 0);
    for (let i = 0; i <= repeats; i++) {
      progress(i === 0 ? "replay overhead, warm-up" : `replay overhead, repeat ${i}/${repeats}`);
      const f = await timed(null, 0);
      const rec = await timed({ kind: "pct", depth: PCT_DEPTH, steps }, i + 1);
      const rep = await timed({ kind: "replay", plan: rec.rec!.decisions }, i + 1);
      if (rep.results !== rec.results || rep.rec!.planLeft !== 0 || rep.rec!.steps !== rec.rec!.steps)
        throw new Error(`replay of PCT seed ${i + 1} did not reproduce the recorded run`);
      // The first round warms the deterministic paths up.
      if (i === 0) continue;
      free.push(f.ms);
      recorded.push(rec.ms);
      replayed.push(rep.ms);
    }
    const base = statsOf(free);
    const times = (s: Stats) => `${(s.median / base.median).toFixed(2)}× free`;
    const rec = statsOf(recorded);
    const rep = statsOf(replayed);
    const what = `2 CPUs, vmalloc_mix ${fmt(ops)} ops each`;
    return [
      row(`replay overhead: free mode (${what})`, "ms", base, `${fmt(steps)} steps`),
      row(`replay overhead: recorded, PCT depth ${PCT_DEPTH} (${what})`, "ms", rec, times(rec)),
      row(`replay overhead: replayed (${what})`, "ms", rep, times(rep)),
    ];
  } finally {
    await m.shutdown();
  }
}

function markdown(rows: readonly Row[], cores: number, repeats: number, host: HostInfo): string {
  const pinned = cores < host.cores ? ` (this process may use ${cores} of the ${host.cores})` : "";
  return `${[
    hostLine(host),
    "",
    `Deterministic scheduler; os.availableParallelism() = ${cores}${pinned}. Median of ${repeats} runs after a warm-up; lockdep on.`,
    "",
    "| measurement | median | unit | ±rme | target | met? | notes |",
    "|---|---:|---|---:|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.median)} | ${r.unit} | ${r.rmePct.toFixed(2)}% | ${r.target ?? ""} | ${r.met === null ? "" : r.met ? "yes" : "**no**"} | ${r.note} |`,
    ),
  ].join("\n")}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      repeats: { type: "string", default: "5" },
      points: { type: "string", default: "20000000" },
      switches: { type: "string", default: "400000" },
      "explore-ms": { type: "string", default: "2000" },
      "replay-ops": { type: "string", default: "1000" },
      rows: { type: "string", default: "a,b,c,d" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const repeats = positiveInt("repeats", values.repeats);
  const points = positiveInt("points", values.points);
  const switches = positiveInt("switches", values.switches);
  const exploreMs = positiveInt("explore-ms", values["explore-ms"]);
  const replayOps = positiveInt("replay-ops", values["replay-ops"]);
  const parts = new Set(values.rows.split(","));
  for (const p of parts) if (!["a", "b", "c", "d"].includes(p)) throw new RangeError(`--rows takes a,b,c,d, got ${p}`);
  const cores = availableParallelism();

  const rows: Row[] = [];
  if (parts.has("a")) rows.push(...(await measurePoints(points, repeats)));
  if (parts.has("b"))
    for (const cpus of [2, 4, 8, 64])
      rows.push(await measureSwitches(cpus, cpus <= cores ? switches : Math.ceil(switches / 20), repeats, cores));
  if (parts.has("c")) {
    rows.push(...(await measureExplorations(exploreMs, repeats)));
    rows.push(await measureExplorations64(exploreMs, repeats));
  }
  if (parts.has("d")) rows.push(...(await measureReplay(replayOps, repeats)));

  const host = hostInfo();
  const md = markdown(rows, cores, repeats, host);
  process.stdout.write(md);
  writeResults(values.out, "sched", md, { host, cores, repeats, points, switches, exploreMs, replayOps, rows });
}

await runBenchMain(main);
