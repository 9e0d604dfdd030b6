/**
 * The exploration loop: run a scenario under one strategy after another until
 * a run fails, the budget is spent or (bounded exhaustive search) every
 * schedule within the bound was run. Strategies:
 *
 * - pct: PCT (Burckhardt et al., ASPLOS 2010) with depth d: random distinct
 *   priorities and d−1 random change points over k steps, k measured by a
 *   first, non-preemptive run; each run finds a bug of depth d with
 *   probability ≥ 1/(n·k^(d−1)).
 * - random: switch at each point with probability p, to a random CPU.
 * - rr: round-robin with quantum q, q+1, q+2 … (one schedule per quantum).
 * - exhaustive: every schedule with at most `bound` preemptions (iterative
 *   context bounding, as CHESS), breadth first: all runs with 0, then 1, then 2.
 * - portfolio: the others in turn, one run each, sharing the budget.
 */
import { createHash } from "node:crypto";
import { type Decision, SCHED_MAX_CPUS, type Strategy, WHY_DUE, decisionMask } from "../sched/sched_det.js";
import { DEFAULT_STEP_CAP, type Explorer, type Outcome } from "./explorer.js";
import type { StrategyName } from "./replay_file.js";
import type { ScenarioParams } from "./scenario.js";

export const EXPLORE_STRATEGIES = ["pct", "random", "rr", "exhaustive", "portfolio"] as const;
export type ExploreStrategy = (typeof EXPLORE_STRATEGIES)[number];

export interface ExploreOptions {
  readonly strategy: ExploreStrategy;
  /** PCT depth. */
  readonly depth: number;
  /** Random: switch probability per sched point. */
  readonly p: number;
  /** Round-robin: the first quantum (sched points). */
  readonly quantum: number;
  /** Exhaustive: the preemption bound. */
  readonly bound: number;
  /** Stop after this long (ms). */
  readonly budgetMs: number;
  /** Stop after this many runs (null: only the budget). */
  readonly iterations: number | null;
  /** Iteration i (from 1; FOUND calls it run i + 1, after the non-preemptive run) uses strategy seed `seed` + i − 1. */
  readonly seed: number;
  /** Steps after which a run is a livelock. @defaultValue DEFAULT_STEP_CAP */
  readonly stepCap?: number;
}

/** A failing run and how to get it again. */
export interface Found {
  readonly outcome: Outcome;
  readonly strategy: StrategyName;
  /** The strategy seed of the run (the replay file records it). */
  readonly seed: number;
  /** Which run of the exploration (1-based; 0 is the non-preemptive calibration run). */
  readonly iteration: number;
}

export interface ExploreStats {
  /** Runs after the non-preemptive one: what {@link ExploreOptions.iterations} bounds. */
  readonly iterations: number;
  /** Every run made: the non-preemptive one and the `iterations` after it. */
  readonly runs: number;
  readonly ms: number;
  /** Distinct schedules (decision sequences) among the runs: at most `runs`. */
  readonly distinct: number;
  /** The distinct schedules' hashes, in the final statistics only: what `--jobs` merges. */
  readonly schedules?: readonly string[];
  /** Runs by preemption count: index i = runs with i preemptions (the last bucket: that many or more). */
  readonly preemptions: number[];
  /** Runs of each strategy (the portfolio's split). */
  readonly byStrategy: Record<string, number>;
  /** Steps of the non-preemptive run: PCT's k. */
  readonly k: number;
  /** Exhaustive search ran every schedule within its bound. */
  readonly exhausted: boolean;
  readonly found: Found | null;
}

/** Progress after each run. */
export type ExploreProgress = (done: number, stats: () => ExploreStats) => void;

const PREEMPTION_BUCKETS = 8;

/** One run to make: its strategy, the name the replay file gives it, and its seed. */
interface Planned {
  readonly strategy: Strategy;
  readonly name: StrategyName;
  readonly seed: number;
  /** Exhaustive: a child schedule whose preemption no longer applies is a repeat, not a new schedule. */
  readonly guided?: ExhaustiveNode;
}

/** PCT's guarantee for n CPUs, k steps, depth d: 1/(n·k^(d−1)). */
export function pctBound(n: number, k: number, d: number): number {
  return 1 / (n * k ** (d - 1));
}

/**
 * Bounded-preemption search. A node is a run: its plan (a prefix of an
 * earlier run's decisions plus one preemption), its record, and how many
 * preemptions its plan holds; its children put one more preemption at each
 * later step, to each other CPU that was runnable there.
 */
interface ExhaustiveNode {
  readonly plan: readonly Decision[];
  readonly preemptions: number;
  /** The step of the plan's last preemption: children preempt strictly later. */
  readonly after: number;
}

class Exhaustive {
  /** Runs whose children are still to be generated, breadth first. */
  private readonly parents: {
    node: ExhaustiveNode;
    decisions: readonly Decision[];
    steps: number;
    t: number;
    x: number[];
  }[] = [];
  /** Starts from `root`, the run of the non-preemptive schedule (the exploration's calibration run). */
  constructor(
    readonly bound: number,
    root: Outcome,
  ) {
    this.ran({ plan: [], preemptions: 0, after: -1 }, root);
  }

