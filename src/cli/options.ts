/**
 * Every command-line option, declared once in a typed table (vitest's CLI
 * style). A table is keyed by the config field it fills, so a field of
 * {@link MachineConfig} (or of a command's own options) that has no flag here
 * is a compile error, and the same table parses arguments, writes help and
 * turns a config back into the command line that reproduces it.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  KERNEL_VERSIONS,
  type KernelVersion,
  MAX_CPUS,
  MAX_KCSAN_SKIP_WATCH,
  KERNEL_FUNCTION_NAME,
  MAX_KCSAN_SKIP_REPORT,
  MAX_KCSAN_UDELAY,
  MAX_TRACE_EVENTS,
  type MachineConfig,
  SPINLOCK_KINDS,
  type SpinlockKind,
  isKernelVersion,
  parseSize,
} from "../shared/config.js";
import { LAYOUT_NAMES, type LayoutName, isLayoutName } from "../shared/layouts.js";
import { TEST_CASE_ARRAY, TEST_VMALLOC_CASES, type TestVmallocCase } from "../workers/workloads/test_vmalloc.js";
import { MIX_WEIGHTED_OPS, normalizeMixWeights } from "../workers/mix_weights.js";
import { INJECT_NAMES, type InjectName, isInjectName } from "../shared/inject.js";
import { BACKPORT_NAMES, type BackportName, isBackportName } from "../shared/backport.js";
import { PCT_MAX_DEPTH, SCHED_MAX_CPUS } from "../sched/sched_det.js";
import { type FlagSpec, MACHINE_FLAGS, formatDuration, parseDuration } from "../workers/cmdline.js";
import {
  STRESS_DEFAULT_DURATION_MS,
  STRESS_FLAGS,
  STRESS_MACHINE_FLAGS,
  type StressSettings,
} from "../workers/stress.js";
import { EXPLORE_STRATEGIES, type ExploreOptions, type ExploreStrategy } from "../explore/explore.js";
import { DEFAULT_STEP_CAP, MAX_STEP_CAP } from "../explore/explorer.js";
import { MAX_OPS } from "../explore/scenario.js";
import type { Shard } from "../workers/shard.js";

/** One flag (its spelling, default and format: src/workers/cmdline.ts) with its help text and its parser. */
export interface CliOption<T> extends FlagSpec<T> {
  readonly description: string;
  /** Parses the flag's argument; throws InvalidArgumentError saying what was expected. Absent for switches. */
  readonly parse?: (raw: string) => T;
}

/** A table with exactly one option per field of `C`. */
export type OptionTable<C> = { readonly [K in keyof C]-?: CliOption<C[K]> };

