/**
 * Writing your own deterministic tests: checkInterleavings explores a script
 * or a scenario under the deterministic scheduler inside a vitest test, and
 * the environment (VMSIM_SEED, VMSIM_STRATEGY, VMSIM_ITERATIONS,
 * VMSIM_REPLAY) steers it as loom's and Shuttle's variables do.
 */
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InterleavingFailure, checkInterleavings } from "../src/explore/testing.js";

const ENV = ["VMSIM_SEED", "VMSIM_STRATEGY", "VMSIM_ITERATIONS", "VMSIM_REPLAY"] as const;

describe("checkInterleavings (machine seed 1, strategy seeds from 1)", () => {
  afterEach(() => {
    for (const k of ENV) delete process.env[k];
  });

  it("every schedule with at most one preemption of two CPUs allocating, writing and freeing keeps the invariants", async () => {
    const stats = await checkInterleavings({
      script: [
        { op: "vmalloc", size: 8192, as: "a", cpu: 0 },
        { op: "write", ref: "a", offset: 0, hex: "c0ffee", cpu: 0 },
        { op: "vmalloc", size: 4096, as: "b", cpu: 1 },
        { op: "vfree", ref: "a", cpu: 0 },
        { op: "vfree", ref: "b", cpu: 1 },
        { op: "purge", cpu: 1 },
      ],
      strategy: "exhaustive",
      bound: 1,
      iterations: 5000,
    });
    expect(stats?.found).toBeNull();
    expect(stats?.exhausted).toBe(true);
    expect(stats?.distinct).toBeGreaterThan(10);
  });

  it("a lost update fails the test with its text, a replay file and the command that replays it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmsim-interleavings-"));
    const err = await checkInterleavings({ scenario: "demo:lost-update", replayDir: dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterleavingFailure);
    const f = err as InterleavingFailure;
    expect(f.message).toMatch(/lost update/);
    expect(f.message).toContain(`VMSIM_REPLAY=${f.replayFile} npx vitest run`);
    expect(readdirSync(dir)).toHaveLength(1);

    // VMSIM_REPLAY: the same failure, from the file, without exploring.
    process.env["VMSIM_REPLAY"] = f.replayFile;
    const again = await checkInterleavings({ scenario: "demo:lost-update", replayDir: dir }).catch((e: unknown) => e);
    expect((again as InterleavingFailure).failure.signature).toBe(f.failure.signature);
  });

  it("VMSIM_STRATEGY and VMSIM_ITERATIONS override the test's own settings", async () => {
    process.env["VMSIM_STRATEGY"] = "exhaustive:0";
    process.env["VMSIM_ITERATIONS"] = "3";
    const stats = await checkInterleavings({ scenario: "demo:lost-update", strategy: "random", p: 0.5 });
    // Without preemptions there is no lost update, and the one schedule is all there is.
    expect(stats?.found).toBeNull();
    expect(stats?.exhausted).toBe(true);
    process.env["VMSIM_STRATEGY"] = "dfs";
    await expect(checkInterleavings({ scenario: "demo:lost-update" })).rejects.toThrow(/VMSIM_STRATEGY=dfs/);
  });

  it("VMSIM_SEED moves the strategy seeds: the failing run's seed follows it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmsim-interleavings-"));
    process.env["VMSIM_SEED"] = "100";
    const err = (await checkInterleavings({ scenario: "demo:lost-update", replayDir: dir }).catch(
      (e) => e,
    )) as InterleavingFailure;
    expect(err.replayFile).toMatch(/-s1\d\d-/);
  });
});
