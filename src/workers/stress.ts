/**
 * The stress runner behind `vmsim stress`: N CPUs run the seeded random mix
 * of every vmalloc API (src/workers/workloads/vmalloc_mix.ts: vmalloc family,
 * vmap, vm_map_ram, get_vm_area, vread/vwrite through the page tables,
 * vfree from hardirq context and from other CPUs, purges, RCU readers of
 * vmap_area_list) with stutter (src/sched/stutter.ts) and page-allocation
 * fault injection (src/mm/fail_page_alloc.ts), in rounds:
 *
 *   boot → request the mix's irq → start the mix on every CPU → snapshot memory
 *   → fail_page_alloc on → rounds { every CPU runs until the round's deadline or
 *     its op quota, parks; the main thread checks every invariant (src/check),
 *     after every round while the checks take at most a tenth of the run }
 *   → fail_page_alloc off → drain every CPU → finish (deferred vfrees, purges,
 *     rcu_barrier) → check → leak check (src/check/leak.ts)
 *
 * A failed check, a BUG (a CPU threw) or a kernel report (WARN, lockdep,
 * fault, stale-tlb …) ends the run with a report: the invariant, the last
 * events of each CPU (src/shared/events.ts — a snapshot taken at the first
 * report or BUG, else the rings as the CPUs parked), the seed and the command
 * that reruns it. Under fault injection an allocation failure — and the
 * warn_alloc report it prints — is an expected result, counted, not a
 * violation; its fail path must still free everything, which the leak check
 * at the end verifies.
 *
 * The seed fixes every CPU's operation stream, its stutter and its injected
 * failures; the interleaving of the CPUs is the OS's (free mode), so a rerun
 * explores the same operations under new interleavings.
 */
import { machineStop } from "../shared/arena.js";
import { type MachineConfig, makeConfig } from "../shared/config.js";
import {
  TRACE_RING_SIZE,
  isAllocFailureReport,
  lastEvents,
  set_snapshot_on_warning,
  tracingSnapshotTaken,
} from "../shared/events.js";
import { type Report, takeReports } from "../shared/report.js";
import { kstat_cpu_irqs_sum } from "../kernel/irq.js";
import { setup_fail_page_alloc } from "../mm/fail_page_alloc.js";
import { checkMachine } from "../check/index.js";
import { type LeakSummary, leakCheck, memorySnapshot } from "../check/leak.js";
import {
  STRESS_DEFAULT_DURATION_MS,
  STRESS_MACHINE_OPTIONS,
  STRESS_OPTIONS,
  type StressCliOptions,
  commandLineOf,
} from "../cli/options.js";
import { plural } from "../cli/format.js";
import { MIX_OPS, type VmallocMixResult, maxLiveFor } from "./workloads/vmalloc_mix.js";
import { Machine, MachineError } from "./machine.js";

/** Length of a round: CPUs run this long between two stop-the-world checks. */
export const STRESS_ROUND_MS = 250;
/** The checks between rounds may take this share of the workload time: a slow check runs after fewer rounds. */
const CHECK_SHARE = 0.1;
/** Kernel reports kept in a result (all are counted). */
const MAX_REPORTS = 20;

/** How a stress run is bounded and what it turns on. Every field is optional. */
export interface StressOptions {
  /** Workload time after which the run ends. @defaultValue 10 s when `ops` is absent, else no limit */
  readonly durationMs?: number;
  /** Operations after which the run ends, all CPUs together (each CPU runs its share). @defaultValue no limit */
  readonly ops?: number;
  /** Percent of page allocations fail_page_alloc fails, an integer 0..100. @defaultValue 0 */
  readonly failPageAlloc?: number;
  /** Chance per operation of a stutter pause inside it, 0..1. @defaultValue 0.01 */
  readonly stutter?: number;
  /** Chance per operation of an RCU walk of vmap_area_list, 0..1. @defaultValue 0.01 */
  readonly rcuWalk?: number;
  /** Events of each CPU a violation report shows (at most the ring's 256). @defaultValue 32 */
  readonly events?: number;
  /** Called after every round (and once at the end) with the progress so far: the CLI's progress bar. */
  readonly onProgress?: (p: StressProgress) => void;
  /**
   * Called with every CPU parked after each round, before its check — a test
   * corrupts the arena here to see the report path. Kernel code it runs
   * runs on the main thread as CPU 0.
   */
  readonly afterRound?: (round: number) => void;
  /** Aborting ends the run after the current round; the cleanup and the leak check still run. */
  readonly signal?: AbortSignal;
}

