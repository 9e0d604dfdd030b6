/**
 * The picture of `vmsim map`: the vmalloc area of one machine as an SVG,
 * written by hand like the bench chart (src/cli/chart.ts). Four panels, top
 * to bottom:
 *
 * 1. the whole range on a broken axis — free gaps too wide to draw are cut
 *    out and their size written on the cut;
 * 2. the busy region page by page, one row per PTE table (2 MiB) or wider
 *    when the region is large, each area with a band in its CPU's colour;
 * 3. the per-CPU vmap blocks, page by page: in use, dirty, free;
 * 4. the legend and who allocated what.
 *
 * Every area's shape carries class="area" and data-start / data-end (full
 * hex, as /proc/vmallocinfo prints them), data-kind and data-cpu, and a
 * <title> that a browser shows on hover.
 */
import { PAGE_SIZE } from "../shared/config.js";
import { formatKaddr, layoutFor } from "../shared/layouts.js";
import type { BlockPage, MapArea, MapAreaKind, VmallocMap } from "../check/vmalloc_map.js";
import { type Label, type Span, brokenAxis, labelLines, pageRows } from "./map_axis.js";
import { humanBytes, plural } from "../workers/format.js";

const W = 1400;
const MARGIN = 28;
const SANS = "DejaVu Sans, Helvetica, Arial, sans-serif";
const MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace";
/** Average glyph width as a share of the font size (DejaVu's are wide). */
const GLYPH = 0.62;
/** Panel 2: the x of the rows, their width, a row's pitch and its area bar's height. */
const ROW_X = 190;
const ROW_W = 1024;
const ROW_PITCH = 26;
const ROW_BAR = 16;
const CPU_BAND = 4;
/** Rows of panel 2 at most, blocks of panel 3 at most. */
const MAX_ROWS = 40;
const MAX_BLOCKS = 16;
/** Panel 3: a block's page is a square of BLOCK_CELL pixels; blocks sit BLOCK_SLOT apart, BLOCKS_PER_LINE to a line. */
const BLOCK_CELL = 4;
const BLOCK_SLOT = 168;
const BLOCKS_PER_LINE = 8;

/** Each kind's fill and its name in the legend. */
// biome-ignore-start lint/style/useNamingConvention: the kinds are the kernel's words (vm_map_ram …)
const KINDS: Readonly<Record<MapAreaKind, { fill: string; name: string; ink: string }>> = {
  boot: { fill: "#8c8c8c", name: "kernel image (early vm areas)", ink: "#fff" },
  vmalloc: { fill: "#3a6ea5", name: "vmalloc", ink: "#fff" },
  percpu: { fill: "#6cb6b0", name: "percpu chunk", ink: "#123" },
  vmap: { fill: "#4d9a45", name: "vmap", ink: "#fff" },
  ioremap: { fill: "#d1495b", name: "ioremap", ink: "#fff" },
  vmap_block: { fill: "#f7c99a", name: "vmap block (vm_map_ram)", ink: "#523" },
  vm_map_ram: { fill: "#e9b824", name: "vm_map_ram (large)", ink: "#321" },
  lazy: { fill: "url(#lazy)", name: "lazily freed, waiting for the purge", ink: "#402" },
  other: { fill: "#b9aea8", name: "other vm area", ink: "#222" },
};
// biome-ignore-end lint/style/useNamingConvention: the kinds are the kernel's words (vm_map_ram …)
const KIND_ORDER: readonly MapAreaKind[] = [
  "boot",
  "vmalloc",
  "percpu",
  "vmap",
  "ioremap",
  "vmap_block",
  "vm_map_ram",
  "lazy",
  "other",
];
const BLOCK_PAGE: Readonly<Record<BlockPage, { fill: string; name: string }>> = {
  used: { fill: "#e07b1f", name: "in use (mapped)" },
  dirty: { fill: "url(#dirty)", name: "dirty (unmapped, TLB flush pending)" },
  free: { fill: "#fbe7d3", name: "free (never handed out)" },
};
const FREE_FILL = "#f2f3f5";
const FREE_STROKE = "#c4c8ce";
/** CPU colours (the bands under the areas): Dark2, then repeated. */
const CPU_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#555555"];
const cpuColor = (cpu: number) => (cpu < 0 ? "#999" : CPU_COLORS[cpu % CPU_COLORS.length]!);

