/**
 * The built `vmsim` in a child process, as a user runs it, with the
 * properties every fuzzed run must keep whatever it was fed: it ends within a
 * bounded time, with exit status 0, 1 or 2, and no stack trace reaches the
 * user.
 */
import { spawn } from "node:child_process";
import { compiledModule } from "../../src/workers/compiled.js";

/** What one `vmsim` run did. */
export interface VmsimRun {
  /** Exit status; null when a signal (the time limit's SIGKILL) ended it. */
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Output kept per stream: a run that prints more is cut here (its tail is what a failure shows). */
const MAX_OUTPUT = 8 << 20;

/** Runs `vmsim ...args` in `cwd`, feeding `stdin`; SIGKILLs it after `timeoutMs`. Never rejects on a failing run. */
export function runVmsim(
  args: readonly string[],
  o: { cwd: string; timeoutMs: number; stdin?: string },
): Promise<VmsimRun> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [compiledModule("cli/main.js"), ...args], {
      cwd: o.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (d: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      if (stderr.length < MAX_OUTPUT) stderr += d.toString();
    });
    // A command that does not read its input (most of them) closes the pipe: that is no failure.
    child.stdin.on("error", () => {});
    child.stdin.end(o.stdin ?? "");
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, o.timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, timedOut, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** A property that does not hold: what broke, in one line, and the run's evidence. */
export class FuzzFailure extends Error {
  override name = "FuzzFailure";
}

/** Lines of a JavaScript stack or a crash dump: what must never reach a user. */
const STACK_TRACE =
  /^ {4}at |\b(?:RangeError|TypeError|ReferenceError|SyntaxError|AssertionError)\b|FATAL ERROR|node:internal/m;

/** The first line of `text` that shows a stack trace or an uncaught error; null when none does. */
export function stackTraceLine(text: string): string | null {
  return STACK_TRACE.exec(text) === null ? null : (text.split("\n").find((l) => STACK_TRACE.test(l)) ?? null);
}

function tail(s: string, lines = 12): string {
  return s.trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Checks what every run must keep: it ended on its own within the time limit,
 * with an allowed exit status, and printed no stack trace; a usage error
 * (exit 2) is one line on stderr. Throws FuzzFailure naming the first property broken.
 */
export function checkRun(r: VmsimRun, allowed: readonly number[] = [0, 1, 2]): void {
  const evidence = `\n--- stderr (tail) ---\n${tail(r.stderr)}\n--- stdout (tail) ---\n${tail(r.stdout)}`;
  if (r.timedOut) throw new FuzzFailure(`did not end within ${Math.round(r.ms / 1000)} s${evidence}`);
  if (r.code === null || !allowed.includes(r.code))
    throw new FuzzFailure(`exit status ${r.code}, expected one of ${allowed.join(", ")}${evidence}`);
  const trace = stackTraceLine(r.stderr) ?? stackTraceLine(r.stdout);
  if (trace !== null) throw new FuzzFailure(`a stack trace reached the user: ${trace.trim()}${evidence}`);
  if (r.code === 2) {
    const lines = r.stderr.trimEnd().split("\n");
    if (lines.length !== 1 || !lines[0]!.startsWith("vmsim: "))
      throw new FuzzFailure(`a usage error must be one "vmsim: …" line on stderr${evidence}`);
  }
}
