/**
 * The detector-only switches of src/shared/inject.ts (`kcsan: true`): each
 * moves plain stores out from under the lock another CPU's reader holds, and
 * the free-running stress mix on 2 CPUs reaches both sides of the race — yet
 * every check vmsim had before the data-race detector stays quiet, because
 * the race has no symptom those checks can see. This file is that half of
 * the proof: seeded runs of a fixed number of operations, each with the
 * switch on, run clean, and the APIs on both sides of the race did run.
 */
import { describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { INJECTIONS, INJECT_NAMES, type InjectName } from "../src/shared/inject.js";
import { STRESS_MACHINE_FLAGS, runStress } from "../src/workers/stress.js";

/** Seeds each switch runs with. */
const SEEDS = [1, 2, 3];
/** Operations per run, all CPUs: a few seconds of stress on 2 CPUs. */
const OPS = 30_000;

/** The stress mix's APIs on each side of the race each switch makes (both must run). */
const SIDES: Readonly<Record<string, readonly string[]>> = {
  "vb-dirty-range-unlocked": ["vm_unmap_ram", "vm_unmap_aliases"],
  "vmap-cache-unlocked": ["vmalloc", "vfree"],
  "setup-vm-unlocked": ["vmalloc", "vread"],
  "kva-setup-vm-unlocked": ["vmalloc", "vread"],
  "vn-dirty-range-unlocked": ["vm_unmap_ram", "vm_unmap_aliases"],
};

const DETECTOR_ONLY = INJECT_NAMES.filter((n) => (INJECTIONS[n] as { kcsan?: boolean }).kcsan === true);

describe("the detector-only switches", () => {
  it("are the ones this file knows the racing sides of", () => {
    expect([...DETECTOR_ONLY].sort()).toEqual(Object.keys(SIDES).sort());
  });
});

describe.each(DETECTOR_ONLY)("--inject %s without the detector", (name: InjectName) => {
  it(`runs clean on 2 CPUs for ${OPS} ops with seeds ${SEEDS.join(", ")}: today's checks miss it`, async () => {
    for (const seed of SEEDS) {
      const config = makeConfig({
        kernel: INJECTIONS[name].kernel,
        cpus: 2,
        seed,
        inject: [name],
        irqRate: STRESS_MACHINE_FLAGS.irqRate.defaultValue,
      });
      const r = await runStress(config, { ops: OPS });
      expect(r.ok, `seed ${seed}: ${r.report.join("\n")}`).toBe(true);
      expect(r.ops).toBe(OPS);
      for (const api of SIDES[name]!) expect(r.apis[api] ?? 0, `seed ${seed}: ${api} calls`).toBeGreaterThan(0);
    }
  }, 120_000);
});