/** Escapes text for an SVG text node or attribute. */
function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const n2 = (v: number) => String(Math.round(v * 100) / 100);
const textW = (s: string, size: number) => s.length * size * GLYPH;

interface TextOpts {
  readonly size?: number;
  readonly anchor?: "start" | "middle" | "end";
  readonly weight?: "bold" | "normal";
  readonly fill?: string;
  readonly mono?: boolean;
  readonly cls?: string;
  /** A white outline behind the glyphs, for text over a pattern. */
  readonly halo?: boolean;
}

function text(x: number, y: number, s: string, o: TextOpts = {}): string {
  const attrs = [
    `x="${n2(x)}"`,
    `y="${n2(y)}"`,
    `font-size="${o.size ?? 13}"`,
    ...(o.anchor && o.anchor !== "start" ? [`text-anchor="${o.anchor}"`] : []),
    ...(o.weight === "bold" ? ['font-weight="bold"'] : []),
    ...(o.fill ? [`fill="${o.fill}"`] : []),
    ...(o.mono ? [`font-family="${MONO}"`] : []),
    ...(o.cls ? [`class="${o.cls}"`] : []),
    ...(o.halo ? ['stroke="#fff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"'] : []),
  ];
  return `<text ${attrs.join(" ")}>${esc(s)}</text>`;
}

function rect(x: number, y: number, w: number, h: number, fill: string, extra = ""): string {
  return `<rect x="${n2(x)}" y="${n2(y)}" width="${n2(w)}" height="${n2(h)}" fill="${fill}"${extra ? ` ${extra}` : ""}/>`;
}

/** The picture's context: the machine's full-hex formatter and the area lookups. */
interface Ctx {
  readonly map: VmallocMap;
  readonly hex: (kaddr: number) => string;
  /** Each area's lane and the lanes of its group: [0, 1] unless a race left areas overlapping. */
  readonly lane: ReadonlyMap<MapArea, readonly [number, number]>;
  /** The spans where areas overlap. */
  readonly overlaps: readonly Span[];
}

/**
 * Lanes for overlapping areas: a group of areas that overlap one another is
 * drawn in as many thin lanes as it needs (first fit in address order), one
 * above the other; every other area fills the bar.
 */
function lanesOf(areas: readonly MapArea[]): [Map<MapArea, readonly [number, number]>, Span[]] {
  const out = new Map<MapArea, readonly [number, number]>();
  const overlaps: Span[] = [];
  let group: [MapArea, number][] = [];
  let ends: number[] = [];
  const close = () => {
    for (const [a, l] of group) out.set(a, [l, ends.length]);
    if (ends.length > 1) overlaps.push({ from: group[0]![0].start, to: Math.max(...ends) });
    group = [];
    ends = [];
  };
  for (const a of areas) {
    if (group.length > 0 && a.start >= Math.max(...ends)) close();
    let l = ends.findIndex((e) => e <= a.start);
    if (l < 0) l = ends.push(0) - 1;
    ends[l] = a.end;
    group.push([a, l]);
  }
  close();
  return [out, overlaps];
}

/** A panel's heading: its title and, on the line below, how to read it. Height 42. */
function heading(y0: number, title: string, how: string): string {
  return [
    text(MARGIN, y0 + 18, title, { size: 16, weight: "bold" }),
    text(MARGIN, y0 + 36, how, { size: 12.5, fill: "#555" }),
  ].join("\n");
}

/** The words of a kind in a tooltip or a label. */
function kindWord(kind: MapAreaKind): string {
  return kind === "lazy" ? "lazily freed" : kind === "boot" ? "kernel image" : KINDS[kind].name.split(" (")[0]!;
}

/** The tooltip of an area: its vmallocinfo-like line and its CPU. */
function areaTitle(c: Ctx, a: MapArea): string {
  const parts = [`${c.hex(a.start)}-${c.hex(a.end)}`, humanBytes(a.end - a.start), kindWord(a.kind)];
  if (a.caller !== null) parts.push(a.caller);
  if (a.nrPages > 0) parts.push(`pages=${a.nrPages}`);
  if (a.guard) parts.push("+ guard page");
  parts.push(a.kind === "boot" ? `CPU${a.cpu} (boot)` : `CPU${a.cpu}`);
  return parts.join(" · ");
}

