/**
 * `vmsim test`: the kernel's lib/test_vmalloc.c on vmsim's CPUs
 * (src/workers/workloads/test_vmalloc.ts), with the module's parameters
 * (--nr-threads, --test-repeat-count, --test-loop-count, --run-test-mask,
 * --sequential-test-order, --nr-pages) and test_vmalloc.sh's presets
 * (--mode performance|stress|smoke).
 *
 * The main thread plays do_concurrent_test: it hands worker N (the kthread
 * vmalloc_test/N) to CPU N mod --cpus, lets them go together, waits, and
 * prints the module's lines — for each worker a Summary line per selected
 * test, then "All test took worker<N>=<cycles> cycles", where a cycle is one
 * nanosecond of the worker's wall-clock time. Then, as the module's unload
 * would not: the RCU callbacks, deferred vfrees and lazy purges the tests
 * left behind run, every invariant checker runs, and the memory is compared
 * with what it was before the tests (the leak check). One SUMMARY line ends
 * the output. Exit status 0 when every test but the expected failure passed,
 * no report (WARN, lockdep, fault …) was raised and the checks found nothing.
 */
import { type Command, Option } from "commander";
import type { KernelVersion, MachineConfig } from "../shared/config.js";
import type { Report } from "../shared/report.js";
import { checkMachine } from "../check/index.js";
import { memorySnapshot } from "../check/leak.js";
import { pcpuChunkCensus, pcpu_nr_pages } from "../mm/percpu_chunk.js";
import { Machine, MachineError } from "../workers/machine.js";
import {
  TEST_CASE_ARRAY,
  TEST_VMALLOC_MODULES,
  type TestReport,
  type TestVmallocModule,
  type TestVmallocCase,
  type VmallocTestParams,
  type VmallocTestWorker,
  resetTestVmallocProgress,
  testVmallocProgress,
} from "../workers/workloads/test_vmalloc.js";
import { commandLineOf } from "../workers/cmdline.js";
import { plural } from "../workers/format.js";
import { describeMachine, formatMachineInfo } from "./info.js";
import { ProgressBar } from "./progress.js";
import { resultLine } from "./result.js";
import {
  type CliOption,
  TEST_DEBUG_OPTIONS,
  TEST_OPTIONS,
  type TestMode,
  type TestOptions,
  readOptions,
  testMachineOptions,
} from "./options.js";

/** test_vmalloc.sh's templates (PERF_PARAM, STRESS_PARAM, SMOKE_PARAM), as option values. */
export const TEST_PRESETS: Readonly<Record<TestMode, Partial<TestOptions>>> = {
  manual: {},
  // "It runs all test cases on one single CPU with sequential order": one worker, as the module's nr_threads=0 gives.
  performance: { sequentialTestOrder: true, testRepeatCount: 3, nrThreads: 1 },
  // nr_threads=$NUM_CPUS
  stress: { nrThreads: 0, testRepeatCount: 20 },
  smoke: { testLoopCount: 10_000, testRepeatCount: 10 },
};

/** v5.10's test_vmalloc.sh: single_cpu_test=1 (one worker) for performance and smoke, every CPU for stress. */
const TEST_PRESETS_V5_10: Readonly<Record<TestMode, Partial<TestOptions>>> = {
  manual: {},
  performance: { sequentialTestOrder: true, testRepeatCount: 3, nrThreads: 1 },
  stress: { testRepeatCount: 20 },
  smoke: { testLoopCount: 10_000, testRepeatCount: 10, nrThreads: 1 },
};

/** The presets of `kernel`'s test_vmalloc.sh. */
function presetsOf(kernel: KernelVersion): Readonly<Record<TestMode, Partial<TestOptions>>> {
  return TEST_VMALLOC_MODULES[kernel].nrThreads ? TEST_PRESETS : TEST_PRESETS_V5_10;
}

/**
 * What --mode fixes of the machine: lockdep and slub_debug, where the command
 * line does not name them, as the mode boots them (performance: off).
 */
export function testModeMachine(cmd: Command): Partial<MachineConfig> {
  const table = testMachineOptions(readOptions(cmd, TEST_OPTIONS).mode);
  const keys = Object.keys(TEST_DEBUG_OPTIONS) as (keyof typeof TEST_DEBUG_OPTIONS)[];
  return Object.fromEntries(
    keys.filter((k) => cmd.getOptionValueSource(k) !== "cli").map((k) => [k, table[k].defaultValue]),
  );
}