/** Parses a non-negative integer within [min, max]. */
export function parseInteger(what: string, min: number, max: number): (raw: string) => number {
  return (raw) => {
    const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${what} must be an integer in ${min}..${max}.`);
    return n;
  };
}

function durationArg(raw: string): number {
  const ms = parseDuration(raw);
  if (ms === null || ms <= 0) throw new InvalidArgumentError("expected a duration such as 500ms, 15s or 10m.");
  return ms;
}

/** The KCSAN fields of a machine's config. */
export type KcsanConfig = Pick<
  MachineConfig,
  "kcsan" | "kcsanSkipWatch" | "kcsanUdelayTask" | "kcsanUdelayInterrupt" | "kcsanStrict" | "kcsanSkipReport"
>;

/** The KCSAN flags (docs/kcsan.md): the same on every command that boots a machine. */
export const KCSAN_OPTIONS: OptionTable<KcsanConfig> = {
  kcsan: {
    ...MACHINE_FLAGS.kcsan,
    description: "run the CPUs on the KCSAN build: report data races on kernel state (docs/kcsan.md)",
  },
  kcsanSkipWatch: {
    ...MACHINE_FLAGS.kcsanSkipWatch,
    description:
      "with --kcsan, free-running: accesses between two watchpoints of a CPU, randomized below (CONFIG_KCSAN_SKIP_WATCH); deterministic runs watch every access",
    parse: parseInteger("kcsan-skip-watch", 1, MAX_KCSAN_SKIP_WATCH),
  },
  kcsanUdelayTask: {
    ...MACHINE_FLAGS.kcsanUdelayTask,
    description: "with --kcsan, free-running: microseconds a task's watchpoint stays armed (CONFIG_KCSAN_UDELAY_TASK)",
    parse: parseInteger("kcsan-udelay-task", 0, MAX_KCSAN_UDELAY),
  },
  kcsanUdelayInterrupt: {
    ...MACHINE_FLAGS.kcsanUdelayInterrupt,
    description:
      "with --kcsan, free-running: microseconds an interrupt's watchpoint stays armed (CONFIG_KCSAN_UDELAY_INTERRUPT)",
    parse: parseInteger("kcsan-udelay-interrupt", 0, MAX_KCSAN_UDELAY),
  },
  kcsanStrict: {
    ...MACHINE_FLAGS.kcsanStrict,
    description:
      "with --kcsan: KCSAN's strict rules — report a conflict that left the value unchanged, watch plain writes too (CONFIG_KCSAN_STRICT)",
  },
  kcsanSkipReport: {
    ...MACHINE_FLAGS.kcsanSkipReport,
    description:
      "with --kcsan: functions whose races are counted, not reported (the debugfs filter's !func entries), comma-separated",
    parse: (raw): readonly string[] => {
      // debugfs takes "!func"; the leading "!" is optional here.
      const names = raw.split(",").map((n) => (n.startsWith("!") ? n.slice(1) : n));
      const bad = names.find((n) => !KERNEL_FUNCTION_NAME.test(n));
      if (bad !== undefined) throw new InvalidArgumentError(`${JSON.stringify(bad)} is not a kernel function name.`);
      const unique = [...new Set(names)];
      if (unique.length > MAX_KCSAN_SKIP_REPORT)
        throw new InvalidArgumentError(`at most ${MAX_KCSAN_SKIP_REPORT} functions.`);
      return unique;
    },
  },
};

/** Events each CPU keeps when `--trace FILE` is given without `--trace-buffer`. */
export const DEFAULT_TRACE_EVENTS = 65536;

/** The machine every command boots: one flag per {@link MachineConfig} field. */
export const MACHINE_OPTIONS: OptionTable<MachineConfig> = {
  kernel: {
    ...MACHINE_FLAGS.kernel,
    description: `the kernel version whose vmalloc the machine runs (and its arm64 address layout): ${KERNEL_VERSIONS.join(", ")}`,
    parse: (raw): KernelVersion => {
      if (!isKernelVersion(raw))
        throw new InvalidArgumentError(`unknown kernel; expected one of ${KERNEL_VERSIONS.join(", ")}.`);
      return raw;
    },
  },
  cpus: {
    ...MACHINE_FLAGS.cpus,
    description: "number of CPUs (worker threads)",
    parse: parseInteger("cpus", 1, MAX_CPUS),
  },
  layout: {
    ...MACHINE_FLAGS.layout,
    description: `address layout: ${LAYOUT_NAMES.join(", ")}`,
    parse: (raw): LayoutName => {
      if (!isLayoutName(raw))
        throw new InvalidArgumentError(`unknown layout; expected one of ${LAYOUT_NAMES.join(", ")}.`);
      return raw;
    },
  },
  memory: {
    ...MACHINE_FLAGS.memory,
    description: "physical memory, a multiple of 4M (e.g. 64M, 1G)",
    parse: (raw) => {
      const n = parseSize(raw);
      if (n === null) throw new InvalidArgumentError("expected a size such as 64M or 1G.");
      return n;
    },
  },
  seed: {
    ...MACHINE_FLAGS.seed,
    description: "seed of every random choice; the same seed replays the same run",
    parse: parseInteger("seed", 0, 0xffffffff),
  },
  lockdep: {
    ...MACHINE_FLAGS.lockdep,
    description: "turn off lockdep-lite (held-lock stacks, lock order checks)",
  },
  slubDebug: {
    ...MACHINE_FLAGS.slubDebug,
    description: "turn off slub_debug=P (slab poisoning: use-after-free writes, bad and double frees)",
  },
  watchdogMs: {
    ...MACHINE_FLAGS.watchdogMs,
    description:
      "soft-lockup threshold: a CPU inside one kernel call this long (looping, or waiting on a lock) stops the machine; " +
      "on a busy host it is scaled by max(1, CPUs / cores, load average / cores), and the report says so",
    parse: durationArg,
  },
  irqRate: {
    ...MACHINE_FLAGS.irqRate,
    description: "probability that an interrupt arrives at a sched point (0 = no interrupts)",
    parse: (raw) => {
      const p = /^\d*\.?\d+(?:e-?\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
      if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError("expected a probability in 0..1.");
      return p;
    },
  },
  workqueue: {
    ...MACHINE_FLAGS.workqueue,
    description: 'when kworkers run pending work: "auto" (at every safe point) or "explicit" (flush_work only)',
    parse: (raw) => {
      if (raw !== "auto" && raw !== "explicit") throw new InvalidArgumentError('expected "auto" or "explicit".');
      return raw;
    },
  },
  inject: {
    ...MACHINE_FLAGS.inject,
    description: `test only: deliberate bugs to switch on, comma-separated (${INJECT_NAMES.join(", ")})`,
    parse: (raw): readonly InjectName[] => {
      const names = raw.split(",").filter((n) => n !== "");
      const bad = names.find((n) => !isInjectName(n));
      if (bad !== undefined)
        throw new InvalidArgumentError(`unknown injection ${bad}; expected one of ${INJECT_NAMES.join(", ")}.`);
      return [...new Set(names.filter(isInjectName))];
    },
  },
  backport: {
    ...MACHINE_FLAGS.backport,
    description: `known races to apply the later kernel's annotation to, comma-separated (${BACKPORT_NAMES.join(", ")}; docs/kcsan.md)`,
    parse: (raw): readonly BackportName[] => {
      const names = raw.split(",").filter((n) => n !== "");
      const bad = names.find((n) => !isBackportName(n));
      if (bad !== undefined)
        throw new InvalidArgumentError(`unknown known race ${bad}; expected one of ${BACKPORT_NAMES.join(", ")}.`);
      return [...new Set(names.filter(isBackportName))];
    },
  },
  trace: {
    ...MACHINE_FLAGS.trace,
    description: `events each CPU keeps for a trace (the last ones; 0 = no tracing); --trace alone keeps ${DEFAULT_TRACE_EVENTS}`,
    parse: parseInteger("trace-buffer", 0, MAX_TRACE_EVENTS),
  },
  ...KCSAN_OPTIONS,
  spinlock: {
    ...MACHINE_FLAGS.spinlock,
    description:
      'the spinlock of free-running CPUs: "pv-qspinlock" (paravirtual queued; no collapse with more CPUs than cores) ' +
      'or "ticket" (arm64 until v5.8); explore and replay always run "ticket"',
    parse: (raw): SpinlockKind => {
      const k = SPINLOCK_KINDS.find((n) => n === raw);
      if (k === undefined) throw new InvalidArgumentError(`expected one of ${SPINLOCK_KINDS.join(", ")}.`);
      return k;
    },
  },
};

/** The trace flag of `vmsim run` and `vmsim stress`. */
export interface TraceCliOptions {
  /** Write a Chrome trace-event JSON (Perfetto) of the run here. @defaultValue null (no trace) */
  readonly trace: string | null;
}

/** Parses a file to write: its folder must exist and the path must not be a folder. */
function outputFileArg(raw: string): string {
  const dir = statSync(dirname(raw), { throwIfNoEntry: false });
  if (dir === undefined || !dir.isDirectory())
    throw new InvalidArgumentError(`no folder ${dirname(raw)} to write it in.`);
  if (statSync(raw, { throwIfNoEntry: false })?.isDirectory())
    throw new InvalidArgumentError("that is a folder, not a file.");
  return raw;
}

