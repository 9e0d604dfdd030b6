/** Machine configuration: immutable once the machine boots; every CPU gets a copy. */
import { type Layout, type LayoutName, isLayoutName, layoutFor } from "./layouts.js";
import { INJECTIONS, INJECT_NAMES, type InjectName, isInjectName } from "./inject.js";
import { BACKPORT_NAMES, type BackportName, KNOWN_RACES, isBackportName } from "./backport.js";

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** The buddy allocator's orders 0..MAX_ORDER-1 (include/linux/mmzone.h). */
export const MAX_ORDER = 11;

/** The vmalloc generations a machine can run: the kernel versions whose mm/vmalloc.c vmsim ports. */
export const KERNEL_VERSIONS = ["4.19", "5.10", "6.12"] as const;
export type KernelVersion = (typeof KERNEL_VERSIONS)[number];

export function isKernelVersion(s: unknown): s is KernelVersion {
  return typeof s === "string" && (KERNEL_VERSIONS as readonly string[]).includes(s);
}

export interface MachineConfig {
  /**
   * The kernel version whose vmalloc (mm/vmalloc.c) the machine runs, and whose arm64 address
   * layout it uses. @defaultValue "4.19"
   */
  readonly kernel: KernelVersion;
  /** Number of CPUs (worker threads). @defaultValue 2 */
  readonly cpus: number;
  /** Address layout preset. @defaultValue "arm64-va48" */
  readonly layout: LayoutName;
  /** Physical memory in bytes, a multiple of the page size. @defaultValue 64 MiB */
  readonly memory: number;
  /** Seed of every random choice (interrupts, workloads, fault injection). @defaultValue 1 */
  readonly seed: number;
  /** lockdep-lite: held-lock stacks, class order graph, atomic-sleep checks. @defaultValue true */
  readonly lockdep: boolean;
  /**
   * slub_debug=P, the boot parameter: the slab caches poison free objects and check the poison, the free
   * pointer and double frees (src/mm/slab.ts). Production kernels boot without it. @defaultValue true
   */
  readonly slubDebug: boolean;
  /**
   * Soft-lockup threshold (src/sched/watchdog.ts): a CPU inside one kernel call this long — looping, or
   * waiting on a lock — reports a soft lockup and stops the machine. @defaultValue 10000
   */
  readonly watchdogMs: number;
  /** Chance that an interrupt arrives at a sched point (src/kernel/irq.ts); 0: none. @defaultValue 0 */
  readonly irqRate: number;
  /**
   * When a CPU's kworker runs its pending work (src/kernel/workqueue.ts): "auto" at every safe workload
   * point (SP_OP), "explicit" only through run_pending_work / flush_work / flush_scheduled_work. @defaultValue "auto"
   */
  readonly workqueue: "auto" | "explicit";
  /** Deliberate bugs switched on (src/shared/inject.ts), for proving that stress runs catch them. @defaultValue [] */
  readonly inject: readonly InjectName[];
  /**
   * Known races whose later upstream annotation is applied to the port (src/shared/backport.ts): the
   * data-race detector stops reporting them. @defaultValue []
   */
  readonly backport: readonly BackportName[];
  /**
   * Span tracing (src/trace): events each CPU keeps in its trace ring, the last ones of the run, for a
   * Chrome/Perfetto trace (`--trace FILE`); 0 turns tracing off, and then no ring exists. @defaultValue 0
   */
  readonly trace: number;
  /**
   * KCSAN (docs/kcsan.md): the CPUs run the instrumented build (dist-kcsan/), whose every plain access of
   * kernel state checks the watchpoints and every kcsan_skip_watch-th one sets one up. @defaultValue false
   */
  readonly kcsan: boolean;
  /** CONFIG_KCSAN_SKIP_WATCH: accesses between two watchpoints of a CPU (randomized below it). @defaultValue 4000 */
  readonly kcsanSkipWatch: number;
  /** CONFIG_KCSAN_UDELAY_TASK: microseconds a task's watchpoint stays armed (free mode). @defaultValue 80 */
  readonly kcsanUdelayTask: number;
  /** CONFIG_KCSAN_UDELAY_INTERRUPT: microseconds an interrupt's watchpoint stays armed (free mode). @defaultValue 20 */
  readonly kcsanUdelayInterrupt: number;
  /**
   * CONFIG_KCSAN_STRICT: KCSAN's strictest rules — a conflict that left the value as it was is reported
   * (no CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY) and plain aligned writes are watched too (no
   * CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC). @defaultValue false
   */
  readonly kcsanStrict: boolean;
  /**
   * The report filter of /sys/kernel/debug/kcsan (its "!func" entries): a race whose either access has one
   * of these functions as its top frame is counted, not reported, and the run goes on. @defaultValue []
   */
  readonly kcsanSkipReport: readonly string[];
  /**
   * The arch spinlock of free-mode runs (src/locks/spinlock.ts): "pv-qspinlock", the paravirtual queued
   * spinlock, whose halted waiters never hold up running CPUs (no collapse with more CPUs than cores), or
   * "ticket", arm64's lock until v5.8. The deterministic scheduler (explore, replay) always runs "ticket".
   * @defaultValue "pv-qspinlock"
   */
  readonly spinlock: SpinlockKind;
}

