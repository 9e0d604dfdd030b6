/**
 * The SVG charts of `vmsim bench`: small panels of a measure against CPU
 * count, a line per series (a kernel generation), written by hand (a few dozen
 * elements need no plotting library). Each panel has its own y scale (tests
 * differ a hundredfold; a panel whose values span more than {@link LOG_SPAN}×
 * gets a log scale, so that a slow generation does not flatten the others), a
 * log2 x axis (CPU counts double), optionally the ideal line of each series
 * (1 CPU's value × CPUs, dashed) and a shaded band where the machine has more
 * CPUs than the host has cores.
 */

/** One line of a panel: a series' measurements. */
export interface ChartSeries {
  /** The legend's name of the series ("v5.10"); the same name has the same colour in every panel. */
  readonly name: string;
  /** (CPUs, value) in CPU order. */
  readonly points: readonly { readonly x: number; readonly y: number }[];
}

/** One panel: a measure of one test. */
export interface ChartPanel {
  readonly title: string;
  /** The y axis' label, with its unit. */
  readonly yLabel: string;
  readonly series: readonly ChartSeries[];
  /** Draw each series' ideal line, 1 CPU's value × CPUs (for throughput). @defaultValue false */
  readonly ideal?: boolean;
}

/** Texts and host facts of the chart. */
export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  /** Cores of the host: CPU counts beyond it time-share cores (shaded). */
  readonly hostCores: number;
}

const PANEL_W = 320;
const PANEL_H = 240;
const COLS = 3;
const HEADER_H = 44;
const LEGEND_H = 30;
const M = { left: 64, right: 16, top: 30, bottom: 44 };
const PAD_X = 14;
/** A panel whose largest value is more than this many times its smallest gets a log y axis. */
export const LOG_SPAN = 10;
/** Series colours, in order of first appearance (d3's category10). */
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
/** The shade of CPU counts beyond the host's cores. */
const BAND = "#eee";

/** Escapes text for an SVG text node or attribute. */
function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** 1.2M, 350k, 7.4k, 12, 0.5: tick labels. */
function compact(n: number): string {
  const unit = n >= 1e6 ? ([1e6, "M"] as const) : n >= 1e3 ? ([1e3, "k"] as const) : ([1, ""] as const);
  const v = n / unit[0];
  return `${Number(v.toPrecision(v >= 100 ? 3 : 2))}${unit[1]}`;
}