/** Parses a folder to write into (created if missing): it is a folder, or the nearest path above it that exists is. */
function outputDirArg(raw: string): string {
  let at = resolve(raw);
  while (!existsSync(at)) at = dirname(at);
  if (!statSync(at).isDirectory())
    throw new InvalidArgumentError(`${at === resolve(raw) ? "that" : at} is a file, not a folder.`);
  return raw;
}

export const TRACE_OPTIONS: OptionTable<TraceCliOptions> = {
  trace: {
    flags: "--trace <file>",
    description: "write a Chrome trace-event JSON of the run (per-CPU spans; open it in ui.perfetto.dev)",
    defaultValue: null,
    parse: outputFileArg,
    format: (f) => f ?? "none",
  },
};

/** The `--map` of run, stress and replay: where to draw the vmalloc area (src/cli/map.ts). */
export interface MapFileCliOptions {
  /** The SVG to write; null: none. @defaultValue null */
  readonly map: string | null;
}

export const MAP_FILE_OPTIONS: OptionTable<MapFileCliOptions> = {
  map: {
    flags: "--map <file>",
    description: "draw the vmalloc area into an SVG at the end of the workload or at the failure (docs/map.md)",
    defaultValue: null,
    parse: outputFileArg,
    format: (f) => f ?? "none",
  },
};

/** The config to boot for `--trace file`: tracing on, with DEFAULT_TRACE_EVENTS unless --trace-buffer said. */
export function withTrace(config: MachineConfig, file: string | null): MachineConfig {
  return file !== null && config.trace === 0 ? { ...config, trace: DEFAULT_TRACE_EVENTS } : config;
}

/** Options of `vmsim info`, beyond the machine's. */
export interface InfoOptions {
  /** Print one JSON object instead of the text report. @defaultValue false */
  readonly json: boolean;
  /** Print every field of the main struct tables. @defaultValue false */
  readonly structs: boolean;
}

export const INFO_OPTIONS: OptionTable<InfoOptions> = {
  json: { flags: "--json", description: "print one machine-readable JSON object", defaultValue: false },
  structs: { flags: "--structs", description: "print the field tables of the main structs", defaultValue: false },
};

/** Options of `vmsim run`, beyond the machine's. */
export interface RunOptions {
  /** How long the CPUs run the workload. @defaultValue 15 s */
  readonly durationMs: number;
}

export const RUN_OPTIONS: OptionTable<RunOptions> = {
  durationMs: {
    flags: "--duration <duration>",
    description: "how long the CPUs run (e.g. 500ms, 15s, 10m)",
    defaultValue: 15_000,
    parse: durationArg,
    format: formatDuration,
  },
};

/** The machine flags of `vmsim run`: those of every command, with interrupts on by default (MIX_IRQ_RATE). */
export const RUN_MACHINE_OPTIONS: OptionTable<MachineConfig> = {
  ...MACHINE_OPTIONS,
  irqRate: { ...MACHINE_OPTIONS.irqRate, defaultValue: STRESS_MACHINE_FLAGS.irqRate.defaultValue },
};

/** Options of `vmsim stress`, beyond the machine's (src/workers/stress.ts's settings, as flags). */
export interface StressCliOptions extends StressSettings {
  /** Print the result as one JSON document instead of the text report. @defaultValue false */
  readonly json: boolean;
}

function mixArg(raw: string): string {
  try {
    return normalizeMixWeights(raw);
  } catch (e) {
    throw new InvalidArgumentError(`${(e as Error).message.replace(/^--mix: /, "")}.`);
  }
}

function probabilityArg(raw: string): number {
  const p = /^\d*\.?\d+(?:e-?\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError("expected a probability in 0..1.");
  return p;
}

export const STRESS_OPTIONS: OptionTable<StressCliOptions> = {
  durationMs: {
    ...STRESS_FLAGS.durationMs,
    description: `how long the CPUs run (e.g. 30s, 10m); ${formatDuration(STRESS_DEFAULT_DURATION_MS)} unless --ops bounds the run`,
    parse: durationArg,
  },
  ops: {
    ...STRESS_FLAGS.ops,
    description: "operations to run, all CPUs together (the first of --duration and --ops ends the run)",
    parse: parseInteger("ops", 1, Number.MAX_SAFE_INTEGER),
  },
  failPageAlloc: {
    ...STRESS_FLAGS.failPageAlloc,
    description: "percent of page allocations that fail (fail_page_alloc's probability): failures are expected results",
    parse: parseInteger("fail-page-alloc", 0, 100),
  },
  stutter: {
    ...STRESS_FLAGS.stutter,
    description: "chance per operation of a seeded pause inside it (spin or sleep), to shift interleavings",
    parse: probabilityArg,
  },
  rcuWalk: {
    ...STRESS_FLAGS.rcuWalk,
    description: "chance per operation of an RCU reader walking vmap_area_list",
    parse: probabilityArg,
  },
  mix: {
    ...STRESS_FLAGS.mix,
    description:
      `give operations of the mix a share of every CPU's operations (${MIX_WEIGHTED_OPS.join(", ")}; ` +
      "e.g. vm_unmap_aliases=5%,vread=10%; at most 90% together)",
    parse: mixArg,
  },
  json: { flags: "--json", description: "print the result as one JSON document", defaultValue: false },
};

/** The machine flags of `vmsim stress`: those of `vmsim run` (interrupts on by default). */
export const STRESS_MACHINE_OPTIONS: OptionTable<MachineConfig> = RUN_MACHINE_OPTIONS;

/** An inclusive range of seeds: `--seeds 1-100`. */
export interface SeedRange {
  readonly from: number;
  readonly to: number;
}

export { type Shard, shardItems } from "../workers/shard.js";

const MAX_SEED = 0xffffffff;

/** Parses "A-B" (A ≤ B) or "A" into a seed range; throws InvalidArgumentError saying what was expected. */
export function parseSeedRange(raw: string): SeedRange {
  const m = /^(\d+)(?:-(\d+))?$/.exec(raw.trim());
  const from = m ? Number(m[1]) : Number.NaN;
  const to = m ? Number(m[2] ?? m[1]) : Number.NaN;
  if (!(from <= MAX_SEED && to <= MAX_SEED && from <= to))
    throw new InvalidArgumentError(`expected seeds as A-B with 0 <= A <= B <= ${MAX_SEED}.`);
  return { from, to };
}

/** Parses "i/n" (1 <= i <= n) into a shard; throws InvalidArgumentError saying what was expected. */
export function parseShard(raw: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(raw.trim());
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!(index >= 1 && index <= count && count <= 1_000_000))
    throw new InvalidArgumentError("expected a shard as i/n with 1 <= i <= n.");
  return { index, count };
}

