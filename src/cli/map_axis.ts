/**
 * The geometry of `vmsim map`: a broken axis for an address range far wider
 * than what is in it (126 TiB with a few MiB used), the page rows of the busy
 * region, and text labels placed on as few lines as keep them apart.
 */
import { PAGE_SIZE } from "../shared/config.js";

/** A half-open address range [from, to) (kaddrs). */
export interface Span {
  readonly from: number;
  readonly to: number;
}

/** A stretch of the axis: drawn to scale (a segment) or cut out (a break), at x, w pixels. */
export interface AxisPiece extends Span {
  readonly x: number;
  readonly w: number;
}

export interface BrokenAxis {
  readonly segments: readonly AxisPiece[];
  readonly breaks: readonly AxisPiece[];
  /** The x of an address inside a segment (linear there). */
  readonly x: (addr: number) => number;
}

/** Pixels of one break. */
const BREAK_W = 84;
/** The narrowest segment. */
const MIN_SEGMENT_W = 56;
/** At most this many breaks: more gaps stay to scale. */
const MAX_BREAKS = 6;
/** A gap is cut out when it is wider than this share of what stays on the axis. */
const BREAK_SHARE = 0.25;

/**
 * The axis over [from, to) for `used` (sorted, disjoint spans): the widest
 * free gaps are cut out, widest first, while each is wider than a quarter of
 * what the axis keeps; the segments left share `width` in proportion to
 * their sizes (none narrower than MIN_SEGMENT_W).
 */
export function brokenAxis(used: readonly Span[], from: number, to: number, x0: number, width: number): BrokenAxis {
  const gaps: Span[] = [];
  let at = from;
  for (const u of used) {
    if (u.from > at) gaps.push({ from: at, to: u.from });
    at = Math.max(at, u.to);
  }
  if (at < to) gaps.push({ from: at, to });
  const cut: Span[] = [];
  let kept = to - from;
  for (const g of [...gaps].sort((a, b) => b.to - b.from - (a.to - a.from))) {
    const size = g.to - g.from;
    if (used.length === 0 || cut.length === MAX_BREAKS || size <= BREAK_SHARE * (kept - size)) break;
    cut.push(g);
    kept -= size;
  }
  cut.sort((a, b) => a.from - b.from);
  const spans: Span[] = [];
  at = from;
  for (const c of cut) {
    if (c.from > at) spans.push({ from: at, to: c.from });
    at = c.to;
  }
  if (at < to) spans.push({ from: at, to });
  const widths = shareWidths(
    spans.map((s) => s.to - s.from),
    width - cut.length * BREAK_W,
  );
  const segments: AxisPiece[] = [];
  const breaks: AxisPiece[] = [];
  let x = x0;
  let si = 0;
  for (const piece of [...spans.map((s) => ({ s, seg: true })), ...cut.map((s) => ({ s, seg: false }))].sort(
    (a, b) => a.s.from - b.s.from,
  )) {
    const w = piece.seg ? widths[si++]! : BREAK_W;
    (piece.seg ? segments : breaks).push({ ...piece.s, x, w });
    x += w;
  }
  const xOf = (addr: number): number => {
    const s = segments.find((g) => addr >= g.from && addr <= g.to) ?? segments[0]!;
    return s.x + ((addr - s.from) / (s.to - s.from)) * s.w;
  };
  return { segments, breaks, x: xOf };
}

/** Splits `width` in proportion to `sizes`, none below MIN_SEGMENT_W (those are raised, the rest share what is left). */
function shareWidths(sizes: readonly number[], width: number): number[] {
  const fixed = new Set<number>();
  for (;;) {
    const free = width - fixed.size * MIN_SEGMENT_W;
    const total = sizes.reduce((a, s, i) => (fixed.has(i) ? a : a + s), 0);
    const w = sizes.map((s, i) => (fixed.has(i) ? MIN_SEGMENT_W : (s / total) * free));
    const small = w.findIndex((v, i) => !fixed.has(i) && v < MIN_SEGMENT_W);
    if (small < 0 || fixed.size === sizes.length - 1) return w;
    fixed.add(small);
  }
}

