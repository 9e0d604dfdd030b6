/**
 * `vmsim test --seeds A-B --shard i/n --out f.json` and `vmsim test merge`
 * (src/cli/test_campaign.ts): the (case × seed) split is disjoint and
 * complete, three shards merged give the totals and the failing items of one
 * unsharded run, and bad input is one line on stderr with exit 2. The runs
 * are tiny (1 CPU, 5 loops); fix_size_alloc_test with more pages than the
 * machine has fails on every seed, so the failures to compare are certain.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { shardItems } from "../src/cli/options.js";
import { type TestCampaignFile, itemName, mergeTestCampaigns, testItems } from "../src/cli/test_campaign.js";
import { vmsim } from "./helpers/vmsim.js";

describe("the (case × seed) items and their shards", () => {
  it("orders the items by case in table order, then seed", () => {
    expect(testItems({ kernel: "4.19" }, 0x9, { from: 7, to: 8 }).map(itemName)).toEqual([
      "fix_size_alloc_test seed 7",
      "fix_size_alloc_test seed 8",
      "random_size_alloc_test seed 7",
      "random_size_alloc_test seed 8",
    ]);
    // v5.10's table: bit 0x400 is kvfree_rcu_1_arg_slab_test.
    expect(testItems({ kernel: "5.10" }, 0x400, { from: 1, to: 1 }).map(itemName)).toEqual([
      "kvfree_rcu_1_arg_slab_test seed 1",
    ]);
  });

  it("the n shards of any campaign are disjoint and together are every item", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("4.19", "5.10", "6.12" as const),
        fc.integer({ min: 1, max: 0xfff }),
        fc.nat(1000),
        fc.nat(30),
        fc.integer({ min: 1, max: 12 }),
        (kernel, mask, from, span, n) => {
          const all = testItems({ kernel }, mask, { from, to: from + span }).map(itemName);
          const shards = Array.from({ length: n }, (_, i) => shardItems(all, { index: i + 1, count: n }));
          expect(shards.flat().sort()).toEqual([...all].sort());
          expect(new Set(shards.flat()).size).toBe(all.length);
        },
      ),
    );
  });
});

describe("vmsim test --shard / vmsim test merge", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-test-shard-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // 6 items: fix_size (40000 pages: 160 MiB of a 128 MiB machine, fails) and random_size (passes), seeds 1-3.
  const flags = ["--seeds", "1-3", "--cpus", "1", "--memory", "128M", "--run-test-mask", "0x9"];
  const params = ["--test-loop-count", "5", "--nr-pages", "40000"];
  const file = (name: string) => join(dir, name);
  const read = (name: string) => JSON.parse(readFileSync(file(name), "utf8")) as TestCampaignFile;

  it("three shards merged give the totals and failing items of one unsharded run", async () => {
    const whole = await vmsim("test", ...flags, ...params, "--out", file("whole.json"));
    expect(whole.code).toBe(1);
    expect(whole.stdout).toContain(
      "test campaign: seeds 1-3 (6 items: a case on a seed each), 1 CPU, mode manual, 1 worker, test_repeat_count=1 test_loop_count=5",
    );
    expect(whole.stdout).toMatch(/^result: FAILED \(3 failing items, rerun commands above\)$/m);
    for (const i of [1, 2, 3]) {
      const r = await vmsim("test", ...flags, ...params, "--shard", `${i}/3`, "--out", file(`s${i}.json`));
      expect([i, r.code]).toEqual([i, 1]);
    }
    // Item k goes to shard (k mod 3) + 1: fix_size seeds 1, 2, 3 are items 0-2, random_size's 3-5.
    expect(read("s2.json").items.map(itemName)).toEqual([
      "fix_size_alloc_test seed 2",
      "random_size_alloc_test seed 2",
    ]);

    const m = await vmsim(
      "test",
      "merge",
      file("s3.json"),
      file("s1.json"),
      file("s2.json"),
      "--out",
      file("all.json"),
    );
    expect(m.code).toBe(1);
    expect(m.stdout.split("\n")[0]).toBe("merged 3 files: 3 parts");
    const a = read("whole.json");
    const b = read("all.json");
    expect(b.totals).toEqual({ ...a.totals, durationMs: b.totals.durationMs });
    expect(b.totals).toMatchObject({ items: 6, passed: 3, failed: 3, missing: 0, runs: { passed: 3, failed: 3 } });
    expect(b.tests).toEqual(a.tests);
    expect(b.failing.map((f) => [f.test, f.seed, f.rerun])).toEqual(a.failing.map((f) => [f.test, f.seed, f.rerun]));
    expect(b.failing.map((f) => f.rerun)).toEqual([
      "vmsim test --cpus 1 --memory 128M --test-loop-count 5 --nr-pages 40000 --run-test-mask 0x1",
      "vmsim test --cpus 1 --memory 128M --seed 2 --test-loop-count 5 --nr-pages 40000 --run-test-mask 0x1",
      "vmsim test --cpus 1 --memory 128M --seed 3 --test-loop-count 5 --nr-pages 40000 --run-test-mask 0x1",
    ]);
    expect(b.items.map(itemName)).toEqual(a.items.map(itemName));
    expect([b.missing, b.missingShards, b.ok]).toEqual([[], [], false]);
    // The stdout lines but the merge header and the file name are those of the unsharded run.
    const lines = (s: string) => s.split("\n").filter((l) => /^( {2}|items:|FAILED|result:)/.test(l));
    expect(
      lines(m.stdout)
        .map((l) => l.replace(/[\d.]+ s of tests/, ""))
        .join("\n"),
    ).toBe(
      lines(whole.stdout)
        .map((l) => l.replace(/[\d.]+ s of tests/, ""))
        .join("\n"),
    );
  });

  it("a merge without a shard lists its items and the shard as missing, and does not pass", async () => {
    const m = await vmsim("test", "merge", file("s1.json"), file("s3.json"), "--json");
    expect(m.code).toBe(1);
    const f = JSON.parse(m.stdout) as TestCampaignFile;
    expect(f.missing).toEqual(["fix_size_alloc_test seed 2", "random_size_alloc_test seed 2"]);
    expect(f.missingShards).toEqual(["2/3 of seeds 1-3"]);
    expect(f.totals).toMatchObject({ items: 4, missing: 2 });
  });

  it("a shard without failures is ok; missing items make the merge incomplete, not ok", () => {
    const a = read("s1.json");
    const passing = { ...a, items: a.items.filter((i) => i.ok) };
    const m = mergeTestCampaigns([passing]);
    expect(m.ok).toBe(false);
    expect(m.failing).toEqual([]);
    // The failing item dropped, and every item of the shards no file holds.
    expect(m.missing).toEqual([
      "fix_size_alloc_test seed 1",
      "fix_size_alloc_test seed 2",
      "fix_size_alloc_test seed 3",
      "random_size_alloc_test seed 2",
      "random_size_alloc_test seed 3",
    ]);
    expect(m.missingShards).toEqual(["2/3 of seeds 1-3", "3/3 of seeds 1-3"]);
  });

  it.each([
    [["--shard", "0/3"], "i/n"],
    [["--shard", "4/3"], "i/n"],
    [["--seeds", "5-1"], "A-B"],
    [["--seeds", "1-2", "--seed", "3"], "--seed and --seeds exclude each other"],
    [["--out", "x.json"], "--out writes a campaign's results: give --seeds or --shard"],
  ])("vmsim test %j exits 2 with one line on stderr", async (args, says) => {
    const r = await vmsim("test", ...args);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(says);
  });

  it("merge refuses files of different machines or parameters, and files that are no campaign's, with one line", async () => {
    const a = read("s1.json");
    writeFileSync(file("other.json"), JSON.stringify({ ...a, config: { ...a.config, cpus: 2 } }));
    writeFileSync(file("params.json"), JSON.stringify({ ...a, options: { ...a.options, nrThreads: 2 } }));
    writeFileSync(file("bad.json"), JSON.stringify({ ...a, items: [{ ...a.items[0], seed: -1 }] }));
    for (const [files, says] of [
      [["s1.json", "other.json"], "different machines or test parameters"],
      [["s1.json", "params.json"], "different machines or test parameters"],
      [["bad.json"], "is not a test campaign's results"],
      [["nowhere.json"], "cannot read"],
    ] as const) {
      const r = await vmsim("test", "merge", ...files.map(file));
      expect([files, r.code]).toEqual([files, 2]);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(says);
    }
  });
});
