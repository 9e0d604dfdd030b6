/**
 * `vmsim map` on real runs, checked the way a reader would check the picture:
 * the SVG is well-formed XML (test/helpers/xml.ts), every area of
 * /proc/vmallocinfo is drawn (each area's shape carries its addresses as
 * data-start / data-end), with the right kind and CPU, no two area shapes
 * cover each other, and the vmap blocks show the pages the script left in
 * use and dirty. Then the same at a replayed failure (two areas a race put
 * on one address), at the end of a `vmsim run` / `vmsim stress` workload,
 * and the axis arithmetic on its own.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { brokenAxis, labelLines, pageRows } from "../src/cli/map_axis.js";
import { vmsim } from "./helpers/vmsim.js";
import { type XmlElement, allElements, parseXml } from "./helpers/xml.js";

const dir = mkdtempSync(join(tmpdir(), "vmsim-map-"));

function writeScript(name: string, ops: object[]): string {
  const file = join(dir, name);
  writeFileSync(file, `${ops.map((o) => JSON.stringify(o)).join("\n")}\n`);
  return file;
}

interface Box {
  readonly el: XmlElement;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

/** The area shapes of a map: their rectangles and data attributes. */
function areaShapes(svg: XmlElement): Box[] {
  return allElements(svg)
    .filter((e) => e.attrs["class"] === "area")
    .map((el) => ({
      el,
      x: Number(el.attrs["x"]),
      y: Number(el.attrs["y"]),
      w: Number(el.attrs["width"]),
      h: Number(el.attrs["height"]),
    }));
}

/** Pairs of area shapes that cover each other (more than a rounding error). */
function overlapping(boxes: readonly Box[]): string[] {
  const out: string[] = [];
  const sorted = [...boxes].sort((a, b) => a.x - b.x);
  for (let i = 0; i < sorted.length; i++)
    for (let j = i + 1; j < sorted.length && sorted[j]!.x < sorted[i]!.x + sorted[i]!.w; j++) {
      const a = sorted[i]!;
      const b = sorted[j]!;
      const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
      const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
      if (w > 0.02 && h > 0.02) out.push(`${a.el.attrs["data-start"]} and ${b.el.attrs["data-start"]}`);
    }
  return out;
}

/** "start-end" of each /proc/vmallocinfo line, and of each area shape. */
const infoRanges = (lines: readonly string[]) => lines.map((l) => /^(0x[0-9a-f]+)-(0x[0-9a-f]+) /.exec(l)![0].trim());
const shapeRanges = (boxes: readonly Box[]) =>
  boxes.map((b) => `${b.el.attrs["data-start"]}-${b.el.attrs["data-end"]}`);

/** The kinds vmsim map may give the area of a vmallocinfo line. */
function kindsFor(line: string): string[] {
  if (line.endsWith(" unpurged vm_area")) return ["lazy"];
  if (line.endsWith(" vm_map_ram")) return ["vmap_block", "vm_map_ram", "lazy"];
  if (line.includes(" paging_init ")) return ["boot"];
  if (/ vmalloc( |$)/.test(line)) return ["vmalloc", "percpu"];
  if (/ vmap( |$)/.test(line)) return ["vmap"];
  if (/ ioremap( |$)/.test(line)) return ["ioremap"];
  return ["other"];
}

/** Every vmallocinfo line is drawn, with a kind that fits it; nothing else is; no two area shapes overlap. */
function expectDrawn(svg: XmlElement, lines: readonly string[]): Box[] {
  const boxes = areaShapes(svg);
  expect(new Set(shapeRanges(boxes))).toEqual(new Set(infoRanges(lines)));
  for (const line of lines) {
    const range = infoRanges([line])[0]!;
    const kinds = new Set(boxes.filter((b) => shapeRanges([b])[0] === range).map((b) => b.el.attrs["data-kind"]));
    expect(
      [...kinds].every((k) => kindsFor(line).includes(k!)),
      `${line}: drawn as ${[...kinds]}`,
    ).toBe(true);
  }
  expect(overlapping(boxes)).toEqual([]);
  return boxes;
}

/** A block's pages in each state, counted from its grid cells (panel 3). */
function blockPages(svg: XmlElement, start: string): Record<string, number> {
  const g = allElements(svg).find((e) => e.attrs["class"] === "block" && e.attrs["data-start"] === start);
  if (g === undefined) throw new Error(`no block ${start} in the map`);
  const cells = g.children.filter((e) => e.attrs["class"] === "block-page");
  const total = cells.reduce((s, e) => s + Number(e.attrs["width"]) * Number(e.attrs["height"]), 0);
  const cell = Math.sqrt(total / 1024);
  const out: Record<string, number> = { used: 0, dirty: 0, free: 0 };
  for (const e of cells)
    out[e.attrs["data-state"]!]! += (Number(e.attrs["width"]) * Number(e.attrs["height"])) / cell ** 2;
  return out;
}

