/**
 * Scenarios: what `vmsim explore` runs under the deterministic scheduler. A
 * scenario sets a machine up once (free mode, before the snapshot every
 * exploration starts from), then runs its phases — each a workload call on
 * one or all CPUs — under the armed scheduler. Its size is `ops` per CPU;
 * the shrinker may also leave single operations out (`skip`).
 */
import type { KernelVersion, MachineConfig } from "../shared/config.js";
import type { Report } from "../shared/report.js";
import { EXPECTED_WARNING, TEST_CASE_ARRAY, type TestVmallocCase } from "../workers/workloads/test_vmalloc.js";
import { memoryFor } from "../workers/scaling.js";
import type { Machine } from "../workers/machine.js";

/** The most operations per CPU a run may have (`vmsim explore --ops`). */
export const MAX_OPS = 1_000_000;

/** The size of one run of a scenario. */
export interface ScenarioParams {
  /** Operations per CPU: the stress mix's operations, a test_vmalloc case's loop count. */
  readonly ops: number;
  /** Per CPU, the operation indices (0-based) the run leaves out. */
  readonly skip: readonly (readonly number[])[];
}

export interface Scenario {
  /** The name `--scenario` takes. */
  readonly name: string;
  /** One line for help and reports. */
  readonly summary: string;
  /** Machine settings the scenario needs; the user's options come on top. */
  readonly config: Partial<MachineConfig>;
  /** The kernel versions whose code the scenario drives (a re-created bug lives in one generation); absent: every one. */
  readonly kernels?: readonly KernelVersion[];
  /** Operations per CPU when `--ops` is not given. */
  readonly ops: number;
  /** Can single operations be left out (the shrinker's "drop operations")? */
  readonly skippable: boolean;
  /** Memory a machine of `cpus` CPUs needs for `ops` operations each, where the explore default (8 MiB) is too small. */
  readonly memory?: (cpus: number, ops: number) => number;
  /** Reports the scenario expects (a case the kernel's module marks as meant to fail): not failures. */
  readonly expected?: (r: Report) => boolean;
  /** Once per machine, free mode, before the snapshot. */
  setup(m: Machine): Promise<void>;
  /** One run, under the armed scheduler: returns the workloads' results (a BUG throws MachineError). */
  run(m: Machine, p: ScenarioParams): Promise<unknown>;
}

/** The stress mix (src/workers/workloads/vmalloc_mix.ts): every API, irq-context vfree, cross-CPU frees. */
const stress: Scenario = {
  name: "stress",
  summary: "the vmalloc_mix of every API on every CPU (interrupts on), then drain and finish",
  config: { irqRate: 0.002, workqueue: "auto" },
  ops: 50,
  skippable: true,
  async setup(m) {
    await m.run(0, "vmalloc_mix_irq", { on: true });
  },
  async run(m, p) {
    await m.runAll("vmalloc_mix_start", {});
    const mix = await m.runAll("vmalloc_mix", (cpu: number) => ({
      ops: p.ops,
      deadline: Number.MAX_SAFE_INTEGER,
      skip: p.skip[cpu] ?? [],
    }));
    const drain = await m.runAll("vmalloc_mix_drain");
    await m.run(0, "vmalloc_mix_finish");
    return { mix, drain };
  },
};

/** Cases that hold far more than the explore default's 8 MiB at once: sized as `vmsim bench` sizes them. */
const NEEDS_MEMORY: ReadonlySet<TestVmallocCase> = new Set([
  "full_fit_alloc_test",
  "long_busy_list_alloc_test",
  "pcpu_alloc_test",
]);