/** The attributes that identify an area's shape (the test compares them with /proc/vmallocinfo). */
function areaAttrs(c: Ctx, a: MapArea): string {
  return `class="area" data-start="${c.hex(a.start)}" data-end="${c.hex(a.end)}" data-kind="${a.kind}" data-cpu="${a.cpu}"`;
}

/** "1.25 MiB", "256 KiB": a size in the largest unit that shows it exactly in two decimals. */
function exactBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (u < units.length - 1 && n >= 1024 && Number.isInteger((n / 1024) * 100)) {
    n /= 1024;
    u++;
  }
  return `${n} ${units[u]}`;
}

/** The free holes of [VMALLOC_START, VMALLOC_END): what no area covers. */
function freeHoles(map: VmallocMap): Span[] {
  const out: Span[] = [];
  let at = map.vmallocStart;
  for (const u of usedSpans(map.areas)) {
    if (u.from > at) out.push({ from: at, to: u.from });
    at = Math.max(at, u.to);
  }
  if (at < map.vmallocEnd) out.push({ from: at, to: map.vmallocEnd });
  return out;
}

/** An area's shape: `x`, `w` along the axis, in its lane of the bar at `y`, `h` tall; [the SVG, its y, its height]. */
function areaShape(c: Ctx, a: MapArea, x: number, w: number, y: number, h: number): [string, number, number] {
  const [lane, lanes] = c.lane.get(a)!;
  const lh = h / lanes;
  const ly = y + lane * lh;
  const svg = `<rect x="${n2(x)}" y="${n2(ly)}" width="${n2(Math.max(w, 0))}" height="${n2(lh)}" fill="${KINDS[a.kind].fill}" ${areaAttrs(c, a)}><title>${esc(areaTitle(c, a))}</title></rect>`;
  return [svg, ly, lh];
}

/** `s` cut at spaces into lines of at most `max` characters (a longer word stands alone). */
function wrap(s: string, max: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of s.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > max) {
      out.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  out.push(line);
  return out;
}

/** The areas' spans, adjacent ones merged. */
function usedSpans(areas: readonly MapArea[]): Span[] {
  const out: { from: number; to: number }[] = [];
  for (const a of areas) {
    const last = out.at(-1);
    if (last !== undefined && a.start <= last.to) last.to = Math.max(last.to, a.end);
    else out.push({ from: a.start, to: a.end });
  }
  return out;
}

