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
import {
  BENCH_MINIMUM,
  type BenchResult,
  benchCaseSvg,
  benchFiles,
  benchMarkdown,
  benchPoints,
  benchWarning,
  waitsByLock,
} from "../src/cli/bench.js";
import { scalingChartSvg } from "../src/cli/chart.js";
import { BENCH_OPTIONS } from "../src/cli/options.js";
import { measureLockHold } from "../src/workers/scaling.js";
import type { KernelVersion } from "../src/shared/config.js";
import type { TestVmallocCase } from "../src/workers/workloads/test_vmalloc.js";
import { MAIN, vmsim } from "./helpers/vmsim.js";

const out = mkdtempSync(join(tmpdir(), "vmsim-bench-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("vmsim bench", () => {
  it("a tiny run writes scaling.json, .md, .svg and a chart per case, and warns that its figures mean nothing", async () => {
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
    expect(json.kernels).toEqual(["4.19"]);
    expect(json.tests).toEqual(["fix_size_alloc_test", "long_busy_list_alloc_test"]);
    expect(json.cpus).toEqual([1, 2]);
    expect(Object.keys(json.host).sort()).toEqual(["cores", "cpu", "date", "node", "platform"]);
    expect(json.points.map((p: { test: string; cpus: number }) => `${p.test}@${p.cpus}`)).toEqual([
      "fix_size_alloc_test@1",
      "fix_size_alloc_test@2",
      "long_busy_list_alloc_test@1",
      "long_busy_list_alloc_test@2",
    ]);
    expect(json.minimum).toEqual({ loopMs: 50, samples: 5 });
    for (const p of json.points) {
      expect(p.kernel).toBe("4.19");
      expect(p.vsBaseline).toBeNull(); // one kernel: no baseline to compare with
      expect(p.meaningful).toBe(false);
      expect(p.loopMs).toBeGreaterThan(0);
      expect(p.samples).toBe(p.cpus);
      expect(p.loops).toBe(p.test === "fix_size_alloc_test" ? 50 : 5);
      for (const k of ["usPerPair", "pairsPerSec", "testUsec", "speedup"]) expect(p[k]).toBeGreaterThan(0);
      expect(p.lockWaitPct).toBeGreaterThanOrEqual(0);
      expect(p.lockWaitPct).toBeLessThanOrEqual(100);
      // One run per point: the classes' shares are that run's, and add up to its total.
      const classes = Object.values(p.lockWaitByLock) as number[];
      expect(classes.reduce((a, b) => a + b, 0)).toBeCloseTo(p.lockWaitPct, 6);
      for (const pct of classes) expect(pct).toBeGreaterThan(0);
      if (p.cpus === 1) {
        expect(p.speedup).toBe(1);
        expect(p.lockWaitPct).toBe(0); // one CPU never finds a lock taken
        expect(p.lockWaitByLock).toEqual({});
      }
    }

    const md = readFileSync(join(out, "scaling.md"), "utf8");
    expect(md).toMatch(/^Machine: .+, \d+ cores, Node v\d+/);
    expect(md).toContain(
      "`vmsim bench --kernel 4.19 --tests fix_size_alloc_test,long_busy_list_alloc_test --cpus 1,2 --repeats 1 --loops 50`",
    );
    expect(md).toContain(
      "| test | CPUs | kernel | loops | µs per pair | ±rme | pairs/s (all CPUs) | speedup | lock wait | waits by lock |",
    );
    const rows = md.split("\n").filter((l) => l.startsWith("| fix_size_alloc_test |"));
    expect(rows).toHaveLength(2);
    for (const row of rows)
      expect(row).toMatch(/^\| fix_size_alloc_test \| \d \| 4\.19 \| [\d.,]+ \| ~[\d.,]+ \| ~[\d.]+% \|/);
    expect(md).toContain("~ = not meaningful: timed loops under 50 ms or fewer than 5 samples.");

    const svg = readFileSync(join(out, "scaling.svg"), "utf8");
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="\d+" height="\d+"/);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg).toContain(">fix_size_alloc_test</text>");
    expect(svg).toContain(">long_busy_list_alloc_test</text>");
    expect(svg).toContain(">v4.19</text>"); // the legend names the one series

    for (const test of json.tests) {
      const chart = readFileSync(join(out, `${test}.svg`), "utf8");
      expect(chart).toContain(`>${test} — `);
      for (const panel of ["µs per pair (lower is better)", "pairs/s (higher is better)", "lock wait"])
        expect(chart).toContain(`>${panel}</text>`);
    }
    expect(readdirSync(out).sort()).toEqual(benchFiles(json.tests).sort());

    expect(r.stdout.trimEnd().split("\n").at(-2)).toBe(
      "result: ok (4 points measured: 2 cases on 1, 2 CPUs, kernel 4.19)",
    );
    const summary = r.stdout.trimEnd().split("\n").at(-1)!;
    expect(summary.startsWith("SUMMARY ")).toBe(true);
    expect(JSON.parse(summary.slice(8))).toMatchObject({ command: "bench", ok: true, out });
  });

  it("--kernel runs every generation as a series, the first the baseline", async () => {
    const dir = join(out, "generations");
    const r = await vmsim(
      "bench",
      ...["--kernel", "4.19,5.10,6.12", "--tests", "fix_size", "--cpus", "1", "--repeats", "1", "--loops", "50"],
      ...["--out", dir],
    );
    expect(r.code).toBe(0);
    const json = JSON.parse(readFileSync(join(dir, "scaling.json"), "utf8"));
    expect(json.kernels).toEqual(["4.19", "5.10", "6.12"]);
    expect(json.points.map((p: { kernel: string }) => p.kernel)).toEqual(["4.19", "5.10", "6.12"]);
    expect(json.points[0].vsBaseline).toBe(1);
    for (const p of json.points.slice(1)) expect(p.vsBaseline).toBeCloseTo(json.points[0].usPerPair / p.usPerPair, 9);
    expect(readFileSync(join(dir, "scaling.md"), "utf8")).toContain("| speedup | vs 4.19 | lock wait |");
    const chart = readFileSync(join(dir, "fix_size_alloc_test.svg"), "utf8");
    for (const k of ["v4.19", "v5.10", "v6.12"]) expect(chart).toContain(`>${k}</text>`);
    expect(r.stdout).toContain("result: ok (3 points measured: 1 case on 1 CPUs, kernels 4.19, 5.10, 6.12)");
  });

  it("--tests all is every case but the one meant to fail", () => {
    const all = BENCH_OPTIONS.tests.parse!("all");
    expect(all).toContain("pcpu_alloc_test");
    expect(all).toContain("vm_map_ram_test");
    expect(all).not.toContain("align_shift_alloc_test");
    expect(all).toHaveLength(10);
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
      expect(readdirSync(join(cwd, "vmsim-bench")).sort()).toEqual(benchFiles(["fix_size_alloc_test"]).sort());
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it("a run long enough marks nothing and warns of nothing", () => {
    const point = {
      kernel: "4.19",
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
      kernels: ["4.19"],
      tests: ["fix_size_alloc_test"],
      cpus: [1],
      repeats: samples,
      loops: 100_000,
      lockdep: false,
      slubDebug: false,
      trace: 0,
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
          lockWaitByLock: {},
          speedup: 1,
          vsBaseline: null,
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
    [["--kernel", "4.19,3.10"], "unknown kernel"],
    [["--kernel", ""], "unknown kernel"],
    [["--kernel", "5.10", "--tests", "all"], "lib/test_vmalloc.c, v5.10 (kernel 5.10) has no vm_map_ram_test"],
    [["--frobnicate"], "unknown option"],
  ])("bad arguments %j exit 2 with one line on stderr", async (args, says) => {
    const r = await vmsim("bench", ...args, "--out", join(out, "never"));
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(says);
    expect(existsSync(join(out, "never"))).toBe(false);
  });
});

describe("generations: a series per kernel", () => {
  const host = { cpu: "x", cores: 2, node: "v20", platform: "linux x64", date: "d" };
  /** A measurement of `kernel` whose pair costs `us` µs on each of `cpus` CPUs. */
  const measured = (kernel: KernelVersion, test: TestVmallocCase, cpus: number, us: number, byLock = {}) => ({
    kernel,
    test,
    cpus,
    loops: 100_000,
    usPerPair: us,
    rmePct: 1,
    samples: 5 * cpus,
    loopMs: 200,
    testUsec: 1,
    pairsPerSec: (cpus * 1e6) / us,
    lockWaitPct: Object.values(byLock).reduce((a: number, b) => a + (b as number), 0),
    lockWaitByLock: byLock,
  });
  const kernels: KernelVersion[] = ["4.19", "6.12"];
  const tests: TestVmallocCase[] = ["long_busy_list_alloc_test", "fix_size_alloc_test"];
  // Measured in run order (CPU count, then kernel), as runBench does.
  const points = benchPoints(
    [
      measured("4.19", "long_busy_list_alloc_test", 1, 30),
      measured("4.19", "fix_size_alloc_test", 1, 2),
      measured("6.12", "long_busy_list_alloc_test", 1, 10),
      measured("6.12", "fix_size_alloc_test", 1, 1),
      measured("4.19", "long_busy_list_alloc_test", 4, 300, { vmap_area_lock: 60, "zone->lock": 0.5 }),
      measured("4.19", "fix_size_alloc_test", 4, 8, { vmap_area_lock: 30 }),
      measured("6.12", "long_busy_list_alloc_test", 4, 12, { "&vn->busy.lock": 3, free_vmap_area_lock: 2 }),
      measured("6.12", "fix_size_alloc_test", 4, 2, { "&vn->busy.lock": 1 }),
    ],
    kernels,
    tests,
    host.cores,
  );
  const result: BenchResult = {
    command: "bench",
    host,
    kernels,
    tests,
    cpus: [1, 4],
    repeats: 5,
    loops: 100_000,
    lockdep: false,
    slubDebug: false,
    trace: 0,
    memory: { 1: 1 << 28, 4: 1 << 29 },
    minimum: BENCH_MINIMUM,
    points,
  };

  it("orders rows by case, CPUs, kernel; speedup is within a kernel, vsBaseline against the first kernel", () => {
    expect(points.map((p) => `${p.test}@${p.cpus}:${p.kernel}`)).toEqual([
      "long_busy_list_alloc_test@1:4.19",
      "long_busy_list_alloc_test@1:6.12",
      "long_busy_list_alloc_test@4:4.19",
      "long_busy_list_alloc_test@4:6.12",
      "fix_size_alloc_test@1:4.19",
      "fix_size_alloc_test@1:6.12",
      "fix_size_alloc_test@4:4.19",
      "fix_size_alloc_test@4:6.12",
    ]);
    const at = (k: string, t: string, c: number) => points.find((p) => p.kernel === k && p.test === t && p.cpus === c)!;
    expect(at("6.12", "long_busy_list_alloc_test", 4).speedup).toBeCloseTo((4 * 10) / 12, 9);
    expect(at("4.19", "fix_size_alloc_test", 4).speedup).toBeCloseTo((4 * 2) / 8, 9);
    expect(at("6.12", "long_busy_list_alloc_test", 4).vsBaseline).toBeCloseTo(300 / 12, 9);
    expect(at("6.12", "fix_size_alloc_test", 1).vsBaseline).toBe(2);
    expect(at("4.19", "fix_size_alloc_test", 1).vsBaseline).toBe(1);
    expect(at("4.19", "fix_size_alloc_test", 4).oversubscribed).toBe(true);
  });

  it("the table has a vs column for the baseline and names the locks waited for", () => {
    const md = benchMarkdown(result);
    expect(md).toContain("`vmsim bench --kernel 4.19,6.12 --tests long_busy_list_alloc_test,fix_size_alloc_test");
    expect(md).toContain("vs 4.19 = 4.19's µs per pair over this row's (same case and CPUs)");
    expect(md).toContain(
      "| test | CPUs | kernel | loops | µs per pair | ±rme | pairs/s (all CPUs) | speedup | vs 4.19 | lock wait | waits by lock |",
    );
    expect(md).toContain(
      "| long_busy_list_alloc_test | 4* | 6.12 | 100,000 | 12.0 | 1.0% | 333,333 | 3.33× | 25.00× | 5.0% | &vn->busy.lock 3.0%, free_vmap_area_lock 2.0% |",
    );
    expect(md).toContain(
      "| long_busy_list_alloc_test | 4* | 4.19 | 100,000 | 300 | 1.0% | 13,333 | 0.40× | 1.00× | 60.5% | vmap_area_lock 60.0%, zone->lock 0.5% |",
    );
    expect(md).not.toContain("~");
    // The production configuration, said as the header lines say it.
    expect(md).toContain("lib/test_vmalloc.c cases, every CPU at once; lockdep off, slub_debug off, tracing off, no");
  });

  it("the debugging turned back on is in the table's text and in the command that reruns it", () => {
    const md = benchMarkdown({ ...result, lockdep: true, slubDebug: true, trace: 4096 });
    expect(md).toContain("every CPU at once; lockdep on, slub_debug on, tracing on (4096 events per CPU), no");
    expect(md).toMatch(/--repeats 5 --loops 100000 --lockdep --slub-debug --trace-buffer 4096`/);
  });

  it("waitsByLock lists the three largest classes, sums the rest and hides the negligible", () => {
    expect(waitsByLock({})).toBe("");
    expect(waitsByLock({ a: 0.01, b: 2, c: 10 })).toBe("c 10.0%, b 2.0%");
    expect(waitsByLock({ a: 1, b: 2, c: 3, d: 4, e: 0.5 })).toBe("d 4.0%, c 3.0%, b 2.0%, others 1.5%");
  });

  it("a case's chart has three panels, a line per kernel in the legend, and a log axis where kernels differ a lot", () => {
    const svg = benchCaseSvg(result, "long_busy_list_alloc_test");
    expect(svg.match(/<g>/g)).toHaveLength(3);
    expect(svg).toContain(">long_busy_list_alloc_test — x, 2 cores</text>");
    expect(svg).toContain(">v4.19</text>");
    expect(svg).toContain(">v6.12</text>");
    expect(svg).toContain(">more CPUs than host cores (time-shared)</text>");
    // µs per pair spans 10..300 (30×) and pairs/s 13,333..333,333 (25×): log; lock wait starts at 0: linear.
    expect(svg).toContain(">µs per vmalloc+vfree, log scale</text>");
    expect(svg).toContain(">pairs/s, all CPUs, log scale</text>");
    expect(svg).toContain(">% of CPU time</text>");
    expect(svg).not.toMatch(/NaN|Infinity|undefined/);
    // fix_size's kernels differ at most 4×: linear axes.
    const near = benchCaseSvg(result, "fix_size_alloc_test");
    expect(near).not.toContain("log scale");
    expect(near).toContain(">µs per vmalloc+vfree</text>");
  });
});

describe("scalingChartSvg", () => {
  it("draws a panel per test with the host's oversubscribed band and escaped text", () => {
    const svg = scalingChartSvg(
      [
        {
          title: "a<b",
          yLabel: "pairs/s",
          series: [{ name: "v4.19", points: [1, 2, 4, 8].map((x) => ({ x, y: 1000 * x })) }],
          ideal: true,
        },
        { title: "single", yLabel: "pairs/s", series: [{ name: "v4.19", points: [{ x: 2, y: 5 }] }] },
      ],
      { title: "T & t", xLabel: "CPUs", hostCores: 4 },
    );
    expect(svg).toContain(">a&lt;b</text>");
    expect(svg).toContain(">T &amp; t</text>");
    expect(svg.match(/<g>/g)).toHaveLength(2);
    expect(svg.match(/more CPUs than host cores/g)).toHaveLength(1); // the legend's entry
    expect(svg.match(/fill="#eee"\/>/g)).toHaveLength(1); // only the first panel reaches beyond 4 CPUs
    expect(svg).toContain(">8k</text>"); // the y axis of the first panel reaches 8000
    expect(svg).toContain(">ideal: 1 CPU × CPUs (dashed)</text>");
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  it("gives each series one colour in every panel, and log ticks by decade", () => {
    const series = (k: number) => [
      { name: "v4.19", points: [1, 2].map((x) => ({ x, y: k * x })) },
      { name: "v5.10", points: [1, 2].map((x) => ({ x, y: 1000 * k * x })) },
    ];
    const svg = scalingChartSvg(
      [
        { title: "p", yLabel: "µs", series: series(1) },
        { title: "q", yLabel: "µs", series: series(2) },
      ],
      { title: "t", xLabel: "CPUs", hostCores: 2 },
    );
    const strokes = [...svg.matchAll(/<polyline [^>]*stroke="(#[0-9a-f]+)" stroke-width="2"/g)].map((m) => m[1]);
    expect(strokes).toHaveLength(4);
    expect(strokes[0]).toBe(strokes[2]);
    expect(strokes[1]).toBe(strokes[3]);
    expect(strokes[0]).not.toBe(strokes[1]);
    for (const tick of ["1", "10", "100", "1k", "10k"]) expect(svg).toContain(`>${tick}</text>`);
    expect(svg).toContain(">µs, log scale</text>");
    expect(svg).not.toContain("more CPUs than host cores");
  });
});

describe("measureLockHold (bench/contention.ts's traced run)", () => {
  it("splits a CPU's traced window into held, waiting and outside, by lock class and kind", async () => {
    const one = await measureLockHold(1, { test: "fix_size_alloc_test", loops: 300, memory: 64 << 20 });
    expect(one.windowNs).toBeGreaterThan(0);
    expect(one.heldPct + one.waitPct + one.outsidePct).toBeCloseTo(100, 6);
    // One CPU never finds a lock taken; every pair takes vmap_area_lock (v4.19's one lock for the tree).
    expect(one.waitPct).toBe(0);
    expect(one.waitByLock).toEqual({});
    expect(one.heldByLock["vmap_area_lock"]).toBeGreaterThan(0);
    expect(one.heldPct).toBeGreaterThanOrEqual(one.heldByLock["vmap_area_lock"]! - 1e-9);
    expect(one.kinds["vmap_area_lock"]).toBe("spin");
    for (const kind of Object.values(one.kinds)) expect(["spin", "read", "write", "mutex"]).toContain(kind);
  });
});
