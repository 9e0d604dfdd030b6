/**
 * The `vmsim` command as a user runs it: the built CLI (dist/, as `npm start`
 * and the bin link run it) in a child process, with its exit status and output.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const MAIN = fileURLToPath(new URL("../../dist/src/cli/main.js", import.meta.url));

export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `vmsim ...args`; never rejects: a failing command resolves with its exit code. */
export function vmsim(...args: string[]): Promise<Result> {
  if (!existsSync(MAIN)) throw new Error("dist/ is missing: run `npm run build` first");
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
