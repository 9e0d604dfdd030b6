/**
 * Every command-line option, declared once in a typed table (vitest's CLI
 * style). A table is keyed by the config field it fills, so a field of
 * {@link MachineConfig} (or of a command's own options) that has no flag here
 * is a compile error, and the same table parses arguments, writes help and
 * turns a config back into the command line that reproduces it.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { DEFAULT_CONFIG, MAX_CPUS, type MachineConfig, parseSize } from "../shared/config.js";
import { LAYOUTS, type LayoutName, isLayoutName } from "../shared/layouts.js";

/** One flag and how its value travels between the command line and the config. */
export interface CliOption<T> {
  /** Commander flags: `"--cpus <n>"`, `"--json"`, `"--no-lockdep"`. */
  readonly flags: string;
  readonly description: string;
  /** The value when the flag is absent. */
  readonly defaultValue: T;
  /** Parses the flag's argument; throws InvalidArgumentError saying what was expected. Absent for switches. */
  readonly parse?: (raw: string) => T;
  /** Formats a value as the flag's argument (for help and for the rerun command). @defaultValue String */
  readonly format?: (value: T) => string;
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

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "500ms", "15s", "10m", "1h" (a bare number is seconds) into milliseconds; null when malformed. */
export function parseDuration(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) return null;
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? "s"]!);
}

/** Formats milliseconds the way {@link parseDuration} reads them back. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

function durationArg(raw: string): number {
  const ms = parseDuration(raw);
  if (ms === null || ms <= 0) throw new InvalidArgumentError("expected a duration such as 500ms, 15s or 10m.");
  return ms;
}

/** Formats a byte count the way parseSize reads it back: "64M", "1G". */
export function formatSize(bytes: number): string {
  for (const [unit, mult] of [
    ["G", 1024 ** 3],
    ["M", 1024 ** 2],
    ["K", 1024],
  ] as const)
    if (bytes % mult === 0) return `${bytes / mult}${unit}`;
  return String(bytes);
}

/** The machine every command boots: one flag per {@link MachineConfig} field. */
export const MACHINE_OPTIONS: OptionTable<MachineConfig> = {
  cpus: {
    flags: "--cpus <n>",
    description: "number of CPUs (worker threads)",
    defaultValue: DEFAULT_CONFIG.cpus,
    parse: parseInteger("cpus", 1, MAX_CPUS),
  },
  layout: {
    flags: "--layout <name>",
    description: `address layout: ${Object.keys(LAYOUTS).join(", ")}`,
    defaultValue: DEFAULT_CONFIG.layout,
    parse: (raw): LayoutName => {
      if (!isLayoutName(raw))
        throw new InvalidArgumentError(`unknown layout; expected one of ${Object.keys(LAYOUTS).join(", ")}.`);
      return raw;
    },
  },
  memory: {
    flags: "--memory <size>",
    description: "physical memory, a multiple of 4M (e.g. 64M, 1G)",
    defaultValue: DEFAULT_CONFIG.memory,
    parse: (raw) => {
      const n = parseSize(raw);
      if (n === null) throw new InvalidArgumentError("expected a size such as 64M or 1G.");
      return n;
    },
    format: formatSize,
  },
  seed: {
    flags: "--seed <s>",
    description: "seed of every random choice; the same seed replays the same run",
    defaultValue: DEFAULT_CONFIG.seed,
    parse: parseInteger("seed", 0, 0xffffffff),
  },
  lockdep: {
    flags: "--no-lockdep",
    description: "turn off lockdep-lite (held-lock stacks, lock order checks)",
    defaultValue: DEFAULT_CONFIG.lockdep,
  },
  watchdogMs: {
    flags: "--watchdog <duration>",
    description: "soft-lockup threshold: a CPU stuck on one lock this long stops the machine",
    defaultValue: DEFAULT_CONFIG.watchdogMs,
    parse: durationArg,
    format: formatDuration,
  },
  irqRate: {
    flags: "--irq-rate <p>",
    description: "probability that an interrupt arrives at a sched point (0 = no interrupts)",
    defaultValue: DEFAULT_CONFIG.irqRate,
    parse: (raw) => {
      const p = /^\d*\.?\d+(?:e-?\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
      if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError("expected a probability in 0..1.");
      return p;
    },
  },
  workqueue: {
    flags: "--workqueue <mode>",
    description: 'when kworkers run pending work: "auto" (at every safe point) or "explicit" (flush_work only)',
    defaultValue: DEFAULT_CONFIG.workqueue,
    parse: (raw) => {
      if (raw !== "auto" && raw !== "explicit") throw new InvalidArgumentError('expected "auto" or "explicit".');
      return raw;
    },
  },
};

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

/** Interrupt rate `vmsim run` defaults to: device interrupts on, so vfree from hardirq context runs (the deferred path). */
export const RUN_IRQ_RATE = 0.001;

/** The machine flags of `vmsim run`: those of every command, with interrupts on by default. */
export const RUN_MACHINE_OPTIONS: OptionTable<MachineConfig> = {
  ...MACHINE_OPTIONS,
  irqRate: { ...MACHINE_OPTIONS.irqRate, defaultValue: RUN_IRQ_RATE },
};

/** The machine flags of `vmsim exec` (EXEC.md): its workqueue is always "explicit", the rest default. */
export type ExecMachineConfig = Pick<MachineConfig, "cpus" | "layout" | "memory" | "seed">;

export const EXEC_MACHINE_OPTIONS: OptionTable<ExecMachineConfig> = {
  cpus: MACHINE_OPTIONS.cpus,
  layout: MACHINE_OPTIONS.layout,
  memory: MACHINE_OPTIONS.memory,
  seed: MACHINE_OPTIONS.seed,
};

/** vmalloc generations `--alloc` can select; generation 1 (v4.19's) is the only one so far. */
export const ALLOCATORS = ["legacy"] as const;
export type AllocatorName = (typeof ALLOCATORS)[number];

/** Options of `vmsim exec`, beyond the machine's. */
export interface ExecOptions {
  /** The vmalloc generation to drive. @defaultValue "legacy" */
  readonly alloc: AllocatorName;
  /** The op script (JSON Lines); "-" reads standard input. @defaultValue "-" */
  readonly script: string;
}

export const EXEC_OPTIONS: OptionTable<ExecOptions> = {
  alloc: {
    flags: "--alloc <name>",
    description: `vmalloc generation: ${ALLOCATORS.join(", ")} (v4.19)`,
    defaultValue: "legacy",
    parse: (raw): AllocatorName => {
      const found = ALLOCATORS.find((a) => a === raw);
      if (found === undefined)
        throw new InvalidArgumentError(`unknown allocator; expected one of ${ALLOCATORS.join(", ")}.`);
      return found;
    },
  },
  script: {
    flags: "--script <file>",
    description: 'the op script, one JSON object per line ("-": standard input)',
    defaultValue: "-",
    parse: (raw) => raw,
  },
};

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

/** The flags that reproduce `values` (those that differ from their defaults), e.g. `--cpus 4 --seed 9`. */
export function commandLineOf<C>(table: OptionTable<C>, values: C): string[] {
  const args: string[] = [];
  for (const key of Object.keys(table) as (keyof C)[]) {
    const spec = table[key];
    const v = values[key];
    if (v === spec.defaultValue) continue;
    const flag = spec.flags.split(" ")[0]!;
    if (spec.parse) args.push(flag, (spec.format ?? String)(v));
    else args.push(flag);
  }
  return args;
}
