/**
 * What every benchmark runner shares: the measurement helpers of
 * src/workers/measure.ts, and writing results to bench/results/.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export { type HostInfo, type Stats, fmt, hostInfo, hostLine, statsOf } from "../src/workers/measure.js";

/** bench/results/ of the repository (the runners run from dist/bench/). */
export const RESULTS_DIR = join(fileURLToPath(new URL("../..", import.meta.url)), "bench/results");

/** Writes `<name>.md` and `<name>.json` into `dir`. */
export function writeResults(dir: string, name: string, md: string, json: unknown): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.md`), md);
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
}

/** A positive integer command-line value, or a RangeError naming the flag. */
export function positiveInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be a positive integer, got ${raw}`);
  return n;
}