const textOf = (svg: XmlElement) =>
  allElements(svg)
    .filter((e) => e.name === "text")
    .map((e) => e.text)
    .join("\n");

describe("the XML check the map tests rely on", () => {
  it("accepts a well-formed document and rejects broken ones", () => {
    const ok = parseXml('<?xml version="1.0"?>\n<svg a="1"><g><rect b="&lt;&amp;"/></g><text>x &gt; y</text></svg>');
    expect(allElements(ok).map((e) => e.name)).toEqual(["svg", "g", "rect", "text"]);
    expect(allElements(ok)[2]!.attrs["b"]).toBe("<&");
    for (const bad of [
      "<svg><g></svg>",
      "<svg></svg><svg></svg>",
      '<svg a="1" a="2"/>',
      "<svg a=1/>",
      "<svg>a & b</svg>",
      "<svg>&nbsp;</svg>",
      "<svg><text>a < b</text></svg>",
      "<svg>",
      "text<svg/>",
    ])
      expect(() => parseXml(bad), bad).toThrow();
  });
});

describe("vmsim map --script (2 CPUs, arm64-va48, seed 5)", () => {
  // Every kind an exec script can make: vmalloc, vzalloc, vmap, small vm_map_ram on two CPUs' blocks,
  // a large vm_map_ram, and lazily freed areas of each sort (vfree, vunmap, vm_unmap_ram).
  const script = writeScript("kinds.jsonl", [
    { op: "vmalloc", size: 8192, as: "a" },
    { op: "vzalloc", size: 20000, as: "z", cpu: 1 },
    { op: "vmap", pages: 3, as: "m", cpu: 1 },
    { op: "vm_map_ram", pages: 2, as: "r1", cpu: 1 },
    { op: "vm_map_ram", pages: 4, as: "r2", cpu: 1 },
    { op: "vm_map_ram", pages: 8, as: "r3" },
    { op: "vm_map_ram", pages: 100, as: "big" },
    { op: "vmalloc", size: 1 << 20, as: "mb" },
    { op: "vfree", ref: "a" },
    { op: "vunmap", ref: "m", cpu: 1 },
    { op: "vm_unmap_ram", ref: "r1", pages: 2, cpu: 1 },
    { op: "vm_unmap_ram", ref: "big", pages: 100 },
    { op: "vmallocinfo" },
  ]);
  const flags = ["--cpus", "2", "--seed", "5", "--script", script];
  const out = join(dir, "kinds.svg");
  const both = Promise.all([vmsim("exec", ...flags), vmsim("map", ...flags, "--out", out)]);

  it("draws every area of /proc/vmallocinfo with its kind and CPU, none over another", async () => {
    const [exec, map] = await both;
    expect(exec.code).toBe(0);
    expect(map.code, map.stderr).toBe(0);
    expect(map.stderr).toBe("");
    const results = exec.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // exec and map run the same script on the same machine: the same addresses, bit for bit.
    const lines = results.at(-1)!["lines"] as string[];
    expect(lines.length).toBeGreaterThan(10);
    const svg = parseXml(readFileSync(out, "utf8"));
    expect(svg.name).toBe("svg");
    const boxes = expectDrawn(svg, lines);
    const addr = (label: string) => results.find((r) => r["as"] === label)!["addr"] as string;
    const shape = (start: string) => boxes.find((b) => b.el.attrs["data-start"] === start)!.el.attrs;
    expect(shape(addr("z"))).toMatchObject({ "data-kind": "vmalloc", "data-cpu": "1" });
    expect(shape(addr("mb"))).toMatchObject({ "data-kind": "vmalloc", "data-cpu": "0" });
    expect(shape(addr("a"))).toMatchObject({ "data-kind": "lazy", "data-cpu": "0" });
    expect(shape(addr("m"))).toMatchObject({ "data-kind": "lazy", "data-cpu": "1" });
    expect(shape(addr("big"))).toMatchObject({ "data-kind": "lazy" });
    expect(map.stdout).toMatch(/^map: .*kinds\.svg \(\d+ busy areas, 3 lazily freed, 2 vmap blocks\)$/m);
    const texts = textOf(svg);
    expect(texts).toContain("vmalloc area · arm64-va48 · 2 CPUs · 64 MiB RAM · seed 5");
    expect(texts).toContain("after the script kinds.jsonl (13 ops)");
    expect(texts).toMatch(/126\.0 TiB free/);
  });

  it("shows each vmap block's pages as the script left them: in use, dirty, free", async () => {
    const [exec] = await both;
    const results = exec.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const svg = parseXml(readFileSync(out, "utf8"));
    const addr = (label: string) => results.find((r) => r["as"] === label)!["addr"] as string;
    // CPU1's block: r1 (2 pages, unmapped: dirty), then r2 (4 pages); CPU0's: r3 (8 pages).
    expect(blockPages(svg, addr("r1"))).toEqual({ used: 4, dirty: 2, free: 1018 });
    expect(blockPages(svg, addr("r3"))).toEqual({ used: 8, dirty: 0, free: 1016 });
    const blocks = allElements(svg).filter((e) => e.attrs["class"] === "block");
    expect(blocks.map((b) => [b.attrs["data-start"], b.attrs["data-cpu"]])).toEqual([
      [addr("r1"), "1"],
      [addr("r3"), "0"],
    ]);
  });

  it("a bad argument is one line and exit 2; nothing is written", async () => {
    for (const args of [
      ["--script", join(dir, "missing.jsonl"), "--out", join(dir, "never.svg")],
      ["--script", script, "--out", join(dir, "no-such-folder", "x.svg")],
      ["--script", script, "--cpus", "0", "--out", join(dir, "never.svg")],
    ]) {
      const r = await vmsim("map", ...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/^vmsim: error: /);
    }
    expect(readdirSync(dir)).not.toContain("never.svg");
  });
});