/** A run of `vmsim test`, resolved: the module's parameters and what reruns it. */
export interface TestRunOptions {
  readonly mode: TestMode;
  /** nr_threads, resolved: workers (≥ 1). */
  readonly nrThreads: number;
  readonly params: VmallocTestParams;
  /** The command line that reruns this test. */
  readonly rerun: string;
  /** The test flags given on the command line, each with its value: what a rerun repeats. */
  readonly flags: readonly (readonly string[])[];
}

/** The command line that reruns the test of `opts` on `config` (a campaign's item: its seed, one case's mask). */
export function testRerun(config: MachineConfig, opts: TestRunOptions, runTestMask?: number): string {
  const mask = runTestMask === undefined ? [] : [TEST_OPTIONS.runTestMask.flags.split(" ")[0]!];
  const flags = opts.flags.filter((f) => !mask.includes(f[0]!)).flat();
  if (runTestMask !== undefined) flags.push(mask[0]!, TEST_OPTIONS.runTestMask.format!(runTestMask));
  return ["vmsim", "test", ...commandLineOf(testMachineOptions(opts.mode), config), ...flags].join(" ");
}

/**
 * The run `cmd`'s flags ask for: the preset of --mode, overridden by every
 * test flag given on the command line; nr_threads 0 becomes one per CPU.
 */
export function testRunOf(cmd: Command, config: MachineConfig): TestRunOptions {
  const raw = readOptions(cmd, TEST_OPTIONS);
  const keys = Object.keys(TEST_OPTIONS) as (keyof TestOptions)[];
  const given = keys.filter(
    (k) => cmd.getOptionValueSource(new Option(TEST_OPTIONS[k].flags).attributeName()) === "cli",
  );
  const o: TestOptions = { ...raw, ...presetsOf(config.kernel)[raw.mode] };
  for (const k of given) Object.assign(o, { [k]: raw[k] });
  const module = TEST_VMALLOC_MODULES[config.kernel];
  // A version without nr_threads runs a kthread per CPU, or one (single_cpu_test); without nr_pages, 3-page fix_size.
  if (!module.nrThreads && o.nrThreads !== 0 && o.nrThreads !== 1 && o.nrThreads !== config.cpus)
    throw new RangeError(
      `${module.source} has no nr_threads: one worker per CPU (--nr-threads 0) or one (1, its single_cpu_test)`,
    );
  if (!module.nrPages && given.includes("nrPages"))
    throw new RangeError(`${module.source} has no nr_pages: its fix_size_alloc_test maps 3 pages`);

  // The rerun repeats the flags given, even one that equals its default: it overrides the preset.
  const flags = given.map((k) => {
    const spec = TEST_OPTIONS[k] as CliOption<unknown>;
    return [spec.flags.split(" ")[0]!, ...(spec.parse ? [(spec.format ?? String)(raw[k])] : [])];
  });
  const run = {
    mode: o.mode,
    nrThreads: o.nrThreads === 0 ? config.cpus : o.nrThreads,
    params: {
      testRepeatCount: o.testRepeatCount,
      testLoopCount: o.testLoopCount,
      runTestMask: o.runTestMask,
      sequentialTestOrder: o.sequentialTestOrder,
      nrPages: o.nrPages,
    },
    rerun: "",
    flags,
  };
  return { ...run, rerun: testRerun(config, run) };
}

/** `vmsim test --help`'s epilogue: the table of tests, what the output means, the exit status. */
export const TEST_HELP = [
  "",
  "The tests, in lib/test_vmalloc.c's table order (run_test_mask bit = 1 << index; --kernel 4.19 and 6.12):",
  ...TEST_CASE_ARRAY.map(
    (c, i) =>
      `  ${`0x${(1 << i).toString(16).padStart(3, "0")}`}  ${c.name}${c.xfail ? " (meant to fail: counted as xfailed)" : ""}`,
  ),
  "--kernel 5.10 runs v5.10's module: no vm_map_ram_test, 0x400 kvfree_rcu_1_arg_slab_test and 0x800",
  "kvfree_rcu_2_arg_slab_test, fix_size maps 3 pages (no --nr-pages), one worker per CPU or one (no other",
  "--nr-threads), 'All test took CPU<N>=…'. Before v6.17 (5.10, 6.12) the Summary lines have no xfailed field:",
  "align_shift_alloc_test's expected failure is counted in failed (vmsim still does not fail the run for it).",
  "",
  "Output: for each worker the module's lines, 'Summary: <test> passed: N failed: N xfailed: N repeat: N",
  "loops: N avg: N usec' per selected test and 'All test took worker<N>=<cycles> cycles', where a cycle is one",
  "nanosecond of the worker's wall-clock time (process.hrtime on its CPU's thread, from the start line to the",
  "end of its last test); then the checks after the run and one 'SUMMARY {json}' line.",
  "Exit status: 0 when every test but align_shift_alloc_test passed, no report was raised and the checks",
  "found no leak and no broken invariant; 1 otherwise; 2 for bad arguments.",
].join("\n");

