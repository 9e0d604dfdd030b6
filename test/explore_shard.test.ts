/**
 * Exploration campaigns across machines (src/workers/shard.ts,
 * src/explore/explore.ts's parts, src/cli/explore_campaign.ts): the split of
 * runs and of the bounded schedule tree is disjoint and complete, the merge
 * of n shards is the one unsharded run over the same runs, and bad shards and
 * mismatched merges are one line and exit status 2.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ExploreOptions, type ExploreStats, explore } from "../src/explore/explore.js";
import { Explorer } from "../src/explore/explorer.js";
import { findScenario } from "../src/explore/scenario.js";
import { makeConfig } from "../src/shared/config.js";
import { type Shard, holdsFirst, nestedShardItems, shardItems, shardNumbers } from "../src/workers/shard.js";
import { vmsim } from "./helpers/vmsim.js";

const range = (n: number) => Array.from({ length: n }, (_, k) => k);
const shards = (n: number): Shard[] => range(n).map((i) => ({ index: i + 1, count: n }));
const take = (g: Generator<number>, n: number) => Array.from({ length: n }, () => g.next().value!);

describe("the split", () => {
  it("shard i/n holds items k with k mod n = i - 1", () => {
    expect(shardItems(range(10), { index: 2, count: 3 })).toEqual([1, 4, 7]);
    expect(
      nestedShardItems(range(12), [
        { index: 2, count: 3 },
        { index: 2, count: 2 },
      ]),
    ).toEqual([4, 10]);
    expect(take(shardNumbers([{ index: 3, count: 4 }], null), 3)).toEqual([2, 6, 10]);
    expect([...shardNumbers([{ index: 2, count: 2 }], 6)]).toEqual([1, 3, 5]);
    expect(
      holdsFirst([
        { index: 1, count: 3 },
        { index: 1, count: 2 },
      ]),
    ).toBe(true);
    expect(
      holdsFirst([
        { index: 1, count: 3 },
        { index: 2, count: 2 },
      ]),
    ).toBe(false);
  });

  it("n shards (each split again into jobs) of items 0..N are disjoint and together are 0..N", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 12, maxLength: 12 }),
        fc.nat(300),
        (n, jobs, last) => {
          const all: number[] = [];
          for (const s of shards(n)) {
            const own = [...shardNumbers([s], last)];
            expect(own).toEqual(shardItems(range(last + 1), s));
            const split = shards(jobs[s.index - 1]!).flatMap((j) => [...shardNumbers([s, j], last)]);
            expect(split.sort((a, b) => a - b)).toEqual(own);
            all.push(...own);
          }
          expect(all.sort((a, b) => a - b)).toEqual(range(last + 1));
        },
      ),
    );
  });

  it("a split without end makes the same runs as the bounded split, as far as that goes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 3 }), fc.nat(200), (n, j, last) => {
        const part = [
          { index: n, count: n },
          { index: j, count: 3 },
        ];
        const bounded = [...shardNumbers(part, last)];
        expect(take(shardNumbers(part, null), bounded.length)).toEqual(bounded);
      }),
    );
  });

  it("nested shards of any list (the exhaustive search's prefixes) are disjoint and complete", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string(), { maxLength: 60 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 4 }),
        (items, n, jobs) => {
          const parts = shards(n).flatMap((s) => shards(jobs).map((j) => nestedShardItems(items, [s, j])));
          expect(parts.flat().length).toBe(items.length);
          expect(parts.flat().sort()).toEqual([...items].sort());
        },
      ),
    );
  });
});

describe("parts of one exploration add up to the whole (demo:lost-update, 2 CPUs, 2 ops)", () => {
  let ex: Explorer;
  beforeAll(async () => {
    const s = findScenario("demo:lost-update")!;
    ex = await Explorer.start(makeConfig({ ...s.config, cpus: 2, memory: 8 << 20, seed: 1 }), s);
  });
  afterAll(async () => ex.close());

  const params = { ops: 2, skip: [] };
  const base: ExploreOptions = {
    strategy: "exhaustive",
    depth: 3,
    p: 0.1,
    quantum: 1,
    bound: 2,
    budgetMs: 60_000,
    iterations: null,
    seed: 1,
    keepGoing: true,
  };
  /** What must add up: runs, their histogram, the schedules, each failure's count and first run. */
  const sum = (all: readonly ExploreStats[]) => ({
    runs: all.reduce((a, s) => a + s.runs, 0),
    preemptions: all[0]!.preemptions.map((_, i) => all.reduce((a, s) => a + s.preemptions[i]!, 0)),
    schedules: [...new Set(all.flatMap((s) => s.schedules ?? []))].sort(),
    failures: all
      .flatMap((s) => s.failures)
      .reduce((m, t) => {
        const sig = t.found.outcome.failure!.signature;
        return m.set(sig, (m.get(sig) ?? 0) + t.count);
      }, new Map<string, number>()),
  });

  it("the bounded schedule tree: every schedule in exactly one shard, split at the root or deeper", async () => {
    const whole = await explore(ex, params, base);
    expect(whole.exhausted).toBe(true);
    expect(whole.runs).toBeGreaterThan(10);
    // 2 and 3 shards split the root's children; 20 and 40 need the next level (shared runs) or get none.
    for (const n of [1, 2, 3, 20, 40]) {
      const parts = [];
      for (const s of shards(n)) parts.push(await explore(ex, params, { ...base, part: [s] }));
      expect(parts.every((p) => p.exhausted)).toBe(true);
      expect(sum(parts), `${n} shards`).toEqual(sum([whole]));
      if (n === 20) expect(parts[1]!.shared).toBeGreaterThan(1);
    }
  });

  it("shards with jobs inside make the runs of the unsharded exploration, run for run", async () => {
    const o: ExploreOptions = { ...base, strategy: "pct", iterations: 40 };
    const whole = await explore(ex, params, o);
    const parts = [];
    for (const s of shards(3))
      for (const j of shards(s.index)) parts.push(await explore(ex, params, { ...o, part: [s, j] }));
    expect(sum(parts)).toEqual(sum([whole]));
    // The same first run of the failure: runs are numbered as the whole campaign's.
    const first = Math.min(...parts.flatMap((p) => p.failures.map((t) => t.found.iteration)));
    expect(first).toBe(whole.failures[0]!.found.iteration);
    // Shard 3/3's second job of three makes runs 5, 14, 23, 32 and stops before 41.
    expect(parts.at(-2)!.nextRun).toBe(41);
  });

  it("a portfolio does not split", async () => {
    await expect(
      explore(ex, params, { ...base, strategy: "portfolio", part: [{ index: 1, count: 2 }] }),
    ).rejects.toThrow(/portfolio/);
  });
});