/** The campaign flags of `vmsim stress` (src/cli/campaign.ts): present when --seeds is. */
export interface CampaignCliOptions {
  /** Run one stress run per seed of this range instead of one run of --seed. @defaultValue null */
  readonly seeds: SeedRange | null;
  /** Machines running at once; null: max(1, floor(host cores / --cpus)). @defaultValue null */
  readonly jobs: number | null;
  /** Run only this shard of the seeds. @defaultValue null (all of them) */
  readonly shard: Shard | null;
  /** Write the campaign's JSON results here (mergeable with `vmsim stress merge`). @defaultValue null */
  readonly out: string | null;
}

export const CAMPAIGN_OPTIONS: OptionTable<CampaignCliOptions> = {
  seeds: {
    flags: "--seeds <A-B>",
    description: "campaign: one run per seed A..B, several machines at once",
    defaultValue: null,
    parse: parseSeedRange,
    format: (r) => (r === null ? "none" : `${r.from}-${r.to}`),
  },
  jobs: {
    flags: "--jobs <n>",
    description: "campaign: machines running at once; auto = max(1, host cores / --cpus)",
    defaultValue: null,
    parse: parseInteger("jobs", 1, 256),
    format: (n) => (n === null ? "auto" : String(n)),
  },
  shard: {
    flags: "--shard <i/n>",
    description: "campaign: run only the seeds s with (s - A) mod n = i - 1 (1-based i), for batch systems",
    defaultValue: null,
    parse: parseShard,
    format: (s) => (s === null ? "none" : `${s.index}/${s.count}`),
  },
  out: {
    flags: "--out <file>",
    description: "campaign: write the JSON results here (merge shards with `vmsim stress merge`)",
    defaultValue: null,
    parse: outputFileArg,
    format: (f) => f ?? "none",
  },
};

/** The campaign flags of `vmsim test` (src/cli/test_campaign.ts): present when --seeds or --shard is. */
export type TestCampaignCliOptions = Pick<CampaignCliOptions, "seeds" | "shard" | "out">;

export const TEST_CAMPAIGN_OPTIONS: OptionTable<TestCampaignCliOptions> = {
  seeds: {
    ...CAMPAIGN_OPTIONS.seeds,
    description: "campaign: run every selected test once per seed A..B, each (test, seed) on a machine of its own",
  },
  shard: {
    ...CAMPAIGN_OPTIONS.shard,
    description:
      "campaign: run only item k of the (test × seed) items, tests in table order, seeds ascending, " +
      "when k mod n = i - 1 (without --seeds: the seeds of --seed)",
  },
  out: {
    ...CAMPAIGN_OPTIONS.out,
    description: "campaign: write the JSON results here (merge shards with `vmsim test merge`)",
  },
};

/** Options of `vmsim stress merge`. */
export interface MergeOptions {
  /** Write the merged JSON here. @defaultValue null */
  readonly out: string | null;
  /** Print the merged JSON instead of the text. @defaultValue false */
  readonly json: boolean;
}

export const MERGE_OPTIONS: OptionTable<MergeOptions> = {
  out: { ...CAMPAIGN_OPTIONS.out, description: "write the merged JSON here" },
  json: { flags: "--json", description: "print the merged JSON instead of the text", defaultValue: false },
};

/** The machine flags of `vmsim exec` (docs/exec.md): its workqueue is always "explicit", the rest default. */
export type ExecMachineConfig = Pick<
  MachineConfig,
  "kernel" | "cpus" | "layout" | "memory" | "seed" | "lockdep" | "slubDebug" | "watchdogMs"
> &
  KcsanConfig;

export const EXEC_MACHINE_OPTIONS: OptionTable<ExecMachineConfig> = {
  kernel: MACHINE_OPTIONS.kernel,
  cpus: MACHINE_OPTIONS.cpus,
  layout: MACHINE_OPTIONS.layout,
  memory: MACHINE_OPTIONS.memory,
  seed: MACHINE_OPTIONS.seed,
  lockdep: MACHINE_OPTIONS.lockdep,
  slubDebug: MACHINE_OPTIONS.slubDebug,
  watchdogMs: MACHINE_OPTIONS.watchdogMs,
  ...KCSAN_OPTIONS,
};

/** Options of `vmsim exec`, beyond the machine's. */
export interface ExecOptions {
  /** The op script (JSON Lines); "-" reads standard input. @defaultValue "-" */
  readonly script: string;
}

export const EXEC_OPTIONS: OptionTable<ExecOptions> = {
  script: {
    flags: "--script <file>",
    description: 'the op script, one JSON object per line ("-": standard input)',
    defaultValue: "-",
    parse: (raw) => raw,
  },
};