/** The arch spinlocks a machine can run. */
export const SPINLOCK_KINDS = ["pv-qspinlock", "ticket"] as const;
export type SpinlockKind = (typeof SPINLOCK_KINDS)[number];

export const DEFAULT_CONFIG: MachineConfig = {
  kernel: "4.19",
  cpus: 2,
  layout: "arm64-va48",
  memory: 64 * 1024 * 1024,
  seed: 1,
  lockdep: true,
  slubDebug: true,
  watchdogMs: 10_000,
  irqRate: 0,
  workqueue: "auto",
  inject: [],
  backport: [],
  trace: 0,
  kcsan: false,
  kcsanSkipWatch: 4000,
  kcsanUdelayTask: 80,
  kcsanUdelayInterrupt: 20,
  kcsanStrict: false,
  kcsanSkipReport: [],
  spinlock: "pv-qspinlock",
};

/** Largest machine: record pointers are int32 byte offsets, so the arena stays below 2 GiB. */
export const MAX_MEMORY = 1536 * 1024 * 1024;
export const MAX_CPUS = 64;
/** The largest kcsan_skip_watch and watch window (µs) a machine takes. */
export const MAX_KCSAN_SKIP_WATCH = 1 << 30;
export const MAX_KCSAN_UDELAY = 1_000_000;
/** Functions the KCSAN report filter holds at most. */
export const MAX_KCSAN_SKIP_REPORT = 64;
/** A kernel function's name, as a report's call chain spells it (C identifiers). */
export const KERNEL_FUNCTION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Trace events all CPUs' rings may hold together (cpus × trace): 512 MiB of 32-byte events. */
export const MAX_TRACE_EVENTS = 1 << 24;