/** Where a run stands, after a round. */
export interface StressProgress {
  readonly ops: number;
  readonly elapsedMs: number;
  readonly opsPerSec: number;
  /** Violations and failing kernel reports so far. */
  readonly violations: number;
  /** Done share of the run's bound (the nearer of duration and ops), 0..1. */
  readonly fraction: number;
}

/** One CPU's share of a run. */
export interface StressCpuResult {
  readonly cpu: number;
  readonly ops: number;
  readonly opsPerSec: number;
  /** Interrupts the CPU took. */
  readonly irqs: number;
}

/** What runStress resolves to: plain JSON data (the CLI prints it after `SUMMARY `). */
export interface StressResult {
  readonly command: "stress";
  /** No violation, no failing kernel report, no leak. */
  readonly ok: boolean;
  readonly seed: number;
  readonly config: MachineConfig;
  /** The options in force, defaults filled in (null: no such bound). */
  readonly options: {
    readonly durationMs: number | null;
    readonly ops: number | null;
    readonly failPageAlloc: number;
    readonly stutter: number;
    readonly rcuWalk: number;
  };
  /** Operations run, all CPUs (the drain's frees not counted). */
  readonly ops: number;
  readonly opsPerSec: number;
  /** Workload time (the checks between rounds excluded). */
  readonly durationMs: number;
  readonly rounds: number;
  /** Invariant checks run: between rounds and after the cleanup. */
  readonly checks: number;
  readonly perCpu: readonly StressCpuResult[];
  /** Calls of each API of the mix (and its checks: "mmu read" …), all CPUs. */
  readonly apis: Readonly<Record<string, number>>;
  /** Allocations that returned NULL (expected under fault injection). */
  readonly allocFailures: number;
  /** Allocation-failure warnings (warn_alloc …) counted as expected results of fault injection. */
  readonly expectedReports: number;
  /** Each failed invariant (or BUG), one line, with when it was found. */
  readonly violations: readonly string[];
  /** Kernel reports that fail the run (the first MAX_REPORTS), and how many there were. */
  readonly reports: readonly Report[];
  readonly nrReports: number;
  /** The page accounting after the cleanup; null when the run failed before it. */
  readonly leak: LeakSummary | null;
  /** True when the signal ended the run early. */
  readonly interrupted: boolean;
  /** The command line that reruns this run. */
  readonly rerun: string;
  /** The violation report (empty when ok): the invariant, each CPU's last events, the seed, the rerun command. */
  readonly report: readonly string[];
}

/** The options with their defaults, as the CLI flags carry them. */
function resolve(opts: StressOptions): StressCliOptions {
  const d = STRESS_OPTIONS;
  const ops = opts.ops ?? null;
  return {
    durationMs: opts.durationMs ?? null,
    ops,
    failPageAlloc: opts.failPageAlloc ?? d.failPageAlloc.defaultValue,
    stutter: opts.stutter ?? d.stutter.defaultValue,
    rcuWalk: opts.rcuWalk ?? d.rcuWalk.defaultValue,
    json: false,
  };
}

function validate(o: StressCliOptions): void {
  if (o.durationMs !== null && !(o.durationMs > 0)) throw new RangeError(`durationMs must be > 0, got ${o.durationMs}`);
  if (o.ops !== null && !(Number.isSafeInteger(o.ops) && o.ops > 0))
    throw new RangeError(`ops must be a positive integer, got ${o.ops}`);
  if (!(Number.isInteger(o.failPageAlloc) && o.failPageAlloc >= 0 && o.failPageAlloc <= 100))
    throw new RangeError(`failPageAlloc must be an integer percent 0..100, got ${o.failPageAlloc}`);
  for (const [k, v] of [
    ["stutter", o.stutter],
    ["rcuWalk", o.rcuWalk],
  ] as const)
    if (!(v >= 0 && v <= 1)) throw new RangeError(`${k} must be a probability in 0..1, got ${v}`);
}

/** The command line that reruns a stress run of `config` with `o`. */
export function stressCommandLine(config: MachineConfig, o: StressCliOptions): string {
  return [
    "vmsim",
    "stress",
    ...commandLineOf(STRESS_MACHINE_OPTIONS, config),
    ...commandLineOf(STRESS_OPTIONS, { ...o, json: false }),
  ].join(" ");
}

/**
 * Boots a machine of `config`, stresses it as `opts` says, shuts it down and
 * resolves to the result — never rejects for what the run finds (a BUG, a
 * report, a violation, a leak: `ok` is false and `report` says why); rejects
 * with RangeError on bad options, and on harness errors.
 */
