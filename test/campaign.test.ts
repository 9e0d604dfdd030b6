/**
 * Stress campaigns (src/cli/campaign.ts): the seed and shard arithmetic
 * (pure), a real 2-seed campaign of tiny runs on the piscina pool, and merging
 * shards back into the unsharded campaign's seed set.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  type CampaignFile,
  type CampaignRun,
  defaultJobs,
  mergeCampaigns,
  runCampaign,
  shardSeeds,
} from "../src/cli/campaign.js";
import { parseSeedRange, parseShard } from "../src/cli/options.js";
import { makeConfig } from "../src/shared/config.js";
import { vmsim } from "./helpers/vmsim.js";

describe("seeds and shards", () => {
  it("parses seed ranges A-B and single seeds", () => {
    expect(parseSeedRange("1-100")).toEqual({ from: 1, to: 100 });
    expect(parseSeedRange("7")).toEqual({ from: 7, to: 7 });
    expect(parseSeedRange("0-4294967295")).toEqual({ from: 0, to: 0xffffffff });
    for (const bad of ["5-1", "a-b", "-3", "1-", "1-4294967296", "1..5", ""])
      expect(() => parseSeedRange(bad), bad).toThrow(/A-B/);
  });

  it("parses shards i/n with 1 <= i <= n", () => {
    expect(parseShard("1/4")).toEqual({ index: 1, count: 4 });
    expect(parseShard("4/4")).toEqual({ index: 4, count: 4 });
    for (const bad of ["0/4", "5/4", "1/0", "x", "1/", "/2", "1.5/2"])
      expect(() => parseShard(bad), bad).toThrow(/i\/n/);
  });

  it("shard i/n of A-B is every seed s with (s - A) mod n = i - 1", () => {
    expect(shardSeeds({ from: 10, to: 20 }, null)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(shardSeeds({ from: 10, to: 20 }, { index: 1, count: 3 })).toEqual([10, 13, 16, 19]);
    expect(shardSeeds({ from: 10, to: 20 }, { index: 3, count: 3 })).toEqual([12, 15, 18]);
    expect(shardSeeds({ from: 5, to: 6 }, { index: 4, count: 4 })).toEqual([]);
  });

  it("the n shards of a range are disjoint and together are the range", () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.nat(200), fc.integer({ min: 1, max: 12 }), (from, span, n) => {
        const range = { from, to: from + span };
        const all = Array.from({ length: n }, (_, i) => shardSeeds(range, { index: i + 1, count: n })).flat();
        expect(all.sort((a, b) => a - b)).toEqual(shardSeeds(range, null));
      }),
    );
  });

  it("runs one machine per `cpus` host cores by default, at least one", () => {
    expect(defaultJobs(2, 16)).toBe(8);
    expect(defaultJobs(3, 16)).toBe(5);
    expect(defaultJobs(4, 2)).toBe(1);
    expect(defaultJobs(1, 2)).toBe(2);
  });
});

/** A run as a campaign records it, for merge tests that need no machine. */
function run(seed: number, ok = true): CampaignRun {
  return {
    seed,
    ok,
    ops: 10,
    opsPerSec: 100,
    durationMs: 100,
    rounds: 1,
    checks: 2,
    allocFailures: 0,
    rerun: `vmsim stress --seed ${seed}`,
    ...(ok ? {} : { why: "after round 1: broken" }),
  };
}

describe("mergeCampaigns", () => {
  const base = (shard: number, runs: CampaignRun[]): CampaignFile =>
    mergeCampaigns([
      {
        command: "stress-campaign",
        ok: true,
        parts: [
          {
            seeds: { from: 1, to: 6 },
            shard: { index: shard, count: 3 },
            jobs: 1,
            wallMs: 1,
            host: { cpu: "x", cores: 2, node: "v20", platform: "linux x64", date: "" },
            interrupted: false,
          },
        ],
        config: { ...makeConfig({}), seed: undefined } as unknown as CampaignFile["config"],
        options: { durationMs: null, ops: 10, failPageAlloc: 0, stutter: 0.01, rcuWalk: 0.01, mix: "" },
        totals: { seeds: 0, passed: 0, failed: 0, missing: 0, ops: 0, durationMs: 0 },
        failing: [],
        missing: [],
        missingShards: [],
        runs,
      },
    ]);

  it("recomputes totals, failing seeds with their reruns, missing seeds and shards", () => {
    // Shard 1/3 of 1-6 is seeds 1 and 4, shard 2/3 is 2 and 5; seed 5's run is absent (interrupted).
    const m = mergeCampaigns([base(1, [run(4), run(1, false)]), base(2, [run(2)])]);
    expect(m.runs.map((r) => r.seed)).toEqual([1, 2, 4]);
    expect(m.totals).toEqual({ seeds: 3, passed: 2, failed: 1, missing: 1, ops: 30, durationMs: 300 });
    expect(m.failing).toEqual([{ seed: 1, rerun: "vmsim stress --seed 1", why: "after round 1: broken" }]);
    expect(m.missing).toEqual([5]);
    expect(m.missingShards).toEqual(["3/3 of 1-6"]);
    expect(m.ok).toBe(false);
  });

  it("keeps one run per seed and refuses files of different machines", () => {
    const a = base(1, [run(1), run(4)]);
    expect(mergeCampaigns([a, a]).runs.map((r) => r.seed)).toEqual([1, 4]);
    const other = { ...a, config: { ...a.config, cpus: 4 } };
    expect(() => mergeCampaigns([a, other])).toThrow(/different machines or options/);
    expect(() => mergeCampaigns([])).toThrow(/nothing to merge/);
  });

  it("a file from before config.slubDebug ran with slub_debug on: it merges with today's, not with --no-slub-debug's", () => {
    const a = base(1, [run(1)]);
    const { slubDebug: _, ...before } = a.config;
    const old = { ...a, config: before as CampaignFile["config"] };
    const m = mergeCampaigns([old, base(2, [run(2)])]);
    expect(m.config.slubDebug).toBe(true);
    expect(m.runs.map((r) => r.seed)).toEqual([1, 2]);
    const off = { ...a, config: { ...a.config, slubDebug: false } };
    expect(() => mergeCampaigns([old, off])).toThrow(/different machines or options/);
  });
});

