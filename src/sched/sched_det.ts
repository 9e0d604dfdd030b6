/**
 * The deterministic scheduler (docs/architecture.md): one CPU at a time holds the run
 * token; the others wait on their own word. The holder decides, at the sched
 * points its strategy asks for, whether to keep running or hand the token on;
 * only a switch pays a handoff (store the token, bump the next CPU's wake
 * word, Atomics.notify it, wait on our own). A CPU that waits for another
 * (a held lock, a grace period, a flush) blocks on the word it waits for and
 * is not runnable until that word changes, so spinning never burns a step.
 *
 * Everything the scheduler decides is in the arena (struct sched_det, per-CPU
 * sched_cpu, the decision log), written only by the token holder: the
 * decisions are a function of (config, seed, strategy, plan) alone, whichever
 * thread happens to compute them. Every switch is logged as (step, CPU,
 * runnable set, reason); replaying that log reproduces the run bit for bit.
 *
 * A step is one sched point of the running CPU; the global step count is the
 * sum over the CPUs' sched-point clocks (src/sched/sched_point.ts).
 */
import { availableParallelism } from "node:os";
import {
  DEFINE_GLOBAL,
  DEFINE_PER_CPU,
  F64,
  I32,
  U32,
  defineRegion,
  machineStopping,
  per_cpu_ptr,
  theArena,
} from "../shared/arena.js";
import { MAX_CPUS } from "../shared/config.js";
import { KernelBug, MachineStopped, reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { smp_processor_id } from "../shared/smp.js";
import { Cpumask } from "./cpumask.js";
import { type SP, schedDetRearm, schedPointCount, setSchedDetHook } from "./sched_point.js";

/** Strategies (sched_det.strategy). */
const STRAT_RANDOM = 1;
const STRAT_PCT = 2;
const STRAT_RR = 3;
/** Follow the plan; a divergence stops the run (vmsim replay). */
const STRAT_REPLAY = 4;
/** Follow the plan where it still applies, the default choice elsewhere (exhaustive search). */
const STRAT_GUIDED = 5;
/**
 * Guided by each CPU's own progress: a preemption happens when the preempted
 * CPU reaches the sched point it was preempted at in the recording, whatever
 * the other CPUs did meanwhile; the default choice elsewhere (shrinking).
 */
const STRAT_LOCAL = 6;

/** Why a decision was taken (the log's `reason`). */
export const WHY_START = 0;
/** The strategy's own point: a preemption, a PCT change point, a round-robin quantum. */
export const WHY_DUE = 1;
export const WHY_BLOCK = 2;
export const WHY_DONE = 3;
export const WHY_YIELD = 4;
const WHY_NAMES = ["start", "preempt", "block", "done", "yield"] as const;

/** CPU states (sched_cpu.state). */
const IDLE = 0;
const RUNNING = 1;
const RUNNABLE = 2;
const BLOCKED = 3;
const DONE = 4;

/** Deterministic mode covers every machine: MAX_CPUS (its runnable sets are 64-bit cpumasks, src/sched/cpumask.ts). */
export const SCHED_MAX_CPUS = MAX_CPUS;
/** PCT depth at most (change points: depth − 1). */
export const PCT_MAX_DEPTH = 16;
/** Decisions the log and the plan hold. */
const SCHED_LOG_CAP = 1 << 16;

/** Run verdicts (sched_det.verdict). */
export const VERDICT_OK = 0;
export const VERDICT_DEADLOCK = 1;
export const VERDICT_LIVELOCK = 2;
export const VERDICT_DIVERGED = 3;

export const SCHED_DET = defineStruct("sched_det", [
  /** Deterministic mode for the next workload call; the main thread sets it while every CPU is parked. */
  { name: "on", type: "i32", guard: "init" },
  /** The CPU holding the run token, -1 before the first decision and after the last CPU finished. */
  { name: "token", type: "i32", guard: "atomic" },
  /** CPUs of this call that reached schedRunBegin; the last one takes the first decision. */
  { name: "arrived", type: "i32", guard: "atomic" },
  { name: "expected", type: "i32", guard: "init" },
  { name: "strategy", type: "i32", guard: "init" },
  /** STRAT_REPLAY past the plan's end: go on with random choices instead of stopping. */
  { name: "continue_random", type: "i32", guard: "init" },
  { name: "prob", type: "f64", guard: "init" },
  { name: "quantum", type: "i32", guard: "init" },
  { name: "step_cap", type: "f64", guard: "init" },
  /** Global steps when the token last moved. */
  { name: "steps", type: "f64", guard: "the run token" },
  /** The global step of the strategy's next own decision. */
  { name: "next_due", type: "f64", guard: "the run token" },
  { name: "switches", type: "f64", guard: "the run token" },
  /** Switches away from a CPU that could have kept running. */
  { name: "preemptions", type: "f64", guard: "the run token" },
  /** sfc32 state of the strategy's random choices. */
  { name: "rng", type: "u32", count: 4, guard: "the run token" },
  /** PCT change points (global steps, ascending) and the priority each gives the running CPU. */
  { name: "change_step", type: "f64", count: PCT_MAX_DEPTH, guard: "init" },
  { name: "change_prio", type: "i32", count: PCT_MAX_DEPTH, guard: "init" },
  { name: "nr_change", type: "i32", guard: "init" },
  { name: "next_change", type: "i32", guard: "the run token" },
  { name: "log_len", type: "i32", guard: "the run token" },
  /** Decisions that did not fit the log (the run cannot be replayed). */
  { name: "log_lost", type: "i32", guard: "the run token" },
  { name: "plan_len", type: "i32", guard: "init" },
  { name: "plan_pos", type: "i32", guard: "the run token" },
  /** Guided plans: entries that no longer applied and were skipped. */
  { name: "plan_skipped", type: "i32", guard: "the run token" },
  { name: "verdict", type: "i32", guard: "the run token" },
]);
const S = SCHED_DET.off;

/**
 * One decision of the log or the plan. The CPU and the reason share a word
 * (cpu + 256 × why), so that the 64-bit runnable mask fits the five words an
 * entry had when the mask was 32 bits: the arena's layout does not move.
 */
export const SCHED_DECISION = defineStruct("sched_decision", [
  { name: "step", type: "i32", guard: "the run token" },
  { name: "cpu_why", type: "i32", guard: "the run token" },
  /** The runnable CPUs: 0–31, then 32–63. */
  { name: "mask", type: "u32", count: 2, guard: "the run token" },
  /** The sched-point count of the CPU that decided, -1 for a start. */
  { name: "local", type: "i32", guard: "the run token" },
]);
const D = SCHED_DECISION.off;
/** i32 words per decision. */
const DECISION_WORDS = SCHED_DECISION.size >> 2;
const sched_det = DEFINE_GLOBAL("sched_det", SCHED_DET);

export const SCHED_CPU = defineStruct("sched_cpu", [
  { name: "state", type: "i32", guard: "the run token" },
  /** I32 index of the word a blocked CPU waits on, and the value it saw there. */
  { name: "wait_w", type: "i32", guard: "the run token" },
  { name: "wait_v", type: "i32", guard: "the run token" },
  /** The lock (or object) it waits for and how to describe it (a waitDescriber id, -1: none), for the deadlock report. */
  { name: "wait_lock", type: "i32", guard: "the run token" },
  { name: "wait_describe", type: "i32", guard: "the run token" },
  /** Bumped (then notified) when the token is handed to this CPU. */
  { name: "wake", type: "i32", guard: "atomic" },
  /** PCT priority: the highest runnable runs. */
  { name: "prio", type: "i32", guard: "the run token" },
  /** STRAT_LOCAL: this CPU's next plan entry and the end of its entries. */
  { name: "plan_next", type: "i32", guard: "the run token" },
  { name: "plan_end", type: "i32", guard: "the run token" },
]);
const C = SCHED_CPU.off;
const sched_cpu = DEFINE_PER_CPU("sched_cpu", SCHED_CPU);

const sched_log = defineRegion("sched_log", () => SCHED_LOG_CAP * DECISION_WORDS * 4);
const sched_plan = defineRegion("sched_plan", () => SCHED_LOG_CAP * DECISION_WORDS * 4);

const g = (off: number) => (sched_det.ptr + off) >> 2;
const gf = (off: number) => (sched_det.ptr + off) >> 3;
const cpuField = (cpu: number, off: number) => (per_cpu_ptr(sched_cpu, cpu) + off) >> 2;

/*** This thread ***/

/** True while this CPU runs a workload under the deterministic scheduler (live binding: read it directly). */
export let schedDeterministic = false;
let me = 0;
let nrCpus = 0;
/** This CPU's sched-point clock and the global step count when it last took the token. */
let baseLocal = 0;
let baseGlobal = 0;
/** Spins on the token word before sleeping: long while every CPU has a core of its own. */
let tokenSpins = 0;

function globalNow(): number {
  return baseGlobal + (schedPointCount() - baseLocal);
}

/** The global step this CPU is at (deterministic mode only): a trace's clock that replays exactly. */
export function schedGlobalStep(): number {
  return globalNow();
}

/*** The strategy's random choices: sfc32 on the arena's state ***/

function detRandom(): number {
  const r = g(S.rng);
  const a = U32[r]!;
  const b = U32[r + 1]!;
  const c = U32[r + 2]!;
  const d = U32[r + 3]!;
  const t = (((a + b) | 0) + d) | 0;
  U32[r + 3] = (d + 1) | 0;
  U32[r] = b ^ (b >>> 9);
  U32[r + 2] = (((c << 21) | (c >>> 11)) + t) | 0;
  U32[r + 1] = (c + (c << 3)) | 0;
  return (t >>> 0) / 4294967296;
}

function randomIn(mask: Cpumask): number {
  return mask.nth(Math.floor(detRandom() * mask.weight()));
}

/*** Runnable set ***/

/** The decision's CPU sets (this thread's scratch: a decision allocates nothing). */
const runnable = new Cpumask();
const others = new Cpumask();

/** Fills `runnable` with the runnable CPUs; a blocked CPU whose word changed becomes runnable here. */
function runnableMask(): Cpumask {
  runnable.assign(0, 0);
  for (let cpu = 0; cpu < nrCpus; cpu++) {
    const st = I32[cpuField(cpu, C.state)]!;
    if (st === BLOCKED) {
      if (Atomics.load(I32, I32[cpuField(cpu, C.wait_w)]!) === I32[cpuField(cpu, C.wait_v)]) continue;
      I32[cpuField(cpu, C.state)] = RUNNABLE;
      runnable.set(cpu);
    } else if (st === RUNNING || st === RUNNABLE) runnable.set(cpu);
  }
  return runnable;
}

function highestPrio(mask: Cpumask): number {
  let best = -1;
  let bestPrio = Number.NEGATIVE_INFINITY;
  for (let cpu = mask.first(); cpu >= 0; cpu = mask.next(cpu)) {
    const p = I32[cpuField(cpu, C.prio)]!;
    if (p > bestPrio) {
      bestPrio = p;
      best = cpu;
    }
  }
  return best;
}

/*** Decision entries (the log's and the plan's) ***/

/** Word offsets inside an entry. */
const E_STEP = D.step >> 2;
const E_CPU_WHY = D.cpu_why >> 2;
const E_MASK = D.mask >> 2;
const E_LOCAL = D.local >> 2;

/** I32 index of entry `i` of the plan. */
const planEntry = (i: number) => (sched_plan.base >> 2) + i * DECISION_WORDS;
const entryCpu = (e: number) => I32[e + E_CPU_WHY]! & 255;
const entryWhy = (e: number) => I32[e + E_CPU_WHY]! >> 8;
const entryMaskText = (e: number) => new Cpumask().assign(U32[e + E_MASK]!, U32[e + E_MASK + 1]!).text();

function writeEntry(e: number, step: number, cpu: number, lo: number, hi: number, why: number, local: number): void {
  I32[e + E_STEP] = step;
  I32[e + E_CPU_WHY] = cpu + (why << 8);
  U32[e + E_MASK] = lo;
  U32[e + E_MASK + 1] = hi;
  I32[e + E_LOCAL] = local;
}

/*** Strategies: who runs next ***/

/** The plan's next entry at step `now` (its I32 index), or -1. */
function planAt(now: number): number {
  const pos = I32[g(S.plan_pos)]!;
  if (pos >= I32[g(S.plan_len)]!) return -1;
  const e = planEntry(pos);
  return I32[e + E_STEP] === now ? e : -1;
}

function planNext(): void {
  I32[g(S.plan_pos)]!++;
}

/** A replay went somewhere the recording did not: stop the run loudly. */
function diverged(now: number, why: string, mask: Cpumask): never {
  I32[g(S.verdict)] = VERDICT_DIVERGED;
  const pos = I32[g(S.plan_pos)]!;
  const e = planEntry(pos);
  const expected =
    pos < I32[g(S.plan_len)]!
      ? `decision ${pos}: at step ${I32[e + E_STEP]} CPU${entryCpu(e)} (${WHY_NAMES[entryWhy(e)]!}), runnable ${entryMaskText(e)}`
      : "the end of the recording";
  const text = `replay diverged at step ${now} on CPU${me} (${why}): expected ${expected}; actual runnable ${mask.text()}`;
  reportBug("sched", text);
  throw new KernelBug(text);
}

/** A decision's runnable set as text: "{0,1,40}" (`maskHi`: CPUs 32–63). */
export function maskText(mask: number, maskHi = 0): string {
  return new Cpumask().assign(mask, maskHi).text();
}

/**
 * The strategy's choice at a decision point; `mask` holds the runnable CPUs
 * (this CPU included when it could go on). Returns the CPU to run, -1: none.
 */
function pick(why: number, now: number, mask: Cpumask): number {
  const selfOk = mask.has(me) && why !== WHY_START;
  others.copy(mask).clear(me);
  switch (I32[g(S.strategy)]) {
    case STRAT_RANDOM:
      if (why === WHY_DUE) {
        F64[gf(S.next_due)] = now + geometricGap();
        return !others.empty() ? randomIn(others) : me;
      }
      if (why === WHY_YIELD) return !others.empty() ? randomIn(others) : me;
      return !mask.empty() ? randomIn(mask) : -1;
    case STRAT_PCT: {
      if (why === WHY_DUE) pctChangePoints(now);
      if (why === WHY_YIELD && !others.empty()) return highestPrio(others);
      return !mask.empty() ? highestPrio(mask) : -1;
    }
    case STRAT_RR: {
      // Round-robin: the next runnable CPU after this one, in CPU order; the lowest one first.
      if (mask.empty()) return -1;
      if (why === WHY_START) return mask.first();
      // A quantum that ends with nobody else to run starts the next one.
      if (why === WHY_DUE) F64[gf(S.next_due)] = now + I32[g(S.quantum)]!;
      if (why === WHY_DUE || why === WHY_YIELD || !selfOk) {
        const after = others.next(me);
        return after >= 0 ? after : !others.empty() ? others.first() : selfOk ? me : mask.first();
      }
      return me;
    }
    case STRAT_LOCAL:
      return pickLocal(why, mask, selfOk);
    default:
      return pickPlanned(why, now, mask, selfOk);
  }
}

/** STRAT_LOCAL: this CPU's next preemption, if it is at that sched point now; else the default choice. */
function pickLocal(why: number, mask: Cpumask, selfOk: boolean): number {
  if (why === WHY_DUE) {
    const i = I32[cpuField(me, C.plan_next)]!;
    if (i >= I32[cpuField(me, C.plan_end)]!) return me;
    const e = planEntry(i);
    if (I32[e + E_LOCAL]! > schedPointCount()) return me;
    I32[cpuField(me, C.plan_next)] = i + 1;
    const to = entryCpu(e);
    if (mask.has(to) && to !== me) return to;
    I32[g(S.plan_skipped)]!++;
    return me;
  }
  // Starts, blocks, finishes and yields that switch (the only ones recorded): the recording's next such
  // choice when it is one of the same kind and can run, else the default.
  const candidates = why === WHY_START ? mask : others;
  const pos = I32[g(S.plan_pos)]!;
  const e = planEntry(pos);
  if (!candidates.empty() && pos < I32[g(S.plan_len)]! && entryWhy(e) === why) {
    I32[g(S.plan_pos)] = pos + 1;
    const to = entryCpu(e);
    if (candidates.has(to)) return to;
  }
  if (why === WHY_YIELD) return !others.empty() ? others.first() : me;
  return !mask.empty() ? (selfOk ? me : mask.first()) : -1;
}

/** STRAT_LOCAL: points until this CPU's next preemption. */
function localGap(): number {
  const i = I32[cpuField(me, C.plan_next)]!;
  if (i >= I32[cpuField(me, C.plan_end)]!) return Number.POSITIVE_INFINITY;
  return I32[planEntry(i) + E_LOCAL]! - schedPointCount();
}

function pickPlanned(why: number, now: number, mask: Cpumask, selfOk: boolean): number {
  // The last CPU of a call finishing is never a recorded decision; nor is a yield with nobody else to run,
  // which every strategy answers with this CPU (it may share its step with the next call's start).
  if (why === WHY_DONE && mask.empty()) return -1;
  if (why === WHY_YIELD && others.empty()) return me;
  const guided = I32[g(S.strategy)] === STRAT_GUIDED;
  // A guided plan skips entries the run has gone past.
  if (guided)
    while (I32[g(S.plan_pos)]! < I32[g(S.plan_len)]!) {
      if (I32[planEntry(I32[g(S.plan_pos)]!) + E_STEP]! >= now) break;
      planNext();
      I32[g(S.plan_skipped)]!++;
    }
  const e = planAt(now);
  if (e >= 0) {
    const cpu = entryCpu(e);
    const recWhy = entryWhy(e);
    // A recorded block or finish happens by itself: the strategy's own point passes it by.
    if (why === WHY_DUE && recWhy !== WHY_DUE) return me;
    if (!guided && (recWhy !== why || !mask.equals(U32[e + E_MASK]!, U32[e + E_MASK + 1]!) || !mask.has(cpu)))
      diverged(now, WHY_NAMES[why]!, mask);
    planNext();
    if (mask.has(cpu)) return cpu;
    I32[g(S.plan_skipped)]!++;
  } else if (!guided && I32[g(S.plan_pos)]! >= I32[g(S.plan_len)]! && I32[g(S.continue_random)] !== 0) {
    I32[g(S.strategy)] = STRAT_RANDOM;
    F64[gf(S.next_due)] = now + geometricGap();
    return pick(why, now, mask);
  } else if (!guided && why !== WHY_DUE && !(why === WHY_YIELD && selfOk)) {
    // The recording kept this CPU running here; a run that must switch has left it. Nobody runnable
    // where the recording ends is its deadlock again (a deadlock is never logged): decide() reports it.
    if (!mask.empty() || I32[g(S.plan_pos)]! < I32[g(S.plan_len)]!) diverged(now, WHY_NAMES[why]!, mask);
  }
  if (why === WHY_DUE || (why === WHY_YIELD && selfOk && others.empty())) return me;
  if (why === WHY_YIELD) return others.first();
  return !mask.empty() ? (selfOk ? me : mask.first()) : -1;
}

/** Random strategy: points until the next switch, geometric with the switch probability p. */
function geometricGap(): number {
  const p = F64[gf(S.prob)]!;
  if (p >= 1) return 1;
  if (p <= 0) return Number.POSITIVE_INFINITY;
  return 1 + Math.floor(Math.log(1 - detRandom()) / Math.log1p(-p));
}

/** PCT: every change point reached lowers the running CPU's priority to that point's value. */
function pctChangePoints(now: number): void {
  const n = I32[g(S.nr_change)]!;
  let i = I32[g(S.next_change)]!;
  for (; i < n && F64[gf(S.change_step) + i]! <= now; i++) I32[cpuField(me, C.prio)] = I32[g(S.change_prio) + i]!;
  I32[g(S.next_change)] = i;
}

/** Global step of the strategy's next own decision. */
function nextDue(now: number): number {
  let due: number;
  switch (I32[g(S.strategy)]) {
    case STRAT_RANDOM:
      due = F64[gf(S.next_due)]!;
      break;
    case STRAT_PCT: {
      const i = I32[g(S.next_change)]!;
      due = i < I32[g(S.nr_change)]! ? F64[gf(S.change_step) + i]! : Number.POSITIVE_INFINITY;
      break;
    }
    case STRAT_RR:
      due = F64[gf(S.next_due)]!;
      break;
    default: {
      const pos = I32[g(S.plan_pos)]!;
      due = pos < I32[g(S.plan_len)]! ? I32[planEntry(pos) + E_STEP]! : Number.POSITIVE_INFINITY;
    }
  }
  return Math.min(Math.max(due, now + 1), F64[gf(S.step_cap)]!);
}

/*** Decisions and the token ***/

function record(now: number, cpu: number, mask: Cpumask, why: number, local: number): void {
  const n = I32[g(S.log_len)]!;
  if (n >= SCHED_LOG_CAP) {
    I32[g(S.log_lost)]!++;
    return;
  }
  writeEntry((sched_log.base >> 2) + n * DECISION_WORDS, now, cpu, mask.lo, mask.hi, why, local);
  I32[g(S.log_len)] = n + 1;
}

/**
 * One decision of the token holder. Returns the points until the strategy's
 * next own decision once this CPU runs again (possibly after a switch).
 */
function decide(why: number): number {
  const now = globalNow();
  if (now >= F64[gf(S.step_cap)]!) livelock(now);
  const mask = runnableMask();
  const next = pick(why, now, mask);
  if (next === me) return resumeGap(now);
  if (next < 0) {
    if (why === WHY_DONE && allDone()) {
      F64[gf(S.steps)] = now;
      Atomics.store(I32, g(S.token), -1);
      return 0;
    }
    deadlock(now);
  }
  record(now, next, mask, why, schedPointCount());
  F64[gf(S.switches)]!++;
  if (mask.has(me) && why !== WHY_YIELD) F64[gf(S.preemptions)]!++;
  if (I32[g(S.strategy)] === STRAT_RR) F64[gf(S.next_due)] = now + I32[g(S.quantum)]!;
  F64[gf(S.steps)] = now;
  if (I32[cpuField(me, C.state)] === RUNNING) I32[cpuField(me, C.state)] = RUNNABLE;
  switchOut();
  handoff(next);
  if (why === WHY_DONE) return 0;
  awaitToken();
  return resumeGap(F64[gf(S.steps)]!);
}

function allDone(): boolean {
  for (let cpu = 0; cpu < nrCpus; cpu++) {
    const st = I32[cpuField(cpu, C.state)]!;
    if (st !== IDLE && st !== DONE) return false;
  }
  return true;
}

/** This CPU (again) holds the token at global step `now`: restart its clocks. */
function resumeGap(now: number): number {
  baseLocal = schedPointCount();
  baseGlobal = now;
  I32[cpuField(me, C.state)] = RUNNING;
  if (I32[g(S.strategy)] === STRAT_LOCAL) return Math.max(1, Math.min(localGap(), F64[gf(S.step_cap)]! - now));
  return Math.max(1, nextDue(now) - now);
}

function handoff(next: number): void {
  I32[cpuField(next, C.state)] = RUNNING;
  Atomics.store(I32, g(S.token), next);
  const wk = cpuField(next, C.wake);
  Atomics.add(I32, wk, 1);
  Atomics.notify(I32, wk);
}

/** Waits until this CPU holds the token: spins while the CPUs fit on the cores, then sleeps on its wake word. */
function awaitToken(): void {
  const tok = g(S.token);
  const wk = cpuField(me, C.wake);
  for (let i = 0; ; i++) {
    if (Atomics.load(I32, tok) === me) return;
    if (i < tokenSpins) continue;
    if (machineStopping()) throw new MachineStopped();
    const v = Atomics.load(I32, wk);
    if (Atomics.load(I32, tok) === me) return;
    // A handoff bumps the wake word after it stored the token: waiting on the old value cannot miss it.
    Atomics.wait(I32, wk, v, 50);
  }
}

function livelock(now: number): never {
  I32[g(S.verdict)] = VERDICT_LIVELOCK;
  const text = `livelock: ${now} steps reached the step cap without the run finishing (CPU${me} running)`;
  reportBug("sched", text);
  throw new KernelBug(text);
}

/**
 * What lockdep knows of held locks, for the deadlock report. Lockdep sits a
 * floor above the scheduler (src/locks/lockdep.ts) and registers this at load.
 */
export interface HeldLocksView {
  /** Is lockdep tracking locks on this thread's machine? */
  lockdepOn(): boolean;
  /** The CPUs whose held stack has `lock`. */
  lockHolders(lock: number): number[];
  /** The class of `lock` in `cpu`'s held stack ("?" when it is not there). */
  heldClassOf(cpu: number, lock: number): string;
  /** The classes `cpu` holds, outermost first. */
  heldLocksOf(cpu: number): string[];
}

let heldLocks: HeldLocksView | null = null;

/** Lockdep registers its view of held locks (once, at module load). */
export function registerHeldLocksView(view: HeldLocksView): void {
  heldLocks = view;
}

/** No CPU can run: name each CPU's wait and held locks (lockdep's "Possible deadlock" in spirit). */
function deadlock(now: number): never {
  I32[g(S.verdict)] = VERDICT_DEADLOCK;
  const lockdep = heldLocks?.lockdepOn() ? heldLocks : null;
  const lines: string[] = [];
  for (let cpu = 0; cpu < nrCpus; cpu++) {
    const st = I32[cpuField(cpu, C.state)]!;
    if (st !== BLOCKED) continue;
    const lock = I32[cpuField(cpu, C.wait_lock)]!;
    const describe = describers[I32[cpuField(cpu, C.wait_describe)]!];
    const holders = lockdep ? lockdep.lockHolders(lock) : [];
    const what =
      describe !== undefined
        ? describe(lock)
        : holders.length > 0
          ? `${lockdep!.heldClassOf(holders[0]!, lock)} held by CPU#${holders.join(", CPU#")}`
          : `the word at 0x${lock.toString(16)}`;
    const held = lockdep ? lockdep.heldLocksOf(cpu).join(", ") || "(none)" : "(lockdep off)";
    lines.push(`  CPU#${cpu} waits for ${what}; holds: ${held}`);
  }
  const text = `deadlock at step ${now}: no CPU can run\n${lines.join("\n")}`;
  reportBug("sched", text);
  throw new KernelBug(text);
}

/*** The CPU side: entering and leaving a deterministic call, waiting, waking ***/

/**
 * Describers of what a blocked CPU waits for ("vmap_area_lock, held by
 * CPU#1 …"), registered at module load — in the same order on every thread,
 * so an id means the same function on the CPU that reports the deadlock.
 */
const describers: ((lock: number) => string)[] = [];

/** Registers a describer (at module load only); returns its id for {@link sched_wait}. */
export function waitDescriber(fn: (lock: number) => string): number {
  describers.push(fn);
  return describers.length - 1;
}

/**
 * A CPU starts a workload call: in deterministic mode it joins the run and
 * waits for the token; the last CPU to arrive takes the first decision.
 */
export function schedRunBegin(): void {
  schedDeterministic = I32[g(S.on)] !== 0;
  if (!schedDeterministic) return;
  me = smp_processor_id();
  nrCpus = theArena().config.cpus;
  tokenSpins = nrCpus <= availableParallelism() ? 200_000 : 64;
  I32[cpuField(me, C.state)] = RUNNABLE;
  if (Atomics.add(I32, g(S.arrived), 1) + 1 === I32[g(S.expected)]) {
    // Every CPU of the call is here: the runnable set is complete and the choice deterministic.
    const now = F64[gf(S.steps)]!;
    const mask = runnableMask();
    const first = pick(WHY_START, now, mask);
    if (first < 0) deadlock(now);
    // Which CPU arrived last is the host's doing: a start records no sched-point count.
    record(now, first, mask, WHY_START, -1);
    handoff(first);
  }
  awaitToken();
  setSchedDetHook(onDue, resumeGap(F64[gf(S.steps)]!));
}

/** The strategy's own point (the sched-point hook). */
function onDue(_kind: SP): number {
  return decide(WHY_DUE);
}

/** The workload returned: this CPU is done and hands the token on. */
export function schedRunEnd(): void {
  if (!schedDeterministic) return;
  setSchedDetHook(null);
  I32[cpuField(me, C.state)] = DONE;
  decide(WHY_DONE);
  schedDeterministic = false;
}

/** The workload failed (or the machine stopped): leave the run and wake every CPU so they see the stop. */
export function schedRunAbort(): void {
  if (!schedDeterministic) return;
  setSchedDetHook(null);
  schedDeterministic = false;
  I32[cpuField(me, C.state)] = DONE;
  for (let cpu = 0; cpu < nrCpus; cpu++) {
    const wk = cpuField(cpu, C.wake);
    Atomics.add(I32, wk, 1);
    Atomics.notify(I32, wk);
  }
}

/*
 * rcu_note_context_switch, from src/rcu/rcupdate.ts (a floor above) once it
 * has loaded: a CPU about to block reports a quiescent state, as __schedule
 * does in the kernel.
 */
let noteContextSwitch = (): void => {};

/** What a CPU notes as it hands the token on (KCSAN keeps its call chain): nothing by default. */
let switchOut = (): void => {};

/** KCSAN (src/sched/kcsan.ts) registers its note of a switch, once, at module load. */
export function registerSwitchOut(fn: () => void): void {
  switchOut = fn;
}

/** RCU hands the scheduler its rcu_note_context_switch (once, at module load). */
export function registerContextSwitchNote(fn: () => void): void {
  noteContextSwitch = fn;
}

/**
 * futex-style wait on I32[w] while it still holds `v`. Free mode: Atomics.wait
 * for at most `ms`. Deterministic mode: this CPU blocks, the token moves on,
 * and it runs again only once the word changed — a wait loop therefore never
 * spins. `lock` (default: the word's own address) is what a deadlock report
 * names, through the {@link waitDescriber} `describe` when one is given.
 * Blocking is a context switch: RCU hears of it first (outside a read-side
 * section it is a quiescent state, so a blocked CPU holds no grace period).
 */
export function sched_wait(w: number, v: number, ms: number, lock = w << 2, describe = -1): void {
  noteContextSwitch();
  if (!schedDeterministic) {
    Atomics.wait(I32, w, v, ms);
    return;
  }
  if (Atomics.load(I32, w) !== v) return;
  I32[cpuField(me, C.state)] = BLOCKED;
  I32[cpuField(me, C.wait_w)] = w;
  I32[cpuField(me, C.wait_v)] = v;
  I32[cpuField(me, C.wait_lock)] = lock;
  I32[cpuField(me, C.wait_describe)] = describe;
  schedDetRearm(decide(WHY_BLOCK));
}

/**
 * The other half: I32[w] changed for waiters. Free mode: Atomics.notify.
 * Deterministic mode under PCT: a woken waiter of higher priority than this
 * CPU runs at the next sched point, as strict priority scheduling requires.
 */
export function sched_wake(w: number, count = Number.POSITIVE_INFINITY): void {
  Atomics.notify(I32, w, count);
  if (!schedDeterministic || I32[g(S.strategy)] !== STRAT_PCT) return;
  const mine = I32[cpuField(me, C.prio)]!;
  for (let cpu = 0; cpu < nrCpus; cpu++)
    if (
      I32[cpuField(cpu, C.state)] === BLOCKED &&
      I32[cpuField(cpu, C.wait_w)] === w &&
      I32[cpuField(cpu, C.prio)]! > mine
    ) {
      schedDetRearm(1);
      return;
    }
}

/**
 * A wait whose condition spans many words (a grace period's quiescent
 * states): in deterministic mode let another runnable CPU run first; free
 * mode does nothing.
 */
export function sched_yield(): void {
  if (schedDeterministic) schedDetRearm(decide(WHY_YIELD));
}

/*** The main thread: setting up a deterministic run and reading its record ***/

/** A strategy and its parameters. */
export type Strategy =
  | { readonly kind: "random"; readonly p: number }
  | { readonly kind: "pct"; readonly depth: number; readonly steps: number }
  | { readonly kind: "rr"; readonly quantum: number }
  | { readonly kind: "replay"; readonly plan: readonly Decision[]; readonly continueRandom?: boolean }
  | { readonly kind: "guided"; readonly plan: readonly Decision[] }
  | { readonly kind: "local"; readonly plan: readonly Decision[] };

/**
 * One logged decision: at global `step`, `cpu` got the token; `mask` (CPUs
 * 0–31, bit i: CPU i) and `maskHi` (CPUs 32–63) were runnable; `local` is
 * the sched-point count of the CPU that decided (the preempted one, for a
 * preemption) since the run began.
 */
export interface Decision {
  readonly step: number;
  readonly cpu: number;
  /** CPUs 0–31 of the runnable set, unsigned. */
  readonly mask: number;
  readonly why: number;
  readonly local: number;
  /** CPUs 32–63 of the runnable set (bit i: CPU 32 + i), unsigned; absent when none of them was runnable. */
  readonly maskHi?: number;
}

/** A decision's runnable set as one 64-bit integer (harness code: replay files, the exhaustive search, the shrinker). */
export function decisionMask(d: Decision): bigint {
  return (BigInt(d.maskHi ?? 0) << 32n) | BigInt(d.mask >>> 0);
}

/** `d` with the runnable set `m` (a 64-bit integer): maskHi only when it holds one of CPUs 32–63. */
export function withMask(d: Decision, m: bigint): Decision {
  const hi = Number((m >> 32n) & 0xffffffffn);
  const out = { step: d.step, cpu: d.cpu, mask: Number(m & 0xffffffffn), why: d.why, local: d.local };
  return hi === 0 ? out : { ...out, maskHi: hi };
}

/** Settings of a deterministic run. */
export interface SchedSetup {
  readonly strategy: Strategy;
  /** Seeds the strategy's own random choices (priorities, change points, switch draws). */
  readonly seed: number;
  /** Steps after which the run is a livelock. */
  readonly stepCap: number;
}

/** What the PCT strategy drew (printed by explore: n, k, d and the bound). */
export interface PctDraw {
  readonly priorities: number[];
  readonly changeSteps: number[];
}

/**
 * Main thread, CPUs parked: arms deterministic mode for the calls that follow
 * (a scenario's phases share one clock and log). Returns PCT's draw.
 */
export function schedSetup(s: SchedSetup): PctDraw | null {
  const cpus = theArena().config.cpus;
  if (cpus > SCHED_MAX_CPUS) throw new RangeError(`deterministic mode covers at most ${SCHED_MAX_CPUS} CPUs`);
  const words = SCHED_DET.size >> 2;
  I32.fill(0, g(0), g(0) + words);
  I32[g(S.on)] = 1;
  I32[g(S.token)] = -1;
  F64[gf(S.step_cap)] = s.stepCap;
  seedRng(s.seed);
  let draw: PctDraw | null = null;
  for (let cpu = 0; cpu < cpus; cpu++) I32[cpuField(cpu, C.prio)] = 0;
  const st = s.strategy;
  switch (st.kind) {
    case "random":
      I32[g(S.strategy)] = STRAT_RANDOM;
      F64[gf(S.prob)] = st.p;
      F64[gf(S.next_due)] = geometricGap();
      break;
    case "pct":
      I32[g(S.strategy)] = STRAT_PCT;
      draw = pctDraw(cpus, st.depth, st.steps);
      break;
    case "rr":
      I32[g(S.strategy)] = STRAT_RR;
      I32[g(S.quantum)] = st.quantum;
      F64[gf(S.next_due)] = st.quantum;
      break;
    case "replay":
    case "guided": {
      I32[g(S.strategy)] = st.kind === "replay" ? STRAT_REPLAY : STRAT_GUIDED;
      I32[g(S.continue_random)] = st.kind === "replay" && st.continueRandom ? 1 : 0;
      F64[gf(S.prob)] = 0.05;
      F64[gf(S.next_due)] = Number.POSITIVE_INFINITY;
      if (st.plan.length > SCHED_LOG_CAP) throw new RangeError(`a plan holds at most ${SCHED_LOG_CAP} decisions`);
      const base = sched_plan.base >> 2;
      st.plan.forEach((d, i) => {
        writePlanEntry(base + i * DECISION_WORDS, d);
      });
      I32[g(S.plan_len)] = st.plan.length;
      break;
    }
    case "local":
      I32[g(S.strategy)] = STRAT_LOCAL;
      setupLocalPlan(st.plan, cpus);
      break;
  }
  return draw;
}

function writePlanEntry(e: number, d: Decision): void {
  writeEntry(e, d.step, d.cpu, d.mask, d.maskHi ?? 0, d.why, d.local);
}

/**
 * STRAT_LOCAL's plan: the preemptions of a recording, each with the CPU it
 * preempted (the token holder before it), grouped by that CPU in its order;
 * then the other decisions (starts, blocks, finishes, yields) in their order,
 * from plan_pos to plan_len.
 */
function setupLocalPlan(plan: readonly Decision[], cpus: number): void {
  const byCpu: Decision[][] = Array.from({ length: cpus }, () => []);
  const others: Decision[] = [];
  let holder = -1;
  for (const d of plan) {
    if (d.why !== WHY_DUE) others.push(d);
    else if (holder >= 0 && holder < cpus) byCpu[holder]!.push(d);
    holder = d.cpu;
  }
  const base = sched_plan.base >> 2;
  let n = 0;
  byCpu.forEach((ds, cpu) => {
    I32[cpuField(cpu, C.plan_next)] = n;
    for (const d of ds) writePlanEntry(base + n++ * DECISION_WORDS, d);
    I32[cpuField(cpu, C.plan_end)] = n;
  });
  I32[g(S.plan_pos)] = n;
  for (const d of others) writePlanEntry(base + n++ * DECISION_WORDS, d);
  I32[g(S.plan_len)] = n;
}

function seedRng(seed: number): void {
  // splitmix32 of the seed, as src/shared/prng.ts seeds its streams.
  let s = seed >>> 0;
  const r = g(S.rng);
  for (let i = 0; i < 4; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    U32[r + i] = (z ^ (z >>> 16)) >>> 0;
  }
  for (let i = 0; i < 12; i++) detRandom();
}

/** PCT (Burckhardt et al. 2010): distinct priorities d..d+n−1, and d−1 change points over k steps. */
function pctDraw(cpus: number, depth: number, steps: number): PctDraw {
  if (depth < 1 || depth > PCT_MAX_DEPTH) throw new RangeError(`PCT depth must be in 1..${PCT_MAX_DEPTH}`);
  const order = Array.from({ length: cpus }, (_, i) => i);
  for (let i = cpus - 1; i > 0; i--) {
    const j = Math.floor(detRandom() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const priorities = new Array<number>(cpus);
  order.forEach((cpu, rank) => {
    priorities[cpu] = depth + rank;
    I32[cpuField(cpu, C.prio)] = depth + rank;
  });
  const k = Math.max(1, Math.floor(steps));
  const points: { step: number; prio: number }[] = [];
  for (let i = 1; i < depth; i++) points.push({ step: 1 + Math.floor(detRandom() * k), prio: depth - i });
  points.sort((a, b) => a.step - b.step);
  points.forEach((p, i) => {
    F64[gf(S.change_step) + i] = p.step;
    I32[g(S.change_prio) + i] = p.prio;
  });
  I32[g(S.nr_change)] = points.length;
  return { priorities, changeSteps: points.map((p) => p.step) };
}

/** Main thread, before each workload call of a deterministic run: `cpus` CPUs will join it. */
export function schedPrepareCall(cpus: number): void {
  const n = theArena().config.cpus;
  for (let cpu = 0; cpu < n; cpu++) I32[cpuField(cpu, C.state)] = IDLE;
  I32[g(S.arrived)] = 0;
  I32[g(S.expected)] = cpus;
  Atomics.store(I32, g(S.token), -1);
}

/** Main thread: leaves deterministic mode (the next calls run free). */
export function schedOff(): void {
  I32[g(S.on)] = 0;
}

/** True when the main thread armed deterministic mode. */
export function schedIsOn(): boolean {
  return I32[g(S.on)] !== 0;
}

/** The record of a deterministic run so far. */
export interface SchedRecord {
  readonly decisions: Decision[];
  readonly steps: number;
  readonly switches: number;
  readonly preemptions: number;
  /** Decisions that did not fit the log: such a run cannot be replayed. */
  readonly lost: number;
  /** Guided plans: entries that no longer applied. */
  readonly skipped: number;
  readonly verdict: number;
  /** Replays: recorded decisions the run never reached (it ended early: a divergence). */
  readonly planLeft: number;
}

/** Main thread, CPUs parked: the decisions and counters of the run. */
export function schedRecord(): SchedRecord {
  const n = I32[g(S.log_len)]!;
  const base = sched_log.base >> 2;
  const decisions: Decision[] = [];
  for (let i = 0; i < n; i++) {
    const e = base + i * DECISION_WORDS;
    const d = {
      step: I32[e + E_STEP]!,
      cpu: entryCpu(e),
      mask: U32[e + E_MASK]!,
      why: entryWhy(e),
      local: I32[e + E_LOCAL]!,
    };
    const hi = U32[e + E_MASK + 1]!;
    // A machine of at most 32 CPUs records what it always did: the same five fields, in the same order.
    decisions.push(hi === 0 ? d : { ...d, maskHi: hi });
  }
  return {
    decisions,
    steps: F64[gf(S.steps)]!,
    switches: F64[gf(S.switches)]!,
    preemptions: F64[gf(S.preemptions)]!,
    lost: I32[g(S.log_lost)]!,
    skipped: I32[g(S.plan_skipped)]!,
    verdict: I32[g(S.verdict)]!,
    planLeft: I32[g(S.plan_len)]! - I32[g(S.plan_pos)]!,
  };
}
