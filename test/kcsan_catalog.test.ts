/**
 * The race catalog under the data-race detector (docs/kcsan.md, "The catalog
 * under the detector"): in deterministic mode the detector watches every
 * plain access until its CPU's next release and changes nothing of the run's
 * schedule, so it reports each catalog race on a plain access on the plain
 * exploration's first failing run or earlier — the reads that made an oops
 * (vmallocinfo-uninitialized, vb-cpu-after-insert) included, through the
 * oops window. Deterministic explorations: exact bounds.
 */
import { describe, expect, it } from "vitest";
import { CATALOG } from "../src/explore/catalog.js";
import { Explorer } from "../src/explore/explorer.js";
import { findScenario } from "../src/explore/scenario.js";
import { makeConfig } from "../src/shared/config.js";
import type { KernelVersion } from "../src/shared/config.js";
import { PLAIN_RACES, exploreUnderDetector } from "../bench/kcsan_catalog_runs.js";

const ENTRIES = CATALOG.filter((e) => PLAIN_RACES[e.inject] !== undefined && e.strategy !== null);

describe("the catalog's races on plain accesses", () => {
  it("are six, each with the functions its report must name", () => {
    expect(ENTRIES.map((e) => e.inject).sort()).toEqual(Object.keys(PLAIN_RACES).sort());
  });

  it.each(ENTRIES.map((e) => [e.inject, e] as const))(
    "%s: reported on the plain exploration's first failing run or earlier",
    async (_name, e) => {
      const row = await exploreUnderDetector(e, PLAIN_RACES[e.inject]!);
      expect(row.plainSeed, "the plain exploration fails within its bound").toBeGreaterThan(0);
      expect(row.race, `--kcsan's first failure: ${row.kcsanSignature}`).toMatch(/^KCSAN: data-race in \S+ \/ \S+$/);
      expect(row.kcsanSeed).toBeLessThanOrEqual(row.plainSeed);
      expect(row.caught).toBe(true);
    },
    120_000,
  );
});

describe.each([
  "4.19",
  "5.10",
  "6.12",
] as const)("--kcsan under the deterministic scheduler on %s", (kernel: KernelVersion) => {
  it("makes the plain build's schedule: the same decisions, seed for seed, on stress", async () => {
    const scenario = findScenario("stress")!;
    const params = { ops: 30, skip: [] };
    const strategy = { kind: "random" as const, p: 0.1 };
    const decisions = async (kcsan: boolean) => {
      const c = makeConfig({ ...scenario.config, kernel, cpus: 3, memory: 8 * 1024 * 1024, seed: 1, kcsan });
      const ex = await Explorer.start(c, scenario);
      try {
        const out: string[] = [];
        for (let seed = 1; seed <= 3; seed++) {
          const o = await ex.runOnce(strategy, seed, params);
          expect(o.failure?.signature ?? "clean", `seed ${seed}`).toBe("clean");
          out.push(JSON.stringify(o.record.decisions));
        }
        return out;
      } finally {
        await ex.close();
      }
    };
    expect(await decisions(true)).toEqual(await decisions(false));
  }, 120_000);
});
