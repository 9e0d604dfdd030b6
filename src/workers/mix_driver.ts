/**
 * The driver of the vmalloc mix (src/workers/workloads/vmalloc_mix.ts) behind
 * `vmsim run` and `vmsim stress`: one loop, so both find the same bugs the
 * same way.
 *
 *   request the mix's irq → start the mix on every CPU (stutter on or off) →
 *   snapshot memory → fail_page_alloc on (stress) → rounds { every CPU runs
 *   until the round's deadline or its op quota, parks; the main thread checks
 *   every invariant (src/check) while the checks take at most a tenth of the
 *   workload time, and always after the last round } → atEndOfWorkload →
 *   fail_page_alloc off → drain every CPU → finish (deferred vfrees, purges,
 *   rcu_barrier) → check → leak check (src/check/leak.ts)
 *
 * A failed check, a BUG (a CPU threw, a soft or hard lockup) or a kernel
 * report (WARN, lockdep, fault, stale-tlb …) ends the rounds; the cleanup is
 * skipped (the machine is broken) and each CPU's last events are kept for the
 * report — a snapshot taken at the first report or BUG, else the rings as
 * the CPUs parked. Under fault injection an allocation failure and the
 * warn_alloc report it prints are expected results, counted, not failures.
 * The counters live in the arena, so a round that fails still counts the
 * operations and API calls it ran.
 */
import { machineStop } from "../shared/arena.js";
import { formatLimit, monotonicMs, watchdogLimit } from "../sched/watchdog_clock.js";
import {
  TRACE_RING_SIZE,
  isAllocFailureReport,
  lastEvents,
  set_snapshot_on_warning,
  tracingSnapshotTaken,
} from "../shared/events.js";
import { type Report, reportCountOf, takeReports } from "../shared/report.js";
import { kstat_cpu_irqs_sum } from "../kernel/irq.js";
import { setup_fail_page_alloc } from "../mm/fail_page_alloc.js";
import { checkMachine } from "../check/index.js";
import { type LeakSummary, leakCheck, memorySnapshot } from "../check/leak.js";
import { plural } from "./format.js";
import { MIX_OPS, type MixOp, maxLiveFor, mixCounters } from "./workloads/vmalloc_mix.js";
import { type Machine, MachineError } from "./machine.js";
import { NO_MIX_WEIGHTS, parseMixWeights } from "./mix_weights.js";

/** Length of a round: CPUs run this long between two stop-the-world checks. */
export const MIX_ROUND_MS = 250;
/** The checks between rounds may take this share of the workload time: a slow check runs after fewer rounds. */
const CHECK_SHARE = 0.1;
/** Kernel reports kept in an outcome (all are counted). */
const MAX_REPORTS = 20;
/** Events of each CPU kept for the report of a failed run, unless the caller says otherwise. */
const REPORT_EVENTS = 32;

/**
 * Interrupt rate of the machines `vmsim run` and `vmsim stress` boot unless
 * told otherwise: device interrupts on, so vfree from hardirq context takes
 * the deferred path.
 */
export const MIX_IRQ_RATE = 0.001;

/** How the mix runs and what it turns on. */
export interface MixSettings {
  /** Workload time after which the rounds end; null: only `ops` bounds the run. */
  readonly durationMs: number | null;
  /** Operations after which the rounds end, all CPUs together (each CPU runs its share); null: no limit. */
  readonly ops: number | null;
  /** Percent of page allocations fail_page_alloc fails during the rounds (0: off). */
  readonly failPageAlloc: number;
  /** Chance per operation of a stutter pause inside it (0: off). */
  readonly stutter: number;
  /** Chance per operation of an RCU walk of vmap_area_list. */
  readonly rcuWalk: number;
  /** The operations `--mix` weights ("": none; src/workers/mix_weights.ts). */
  readonly mix: string;
}

/** What the caller watches and where it steps in. Every field is optional. */
export interface MixHooks {
  /** Events of each CPU kept for the report of a failed run (at most the ring's 256). @defaultValue 32 */
  readonly events?: number;
  /** Aborting ends the rounds after the current one; the cleanup and the leak check still run. */
  readonly signal?: AbortSignal;
  /** Called after every round with the progress so far. */
  readonly onProgress?: (p: MixProgress) => void;
  /**
   * Called with every CPU parked after each round, before its check — a test
   * corrupts the arena here to see the report path. Kernel code it runs
   * runs on the main thread as CPU 0.
   */
  readonly afterRound?: (round: number) => void;
  /**
   * Called once with every CPU parked after the last round — whether its
   * check passed or not — before the drain and the cleanup: the address space
   * as the workload left it. Not called when a CPU failed (the machine stopped
   * in the middle of an operation). `failure`: the first violation or failing
   * report found in the rounds, null when they ran clean.
   */
  readonly atEndOfWorkload?: (failure: string | null) => void;
}

