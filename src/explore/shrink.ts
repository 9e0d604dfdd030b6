/**
 * Shrinking a failing run: smaller runs are tried, and one is kept whenever
 * the same failure (its signature) still happens. Each candidate runs under
 * a plan anchored in each CPU's own progress — a kept preemption happens when
 * the preempted CPU reaches the sched point it was preempted at, however the
 * cuts moved the other CPUs — and a kept candidate's own recorded decisions
 * become the new plan, so the result replays exactly. The passes, repeated until none makes progress:
 *
 * 1. remove preemptions (a switch becomes "keep running"): halves of them,
 *    then quarters, down to single ones (ddmin);
 * 2. truncate the schedule (the shortest prefix of the plan that still fails);
 * 3. drop workload operations: fewer per CPU, then single ones left out;
 * 4. drop CPUs (the plan and the per-CPU settings renumbered): halves of
 *    them, then quarters, down to single ones, the highest first.
 * 5. search: PCT with one, then two change points, for a schedule of the
 *    same workload with fewer preemptions.
 * A smaller workload that no longer fails under the kept plan gets a few
 * short random explorations of its own before it is given up.
 */
import { type MachineConfig, makeConfig } from "../shared/config.js";
import { lastEvents } from "../shared/events.js";
import { type Decision, type Strategy, WHY_DUE, decisionMask, withMask } from "../sched/sched_det.js";
import { Explorer, type Outcome } from "./explorer.js";
import { type ReplayFile, decodeDecisions, replayFileOf } from "./replay_file.js";
import { resolveScenario } from "./script.js";

/** A candidate run. */
export interface Candidate {
  readonly cpus: number;
  readonly ops: number;
  readonly skip: readonly (readonly number[])[];
  readonly plan: readonly Decision[];
}

export interface ShrinkProgress {
  readonly runs: number;
  readonly kept: number;
  readonly pass: string;
}

export interface ShrinkResult {
  readonly file: ReplayFile;
  readonly outcome: Outcome;
  readonly runs: number;
  readonly ms: number;
  /** Ran out of budget before a pass made no progress. */
  readonly cut: boolean;
  /** Each CPU's last events in the strict replay of the shrunk file that confirms it. */
  readonly events: string[][];
  /**
   * What the strict replay of the smallest run found did instead of failing as recorded, when it did not
   * (a nondeterminism bug in vmsim: `file` is then the smallest run that does replay); null when it did.
   */
  readonly unreplayed: string | null;
}

/** No run the shrinker kept replays strictly, the recorded one's own record included: a nondeterminism bug in vmsim. */
export class ShrinkNotReplayed extends Error {
  override readonly name = "ShrinkNotReplayed";
}

const preemptionsOf = (plan: readonly Decision[]) => plan.filter((d) => d.why === WHY_DUE).length;

/** Random runs tried for a smaller workload whose kept plan no longer fails. */
const REEXPLORE_RUNS = 12;
/** Switches per run those runs aim at. */
const REEXPLORE_SWITCHES = 4;
/** PCT runs of each depth the search for fewer preemptions tries. */
const SEARCH_RUNS = 24;
/** Machines the shrinker keeps booted (one per CPU count; a 64-CPU machine is 64 worker threads). */
const KEPT_MACHINES = 2;

