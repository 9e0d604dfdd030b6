/**
 * The race catalog: for every deliberate bug of src/shared/inject.ts, the
 * scenario that reaches its broken path, the exploration strategy that finds
 * it and the budget it was found within (measured, seeds 1, 2, 3 … in turn).
 * The proof is test/catalog.test.ts: with the switch on, the strategy finds
 * the failure within the budget and its replay gives the same failure 20
 * times out of 20; with it off, the same runs are clean.
 *
 * The scenarios run the workloads of src/workers/workloads/catalog.ts; CPU 0
 * plays the first column of the injection's story, the other CPUs the
 * second. Importing this module registers them (defineScenario).
 */
import { INJECTIONS, type InjectName } from "../shared/inject.js";
import { type KernelVersion, type MachineConfig, makeConfig } from "../shared/config.js";
import type { Strategy } from "../sched/sched_det.js";
import type { Machine } from "../workers/machine.js";
import { type Scenario, type ScenarioParams, defineScenario, findScenario } from "./scenario.js";

/**
 * A catalog scenario: one workload call on every CPU, each with its share of
 * `skip`; `boot`, a workload CPU 0 runs at setup (a boot parameter). It boots
 * `kernel`, the generation whose code holds the bug, and runs on no other.
 */
function catalogScenario(
  name: string,
  workload: string,
  summary: string,
  ops: number,
  boot?: string,
  kernel: KernelVersion = "4.19",
): Scenario {
  return {
    name: `catalog:${name}`,
    summary,
    config: { workqueue: "auto", kernel },
    kernels: [kernel],
    ops,
    skippable: true,
    async setup(m) {
      if (boot !== undefined) await m.run(0, boot);
    },
    run(m: Machine, p: ScenarioParams) {
      return m.runAll(workload, (cpu: number) => ({ ops: p.ops, skip: p.skip[cpu] ?? [] }));
    },
  };
}

const SCENARIOS = [
  catalogScenario(
    "vm_map_ram",
    "catalog_vm_map_ram",
    "CPU 0 fills vmap blocks with vm_map_ram (blocks join and leave its queue); the others call vm_unmap_aliases",
    36,
  ),
  catalogScenario(
    "vb_purge",
    "catalog_vb_purge",
    "CPU 0 maps and unmaps with vm_map_ram (fragmented blocks; new ones join its queue); the others call vm_unmap_aliases",
    36,
  ),
  catalogScenario(
    "vmallocinfo",
    "catalog_vmallocinfo",
    "CPU 0 vmallocs and vfrees 8 pages; the others read a CONFIG_NUMA /proc/vmallocinfo",
    8,
  ),
  catalogScenario(
    "debugobjects",
    "catalog_debugobjects",
    "CPU 0 vmallocs and vfrees a page; the others purge, vmalloc and track an object in their page with debugobjects",
    8,
    "catalog_debug_objects_boot",
  ),
  catalogScenario(
    "align_shift",
    "catalog_align_shift",
    "test_vmalloc's align_shift_alloc_test with __GFP_NOWARN: one page aligned to every power of two",
    1,
  ),
  catalogScenario(
    "lazy_reuse",
    "catalog_lazy_reuse",
    "vmalloc a page, store to it, vfree it, vm_unmap_aliases: the lazy purge's flush before reuse",
    4,
  ),
  catalogScenario(
    "vread",
    "catalog_vread",
    "v6.12: each CPU vmallocs four 8-page areas, stamps them and vreads the span they cover (several vmap nodes)",
    4,
    undefined,
    "6.12",
  ),
  catalogScenario(
    "vb_xarray",
    "catalog_vm_map_ram",
    "v6.12: CPU 0 fills vmap blocks (new ones join its queue and the xarray their address hashes to); the others call vm_unmap_aliases",
    36,
    undefined,
    "6.12",
  ),
  catalogScenario(
    "pcpu_groups",
    "catalog_pcpu_groups",
    "v5.10: two percpu chunks of a two-group machine, the second's first group ending inside the first chunk",
    1,
    undefined,
    "5.10",
  ),
  catalogScenario(
    "vb_full",
    "catalog_vb_full",
    "v6.12: fill a vmap block with vm_map_ram, store through and unmap its first mapping, vm_unmap_aliases, look for a stale TLB entry",
    1,
    undefined,
    "6.12",
  ),
  catalogScenario(
    "vb_fragment",
    "catalog_vb_fragment",
    "v6.12: CPU 0 leaves each block it fills fragmented and starts the next; the others call vm_unmap_aliases",
    50,
    undefined,
    "6.12",
  ),
  catalogScenario(
    "irq_vfree",
    "catalog_irq_vfree",
    "vmalloc a page and vfree it from an interrupt handler (the deferred path)",
    4,
  ),
];
for (const s of SCENARIOS) defineScenario(s);

/** What finding one catalog bug takes. */
export interface CatalogBudget {
  /** The iteration seed whose run finds it first on the build the catalog was measured on. */
  readonly foundAt: number;
  /** The proof's bound: iteration seeds 1 … `iterations` contain a run that finds it. */
  readonly iterations: number;
  /** Wall seconds to the find, machine start included, on the 2-core reference host (rounded up). */
  readonly seconds: number;
}

