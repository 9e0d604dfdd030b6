/**
 * test_vmalloc cases (src/workers/workloads/test_vmalloc.ts) on a machine of N
 * CPUs, every CPU running the case at once as the module's workers do: what
 * `vmsim bench` and bench/vmalloc.ts measure.
 *
 * Each case runs once to warm up (JIT every CPU's path), then `repeats` times.
 * µs per vmalloc+vfree pair is the median over repeats × CPUs of each CPU's
 * timed loop / its pairs; pairs/s is for all CPUs together. The lock wait
 * share is the CPUs' time in contended lock waits (src/locks/lock_wait.ts)
 * over their time in the test, the median over repeats, in all and per lock
 * class.
 */
import { DEFAULT_CONFIG, type KernelVersion, MAX_MEMORY, type SpinlockKind } from "../shared/config.js";
import { lockWaitTime, resetLockWaitTime } from "../locks/lock_wait.js";
import { lockdep_class_name } from "../locks/lockdep.js";
import {
  TR_LOCK_ACQUIRE,
  TR_LOCK_ACQUIRED,
  TR_LOCK_CONTENDED,
  TR_LOCK_RELEASE,
  traceEntries,
  traceReset,
} from "../trace/trace.js";
import type { TestVmallocCase, TestVmallocResult } from "./workloads/test_vmalloc.js";
import { Machine } from "./machine.js";
import { statsOf } from "./measure.js";

const MiB = 1024 * 1024;

/** How to measure. */
export interface ScalingOptions {
  /** The vmalloc generation the machine runs. @defaultValue "4.19" */
  readonly kernel?: KernelVersion;
  /** The cases, by the module's names. */
  readonly tests: readonly TestVmallocCase[];
  /** Measured runs of each case (after one warm-up run). */
  readonly repeats: number;
  /** fix_size_alloc_test's test_loop_count; the other cases run a tenth (see {@link loopsFor}). */
  readonly loops: number;
  /** Boot with lockdep on. @defaultValue false (the kernel's figures come from production kernels) */
  readonly lockdep?: boolean;
  /** Boot with slub_debug=P (slab poisoning). @defaultValue false, as lockdep */
  readonly slubDebug?: boolean;
  /** Trace events each CPU keeps (MachineConfig.trace). @defaultValue 0: tracing off, as lockdep */
  readonly trace?: number;
  /** The machine's spinlock (src/locks/spinlock.ts). @defaultValue DEFAULT_CONFIG.spinlock */
  readonly spinlock?: SpinlockKind;
  /** Physical memory of the machine. @defaultValue {@link memoryFor} */
  readonly memory?: number;
  /** Called after every run, warm-ups included (progress). */
  readonly onRun?: (test: TestVmallocCase, cpus: number) => void;
}

/** One (case, CPU count) measurement. */
export interface ScalingPoint {
  readonly kernel: KernelVersion;
  readonly test: TestVmallocCase;
  readonly cpus: number;
  /** test_loop_count of the case. */
  readonly loops: number;
  /** µs per vmalloc+vfree pair: median over repeats × CPUs of (timed loop / pairs). */
  readonly usPerPair: number;
  /** 95 % relative margin of error of the mean µs per pair, percent. */
  readonly rmePct: number;
  readonly samples: number;
  /** The timed loop of one CPU's run, ms (median over repeats × CPUs): how long each sample ran. */
  readonly loopMs: number;
  /** The module's figure: the whole test in µs (median over repeats × CPUs). */
  readonly testUsec: number;
  /** Pairs per second, all CPUs together. */
  readonly pairsPerSec: number;
  /** Share of the CPUs' test time spent waiting for contended locks, percent (median over repeats). */
  readonly lockWaitPct: number;
  /**
   * The same share per lock class waited for ("vmap_area_lock": 12.5), each the
   * median over repeats (a run without waits for the class counts 0), largest first.
   */
  readonly lockWaitByLock: Readonly<Record<string, number>>;
}

/** test_loop_count of `test`: the loop count for fix_size; a tenth for cases whose pairs map ~50 pages or walk 15000 areas. */
export function loopsFor(test: TestVmallocCase, loops: number): number {
  return test === "fix_size_alloc_test" ? loops : Math.max(1, Math.round(loops / 10));
}

/**
 * MiB one CPU running `test` may hold at once: long_busy_list keeps 15000
 * one-page areas, full_fit fls(CPUs) × 8192 kept and as many junk pages,
 * pcpu_alloc 35000 percpu objects (up to 1 KiB in every CPU's unit),
 * kvfree_rcu up to its loop's pages until a grace period frees them; the
 * others a few hundred pages at most.
 */