/** Panel 1: the whole range on the broken axis. Returns the SVG and the height used. */
function rangePanel(c: Ctx, y0: number): [string, number] {
  const { map } = c;
  const out: string[] = [];
  const x0 = MARGIN + 8;
  const width = W - 2 * MARGIN - 16;
  const axis = brokenAxis(usedSpans(map.areas), map.vmallocStart, map.vmallocEnd, x0, width);
  out.push(
    heading(
      y0,
      "1  The whole vmalloc range",
      "a broken axis: each cut // is free space too wide to draw, its size written above it; between cuts, to scale",
    ),
  );
  const barY = y0 + 70;
  const barH = 44;
  for (const s of axis.segments)
    out.push(rect(s.x, barY, s.w, barH, FREE_FILL, `stroke="${FREE_STROKE}" class="free"`));
  for (const a of map.areas) {
    const x = axis.x(a.start);
    const w = axis.x(a.end) - x;
    const [shape, ly, lh] = areaShape(c, a, x, w, barY, barH);
    out.push(shape);
    const label = lh >= 14 ? areaLabel(a, w - 8, true) : null;
    if (label !== null) out.push(text(x + 4, ly + lh / 2 + 4, label, { ...labelStyle(a), cls: "area-label" }));
  }
  /* The free holes wide enough for their size. */
  for (const h of freeHoles(map)) {
    const s = axis.segments.find((g) => h.from >= g.from && h.from < g.to);
    if (s === undefined) continue;
    const x = axis.x(h.from);
    const t = `free ${humanBytes(h.to - h.from)}`;
    if (axis.x(Math.min(h.to, s.to)) - x >= textW(t, 11) + 12)
      out.push(text(x + 6, barY + barH / 2 + 4, t, { size: 11, fill: "#777", cls: "hole-label" }));
  }
  for (const b of axis.breaks) {
    const mid = b.x + b.w / 2;
    out.push(
      rect(b.x + 6, barY + barH / 2 - 1, b.w - 12, 2, FREE_STROKE),
      `<path d="M${n2(mid - 10)},${barY - 4} l8,${barH + 8} M${n2(mid - 2)},${barY - 4} l8,${barH + 8}" stroke="#666" stroke-width="2" fill="none"/>`,
      text(mid, barY - 10, `${humanBytes(b.to - b.from)} free`, { size: 12, anchor: "middle", fill: "#333" }),
    );
  }
  /* Addresses under the bar: each segment's ends, on as many lines as keep them apart. */
  const ticks: (Label & { text: string })[] = [];
  const tick = (addr: number, x: number, anchor: "start" | "end") => {
    const name = addr === map.vmallocStart ? "VMALLOC_START " : addr === map.vmallocEnd ? "VMALLOC_END " : "";
    const t = `${name}${c.hex(addr)}`;
    ticks.push({ x, width: textW(t, 11), anchor, text: t });
  };
  for (const s of axis.segments) {
    tick(s.from, s.x, "start");
    tick(s.to, s.x + s.w, "end");
  }
  for (const b of axis.breaks) {
    if (b.from === map.vmallocStart) tick(b.from, b.x, "start");
    if (b.to === map.vmallocEnd) tick(b.to, b.x + b.w, "end");
  }
  ticks.sort((a, b) => a.x - b.x);
  const lines = labelLines(ticks);
  for (const [i, t] of ticks.entries()) {
    const ly = barY + barH + 16 + lines[i]! * 15;
    out.push(
      `<line x1="${n2(t.x)}" y1="${barY + barH}" x2="${n2(t.x)}" y2="${ly - 10}" stroke="#888"/>`,
      text(t.x, ly, t.text, { size: 11, anchor: t.anchor, mono: true, fill: "#333" }),
    );
  }
  const h = barY + barH + 16 + Math.max(0, ...lines) * 15 + 12 - y0;
  return [out.join("\n"), h];
}