export function makeConfig(over: Partial<MachineConfig> = {}): MachineConfig {
  const c = { ...DEFAULT_CONFIG, ...over };
  if (!isKernelVersion(c.kernel))
    throw new RangeError(`unknown kernel ${JSON.stringify(c.kernel)}; expected one of ${KERNEL_VERSIONS.join(", ")}`);
  if (!Number.isInteger(c.cpus) || c.cpus < 1 || c.cpus > MAX_CPUS)
    throw new RangeError(`cpus must be an integer in 1..${MAX_CPUS}, got ${c.cpus}`);
  if (!isLayoutName(c.layout)) throw new RangeError(`unknown layout ${c.layout}`);
  if (!Number.isInteger(c.memory) || c.memory % (PAGE_SIZE << (MAX_ORDER - 1)) !== 0)
    throw new RangeError(`memory must be a multiple of 4 MiB (the largest buddy block), got ${c.memory}`);
  if (c.memory < 8 * 1024 * 1024 || c.memory > MAX_MEMORY)
    throw new RangeError(`memory must be between 8M and ${MAX_MEMORY / 1024 / 1024}M, got ${c.memory}`);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff)
    throw new RangeError(`seed must be an integer in 0..2^32-1, got ${c.seed}`);
  if (typeof c.lockdep !== "boolean")
    throw new RangeError(`lockdep must be true or false, got ${JSON.stringify(c.lockdep)}`);
  if (typeof c.slubDebug !== "boolean")
    throw new RangeError(`slubDebug must be true or false, got ${JSON.stringify(c.slubDebug)}`);
  if (!Number.isSafeInteger(c.watchdogMs) || c.watchdogMs < 1)
    throw new RangeError(`watchdogMs must be a positive integer (milliseconds), got ${JSON.stringify(c.watchdogMs)}`);
  if (typeof c.irqRate !== "number" || !(c.irqRate >= 0 && c.irqRate <= 1))
    throw new RangeError(`irqRate must be in 0..1, got ${JSON.stringify(c.irqRate)}`);
  if (c.workqueue !== "auto" && c.workqueue !== "explicit")
    throw new RangeError(`workqueue must be "auto" or "explicit", got ${c.workqueue}`);
  if (!Number.isInteger(c.trace) || c.trace < 0 || c.cpus * c.trace > MAX_TRACE_EVENTS)
    throw new RangeError(`trace must be an integer >= 0 with cpus × trace <= ${MAX_TRACE_EVENTS}, got ${c.trace}`);
  if (typeof c.kcsan !== "boolean") throw new RangeError(`kcsan must be true or false, got ${JSON.stringify(c.kcsan)}`);
  if (!Number.isInteger(c.kcsanSkipWatch) || c.kcsanSkipWatch < 1 || c.kcsanSkipWatch > MAX_KCSAN_SKIP_WATCH)
    throw new RangeError(`kcsanSkipWatch must be an integer in 1..${MAX_KCSAN_SKIP_WATCH}, got ${c.kcsanSkipWatch}`);
  for (const k of ["kcsanUdelayTask", "kcsanUdelayInterrupt"] as const)
    if (!Number.isInteger(c[k]) || c[k] < 0 || c[k] > MAX_KCSAN_UDELAY)
      throw new RangeError(`${k} must be an integer in 0..${MAX_KCSAN_UDELAY} (microseconds), got ${c[k]}`);
  if (typeof c.kcsanStrict !== "boolean")
    throw new RangeError(`kcsanStrict must be true or false, got ${JSON.stringify(c.kcsanStrict)}`);
  if (!Array.isArray(c.kcsanSkipReport) || c.kcsanSkipReport.length > MAX_KCSAN_SKIP_REPORT)
    throw new RangeError(
      `kcsanSkipReport must be a list of at most ${MAX_KCSAN_SKIP_REPORT} function names, got ${JSON.stringify(c.kcsanSkipReport)}`,
    );
  for (const f of c.kcsanSkipReport)
    if (typeof f !== "string" || !KERNEL_FUNCTION_NAME.test(f))
      throw new RangeError(`kcsanSkipReport: ${JSON.stringify(f)} is not a kernel function name`);
  if (!(SPINLOCK_KINDS as readonly string[]).includes(c.spinlock))
    throw new RangeError(
      `unknown spinlock ${JSON.stringify(c.spinlock)}; expected one of ${SPINLOCK_KINDS.join(", ")}`,
    );
  if (!Array.isArray(c.inject))
    throw new RangeError(`inject must be a list of injection names, got ${JSON.stringify(c.inject)}`);
  for (const name of c.inject) {
    if (!isInjectName(name))
      throw new RangeError(`unknown injection ${name}; expected one of ${INJECT_NAMES.join(", ")}`);
    // A switch lives in one generation's code: on another kernel it would silently do nothing.
    if (INJECTIONS[name].kernel !== c.kernel)
      throw new RangeError(
        `injection ${name} breaks the ${INJECTIONS[name].kernel} code, but the machine runs kernel ${c.kernel}; ` +
          `use --kernel ${INJECTIONS[name].kernel}`,
      );
  }
  if (!Array.isArray(c.backport))
    throw new RangeError(`backport must be a list of known-race names, got ${JSON.stringify(c.backport)}`);
  for (const name of c.backport) {
    if (!isBackportName(name))
      throw new RangeError(`unknown known race ${name}; expected one of ${BACKPORT_NAMES.join(", ")}`);
    const kernels: readonly KernelVersion[] = KNOWN_RACES[name].kernels;
    if (!kernels.includes(c.kernel))
      throw new RangeError(
        `known race ${name} is in the ${kernels.join(" and ")} code, but the machine runs kernel ${c.kernel}`,
      );
  }
  // The defaults' own empty lists, so that a rerun command line leaves --inject and --backport out.
  return {
    ...c,
    inject: c.inject.length === 0 ? DEFAULT_CONFIG.inject : c.inject,
    backport: c.backport.length === 0 ? DEFAULT_CONFIG.backport : c.backport,
  };
}

/** The machine's address layout: its preset as its kernel version's headers lay it out. */
export function layoutOf(c: MachineConfig): Layout {
  return layoutFor(c.kernel, c.layout);
}

/** Parses "64M", "1G", "65536K" or plain bytes; null when malformed. */
export function parseSize(s: string): number | null {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(s.trim());
  if (!m) return null;
  const mult = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as "" | "K" | "M" | "G"];
  return Number(m[1]) * mult;
}