function mibPerCpu(test: TestVmallocCase, cpus: number, loops: number): number {
  switch (test) {
    case "long_busy_list_alloc_test":
      return 64;
    case "full_fit_alloc_test":
      return 64 * (32 - Math.clz32(cpus)) + 16;
    case "pcpu_alloc_test":
      return 24 * cpus;
    case "kvfree_rcu_1_arg_vmalloc_test":
    case "kvfree_rcu_2_arg_vmalloc_test":
      return 16 + Math.ceil(loopsFor(test, loops) / 256);
    default:
      return 16;
  }
}

/**
 * The memory a machine of `cpus` CPUs needs to run `tests` one after another
 * with fix_size's loop count `loops`: 128 MiB plus the neediest test's
 * {@link mibPerCpu} for every CPU. Throws a RangeError beyond MAX_MEMORY.
 */
export function memoryFor(cpus: number, tests: readonly TestVmallocCase[], loops: number): number {
  const needs = tests.map((t) => ({ t, mib: 128 + mibPerCpu(t, cpus, loops) * cpus }));
  const worst = needs.reduce((a, b) => (b.mib > a.mib ? b : a));
  const memory = Math.ceil(worst.mib / 4) * 4 * MiB;
  if (memory > MAX_MEMORY)
    throw new RangeError(
      `${worst.t} on ${cpus} CPUs needs ${memory / MiB} MiB; a machine has at most ${MAX_MEMORY / MiB} MiB`,
    );
  return memory;
}

/** Each lock class's median share over the runs (0 in a run that never waited for it), largest first. */
function medianByLock(runs: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const names = new Set(runs.flatMap((r) => Object.keys(r)));
  const medians = [...names].map((n) => [n, statsOf(runs.map((r) => r[n] ?? 0)).median] as const);
  return Object.fromEntries(medians.filter(([, pct]) => pct > 0).sort((a, b) => b[1] - a[1]));
}

/** One measured run of a case on a machine: each CPU's figures and the lock waits (what a point is the median of). */
export interface ScalingSample {
  readonly kernel: KernelVersion;
  readonly test: TestVmallocCase;
  readonly cpus: number;
  /** test_loop_count of the case. */
  readonly loops: number;
  /** Which of the `repeats` measured runs this is, 0-based. */
  readonly repeat: number;
  /** Each CPU's timed loop / its pairs, µs. */
  readonly perPairUs: readonly number[];
  /** Each CPU's timed loop, µs. */
  readonly loopUsec: readonly number[];
  /** Each CPU's whole test (the module's figure), µs. */
  readonly testUsec: readonly number[];
  /** Share of the CPUs' test time in contended lock waits, percent. */
  readonly lockWaitPct: number;
  /** The same share per lock class waited for. */
  readonly lockWaitByLock: Readonly<Record<string, number>>;
}

/**
 * The point of one (kernel, case, CPU count) from its samples: medians over
 * repeats × CPUs. The samples' order (by repeat) fixes the float sums of ±rme.
 */
export function scalingPoint(samples: readonly ScalingSample[]): ScalingPoint {
  const first = samples[0];
  if (first === undefined) throw new RangeError("a point needs at least one sample");
  const runs = [...samples].sort((a, b) => a.repeat - b.repeat);
  const s = statsOf(runs.flatMap((r) => r.perPairUs));
  return {
    kernel: first.kernel,
    test: first.test,
    cpus: first.cpus,
    loops: first.loops,
    usPerPair: s.median,
    rmePct: s.rmePct,
    samples: s.samples,
    loopMs: statsOf(runs.flatMap((r) => r.loopUsec)).median / 1000,
    testUsec: statsOf(runs.flatMap((r) => r.testUsec)).median,
    pairsPerSec: (first.cpus * 1e6) / s.median,
    lockWaitPct: statsOf(runs.map((r) => r.lockWaitPct)).median,
    lockWaitByLock: medianByLock(runs.map((r) => r.lockWaitByLock)),
  };
}

/** Which measured runs to make: all of them, or those `only` keeps (a shard's). */
export interface ScalingRunsOptions extends ScalingOptions {
  /** Keep repeat `repeat` (0-based) of `test`; a case with none kept is not run at all. @defaultValue every run */
  readonly only?: (test: TestVmallocCase, repeat: number) => boolean;
}

/**
 * Measures the cases of `opts.tests` on one machine of `cpus` CPUs: each
 * case's warm-up, then its measured runs (those `opts.only` keeps). Run r of
 * case i is the workload's round i × (repeats + 1) + r + 2 whichever runs are
 * kept, so that a shard's run draws what the unsharded run's does. Throws if a
 * case fails or reports.
 */
