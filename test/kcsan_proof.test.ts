/**
 * The detector-only switches of src/shared/inject.ts (`kcsan: true`): each
 * moves plain stores out from under the lock another CPU's reader holds, and
 * the free-running stress mix on 2 CPUs reaches both sides of the race — yet
 * every check vmsim had before the data-race detector stays quiet, because
 * the race has no symptom those checks can see. This file proves both halves:
 * seeded runs of a fixed number of operations, each with the switch on and
 * the proof's mix (`--mix`, bench/kcsan_proof_flags.ts: the readers of the
 * racing fields weighted up), run clean, and the APIs on both sides of the
 * race did run; and `--kcsan`
 * reports the race (a deterministic exploration, so the bound is exact; the
 * free-running 20-seed proof is bench/kcsan_proof.ts).
 */
import { describe, expect, it } from "vitest";
import { Explorer, type Outcome } from "../src/explore/explorer.js";
import { findScenario } from "../src/explore/scenario.js";
import "../src/explore/catalog.js";
import { makeConfig } from "../src/shared/config.js";
import type { BackportName } from "../src/shared/backport.js";
import { INJECTIONS, INJECT_NAMES, type InjectName } from "../src/shared/inject.js";
import { STRESS_MACHINE_FLAGS, runStress } from "../src/workers/stress.js";
import { PROOF_FLAGS } from "../bench/kcsan_proof_flags.js";

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
  it(`runs clean on 2 CPUs for ${OPS} ops with seeds ${SEEDS.join(", ")}, --mix ${PROOF_FLAGS.mix} and the proof's KCSAN flags: today's checks miss it`, async () => {
    for (const seed of SEEDS) {
      const config = makeConfig({
        kernel: INJECTIONS[name].kernel,
        cpus: 2,
        seed,
        inject: [name],
        irqRate: STRESS_MACHINE_FLAGS.irqRate.defaultValue,
        // The proof's KCSAN flags too: without --kcsan they change nothing, which is the point.
        kcsanStrict: PROOF_FLAGS.strict,
        kcsanSkipReport: PROOF_FLAGS.skipReport,
      });
      const r = await runStress(config, { ops: OPS, mix: PROOF_FLAGS.mix });
      expect(r.ok, `seed ${seed}: ${r.report.join("\n")}`).toBe(true);
      expect(r.ops).toBe(OPS);
      for (const api of SIDES[name]!) expect(r.apis[api] ?? 0, `seed ${seed}: ${api} calls`).toBeGreaterThan(0);
    }
  }, 120_000);
});

/**
 * `--kcsan --kcsan-strict` under the deterministic scheduler: the stress
 * scenario, 40 ops per CPU and a switch at half the sched points. Every plain
 * access is watched until its CPU's next release, and the cache hint is a
 * plain store after the unlock, which only the strict rules watch. Runs are
 * deterministic: the switch is reported at the same iteration seed every
 * time on an unchanged build; the bound leaves room for schedules that shift
 * as the kernel code changes.
 */
describe("--inject vmap-cache-unlocked with --kcsan --kcsan-strict (deterministic, random p 0.5)", () => {
  const ITERATIONS = 12;
  const params = { ops: 40, skip: [] };
  const strategy = { kind: "random" as const, p: 0.5 };
  const scenario = findScenario("stress")!;
  const config = (inject: InjectName[]) =>
    makeConfig({
      ...scenario.config,
      cpus: 2,
      memory: 8 * 1024 * 1024,
      seed: 1,
      inject,
      kcsan: true,
      kcsanStrict: true,
    });
  const TITLE = "kcsan: BUG: KCSAN: data-race in __alloc_vmap_area_search / alloc_vmap_area";

  it(`is reported within iteration seeds 1..${ITERATIONS}, and the same seeds unbroken do not report it`, async () => {
    const broken = await Explorer.start(config(["vmap-cache-unlocked"]), scenario);
    let found: Outcome | null = null;
    let seed = 0;
    try {
      for (seed = 1; seed <= ITERATIONS && found === null; seed++) {
        const o = await broken.runOnce(strategy, seed, params);
        if (o.failure !== null) found = o;
      }
      seed--;
      expect(found?.failure?.signature, `first failure by seed ${seed}`).toBe(TITLE);
    } finally {
      await broken.close();
    }
    const twin = await Explorer.start(config([]), scenario);
    try {
      for (let s = 1; s <= seed; s++) {
        const o = await twin.runOnce(strategy, s, params);
        expect(o.failure?.signature ?? "clean", `unbroken, seed ${s}`).not.toBe(TITLE);
      }
    } finally {
      await twin.close();
    }
  }, 600_000);
});

/**
 * A known race (src/shared/backport.ts): 4.19's and 5.10's
 * purge_fragmented_blocks test a block's counts without vb->lock, as those
 * kernels do. The detector reports it on every run of catalog:vb_purge (CPU 0
 * maps and unmaps, CPU 1 calls vm_unmap_aliases); with `--backport
 * vb-counters-read-once` (7f48121e9fa8's READ_ONCE/WRITE_ONCE) the same
 * iteration seeds run clean.
 */
describe.each([
  ["4.19", 5],
  ["5.10", 5],
] as const)("the known race vb-counters-read-once on %s", (kernel, seeds) => {
  const params = { ops: 36, skip: [] };
  const strategy = { kind: "random" as const, p: 0.2 };
  const TITLE = /^kcsan: BUG: KCSAN: data-race in purge_fragmented_blocks \/ vb_(alloc|free)$/;

  it(`is reported on iteration seeds 1..${seeds} of catalog:vb_purge, and not with --backport`, async () => {
    const scenario = findScenario("catalog:vb_purge")!;
    const config = (backport: BackportName[]) =>
      makeConfig({
        ...scenario.config,
        kernel,
        cpus: 2,
        memory: 8 * 1024 * 1024,
        seed: 1,
        backport,
        kcsan: true,
      });
    for (const [backport, expected] of [
      [[], TITLE],
      [["vb-counters-read-once"], null],
    ] as const) {
      const ex = await Explorer.start(config([...backport]), scenario);
      try {
        const seen: (string | null)[] = [];
        for (let seed = 1; seed <= seeds; seed++)
          seen.push((await ex.runOnce(strategy, seed, params)).failure?.signature ?? null);
        if (expected === null) expect(seen, `--backport ${backport.join(",")}`).toEqual(seen.map(() => null));
        else for (const s of seen) expect(s, `seeds 1..${seeds}`).toMatch(expected);
      } finally {
        await ex.close();
      }
    }
  }, 300_000);

  it("the backport is refused on a kernel that has the annotation already", () => {
    expect(() => makeConfig({ kernel: "6.12", backport: ["vb-counters-read-once"] })).toThrow(
      "known race vb-counters-read-once is in the 4.19 and 5.10 code, but the machine runs kernel 6.12",
    );
    expect(makeConfig({ kernel, backport: ["vb-counters-read-once"] }).backport).toEqual(["vb-counters-read-once"]);
  });
});
