/**
 * vfree_deferred's same-CPU race under `vmsim explore` (scenario
 * demo:irq-vfree-work): the schedule, not chance, decides where CPU 0 takes
 * the interrupt another CPU raises, so exploration puts the handler's vfree
 * (__vfree_deferred's llist_add) inside free_work, after its llist_del_all
 * emptied the list and before its __vunmaps ended — and v4.19's code is
 * correct there: no run reports anything, and every run replays.
 */
import { describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { Explorer } from "../src/explore/explorer.js";
import { findScenario } from "../src/explore/scenario.js";
import type { Decision } from "../src/sched/sched_det.js";

const ITERATIONS = 30;

describe("demo:irq-vfree-work", () => {
  it(`explore reaches the interrupt's vfree inside free_work after llist_del_all (random p 0.1, seeds 1..${ITERATIONS}), no run fails, the reaching run replays`, async () => {
    const scenario = findScenario("demo:irq-vfree-work")!;
    const config = makeConfig({ ...scenario.config, cpus: 2, memory: 8 * 1024 * 1024, seed: 1 });
    const ex = await Explorer.start(config, scenario);
    const strategy = { kind: "random" as const, p: 0.1 };
    const params = { ops: scenario.ops, skip: [] };
    try {
      let reached = 0;
      let firstSeed = 0;
      let firstDigest = "";
      let firstDecisions: readonly Decision[] = [];
      for (let seed = 1; seed <= ITERATIONS; seed++) {
        const o = await ex.runOnce(strategy, seed, params);
        expect(o.failure, `seed ${seed}: ${o.failure?.text}`).toBeNull();
        const s = (await ex.machine.run(0, "vfree_ipi_stats")) as { inFreeWork: number; afterDelAll: number };
        expect(s.afterDelAll).toBeLessThanOrEqual(s.inFreeWork);
        if (s.afterDelAll > 0) {
          reached++;
          if (firstSeed === 0) {
            firstSeed = seed;
            firstDigest = o.digest;
            firstDecisions = o.record.decisions;
          }
        }
      }
      expect(reached, "runs whose interrupt landed in free_work after llist_del_all").toBeGreaterThan(0);
      const again = await ex.runOnce({ kind: "replay", plan: firstDecisions }, firstSeed, params);
      expect(again.digest).toBe(firstDigest);
      expect(((await ex.machine.run(0, "vfree_ipi_stats")) as { afterDelAll: number }).afterDelAll).toBeGreaterThan(0);
    } finally {
      await ex.close();
    }
  }, 120_000);
});