/** The SUMMARY line's object of a command's output. */
function summary(stdout: string): Record<string, unknown> {
  const line = stdout.split("\n").find((l) => l.startsWith("SUMMARY "));
  if (line === undefined) throw new Error(`no SUMMARY line in:\n${stdout}`);
  return JSON.parse(line.slice("SUMMARY ".length));
}

describe("vmsim explore --shard and vmsim explore merge", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-explore-shard-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = ["explore", "--scenario", "demo:lost-update", "--iterations", "30", "--keep-going"];
  const file = (i: number) => join(dir, `shard-${i}`, `explore-shard-${i}-of-3.json`);

  it("3 shards merged give the totals and failures of one run over the same runs", async () => {
    const whole = await vmsim(...run, "--out", join(dir, "whole"));
    expect(whole.code).toBe(1);
    for (const i of [1, 2, 3]) {
      const r = await vmsim(...run, "--shard", `${i}/3`, "--out", join(dir, `shard-${i}`));
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toContain(`wrote ${file(i)}`);
    }
    const merged = await vmsim("explore", "merge", file(1), file(2), file(3));
    expect(merged.code, merged.stderr).toBe(1);
    const m = summary(merged.stdout);
    const w = summary(whole.stdout);
    for (const k of ["runs", "distinct", "k", "preemptions"]) expect(m[k], k).toEqual(w[k]);
    const failures = (w.failures as { signature: string; count: number; run: number }[]).map(
      ({ signature, count, run }) => ({ signature, count, run }),
    );
    expect(failures.length).toBe(1);
    expect(m.failures).toEqual(failures);
    expect(m.coverage).toEqual({ made: 31, whole: true });
    expect(merged.stdout).toContain("coverage: every run made (runs 1-31 of 31)");
    // Every shard's replay file, each from where the merge was run, replays.
    const replays = merged.stdout.match(/vmsim replay \S+/g) ?? [];
    expect(replays.length).toBe(3);
    const again = await vmsim("replay", replays[0]!.split(" ")[2]!);
    expect(again.stdout).toMatch(/\(as recorded\)/);
  });

  it("a missing shard is named and the coverage stops where it starts", async () => {
    const r = await vmsim("explore", "merge", file(1), file(3), "--json");
    expect(r.code).toBe(1);
    const f = JSON.parse(r.stdout);
    expect(f.missingShards).toEqual(["2/3"]);
    expect(f.coverage).toEqual({ made: 1, whole: false });
  });

  it("bad shards and mismatched merges: one line on stderr, exit status 2", async () => {
    const bad: string[][] = [
      ["explore", "--scenario", "demo:lost-update", "--shard", "0/3"],
      ["explore", "--scenario", "demo:lost-update", "--shard", "4/3"],
      ["explore", "--scenario", "demo:lost-update", "--shard", "1/3", "--strategy", "portfolio"],
      ["explore", "merge", file(1), file(1)],
      ["explore", "merge", join(dir, "nothing.json")],
    ];
    const other = join(dir, "other");
    const o = await vmsim(...run.slice(0, 3), "--iterations", "20", "--shard", "2/3", "--out", other, "--json");
    expect(o.code).toBe(1);
    bad.push(["explore", "merge", file(1), join(other, "explore-shard-2-of-3.json")]);
    const edited = join(dir, "edited.json");
    writeFileSync(edited, JSON.stringify({ ...JSON.parse(readFileSync(file(2), "utf8")), parts: [] }));
    bad.push(["explore", "merge", file(1), edited]);
    for (const args of bad) {
      const r = await vmsim(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr).toMatch(/^vmsim: error/);
    }
  });
});
