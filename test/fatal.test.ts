/**
 * The top of the `vmsim` command (src/cli/fatal.ts): output into a closed
 * pipe ends a command quietly, and an error that escapes every command is one
 * line on stderr and exit 1 — the stack only with VMSIM_DEBUG set. The pipes
 * are closed before the child process starts, so its first write always
 * meets a closed pipe.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { escapedErrorLines } from "../src/cli/fatal.js";
import { MachineError } from "../src/workers/machine.js";
import { MAIN } from "./helpers/vmsim.js";

interface Ended {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs node with `args`; `close` names the pipe whose reading end is closed at once. */
function runNode(args: string[], close: "stdout" | "stderr" | null, env: NodeJS.ProcessEnv = {}): Promise<Ended> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, VMSIM_DEBUG: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    if (close !== null) child[close].destroy();
    if (close !== "stdout") child.stdout.on("data", (d: Buffer) => (stdout += d));
    if (close !== "stderr") child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const INTERNAL_TAIL = "(please report; rerun with VMSIM_DEBUG=1 for the stack)";

describe("output into a closed pipe ends vmsim quietly", () => {
  it("`vmsim explore --help` into a closed stdout: exit 0, nothing on stderr", async () => {
    expect(await runNode([MAIN, "explore", "--help"], "stdout")).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it("a run whose stdout is closed stops at its first line: exit 0, nothing on stderr, no replay file", async () => {
    const out = mkdtempSync(join(tmpdir(), "vmsim-epipe-"));
    const r = await runNode([MAIN, "explore", "--scenario", "demo:abba", "--out", out], "stdout");
    expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(readdirSync(out)).toEqual([]);
  });

  it("`vmsim exec` whose reader went away ends quietly with exit 0, as a filter does", async () => {
    const script = join(mkdtempSync(join(tmpdir(), "vmsim-epipe-")), "s.jsonl");
    writeFileSync(script, '{"op":"vmalloc","size":8192,"as":"a"}\n{"op":"vfree","ref":"a"}\n');
    expect(await runNode([MAIN, "exec", "--script", script], "stdout")).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it("a bad argument whose stderr is closed still exits 2", async () => {
    expect(await runNode([MAIN, "explore", "--scenario", "nope"], "stderr")).toEqual({
      code: 2,
      stdout: "",
      stderr: "",
    });
  });
});

describe("an error that escapes every command", () => {
  /** A process that arms vmsim's top level, then runs `code` (an ES module body). */
  const armed = (code: string) => [
    "--input-type=module",
    "-e",
    `import { armTopLevel } from ${JSON.stringify(pathToFileURL(join(MAIN, "../fatal.js")).href)};\narmTopLevel();\n${code}`,
  ];

  it("thrown from a timer: one line, exit 1, no stack", async () => {
    const r = await runNode(armed("setTimeout(() => { throw new Error('boom\\nin two lines'); });"), null);
    expect(r).toEqual({ code: 1, stdout: "", stderr: `vmsim: internal error: boom in two lines ${INTERNAL_TAIL}\n` });
  });

  it("a rejected promise nobody awaits: one line, exit 1", async () => {
    const r = await runNode(armed("Promise.reject(new RangeError('lost'));"), null);
    expect(r).toEqual({ code: 1, stdout: "", stderr: `vmsim: internal error: lost ${INTERNAL_TAIL}\n` });
  });

  it("with VMSIM_DEBUG=1 the stack follows the line", async () => {
    const r = await runNode(armed("setTimeout(() => { throw new Error('boom'); });"), null, { VMSIM_DEBUG: "1" });
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe(`vmsim: internal error: boom ${INTERNAL_TAIL}`);
    expect(lines[1]).toBe("Error: boom");
    expect(lines[2]).toMatch(/^ +at /);
  });

  it("the lines: the system's errors and a stopped machine are errors of the run, anything else vmsim's own", () => {
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open 'x.json'"), {
      code: "ENOENT",
      syscall: "open",
    });
    expect(escapedErrorLines(enoent, false)).toEqual([
      "vmsim: error: ENOENT: no such file or directory, open 'x.json'",
    ]);
    const stopped = new MachineError(1, { name: "KernelBug", message: "kernel BUG at mm/vmalloc.c" }, 7);
    expect(escapedErrorLines(stopped, false)).toEqual([
      "vmsim: error: the machine stopped: CPU1: KernelBug: kernel BUG at mm/vmalloc.c (seed 7)",
    ]);
    expect(escapedErrorLines("a string", false)).toEqual([`vmsim: internal error: a string ${INTERNAL_TAIL}`]);
    expect(escapedErrorLines(new TypeError(""), false)).toEqual([`vmsim: internal error: TypeError ${INTERNAL_TAIL}`]);
    const [line, stack] = escapedErrorLines(new Error("x"), true);
    expect(line).toBe(`vmsim: internal error: x ${INTERNAL_TAIL}`);
    expect(stack).toMatch(/^Error: x\n +at /);
  });
});
