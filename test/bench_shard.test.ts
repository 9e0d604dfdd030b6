/**
 * `vmsim bench --shard i/n` and `vmsim bench merge` (src/cli/bench_shard.ts):
 * the split of the (CPU count × kernel × case × repeat) runs is disjoint and
 * complete; three shards merged hold the runs, points and files of one
 * unsharded bench (structure and item sets: no timing is compared); folders
 * from two hosts say so in the table; bad input is one line, exit 2.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus as hostCpus, tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import type { BenchResult } from "../src/cli/bench.js";
import { benchRuns, runKey, runName } from "../src/cli/bench_shard.js";
import { shardItems } from "../src/cli/options.js";
import type { KernelVersion } from "../src/shared/config.js";
import type { TestVmallocCase } from "../src/workers/workloads/test_vmalloc.js";
import { vmsim } from "./helpers/vmsim.js";

describe("the runs of a bench and their shards", () => {
  it("orders the runs by CPU count, kernel, case, repeat", () => {
    const runs = benchRuns([1, 4], ["4.19", "6.12"], ["fix_size_alloc_test"], 2);
    expect(runs.map((r) => runName(r, 2))).toEqual([
      "fix_size_alloc_test on 1 CPU, v4.19, run 1/2",
      "fix_size_alloc_test on 1 CPU, v4.19, run 2/2",
      "fix_size_alloc_test on 1 CPU, v6.12, run 1/2",
      "fix_size_alloc_test on 1 CPU, v6.12, run 2/2",
      "fix_size_alloc_test on 4 CPUs, v4.19, run 1/2",
      "fix_size_alloc_test on 4 CPUs, v4.19, run 2/2",
      "fix_size_alloc_test on 4 CPUs, v6.12, run 1/2",
      "fix_size_alloc_test on 4 CPUs, v6.12, run 2/2",
    ]);
  });

  it("the n shards of any bench are disjoint and together are every run", () => {
    const kernels: KernelVersion[] = ["4.19", "5.10", "6.12"];
    const tests: TestVmallocCase[] = ["fix_size_alloc_test", "random_size_alloc_test", "long_busy_list_alloc_test"];
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 6 }),
        fc.subarray(kernels, { minLength: 1 }),
        fc.subarray(tests, { minLength: 1 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 12 }),
        (cpus, ks, ts, repeats, n) => {
          const all = benchRuns(cpus, ks, ts, repeats).map(runKey);
          const shards = Array.from({ length: n }, (_, i) => shardItems(all, { index: i + 1, count: n }));
          expect(shards.flat().sort()).toEqual([...all].sort());
          expect(new Set(shards.flat()).size).toBe(cpus.length * ks.length * ts.length * repeats);
        },
      ),
    );
  });
});

describe("vmsim bench --shard / vmsim bench merge", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-bench-shard-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const at = (name: string) => join(dir, name);
  const read = (name: string) => JSON.parse(readFileSync(join(at(name), "scaling.json"), "utf8")) as BenchResult;
  // 8 runs: 2 cases × 2 CPU counts × 2 repeats, tiny loops.
  const flags = ["--tests", "fix_size,random_size", "--cpus", "1,2", "--repeats", "2", "--loops", "20"];
  const rows = (r: BenchResult) => r.points.map((p) => `${p.test}@${p.cpus}:${p.kernel}`);
  const runsOf = (r: BenchResult) => (r.samples ?? []).map((s) => runName(s, r.repeats));
  /** The markdown table's shape: every cell that is not a measured figure. */
  const shape = (md: string) =>
    md
      .split("\n")
      .filter((l) => l.startsWith("|"))
      .map((l) =>
        l
          .split("|")
          .slice(1, 4)
          .map((c) => c.trim())
          .join("|"),
      );

  it("three shards merged hold the runs, points and files of one unsharded bench", async () => {
    const whole = await vmsim("bench", ...flags, "--out", at("whole"));
    expect(whole.code).toBe(0);
    for (const i of [1, 2, 3]) {
      const r = await vmsim("bench", ...flags, "--shard", `${i}/3`, "--out", at(`s${i}`));
      expect([i, r.code]).toEqual([i, 0]);
      expect(r.stdout).toContain(`--loops 20 --shard ${i}/3\``);
      // A shard is whole in itself: it names the other shards, and is ok.
      expect(r.stdout).toContain("Missing shards: ");
      expect(r.stdout).not.toContain("Missing: ");
      expect(r.stdout).toMatch(/^result: ok \(/m);
    }
    // Run k goes to shard (k mod 3) + 1.
    expect(runsOf(read("s2"))).toEqual([
      "fix_size_alloc_test on 1 CPU, v4.19, run 2/2",
      "fix_size_alloc_test on 2 CPUs, v4.19, run 1/2",
      "random_size_alloc_test on 2 CPUs, v4.19, run 2/2",
    ]);
    const m = await vmsim("bench", "merge", at("s3"), at("s1"), join(at("s2"), "scaling.json"), "--out", at("merged"));
    expect(m.code).toBe(0);
    expect(m.stdout.split("\n")[0]).toBe("merged 3 results: 3 parts, 8 runs");
    expect(m.stdout).toMatch(/^result: ok \(4 points measured: 2 cases on 1, 2 CPUs, kernel 4\.19\)$/m);

    const a = read("whole");
    const b = read("merged");
    expect(rows(b)).toEqual(rows(a));
    expect(runsOf(b)).toEqual(runsOf(a));
    expect(b.points.map((p) => p.samples)).toEqual(a.points.map((p) => p.samples));
    expect(Object.keys(b)).toEqual(Object.keys(a));
    expect(Object.keys(b.points[0]!)).toEqual(Object.keys(a.points[0]!));
    const { host: _h, points: _p, parts: _q, samples: _s, ...settings } = a;
    expect(b).toMatchObject(settings);
    expect([b.missing, b.missingShards]).toEqual([[], []]);
    for (const f of ["scaling.md", "scaling.svg", "fix_size_alloc_test.svg", "random_size_alloc_test.svg"])
      expect(existsSync(join(at("merged"), f)), f).toBe(true);
    const md = (name: string) => readFileSync(join(at(name), "scaling.md"), "utf8");
    expect(shape(md("merged"))).toEqual(shape(md("whole")));
    // The merge's command line is the unsharded run's.
    expect(md("merged").split("\n")[2]).toBe(md("whole").split("\n")[2]);
  });

  it("a merge without a shard lists the runs missing and says it is incomplete", async () => {
    const m = await vmsim("bench", "merge", at("s1"), at("s3"), "--out", at("part"));
    expect(m.code).toBe(0);
    expect(m.stdout).toContain(
      "Missing: 3 runs: fix_size_alloc_test on 1 CPU, v4.19, run 2/2; fix_size_alloc_test on 2 CPUs, v4.19, run 1/2; random_size_alloc_test on 2 CPUs, v4.19, run 2/2.",
    );
    expect(m.stdout).toContain("Missing shards: 2/3 of --cpus 1,2.");
    expect(m.stdout).toMatch(/^result: incomplete \(4 points measured: .*; 3 runs missing, listed above\)$/m);
    expect(read("part").missing).toHaveLength(3);
  });

  it("a big host's CPU count merges with a small host's: the table names each row's hosts", async () => {
    const big = await vmsim(
      "bench",
      "--tests",
      "fix_size",
      "--cpus",
      "3",
      "--repeats",
      "2",
      "--loops",
      "20",
      "--out",
      at("big"),
    );
    expect(big.code).toBe(0);
    // Stand-in for a scaling.json written on a 16-core runner.
    const f = read("big");
    const host = { ...f.host, cpu: "Big Runner CPU", cores: 16 };
    writeFileSync(
      join(at("big"), "scaling.json"),
      JSON.stringify({
        ...f,
        host,
        tests: ["fix_size_alloc_test", "random_size_alloc_test"],
        parts: [{ ...f.parts![0]!, host }],
      }),
    );
    const m = await vmsim("bench", "merge", at("whole"), at("big"), "--out", at("both"));
    expect(m.code).toBe(0);
    const r = read("both");
    expect(r.cpus).toEqual([1, 2, 3]);
    expect(rows(r)).toContain("fix_size_alloc_test@3:4.19");
    expect(r.points.find((p) => p.cpus === 3)).toMatchObject({ hosts: ["H2"], oversubscribed: false });
    expect(r.points.find((p) => p.cpus === 2)).toMatchObject({ hosts: ["H1"], oversubscribed: 2 > hostCpus().length });
    const md = readFileSync(join(at("both"), "scaling.md"), "utf8");
    expect(md).toMatch(new RegExp(`^Machine H1: .*, ${hostCpus().length} cores, `, "m"));
    expect(md).toMatch(/^Machine H2: Big Runner CPU, 16 cores, /m);
    expect(md).toContain("| lock wait | waits by lock | host |");
    expect(md).toMatch(/^\| fix_size_alloc_test \| 3 \| 4\.19 \|.* \| H2 \|$/m);
    // The big host measured random_size on no CPU count: its runs of 3 CPUs are missing.
    expect(r.missing).toEqual([
      "random_size_alloc_test on 3 CPUs, v4.19, run 1/2",
      "random_size_alloc_test on 3 CPUs, v4.19, run 2/2",
    ]);
  });

  it("merge refuses different settings, files without runs and unreadable paths with one line, exit 2", async () => {
    const f = read("s1");
    cpSync(at("s1"), at("loops"), { recursive: true });
    writeFileSync(join(at("loops"), "scaling.json"), JSON.stringify({ ...f, loops: 40 }));
    const { parts: _p, samples: _s, ...old } = f;
    writeFileSync(at("old.json"), JSON.stringify(old));
    writeFileSync(at("bad.json"), JSON.stringify({ ...f, samples: [{ ...f.samples![0], part: 7 }] }));
    for (const [paths, says] of [
      [[at("s1"), at("loops")], "different settings"],
      [[at("old.json")], "not a bench result with its runs"],
      [[at("bad.json")], "not a bench result with its runs"],
      [[at("nowhere")], "cannot read"],
    ] as const) {
      const r = await vmsim("bench", "merge", ...paths, "--out", at("never"));
      expect([paths, r.code]).toEqual([paths, 2]);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(says);
      expect(existsSync(at("never"))).toBe(false);
    }
  });

  it.each([["0/2"], ["3/2"], ["1/0"], ["x"]])("vmsim bench --shard %s exits 2 with one line", async (shard) => {
    const r = await vmsim("bench", ...flags, "--shard", shard, "--out", at("never"));
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("i/n");
  });
});