export async function runStress(config: MachineConfig, opts: StressOptions = {}): Promise<StressResult> {
  const c = makeConfig(config);
  const o = resolve(opts);
  validate(o);
  const durationMs = o.durationMs ?? (o.ops === null ? STRESS_DEFAULT_DURATION_MS : null);
  const rerun = stressCommandLine(c, o);
  // Reports this thread raised before (another machine's) are not this run's.
  takeReports();
  const m = await Machine.boot(c);
  const run = new StressRun(m, o, durationMs, rerun, opts);
  try {
    await run.go();
  } finally {
    await m.shutdown();
  }
  return run.result();
}

/** One run's state: the rounds, the counters, what was found. */
class StressRun {
  private readonly cpuCounts: number[][];
  private readonly cpuOps: number[];
  /** Each CPU's remaining op quota; null without an ops bound. */
  private readonly quota: number[] | null;
  private elapsed = 0;
  /** Time spent in the checks between rounds. */
  private checkMs = 0;
  private rounds = 0;
  private checks = 0;
  private interrupted = false;
  private readonly violations: string[] = [];
  private readonly failing: Report[] = [];
  private nrFailing = 0;
  private expected = 0;
  private leak: LeakSummary | null = null;
  private events: string[][] = [];

  constructor(
    private readonly m: Machine,
    private readonly o: StressCliOptions,
    private readonly durationMs: number | null,
    private readonly rerun: string,
    private readonly opts: StressOptions,
  ) {
    const n = m.config.cpus;
    this.cpuCounts = Array.from({ length: n }, () => MIX_OPS.map(() => 0));
    this.cpuOps = Array.from({ length: n }, () => 0);
    const total = o.ops;
    this.quota =
      total === null ? null : Array.from({ length: n }, (_, cpu) => Math.floor(total / n) + (cpu < total % n ? 1 : 0));
  }

  private get ops(): number {
    return this.cpuOps.reduce((a, b) => a + b, 0);
  }

  private get failed(): boolean {
    return this.violations.length > 0 || this.nrFailing > 0;
  }

  /** Sorts reports (the CPUs' and the main thread's) into expected allocation failures and failures. */
  private takeReports(): void {
    for (const r of [...this.m.reports.splice(0), ...takeReports()]) {
      if (this.o.failPageAlloc > 0 && isAllocFailureReport(r.kind, r.text)) this.expected++;
      else {
        this.nrFailing++;
        if (this.failing.length < MAX_REPORTS) this.failing.push(r);
      }
    }
  }

  /** Takes the CPUs' counters; a workload round's ops count towards ops/s, the drain's do not. */
  private took(rs: unknown[], round: boolean): void {
    for (const [cpu, r] of (rs as VmallocMixResult[]).entries()) {
      this.cpuCounts[cpu] = r.counts;
      if (!round) continue;
      this.cpuOps[cpu]! += r.ops;
      if (this.quota !== null) this.quota[cpu]! -= r.ops;
    }
  }

  private done(): boolean {
    if (this.durationMs !== null && this.elapsed >= this.durationMs) return true;
    return this.quota?.every((q) => q <= 0) === true;
  }

  private progress(): void {
    const ops = this.ops;
    const byTime = this.durationMs === null ? 0 : this.elapsed / this.durationMs;
    const byOps = this.o.ops === null ? 0 : ops / this.o.ops;
    this.opts.onProgress?.({
      ops,
      elapsedMs: this.elapsed,
      opsPerSec: this.elapsed > 0 ? (ops * 1000) / this.elapsed : 0,
      violations: this.violations.length + this.nrFailing,
      fraction: Math.min(1, Math.max(byTime, byOps)),
    });
  }

  /** The events of every CPU, read now (CPUs parked or stopped). */
  private snapEvents(): void {
    const n = Math.min(this.opts.events ?? 32, TRACE_RING_SIZE);
    this.events = Array.from({ length: this.m.config.cpus }, (_, cpu) => lastEvents(cpu, n));
  }