/** Where a run stands, after a round. */
export interface MixProgress {
  readonly ops: number;
  readonly elapsedMs: number;
  readonly opsPerSec: number;
  /** Violations and failing kernel reports so far. */
  readonly violations: number;
  /** Done share of the run's bound (the nearer of duration and ops), 0..1. */
  readonly fraction: number;
}

/** One CPU's share of a run. */
export interface MixCpuOutcome {
  readonly cpu: number;
  /** Operations its rounds ran (the drain's frees not counted). */
  readonly ops: number;
  /** Interrupts it took (kstat irqs_sum). */
  readonly irqs: number;
}

/** What a drive of the mix did and found. */
export interface MixOutcome {
  readonly perCpu: readonly MixCpuOutcome[];
  /** Operations of all CPUs. */
  readonly ops: number;
  /** Calls of each API of the mix (and its checks: "mmu read" …), all CPUs, the drain's included. */
  readonly apis: Readonly<Record<MixOp, number>>;
  /** Wall time the CPUs ran the rounds (the checks between rounds excluded), ms. */
  readonly elapsedMs: number;
  readonly rounds: number;
  /** Invariant checks run between rounds. */
  readonly roundChecks: number;
  /** True when the drain, the cleanup, its check and the leak check ran. */
  readonly cleanedUp: boolean;
  /** Each failed invariant (or BUG: …), one line, with when it was found. */
  readonly violations: readonly string[];
  /** Kernel reports that fail the run (the first MAX_REPORTS), and how many there were. */
  readonly reports: readonly Report[];
  readonly nrReports: number;
  /** Allocation-failure warnings counted as expected results of fault injection. */
  readonly expectedReports: number;
  /** The page accounting after the cleanup; null when the run failed before it. */
  readonly leak: LeakSummary | null;
  /** True when the signal ended the rounds early. */
  readonly interrupted: boolean;
  /** Each CPU's last events, when the run failed (else empty). */
  readonly events: readonly (readonly string[])[];
  /** The events were frozen at the first report or BUG (else: as the CPUs parked). */
  readonly eventsSnapshot: boolean;
}

/** True when the outcome holds no violation and no failing report. */
export function mixOk(o: MixOutcome): boolean {
  return o.violations.length === 0 && o.nrReports === 0;
}

/**
 * Drives the mix on a booted machine as `settings` say and resolves to what
 * it did and found; the caller shuts the machine down. Rejects only on
 * harness errors — a BUG, a report, a violation or a leak is in the outcome.
 */
export async function driveMix(m: Machine, settings: MixSettings, hooks: MixHooks = {}): Promise<MixOutcome> {
  if (settings.durationMs === null && settings.ops === null)
    throw new RangeError("a mix run needs a duration or an op count");
  const d = new MixDrive(m, settings, hooks);
  await d.go();
  return d.outcome();
}

/** One drive's state: the rounds, the counters, what was found. */
class MixDrive {
  /** Each CPU's share of `ops`; null without an ops bound. */
  private readonly share: number[] | null;
  private cpuOps: number[];
  private cpuCounts: (readonly number[])[];
  private elapsed = 0;
  /** Time spent in the checks between rounds. */
  private checkMs = 0;
  private rounds = 0;
  private roundChecks = 0;
  private cleanedUp = false;
  private interrupted = false;
  private readonly violations: string[] = [];
  private readonly failing: Report[] = [];
  private nrFailing = 0;
  private expected = 0;
  private leak: LeakSummary | null = null;
  private events: string[][] = [];

  constructor(
    private readonly m: Machine,
    private readonly o: MixSettings,
    private readonly hooks: MixHooks,
  ) {
    const n = m.config.cpus;
    this.cpuOps = Array.from({ length: n }, () => 0);
    this.cpuCounts = Array.from({ length: n }, () => MIX_OPS.map(() => 0));
    const total = o.ops;
    this.share =
      total === null ? null : Array.from({ length: n }, (_, cpu) => Math.floor(total / n) + (cpu < total % n ? 1 : 0));
  }

