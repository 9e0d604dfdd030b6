/**
 * How a run's settings are written on a command line: each setting's flag,
 * its default and the format of its value. A run names the command that
 * reruns it (runStress's `rerun`) from these tables without loading the CLI;
 * the CLI's option tables (src/cli/options.ts) add help text and parsers to
 * the same entries, so the flag a run prints is the flag the CLI reads.
 */
import { DEFAULT_CONFIG, type MachineConfig } from "../shared/config.js";

/** One flag: its spelling, the value when it is absent, how a value is written. */
export interface FlagSpec<T> {
  /** Commander flags: `"--cpus <n>"` (takes a value), `"--json"`, `"--no-lockdep"` (switches). */
  readonly flags: string;
  /** The value when the flag is absent. */
  readonly defaultValue: T;
  /** Formats a value as the flag's argument. @defaultValue String */
  readonly format?: (value: T) => string;
}

/** A table with exactly one flag per field of `C`. */
export type FlagTable<C> = { readonly [K in keyof C]-?: FlagSpec<C[K]> };

/** The flags that reproduce `values` (those that differ from their defaults), e.g. `--cpus 4 --seed 9`. */
export function commandLineOf<C>(table: FlagTable<C>, values: C): string[] {
  const args: string[] = [];
  for (const key of Object.keys(table) as (keyof C)[]) {
    const spec = table[key];
    const v = values[key];
    if (v === spec.defaultValue) continue;
    const [flag, arg] = spec.flags.split(" ");
    args.push(flag!);
    if (arg !== undefined) args.push((spec.format ?? String)(v));
  }
  return args;
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
export const MACHINE_FLAGS: FlagTable<MachineConfig> = {
  kernel: { flags: "--kernel <version>", defaultValue: DEFAULT_CONFIG.kernel },
  cpus: { flags: "--cpus <n>", defaultValue: DEFAULT_CONFIG.cpus },
  layout: { flags: "--layout <name>", defaultValue: DEFAULT_CONFIG.layout },
  memory: { flags: "--memory <size>", defaultValue: DEFAULT_CONFIG.memory, format: formatSize },
  seed: { flags: "--seed <s>", defaultValue: DEFAULT_CONFIG.seed },
  lockdep: { flags: "--no-lockdep", defaultValue: DEFAULT_CONFIG.lockdep },
  slubDebug: { flags: "--no-slub-debug", defaultValue: DEFAULT_CONFIG.slubDebug },
  watchdogMs: { flags: "--watchdog <duration>", defaultValue: DEFAULT_CONFIG.watchdogMs, format: formatDuration },
  irqRate: { flags: "--irq-rate <p>", defaultValue: DEFAULT_CONFIG.irqRate },
  workqueue: { flags: "--workqueue <mode>", defaultValue: DEFAULT_CONFIG.workqueue },
  inject: { flags: "--inject <names>", defaultValue: DEFAULT_CONFIG.inject, format: (names) => names.join(",") },
  backport: { flags: "--backport <names>", defaultValue: DEFAULT_CONFIG.backport, format: (names) => names.join(",") },
  trace: { flags: "--trace-buffer <events>", defaultValue: DEFAULT_CONFIG.trace },
  kcsan: { flags: "--kcsan", defaultValue: DEFAULT_CONFIG.kcsan },
  kcsanSkipWatch: { flags: "--kcsan-skip-watch <n>", defaultValue: DEFAULT_CONFIG.kcsanSkipWatch },
  kcsanUdelayTask: { flags: "--kcsan-udelay-task <us>", defaultValue: DEFAULT_CONFIG.kcsanUdelayTask },
  kcsanUdelayInterrupt: { flags: "--kcsan-udelay-interrupt <us>", defaultValue: DEFAULT_CONFIG.kcsanUdelayInterrupt },
  kcsanStrict: { flags: "--kcsan-strict", defaultValue: DEFAULT_CONFIG.kcsanStrict },
  kcsanSkipReport: {
    flags: "--kcsan-skip-report <funcs>",
    defaultValue: DEFAULT_CONFIG.kcsanSkipReport,
    format: (names) => names.join(","),
  },
  spinlock: { flags: "--spinlock <kind>", defaultValue: DEFAULT_CONFIG.spinlock },
};