/** Options of `vmsim bench` (its machines are its own: one per CPU count, see src/workers/scaling.ts). */
export interface BenchOptions {
  /** The vmalloc generations to compare, each a series of the results. @defaultValue ["4.19"] */
  readonly kernels: readonly KernelVersion[];
  /** The test_vmalloc cases to run. @defaultValue TEST_VMALLOC_CASES: fix_size, random_size, long_busy_list */
  readonly tests: readonly TestVmallocCase[];
  /** The CPU counts, ascending. @defaultValue 1, 2, 4 */
  readonly cpus: readonly number[];
  /** Measured runs of each case on each machine (after one warm-up). @defaultValue 5 */
  readonly repeats: number;
  /** fix_size_alloc_test's test_loop_count; the other cases run a tenth. @defaultValue 100000 */
  readonly loops: number;
  /** Boot with lockdep on. @defaultValue false */
  readonly lockdep: boolean;
  /** Boot with slub_debug=P (slab poisoning) on. @defaultValue false */
  readonly slubDebug: boolean;
  /** Trace events each CPU keeps (span tracing on when > 0). @defaultValue 0 */
  readonly trace: number;
  /** The machines' spinlock (src/locks/spinlock.ts). @defaultValue "pv-qspinlock" */
  readonly spinlock: SpinlockKind;
  /** Measure only this shard of the (CPU count, kernel, case, repeat) runs (src/cli/bench_shard.ts). @defaultValue null (all of them) */
  readonly shard: Shard | null;
  /** Folder for scaling.{json,md,svg} and one SVG per case. @defaultValue vmsim-bench (git-ignored; committed results go to bench/results/ with --out) */
  readonly out: string;
}

/** Options of `vmsim bench merge`. */
export interface BenchMergeOptions {
  /** Folder for the merged scaling.{json,md,svg} and one SVG per case. @defaultValue vmsim-bench */
  readonly out: string;
}

export const BENCH_MERGE_OPTIONS: OptionTable<BenchMergeOptions> = {
  out: {
    flags: "--out <dir>",
    description: "folder for the merged scaling.json, scaling.md, scaling.svg and <case>.svg",
    defaultValue: "vmsim-bench",
    parse: outputDirArg,
  },
};

/** The cases `vmsim bench` can time: every case of the module but the one meant to fail. */
const BENCH_CASES: readonly TestVmallocCase[] = TEST_CASE_ARRAY.filter((c) => !c.xfail).map((c) => c.name);

/** "fix_size" or "fix_size_alloc_test" → "fix_size_alloc_test". */
function testCaseOf(raw: string): TestVmallocCase | undefined {
  return BENCH_CASES.find((t) => t === raw || t === `${raw}_alloc_test` || t === `${raw}_test`);
}

export const BENCH_OPTIONS: OptionTable<BenchOptions> = {
  kernels: {
    flags: "--kernel <list>",
    description: `vmalloc generations to compare, comma-separated (${KERNEL_VERSIONS.join(", ")}); each is a line of the charts`,
    defaultValue: ["4.19"],
    parse: (raw) => [...new Set(raw.split(",").map((v) => MACHINE_OPTIONS.kernel.parse!(v)))],
    format: (kernels) => kernels.join(","),
  },
  tests: {
    flags: "--tests <list>",
    description: `test_vmalloc cases, comma-separated, "_alloc_test" optional (${BENCH_CASES.join(", ")}), or all`,
    defaultValue: TEST_VMALLOC_CASES,
    parse: (raw) => {
      if (raw === "all") return BENCH_CASES;
      const names = raw.split(",");
      const tests = names.map(testCaseOf);
      const bad = tests.indexOf(undefined);
      if (bad >= 0)
        throw new InvalidArgumentError(`unknown test ${names[bad]}; expected some of ${BENCH_CASES.join(", ")}.`);
      return [...new Set(tests as TestVmallocCase[])];
    },
    format: (tests) => tests.join(","),
  },
  cpus: {
    flags: "--cpus <list>",
    description: "CPU counts of the machines, comma-separated",
    defaultValue: [1, 2, 4],
    parse: (raw) => {
      const one = parseInteger("each CPU count", 1, MAX_CPUS);
      return [...new Set(raw.split(",").map(one))].sort((a, b) => a - b);
    },
    format: (cpus) => cpus.join(","),
  },
  repeats: {
    flags: "--repeats <n>",
    description: "measured runs of each case per CPU count (the median is reported)",
    defaultValue: 5,
    parse: parseInteger("repeats", 1, 1000),
  },
  loops: {
    flags: "--loops <n>",
    description: "fix_size_alloc_test's test_loop_count (the other cases run a tenth)",
    defaultValue: 100_000,
    parse: parseInteger("loops", 1, 100_000_000),
  },
  lockdep: { flags: "--lockdep", description: "boot with lockdep on", defaultValue: false },
  slubDebug: { flags: "--slub-debug", description: "boot with slub_debug=P (slab poisoning) on", defaultValue: false },
  trace: {
    ...MACHINE_OPTIONS.trace,
    description: "events each CPU keeps in its trace ring: turns span tracing on (0 = off), to measure its cost",
  },
  spinlock: MACHINE_OPTIONS.spinlock,
  shard: {
    ...CAMPAIGN_OPTIONS.shard,
    description:
      "measure only shard i of n: run k (0-based) of the CPU counts × kernels × cases × repeats, in that order, " +
      "when k mod n = i - 1; join the shards' folders with `vmsim bench merge`",
  },
  out: {
    flags: "--out <dir>",
    description:
      "folder for scaling.json, scaling.md, scaling.svg and <case>.svg (bench/results/ holds the committed ones)",
    defaultValue: "vmsim-bench",
    parse: outputDirArg,
  },
};

/** `vmsim test --mode`: test_vmalloc.sh's templates, or "manual" (the flags alone). */
export const TEST_MODES = ["manual", "performance", "stress", "smoke"] as const;
export type TestMode = (typeof TEST_MODES)[number];

/** Options of `vmsim test`: lib/test_vmalloc.c's module parameters (their names in the comments) and the preset. */
export interface TestOptions {
  /** nr_threads: workers; worker N runs on CPU N mod --cpus; 0: one per CPU. @defaultValue 0 */
  readonly nrThreads: number;
  /** test_repeat_count. @defaultValue 1 */
  readonly testRepeatCount: number;
  /** test_loop_count. @defaultValue 1000000 */
  readonly testLoopCount: number;
  /** run_test_mask: bit i selects test i of the module's table. @defaultValue INT_MAX (every test) */
  readonly runTestMask: number;
  /** sequential_test_order. @defaultValue false */
  readonly sequentialTestOrder: boolean;
  /** nr_pages (0 means 1). @defaultValue 0 */
  readonly nrPages: number;
  /** A test_vmalloc.sh preset; flags given on the command line override its values. @defaultValue "manual" */
  readonly mode: TestMode;
}