/** Panel 2: the busy region, page by page. */
function pagePanel(c: Ctx, y0: number): [string, number] {
  const { map } = c;
  const out: string[] = [];
  const plan = pageRows(
    map.areas.map((a) => ({ from: a.start, to: a.end, a })),
    MAX_ROWS,
  );
  const ppr = plan.pagesPerRow;
  const rowBytes = ppr * PAGE_SIZE;
  const pxPage = ROW_W / ppr;
  const pxPageText = pxPage >= 1 ? `${pxPage} px per page` : `${1 / pxPage} pages per px`;
  out.push(
    heading(
      y0,
      "2  The busy region, page by page",
      `one row = ${humanBytes(rowBytes)} (${ppr} pages${ppr === 512 ? ", one PTE table" : ""}), ${pxPageText}; ` +
        "the band under an area is the CPU that allocated it; empty rows, and rows inside one area, are left out",
    ),
  );
  /* Offsets along a row. */
  let y = y0 + 62;
  for (let i = 0; i <= (map.areas.length > 0 ? 8 : -1); i++) {
    const x = ROW_X + (i * ROW_W) / 8;
    const t = i === 0 ? "+0" : `+${exactBytes((i * rowBytes) / 8)}`;
    out.push(
      `<line x1="${n2(x)}" y1="${y + 4}" x2="${n2(x)}" y2="${y + 9}" stroke="#888"/>`,
      text(x, y, t, { size: 11, anchor: i === 0 ? "start" : i === 8 ? "end" : "middle", fill: "#555" }),
    );
  }
  y += 14;
  const xOf = (row: number, addr: number) => ROW_X + ((addr - row) / rowBytes) * ROW_W;
  const holes = freeHoles(map);
  const labelled = new Set<Span>();
  for (const r of plan.rows) {
    if (r.kind !== "row") {
      /* Rows left out: a dotted line (nothing there) or a thin bar of the area that fills them. */
      const rows = plural((r.to - r.from) / rowBytes, r.kind === "skip" ? "empty row" : "row");
      const what = r.kind === "skip" ? "" : ` inside ${areaLabel(r.area.a, Number.POSITIVE_INFINITY, false)}`;
      const t = `≈ ${rows} (${humanBytes(r.to - r.from)})${what} left out ≈`;
      out.push(
        r.kind === "skip"
          ? `<line x1="${ROW_X}" y1="${y + 7}" x2="${ROW_X + ROW_W}" y2="${y + 7}" stroke="#aaa" stroke-dasharray="2 4"/>`
          : rect(ROW_X, y + 4, ROW_W, 6, KINDS[r.area.a.kind].fill, 'opacity="0.6" class="inside"'),
        rect(ROW_X + ROW_W / 2 - textW(t, 11) / 2 - 8, y, textW(t, 11) + 16, 14, "#fff"),
        text(ROW_X + ROW_W / 2, y + 11, t, { size: 11, anchor: "middle", fill: "#555" }),
      );
      y += 18;
      continue;
    }
    const row = r.start;
    const end = row + rowBytes;
    out.push(
      text(ROW_X - 8, y + 12, c.hex(row), { size: 11, anchor: "end", mono: true, fill: "#333" }),
      rect(ROW_X, y, ROW_W, ROW_BAR, FREE_FILL, `stroke="${FREE_STROKE}" stroke-width="0.5" class="free"`),
    );
    /* What lies outside [VMALLOC_START, VMALLOC_END) in this row. */
    if (row < map.vmallocStart)
      out.push(rect(ROW_X, y, xOf(row, map.vmallocStart) - ROW_X, ROW_BAR, "url(#outside)", 'class="outside"'));
    if (end > map.vmallocEnd)
      out.push(
        rect(
          xOf(row, map.vmallocEnd),
          y,
          ROW_X + ROW_W - xOf(row, map.vmallocEnd),
          ROW_BAR,
          "url(#outside)",
          'class="outside"',
        ),
      );
    for (const a of map.areas) {
      if (a.end <= row || a.start >= end) continue;
      const from = Math.max(a.start, row);
      const to = Math.min(a.end, end);
      const x = xOf(row, from);
      const w = xOf(row, to) - x;
      const [shape, ly, lh] = areaShape(c, a, x, w, y, ROW_BAR);
      const [lane, lanes] = c.lane.get(a)!;
      const bandH = CPU_BAND / lanes;
      out.push(
        shape,
        rect(x, y + ROW_BAR + 1 + lane * bandH, w, bandH, cpuColor(a.cpu), `class="cpu-band" data-cpu="${a.cpu}"`),
      );
      if (a.kind === "vmap_block") out.push(...blockPagesInRow(c, a, from, to, (addr) => xOf(row, addr), ly, lh));
      if (a.guard && a.end - PAGE_SIZE >= row && a.end <= end) {
        const gx = xOf(row, a.end - PAGE_SIZE);
        out.push(rect(gx, ly, xOf(row, a.end) - gx, lh, "#fff", 'opacity="0.55" class="guard"'));
      }
      /* A name inside the shape when it fits; separators between neighbours. */
      const label = lh >= 14 ? areaLabel(a, w - 8, from === a.start) : null;
      if (label !== null)
        out.push(
          text(x + 4, ly + 12, label, {
            ...labelStyle(a),
            cls: from === a.start ? "area-label" : "area-label cont",
          }),
        );
      out.push(
        `<line x1="${n2(x)}" y1="${n2(ly)}" x2="${n2(x)}" y2="${n2(ly + lh)}" stroke="#fff" stroke-width="0.6"/>`,
      );
    }
    /* Where a race left areas on one another: a red frame and a word, which the hole labels keep clear of. */
    let clear = ROW_X;
    for (const o of c.overlaps) {
      if (o.to <= row || o.from >= end) continue;
      const ox = xOf(row, Math.max(o.from, row));
      const ow = xOf(row, Math.min(o.to, end)) - ox;
      out.push(
        rect(
          ox - 3,
          y - 3,
          ow + 6,
          ROW_BAR + CPU_BAND + 7,
          "none",
          'stroke="#d0021b" stroke-width="2" class="overlap-mark"',
        ),
        text(ox + ow + 8, y + 12, "overlap!", { size: 12, weight: "bold", fill: "#d0021b" }),
      );
      clear = Math.max(clear, ox + ow + 8 + textW("overlap!", 12));
    }
    for (const h of holes) {
      if (h.to <= row || h.from >= end || labelled.has(h)) continue;
      const x = Math.max(xOf(row, Math.max(h.from, row)), clear);
      const t = `free ${humanBytes(h.to - h.from)}`;
      if (xOf(row, Math.min(h.to, end)) - x < textW(t, 11) + 12) continue;
      labelled.add(h);
      out.push(text(x + 6, y + 12, t, { size: 11, fill: "#777", cls: "hole-label" }));
    }
    const cache = map.freeVmapCache;
    if (cache !== null && cache >= row && cache < end) {
      const cx = xOf(row, cache);
      out.push(
        `<path d="M${n2(cx - 5)},${y - 7} h10 l-5,7 z" fill="#111" class="marker"><title>free_vmap_cache: the next search starts at ${c.hex(cache)}</title></path>`,
      );
    }
    y += ROW_PITCH;
  }
  if (plan.hidden > 0) {
    out.push(
      text(ROW_X, y + 12, `… ${plural(plan.hidden, "more row")} with areas not shown (panel 1 shows them all)`, {
        size: 12,
        fill: "#555",
      }),
    );
    y += 20;
  }
  if (map.areas.length === 0) {
    out.push(text(ROW_X, y + 12, "no vmap areas: the whole range is free", { size: 13, fill: "#555" }));
    y += 20;
  }
  return [out.join("\n"), y + 6 - y0];
}

