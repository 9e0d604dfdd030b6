/**
 * The deterministic scheduler past 32 CPUs (MAX_CPUS = 64): the 64-bit
 * cpumask against a BigInt reference, replay files whose masks pass CPU 31,
 * explore → replay of 33- and 64-CPU machines and a shrink of the 64-CPU
 * one (demo:lost-update, one operation per CPU, machine seed 1; the sched
 * seeds are in the test names), with 65 CPUs refused in one line. Every run
 * is seeded and bounded.
 */
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { explore } from "../src/explore/explore.js";
import { Explorer } from "../src/explore/explorer.js";
import {
  type ReplayFile,
  decodeDecisions,
  encodeDecisions,
  readReplayFile,
  replayFileOf,
  writeReplayFile,
} from "../src/explore/replay_file.js";
import { findScenario } from "../src/explore/scenario.js";
import { shrink } from "../src/explore/shrink.js";
import { CPUMASK_BITS, Cpumask } from "../src/sched/cpumask.js";
import { type Decision, SCHED_MAX_CPUS, WHY_DUE, decisionMask } from "../src/sched/sched_det.js";
import { MAX_CPUS, makeConfig } from "../src/shared/config.js";
import { Prng } from "../src/shared/prng.js";
import { vmsim } from "./helpers/vmsim.js";

const MEMORY = 8 * 1024 * 1024;
const scenario = findScenario("demo:lost-update")!;

/** The CPUs of a 64-bit integer, ascending. */
const cpusOf = (m: bigint) => Array.from({ length: 64 }, (_, c) => c).filter((c) => (m >> BigInt(c)) & 1n);

describe("Cpumask (64 bits) against a BigInt reference, 2000 seeded sets (Prng seed 64)", () => {
  it("covers MAX_CPUS, and so does deterministic mode", () => {
    expect(CPUMASK_BITS).toBe(MAX_CPUS);
    expect(SCHED_MAX_CPUS).toBe(MAX_CPUS);
  });

  it("set, clear, has, first, next, nth, weight, text and equals agree with the reference", () => {
    const rng = new Prng(64);
    for (let i = 0; i < 2000; i++) {
      // Sparse and dense sets, some confined to one word (the 32-bit machines' sets).
      const lo = (i % 3 === 0 ? rng.u32() & rng.u32() : rng.u32()) >>> 0;
      const hi = (i % 4 === 0 ? 0 : rng.u32() | (i % 5 === 0 ? 0x80000000 : 0)) >>> 0;
      const ref = (BigInt(hi) << 32n) | BigInt(lo);
      const cpus = cpusOf(ref);
      const m = new Cpumask().assign(lo, hi);
      expect(m.weight()).toBe(cpus.length);
      expect(m.first()).toBe(cpus[0] ?? -1);
      expect(m.text()).toBe(`{${cpus.join(",")}}`);
      expect(m.equals(lo >>> 0, hi >>> 0)).toBe(true);
      expect(m.equals(lo ^ 1, hi)).toBe(false);
      cpus.forEach((c, k) => {
        expect(m.nth(k)).toBe(c);
        expect(m.next(c)).toBe(cpus[k + 1] ?? -1);
      });
      for (const probe of [0, 30, 31, 32, 33, 62, 63]) {
        expect(m.has(probe)).toBe(cpus.includes(probe));
        const after = cpus.find((c) => c > probe) ?? -1;
        expect(m.next(probe)).toBe(after);
        const without = new Cpumask().copy(m).clear(probe);
        expect(without.has(probe)).toBe(false);
        expect(without.weight()).toBe(cpus.length - (cpus.includes(probe) ? 1 : 0));
        without.set(probe);
        expect(without.has(probe)).toBe(true);
      }
    }
  });
});

describe("replay files: runnable sets past CPU 31", () => {
  const d = (mask: number, maskHi?: number): Decision => ({
    step: 4,
    cpu: 1,
    mask,
    why: WHY_DUE,
    local: 2,
    ...(maskHi === undefined ? {} : { maskHi }),
  });

  it("a set of CPUs 0–30 encodes as the 32-bit mask always did", () => {
    expect(encodeDecisions([d(0b1011)])).toBe("4.1.b.1.2");
    expect(encodeDecisions([d(0x7fffffff)])).toBe(`4.1.${(0x7fffffff).toString(36)}.1.2`);
  });

  it("CPU 31 is a positive bit (a 32-CPU recording reads back), and CPUs 32–63 round-trip through maskHi", () => {
    for (const x of [d(0x80000001), d(0xffffffff, 0xffffffff), d(1, 0x80000000), d(0, 1)]) {
      const s = encodeDecisions([x]);
      expect(s).toMatch(/^4\.1\.[0-9a-z]+\.1\.2$/);
      const [back] = decodeDecisions(s);
      expect(back).toEqual(x);
      expect(decisionMask(back!)).toBe((BigInt(x.maskHi ?? 0) << 32n) | BigInt(x.mask));
    }
  });

  it("a mask wider than 64 CPUs is refused, naming the group", () => {
    const wide = (2n ** 64n).toString(36);
    expect(() => decodeDecisions(`0.0.${wide}.0.-`)).toThrow(`bad decision "0.0.${wide}.0.-"`);
  });
});