/** INT_MAX: run_test_mask's default, every test. */
const INT_MAX = 0x7fffffff;

export const TEST_OPTIONS: OptionTable<TestOptions> = {
  nrThreads: {
    flags: "--nr-threads <n>",
    description:
      "nr_threads: workers (the module's kthreads); worker N runs on CPU N mod --cpus, " +
      "workers sharing a CPU take turns; 0 = one per CPU (the module's 0 means 1)",
    defaultValue: 0,
    parse: parseInteger("nr-threads", 0, 0xffff),
  },
  testRepeatCount: {
    flags: "--test-repeat-count <n>",
    description: "test_repeat_count: runs of each selected test",
    defaultValue: 1,
    parse: parseInteger("test-repeat-count", 1, INT_MAX),
  },
  testLoopCount: {
    flags: "--test-loop-count <n>",
    description: "test_loop_count: iterations of each test's loop",
    defaultValue: 1_000_000,
    parse: parseInteger("test-loop-count", 1, INT_MAX),
  },
  runTestMask: {
    flags: "--run-test-mask <mask>",
    description: "run_test_mask: the tests to run, bit i = test i of the table below (decimal or 0x hex)",
    defaultValue: INT_MAX,
    parse: (raw) => {
      const n = /^(0x[0-9a-f]+|\d+)$/i.test(raw) ? Number(raw) : Number.NaN;
      if (!(Number.isSafeInteger(n) && n >= 1 && n <= INT_MAX))
        throw new InvalidArgumentError(
          `run-test-mask must be an integer in 1..${INT_MAX} (0x${INT_MAX.toString(16)}).`,
        );
      return n;
    },
    format: (mask) => `0x${mask.toString(16)}`,
  },
  sequentialTestOrder: {
    flags: "--sequential-test-order",
    description: "sequential_test_order: run the tests in table order (default: shuffled per worker)",
    defaultValue: false,
  },
  nrPages: {
    flags: "--nr-pages <n>",
    description: "nr_pages: pages of fix_size_alloc_test and vm_map_ram_test (0 = 1)",
    defaultValue: 0,
    parse: parseInteger("nr-pages", 0, INT_MAX),
  },
  mode: {
    flags: "--mode <name>",
    description:
      "test_vmalloc.sh preset: performance (sequential_test_order=1 test_repeat_count=3, one worker; " +
      "a production kernel: lockdep and slub_debug off, --lockdep and --slub-debug turn them on), " +
      "stress (nr_threads=CPUs test_repeat_count=20), smoke (test_loop_count=10000 test_repeat_count=10), " +
      "or manual; flags given override the preset",
    defaultValue: "manual",
    parse: (raw): TestMode => {
      const found = TEST_MODES.find((m) => m === raw);
      if (found === undefined)
        throw new InvalidArgumentError(`unknown mode; expected one of ${TEST_MODES.join(", ")}.`);
      return found;
    },
  },
};

/** Memory `vmsim test` boots with: full_fit_alloc_test alone keeps 2 × fls(CPUs) × 32 MiB per worker. */
export const TEST_MEMORY = 1024 * 1024 * 1024;

/** The machine flags of `vmsim test`: those of every command, with TEST_MEMORY by default. */
export const TEST_MACHINE_OPTIONS: OptionTable<MachineConfig> = {
  ...MACHINE_OPTIONS,
  memory: { ...MACHINE_OPTIONS.memory, defaultValue: TEST_MEMORY },
};

/**
 * The machine of `vmsim test --mode performance`: the kernel's performance
 * runs are of production kernels, so lockdep and slub_debug are off (tracing
 * is off in every mode) and `--lockdep`, `--slub-debug` turn them back on.
 */
export const TEST_PERFORMANCE_MACHINE_OPTIONS: OptionTable<MachineConfig> = {
  ...TEST_MACHINE_OPTIONS,
  lockdep: { flags: "--lockdep", description: "--mode performance: turn lockdep-lite back on", defaultValue: false },
  slubDebug: {
    flags: "--slub-debug",
    description: "--mode performance: turn slub_debug=P back on",
    defaultValue: false,
  },
};

/** The switches of `vmsim test` that turn the performance mode's debugging back on. */
export const TEST_DEBUG_OPTIONS: OptionTable<Pick<MachineConfig, "lockdep" | "slubDebug">> = {
  lockdep: TEST_PERFORMANCE_MACHINE_OPTIONS.lockdep,
  slubDebug: TEST_PERFORMANCE_MACHINE_OPTIONS.slubDebug,
};

/** The machine flags of `vmsim test` in `mode`: the defaults that mode boots with, and the flags that change them. */
export function testMachineOptions(mode: TestMode): OptionTable<MachineConfig> {
  return mode === "performance" ? TEST_PERFORMANCE_MACHINE_OPTIONS : TEST_MACHINE_OPTIONS;
}

function toOption<T>(spec: CliOption<T>): Option {
  const o = new Option(spec.flags, spec.description);
  if (spec.parse) {
    const parse = spec.parse;
    o.argParser((raw: string) => parse(raw));
    o.default(spec.defaultValue, (spec.format ?? String)(spec.defaultValue));
  }
  return o;
}

/** Declares every option of `table` on `cmd`. */
export function addOptions<C>(cmd: Command, table: OptionTable<C>): Command {
  for (const key of Object.keys(table) as (keyof C)[]) cmd.addOption(toOption(table[key]));
  return cmd;
}