  /** The next schedule to run, or null when every schedule within the bound ran. */
  next(): ExhaustiveNode | null {
    for (;;) {
      const p = this.parents[0];
      if (p === undefined) return null;
      if (p.x.length === 0) {
        p.t++;
        if (p.t > p.steps) {
          this.parents.shift();
          continue;
        }
        p.x = candidates(p.decisions, p.t);
        continue;
      }
      const x = p.x.shift()!;
      const prefix = p.decisions.filter((d) => d.step < p.t);
      return {
        plan: [...prefix, { step: p.t, cpu: x, mask: 0, why: WHY_DUE, local: -1 }],
        preemptions: p.node.preemptions + 1,
        after: p.t,
      };
    }
  }

  /** A run of `node` finished: queue its children when the bound allows more preemptions. */
  ran(node: ExhaustiveNode, o: Outcome): void {
    if (node.preemptions >= this.bound) return;
    const t = node.after + 1;
    this.parents.push({
      node,
      decisions: o.record.decisions,
      steps: o.record.steps,
      t,
      x: candidates(o.record.decisions, t),
    });
  }
}

/** CPUs other than the running one that were runnable around step `t` of a run. */
function candidates(ds: readonly Decision[], t: number): number[] {
  let i = -1;
  for (let j = 0; j < ds.length && ds[j]!.step <= t; j++) i = j;
  if (i < 0) return [];
  const cur = BigInt(ds[i]!.cpu);
  const next = ds[i + 1];
  const mask = (decisionMask(ds[i]!) | (next ? decisionMask(next) : 0n)) & ~(1n << cur);
  const out: number[] = [];
  for (let c = 0; c < SCHED_MAX_CPUS; c++) if ((mask >> BigInt(c)) & 1n) out.push(c);
  return out;
}

/** Runs `params` on `ex` under `o` until a failure, the budget, or exhaustion. */
export async function explore(
  ex: Explorer,
  params: ScenarioParams,
  o: ExploreOptions,
  onProgress: ExploreProgress = () => {},
): Promise<ExploreStats> {
  const t0 = performance.now();
  const seen = new Set<string>();
  const preemptions = new Array<number>(PREEMPTION_BUCKETS).fill(0);
  const byStrategy: Record<string, number> = {};
  let iterations = 0;
  let found: Found | null = null;
  let exhausted = false;

  const note = (name: StrategyName, out: Outcome) => {
    seen.add(createHash("sha1").update(JSON.stringify(out.record.decisions)).digest("base64"));
    preemptions[Math.min(out.record.preemptions, PREEMPTION_BUCKETS - 1)]!++;
    const key = name.kind === "pct" ? `pct d=${name.depth}` : name.kind;
    byStrategy[key] = (byStrategy[key] ?? 0) + 1;
  };

  // The non-preemptive run: PCT's k, and a bug that needs no preemption at all.
  const calibration: StrategyName = { kind: "exhaustive", bound: 0 };
  const cap = o.stepCap ?? DEFAULT_STEP_CAP;
  const base = await ex.runOnce({ kind: "guided", plan: [] }, o.seed, params, cap);
  const k = Math.max(1, base.record.steps);
  note(calibration, base);
  if (base.failure) found = { outcome: base, strategy: calibration, seed: o.seed, iteration: 0 };

  const search = new Exhaustive(o.bound, base);
  const stats = (): ExploreStats => ({
    iterations,
    runs: iterations + 1,
    ms: performance.now() - t0,
    distinct: seen.size,
    preemptions: [...preemptions],
    byStrategy: { ...byStrategy },
    k,
    exhausted,
    found,
  });

  const portfolio: ExploreStrategy[] = ["pct", "random", "exhaustive", "rr"];
  let pctDepths = 0;
  const plan = (i: number): Planned | null => {
    const seed = o.seed + i - 1;
    let s = o.strategy;
    if (s === "portfolio") {
      s = portfolio[i % portfolio.length]!;
      if (s === "exhaustive" && exhausted) s = "pct";
    }
    switch (s) {
      case "pct": {
        // The portfolio varies the depth: 2, 3, 4, then again.
        const depth = o.strategy === "portfolio" ? 2 + (pctDepths++ % 3) : o.depth;
        return { strategy: { kind: "pct", depth, steps: k }, name: { kind: "pct", depth, steps: k }, seed };
      }
      case "random":
        return { strategy: { kind: "random", p: o.p }, name: { kind: "random", p: o.p }, seed };
      case "rr": {
        const quantum = o.quantum + (o.strategy === "portfolio" ? Math.floor(i / portfolio.length) : i - 1);
        return { strategy: { kind: "rr", quantum }, name: { kind: "rr", quantum }, seed };
      }
      default: {
        const node = search.next();
        if (node === null) {
          exhausted = true;
          return o.strategy === "portfolio" ? plan(i + 1) : null;
        }
        return {
          strategy: { kind: "guided", plan: node.plan },
          name: { kind: "exhaustive", bound: o.bound },
          seed,
          guided: node,
        };
      }
    }
  };

  for (let i = 1; found === null; i++) {
    if (performance.now() - t0 >= o.budgetMs || (o.iterations !== null && iterations >= o.iterations)) break;
    const next = plan(i);
    if (next === null) break;
    const out = await ex.runOnce(next.strategy, next.seed, params, cap);
    iterations++;
    note(next.name, out);
    if (next.guided) {
      // A preemption that no longer applies repeats an earlier schedule: not a new one, no children.
      if (out.record.skipped > 0) continue;
      search.ran(next.guided, out);
    }
    if (out.failure) found = { outcome: out, strategy: next.name, seed: next.seed, iteration: i };
    onProgress(iterations, stats);
  }
  return { ...stats(), schedules: [...seen] };
}