export async function measureTestVmallocRuns(cpus: number, opts: ScalingRunsOptions): Promise<ScalingSample[]> {
  const memory = opts.memory ?? memoryFor(cpus, opts.tests, opts.loops);
  const kernel = opts.kernel ?? "4.19";
  // The production configuration by default: the kernel's figures come from kernels without these.
  const m = await Machine.boot({
    kernel,
    cpus,
    seed: 1,
    memory,
    lockdep: opts.lockdep ?? false,
    slubDebug: opts.slubDebug ?? false,
    trace: opts.trace ?? 0,
    spinlock: opts.spinlock ?? DEFAULT_CONFIG.spinlock,
  });
  const run = async (test: TestVmallocCase, loops: number, round: number) => {
    resetLockWaitTime();
    const rs = (await m.runAll("test_vmalloc", { test, loops, round }).catch((e: Error) => {
      throw new Error(`${test}: ${e.message}`);
    })) as TestVmallocResult[];
    if (!rs.every((r) => r.passed)) throw new Error(`${test} failed on ${cpus} CPUs`);
    if (m.reports.length > 0) throw new Error(`${test}: ${m.reports[0]!.kind}: ${m.reports[0]!.text}`);
    // A CPU waits at most as long as it ran: the estimate (spins at a sampled price per try) can
    // overshoot when the host preempts a timed wait, so each CPU's share is capped at its run time
    // and its classes' shares scaled down with it.
    const waits = lockWaitTime();
    const testNs = rs.reduce((a, r) => a + r.usec * 1000, 0);
    let waitNs = 0;
    const byLockNs = new Map<string, number>();
    rs.forEach((r, cpu) => {
      const w = waits[cpu];
      if (w === undefined || w.ns === 0) return;
      const scale = Math.min(1, (r.usec * 1000) / w.ns);
      waitNs += w.ns * scale;
      for (const [name, ns] of Object.entries(w.byLock)) byLockNs.set(name, (byLockNs.get(name) ?? 0) + ns * scale);
    });
    // The capped sums are ≤ testNs but summed in another order: clamp the float rounding (100.00000000000003).
    const pct = (ns: number) => (testNs > 0 ? Math.min(100, (100 * ns) / testNs) : 0);
    opts.onRun?.(test, cpus);
    return { rs, lockWaitPct: pct(waitNs), byLock: Object.fromEntries([...byLockNs].map(([n, ns]) => [n, pct(ns)])) };
  };
  try {
    const samples: ScalingSample[] = [];
    for (const [i, test] of opts.tests.entries()) {
      const repeats = Array.from({ length: opts.repeats }, (_, r) => r).filter((r) => opts.only?.(test, r) ?? true);
      if (repeats.length === 0) continue;
      const loops = loopsFor(test, opts.loops);
      const round = i * (opts.repeats + 1) + 1;
      await run(test, Math.max(1, Math.round(loops / 10)), round);
      for (const repeat of repeats) {
        const r = await run(test, loops, round + 1 + repeat);
        samples.push({
          kernel,
          test,
          cpus,
          loops,
          repeat,
          perPairUs: r.rs.map((cpu) => cpu.loopUsec / cpu.pairs),
          loopUsec: r.rs.map((cpu) => cpu.loopUsec),
          testUsec: r.rs.map((cpu) => cpu.usec),
          lockWaitPct: r.lockWaitPct,
          lockWaitByLock: r.byLock,
        });
      }
    }
    return samples;
  } finally {
    await m.shutdown();
  }
}

/** Measures every case of `opts.tests` on one machine of `cpus` CPUs, each its warm-up and `repeats` runs. Throws if a case fails or reports. */
export async function measureTestVmalloc(cpus: number, opts: ScalingOptions): Promise<ScalingPoint[]> {
  const samples = await measureTestVmallocRuns(cpus, opts);
  return opts.tests.map((test) => scalingPoint(samples.filter((s) => s.test === test)));
}

