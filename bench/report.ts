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

/** Runs a bench script's main: a bad argument is one line on stderr and exit 2, never a stack trace. */
export async function runBenchMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const bad =
      e instanceof RangeError || (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"));
    if (!bad) throw e;
    process.stderr.write(`${process.argv[1]?.split("/").pop()}: ${e.message}\n`);
    process.exitCode = 2;
  }
}