  private get ops(): number {
    return this.cpuOps.reduce((a, b) => a + b, 0);
  }

  private get failed(): boolean {
    return this.violations.length > 0 || this.nrFailing > 0;
  }

  /** Reads every CPU's counters from the arena (CPUs parked, or stopped after a failure). */
  private readCounters(): void {
    for (let cpu = 0; cpu < this.m.config.cpus; cpu++) {
      const c = mixCounters(cpu);
      this.cpuOps[cpu] = c.ops;
      this.cpuCounts[cpu] = c.counts;
    }
  }

  /** Sorts reports (the CPUs' and the main thread's) into expected allocation failures and failures. */
  private takeReports(): void {
    for (const r of [...this.m.reports.splice(0), ...takeReports()]) {
      if (this.o.failPageAlloc > 0 && isAllocFailureReport(r.kind, r.text)) this.expected += reportCountOf(r);
      else {
        this.nrFailing++;
        if (this.failing.length < MAX_REPORTS) this.failing.push(r);
      }
    }
  }

  private quotaLeft(cpu: number): number {
    return this.share === null ? Number.MAX_SAFE_INTEGER : Math.max(0, this.share[cpu]! - this.cpuOps[cpu]!);
  }

  private done(): boolean {
    if (this.o.durationMs !== null && this.elapsed >= this.o.durationMs) return true;
    return this.share !== null && this.cpuOps.every((_, cpu) => this.quotaLeft(cpu) === 0);
  }

  private progress(): void {
    const ops = this.ops;
    const byTime = this.o.durationMs === null ? 0 : this.elapsed / this.o.durationMs;
    const byOps = this.o.ops === null ? 0 : ops / this.o.ops;
    this.hooks.onProgress?.({
      ops,
      elapsedMs: this.elapsed,
      opsPerSec: this.elapsed > 0 ? (ops * 1000) / this.elapsed : 0,
      violations: this.violations.length + this.nrFailing,
      fraction: Math.min(1, Math.max(byTime, byOps)),
    });
  }

  /** The events of every CPU, read now (CPUs parked or stopped). */
  private snapEvents(): void {
    const n = Math.min(this.hooks.events ?? REPORT_EVENTS, TRACE_RING_SIZE);
    this.events = Array.from({ length: this.m.config.cpus }, (_, cpu) => lastEvents(cpu, n));
  }

  /** One round: every CPU runs until the deadline or its quota and parks. */
  private async round(maxLive: number): Promise<void> {
    const config = this.m.config;
    const left = this.o.durationMs === null ? MIX_ROUND_MS : Math.min(MIX_ROUND_MS, this.o.durationMs - this.elapsed);
    const deadline = monotonicMs() + left;
    // A CPU looping without sched points (a corrupted tree walked forever) never parks and never reaches
    // the soft-lockup check (src/sched/watchdog.ts): twice the watchdog threshold (scaled with the host's
    // load) past its deadline the round stops the machine, and Machine's hard-lockup watchdog ends that CPU.
    const hardLockup = () => {
      const late = monotonicMs() - deadline;
      const limit = watchdogLimit(2 * config.watchdogMs, config.cpus);
      if (late <= limit.ms) {
        overrun = setTimeout(hardLockup, limit.ms - late + 1);
        return;
      }
      this.violations.push(
        `round ${this.rounds + 1} did not end ${formatLimit(limit.ms)} after its deadline: a CPU stopped reaching sched points (hard lockup)${limit.note}`,
      );
      machineStop(-1);
    };
    let overrun = setTimeout(hardLockup, left + 2 * config.watchdogMs);
    const t0 = performance.now();
    try {
      await this.m.runAll("vmalloc_mix", (cpu: number) => ({
        ops: this.quotaLeft(cpu),
        deadline,
        maxLive,
        rcuWalk: this.o.rcuWalk,
        ...(this.o.mix === NO_MIX_WEIGHTS ? {} : { weights: parseMixWeights(this.o.mix) }),
      }));
    } finally {
      clearTimeout(overrun);
      this.elapsed += performance.now() - t0;
      this.rounds++;
      this.readCounters();
    }
  }

