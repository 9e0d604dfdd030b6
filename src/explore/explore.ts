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
 *
 * A part of an exploration (`--shard i/n`, and `--jobs` within it) makes
 * only its share of the runs (src/workers/shard.ts): run i (0 the
 * non-preemptive run, i ≥ 1 with strategy seed `seed` + i − 1) of the seeded
 * strategies, or the subtrees below its prefixes of the bounded schedule tree.
 */
import { createHash } from "node:crypto";
import { type Decision, SCHED_MAX_CPUS, type Strategy, WHY_DUE, decisionMask } from "../sched/sched_det.js";
import { DEFAULT_STEP_CAP, type Explorer, type Outcome } from "./explorer.js";
import type { StrategyName } from "./replay_file.js";
import type { ScenarioParams } from "./scenario.js";
import { type Shard, holdsFirst, nestedShardItems, shardNumbers } from "../workers/shard.js";

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
  /** Make only this part of the runs: these shards applied in turn, outermost first. @defaultValue [] (every run) */
  readonly part?: readonly Shard[];
  /** Go on after a failure: each distinct failure (by signature) is kept with its first run. @defaultValue false */
  readonly keepGoing?: boolean;
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

/** A distinct failure (by signature): its first run, and how many runs failed so. */
export interface FailureTally {
  readonly found: Found;
  readonly count: number;
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
  /** Exhaustive search ran every schedule within its bound (a part: every schedule of its subtrees). */
  readonly exhausted: boolean;
  /** The first failure: the run that stopped the exploration (with keepGoing, the first of `failures`). */
  readonly found: Found | null;
  /** Each distinct failure, in the order found (without keepGoing: `found` alone). */
  readonly failures: readonly FailureTally[];
  /** Seeded strategies: the first run of the part not made (the part's next run number, past any bound); else null. */
  readonly nextRun: number | null;
  /** Runs made only to find a part's share (the non-preemptive run, the levels above the split), counted by part 1. */
  readonly shared: number;
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

/** A run whose children (one more preemption at each later step) are still to be made. */
interface Parent {
  readonly node: ExhaustiveNode;
  readonly decisions: readonly Decision[];
  readonly steps: number;
}

/** The schedule of the non-preemptive run: the tree's root. */
const ROOT: ExhaustiveNode = { plan: [], preemptions: 0, after: -1 };

/** The child of `p` that preempts at step `t` in favour of CPU `x`. */
function childOf(p: Parent, t: number, x: number): ExhaustiveNode {
  const prefix = p.decisions.filter((d) => d.step < t);
  return {
    plan: [...prefix, { step: t, cpu: x, mask: 0, why: WHY_DUE, local: -1 }],
    preemptions: p.node.preemptions + 1,
    after: t,
  };
}

/** Every child of `p` in the order the search makes them; none at the bound. */
function childrenOf(p: Parent, bound: number): ExhaustiveNode[] {
  const out: ExhaustiveNode[] = [];
  if (p.node.preemptions >= bound) return out;
  for (let t = p.node.after + 1; t <= p.steps; t++)
    for (const x of candidates(p.decisions, t)) out.push(childOf(p, t, x));
  return out;
}

class Exhaustive {
  /** Runs whose children are still to be generated, breadth first. */
  private readonly parents: (Parent & { t: number; x: number[] })[] = [];
  private taken = 0;
  /** `first`: schedules to run before any child (a part's share of the tree); the root's run goes to {@link ran}. */
  constructor(
    readonly bound: number,
    private readonly first: readonly ExhaustiveNode[] = [],
  ) {}