/** How an area's label is written: in its kind's ink, outlined where the fill is a pattern (or carries one). */
function labelStyle(a: MapArea): TextOpts {
  return { size: 11, fill: KINDS[a.kind].ink, halo: a.kind === "lazy" || a.kind === "vmap_block" };
}

/**
 * The name written inside an area's shape, what fits in `room` pixels, or
 * null: its caller (or kind) and size on the piece where it starts, the name
 * alone on the rows it continues into.
 */
function areaLabel(a: MapArea, room: number, starts: boolean): string | null {
  const name =
    a.kind === "lazy" ? "lazy" : a.kind === "vmap_block" ? `vmap block, CPU${a.cpu}` : (a.caller ?? kindWord(a.kind));
  for (const t of starts ? [`${name} ${humanBytes(a.end - a.start)}`, name] : [name])
    if (textW(t, 11) <= room) return t;
  return null;
}

/** A vmap block's used and dirty pages inside one page row. */
function blockPagesInRow(
  c: Ctx,
  a: MapArea,
  from: number,
  to: number,
  xOf: (addr: number) => number,
  y: number,
  h: number,
): string[] {
  const b = c.map.blocks.find((v) => v.start === a.start);
  if (b === undefined) return [];
  const out: string[] = [];
  for (const [state, first, n] of b.runs) {
    if (state === "free") continue;
    const s = Math.max(from, b.start + first * PAGE_SIZE);
    const e = Math.min(to, b.start + (first + n) * PAGE_SIZE);
    if (s >= e) continue;
    out.push(rect(xOf(s), y, xOf(e) - xOf(s), h, BLOCK_PAGE[state].fill, `class="block-page"`));
  }
  return out;
}