describe("vmsim replay --map at a failure", () => {
  it("draws the two areas a race put on one address in lanes, framed, and names the overlap", async () => {
    // Without vmap_area_lock, one preemption lets both CPUs take the same hole (exhaustive search, bound 1).
    const script = writeScript("race.jsonl", [
      { op: "vmalloc", size: 8192, as: "a", cpu: 0 },
      { op: "vmalloc", size: 4096, as: "b", cpu: 1 },
    ]);
    const found = join(dir, "found");
    const args = ["--script", script, "--inject", "no-vmap-area-lock", "--strategy", "exhaustive", "--bound", "1"];
    const ex = await vmsim("explore", ...args, "--out", found);
    expect(ex.code, ex.stderr).toBe(1);
    const file = join(found, readdirSync(found)[0]!);
    const svgFile = join(dir, "failure.svg");
    const r = await vmsim("replay", file, "--map", svgFile);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^map: .*failure\.svg \(.*, 1 problem\)$/m);
    const svg = parseXml(readFileSync(svgFile, "utf8"));
    const texts = textOf(svg).replace(/\n/g, " "); // the title wraps
    expect(texts).toContain("at the failure of the replay of");
    expect(texts).toMatch(/vmap_pte_range: WARN_ON\(!pte_none\(\*pte\)\) at 0xffff000008000000/);
    expect(texts).toMatch(/⚠ overlap: 0xffff000008000000-0xffff00000800\d000 \(\w+, CPU\d\) and 0xffff000008000000-/);
    const boxes = areaShapes(svg);
    const atStart = boxes.filter((b) => b.el.attrs["data-start"] === "0xffff000008000000");
    expect(new Set(atStart.map((b) => b.el.attrs["data-cpu"]))).toEqual(new Set(["0", "1"]));
    expect(overlapping(boxes)).toEqual([]);
    expect(allElements(svg).some((e) => e.attrs["class"] === "overlap-mark")).toBe(true);
  });
});

describe("run --map and stress --map: at the end of the workload, before the cleanup", () => {
  it("vmsim run draws every area the end-of-workload /proc/vmallocinfo has", async () => {
    const svgFile = join(dir, "run.svg");
    const r = await vmsim("run", "--cpus", "2", "--duration", "1s", "--map", svgFile);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(/^SUMMARY (.*)$/m.exec(r.stdout)![1]!);
    expect(r.stdout).toMatch(/^map: .*run\.svg \(\d+ busy areas, \d+ lazily freed, \d+ vmap blocks?\)$/m);
    const svg = parseXml(readFileSync(svgFile, "utf8"));
    const boxes = areaShapes(svg);
    const drawn = new Set(shapeRanges(boxes));
    // The run prints the ends of its end-of-workload vmallocinfo, one line of each type, and the count.
    const section = r.stdout.split("/proc/vmallocinfo at the end of the workload")[1]!.split("\n\n")[0]!;
    const excerpt = section.split("\n").filter((l) => /^ {2}0x/.test(l));
    expect(excerpt.length).toBeGreaterThan(4);
    for (const l of infoRanges(excerpt.map((l) => l.trim()))) expect(drawn).toContain(l);
    expect(drawn.size).toBe(summary.vmallocinfoAreas);
    expect(overlapping(boxes)).toEqual([]);
    expect(textOf(svg)).toContain("at the end of the workload, before the cleanup");
  });

  it("vmsim stress --map (and --json keeps stdout one JSON document)", async () => {
    const svgFile = join(dir, "stress.svg");
    const r = await vmsim("stress", "--cpus", "2", "--duration", "500ms", "--json", "--map", svgFile);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).ok).toBe(true);
    expect(r.stderr).toMatch(/^map: .*stress\.svg \(/m);
    const svg = parseXml(readFileSync(svgFile, "utf8"));
    expect(areaShapes(svg).length).toBeGreaterThan(5);
    expect(overlapping(areaShapes(svg))).toEqual([]);
    const campaign = await vmsim("stress", "--seeds", "1-2", "--map", svgFile);
    expect(campaign.code).toBe(2);
    expect(campaign.stderr).toBe("vmsim: error: --map and --seeds exclude each other (a map shows one run)\n");
  });
});

