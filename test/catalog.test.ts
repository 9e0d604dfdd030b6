/**
 * The race catalog (src/explore/catalog.ts) as a proof, entry by entry: with
 * its switch on, the entry's strategy finds a failure within the stated
 * budget of iteration seeds (1, 2, 3 … on a machine of seed 1); replaying
 * that run's decisions gives the same failure signature 20 times out of 20;
 * with the switch off, the same scenario runs clean for the same iteration
 * seeds. Runs are deterministic, so each entry is found at the same
 * iteration every time on an unchanged build; the budgets leave room for the
 * schedules to shift as the kernel code changes.
 */
import { describe, expect, it } from "vitest";
import { CATALOG, type CatalogEntry, catalogConfig } from "../src/explore/catalog.js";
import { Explorer, type Outcome } from "../src/explore/explorer.js";
import { findScenario } from "../src/explore/scenario.js";
import { INJECTIONS, INJECT_NAMES } from "../src/shared/inject.js";
import type { Strategy } from "../src/sched/sched_det.js";

/** Replays of the found run that must all fail the same way. */
const REPLAYS = 20;

function explored(e: CatalogEntry): CatalogEntry & { strategy: Strategy; budget: { iterations: number } } {
  if (e.strategy === null || e.budget === null) throw new Error(`${e.inject} has no exploration`);
  return e as CatalogEntry & { strategy: Strategy; budget: { iterations: number } };
}

const EXPLORED = CATALOG.filter((e) => e.strategy !== null).map(explored);

describe("the catalog", () => {
  it("has one entry per deliberate bug, each with a registered scenario", () => {
    expect(CATALOG.map((e) => e.inject).sort()).toEqual([...INJECT_NAMES].sort());
    for (const e of CATALOG) expect(findScenario(e.scenario), e.scenario).toBeDefined();
  });

  it("leaves only stress-caught and detector-only bugs without an exploration", () => {
    for (const e of CATALOG.filter((x) => x.strategy === null)) {
      const inj: { stress: boolean; kcsan?: boolean } = INJECTIONS[e.inject];
      expect(inj.stress || inj.kcsan === true, e.inject).toBe(true);
      expect(e.budget).toBeNull();
    }
  });
});

describe.each(
  EXPLORED.map((e) => [e.inject, e.budget.iterations, e] as const),
)("--inject %s", (name, iterations, e) => {
  const params = { ops: e.ops, skip: [] };
  it(`is found by ${JSON.stringify(e.strategy)} on machine seed 1 within iteration seeds 1..${iterations}, replays ${REPLAYS}/${REPLAYS}, and the same seeds run clean without it`, async () => {
    const scenario = findScenario(e.scenario)!;
    let found: Outcome | null = null;
    let seed = 0;
    const broken = await Explorer.start(catalogConfig(e, true), scenario);
    try {
      for (seed = 1; seed <= iterations && found === null; seed++) {
        const o = await broken.runOnce(e.strategy, seed, params, e.stepCap);
        if (o.failure !== null) found = o;
      }
      seed--;
      expect(found, `${name}: no failure in iteration seeds 1..${iterations}`).not.toBeNull();
      const sig = found!.failure!.signature;
      console.info(`--inject ${name}: found at iteration seed ${seed}: ${sig}`);
      const plan = { kind: "replay" as const, plan: found!.record.decisions };
      for (let r = 0; r < REPLAYS; r++) {
        const again = await broken.runOnce(plan, seed, params, e.stepCap);
        expect(again.failure?.signature, `replay ${r + 1} of iteration seed ${seed}`).toBe(sig);
      }
    } finally {
      await broken.close();
    }

    const clean = await Explorer.start(catalogConfig(e, false), scenario);
    try {
      for (let s = 1; s <= seed; s++) {
        const o = await clean.runOnce(e.strategy, s, params, e.stepCap);
        expect(o.failure, `unbroken, iteration seed ${s}: ${o.failure?.text}`).toBeNull();
      }
    } finally {
      await clean.close();
    }
  }, 120_000);
});