/** Shrinks the failing run of `f` within `budgetMs`. */
export async function shrink(
  f: ReplayFile,
  budgetMs: number,
  onProgress: (p: ShrinkProgress) => void = () => {},
): Promise<ShrinkResult> {
  const t0 = performance.now();
  const sig = f.failure?.signature;
  if (sig === undefined) throw new RangeError("the replay file records no failure: nothing to shrink");
  const scenario = resolveScenario(f.scenario.name, f.scenario.script);
  if (scenario === undefined) throw new RangeError(`unknown scenario ${f.scenario.name}`);
  const explorers = new Map<number, Explorer>();
  const explorer = async (cpus: number): Promise<Explorer> => {
    let e = explorers.get(cpus);
    if (e === undefined) {
      // The least recently used machine goes (a run from a fresh boot is the same run).
      const [lru] = explorers.keys();
      if (explorers.size >= KEPT_MACHINES && lru !== undefined) {
        await explorers.get(lru)!.close();
        explorers.delete(lru);
      }
      const config: MachineConfig = makeConfig({ ...f.config, cpus });
      e = await Explorer.start(config, scenario);
    } else explorers.delete(cpus);
    explorers.set(cpus, e);
    return e;
  };
  let runs = 0;
  let pass = "confirm";
  const tryRun = async (c: Candidate, strategy: Strategy = { kind: "local", plan: c.plan }, seed = f.seed) => {
    const e = await explorer(c.cpus);
    const o = await e.runOnce(strategy, seed, { ops: c.ops, skip: c.skip }, f.stepCap);
    runs++;
    onProgress({ runs, kept: 0, pass });
    return o.failure?.signature === sig ? o : null;
  };
  /**
   * A smaller workload moves every later step, so the kept plan may miss the
   * window it hit; a few short random explorations (about REEXPLORE_SWITCHES
   * switches a run) look for a schedule of the smaller workload that still fails.
   */
  const reexplore = async (c: Candidate, steps: number): Promise<Outcome | null> => {
    const p = Math.min(0.5, REEXPLORE_SWITCHES / Math.max(1, steps));
    for (let i = 1; i <= REEXPLORE_RUNS && !outOfTime(); i++) {
      const o = await tryRun(c, { kind: "random", p }, f.seed + i);
      if (o !== null) return o;
    }
    return null;
  };
  const outOfTime = () => performance.now() - t0 >= budgetMs;

  try {
    let best: Candidate = {
      cpus: f.config.cpus,
      ops: f.scenario.ops,
      skip: Array.from({ length: f.config.cpus }, (_, cpu) => [...(f.scenario.skip[cpu] ?? [])]),
      plan: decodeDecisions(f.decisions),
    };
    const first = await tryRun(best);
    if (first === null)
      throw new RangeError(`the recorded failure did not happen again (${sig}): is the file from this vmsim?`);
    best = { ...best, plan: first.record.decisions };
    let bestSteps = first.record.steps;
    // Every run kept, in order: the confirmation falls back on an earlier one if the smallest does not replay.
    const kept: Candidate[] = [best];
    const keep = (c: Candidate, o: Outcome) => {
      best = { ...c, plan: o.record.decisions };
      bestSteps = o.record.steps;
      kept.push(best);
    };
    /** Tries `c` under the kept plan — and, when `c` changes the workload, under a few random schedules. */
    const attempt = async (c: Candidate, workload = false): Promise<boolean> => {
      if (outOfTime()) return false;
      const steps = bestSteps;
      const o = (await tryRun(c)) ?? (workload ? await reexplore(c, steps) : null);
      if (o === null) return false;
      keep(c, o);
      return true;
    };

    let progress = true;
    while (progress && !outOfTime()) {
      progress = false;

      pass = "preemptions";
      // Halves, then quarters … of the preemptions at once (ddmin), down to single ones.
      for (let size = Math.max(1, preemptionsOf(best.plan) >> 1); size >= 1 && !outOfTime(); size >>= 1) {
        for (let from = 0; !outOfTime(); from += size) {
          const due = best.plan.flatMap((d, i) => (d.why === WHY_DUE ? [i] : []));
          if (from >= due.length) break;
          const cut = new Set(due.slice(from, from + size));
          if (await attempt({ ...best, plan: best.plan.filter((_, i) => !cut.has(i)) })) {
            progress = true;
            from -= size;
          }
        }
      }

      pass = "schedule";
      let lo = 0;
      let hi = best.plan.length;
      while (lo < hi && !outOfTime()) {
        const mid = (lo + hi) >> 1;
        const c = { ...best, plan: best.plan.slice(0, mid) };
        const before = best.plan.length;
        if (await attempt(c)) {
          if (best.plan.length < before) progress = true;
          hi = Math.min(mid, best.plan.length);
        } else lo = mid + 1;
      }

      pass = "ops";
      for (const ops of [1, best.ops >> 2, best.ops >> 1, best.ops - (best.ops >> 2), best.ops - 1]) {
        if (ops < 1 || ops >= best.ops) continue;
        const skip = best.skip.map((s) => s.filter((i) => i < ops));
        if (await attempt({ ...best, ops, skip }, true)) {
          progress = true;
          break;
        }
      }
      if (scenario.skippable)
        for (let size = Math.max(1, best.ops >> 1); size >= 1 && !outOfTime(); size >>= 1)
          for (let cpu = 0; cpu < best.cpus; cpu++)
            for (let from = 0; from < best.ops && !outOfTime(); from += size) {
              const cut = new Set(best.skip[cpu] ?? []);
              const before = cut.size;
              for (let i = from; i < Math.min(best.ops, from + size); i++) cut.add(i);
              if (cut.size === before) continue;
              const skip = best.skip.map((s, c) => (c === cpu ? [...cut].sort((a, b) => a - b) : [...s]));
              if (await attempt({ ...best, skip }, true)) progress = true;
            }

      pass = "cpus";
      cpus: for (let size = Math.max(1, best.cpus >> 1); size >= 1 && !outOfTime(); size >>= 1)
        for (let from = best.cpus - size; from > -size && best.cpus > 1 && !outOfTime(); from -= size)
          if (await attempt(withoutCpus(best, Math.max(0, from), from + size), true)) {
            progress = true;
            break cpus;
          }

      // Preemptions that only mattered by moving the others: PCT with one or two change points looks
      // for a schedule of the same workload with fewer.
      pass = "search";
      for (let depth = 2; depth <= 3 && preemptionsOf(best.plan) > depth - 1 && !outOfTime(); depth++)
        for (let i = 1; i <= SEARCH_RUNS && !outOfTime(); i++) {
          const o = await tryRun(best, { kind: "pct", depth, steps: bestSteps }, f.seed + i);
          if (o !== null && o.record.preemptions < preemptionsOf(best.plan)) {
            keep(best, o);
            progress = true;
            break;
          }
        }
    }

    const cut = outOfTime();
    const c = await confirmShrunk(explorer, f, kept);
    runs += c.runs;
    const file = replayFileOf({
      config: makeConfig({ ...f.config, cpus: c.candidate.cpus }),
      scenario: f.scenario.name,
      script: f.scenario.script,
      params: { ops: c.candidate.ops, skip: c.candidate.skip },
      strategy: { kind: "shrunk", from: f.strategy.kind === "shrunk" ? f.strategy.from : f.strategy.kind },
      seed: f.seed,
      stepCap: f.stepCap,
      outcome: c.outcome,
    });
    return {
      file,
      outcome: c.outcome,
      runs,
      ms: performance.now() - t0,
      cut,
      events: c.events,
      unreplayed: c.unreplayed,
    };
  } finally {
    for (const e of explorers.values()) await e.close();
  }
}