/** Reads the parsed values of `table`'s options from `cmd`, keyed by config field. */
export function readOptions<C>(cmd: Command, table: OptionTable<C>): C {
  const raw = cmd.opts();
  const out: Partial<Record<keyof C, unknown>> = {};
  for (const key of Object.keys(table) as (keyof C)[]) {
    const spec = table[key];
    const v = raw[new Option(spec.flags).attributeName()];
    out[key] = v === undefined ? spec.defaultValue : v;
  }
  return out as C;
}

/*** vmsim explore / replay / shrink (src/cli/explore.ts) ***/

/** The machine flags of `vmsim explore`: the scenario sets interrupts and the workqueue; memory is small (fast resets). */
export type ExploreMachineConfig = Pick<
  MachineConfig,
  "kernel" | "cpus" | "layout" | "memory" | "seed" | "lockdep" | "slubDebug" | "inject"
> &
  KcsanConfig;

/** Memory of an exploration machine: every run restores it from a snapshot, so smaller is faster. */
export const EXPLORE_MEMORY = 8 * 1024 * 1024;

export const EXPLORE_MACHINE_OPTIONS: OptionTable<ExploreMachineConfig> = {
  kernel: MACHINE_OPTIONS.kernel,
  // The deterministic scheduler covers MAX_CPUS (its runnable set is a 64-bit cpumask).
  cpus: { ...MACHINE_OPTIONS.cpus, parse: parseInteger("cpus", 1, SCHED_MAX_CPUS) },
  layout: MACHINE_OPTIONS.layout,
  memory: { ...MACHINE_OPTIONS.memory, defaultValue: EXPLORE_MEMORY },
  seed: { ...MACHINE_OPTIONS.seed, description: "seed of the workload's choices and interrupts (fixed over the runs)" },
  lockdep: MACHINE_OPTIONS.lockdep,
  slubDebug: MACHINE_OPTIONS.slubDebug,
  inject: MACHINE_OPTIONS.inject,
  ...KCSAN_OPTIONS,
};

/** Options of `vmsim explore`, beyond the machine's. */
export interface ExploreCliOptions
  extends Pick<ExploreOptions, "strategy" | "depth" | "p" | "quantum" | "bound" | "budgetMs" | "iterations"> {
  /** What to run: stress, test_vmalloc:<case>, or a catalog scenario. @defaultValue "stress" */
  readonly scenario: string;
  /** Run this op script (docs/exec.md) instead: each CPU its own lines (`"cpu": k`), all at once. @defaultValue null */
  readonly script: string | null;
  /** Operations per CPU; null: the scenario's default. @defaultValue null */
  readonly ops: number | null;
  /** The first run's strategy seed (ExploreOptions.seed). @defaultValue 1 */
  readonly schedSeed: number;
  /** Steps after which a run is a livelock. @defaultValue DEFAULT_STEP_CAP */
  readonly stepCap: number;
  /** Explorations at once, each on a machine of its own. @defaultValue 1 */
  readonly jobs: number;
  /** Make only this shard of the runs and write its results beside its replay files (src/cli/explore_campaign.ts). @defaultValue null */
  readonly shard: Shard | null;
  /** Go on after a failure: every distinct failure (by signature) gets its replay file. @defaultValue false */
  readonly keepGoing: boolean;
  /** Folder for replay files. @defaultValue "vmsim-replay" */
  readonly out: string;
  /** Write a Chrome trace of the failing run here. @defaultValue null */
  readonly trace: string | null;
  /** Print the SUMMARY JSON only. @defaultValue false */
  readonly json: boolean;
}

function probability(raw: string): number {
  const p = /^\d*\.?\d+(?:e-?\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(p > 0 && p <= 1)) throw new InvalidArgumentError("expected a probability in (0, 1].");
  return p;
}

export const EXPLORE_OPTIONS: OptionTable<ExploreCliOptions> = {
  scenario: {
    flags: "--scenario <name>",
    description: "what to run: stress, test_vmalloc:<case>, or a race-catalog scenario (see --help)",
    defaultValue: "stress",
    parse: (raw) => raw,
  },
  script: {
    flags: "--script <file>",
    description: 'run an op script (docs/exec.md) instead: every CPU its own lines ("cpu": k), all at once',
    defaultValue: null,
    parse: (raw) => raw,
    format: (f) => f ?? "none",
  },
  ops: {
    flags: "--ops <n>",
    description: "operations per CPU (stress: mix operations; test_vmalloc: test_loop_count; script: lines)",
    defaultValue: null,
    parse: parseInteger("ops", 1, MAX_OPS),
    format: (n) => (n === null ? "default" : String(n)),
  },
  strategy: {
    flags: "--strategy <name>",
    description: `${EXPLORE_STRATEGIES.join(", ")}`,
    defaultValue: "pct",
    parse: (raw): ExploreStrategy => {
      const s = EXPLORE_STRATEGIES.find((x) => x === raw);
      if (s === undefined)
        throw new InvalidArgumentError(`unknown strategy; expected one of ${EXPLORE_STRATEGIES.join(", ")}.`);
      return s;
    },
  },
  depth: {
    flags: "--depth <d>",
    description: "pct: bug depth d (d - 1 priority change points)",
    defaultValue: 3,
    parse: parseInteger("depth", 1, PCT_MAX_DEPTH),
  },
  p: {
    flags: "--p <prob>",
    description: "random: switch probability per sched point",
    defaultValue: 0.005,
    parse: probability,
  },
  quantum: {
    flags: "--quantum <n>",
    description: "rr: the first quantum in sched points (run i ≥ 2, after the non-preemptive run 1, uses n + i - 2)",
    defaultValue: 1,
    parse: parseInteger("quantum", 1, 1_000_000_000),
  },
  bound: {
    flags: "--bound <n>",
    description: "exhaustive: at most n preemptions per schedule",
    defaultValue: 2,
    parse: parseInteger("bound", 0, 8),
  },
  budgetMs: {
    flags: "--budget <duration>",
    description: "stop after this long (e.g. 30s, 5m)",
    defaultValue: 60_000,
    parse: durationArg,
    format: formatDuration,
  },
  iterations: {
    flags: "--iterations <n>",
    description:
      "stop after this many runs (per job; with --shard: runs 1..n of the whole campaign, each shard its share)",
    defaultValue: null,
    parse: parseInteger("iterations", 1, 1_000_000_000),
    format: (n) => (n === null ? "none" : String(n)),
  },
  schedSeed: {
    flags: "--sched-seed <s>",
    description: "seed of the strategy's choices: run i ≥ 2 (after the non-preemptive run 1) uses s + i - 2",
    defaultValue: 1,
    parse: parseInteger("sched-seed", 0, 0xffffffff),
  },
  stepCap: {
    flags: "--step-cap <n>",
    description: "steps after which a run is a livelock (a bug that loops for ever)",
    defaultValue: DEFAULT_STEP_CAP,
    parse: parseInteger("step-cap", 1, MAX_STEP_CAP),
  },
  jobs: {
    flags: "--jobs <n>",
    description:
      "independent explorations at once, each on its own machine (different strategy seeds; with --shard, the shard's runs split)",
    defaultValue: 1,
    parse: parseInteger("jobs", 1, 256),
  },
  shard: {
    ...CAMPAIGN_OPTIONS.shard,
    description:
      "make only shard i of n of the runs (run k when k mod n = i - 1, run 0 the non-preemptive one; exhaustive: the " +
      "subtrees of the first level of the schedule tree with >= n schedules) and write <out>/explore-shard-<i>-of-<n>.json " +
      "for `vmsim explore merge`",
  },
  keepGoing: {
    flags: "--keep-going",
    description: "go on after a failure until the budget or --iterations: every distinct failure gets its replay file",
    defaultValue: false,
  },
  out: {
    flags: "--out <dir>",
    description: "folder for the replay file of a failure (and a shard's results)",
    defaultValue: "vmsim-replay",
    parse: outputDirArg,
  },
  trace: {
    flags: "--trace <file>",
    description: "write a Chrome trace (Perfetto) of the failing run",
    defaultValue: null,
    parse: outputFileArg,
    format: (f) => f ?? "none",
  },
  json: { flags: "--json", description: "print only the SUMMARY JSON", defaultValue: false },
};

