/**
 * `vmsim bench` as a user runs it (the built CLI in a child process): a tiny
 * run writes its three files with the fields tools read, and bad arguments
 * exit 2 with one line on stderr. No timing is asserted — only shape.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BENCH_FILES, BENCH_MINIMUM, type BenchResult, benchMarkdown, benchWarning } from "../src/cli/bench.js";
import { scalingChartSvg } from "../src/cli/chart.js";
import { BENCH_OPTIONS } from "../src/cli/options.js";
import { MAIN, vmsim } from "./helpers/vmsim.js";

const out = mkdtempSync(join(tmpdir(), "vmsim-bench-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("vmsim bench", () => {
  it("a tiny run writes scaling.json, .md and .svg, and warns that its figures mean nothing", async () => {
    const r = await vmsim(
      "bench",
      ...["--tests", "fix_size,long_busy_list_alloc_test", "--cpus", "2,1", "--repeats", "1", "--loops", "50"],
      ...["--out", out],
    );
    expect(r.code).toBe(0);
    // 50 pairs run in about a millisecond; 1 repeat gives 1 sample on 1 CPU, 2 on 2.
    expect(r.stderr).toMatch(
      /^vmsim: warning: 4 of 4 figures \(marked ~\) mean nothing: a timed loop must run ≥ 50 ms, (theirs|\d) ran [\d.–]+ ms: --loops \d+ at least; ±rme needs ≥ 5 samples \(repeats × CPUs\), theirs had 1–2: --repeats 5 or more\n$/,
    );

    const json = JSON.parse(readFileSync(join(out, "scaling.json"), "utf8"));
    expect(json.command).toBe("bench");
    expect(json.tests).toEqual(["fix_size_alloc_test", "long_busy_list_alloc_test"]);
    expect(json.cpus).toEqual([1, 2]);
    expect(Object.keys(json.host).sort()).toEqual(["cores", "cpu", "date", "node", "platform"]);
    expect(json.points.map((p: { test: string; cpus: number }) => `${p.test}@${p.cpus}`)).toEqual([
      "fix_size_alloc_test@1",
      "long_busy_list_alloc_test@1",
      "fix_size_alloc_test@2",
      "long_busy_list_alloc_test@2",
    ]);
    expect(json.minimum).toEqual({ loopMs: 50, samples: 5 });
    for (const p of json.points) {
      expect(p.meaningful).toBe(false);
      expect(p.loopMs).toBeGreaterThan(0);
      expect(p.samples).toBe(p.cpus);
      expect(p.loops).toBe(p.test === "fix_size_alloc_test" ? 50 : 5);
      for (const k of ["usPerPair", "pairsPerSec", "testUsec", "speedup"]) expect(p[k]).toBeGreaterThan(0);
      expect(p.lockWaitPct).toBeGreaterThanOrEqual(0);
      expect(p.lockWaitPct).toBeLessThanOrEqual(100);
      if (p.cpus === 1) {
        expect(p.speedup).toBe(1);
        expect(p.lockWaitPct).toBe(0); // one CPU never finds a lock taken
      }
    }

    const md = readFileSync(join(out, "scaling.md"), "utf8");
    expect(md).toMatch(/^Machine: .+, \d+ cores, Node v\d+/);
    expect(md).toContain("| test | CPUs | loops | µs per pair | ±rme | pairs/s (all CPUs) | speedup | lock wait |");
    const rows = md.split("\n").filter((l) => l.startsWith("| fix_size_alloc_test |"));
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row).toMatch(/^\| fix_size_alloc_test \| \d \| [\d.,]+ \| ~[\d.,]+ \| ~[\d.]+% \|/);
    expect(md).toContain("~ = not meaningful: timed loops under 50 ms or fewer than 5 samples.");

    const svg = readFileSync(join(out, "scaling.svg"), "utf8");
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="\d+" height="\d+"/);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg).toContain(">fix_size_alloc_test</text>");
    expect(svg).toContain(">long_busy_list_alloc_test</text>");

    expect(r.stdout.trimEnd().split("\n").at(-2)).toBe("result: ok (4 points measured: 2 cases on 1, 2 CPUs)");
    const summary = r.stdout.trimEnd().split("\n").at(-1)!;
    expect(summary.startsWith("SUMMARY ")).toBe(true);
    expect(JSON.parse(summary.slice(8))).toMatchObject({ command: "bench", ok: true, out });
  });

  it("writes into ./vmsim-bench by default, a folder git ignores, never into the committed bench/results", async () => {
    expect(BENCH_OPTIONS.out.defaultValue).toBe("vmsim-bench");
    const ignored = readFileSync(new URL("../.gitignore", import.meta.url), "utf8").split("\n");
    expect(ignored).toContain("vmsim-bench/");
    const cwd = mkdtempSync(join(tmpdir(), "vmsim-bench-cwd-"));
    try {
      const code = await new Promise<number>((resolve) =>
        execFile(
          process.execPath,
          [MAIN, "bench", "--tests", "fix_size", "--cpus", "1", "--repeats", "1", "--loops", "10"],
          { cwd, timeout: 60_000 },
          (err) => resolve(err ? Number(err.code) : 0),
        ),
      );
      expect(code).toBe(0);
      expect(readdirSync(join(cwd, "vmsim-bench")).sort()).toEqual([...BENCH_FILES].sort());
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it("a run long enough marks nothing and warns of nothing", () => {
    const point = {
      test: "fix_size_alloc_test",
      cpus: 1,
      loops: 100_000,
      usPerPair: 2,
      rmePct: 3,
      samples: 5,
    } as const;
    const result = (loopMs: number, samples: number): BenchResult => ({
      command: "bench",
      host: { cpu: "x", cores: 2, node: "v20", platform: "linux x64", date: "d" },
      tests: ["fix_size_alloc_test"],
      cpus: [1],
      repeats: samples,
      loops: 100_000,
      lockdep: false,
      memory: { 1: 1 << 27 },
      minimum: BENCH_MINIMUM,
      points: [
        {
          ...point,
          samples,
          loopMs,
          testUsec: 1,
          pairsPerSec: 5e5,
          lockWaitPct: 0,
          speedup: 1,
          oversubscribed: false,
          meaningful: loopMs >= 50 && samples >= 5,
        },
      ],
    });
    expect(benchWarning(result(200, 5))).toBeNull();
    expect(benchMarkdown(result(200, 5))).not.toContain("~");
    expect(benchWarning(result(20, 5))).toBe(
      "vmsim: warning: 1 of 1 figures (marked ~) mean nothing: a timed loop must run ≥ 50 ms, theirs ran 20.0 ms: --loops 250000 at least",
    );
    expect(benchWarning(result(200, 2))).toBe(
      "vmsim: warning: 1 of 1 figures (marked ~) mean nothing: ±rme needs ≥ 5 samples (repeats × CPUs), theirs had 2: --repeats 5 or more",
    );
  });

  it.each([
    [["--cpus", "0"], "--cpus"],
    [["--cpus", "1,x"], "--cpus"],
    [["--tests", "nope"], "unknown test nope"],
    [["--repeats", "0"], "--repeats"],
    [["--loops", "-5"], "--loops"],
    [["--cpus", "40", "--tests", "long_busy_list"], "MiB"],
    [["--frobnicate"], "unknown option"],
  ])("bad arguments %j exit 2 with one line on stderr", async (args, says) => {
    const r = await vmsim("bench", ...args, "--out", join(out, "never"));
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(says);
    expect(existsSync(join(out, "never"))).toBe(false);
  });
});

describe("scalingChartSvg", () => {
  it("draws a panel per test with the host's oversubscribed band and escaped text", () => {
    const svg = scalingChartSvg(
      [
        { title: "a<b", points: [1, 2, 4, 8].map((x) => ({ x, y: 1000 * x })) },
        { title: "single", points: [{ x: 2, y: 5 }] },
      ],
      { title: "T & t", xLabel: "CPUs", yLabel: "pairs/s", hostCores: 4 },
    );
    expect(svg).toContain(">a&lt;b</text>");
    expect(svg).toContain(">T &amp; t</text>");
    expect(svg.match(/<g>/g)).toHaveLength(2);
    expect(svg.match(/more CPUs than cores/g)).toHaveLength(1);
    expect(svg).toContain(">8k</text>"); // the y axis of the first panel reaches 8000
    expect(svg).not.toMatch(/NaN|Infinity/);
  });
});