/** test_vmalloc's case `test` on every CPU at once (as `vmsim test` with nr_threads = CPUs), then its cleanup. */
function testVmalloc(test: TestVmallocCase): Scenario {
  const xfail = TEST_CASE_ARRAY.find((c) => c.name === test)?.xfail === true;
  return {
    name: `test_vmalloc:${test}`,
    summary: `lib/test_vmalloc.c's ${test} on every CPU, ops = its test_loop_count`,
    config: { workqueue: "auto" },
    ops: 20,
    skippable: false,
    ...(NEEDS_MEMORY.has(test) ? { memory: (cpus: number, ops: number) => memoryFor(cpus, [test], ops) } : {}),
    ...(xfail ? { expected: (r: Report) => r.kind === "WARN" && EXPECTED_WARNING.test(r.text) } : {}),
    async setup() {},
    async run(m, p) {
      const r = (await m.runAll("test_vmalloc", { test, loops: p.ops, round: 1 })) as { passed: boolean }[];
      await m.run(0, "test_vmalloc_cleanup");
      // Timings are the host's: only the verdicts belong to the run.
      return r.map((x) => x.passed);
    },
  };
}

/** Each CPU adds 1 to a counter `ops` times with a racy load/store; the end WARNs at a lost update. */
const lostUpdate: Scenario = {
  name: "demo:lost-update",
  summary: "a counter incremented by a racy load and store on every CPU: one preemption loses an update",
  config: { irqRate: 0, workqueue: "auto" },
  ops: 2,
  skippable: true,
  async setup() {},
  async run(m, p) {
    await m.runAll("lost_update", (cpu: number) => ({ ops: p.ops, skip: p.skip[cpu] ?? [] }));
    const made = Array.from({ length: m.config.cpus }, (_, cpu) => p.ops - new Set(p.skip[cpu] ?? []).size);
    return await m.run(0, "lost_update_check", { expected: made.reduce((a, n) => a + n, 0) });
  },
};

/** Two spinlocks taken in opposite orders: one preemption inside the first lock deadlocks. */
const abba: Scenario = {
  name: "demo:abba",
  summary: "CPU0 takes lock a then b, the others b then a: the scheduler's deadlock verdict",
  config: { irqRate: 0, workqueue: "auto", lockdep: false },
  ops: 2,
  skippable: true,
  async setup() {},
  async run(m, p) {
    return await m.runAll("abba", (cpu: number) => ({ ops: p.ops, skip: p.skip[cpu] ?? [] }));
  },
};

/**
 * vfree_deferred's same-CPU race (src/workers/workloads/vfree_ipi.ts): CPU 0's
 * kworker runs free_work while the others raise interrupts on it whose handler
 * vfrees; the schedule places the handler's llist_add inside free_work.
 */
const irqVfreeWork: Scenario = {
  name: "demo:irq-vfree-work",
  summary:
    "CPU0 vfrees from interrupts and runs free_work; the others make its handler vfree too, landing inside free_work",
  config: { irqRate: 0, workqueue: "auto" },
  ops: 4,
  skippable: true,
  async setup(m) {
    await m.run(0, "vfree_ipi_setup");
  },
  async run(m, p) {
    const done = await m.runAll("vfree_ipi", (cpu: number) => ({ ops: p.ops, skip: p.skip[cpu] ?? [] }));
    await m.run(0, "vfree_ipi_drain");
    return done;
  },
};

const registry = new Map<string, Scenario>([
  [stress.name, stress],
  [lostUpdate.name, lostUpdate],
  [abba.name, abba],
  [irqVfreeWork.name, irqVfreeWork],
  ...TEST_CASE_ARRAY.map((c): [string, Scenario] => [`test_vmalloc:${c.name}`, testVmalloc(c.name)]),
]);

/** Adds a scenario (the race catalog's own scenarios register here). */
export function defineScenario(s: Scenario): void {
  if (registry.has(s.name)) throw new Error(`scenario ${s.name} defined twice`);
  registry.set(s.name, s);
}

export function findScenario(name: string): Scenario | undefined {
  return registry.get(name);
}

/** Throws a RangeError when `s` cannot run on `kernel`'s vmalloc: its bug or its workload is another generation's. */
export function checkScenarioKernel(s: Scenario, kernel: KernelVersion): void {
  if (s.kernels !== undefined && !s.kernels.includes(kernel))
    throw new RangeError(`scenario ${s.name} runs on kernel ${s.kernels.join(", ")} only, not ${kernel}`);
}

export function scenarioNames(): string[] {
  return [...registry.keys()];
}