  async go(): Promise<void> {
    const m = this.m;
    const maxLive = maxLiveFor(m.config);
    try {
      // The first report that is not an allocation failure freezes every CPU's events.
      set_snapshot_on_warning(true);
      const irq = await m.run(0, "vmalloc_mix_irq", { on: true });
      if (irq !== 0) throw new Error(`request_irq for vmalloc_mix returned ${irq}`);
      await m.runAll("vmalloc_mix_start", { stutter: this.o.stutter });
      const start = memorySnapshot();
      // With every CPU parked, so each CPU's injected failures follow from the seed.
      if (this.o.failPageAlloc > 0) setup_fail_page_alloc({ probability: this.o.failPageAlloc, times: -1 });

      while (!this.done()) {
        if (this.hooks.signal?.aborted) {
          this.interrupted = true;
          break;
        }
        await this.round(maxLive);
        this.hooks.afterRound?.(this.rounds);
        if (this.checkMs <= CHECK_SHARE * this.elapsed || this.done()) {
          const c0 = performance.now();
          const v = checkMachine();
          this.checkMs += performance.now() - c0;
          this.roundChecks++;
          this.violations.push(...v.map((s) => `after round ${this.rounds}: ${s}`));
        }
        this.takeReports();
        this.progress();
        if (this.failed) break;
      }
      // The events first: the hook's own kernel calls would land in CPU 0's ring.
      if (this.failed) this.snapEvents();
      const first = this.failing[0];
      this.hooks.atEndOfWorkload?.(
        this.violations[0] ??
          (first !== undefined ? `[CPU${first.cpu}] ${first.kind}: ${first.text.split("\n")[0]}` : null),
      );
      if (this.failed) return;
      setup_fail_page_alloc({ probability: 0 });
      await m.runAll("vmalloc_mix_drain");
      await m.run(0, "vmalloc_mix_finish");
      this.readCounters();
      const v = checkMachine();
      this.cleanedUp = true;
      this.violations.push(...v.map((s) => `after the cleanup: ${s}`));
      const l = leakCheck(start, memorySnapshot());
      this.leak = l.summary;
      this.violations.push(...l.violations);
      this.takeReports();
      if (this.failed) this.snapEvents();
    } catch (e) {
      if (!(e instanceof MachineError)) throw e;
      this.violations.push(`BUG: ${e.message}`);
      this.takeReports();
      this.snapEvents();
    }
  }

  outcome(): MixOutcome {
    const apis = Object.fromEntries(
      MIX_OPS.map((name, i) => [name, this.cpuCounts.reduce((a, c) => a + c[i]!, 0)]),
    ) as Record<MixOp, number>;
    return {
      perCpu: this.cpuOps.map((ops, cpu) => ({ cpu, ops, irqs: kstat_cpu_irqs_sum(cpu) })),
      ops: this.ops,
      apis,
      elapsedMs: this.elapsed,
      rounds: this.rounds,
      roundChecks: this.roundChecks,
      cleanedUp: this.cleanedUp,
      violations: this.violations,
      reports: this.failing,
      nrReports: this.nrFailing,
      expectedReports: this.expected,
      leak: this.leak,
      interrupted: this.interrupted,
      events: this.events,
      eventsSnapshot: tracingSnapshotTaken(),
    };
  }
}

/**
 * The report of a failed run, for stderr: what failed, each CPU's last
 * events, the seed and the command that reruns it. `command` names the run
 * ("vmsim stress").
 */
export function mixFailureReport(command: string, o: MixOutcome, seed: number, rerun: string): string[] {
  const out = [`${command}: FAILED (seed ${seed}, ${plural(o.ops, "op")} in ${plural(o.rounds, "round")})`];
  for (const v of o.violations) out.push(v.startsWith("BUG: ") ? `  ${v}` : `  invariant: ${v}`);
  for (const rep of o.reports) {
    const [first, ...rest] = rep.text.split("\n");
    out.push(`  report: [CPU${rep.cpu}] ${rep.kind}: ${first}`, ...rest.map((l) => `    ${l}`));
  }
  if (o.nrReports > o.reports.length) out.push(`  … and ${o.nrReports - o.reports.length} more reports`);
  const when = o.eventsSnapshot ? "at the first report or BUG (snapshot)" : "when the CPUs parked";
  for (const [cpu, lines] of o.events.entries()) {
    out.push(`  last ${lines.length} events of CPU${cpu}, ${when}:`);
    for (const l of lines) out.push(`    ${l}`);
  }
  out.push(`  seed: ${seed}`, `  rerun: ${rerun}`);
  return out;
}