/** Options of `vmsim replay`. */
export interface ReplayCliOptions {
  /** Past the recording's end, go on with random choices instead of stopping. @defaultValue null */
  readonly continueWith: "random" | null;
  /** Replay twice and compare the runs' digests (decisions, results, event rings). @defaultValue false */
  readonly checkDeterminism: boolean;
  /** Write a Chrome trace (Perfetto) of the replay. @defaultValue null */
  readonly trace: string | null;
  /** Print the per-step timeline. @defaultValue false */
  readonly timeline: boolean;
  /** Replay this many times and count the runs that fail as recorded, bit for bit. @defaultValue 1 */
  readonly repeat: number;
  /** Draw the vmalloc area at the failure (or the end) into this SVG. @defaultValue null */
  readonly map: string | null;
  /** The file records a KCSAN run (docs/kcsan.md): say so, or the replay is refused. @defaultValue false */
  readonly kcsan: boolean;
  /** The file records a `--kcsan-strict` run: say so, or the replay is refused. @defaultValue false */
  readonly kcsanStrict: boolean;
}

export const REPLAY_OPTIONS: OptionTable<ReplayCliOptions> = {
  continueWith: {
    flags: "--continue <strategy>",
    description: 'past the recording\'s end, go on: "random"',
    defaultValue: null,
    parse: (raw) => {
      if (raw !== "random") throw new InvalidArgumentError('expected "random".');
      return raw;
    },
    format: (s) => s ?? "none",
  },
  checkDeterminism: {
    flags: "--check-determinism",
    description: "replay twice and compare the runs' digests",
    defaultValue: false,
  },
  trace: EXPLORE_OPTIONS.trace,
  timeline: { flags: "--timeline", description: "print the per-step timeline of the run", defaultValue: false },
  repeat: {
    flags: "--repeat <n>",
    description: "replay n times; count the runs that fail as recorded, bit for bit",
    defaultValue: 1,
    parse: parseInteger("repeat", 1, 10_000),
  },
  map: MAP_FILE_OPTIONS.map,
  kcsan: {
    flags: "--kcsan",
    description:
      "replay a run recorded with --kcsan (on the KCSAN build); required for such a file, refused for others",
    defaultValue: false,
  },
  kcsanStrict: {
    flags: "--kcsan-strict",
    description: "replay a run recorded with --kcsan-strict; required for such a file, refused for others",
    defaultValue: false,
  },
};

/** Options of `vmsim shrink`. */
export interface ShrinkCliOptions {
  /** Where to write the shrunk replay file; null: FILE with .min.json. @defaultValue null */
  readonly out: string | null;
  /** Stop shrinking after this long. @defaultValue 2 m */
  readonly budgetMs: number;
}

export const SHRINK_OPTIONS: OptionTable<ShrinkCliOptions> = {
  out: {
    flags: "--out <file>",
    description: "the shrunk replay file (default: FILE with .min.json)",
    defaultValue: null,
    parse: outputFileArg,
    format: (f) => f ?? "default",
  },
  budgetMs: { ...EXPLORE_OPTIONS.budgetMs, defaultValue: 120_000, description: "stop shrinking after this long" },
};

/** Options of `vmsim map`, beyond the machine's (exec's: the picture is of the machine a script leaves). */
export interface MapCliOptions {
  /** The op script (JSON Lines, `vmsim exec`'s); "-" reads standard input. @defaultValue "-" */
  readonly script: string;
  /** The SVG to write. @defaultValue "map.svg" */
  readonly out: string;
}

export const MAP_OPTIONS: OptionTable<MapCliOptions> = {
  script: EXEC_OPTIONS.script,
  out: {
    flags: "--out <file>",
    description: "the SVG to write",
    defaultValue: "map.svg",
    parse: outputFileArg,
  },
};