  async go(): Promise<void> {
    const m = this.m;
    const config = m.config;
    const maxLive = maxLiveFor(config);
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
        if (this.opts.signal?.aborted) {
          this.interrupted = true;
          break;
        }
        const t0 = performance.now();
        const left =
          this.durationMs === null ? STRESS_ROUND_MS : Math.min(STRESS_ROUND_MS, this.durationMs - this.elapsed);
        const deadline = Date.now() + left;
        // A CPU looping without sched points (a corrupted tree walked forever) never parks and, holding no
        // lock, trips no soft lockup: twice the watchdog threshold past its deadline the round stops the
        // machine, and Machine's hard-lockup watchdog ends that CPU.
        const hardLockup = () => {
          this.violations.push(
            `round ${this.rounds + 1} did not end ${(2 * config.watchdogMs) / 1000} s after its deadline: a CPU stopped reaching sched points (hard lockup)`,
          );
          machineStop(-1);
        };
        const overrun = setTimeout(hardLockup, left + 2 * config.watchdogMs);
        const rs = await m
          .runAll("vmalloc_mix", (cpu: number) => ({
            ops: this.quota === null ? Number.MAX_SAFE_INTEGER : Math.max(0, this.quota[cpu]!),
            deadline,
            maxLive,
            rcuWalk: this.o.rcuWalk,
          }))
          .finally(() => clearTimeout(overrun));
        this.elapsed += performance.now() - t0;
        this.rounds++;
        this.took(rs, true);
        this.opts.afterRound?.(this.rounds);
        if (this.checkMs <= CHECK_SHARE * this.elapsed || this.done()) {
          const c0 = performance.now();
          const v = checkMachine();
          this.checkMs += performance.now() - c0;
          this.checks++;
          this.violations.push(...v.map((s) => `after round ${this.rounds}: ${s}`));
        }
        this.takeReports();
        this.progress();
        if (this.failed) break;
      }

      if (this.failed) {
        this.snapEvents();
        return;
      }
      setup_fail_page_alloc({ probability: 0 });
      this.took(await m.runAll("vmalloc_mix_drain"), false);
      await m.run(0, "vmalloc_mix_finish");
      const v = checkMachine();
      this.checks++;
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

  result(): StressResult {
    const config = this.m.config;
    const secs = this.elapsed / 1000;
    const rate = (n: number) => (secs > 0 ? Math.round(n / secs) : 0);
    const apis: Record<string, number> = {};
    for (const [i, name] of MIX_OPS.entries()) apis[name] = this.cpuCounts.reduce((a, c) => a + c[i]!, 0);
    const ok = !this.failed;
    const r: Omit<StressResult, "report"> = {
      command: "stress",
      ok,
      seed: config.seed,
      config,
      options: {
        durationMs: this.durationMs,
        ops: this.o.ops,
        failPageAlloc: this.o.failPageAlloc,
        stutter: this.o.stutter,
        rcuWalk: this.o.rcuWalk,
      },
      ops: this.ops,
      opsPerSec: rate(this.ops),
      durationMs: Math.round(this.elapsed),
      rounds: this.rounds,
      checks: this.checks,
      perCpu: this.cpuOps.map((n, cpu) => ({ cpu, ops: n, opsPerSec: rate(n), irqs: kstat_cpu_irqs_sum(cpu) })),
      apis,
      allocFailures: apis["allocation failed"] ?? 0,
      expectedReports: this.expected,
      violations: this.violations,
      reports: this.failing,
      nrReports: this.nrFailing,
      leak: this.leak,
      interrupted: this.interrupted,
      rerun: this.rerun,
    };
    return { ...r, report: ok ? [] : violationReport(r, this.events, tracingSnapshotTaken()) };
  }
}

/** The report of a failed run: what failed, each CPU's last events, the seed, the rerun command. */
function violationReport(r: Omit<StressResult, "report">, events: readonly string[][], snapshot: boolean): string[] {
  const out = [`vmsim stress: FAILED (seed ${r.seed}, ${plural(r.ops, "op")} in ${plural(r.rounds, "round")})`];
  for (const v of r.violations) out.push(v.startsWith("BUG: ") ? `  ${v}` : `  invariant: ${v}`);
  for (const rep of r.reports) {
    const [first, ...rest] = rep.text.split("\n");
    out.push(`  report: [CPU${rep.cpu}] ${rep.kind}: ${first}`, ...rest.map((l) => `    ${l}`));
  }
  if (r.nrReports > r.reports.length) out.push(`  … and ${r.nrReports - r.reports.length} more reports`);
  const when = snapshot ? "at the first report or BUG (snapshot)" : "when the CPUs parked";
  for (const [cpu, lines] of events.entries()) {
    out.push(`  last ${lines.length} events of CPU${cpu}, ${when}:`);
    for (const l of lines) out.push(`    ${l}`);
  }
  out.push(`  seed: ${r.seed}`, `  rerun: ${r.rerun}`);
  return out;
}
