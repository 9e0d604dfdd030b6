/**
 * The stress runner behind `vmsim stress`: N CPUs run the seeded random mix
 * of every vmalloc API (src/workers/workloads/vmalloc_mix.ts: vmalloc family,
 * vmap, vm_map_ram, get_vm_area, vread/vwrite through the page tables,
 * vfree from hardirq context and from other CPUs, purges, RCU readers of
 * vmap_area_list) with stutter (src/sched/stutter.ts) and page-allocation
 * fault injection (src/mm/fail_page_alloc.ts), in rounds checked between
 * rounds and after the cleanup — the mix driver (src/workers/mix_driver.ts)
 * that `vmsim run` runs with stutter and fault injection off.
 *
 * A failed check, a BUG or a kernel report ends the run with a report: the
 * invariant, the last events of each CPU, the seed and the command that
 * reruns it. Under fault injection an allocation failure — and the warn_alloc
 * report it prints — is an expected result, counted, not a violation; its
 * fail path must still free everything, which the leak check at the end
 * verifies.
 *
 * The seed fixes every CPU's operation stream, its stutter and its injected
 * failures; the interleaving of the CPUs is the OS's (free mode), so a rerun
 * explores the same operations under new interleavings.
 */
import { type KcsanCounter, kcsanCounters } from "../sched/kcsan.js";
import { type MachineConfig, makeConfig } from "../shared/config.js";
import { type Report, takeReports } from "../shared/report.js";
import type { LeakSummary } from "../check/leak.js";
import { type FlagTable, MACHINE_FLAGS, commandLineOf, formatDuration } from "./cmdline.js";
import {
  MIX_IRQ_RATE,
  type MixHooks,
  type MixOutcome,
  type MixProgress,
  driveMix,
  mixFailureReport,
  mixOk,
} from "./mix_driver.js";
import { Machine } from "./machine.js";
import { NO_MIX_WEIGHTS, normalizeMixWeights } from "./mix_weights.js";

/**
 * How a stress run is bounded and what it turns on, and the driver's hooks
 * (progress, abort, afterRound, atEndOfWorkload). Every field is optional.
 */
export interface StressOptions extends MixHooks {
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
  /** `--mix`: shares of operations the mix gives vm_unmap_aliases, purge_vmap_area_lazy, vread (src/workers/mix_weights.ts). @defaultValue "" */
  readonly mix?: string;
}

/** Where a run stands, after a round. */
export type StressProgress = MixProgress;

/** The settings of a stress run, defaults filled in (null: no such bound) — what its rerun command says. */
export interface StressSettings {
  /** How long the CPUs run; null: until `ops`, or STRESS_DEFAULT_DURATION_MS without it. @defaultValue null */
  readonly durationMs: number | null;
  /** Operations to run, all CPUs together; null: no limit but the duration. @defaultValue null */
  readonly ops: number | null;
  /** Percent of page allocations fail_page_alloc fails (its probability knob). @defaultValue 0 */
  readonly failPageAlloc: number;
  /** Chance per operation of a stutter pause inside it. @defaultValue 0.01 */
  readonly stutter: number;
  /** Chance per operation of an RCU walk of vmap_area_list. @defaultValue 0.01 */
  readonly rcuWalk: number;
  /** The mix's weighted operations, canonical (`vm_unmap_aliases=5%,vread=10%`); "": none. @defaultValue "" */
  readonly mix: string;
}

/** A stress run bounded by neither a duration nor an op count runs this long. */
export const STRESS_DEFAULT_DURATION_MS = 10_000;

/** The flags of the stress settings (the CLI's STRESS_OPTIONS adds help and parsers). */
export const STRESS_FLAGS: FlagTable<StressSettings> = {
  durationMs: {
    flags: "--duration <duration>",
    defaultValue: null,
    format: (ms) => (ms === null ? "none" : formatDuration(ms)),
  },
  ops: { flags: "--ops <n>", defaultValue: null, format: (n) => (n === null ? "none" : String(n)) },
  failPageAlloc: { flags: "--fail-page-alloc <percent>", defaultValue: 0 },
  stutter: { flags: "--stutter <p>", defaultValue: 0.01 },
  rcuWalk: { flags: "--rcu-walk <p>", defaultValue: 0.01 },
  mix: { flags: "--mix <op=P%,…>", defaultValue: NO_MIX_WEIGHTS },
};