/** Where the CPUs' time went in a traced run of one case: CONFIG_LOCK_STAT's holdtime and waittime, as shares. */
export interface LockHoldShares {
  readonly kernel: KernelVersion;
  readonly test: TestVmallocCase;
  readonly cpus: number;
  /** test_loop_count of the traced run. */
  readonly loops: number;
  /** The traced window, all CPUs' together (each CPU's ring holds its last events), ns. */
  readonly windowNs: number;
  /** Share of the window with at least one lock held (and not waiting for another), percent. */
  readonly heldPct: number;
  /** Share waiting for contended locks (lock_contended → lock_acquired), percent. */
  readonly waitPct: number;
  /** Share with no lock held and no wait: the work outside the locks, percent. */
  readonly outsidePct: number;
  /** Each class's critical sections (acquire → release, nested ones counted in each), percent, largest first. */
  readonly heldByLock: Readonly<Record<string, number>>;
  /** Each class's contended waits, percent, largest first. */
  readonly waitByLock: Readonly<Record<string, number>>;
  /** Each class's kind, as the lock events name it: spin, read, write, mutex. */
  readonly kinds: Readonly<Record<string, string>>;
}

const LOCK_KINDS = ["spin", "read", "write", "mutex"];

/** Percent of `total`, each entry, largest first, those ≥ 0.01 %. */
function sharesOf(ns: ReadonlyMap<string, number>, total: number): Record<string, number> {
  const pct = [...ns].map(([n, v]) => [n, total > 0 ? (100 * v) / total : 0] as const);
  return Object.fromEntries(pct.filter(([, p]) => p >= 0.01).sort((a, b) => b[1] - a[1]));
}

/**
 * Runs `test` once on a machine of `cpus` CPUs with span tracing on (each
 * CPU keeping its last `events` events) and splits each CPU's traced window
 * into time waiting for a lock, time holding one, and time outside every
 * lock, in all and per lock class. The lock events cost a little each, so
 * the shares are of a slightly slower run than the untraced one.
 */
export async function measureLockHold(
  cpus: number,
  opts: { kernel?: KernelVersion; test: TestVmallocCase; loops: number; memory?: number; events?: number },
): Promise<LockHoldShares> {
  const kernel = opts.kernel ?? "4.19";
  const loops = loopsFor(opts.test, opts.loops);
  const m = await Machine.boot({
    kernel,
    cpus,
    seed: 1,
    memory: opts.memory ?? memoryFor(cpus, [opts.test], opts.loops),
    lockdep: false,
    slubDebug: false,
    trace: opts.events ?? 1 << 17,
  });
  try {
    await m.runAll("test_vmalloc", { test: opts.test, loops: Math.max(1, Math.round(loops / 10)), round: 1 });
    traceReset();
    await m.runAll("test_vmalloc", { test: opts.test, loops, round: 2 });
    let windowNs = 0;
    let heldNs = 0;
    let waitNs = 0;
    const heldBy = new Map<string, number>();
    const waitBy = new Map<string, number>();
    const kinds: Record<string, string> = {};
    const add = (map: Map<string, number>, name: string, ns: number) => map.set(name, (map.get(name) ?? 0) + ns);
    for (let cpu = 0; cpu < cpus; cpu++) {
      const events = traceEntries(cpu);
      if (events.length < 2) continue;
      windowNs += events.at(-1)!.ts - events[0]!.ts;
      const held = new Map<number, { cls: number; ts: number }>();
      let waiting: { cls: number; ts: number } | null = null;
      let prev = events[0]!.ts;
      for (const e of events) {
        const dt = e.ts - prev;
        prev = e.ts;
        if (waiting !== null) waitNs += dt;
        else if (held.size > 0) heldNs += dt;
        if (e.type === TR_LOCK_CONTENDED) waiting = { cls: e.a, ts: e.ts };
        else if (e.type === TR_LOCK_ACQUIRED && waiting !== null) {
          add(waitBy, lockdep_class_name(waiting.cls), e.ts - waiting.ts);
          waiting = null;
        } else if (e.type === TR_LOCK_ACQUIRE) {
          held.set(e.key, { cls: e.a, ts: e.ts });
          kinds[lockdep_class_name(e.a)] = LOCK_KINDS[e.b] ?? String(e.b);
        } else if (e.type === TR_LOCK_RELEASE) {
          // A release whose acquire the ring no longer holds began before the window.
          const h = held.get(e.key);
          if (h === undefined) continue;
          held.delete(e.key);
          add(heldBy, lockdep_class_name(h.cls), e.ts - h.ts);
        }
      }
    }
    const pct = (ns: number) => (windowNs > 0 ? (100 * ns) / windowNs : 0);
    return {
      kernel,
      test: opts.test,
      cpus,
      loops,
      windowNs,
      heldPct: pct(heldNs),
      waitPct: pct(waitNs),
      outsidePct: pct(windowNs - heldNs - waitNs),
      heldByLock: sharesOf(heldBy, windowNs),
      waitByLock: sharesOf(waitBy, windowNs),
      kinds,
    };
  } finally {
    await m.shutdown();
  }
}