/** Panel 3: each vmap block as a square of its pages, 32 to a line. */
function blockPanel(c: Ctx, y0: number): [string, number] {
  const { map } = c;
  const out: string[] = [];
  const cols = 32;
  const lines = Math.ceil(map.blockPages / cols);
  out.push(
    heading(
      y0,
      "3  vmap blocks",
      `vm_map_ram's per-CPU blocks of ${map.blockPages} pages (${humanBytes(map.blockPages * PAGE_SIZE)}), ` +
        `page by page: ${cols} pages to a line, the first page top left`,
    ),
  );
  const top = y0 + 52;
  const slotH = 20 + lines * BLOCK_CELL + 38;
  map.blocks.slice(0, MAX_BLOCKS).forEach((b, i) => {
    const x = MARGIN + (i % BLOCKS_PER_LINE) * BLOCK_SLOT;
    const y = top + Math.floor(i / BLOCKS_PER_LINE) * slotH;
    out.push(
      `<g class="block" data-start="${c.hex(b.start)}" data-cpu="${b.cpu}">`,
      rect(x, y + 2, 10, 10, cpuColor(b.cpu)),
      text(x + 15, y + 11, `CPU${b.cpu}`, { size: 12, weight: "bold" }),
      text(x + 54, y + 11, c.hex(b.start).replace(/^0x/, ""), { size: 10.5, mono: true, fill: "#333" }),
    );
    const gy = y + 18;
    for (const [state, first, n] of b.runs)
      for (let p = first; p < first + n; ) {
        /* One rect per grid line the run crosses. */
        const line = Math.floor(p / cols);
        const upto = Math.min(first + n, (line + 1) * cols);
        out.push(
          rect(
            x + (p % cols) * BLOCK_CELL,
            gy + line * BLOCK_CELL,
            (upto - p) * BLOCK_CELL,
            BLOCK_CELL,
            BLOCK_PAGE[state].fill,
            `class="block-page" data-state="${state}"`,
          ),
        );
        p = upto;
      }
    out.push(rect(x, gy, cols * BLOCK_CELL, lines * BLOCK_CELL, "none", `stroke="${FREE_STROKE}"`));
    const used = map.blockPages - b.free - b.dirty;
    const ty = gy + lines * BLOCK_CELL + 14;
    out.push(
      text(x, ty, `${used} in use, ${b.dirty} dirty`, { size: 11.5, fill: "#333" }),
      text(x, ty + 14, `${b.free} free${b.free > 0 ? ", on its CPU's queue" : ""}`, { size: 11.5, fill: "#333" }),
      "</g>",
    );
  });
  const shown = Math.min(map.blocks.length, MAX_BLOCKS);
  let y = top + Math.ceil(shown / BLOCKS_PER_LINE) * slotH;
  if (map.blocks.length > MAX_BLOCKS) {
    out.push(
      text(MARGIN, y + 12, `… ${plural(map.blocks.length - MAX_BLOCKS, "more block")}`, { size: 12, fill: "#555" }),
    );
    y += 20;
  }
  return [out.join("\n"), y - y0];
}

/** Panel 4: the legend, and per CPU what it allocated. */
function legendPanel(c: Ctx, y0: number): [string, number] {
  const { map } = c;
  const out: string[] = [];
  const counts = new Map<MapAreaKind, number>();
  for (const a of map.areas) counts.set(a.kind, (counts.get(a.kind) ?? 0) + 1);
  out.push(text(MARGIN, y0 + 18, "Legend", { size: 16, weight: "bold" }));
  const items: [string, string][] = KIND_ORDER.filter((k) => counts.has(k)).map((k) => [
    KINDS[k].fill,
    `${KINDS[k].name} (${counts.get(k) ?? 0})`,
  ]);
  items.push([FREE_FILL, "free"]);
  if (map.areas.some((a) => a.guard)) items.push(["guard", "guard page (unmapped last page)"]);
  if (map.blocks.length > 0)
    for (const s of ["used", "dirty", "free"] as const)
      items.push([BLOCK_PAGE[s].fill, `block page: ${BLOCK_PAGE[s].name}`]);
  if (map.freeVmapCache !== null) items.push(["marker", "free_vmap_cache: where the next search starts"]);
  const colW = 330;
  items.forEach(([fill, label], i) => {
    const x = MARGIN + (i % 2) * colW;
    const y = y0 + 32 + Math.floor(i / 2) * 20;
    if (fill === "marker") out.push(`<path d="M${x + 2},${y + 3} h10 l-5,7 z" fill="#111"/>`);
    else if (fill === "guard")
      out.push(rect(x, y, 14, 12, KINDS.vmalloc.fill), rect(x + 9, y, 5, 12, "#fff", 'opacity="0.55"'));
    else out.push(rect(x, y, 14, 12, fill, `stroke="${FREE_STROKE}" stroke-width="0.5"`));
    out.push(text(x + 20, y + 11, label, { size: 12 }));
  });
  const legendH = 32 + Math.ceil(items.length / 2) * 20;

  /* Who allocated what. */
  const x0 = MARGIN + 2 * colW + 20;
  out.push(
    text(x0, y0 + 18, "Who allocated what", { size: 16, weight: "bold" }),
    text(x0, y0 + 36, "the CPU each vmap_area was inserted on (alloc_cpu, vmsim's debug field)", {
      size: 12.5,
      fill: "#555",
    }),
  );
  let y = y0 + 50;
  for (let cpu = 0; cpu < map.cpus; cpu++) {
    const mine = map.areas.filter((a) => a.cpu === cpu);
    const byKind = KIND_ORDER.filter((k) => mine.some((a) => a.kind === k)).map((k) => {
      const n = mine.filter((a) => a.kind === k).length;
      return k === "vmap_block" ? plural(n, "vmap block") : `${n} ${k === "boot" ? "boot" : kindWord(k)}`;
    });
    const bytes = mine.reduce((s, a) => s + a.end - a.start, 0);
    out.push(
      rect(x0, y, 14, 12, cpuColor(cpu)),
      text(x0 + 20, y + 11, `CPU${cpu}`, { size: 12, weight: "bold" }),
      text(
        x0 + 64,
        y + 11,
        mine.length === 0 ? "nothing" : `${humanBytes(bytes)} in ${plural(mine.length, "area")}: ${byKind.join(", ")}`,
        { size: 12 },
      ),
    );
    y += 20;
  }
  return [out.join("\n"), Math.max(legendH, y - y0) + 8];
}