/** One deliberate bug and how an exploration finds it. */
export interface CatalogEntry {
  /** The switch (src/shared/inject.ts). */
  readonly inject: InjectName;
  /** The generation whose code the switch breaks: the machine boots it (MachineConfig `kernel`). */
  readonly kernel: KernelVersion;
  /** The scenario that reaches the broken path (`catalog:…`, registered by this module). */
  readonly scenario: string;
  /** CPUs of the machine. */
  readonly cpus: number;
  /** Operations per CPU. */
  readonly ops: number;
  /**
   * The strategy whose runs, with iteration seeds 1, 2, 3 …, find the bug;
   * null where the deterministic scheduler cannot reach it (`note` says why).
   */
  readonly strategy: Strategy | null;
  /** Steps after which a run is a livelock (the failure of a bug that loops for ever). */
  readonly stepCap?: number;
  /** The measured budget; null with a null strategy. */
  readonly budget: CatalogBudget | null;
  /** How the scenario meets the bug, in a line. */
  readonly note: string;
}

/** Memory of every catalog machine. */
export const CATALOG_MEMORY = 8 * 1024 * 1024;
/** Seed of every catalog machine (the strategy's seed is the iteration's). */
export const CATALOG_MACHINE_SEED = 1;

/**
 * The machine of entry `e`: its scenario's settings, its generation, its CPUs,
 * CATALOG_MEMORY, the switch on (`broken`) or off.
 */
export function catalogConfig(e: CatalogEntry, broken: boolean): MachineConfig {
  const scenario = findScenario(e.scenario);
  if (scenario === undefined) throw new Error(`catalog: no scenario ${e.scenario}`);
  return makeConfig({
    ...scenario.config,
    kernel: e.kernel,
    cpus: e.cpus,
    memory: CATALOG_MEMORY,
    seed: CATALOG_MACHINE_SEED,
    inject: broken ? [e.inject] : [],
  });
}

/**
 * Every deliberate bug, with the exploration that finds it: the machine is
 * {@link catalogConfig}, the strategy's runs take the iteration seeds 1, 2,
 * 3 … The budgets were measured on the 2-core reference host under a load of
 * about 5 (seconds include starting the machine). `iterations` leaves room
 * for schedules that shift as the kernel code changes: over 200–300 seeds
 * each bug was found in the share of runs its note gives, which makes a miss
 * within the bound unlikely (< 1 %).
 */