  /** The next schedule to run, or null when every schedule within the bound ran. */
  next(): ExhaustiveNode | null {
    if (this.taken < this.first.length) return this.first[this.taken++]!;
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
      return childOf(p, p.t, p.x.shift()!);
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
  const part = o.part ?? [];
  if (part.length > 0 && o.strategy === "portfolio")
    throw new RangeError(
      "a portfolio does not split into shards (its exhaustive share is one search): shard pct, random, rr or exhaustive",
    );
  const seen = new Set<string>();
  const preemptions = new Array<number>(PREEMPTION_BUCKETS).fill(0);
  const byStrategy: Record<string, number> = {};
  // Run 0 (the non-preemptive run) and the levels above a split tree's are made by every part, counted by part 1.
  const counts = holdsFirst(part);
  const failures = new Map<string, { found: Found; count: number }>();
  let runs = 0;
  let shared = 0;
  let found: Found | null = null;
  let exhausted = false;
  let nextRun: number | null = null;

  const note = (name: StrategyName, out: Outcome) => {
    runs++;
    seen.add(createHash("sha1").update(JSON.stringify(out.record.decisions)).digest("base64"));
    preemptions[Math.min(out.record.preemptions, PREEMPTION_BUCKETS - 1)]!++;
    const key = name.kind === "pct" ? `pct d=${name.depth}` : name.kind;
    byStrategy[key] = (byStrategy[key] ?? 0) + 1;
  };
  const failed = (f: Found) => {
    const sig = f.outcome.failure!.signature;
    const t = failures.get(sig);
    if (t) t.count++;
    else failures.set(sig, { found: f, count: 1 });
    found ??= f;
  };
  const stop = () => found !== null && o.keepGoing !== true;
  const spent = () => performance.now() - t0 >= o.budgetMs;
  const iterations = () => runs - (counts ? 1 : 0);

  // The non-preemptive run: PCT's k, and a bug that needs no preemption at all.
  const calibration: StrategyName = { kind: "exhaustive", bound: 0 };
  const cap = o.stepCap ?? DEFAULT_STEP_CAP;
  const base = await ex.runOnce({ kind: "guided", plan: [] }, o.seed, params, cap);
  const k = Math.max(1, base.record.steps);
  if (counts) {
    note(calibration, base);
    if (base.failure) failed({ outcome: base, strategy: calibration, seed: o.seed, iteration: 0 });
  } else shared++;

  const stats = (): ExploreStats => ({
    iterations: iterations(),
    runs,
    ms: performance.now() - t0,
    distinct: seen.size,
    preemptions: [...preemptions],
    byStrategy: { ...byStrategy },
    k,
    exhausted,
    found,
    failures: [...failures.values()].map((t) => ({ ...t })),
    nextRun,
    shared,
  });

  let search = new Exhaustive(o.bound);
  search.ran(ROOT, base);
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

  /** One run of `next` as run `i`: counted, its children queued, its failure kept. */
  const runPlanned = async (next: Planned, i: number): Promise<void> => {
    const out = await ex.runOnce(next.strategy, next.seed, params, cap);
    note(next.name, out);
    // A preemption that no longer applies repeats an earlier schedule: not a new one, no children.
    const repeat = next.guided !== undefined && out.record.skipped > 0;
    if (next.guided && !repeat) search.ran(next.guided, out);
    if (out.failure && !repeat) failed({ outcome: out, strategy: next.name, seed: next.seed, iteration: i });
    onProgress(iterations(), stats);
  };

  if (o.strategy === "exhaustive" && part.length > 0) {
    // A part's share of the tree: its prefixes, then the subtrees below them, breadth first.
    const name: StrategyName = { kind: "exhaustive", bound: o.bound };
    search = new Exhaustive(
      o.bound,
      await splitTree(ex, params, o, base, part[0]!.count, cap, (out) => {
        if (!counts) shared++;
        else {
          note(name, out);
          if (out.failure && out.record.skipped === 0)
            failed({ outcome: out, strategy: name, seed: o.seed, iteration: runs - 1 });
        }
        return !stop() && !spent();
      }).then((level) => nestedShardItems(level, part)),
    );
  }
  if (o.strategy === "exhaustive" || o.strategy === "portfolio") {
    for (let i = runs + shared; !stop(); i++) {
      if (spent() || (o.iterations !== null && iterations() >= o.iterations)) break;
      const next = plan(i);
      if (next === null) break;
      await runPlanned(next, i);
    }
  } else {
    // Seeded strategies: run i is a function of i alone, so a part makes its runs in order.
    const numbers = shardNumbers(part, null);
    let i = numbers.next().value!;
    if (i === 0) i = numbers.next().value!;
    while (!stop() && !spent() && (o.iterations === null || i <= o.iterations)) {
      await runPlanned(plan(i)!, i);
      i = numbers.next().value!;
    }
    nextRun = i;
  }
  return { ...stats(), schedules: [...seen] };
}

/**
 * The level of the bounded schedule tree that shards split: the first
 * (preemption count) with at least `count` schedules, or the last one. The
 * levels above it are run here — every part runs them, so every part sees
 * the same level; `ran` hears of each of those runs and says whether to go
 * on (false: an empty level).
 */
async function splitTree(
  ex: Explorer,
  params: ScenarioParams,
  o: ExploreOptions,
  base: Outcome,
  count: number,
  cap: number,
  ran: (out: Outcome) => boolean,
): Promise<ExhaustiveNode[]> {
  let level: { node: ExhaustiveNode; out: Outcome }[] = [{ node: ROOT, out: base }];
  for (;;) {
    const children = level
      .filter((r) => r.out.record.skipped === 0)
      .flatMap((r) =>
        childrenOf({ node: r.node, decisions: r.out.record.decisions, steps: r.out.record.steps }, o.bound),
      );
    if (children.length >= count || children.length === 0 || children[0]!.preemptions >= o.bound) return children;
    level = [];
    for (const node of children) {
      const out = await ex.runOnce({ kind: "guided", plan: node.plan }, o.seed, params, cap);
      if (!ran(out)) return [];
      level.push({ node, out });
    }
  }
}