describe("runCampaign", () => {
  const config = makeConfig({ cpus: 2 });
  const stress = { ops: 400 };

  it("a 2-seed campaign of tiny runs gives mergeable JSON; its two shards merge into the same seed set", async () => {
    const seeds = { from: 41, to: 42 };
    const whole = await runCampaign(config, { seeds, jobs: 2, stress });
    expect(whole.runs.map((r) => [r.seed, r.ok, r.ops])).toEqual([
      [41, true, 400],
      [42, true, 400],
    ]);
    expect(whole.ok).toBe(true);
    expect(whole.totals).toMatchObject({ seeds: 2, passed: 2, failed: 0, missing: 0, ops: 800 });
    expect(whole.runs[1]!.rerun).toMatch(/^vmsim stress --seed 42 (.* )?--ops 400$/);
    expect(whole.parts[0]).toMatchObject({ seeds, shard: null, jobs: 2, interrupted: false });
    const json = JSON.parse(JSON.stringify(whole)) as CampaignFile;
    expect(json).toEqual(whole);

    const shard1 = await runCampaign(config, { seeds, shard: { index: 1, count: 2 }, jobs: 1, stress });
    const shard2 = await runCampaign(config, { seeds, shard: { index: 2, count: 2 }, jobs: 1, stress });
    expect(shard1.runs.map((r) => r.seed)).toEqual([41]);
    expect(shard1.missingShards).toEqual(["2/2 of 41-42"]);
    const merged = mergeCampaigns([shard2, shard1].map((f) => JSON.parse(JSON.stringify(f)) as CampaignFile));
    expect(merged.runs.map((r) => r.seed)).toEqual(whole.runs.map((r) => r.seed));
    expect(merged.missingShards).toEqual([]);
    expect(merged.missing).toEqual([]);
    expect(merged.totals).toMatchObject({ seeds: 2, passed: 2, failed: 0, ops: 800 });
    expect(merged.ok).toBe(true);
  });
});

describe("vmsim stress --seeds / vmsim stress merge", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-campaign-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("two shards run from the command line merge into the whole range", async () => {
    const flags = ["--seeds", "1-2", "--cpus", "1", "--ops", "200"];
    const a = await vmsim("stress", ...flags, "--shard", "1/2", "--out", join(dir, "a.json"));
    const b = await vmsim("stress", ...flags, "--shard", "2/2", "--out", join(dir, "b.json"));
    expect([a.code, a.stderr, b.code, b.stderr]).toEqual([0, "", 0, ""]);
    expect(a.stdout).toContain("stress campaign: seeds 1-2, shard 1/2 (1 seed), 1 CPU each, 1 machine at once");
    expect(a.stdout).toMatch(/^result: ok \(1 seed ran clean\)$/m);
    const m = await vmsim("stress", "merge", join(dir, "a.json"), join(dir, "b.json"), "--out", join(dir, "all.json"));
    expect(m.code).toBe(0);
    expect(m.stdout).toMatch(/^result: ok \(2 seeds ran clean\)$/m);
    const all = JSON.parse(readFileSync(join(dir, "all.json"), "utf8")) as CampaignFile;
    expect(all.runs.map((r) => r.seed)).toEqual([1, 2]);
    expect(all.missingShards).toEqual([]);
    const summary = JSON.parse(
      m.stdout
        .trimEnd()
        .split("\n")
        .at(-1)!
        .replace(/^SUMMARY /, ""),
    );
    expect(summary).toMatchObject({ command: "stress-campaign", ok: true, totals: { seeds: 2, passed: 2 } });
  });

  it("merge of JSON that is no campaign's results (null, a bare command, a run without a seed) exits 2 with one line", async () => {
    const a = JSON.parse(readFileSync(join(dir, "a.json"), "utf8")) as CampaignFile;
    const shapes = [null, { command: "stress-campaign" }, { ...a, runs: [{ ...a.runs[0], seed: -1 }] }];
    for (const [i, shape] of shapes.entries()) {
      const file = join(dir, `bad${i}.json`);
      writeFileSync(file, JSON.stringify(shape));
      const r = await vmsim("stress", "merge", join(dir, "a.json"), file);
      expect([r.code, r.stdout, r.stderr]).toEqual([
        2,
        "",
        `vmsim: error: ${file} is not a stress campaign's results\n`,
      ]);
    }
  });

  it.each([
    [["stress", "--seeds", "3-1"], "--seeds"],
    [["stress", "--seeds", "1-2", "--shard", "3/2"], "--shard"],
    [["stress", "--seeds", "1-2", "--jobs", "0"], "--jobs"],
    [["stress", "--seeds", "1-2", "--seed", "3"], "--seed and --seeds"],
    [["stress", "merge", "/nonexistent/a.json"], "cannot read"],
    [["stress", "merge"], "missing required argument"],
  ])("bad arguments %j exit 2 with one line on stderr", async (args, says) => {
    const r = await vmsim(...args);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(says);
  });
});