/**
 * One line of the page panel: a row of pages; a run of empty rows drawn as
 * one thin line ("skip"); or a run of rows that one area fills from edge to
 * edge ("inside"), drawn as one line too.
 */
export type PageRow<T extends Span> =
  | { readonly kind: "row"; readonly start: number }
  | ({ readonly kind: "skip" } & Span)
  | ({ readonly kind: "inside"; readonly area: T } & Span);

export interface PageRows<T extends Span> {
  /** Pages per row: 512 (one PTE table, 2 MiB) unless the busy region needs wider rows. */
  readonly pagesPerRow: number;
  readonly rows: readonly PageRow<T>[];
  /** Lines with areas left out beyond `maxRows`. */
  readonly hidden: number;
}

/**
 * For each area (sorted by start) that no other overlaps, the rows after its
 * first that it fills whole, when they are two or more: [first, last, area].
 */
function filledRows<T extends Span>(areas: readonly T[], bytes: number): Map<number, [number, number, T]> {
  const out = new Map<number, [number, number, T]>();
  let reach = Number.NEGATIVE_INFINITY;
  for (const [i, a] of areas.entries()) {
    const alone = reach <= a.from && (areas[i + 1]?.from ?? Number.POSITIVE_INFINITY) >= a.to;
    reach = Math.max(reach, a.to);
    // The row where it starts is always drawn, its label is there.
    const first = Math.floor(a.from / bytes) + 1;
    const last = Math.floor(a.to / bytes) - 1;
    if (alone && last - first >= 1) out.set(first, [first, last, a]);
  }
  return out;
}

/**
 * The lines of the page panel for `areas` (sorted by start): rows of
 * `pagesPerRow` pages (aligned to their size) holding any area, runs of
 * empty rows and runs of rows one area fills whole each as one line. 512
 * pages per row, doubled up to 8192 until at most `maxRows` lines hold
 * everything; beyond that the first `maxRows` are kept.
 */
export function pageRows<T extends Span>(areas: readonly T[], maxRows: number): PageRows<T> {
  for (let pagesPerRow = 512; ; pagesPerRow *= 2) {
    const bytes = pagesPerRow * PAGE_SIZE;
    const ranges: [number, number][] = [];
    for (const u of areas) {
      const r0 = Math.floor(u.from / bytes);
      const r1 = Math.floor((u.to - 1) / bytes);
      const last = ranges.at(-1);
      if (last !== undefined && r0 <= last[1] + 1) last[1] = Math.max(last[1], r1);
      else ranges.push([r0, r1]);
    }
    const filled = filledRows(areas, bytes);
    const rows: PageRow<T>[] = [];
    let lines = 0;
    let hidden = 0;
    for (const [i, [r0, r1]] of ranges.entries()) {
      if (i > 0 && lines < maxRows) rows.push({ kind: "skip", from: (ranges[i - 1]![1] + 1) * bytes, to: r0 * bytes });
      for (let r = r0; r <= r1; r++) {
        const run = filled.get(r);
        if (lines >= maxRows) hidden++;
        else if (run !== undefined)
          rows.push({ kind: "inside", from: r * bytes, to: (run[1] + 1) * bytes, area: run[2] });
        else rows.push({ kind: "row", start: r * bytes });
        lines++;
        if (run !== undefined) r = run[1];
      }
    }
    if (lines <= maxRows || pagesPerRow >= 8192) return { pagesPerRow, rows, hidden };
  }
}

/** A text label to place on a line: its x, its width in pixels, and how it hangs from x. */
export interface Label {
  readonly x: number;
  readonly width: number;
  readonly anchor: "start" | "middle" | "end";
}

/** The line (0, 1, …) of each label: the first on which it keeps `gap` pixels from the labels already there. */
export function labelLines(labels: readonly Label[], gap = 8): number[] {
  const taken: [number, number][][] = [];
  return labels.map((l) => {
    const left = l.anchor === "start" ? l.x : l.anchor === "end" ? l.x - l.width : l.x - l.width / 2;
    const right = left + l.width;
    let line = 0;
    while (taken[line]?.some(([a, b]) => left < b + gap && right > a - gap)) line++;
    (taken[line] ??= []).push([left, right]);
    return line;
  });
}
