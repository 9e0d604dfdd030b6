#!/usr/bin/env node
/**
 * The `vmsim` command. Exit status: 0 ok, 1 a run found a failure (a CPU
 * stopped the machine, a report, a failed check) or could not go on (a file
 * it could not write, an internal error: src/cli/fatal.ts), 2 bad
 * command-line arguments — always as one line on stderr, never a stack
 * trace. `vmsim` alone prints the help and exits 0: it asked for nothing
 * that could fail.
 */
import { Command, CommanderError } from "commander";
import { type MachineConfig, makeConfig } from "../shared/config.js";
import { start_kernel } from "../workers/boot.js";
import { commandLineOf } from "../workers/cmdline.js";
import { armTopLevel, dieOfEscapedError } from "./fatal.js";
import { describeMachine, formatMachineInfo } from "./info.js";
import {
  BENCH_MERGE_OPTIONS,
  BENCH_OPTIONS,
  CAMPAIGN_OPTIONS,
  EXEC_MACHINE_OPTIONS,
  EXEC_OPTIONS,
  EXPLORE_MACHINE_OPTIONS,
  EXPLORE_OPTIONS,
  REPLAY_OPTIONS,
  SHRINK_OPTIONS,
  INFO_OPTIONS,
  MAP_FILE_OPTIONS,
  MAP_OPTIONS,
  MERGE_OPTIONS,
  MACHINE_OPTIONS,
  type OptionTable,
  RUN_MACHINE_OPTIONS,
  RUN_OPTIONS,
  STRESS_MACHINE_OPTIONS,
  STRESS_OPTIONS,
  TEST_DEBUG_OPTIONS,
  TEST_MACHINE_OPTIONS,
  TEST_CAMPAIGN_OPTIONS,
  TEST_OPTIONS,
  TRACE_OPTIONS,
  addOptions,
  readOptions,
  withTrace,
} from "./options.js";
import { runMachine } from "./run.js";
import { stressMachine } from "./stress.js";
import { execScript, openScript } from "./exec.js";
import { checkMapKernel, mapScript } from "./map.js";
import { benchMergeCommand, checkBench, runBench } from "./bench.js";
import { mergeCommand, stressCampaign } from "./campaign.js";
import { TEST_HELP, runTest, testModeMachine, testRunOf } from "./test.js";
import { testCampaign, testMergeCommand } from "./test_campaign.js";
import { exploreCommand, replayCommand, shrinkCommand } from "./explore.js";
import { exploreMergeCommand } from "./explore_campaign.js";
import { readReplayFile, vmsimVersion } from "../explore/replay_file.js";
import { checkScenarioKernel, scenarioNames } from "../explore/scenario.js";
import { readScript, scenarioOf, scriptScenario } from "../explore/script.js";

const EXIT_USAGE = 2;

/** Set to 1: parse the command line (every flag and its value), print it and exit 0 without running it. */
const PARSE_ONLY_ENV = "VMSIM_PARSE_ONLY";

/** A bad argument found after parsing (makeConfig's range checks). */
class UsageError extends Error {}