/** Per test, all workers together, in the SUMMARY line. */
export interface TestCaseSummary {
  readonly test: TestVmallocCase;
  readonly passed: number;
  readonly failed: number;
  readonly xfailed: number;
  /** The workers' "avg: … usec", averaged. */
  readonly avgUsec: number;
}

/** The last line, after `SUMMARY `: what tools parse. */
export interface TestSummary {
  readonly command: "test";
  readonly ok: boolean;
  readonly mode: TestMode;
  /** The kernel version whose vmalloc (and lib/test_vmalloc.c) ran. */
  readonly kernel: KernelVersion;
  readonly cpus: number;
  readonly layout: string;
  readonly memory: number;
  readonly seed: number;
  readonly lockdep: boolean;
  readonly slubDebug: boolean;
  /** Trace events each CPU kept (0: tracing off). */
  readonly trace: number;
  readonly nrThreads: number;
  readonly params: VmallocTestParams;
  /** Wall time of the tests (the module's run), ms. */
  readonly durationMs: number;
  /** The selected tests, in table order. */
  readonly tests: readonly TestCaseSummary[];
  readonly passed: number;
  readonly failed: number;
  readonly xfailed: number;
  /** Each worker: its CPU, its cycles (ns) and its Summary figures. */
  readonly workers: readonly {
    readonly worker: number;
    readonly cpu: number;
    readonly cycles: number;
    readonly tests: readonly { test: TestVmallocCase; passed: number; failed: number; xfailed: number; usec: number }[];
  }[];
  /** Reports that fail the run, and align_shift_alloc_test's expected allocation warnings. */
  readonly reports: number;
  readonly expectedReports: number;
  /** The leak check's page arithmetic; null when the run stopped before it. */
  readonly leak: {
    readonly freeStart: number;
    readonly freeEnd: number;
    readonly pagetableDelta: number;
    readonly slabDelta: number;
    readonly percpuDelta: number;
    readonly leakedPages: number;
  } | null;
  readonly failures: readonly string[];
  readonly rerun: string;
}

/** Progress bar refresh. */
const PROGRESS_MS = 250;

function formatReport(r: Report, during: string): string {
  return `[CPU${r.cpu}] ${r.kind} during ${during}: ${r.text}`;
}

/** The module's parameters as modprobe takes them: run_test_mask in hex, booleans as 0/1. */
function paramLine(module: TestVmallocModule, nrThreads: number, cpus: number, p: VmallocTestParams): string {
  const threads = module.nrThreads
    ? `nr_threads=${nrThreads}`
    : `single_cpu_test=${nrThreads === 1 && cpus > 1 ? 1 : 0}`;
  return (
    `${threads} sequential_test_order=${p.sequentialTestOrder ? 1 : 0} ` +
    `test_repeat_count=${p.testRepeatCount} test_loop_count=${p.testLoopCount} ` +
    `run_test_mask=0x${p.runTestMask.toString(16)}${module.nrPages ? ` nr_pages=${p.nrPages}` : ""}`
  );
}

/** Where a test's lines go: the console, or a campaign's item (src/cli/test_campaign.ts), which keeps them quiet. */
export interface TestOutput {
  readonly log: (line: string) => void;
  readonly error: (line: string) => void;
  /** Show the progress bar (on a terminal). */
  readonly progress: boolean;
}

const CONSOLE: TestOutput = {
  log: (line) => console.log(line),
  error: (line) => console.error(line),
  progress: true,
};

/** Boots the machine, runs the test, prints it; resolves to the exit code (0 ok, 1 a failure). */
export async function runTest(config: MachineConfig, opts: TestRunOptions): Promise<number> {
  return (await testVmalloc(config, opts, CONSOLE)).ok ? 0 : 1;
}

