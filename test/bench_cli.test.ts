/**
 * `vmsim bench` as a user runs it (the built CLI in a child process): a tiny
 * run writes its three files with the fields tools read, and bad arguments
 * exit 2 with one line on stderr. No timing is asserted — only shape.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { scalingChartSvg } from "../src/cli/chart.js";
import { vmsim } from "./helpers/vmsim.js";

const out = mkdtempSync(join(tmpdir(), "vmsim-bench-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("vmsim bench", () => {
  it("a tiny run writes scaling.json, .md and .svg", async () => {
    const r = await vmsim(
      "bench",
      ...["--tests", "fix_size,long_busy_list_alloc_test", "--cpus", "2,1", "--repeats", "1", "--loops", "50"],
      ...["--out", out],
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);

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
    for (const p of json.points) {
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
    expect(md.split("\n").filter((l) => l.startsWith("| fix_size_alloc_test |"))).toHaveLength(2);

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