/** The machine config from a command's flags (and settings the command fixes), validated by makeConfig. */
function machineConfig<C extends Partial<MachineConfig>>(
  cmd: Command,
  table: OptionTable<C>,
  fixed: Partial<MachineConfig> = {},
): MachineConfig {
  try {
    return makeConfig({ ...readOptions(cmd, table), ...fixed });
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

/** The command line that reruns `name` with these values (only the flags that differ from defaults). */
function rerunOf<C>(
  name: string,
  config: MachineConfig,
  table: OptionTable<C>,
  values: C,
  machine: OptionTable<MachineConfig> = MACHINE_OPTIONS,
): string {
  return ["vmsim", name, ...commandLineOf(machine, config), ...commandLineOf(table, values)].join(" ");
}

function program(): Command {
  const p = new Command("vmsim")
    .description("The Linux kernel's vmalloc allocator on real parallel threads")
    .version(vmsimVersion(), "-V, --version", "print vmsim's version")
    .exitOverride()
    // An option belongs to the command it follows (`vmsim stress merge … --out` is merge's --out, not stress's).
    .enablePositionalOptions()
    .configureOutput({
      // Commander puts its "(Did you mean …?)" hint on a second line: keep every error to one line.
      outputError: (str, write) => write(`vmsim: ${str.trim().replace(/\s*\n\s*/g, " ")}\n`),
    })
    // A CI file's commands checked without running them (test/examples.test.ts): the flags and their values parse.
    .hook("preAction", (_, action) => {
      if (process.env[PARSE_ONLY_ENV] !== "1") return;
      const path = [];
      for (let c: Command | null = action; c !== null && c.parent !== null; c = c.parent) path.unshift(c.name());
      console.log(`${PARSE_ONLY_ENV}: vmsim ${path.join(" ")} parses`);
      throw new CommanderError(0, "vmsim.parseOnly", "parsed");
    });

  addOptions(addOptions(p.command("info"), MACHINE_OPTIONS), INFO_OPTIONS)
    .description("boot a machine and print its layout: address space, page tables, CPUs, memory, arena")
    .action(function (this: Command) {
      const opts = readOptions(this, INFO_OPTIONS);
      const info = describeMachine(start_kernel(machineConfig(this, MACHINE_OPTIONS)), opts);
      if (opts.json) console.log(JSON.stringify(info, null, 2));
      else for (const line of formatMachineInfo(info, opts)) console.log(line);
    });

  addOptions(
    addOptions(addOptions(addOptions(p.command("run"), RUN_MACHINE_OPTIONS), RUN_OPTIONS), TRACE_OPTIONS),
    MAP_FILE_OPTIONS,
  )
    .description("boot a machine, run every CPU on a workload, check it, print a SUMMARY line")
    .action(async function (this: Command) {
      const config = machineConfig(this, RUN_MACHINE_OPTIONS);
      const opts = readOptions(this, RUN_OPTIONS);
      const { trace } = readOptions(this, TRACE_OPTIONS);
      const { map } = readOptions(this, MAP_FILE_OPTIONS);
      if (map !== null) usage(() => checkMapKernel(config.kernel));
      const rerun = rerunOf("run", config, RUN_OPTIONS, opts, RUN_MACHINE_OPTIONS);
      process.exitCode = await runMachine(withTrace(config, trace), {
        durationMs: opts.durationMs,
        rerun,
        trace,
        map,
      });
    });

  const stress = addOptions(
    addOptions(addOptions(addOptions(p.command("stress"), STRESS_MACHINE_OPTIONS), STRESS_OPTIONS), TRACE_OPTIONS),
    MAP_FILE_OPTIONS,
  )
    .description("hunt races: every vmalloc API on every CPU with stutter and fault injection, checked between rounds")
    .action(async function (this: Command) {
      const config = machineConfig(this, STRESS_MACHINE_OPTIONS);
      // Campaigns (src/cli/campaign.ts): with --seeds, one run per seed, several machines at once.
      const campaign = readOptions(this, CAMPAIGN_OPTIONS);
      const { trace } = readOptions(this, TRACE_OPTIONS);
      const { map } = readOptions(this, MAP_FILE_OPTIONS);
      if (campaign.seeds !== null) {
        if (this.getOptionValueSource("seed") === "cli") throw new UsageError("--seed and --seeds exclude each other");
        if (trace !== null) throw new UsageError("--trace and --seeds exclude each other (a trace shows one run)");
        if (map !== null) throw new UsageError("--map and --seeds exclude each other (a map shows one run)");
        process.exitCode = await stressCampaign(config, readOptions(this, STRESS_OPTIONS), campaign);
        return;
      }
      if (map !== null) usage(() => checkMapKernel(config.kernel));
      process.exitCode = await stressMachine(withTrace(config, trace), {
        ...readOptions(this, STRESS_OPTIONS),
        trace,
        map,
      });
    });
  // Campaigns: the flags of `vmsim stress --seeds`, and `vmsim stress merge` (whose --out is its own, not stress's).
  addOptions(stress, CAMPAIGN_OPTIONS).enablePositionalOptions();
  addOptions(stress.command("merge"), MERGE_OPTIONS)
    .description("merge stress campaign results (shards): runs by seed, totals, failing seeds and their reruns")
    .argument("<files...>", "JSON results of `vmsim stress --seeds … --out`")
    .action(function (this: Command, files: string[]) {
      try {
        process.exitCode = mergeCommand(files, readOptions(this, MERGE_OPTIONS));
      } catch (e) {
        if (e instanceof RangeError) throw new UsageError(e.message);
        throw e;
      }
    });

  addOptions(addOptions(p.command("exec"), EXEC_MACHINE_OPTIONS), EXEC_OPTIONS)
    .description("run an op script (one JSON object per line) and print one JSON result line per op")
    .addHelpText("after", "\nThe op-script contract (every op, field, result and exit status): docs/exec.md")
    .action(async function (this: Command) {
      // Deferred work runs only where the script says flush_work (and once at its end).
      const config = machineConfig(this, EXEC_MACHINE_OPTIONS, { workqueue: "explicit" });
      const opts = readOptions(this, EXEC_OPTIONS);
      let input: NodeJS.ReadableStream;
      try {
        input = openScript(opts.script);
      } catch (e) {
        throw new UsageError(`cannot read the script: ${(e as Error).message}`);
      }
      process.exitCode = await execScript(config, input);
    });

  addOptions(addOptions(p.command("map"), EXEC_MACHINE_OPTIONS), MAP_OPTIONS)
    .description("run an op script as exec does, then draw the vmalloc area it leaves as an SVG (docs/map.md)")
    .action(async function (this: Command) {
      const config = machineConfig(this, EXEC_MACHINE_OPTIONS, { workqueue: "explicit" });
      usage(() => checkMapKernel(config.kernel));
      const opts = readOptions(this, MAP_OPTIONS);
      let input: NodeJS.ReadableStream;
      try {
        input = openScript(opts.script);
      } catch (e) {
        throw new UsageError(`cannot read the script: ${(e as Error).message}`);
      }
      process.exitCode = await mapScript(config, opts.script, input, opts.out);
    });

  const test = addOptions(
    addOptions(addOptions(addOptions(p.command("test"), TEST_MACHINE_OPTIONS), TEST_DEBUG_OPTIONS), TEST_OPTIONS),
    TEST_CAMPAIGN_OPTIONS,
  )
    .description(
      "run lib/test_vmalloc.c's tests on the machine's CPUs: the module's Summary lines, checks, a SUMMARY line",
    )
    .addHelpText("after", TEST_HELP)
    .action(async function (this: Command) {
      const config = machineConfig(this, TEST_MACHINE_OPTIONS, testModeMachine(this));
      const run = usage(() => testRunOf(this, config));
      // Campaigns (src/cli/test_campaign.ts): with --seeds or --shard, one machine per (test, seed).
      const campaign = readOptions(this, TEST_CAMPAIGN_OPTIONS);
      if (campaign.seeds !== null && this.getOptionValueSource("seed") === "cli")
        throw new UsageError("--seed and --seeds exclude each other");
      if (campaign.seeds === null && campaign.shard === null) {
        if (campaign.out !== null) throw new UsageError("--out writes a campaign's results: give --seeds or --shard");
        process.exitCode = await runTest(config, run);
        return;
      }
      const seeds = campaign.seeds ?? { from: config.seed, to: config.seed };
      process.exitCode = await testCampaign(config, run, { ...campaign, seeds });
    });
  // `vmsim test merge`: its --out is its own.
  test.enablePositionalOptions();
  addOptions(test.command("merge"), MERGE_OPTIONS)
    .description("merge test campaign results (shards): items by test and seed, totals, failing items and their reruns")
    .argument("<files...>", "JSON results of `vmsim test --seeds … [--shard i/n] --out`")
    .action(function (this: Command, files: string[]) {
      process.exitCode = usage(() => testMergeCommand(files, readOptions(this, MERGE_OPTIONS)));
    });

  const bench = addOptions(p.command("bench"), BENCH_OPTIONS)
    .description("run test_vmalloc cases on machines of 1, 2, 4 … CPUs; write a JSON, Markdown and SVG scaling report")
    .action(async function (this: Command) {
      const opts = readOptions(this, BENCH_OPTIONS);
      try {
        checkBench(opts);
      } catch (e) {
        if (e instanceof RangeError) throw new UsageError(e.message);
        throw e;
      }
      process.exitCode = await runBench(opts);
    });
  // `vmsim bench merge` (src/cli/bench_shard.ts): its --out is its own, not bench's.
  bench.enablePositionalOptions();
  addOptions(bench.command("merge"), BENCH_MERGE_OPTIONS)
    .description("merge bench results (shards, or CPU counts measured on other hosts): the same files, recomputed")
    .argument("<paths...>", "folders (or their scaling.json) written by `vmsim bench [--shard i/n] --out`")
    .action(function (this: Command, paths: string[]) {
      const { out } = readOptions(this, BENCH_MERGE_OPTIONS);
      process.exitCode = usage(() => benchMergeCommand(paths, out));
    });

  const explore = addOptions(addOptions(p.command("explore"), EXPLORE_MACHINE_OPTIONS), EXPLORE_OPTIONS)
    .description(
      "run a scenario under the deterministic scheduler until it fails or the budget ends; write a replay file",
    )
    .addHelpText("after", () => `\nScenarios: ${scenarioNames().join(", ")}`)
    .action(async function (this: Command) {
      const opts = readOptions(this, EXPLORE_OPTIONS);
      if (opts.script !== null && this.getOptionValueSource("scenario") === "cli")
        throw new UsageError("--script and --scenario exclude each other");
      if (opts.shard !== null && opts.strategy === "portfolio")
        throw new UsageError(
          "--shard splits pct, random, rr and exhaustive, not a portfolio (its exhaustive share is one search)",
        );
      // The scenario's settings beat the flags' defaults, not the flags given.
      const flags = readOptions(this, EXPLORE_MACHINE_OPTIONS);
      const given = Object.fromEntries(
        Object.entries(flags).filter(([k]) => this.getOptionValueSource(k) === "cli"),
      ) as Partial<MachineConfig>;
      if (opts.script !== null) {
        const path = opts.script;
        const base = usage(() => makeConfig({ ...flags, ...scriptScenario([[]]).config, ...given }));
        const script = usage(() => readScript(path, base));
        process.exitCode = await exploreCommand(base, scriptScenario(script), opts, script);
        return;
      }
      const scenario = usage(() => scenarioOf(opts.scenario));
      // A scenario that needs more memory than the default gets it, unless --memory says otherwise.
      const memory = scenario.memory?.(flags.cpus, opts.ops ?? scenario.ops) ?? flags.memory;
      const config = usage(() => makeConfig({ ...flags, memory, ...scenario.config, ...given }));
      usage(() => checkScenarioKernel(scenario, config.kernel));
      process.exitCode = await exploreCommand(config, scenario, opts);
    });
  // Campaigns across machines: `vmsim explore merge` joins the shards' results (its --out and --json are its own).
  explore.enablePositionalOptions();
  addOptions(explore.command("merge"), MERGE_OPTIONS)
    .description("merge the results of vmsim explore --shard: totals, distinct schedules, each failure once, coverage")
    .argument("<files...>", "explore-shard-<i>-of-<n>.json files of `vmsim explore --shard i/n`")
    .action(function (this: Command, files: string[]) {
      process.exitCode = usage(() => exploreMergeCommand(files, readOptions(this, MERGE_OPTIONS)));
    });

  addOptions(p.command("replay"), REPLAY_OPTIONS)
    .description("replay a recorded run bit for bit (stops loudly at the first divergence)")
    .argument("<file>", "a replay file written by vmsim explore or vmsim shrink")
    .action(async function (this: Command, file: string) {
      const f = usage(() => readReplayFile(file));
      const opts = readOptions(this, REPLAY_OPTIONS);
      if (opts.map !== null) usage(() => checkMapKernel(f.config.kernel));
      // A KCSAN run's watch windows are sched points of its own: it replays only on the KCSAN build.
      if (opts.kcsan !== f.config.kcsan)
        throw new UsageError(
          f.config.kcsan
            ? `${file} records a --kcsan run: replay it with --kcsan`
            : `${file} records a run without --kcsan: replay it without --kcsan`,
        );
      // Strict rules watch other accesses (plain writes), so their windows fall elsewhere.
      if (opts.kcsanStrict !== f.config.kcsanStrict)
        throw new UsageError(
          f.config.kcsanStrict
            ? `${file} records a --kcsan-strict run: replay it with --kcsan-strict`
            : `${file} records a run without --kcsan-strict: replay it without --kcsan-strict`,
        );
      process.exitCode = await replayCommand(f, file, opts);
    });

  addOptions(p.command("shrink"), SHRINK_OPTIONS)
    .description("shrink a failing run: fewer preemptions, a shorter schedule, fewer operations and CPUs")
    .argument("<file>", "a replay file that records a failure")
    .action(async function (this: Command, file: string) {
      const f = usage(() => readReplayFile(file));
      if (f.failure === null) throw new UsageError(`${file} records no failure: nothing to shrink`);
      process.exitCode = await shrinkCommand(f, file, readOptions(this, SHRINK_OPTIONS));
    });

  return p;
}

/** Runs `fn`; a RangeError (a bad value found after parsing) becomes a usage error: one line, exit 2. */
function usage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

async function main(argv: string[]): Promise<void> {
  if (argv.length <= 2) {
    program().outputHelp();
    return;
  }
  try {
    await program().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and --version exit 0; every other commander error was already printed as one line.
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    if (e instanceof UsageError) {
      console.error(`vmsim: error: ${e.message}`);
      process.exitCode = EXIT_USAGE;
      return;
    }
    throw e;
  }
}

armTopLevel();
await main(process.argv).catch(dieOfEscapedError);