export const CATALOG: readonly CatalogEntry[] = [
  {
    inject: "no-vmap-area-lock",
    kernel: "4.19",
    scenario: "stress",
    cpus: 2,
    ops: 50,
    strategy: { kind: "random", p: 0.02 },
    budget: { foundAt: 1, iterations: 40, seconds: 2.5 },
    note:
      "a switch between one CPU's unlocked search and its insert lets the other find the same hole: overlapping " +
      "areas, caught by the mix's stamps or find_vm_area (20 % of runs)",
  },
  {
    inject: "no-purge-flush",
    kernel: "4.19",
    scenario: "catalog:lazy_reuse",
    cpus: 2,
    ops: 4,
    strategy: { kind: "random", p: 0.05 },
    budget: { foundAt: 1, iterations: 3, seconds: 0.4 },
    note: "the first reuse of a purged range is stored to through the translation the purge did not flush",
  },
  {
    inject: "irq-vfree-not-deferred",
    kernel: "4.19",
    scenario: "catalog:irq_vfree",
    cpus: 2,
    ops: 4,
    strategy: { kind: "random", p: 0.05 },
    budget: { foundAt: 1, iterations: 3, seconds: 0.4 },
    note: "the first vfree from the interrupt handler sleeps in remove_vm_area",
  },
  {
    inject: "vb-publish-before-init",
    kernel: "4.19",
    scenario: "catalog:vm_map_ram",
    cpus: 2,
    ops: 36,
    strategy: { kind: "random", p: 0.2 },
    budget: { foundAt: 6, iterations: 40, seconds: 1.0 },
    note: "CPU 1's vm_unmap_aliases reaches one of CPU 0's three new blocks between its queueing and its setup (18 % of runs)",
  },
  {
    inject: "vb-list-del-init",
    kernel: "4.19",
    scenario: "catalog:vm_map_ram",
    cpus: 2,
    ops: 36,
    strategy: { kind: "random", p: 0.05 },
    stepCap: 12_000,
    budget: { foundAt: 2, iterations: 40, seconds: 0.4 },
    note: "CPU 1's vm_unmap_aliases stands on the block CPU 0 fills up and unlinks (18 % of runs); a clean run takes ~3,800 steps",
  },
  {
    inject: "vb-purge-wrong-lock",
    kernel: "4.19",
    scenario: "catalog:vb_purge",
    cpus: 2,
    ops: 36,
    strategy: { kind: "random", p: 0.2 },
    budget: { foundAt: 1, iterations: 100, seconds: 1.0 },
    note:
      "CPU 1's purge unlinks CPU 0's fragmented block under its own vbq->lock while CPU 0 links a new block " +
      "behind it: DEBUG_LIST's list_add corruption (5 % of runs)",
  },
  {
    inject: "vmallocinfo-uninitialized",
    kernel: "4.19",
    scenario: "catalog:vmallocinfo",
    cpus: 2,
    ops: 8,
    strategy: { kind: "pct", depth: 2, steps: 850 },
    budget: { foundAt: 1, iterations: 30, seconds: 0.3 },
    note: "the change point lands while CPU 0 fills its page array and CPU 1 reads vmallocinfo (23 % of runs)",
  },
  {
    inject: "vunmap-debugobjects",
    kernel: "4.19",
    scenario: "catalog:debugobjects",
    cpus: 2,
    ops: 8,
    strategy: { kind: "random", p: 0.01 },
    budget: { foundAt: 6, iterations: 100, seconds: 0.3 },
    note: "CPU 1 purges, reuses CPU 0's range and activates its object while CPU 0 is between remove_vm_area and the check (6 % of runs)",
  },
  {
    inject: "double-vfree-irq",
    kernel: "4.19",
    scenario: "catalog:irq_vfree",
    cpus: 2,
    ops: 4,
    strategy: null,
    budget: null,
    note:
      "a soft lockup: the stress mix catches it within its watchdog (test/inject.test.ts); an exploration would " +
      "find it on its first run, but each run loops for the deterministic watchdog's 2^22 sched points (~2 s), " +
      "too slow for 20 replays (test/softlockup.test.ts replays the exec script instead)",
  },
  {
    inject: "vb-cpu-after-insert",
    kernel: "6.12",
    scenario: "catalog:vb_xarray",
    cpus: 2,
    ops: 36,
    strategy: { kind: "random", p: 0.2 },
    budget: { foundAt: 7, iterations: 60, seconds: 8 },
    note:
      "CPU 1's vm_unmap_aliases walks the xarray slot one of CPU 0's two new blocks hashes to between its " +
      "xa_insert and the vb->cpu store: UBSAN's trap in purge_fragmented_block (10 % of runs)",
  },
  {
    inject: "vn-busy-lock-nested",
    kernel: "6.12",
    scenario: "catalog:vread",
    cpus: 2,
    ops: 1,
    strategy: { kind: "random", p: 0.05 },
    budget: { foundAt: 1, iterations: 3, seconds: 2 },
    note: "not a race: the first vread whose span has an area in vmap node 0 takes node 1's busy.lock inside node 0's",
  },
  {
    inject: "pvm-search-criteria",
    kernel: "5.10",
    scenario: "catalog:pcpu_groups",
    cpus: 1,
    ops: 1,
    strategy: { kind: "random", p: 0.05 },
    budget: { foundAt: 1, iterations: 3, seconds: 1 },
    note: "not a race: the second chunk's group 0 ends above the free area below the first chunk, on any schedule",
  },
  {
    inject: "vb-full-not-flushed",
    kernel: "6.12",
    scenario: "catalog:vb_full",
    cpus: 1,
    ops: 1,
    strategy: { kind: "random", p: 0.05 },
    budget: { foundAt: 1, iterations: 3, seconds: 2 },
    note: "not a race: the block CPU 0 filled is off its free list on any schedule, so vm_unmap_aliases never flushes its dirty range",
  },
  {
    inject: "vb-purge-wrong-vbq",
    kernel: "6.12",
    scenario: "catalog:vb_fragment",
    cpus: 2,
    ops: 34,
    strategy: { kind: "random", p: 0.2 },
    budget: { foundAt: 24, iterations: 60, seconds: 21 },
    note:
      "CPU 1's vm_unmap_aliases purges CPU 0's fragmented block, hashed to xarray slot 1, under vbq 1's lock while " +
      "CPU 0 links its next block behind it under vbq 0's: DEBUG_LIST's list_add corruption (found at seed 24 of " +
      "60; runs with many switches cost ~0.8 s each on a loaded 2-core host)",
  },
  {
    inject: "huge-align-wrap",
    kernel: "4.19",
    scenario: "catalog:align_shift",
    cpus: 1,
    ops: 1,
    strategy: { kind: "random", p: 0.05 },
    budget: { foundAt: 1, iterations: 3, seconds: 0.2 },
    note: "not a race: the first alignment of 2^48 wraps, on any schedule",
  },
  ...(
    [
      "vb-dirty-range-unlocked",
      "vmap-cache-unlocked",
      "setup-vm-unlocked",
      "kva-setup-vm-unlocked",
      "vn-dirty-range-unlocked",
    ] as const
  ).map(
    (inject): CatalogEntry => ({
      inject,
      kernel: INJECTIONS[inject].kernel,
      scenario: "stress",
      cpus: 2,
      ops: 50,
      strategy: null,
      budget: null,
      note:
        "no symptom to find: the race has no effect today's checks see (test/kcsan_proof.test.ts); only the " +
        "data-race detector reports it (`--kcsan`, bench/kcsan_proof.ts)",
    }),
  ),
];
