/**
 * Fuzzing the command line: random argv built from each command's option
 * tables (src/cli/options.ts) — every flag with good values (small ones, so
 * that runs stay short) and bad ones, unknown flags, a flag whose value is
 * missing, stray arguments, unknown commands.
 *
 * Properties: every run ends in time with exit status 0, 1 or 2 and no stack
 * trace; a usage error is one line; an unknown flag or a missing value is a
 * usage error (exit status 2).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { KERNEL_VERSIONS, SPINLOCK_KINDS } from "../../src/shared/config.js";
import { LAYOUT_NAMES } from "../../src/shared/layouts.js";
import { INJECT_NAMES } from "../../src/shared/inject.js";
import { BACKPORT_NAMES } from "../../src/shared/backport.js";
import { EXPLORE_STRATEGIES } from "../../src/explore/explore.js";
import {
  BENCH_MERGE_OPTIONS,
  BENCH_OPTIONS,
  CAMPAIGN_OPTIONS,
  type CliOption,
  EXEC_MACHINE_OPTIONS,
  EXEC_OPTIONS,
  EXPLORE_MACHINE_OPTIONS,
  EXPLORE_OPTIONS,
  INFO_OPTIONS,
  MACHINE_OPTIONS,
  MAP_FILE_OPTIONS,
  MAP_OPTIONS,
  MERGE_OPTIONS,
  REPLAY_OPTIONS,
  RUN_MACHINE_OPTIONS,
  RUN_OPTIONS,
  SHRINK_OPTIONS,
  STRESS_MACHINE_OPTIONS,
  STRESS_OPTIONS,
  TEST_CAMPAIGN_OPTIONS,
  TEST_MACHINE_OPTIONS,
  TEST_OPTIONS,
  TRACE_OPTIONS,
} from "../../src/cli/options.js";
import { FuzzFailure, checkRun, runVmsim } from "./process.js";

/** Files each case's folder holds, for the flags and arguments that name one. */
const SCRIPT = "script.jsonl";
const REPLAY = "replay.json";

/** A command: its words, the option tables it takes, the flags that keep its runs short, its arguments. */
interface CommandSpec {
  readonly words: readonly string[];
  readonly tables: readonly Readonly<Record<string, Pick<CliOption<unknown>, "flags">>>[];
  /** Given first, so that a flag later on the line overrides them (with a good value: a short one too). */
  readonly bounded: readonly string[];
  /** Its positional arguments, good ones first. */
  readonly args: readonly string[];
}

const COMMANDS: readonly CommandSpec[] = [
  { words: ["info"], tables: [MACHINE_OPTIONS, INFO_OPTIONS], bounded: [], args: [] },
  {
    words: ["run"],
    tables: [RUN_MACHINE_OPTIONS, RUN_OPTIONS, TRACE_OPTIONS],
    bounded: ["--duration", "300ms"],
    args: [],
  },
  {
    words: ["stress"],
    tables: [STRESS_MACHINE_OPTIONS, STRESS_OPTIONS, TRACE_OPTIONS, MAP_FILE_OPTIONS, CAMPAIGN_OPTIONS],
    bounded: ["--duration", "300ms"],
    args: [],
  },
  { words: ["stress", "merge"], tables: [MERGE_OPTIONS], bounded: [], args: [SCRIPT, "missing.json"] },
  { words: ["exec"], tables: [EXEC_MACHINE_OPTIONS, EXEC_OPTIONS], bounded: ["--script", SCRIPT], args: [] },
  { words: ["map"], tables: [EXEC_MACHINE_OPTIONS, MAP_OPTIONS], bounded: ["--script", SCRIPT], args: [] },
  {
    words: ["test"],
    tables: [TEST_MACHINE_OPTIONS, TEST_OPTIONS, TEST_CAMPAIGN_OPTIONS],
    bounded: ["--test-loop-count", "10", "--run-test-mask", "1", "--test-repeat-count", "1"],
    args: [],
  },
  {
    words: ["bench"],
    tables: [BENCH_OPTIONS],
    bounded: ["--loops", "10", "--repeats", "1", "--cpus", "1", "--tests", "fix_size", "--out", "bench-out"],
    args: [],
  },
  { words: ["test", "merge"], tables: [MERGE_OPTIONS], bounded: [], args: [SCRIPT, "missing.json"] },
  { words: ["bench", "merge"], tables: [BENCH_MERGE_OPTIONS], bounded: [], args: ["bench-out", "missing", "."] },
  {
    words: ["explore"],
    tables: [EXPLORE_MACHINE_OPTIONS, EXPLORE_OPTIONS],
    bounded: ["--budget", "1s", "--iterations", "3"],
    args: [],
  },
  { words: ["explore", "merge"], tables: [MERGE_OPTIONS], bounded: [], args: [SCRIPT, REPLAY, "missing.json"] },
  { words: ["replay"], tables: [REPLAY_OPTIONS], bounded: [], args: [REPLAY, "missing.json", SCRIPT, "."] },
  { words: ["shrink"], tables: [SHRINK_OPTIONS], bounded: ["--budget", "1s"], args: [REPLAY, "missing.json", "."] },
];

