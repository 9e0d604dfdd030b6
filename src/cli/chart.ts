/**
 * The SVG chart of `vmsim bench`: one small panel per test, throughput against
 * CPU count, written by hand (a few dozen elements need no plotting library).
 * Each panel has its own y scale (tests differ a hundredfold), a log2 x axis
 * (CPU counts double), the measured line, the ideal line (1 CPU's throughput
 * × CPUs, dashed) and a shaded band where the machine has more CPUs than the
 * host has cores.
 */

/** One panel: a test's measurements. */
export interface ChartPanel {
  readonly title: string;
  /** (CPUs, throughput) in CPU order. */
  readonly points: readonly { readonly x: number; readonly y: number }[];
}

/** Texts and host facts of the chart. */
export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  /** Cores of the host: CPU counts beyond it time-share cores (shaded). */
  readonly hostCores: number;
}

const PANEL_W = 320;
const PANEL_H = 240;
const COLS = 3;
const HEADER_H = 44;
const LEGEND_H = 28;
const M = { left: 64, right: 16, top: 30, bottom: 44 };
const COLOR = "#1f77b4";
const PAD_X = 14;

/** Escapes text for an SVG text node or attribute. */
function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** 1.2M, 350k, 7.4k, 12: tick labels. */
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

function panelSvg(p: ChartPanel, ox: number, oy: number, opts: ChartOptions): string {
  const w = PANEL_W - M.left - M.right;
  const h = PANEL_H - M.top - M.bottom;
  const x0 = ox + M.left;
  const y0 = oy + M.top;
  const xs = p.points.map((q) => q.x);
  const lo = Math.log2(Math.min(...xs));
  const hi = Math.log2(Math.max(...xs));
  // Points stay off the y axis: the x range keeps a margin of PAD_X on each side.
  const sx = (x: number) => x0 + (hi === lo ? w / 2 : PAD_X + ((Math.log2(x) - lo) / (hi - lo)) * (w - 2 * PAD_X));
  const step = niceStep(Math.max(...p.points.map((q) => q.y), 1));
  const top = Math.ceil((Math.max(...p.points.map((q) => q.y)) * 1.05) / step) * step || step;
  const sy = (y: number) => y0 + h - (y / top) * h;
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
    out.push(
      `<rect x="${n1(from)}" y="${n1(y0)}" width="${n1(x0 + w - from)}" height="${n1(h)}" fill="#eee"/>`,
      `<text x="${n1(x0 + w - 4)}" y="${n1(y0 + 12)}" text-anchor="end" font-size="10" fill="#777">more CPUs than cores</text>`,
    );
  }
  for (let y = 0; y <= top + step / 2; y += step)
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
    `<text transform="translate(${n1(ox + 14)} ${n1(y0 + h / 2)}) rotate(-90)" text-anchor="middle" font-size="11">${esc(opts.yLabel)}</text>`,
  );
  const one = p.points.find((q) => q.x === 1);
  if (one !== undefined && p.points.length > 1) {
    const ideal = p.points.map((q) => `${n1(sx(q.x))},${n1(sy(one.y * q.x))}`).join(" ");
    out.push(
      `<polyline points="${ideal}" fill="none" stroke="#999" stroke-dasharray="5 4" clip-path="url(#${clip})"/>`,
    );
  }
  out.push(
    `<polyline points="${p.points.map((q) => `${n1(sx(q.x))},${n1(sy(q.y))}`).join(" ")}" fill="none" stroke="${COLOR}" stroke-width="2"/>`,
    ...p.points.map(
      (q) =>
        `<circle cx="${n1(sx(q.x))}" cy="${n1(sy(q.y))}" r="3.5" fill="${COLOR}"><title>${q.x} CPUs: ${compact(q.y)}</title></circle>`,
    ),
    `</g>`,
  );
  return out.join("\n");
}

/** The whole chart: a title, the panels three to a row, and a legend. */
export function scalingChartSvg(panels: readonly ChartPanel[], opts: ChartOptions): string {
  const cols = Math.min(COLS, Math.max(1, panels.length));
  const rows = Math.ceil(panels.length / cols);
  const width = cols * PANEL_W;
  const height = HEADER_H + rows * PANEL_H + LEGEND_H;
  const ly = height - 10;
  return `${[
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(opts.title)}</text>`,
    ...panels.map((p, i) => panelSvg(p, (i % cols) * PANEL_W, HEADER_H + Math.floor(i / cols) * PANEL_H, opts)),
    `<line x1="20" x2="44" y1="${ly - 4}" y2="${ly - 4}" stroke="${COLOR}" stroke-width="2"/>`,
    `<text x="50" y="${ly}">measured (median)</text>`,
    `<line x1="190" x2="214" y1="${ly - 4}" y2="${ly - 4}" stroke="#999" stroke-dasharray="5 4"/>`,
    `<text x="220" y="${ly}">ideal: 1 CPU × CPUs</text>`,
    `</svg>`,
  ].join("\n")}\n`;
}