/** The patterns the fills name. */
const DEFS = `<defs>
<pattern id="lazy" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#e8d5ee"/><rect width="2.5" height="6" fill="#9b59b6"/></pattern>
<pattern id="dirty" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="4" height="4" fill="#f5b7b1"/><rect width="1.6" height="4" fill="#c0392b"/></pattern>
<pattern id="outside" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><rect width="6" height="6" fill="#ddd"/><rect width="1" height="6" fill="#aaa"/></pattern>
</defs>`;

/**
 * vmallocMapSvg: the SVG of `map`. `point` says when in the run it was taken
 * ("after the script lesson.jsonl", "at the failure: …").
 */
export function vmallocMapSvg(map: VmallocMap, point: string): string {
  const layout = layoutFor(map.kernel, map.layout);
  const [lane, overlaps] = lanesOf(map.areas);
  const c: Ctx = { map, hex: (k) => formatKaddr(layout, k), lane, overlaps };
  const body: string[] = [];
  const lazy = map.areas.filter((a) => a.kind === "lazy").length;
  body.push(
    text(
      MARGIN,
      36,
      `vmalloc area · ${map.layout} · ${plural(map.cpus, "CPU")} · ${humanBytes(map.memory)} RAM · seed ${map.seed}`,
      { size: 22, weight: "bold" },
    ),
  );
  let y = 60;
  const lines = (s: string, size: number, fill: string) => {
    for (const l of wrap(s, Math.floor((W - 2 * MARGIN) / (size * GLYPH)))) {
      body.push(text(MARGIN, y, l, { size, fill }));
      y += size + 6;
    }
  };
  lines(point, 14, "#333");
  lines(
    `${c.hex(map.vmallocStart)}–${c.hex(map.vmallocEnd)} (${humanBytes(map.vmallocEnd - map.vmallocStart)}): ` +
      `${plural(map.areas.length - lazy, "busy area")}, ${lazy} lazily freed (vmap_lazy_nr ${map.lazyPages} of ` +
      `lazy_max_pages ${map.lazyMaxPages}), ${plural(map.blocks.length, "vmap block")}`,
    13,
    "#333",
  );
  for (const p of map.problems) lines(`⚠ ${p}`, 13, "#b00020");
  y += 8;
  for (const panel of [rangePanel, pagePanel, ...(map.blocks.length > 0 ? [blockPanel] : []), legendPanel]) {
    const [svg, h] = panel(c, y);
    body.push(svg, `<line x1="${MARGIN}" y1="${y + h + 6}" x2="${W - MARGIN}" y2="${y + h + 6}" stroke="#e3e5e8"/>`);
    y += h + 16;
  }
  const height = Math.ceil(y + 4);
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="${SANS}">`,
    `<title>${esc(`vmalloc area of ${map.layout}, ${point}`)}</title>`,
    DEFS,
    rect(0, 0, W, height, "#fff"),
    ...body,
    "</svg>",
    "",
  ].join("\n");
}