/** Good values of every flag that takes one: small, so a run that accepts them ends in seconds. */
const GOOD: Readonly<Record<string, readonly string[]>> = {
  "--kernel": [...KERNEL_VERSIONS],
  "--cpus": ["1", "2", "3"],
  "--layout": [...LAYOUT_NAMES],
  "--memory": ["8M", "16M", "64M"],
  "--seed": ["0", "1", "42"],
  "--watchdog": ["1s", "10s"],
  "--irq-rate": ["0", "0.01"],
  "--workqueue": ["auto", "explicit"],
  "--inject": [INJECT_NAMES[0]!, `${INJECT_NAMES[1]},${INJECT_NAMES[2]}`],
  "--trace-buffer": ["0", "64"],
  "--kcsan-skip-watch": ["1", "4000"],
  "--kcsan-udelay-task": ["0", "80"],
  "--kcsan-udelay-interrupt": ["0", "20"],
  "--kcsan-skip-report": ["vb_free", "!clear_vm_uninitialized_flag,vmalloc_user"],
  "--spinlock": [...SPINLOCK_KINDS],
  "--backport": [...BACKPORT_NAMES],
  "--trace": ["trace.json"],
  "--map": ["map.svg"],
  "--duration": ["100ms", "300ms"],
  "--ops": ["1", "2", "50"],
  "--fail-page-alloc": ["0", "10"],
  "--stutter": ["0", "0.01"],
  "--rcu-walk": ["0", "0.5"],
  "--mix": ["vread=10%", "vm_unmap_aliases=5%,purge_vmap_area_lazy=1%"],
  "--seeds": ["1-2"],
  "--jobs": ["1", "2"],
  "--shard": ["1/2", "2/2"],
  "--out": ["out"],
  "--script": [SCRIPT],
  "--tests": ["fix_size", "fix_size,random_size"],
  "--repeats": ["1"],
  "--loops": ["10", "100"],
  "--nr-threads": ["0", "1", "2"],
  "--test-repeat-count": ["1", "2"],
  "--test-loop-count": ["10"],
  "--run-test-mask": ["1", "0x1"],
  "--nr-pages": ["0", "1", "2"],
  "--mode": ["manual", "performance", "smoke", "stress"],
  "--scenario": ["stress", "demo:abba", "demo:lost-update", "test_vmalloc:fix_size_alloc_test"],
  "--strategy": [...EXPLORE_STRATEGIES],
  "--depth": ["1", "3"],
  "--p": ["0.1"],
  "--quantum": ["1", "5"],
  "--bound": ["0", "1"],
  "--budget": ["500ms", "1s"],
  "--iterations": ["1", "5"],
  "--sched-seed": ["1", "9"],
  "--step-cap": ["100000"],
  "--continue": ["random"],
  "--repeat": ["1", "2"],
};