/** The kept run that confirmed a shrink by replaying strictly, and its replay. */
export interface Confirmed {
  readonly candidate: Candidate;
  readonly outcome: Outcome;
  /** Each CPU's last events in that replay (for the timeline). */
  readonly events: string[][];
  /** What the smallest kept run's replay did instead, when it was not the one that confirmed. */
  readonly unreplayed: string | null;
  /** Strict replays run. */
  readonly runs: number;
}

/**
 * The shrunk file must replay exactly: replays the kept runs strictly, the
 * smallest (the last kept) first, until one fails as recorded. A kept run
 * that does not is a nondeterminism bug in vmsim; when none does, throws
 * {@link ShrinkNotReplayed}.
 */
export async function confirmShrunk(
  explorer: (cpus: number) => Promise<Explorer>,
  f: ReplayFile,
  kept: readonly Candidate[],
): Promise<Confirmed> {
  const sig = f.failure?.signature;
  let unreplayed: string | null = null;
  for (let i = kept.length - 1; i >= 0; i--) {
    const c = kept[i]!;
    const e = await explorer(c.cpus);
    const o = await e.runOnce({ kind: "replay", plan: c.plan }, f.seed, { ops: c.ops, skip: c.skip }, f.stepCap);
    if (o.failure?.signature === sig) {
      const events = Array.from({ length: c.cpus }, (_, cpu) => lastEvents(cpu, 8));
      return { candidate: c, outcome: o, events, unreplayed, runs: kept.length - i };
    }
    unreplayed ??= o.failure !== null ? `${o.failure.kind}: ${o.failure.text.split("\n")[0]}` : "no failure";
  }
  throw new ShrinkNotReplayed(
    `none of the ${kept.length} runs the shrinker kept replays as recorded (the smallest: ${unreplayed}): ` +
      "a nondeterminism bug in vmsim",
  );
}

/** The candidate without CPUs `from`..`to` − 1 (the highest first, so the lower numbers hold). */
function withoutCpus(c: Candidate, from: number, to: number): Candidate {
  let out = c;
  for (let drop = to - 1; drop >= from; drop--) out = withoutCpu(out, drop);
  return out;
}

/**
 * The candidate without CPU `drop`: the switches to it and its own
 * preemptions go, the higher CPUs move down one (each CPU's preemptions stay
 * anchored in its own sched-point count).
 */
function withoutCpu(c: Candidate, drop: number): Candidate {
  const low = (1n << BigInt(drop)) - 1n;
  const remask = (m: bigint) => (m & low) | ((m >> BigInt(drop + 1)) << BigInt(drop));
  const plan: Decision[] = [];
  let holder = -1;
  for (const d of c.plan) {
    const from = holder;
    holder = d.cpu;
    if (d.cpu === drop || (d.why === WHY_DUE && from === drop)) continue;
    plan.push(withMask({ ...d, cpu: d.cpu > drop ? d.cpu - 1 : d.cpu }, remask(decisionMask(d))));
  }
  return { cpus: c.cpus - 1, ops: c.ops, skip: c.skip.filter((_, cpu) => cpu !== drop), plan };
}