/** The machine flags of `vmsim stress` and `vmsim run`: every machine's, with interrupts on by default. */
export const STRESS_MACHINE_FLAGS: FlagTable<MachineConfig> = {
  ...MACHINE_FLAGS,
  irqRate: { ...MACHINE_FLAGS.irqRate, defaultValue: MIX_IRQ_RATE },
};

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
  readonly options: StressSettings;
  /** Operations run, all CPUs (the drain's frees not counted); a failed run counts those it ran. */
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
  /** Kernel reports that fail the run (the first 20), and how many there were. */
  readonly reports: readonly Report[];
  readonly nrReports: number;
  /** The page accounting after the cleanup; null when the run failed before it. */
  readonly leak: LeakSummary | null;
  /** True when the signal ended the run early. */
  readonly interrupted: boolean;
  /** With --kcsan: KCSAN's counters at the end of the run (src/sched/kcsan.ts); null without. */
  readonly kcsan: Readonly<Record<KcsanCounter, number>> | null;
  /** The command line that reruns this run. */
  readonly rerun: string;
  /** The violation report (empty when ok): the invariant, each CPU's last events, the seed, the rerun command. */
  readonly report: readonly string[];
}

/** The options with their defaults. */
function resolve(opts: StressOptions): StressSettings {
  const d = STRESS_FLAGS;
  return {
    durationMs: opts.durationMs ?? d.durationMs.defaultValue,
    ops: opts.ops ?? d.ops.defaultValue,
    failPageAlloc: opts.failPageAlloc ?? d.failPageAlloc.defaultValue,
    stutter: opts.stutter ?? d.stutter.defaultValue,
    rcuWalk: opts.rcuWalk ?? d.rcuWalk.defaultValue,
    mix: normalizeMixWeights(opts.mix ?? d.mix.defaultValue),
  };
}

function validate(o: StressSettings): void {
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
export function stressCommandLine(config: MachineConfig, o: StressSettings): string {
  return ["vmsim", "stress", ...commandLineOf(STRESS_MACHINE_FLAGS, config), ...commandLineOf(STRESS_FLAGS, o)].join(
    " ",
  );
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
  const rerun = stressCommandLine(c, o);
  // Reports this thread raised before (another machine's) are not this run's.
  takeReports();
  const m = await Machine.boot(c);
  let outcome: MixOutcome;
  let kcsan: Record<KcsanCounter, number> | null = null;
  try {
    const durationMs = o.durationMs ?? (o.ops === null ? STRESS_DEFAULT_DURATION_MS : null);
    outcome = await driveMix(m, { ...o, durationMs }, opts);
    if (c.kcsan) {
      m.bind();
      kcsan = kcsanCounters();
    }
  } finally {
    await m.shutdown();
  }
  return stressResult(c, o, rerun, outcome, kcsan);
}

function stressResult(
  config: MachineConfig,
  o: StressSettings,
  rerun: string,
  x: MixOutcome,
  kcsan: Record<KcsanCounter, number> | null,
): StressResult {
  const secs = x.elapsedMs / 1000;
  const rate = (n: number) => (secs > 0 ? Math.round(n / secs) : 0);
  const ok = mixOk(x);
  return {
    command: "stress",
    ok,
    seed: config.seed,
    config,
    options: o,
    ops: x.ops,
    opsPerSec: rate(x.ops),
    durationMs: Math.round(x.elapsedMs),
    rounds: x.rounds,
    checks: x.roundChecks + (x.cleanedUp ? 1 : 0),
    perCpu: x.perCpu.map((c) => ({ cpu: c.cpu, ops: c.ops, opsPerSec: rate(c.ops), irqs: c.irqs })),
    apis: x.apis,
    allocFailures: x.apis["allocation failed"],
    expectedReports: x.expectedReports,
    violations: x.violations,
    reports: x.reports,
    nrReports: x.nrReports,
    leak: x.leak,
    interrupted: x.interrupted,
    kcsan,
    rerun,
    report: ok ? [] : mixFailureReport("vmsim stress", x, config.seed, rerun),
  };
}