/** Values few flags take: wrong types, signs, fractions, overflows, empty, odd spellings (none of them long-running). */
const BAD = [
  "",
  "-1",
  "0",
  "1.5",
  "NaN",
  "1e309",
  "99999999999999999999",
  "0x",
  "abc",
  " 2",
  "5-1",
  "1,,2",
  "0/0",
  "☃",
];
/** Flags no command has. */
const UNKNOWN = ["--nope", "-x", "--cpu", "--Cpus", "---cpus", "--=1"];

interface Flag {
  readonly name: string;
  readonly takesValue: boolean;
}

function flagsOf(spec: CommandSpec): Flag[] {
  const flags = spec.tables.flatMap((t) => Object.values(t).map((o) => o.flags));
  return [...new Set(flags)].map((f) => {
    const name = f.split(" ")[0]!;
    const takesValue = f.includes("<");
    if (takesValue && GOOD[name] === undefined) throw new Error(`the argv fuzzer has no good values for ${name}`);
    return { name, takesValue };
  });
}

/** A command line and whether it must be a usage error. */
export interface ArgvCase {
  readonly argv: readonly string[];
  readonly usageError: boolean;
}

/** One item on the line: [its words, whether it makes the line a usage error]. */
type Item = readonly [readonly string[], boolean];

function commandCase(spec: CommandSpec): fc.Arbitrary<ArgvCase> {
  const flags = flagsOf(spec);
  const item: fc.Arbitrary<Item> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .constantFrom(...flags)
        .chain((f) =>
          f.takesValue
            ? fc.constantFrom(...GOOD[f.name]!).map((v): Item => [[f.name, v], false])
            : fc.constant<Item>([[f.name], false]),
        ),
    },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom(...flags.filter((f) => f.takesValue))
        .chain((f) => fc.constantFrom(...BAD).map((v): Item => [[f.name, v], false])),
    },
    { weight: 1, arbitrary: fc.constantFrom(...UNKNOWN).map((u): Item => [[u], true]) },
  );
  const missing = flags.filter((f) => f.takesValue);
  return fc
    .record({
      items: fc.array(item, { maxLength: 4 }),
      arg: spec.args.length > 0 ? fc.constantFrom(...spec.args) : fc.constant(null),
      stray: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constant("stray") }),
      // A flag that takes a value, last on the line, with none.
      last: fc.oneof(
        { weight: 6, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: missing.length > 0 ? fc.constantFrom(...missing) : fc.constant(null) },
      ),
    })
    .map(({ items, arg, stray, last }) => ({
      argv: [
        ...spec.words,
        ...spec.bounded,
        ...(arg !== null ? [arg] : []),
        ...items.flatMap(([words]) => words),
        ...(stray !== null ? [stray] : []),
        ...(last !== null ? [last.name] : []),
      ],
      usageError: items.some(([, bad]) => bad) || last !== null,
    }));
}

/** Command lines of every command, and a few that name no command. */
export const argvCase: fc.Arbitrary<ArgvCase> = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...COMMANDS).chain((c) => commandCase(c)) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(["nope"], ["--nope"], ["-x", "info"], ["info", "--cpus"], ["stress", "merge"])
      .map((argv): ArgvCase => ({ argv, usageError: true })),
  },
);

/** A fresh folder for one case, with the files its arguments may name. */
export function argvFolder(parent: string, replayText: string): string {
  const dir = mkdtempSync(join(parent, "argv-"));
  writeFileSync(
    join(dir, SCRIPT),
    `${JSON.stringify({ op: "vmalloc", size: 8192, as: "a" })}\n{"op":"vfree","ref":"a"}\n`,
  );
  writeFileSync(join(dir, REPLAY), replayText);
  return dir;
}

/** Runs `vmsim` with the case's argv in a fresh folder below `parent` and checks every property. */
export async function runArgvCli(c: ArgvCase, parent: string, replayText: string, timeoutMs: number): Promise<void> {
  const r = await runVmsim(c.argv, { cwd: argvFolder(parent, replayText), timeoutMs });
  checkRun(r);
  if (c.usageError && r.code !== 2) throw new FuzzFailure(`a bad command line was not a usage error (exit ${r.code})`);
}