/** Boots the machine, runs the test, writes its lines to `out`; resolves to its SUMMARY. */
export async function testVmalloc(config: MachineConfig, opts: TestRunOptions, out: TestOutput): Promise<TestSummary> {
  const m = await Machine.boot(config);
  const { params, nrThreads } = opts;
  const module = TEST_VMALLOC_MODULES[config.kernel];
  const selected = module.cases.map((c, i) => ({ ...c, index: i })).filter((c) => (params.runTestMask >>> c.index) & 1);
  const workersOf = Array.from({ length: config.cpus }, () => [] as number[]);
  for (let w = 0; w < nrThreads; w++) workersOf[w % config.cpus]!.push(w);
  const busyCpus = workersOf.flatMap((ws, cpu) => (ws.length > 0 ? [cpu] : []));

  out.log(formatMachineInfo(describeMachine(m.arena))[0]);
  out.log(
    `test_vmalloc: mode ${opts.mode}, ${plural(nrThreads, "worker")} on ${plural(busyCpus.length, "CPU")}` +
      (nrThreads > config.cpus ? " (workers sharing a CPU take turns)" : "") +
      `: ${paramLine(module, nrThreads, config.cpus, params)}`,
  );
  out.log(`  tests: ${selected.map((c) => c.name).join(", ")}`);
  out.log("");

  const failures: string[] = [];
  const workers: VmallocTestWorker[] = [];
  let durationMs = 0;
  let leak: TestSummary["leak"] = null;
  let afterLine = "";
  let bar: ProgressBar | null = null;
  try {
    const start = memorySnapshot();
    const percpuStart = pcpu_nr_pages();
    resetTestVmallocProgress();
    bar = !out.progress
      ? null
      : ProgressBar.start({
          label: "test_vmalloc",
          total: nrThreads * selected.length * params.testRepeatCount,
          unit: "test runs",
          fields: "{value}/{total} test runs | {failed} failed",
          initial: { failed: 0 },
        });
    const tick = setInterval(() => {
      const p = testVmallocProgress();
      bar?.update(p.done, p.done, { failed: p.failed });
    }, PROGRESS_MS);
    const t0 = performance.now();
    const settled = await Promise.allSettled(
      busyCpus.map((cpu) =>
        m.run(cpu, "vmalloc_test", { workers: workersOf[cpu], participants: busyCpus.length, params }),
      ),
    ).finally(() => clearInterval(tick));
    durationMs = performance.now() - t0;
    bar?.stop();

    const errors: MachineError[] = [];
    for (const s of settled) {
      if (s.status === "fulfilled") workers.push(...(s.value as VmallocTestWorker[]));
      else if (s.reason instanceof MachineError) errors.push(s.reason);
      else throw s.reason;
    }
    // Name the CPU that failed first, not one that only unwound because of it.
    const first = errors.find((e) => e.error.name !== "MachineStopped") ?? errors[0];
    if (first !== undefined) failures.push(first.message);
    workers.sort((a, b) => a.worker - b.worker);

    if (first === undefined) {
      await m.run(0, "test_vmalloc_cleanup");
      failures.push(...checkMachine().map((v) => `after the test: ${v}`));
      const end = memorySnapshot();
      const census = pcpuChunkCensus();
      const percpuDelta = pcpu_nr_pages() - percpuStart;
      const pagetableDelta = end.pagetable - start.pagetable;
      const slabDelta = end.slab - start.slab;
      const leakedPages = start.free - end.free - pagetableDelta - slabDelta - percpuDelta;
      leak = { freeStart: start.free, freeEnd: end.free, pagetableDelta, slabDelta, percpuDelta, leakedPages };
      if (leakedPages !== 0)
        failures.push(
          `leak: ${leakedPages} pages neither free nor in page tables, slabs or percpu chunks ` +
            `(nr_free_pages ${start.free} → ${end.free})`,
        );
      // The percpu allocator keeps one wholly free chunk (pcpu_balance_workfn spares the first): its area stays.
      const areas = end.vmallocinfo.filter((l) => !l.includes(" pcpu_get_vm_areas "));
      const boot = new Set(start.vmallocinfo);
      const extra = areas.filter((l) => !boot.has(l));
      if (extra.length > 0 || areas.length !== start.vmallocinfo.length)
        failures.push(
          `leak: /proc/vmallocinfo has ${areas.length} areas besides percpu chunks after the test, ` +
            `${start.vmallocinfo.length} before` +
            (extra.length > 0 ? `; first new: ${extra[0]}` : ""),
        );
      if (end.vmallocUsed !== start.vmallocUsed)
        failures.push(`leak: VmallocUsed is ${end.vmallocUsed} kB after the test, ${start.vmallocUsed} kB before`);
      if (census.inUse > 0) failures.push(`leak: ${plural(census.inUse, "percpu chunk")} still hold allocations`);
      if (census.chunks > 1) failures.push(`percpu: ${census.chunks} free chunks left, the balance work keeps one`);
      afterLine =
        `after the test (RCU callbacks, deferred vfrees, percpu balance work and lazy purges run): ` +
        `nr_free_pages ${start.free} → ${end.free} (page tables +${pagetableDelta}, slab ${slabDelta >= 0 ? "+" : ""}${slabDelta}, ` +
        `percpu +${percpuDelta}): ${leakedPages} pages leaked; ${plural(census.chunks, "free percpu chunk")} kept`;
    }
  } finally {
    bar?.stop();
    await m.shutdown();
  }

  const reports: TestReport[] = workers.flatMap((w) => w.reports);
  // One push per report: spreading hundreds of thousands of them overflows the stack.
  for (const r of reports) failures.push(formatReport(r, r.test));
  for (const r of m.reports) failures.push(formatReport(r, "the cleanup"));

  /* The module's lines, in the selected version's format: before xfail (v6.17) the expected failure is "failed". */
  for (const w of workers) {
    for (const c of selected) {
      const d = w.data[c.index]!;
      const counts = module.xfailed
        ? `passed: ${d.passed} failed: ${d.failed} xfailed: ${d.xfailed}`
        : `passed: ${d.passed} failed: ${d.failed + d.xfailed}`;
      out.log(
        `Summary: ${d.test} ${counts} repeat: ${params.testRepeatCount} loops: ${params.testLoopCount} avg: ${d.time} usec`,
      );
    }
    const who = module.cyclesLabel === "worker" ? `worker${w.worker}` : `CPU${w.cpu}`;
    out.log(`All test took ${who}=${w.cycles} cycles`);
  }
  out.log("");

  const tests: TestCaseSummary[] = selected.map((c) => {
    const ds = workers.map((w) => w.data[c.index]!);
    const sum = (f: (d: (typeof ds)[number]) => number) => ds.reduce((a, d) => a + f(d), 0);
    return {
      test: c.name,
      passed: sum((d) => d.passed),
      failed: sum((d) => d.failed),
      xfailed: sum((d) => d.xfailed),
      avgUsec: ds.length > 0 ? Math.round(sum((d) => d.time) / ds.length) : 0,
    };
  });
  const total = (f: (t: TestCaseSummary) => number) => tests.reduce((a, t) => a + f(t), 0);
  const expectedReports = workers.reduce((a, w) => a + w.expectedReports, 0);
  for (const t of tests) if (t.failed > 0) failures.push(`${t.test} failed ${plural(t.failed, "time")}`);

  out.log(`cycles: nanoseconds of each worker's wall-clock time, from the start line to the end of its last test`);
  if (afterLine !== "") out.log(afterLine);
  const xfailed = total((t) => t.xfailed);
  out.log(
    failures.length === 0
      ? resultLine(
          "ok",
          `${plural(
            total((t) => t.passed),
            "test run",
          )} passed` +
            (xfailed > 0
              ? `; align_shift_alloc_test failed ${plural(xfailed, "time")} as it is meant to, ` +
                `with ${plural(expectedReports, "expected allocation warning")}`
              : "") +
            "; invariants ok, nothing leaked",
        )
      : resultLine("FAILED", `${plural(failures.length, "failure")}, listed on stderr`),
  );
  out.log(`seed: ${config.seed}`);
  for (const f of failures) out.error(`vmsim: FAILED: ${f}`);
  if (failures.length > 0) out.error(`vmsim: rerun with: ${opts.rerun}`);

  const summary: TestSummary = {
    command: "test",
    ok: failures.length === 0,
    mode: opts.mode,
    kernel: config.kernel,
    cpus: config.cpus,
    layout: config.layout,
    memory: config.memory,
    seed: config.seed,
    lockdep: config.lockdep,
    slubDebug: config.slubDebug,
    trace: config.trace,
    nrThreads,
    params,
    durationMs: Math.round(durationMs),
    tests,
    passed: total((t) => t.passed),
    failed: total((t) => t.failed),
    xfailed,
    workers: workers.map((w) => ({
      worker: w.worker,
      cpu: w.cpu,
      cycles: w.cycles,
      tests: selected.map((c) => {
        const d = w.data[c.index]!;
        return { test: d.test, passed: d.passed, failed: d.failed, xfailed: d.xfailed, usec: d.time };
      }),
    })),
    reports: reports.length + m.reports.length,
    expectedReports,
    leak,
    failures,
    rerun: opts.rerun,
  };
  out.log(`SUMMARY ${JSON.stringify(summary)}`);
  return summary;
}