describe("the map's geometry", () => {
  const TiB = 2 ** 40;
  const MiB = 2 ** 20;

  it("a broken axis cuts the huge free gaps and keeps what is used to scale", () => {
    const used = [
      { from: 0, to: 2 * MiB },
      { from: 3 * MiB, to: 4 * MiB },
      { from: 100 * TiB, to: 100 * TiB + MiB },
    ];
    const axis = brokenAxis(used, 0, 126 * TiB, 10, 1000);
    expect(axis.breaks.map((b) => [b.from, b.to])).toEqual([
      [4 * MiB, 100 * TiB],
      [100 * TiB + MiB, 126 * TiB],
    ]);
    expect(axis.segments.map((s) => [s.from, s.to])).toEqual([
      [0, 4 * MiB],
      [100 * TiB, 100 * TiB + MiB],
    ]);
    const pieces = [...axis.segments, ...axis.breaks].sort((a, b) => a.x - b.x);
    expect(pieces[0]!.x).toBe(10);
    expect(pieces.at(-1)!.x + pieces.at(-1)!.w).toBeCloseTo(1010, 6);
    // To scale inside a segment: 1 MiB is a quarter of the first segment.
    const s0 = axis.segments[0]!;
    expect(axis.x(MiB) - axis.x(0)).toBeCloseTo(s0.w / 4, 6);
    expect(axis.x(3 * MiB)).toBeLessThan(axis.x(100 * TiB));
  });

  it("an axis over nothing is one segment, no cut", () => {
    const axis = brokenAxis([], 0, 126 * TiB, 0, 800);
    expect(axis.breaks).toEqual([]);
    expect(axis.segments).toEqual([{ from: 0, to: 126 * TiB, x: 0, w: 800 }]);
  });

  it("page rows: 2 MiB rows of what is used, wider rows when there are too many", () => {
    const small = pageRows(
      [
        { from: 0, to: 3 * MiB },
        { from: 10 * MiB, to: 10 * MiB + 4096 },
      ],
      40,
    );
    expect(small.pagesPerRow).toBe(512);
    expect(small.rows).toEqual([
      { kind: "row", start: 0 },
      { kind: "row", start: 2 * MiB },
      { kind: "skip", from: 4 * MiB, to: 10 * MiB },
      { kind: "row", start: 10 * MiB },
    ]);
    // One page every 2 MiB: 100 rows of 2 MiB are too many, 25 rows of 8 MiB fit.
    const every = (n: number) => Array.from({ length: n }, (_, i) => ({ from: i * 2 * MiB, to: i * 2 * MiB + 4096 }));
    const wide = pageRows(every(100), 40);
    expect(wide.pagesPerRow).toBe(2048);
    expect(wide.rows).toHaveLength(25);
    expect(wide.hidden).toBe(0);
    // 2000 of them need 125 rows even at 32 MiB: the first 40 are drawn.
    const huge = pageRows(every(2000), 40);
    expect(huge.pagesPerRow).toBe(8192);
    expect(huge.rows).toHaveLength(40);
    expect(huge.hidden).toBe(125 - 40);
  });

  it("page rows: the rows one area fills, after its first, are one line unless another area overlaps it", () => {
    const big = { from: MiB, to: 200 * MiB };
    expect(pageRows([big], 40).rows).toEqual([
      { kind: "row", start: 0 },
      { kind: "inside", from: 2 * MiB, to: 200 * MiB, area: big },
    ]);
    const race = [big, { from: MiB, to: MiB + 4096 }];
    expect(pageRows(race, 40).rows.every((r) => r.kind === "row")).toBe(true);
  });

  it("labels that would touch go to separate lines", () => {
    const lines = labelLines([
      { x: 0, width: 100, anchor: "start" },
      { x: 150, width: 100, anchor: "end" },
      { x: 300, width: 40, anchor: "middle" },
      { x: 105, width: 10, anchor: "start" },
    ]);
    expect(lines).toEqual([0, 1, 0, 2]);
  });
});
