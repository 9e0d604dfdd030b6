/**
 * Text formatting for reports (the CLI's and runStress's): counts, aligned
 * tables, human sizes. Below the CLI so library code formats the same way
 * without loading it.
 */

/** A count with thousands separators, rounded: "1,876,160". */
export function formatInt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Binary size with the largest unit that divides it exactly: "64 MiB", "4 KiB", "60 B"; one decimal otherwise. */
export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let v = n;
  while (u < units.length - 1 && v >= 1024) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/** Arena offsets print as fixed-width hex so columns line up. */
export function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

/**
 * An aligned table: a header row (none when empty) and data rows, columns
 * separated by two spaces, each left- or right-aligned ("l" / "r"), indented by two.
 */
export function formatTable(
  rows: readonly (readonly string[])[],
  { header = [], align }: { header?: readonly string[]; align: string },
): string[] {
  const all = header.length > 0 ? [header, ...rows] : rows;
  const cols = Math.max(0, ...all.map((r) => r.length));
  const width = Array.from({ length: cols }, (_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  return all.map(
    (r) =>
      `  ${r
        .map((cell, c) => (align[c] === "r" ? cell.padStart(width[c]!) : cell.padEnd(width[c]!)))
        .join("  ")
        .trimEnd()}`,
  );
}

/** "1 CPU", "4 CPUs". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