/** Explores demo:lost-update (1 op per CPU) on `cpus` CPUs with PCT from sched seed 1 until it fails. */
async function found(ex: Explorer) {
  const st = await explore(
    ex,
    { ops: 1, skip: [] },
    { strategy: "pct", depth: 3, p: 0.05, quantum: 1, bound: 2, budgetMs: 120_000, iterations: 200, seed: 1 },
  );
  expect(st.found?.outcome.failure?.kind).toBe("report");
  return st.found!;
}

for (const cpus of [33, 64])
  describe(`${cpus} CPUs: explore, replay${cpus === 64 ? ", shrink" : ""} (demo:lost-update, 1 op per CPU, machine seed 1, pct from sched seed 1)`, () => {
    const config = makeConfig({ ...scenario.config, cpus, memory: MEMORY, seed: 1 });
    const dir = mkdtempSync(join(tmpdir(), `vmsim-explore${cpus}-`));
    let ex: Explorer;
    let file: ReplayFile;
    beforeAll(async () => {
      ex = await Explorer.start(config, scenario);
    }, 300_000);
    afterAll(async () => ex.close());

    it("explore finds the lost update; its record names CPUs above 31; the file replays bit for bit, strictly and anchored per CPU", async () => {
      const f = await found(ex);
      const ds = f.outcome.record.decisions;
      expect(ds.some((x) => x.cpu >= 32)).toBe(true);
      expect(ds.every((x) => decisionMask(x) >> BigInt(cpus) === 0n)).toBe(true);
      expect(ds.every((x) => x.maskHi === undefined || x.maskHi !== 0)).toBe(true);
      // The start decision finds every CPU runnable.
      expect(cpusOf(decisionMask(ds[0]!))).toHaveLength(cpus);
      file = replayFileOf({
        config,
        scenario: scenario.name,
        script: undefined,
        params: { ops: 1, skip: [] },
        strategy: f.strategy,
        seed: f.seed,
        stepCap: 1e6,
        outcome: f.outcome,
      });
      const path = join(dir, "found.json");
      writeReplayFile(path, file);
      const plan = decodeDecisions(readReplayFile(path).decisions);
      expect(plan).toEqual(ds);
      for (const strategy of [{ kind: "replay", plan } as const, { kind: "local", plan } as const]) {
        const rep = await ex.runOnce(strategy, f.seed, { ops: 1, skip: [] });
        expect(rep.failure?.signature).toBe(f.outcome.failure?.signature);
        expect(rep.record.decisions).toEqual(ds);
        expect(rep.digest).toBe(f.outcome.digest);
      }
    }, 300_000);

    if (cpus === 64)
      it("shrinking cuts CPUs (by halves first) and the shrunk file still fails and replays strictly", async () => {
        const r = await shrink(file, 120_000);
        expect(r.unreplayed).toBeNull();
        expect(r.file.failure?.signature).toBe(file.failure?.signature);
        expect(r.file.config.cpus).toBeLessThan(cpus);
        expect(r.file.config.cpus).toBeGreaterThanOrEqual(2);
      }, 300_000);

    if (cpus === 64)
      it("the CLI replays the 64-CPU file bit for bit", async () => {
        const path = join(dir, readdirSync(dir).find((n) => n === "found.json")!);
        const r = await vmsim("replay", path);
        expect(r.code).toBe(1);
        expect(r.stdout).toMatch(/^vmsim replay .*: scenario demo:lost-update \(1 ops per CPU\), 64 CPUs, seed 1;/m);
        expect(r.stdout).toMatch(/= the recorded run's \(bit for bit\)/);
      }, 300_000);
  });

describe("the limit: 65 CPUs", () => {
  it("explore --cpus 65 is one line on stderr and exit 2", async () => {
    const r = await vmsim("explore", "--cpus", "65");
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "vmsim: error: option '--cpus <n>' argument '65' is invalid. cpus must be an integer in 1..64.\n",
    );
  });
});
