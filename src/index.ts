/**
 * vmsim as a library: boot a machine from a config, run workloads on its CPUs,
 * read what they return and the reports they raised, shut it down.
 *
 * ```ts
 * import { Machine } from "vmsim";
 * const m = await Machine.boot({ cpus: 2, seed: 7 });
 * await m.runAll("spin_counter", { iters: 10_000 });
 * console.log(await m.run(0, "read_counter"), m.reports);
 * await m.shutdown();
 * ```
 *
 * @packageDocumentation
 */

/**
 * A booted machine: `Machine.boot(config)` creates the arena, runs start_kernel
 * and starts one worker thread per CPU; `run(cpu, workload, args)` and
 * `runAll(workload, args)` hand workloads to CPUs; `shutdown()` stops them.
 * A CPU that fails rejects the call with a {@link MachineError}.
 */
export { Machine, MachineError } from "./workers/machine.js";

/**
 * `vmsim stress` as a function: boot a machine, run the seeded mix of every
 * vmalloc API on every CPU with stutter and fault injection, check it between
 * rounds and for leaks at the end; resolves to a JSON-serialisable result
 * with the violation report (invariant, each CPU's last events, seed, rerun).
 */
export { runStress } from "./workers/stress.js";
export type { StressOptions, StressProgress, StressResult, StressSettings } from "./workers/stress.js";
/** The hooks StressOptions carries: progress, abort, afterRound, atEndOfWorkload. */
export type { MixHooks } from "./workers/mix_driver.js";

/** The names of the workloads a CPU can run (each module under src/workers/workloads/ registers its own). */
export { workloadNames } from "./workers/workload.js";

/**
 * Machine configuration: {@link makeConfig} fills defaults from
 * {@link DEFAULT_CONFIG} and throws RangeError on a value out of range;
 * {@link parseSize} reads "64M" / "1G".
 */
export { DEFAULT_CONFIG, MAX_CPUS, MAX_MEMORY, PAGE_SIZE, makeConfig, parseSize } from "./shared/config.js";
export type { MachineConfig } from "./shared/config.js";

/**
 * The deliberate bugs a config's `inject` may switch on (test only: the proof
 * that stress runs catch races), each with what it breaks.
 */
export { INJECTIONS, INJECT_NAMES, isInjectName } from "./shared/inject.js";
export type { InjectName, Injection } from "./shared/inject.js";

/**
 * Address layouts (arm64 VA48 / VA39, arm32) per kernel version: {@link layoutFor};
 * addresses inside vmsim are offsets from the layout's base, and
 * {@link formatKaddr} / {@link parseKaddr} convert them to and from full hex.
 */
export { KERNEL_LAYOUTS, LAYOUT_NAMES, formatKaddr, isLayoutName, layoutFor, parseKaddr } from "./shared/layouts.js";
export type { Layout, LayoutName, PgtableLevel } from "./shared/layouts.js";

/** What a CPU reported (WARN, lockdep, fault …) and how a failed workload is described. */
export type { Report, ReportKind } from "./shared/report.js";
export type { WorkError } from "./workers/protocol.js";

/**
 * Deterministic exploration (`vmsim explore` / `replay` / `shrink` as
 * functions): an {@link Explorer} runs a scenario again and again from a
 * snapshot under a strategy; {@link explore} is the loop; {@link shrink}
 * reduces a failing replay file; {@link checkInterleavings} explores a script
 * or scenario inside a test (VMSIM_SEED, VMSIM_STRATEGY, VMSIM_ITERATIONS,
 * VMSIM_REPLAY steer it).
 */
export { Explorer, signatureOf } from "./explore/explorer.js";
export type { Failure, Outcome } from "./explore/explorer.js";
export { EXPLORE_STRATEGIES, explore, pctBound } from "./explore/explore.js";
export type { ExploreOptions, ExploreStats, ExploreStrategy, Found } from "./explore/explore.js";
export { defineScenario, findScenario, scenarioNames } from "./explore/scenario.js";
export type { Scenario, ScenarioParams } from "./explore/scenario.js";
export { parseScript, scriptScenario } from "./explore/script.js";
export {
  decodeDecisions,
  encodeDecisions,
  readReplayFile,
  replayFileOf,
  writeReplayFile,
} from "./explore/replay_file.js";
export type { ReplayFile, StrategyName } from "./explore/replay_file.js";
export { shrink } from "./explore/shrink.js";
export type { ShrinkResult } from "./explore/shrink.js";
export { InterleavingFailure, checkInterleavings } from "./explore/testing.js";
export type { InterleavingTest } from "./explore/testing.js";
export type { Decision, SchedRecord, Strategy } from "./sched/sched_det.js";

/**
 * Traces (Chrome trace-event JSON for ui.perfetto.dev): boot with
 * `trace: <events per CPU>`, run, then with the CPUs parked
 * {@link writeChromeTrace} (or {@link collectChromeTrace} for the object);
 * {@link traceReset} empties the rings (after `machine.restore()`, before
 * the run to trace: a snapshot holds the rings as they were).
 */
export { collectChromeTrace, writeChromeTrace } from "./workers/chrome_trace.js";
export type { ChromeTrace, ChromeTraceEvent, ChromeTraceSummary } from "./workers/chrome_trace.js";
export { traceReset } from "./trace/trace.js";

/** The race catalog: every deliberate bug (src/shared/inject.ts) with the scenario, strategy and budget that find it. */
export { CATALOG, CATALOG_MEMORY, catalogConfig } from "./explore/catalog.js";
export type { CatalogBudget, CatalogEntry } from "./explore/catalog.js";