/** A 1, 2 or 5 × 10^k step that splits [0, max] into about four intervals. */
function niceStep(max: number): number {
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

const n1 = (v: number) => v.toFixed(1);

/** A y axis: where a value goes (0 at the bottom, 1 at the top) and its tick values. */
interface YScale {
  readonly at: (y: number) => number;
  readonly ticks: readonly number[];
  readonly log: boolean;
}

/** Linear from 0 with nice steps, or log10 over whole decades (1-2-5 ticks when they are few). */
function yScale(ys: readonly number[]): YScale {
  const max = Math.max(...ys, 0);
  const positive = ys.filter((y) => y > 0);
  const min = Math.min(...positive);
  if (positive.length === ys.length && max / min > LOG_SPAN) {
    const lo = Math.floor(Math.log10(min));
    const hi = Math.ceil(Math.log10(max));
    const ticks: number[] = [];
    for (let d = lo; d <= hi; d++)
      for (const f of hi - lo <= 2 ? [1, 2, 5] : [1]) if (f * 10 ** d <= 10 ** hi) ticks.push(f * 10 ** d);
    return { at: (y) => (Math.log10(y) - lo) / (hi - lo), ticks, log: true };
  }
  const step = niceStep(Math.max(max, 1e-9));
  const top = Math.ceil((max * 1.05) / step) * step || step;
  const ticks: number[] = [];
  for (let i = 0; i * step <= top + step / 2; i++) ticks.push(i * step);
  return { at: (y) => y / top, ticks, log: false };
}

function panelSvg(p: ChartPanel, ox: number, oy: number, opts: ChartOptions, color: (name: string) => string): string {
  const w = PANEL_W - M.left - M.right;
  const h = PANEL_H - M.top - M.bottom;
  const x0 = ox + M.left;
  const y0 = oy + M.top;
  const xs = [...new Set(p.series.flatMap((s) => s.points.map((q) => q.x)))].sort((a, b) => a - b);
  const lo = Math.log2(Math.min(...xs));
  const hi = Math.log2(Math.max(...xs));
  // Points stay off the y axis: the x range keeps a margin of PAD_X on each side.
  const sx = (x: number) => x0 + (hi === lo ? w / 2 : PAD_X + ((Math.log2(x) - lo) / (hi - lo)) * (w - 2 * PAD_X));
  const scale = yScale(p.series.flatMap((s) => s.points.map((q) => q.y)));
  const sy = (y: number) => y0 + h - scale.at(y) * h;
  const clip = `clip-${Math.round(ox)}-${Math.round(oy)}`;
  const out: string[] = [
    `<g>`,
    `<clipPath id="${clip}"><rect x="${n1(x0)}" y="${n1(y0)}" width="${n1(w)}" height="${n1(h)}"/></clipPath>`,
    `<text x="${n1(x0 + w / 2)}" y="${n1(oy + 18)}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`,
  ];
  if (Math.max(...xs) > opts.hostCores) {
    // The band starts halfway between the last count the host's cores hold and the first they do not.
    const within = xs.filter((x) => x <= opts.hostCores);
    const beyond = Math.min(...xs.filter((x) => x > opts.hostCores));
    const from = within.length === 0 ? x0 : (sx(Math.max(...within)) + sx(beyond)) / 2;
    out.push(`<rect x="${n1(from)}" y="${n1(y0)}" width="${n1(x0 + w - from)}" height="${n1(h)}" fill="${BAND}"/>`);
  }
  for (const y of scale.ticks)
    out.push(
      `<line x1="${n1(x0)}" x2="${n1(x0 + w)}" y1="${n1(sy(y))}" y2="${n1(sy(y))}" stroke="#ddd"/>`,
      `<text x="${n1(x0 - 6)}" y="${n1(sy(y) + 4)}" text-anchor="end" font-size="11">${compact(y)}</text>`,
    );
  for (const x of xs)
    out.push(
      `<line x1="${n1(sx(x))}" x2="${n1(sx(x))}" y1="${n1(y0 + h)}" y2="${n1(y0 + h + 4)}" stroke="#333"/>`,
      `<text x="${n1(sx(x))}" y="${n1(y0 + h + 17)}" text-anchor="middle" font-size="11">${x}</text>`,
    );
  out.push(
    `<line x1="${n1(x0)}" x2="${n1(x0 + w)}" y1="${n1(y0 + h)}" y2="${n1(y0 + h)}" stroke="#333"/>`,
    `<line x1="${n1(x0)}" x2="${n1(x0)}" y1="${n1(y0)}" y2="${n1(y0 + h)}" stroke="#333"/>`,
    `<text x="${n1(x0 + w / 2)}" y="${n1(y0 + h + 34)}" text-anchor="middle" font-size="11">${esc(opts.xLabel)}</text>`,
    `<text transform="translate(${n1(ox + 14)} ${n1(y0 + h / 2)}) rotate(-90)" text-anchor="middle" font-size="11">${esc(
      scale.log ? `${p.yLabel}, log scale` : p.yLabel,
    )}</text>`,
  );
  for (const s of p.series) {
    const one = s.points.find((q) => q.x === 1);
    if (p.ideal && one !== undefined && s.points.length > 1) {
      const ideal = s.points.map((q) => `${n1(sx(q.x))},${n1(sy(one.y * q.x))}`).join(" ");
      out.push(
        `<polyline points="${ideal}" fill="none" stroke="${color(s.name)}" stroke-opacity="0.6" stroke-dasharray="5 4" clip-path="url(#${clip})"/>`,
      );
    }
  }
  for (const s of p.series)
    out.push(
      `<polyline points="${s.points.map((q) => `${n1(sx(q.x))},${n1(sy(q.y))}`).join(" ")}" fill="none" stroke="${color(s.name)}" stroke-width="2"/>`,
      ...s.points.map(
        (q) =>
          `<circle cx="${n1(sx(q.x))}" cy="${n1(sy(q.y))}" r="3.5" fill="${color(s.name)}"><title>${esc(s.name)}, ${q.x} CPUs: ${compact(q.y)}</title></circle>`,
      ),
    );
  out.push(`</g>`);
  return out.join("\n");
}

/** A legend entry: its text and its swatch, drawn 24 px wide from (x, y). */
interface LegendEntry {
  readonly text: string;
  readonly swatch: (x: number, y: number) => string;
}

/** The legend's entries: a solid line per series, the dashed ideal line and the shaded band if a panel has them. */
function legendEntries(
  names: readonly string[],
  ideal: boolean,
  band: boolean,
  color: (name: string) => string,
): LegendEntry[] {
  return [
    ...names.map((name) => ({
      text: name,
      swatch: (x: number, y: number) =>
        `<line x1="${x}" x2="${x + 24}" y1="${y}" y2="${y}" stroke="${color(name)}" stroke-width="2"/>` +
        `<circle cx="${x + 12}" cy="${y}" r="3.5" fill="${color(name)}"/>`,
    })),
    ...(ideal
      ? [
          {
            text: "ideal: 1 CPU × CPUs (dashed)",
            swatch: (x: number, y: number) =>
              `<line x1="${x}" x2="${x + 24}" y1="${y}" y2="${y}" stroke="#777" stroke-dasharray="5 4"/>`,
          },
        ]
      : []),
    ...(band
      ? [
          {
            text: "more CPUs than host cores (time-shared)",
            swatch: (x: number, y: number) =>
              `<rect x="${x}" y="${y - 7}" width="24" height="14" fill="${BAND}" stroke="#ccc"/>`,
          },
        ]
      : []),
  ];
}

/** Where each entry starts: a 24 px swatch, its text (~7 px a character at 12 px), a gap; and the end. */
function legendXs(entries: readonly LegendEntry[]): number[] {
  const xs = [20];
  for (const e of entries) xs.push(xs.at(-1)! + 30 + 7 * e.text.length + 24);
  return xs;
}

/** The legend on the baseline `y`. */
function legendSvg(entries: readonly LegendEntry[], y: number): string {
  const xs = legendXs(entries);
  return entries
    .map((e, i) => `${e.swatch(xs[i]!, y - 4)}\n<text x="${xs[i]! + 30}" y="${y}">${esc(e.text)}</text>`)
    .join("\n");
}

/** The whole chart: a title, the panels three to a row, and a legend. */
export function scalingChartSvg(panels: readonly ChartPanel[], opts: ChartOptions): string {
  const names = [...new Set(panels.flatMap((p) => p.series.map((s) => s.name)))];
  const color = (name: string) => COLORS[names.indexOf(name) % COLORS.length]!;
  const cols = Math.min(COLS, Math.max(1, panels.length));
  const rows = Math.ceil(panels.length / cols);
  const band = panels.some((p) => Math.max(...p.series.flatMap((s) => s.points.map((q) => q.x))) > opts.hostCores);
  const legend = legendEntries(
    names,
    panels.some((p) => p.ideal === true),
    band,
    color,
  );
  const width = Math.max(cols * PANEL_W, legendXs(legend).at(-1)!);
  const height = HEADER_H + rows * PANEL_H + LEGEND_H;
  return `${[
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(opts.title)}</text>`,
    ...panels.map((p, i) => panelSvg(p, (i % cols) * PANEL_W, HEADER_H + Math.floor(i / cols) * PANEL_H, opts, color)),
    legendSvg(legend, height - 10),
    `</svg>`,
  ].join("\n")}\n`;
}
