/**
 * The final status line of every command that ends in a verdict (run,
 * stress, stress campaigns and merge, test, bench, explore, replay, shrink):
 * `result: <word>` with the details in parentheses, the last words before the
 * seed and the SUMMARY line — the word a person or a script looks for.
 * Also the reading of the results files every `merge` takes, and Ctrl-C's abort.
 */
import { readFileSync } from "node:fs";

/**
 * How a command ended: ok (nothing failed), FAILED (a failure; exit status
 * 1), interrupted (Ctrl-C ended it early, nothing failed in what ran),
 * incomplete (parts of a campaign missing, nothing failed in what ran).
 */
export type Verdict = "ok" | "FAILED" | "interrupted" | "incomplete";

/** `result: ok`, `result: FAILED (2 failures, report on stderr)`. */
export function resultLine(verdict: Verdict, detail?: string): string {
  return `result: ${verdict}${detail !== undefined && detail !== "" ? ` (${detail})` : ""}`;
}

/** The results files a `merge` takes, parsed; throws RangeError naming the first that is unreadable or not `what`. */
export function readResultFiles<T>(files: readonly string[], isResults: (raw: unknown) => raw is T, what: string): T[] {
  return files.map((file) => {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new RangeError(`cannot read ${file}: ${(e as Error).message}`);
    }
    if (!isResults(raw)) throw new RangeError(`${file} is not ${what}`);
    return raw;
  });
}

/** Runs `work` with a signal that Ctrl-C aborts (the command then ends `interrupted`); the handler goes with it. */
export async function abortOnSigint<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  try {
    return await work(abort.signal);
  } finally {
    process.removeListener("SIGINT", onSigint);
  }
}
