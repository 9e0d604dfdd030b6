/**
 * Fuzzing `vmsim exec` scripts (docs/exec.md): valid ops with random
 * arguments — sizes from 0 to far past memory, alignments, page counts,
 * offsets past an area's end, labels that name freed or never-made areas,
 * raw addresses, other CPUs, interrupt context — mixed with malformed lines
 * (not JSON, not an object, unknown ops, missing, mistyped and extra fields,
 * CPUs that do not exist). Every script ends with a `check` op.
 *
 * Properties: every non-blank line gets exactly one JSON answer with a boolean
 * `ok`, echoing its `op`; a line malformed by construction gets `ok: false`
 * and an `error`; the run ends with exit status 0 or 1 (a BUG); after a
 * script that ended cleanly (0) the appended check reports no violations.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import fc from "fast-check";
import { execScript } from "../../src/cli/exec.js";
import { EXEC_MAX_IO } from "../../src/workers/exec_op.js";
import { makeConfig } from "../../src/shared/config.js";
import { LAYOUT_NAMES, type LayoutName, formatKaddr, layoutFor } from "../../src/shared/layouts.js";
import { firstMisuse } from "./exec_model.js";
import { FuzzFailure, checkRun, runVmsim, stackTraceLine } from "./process.js";

/** What the exec generator may produce. */
export interface ExecGenOptions {
  /**
   * Let two deferred (interrupt-context) vfrees of one address be pending at
   * once. The second pushes the same llist node again: vfree_deferred's list
   * turns into a cycle and the final flush walks it for ever until the
   * soft-lockup verdict ends the run (issue 9 §1). Off: a flush_work goes
   * before every interrupt-context vfree that follows another unflushed one.
   */
  readonly irqDoubleFree: boolean;
}

/** An address in the vmalloc area, `offset` bytes above VMALLOC_START, written out for the case's layout. */
class VmallocAddr {
  constructor(readonly offset: number) {}
}

/** One script line: a JSON value (written with JSON.stringify) or raw text, and whether it must be refused. */
export interface ExecLine {
  readonly value: unknown;
  readonly raw: boolean;
  /** Malformed by construction: its answer must be `ok: false` with an `error`. */
  readonly malformed: boolean;
}

/** A machine and a script for it. */
export interface ExecCase {
  readonly cpus: number;
  readonly layout: LayoutName;
  readonly memoryMiB: number;
  readonly lines: readonly ExecLine[];
}

const LABELS = ["a", "b", "c", "d"];
/** Labels no line defines. */
const UNKNOWN_LABELS = ["zz", "A", "a ", "0"];

const line = (value: unknown, malformed = false): ExecLine => ({ value, raw: false, malformed });
const rawLine = (text: string, malformed: boolean): ExecLine => ({ value: text, raw: true, malformed });

const weighted = <T>(...arbs: [number, fc.Arbitrary<T>][]): fc.Arbitrary<T> =>
  fc.oneof(...arbs.map(([weight, arbitrary]) => ({ weight, arbitrary })));

const label = weighted([9, fc.constantFrom(...LABELS)], [1, fc.constantFrom(...UNKNOWN_LABELS)]);
const size = weighted(
  [6, fc.integer({ min: 1, max: 65536 })],
  [2, fc.integer({ min: 1, max: 256 }).map((n) => n * 4096)],
  [1, fc.constantFrom(0, 1, 4095, 4097, 1 << 20, 8 << 20, 1 << 30, 2 ** 40, Number.MAX_SAFE_INTEGER)],
);
const align = weighted([5, fc.integer({ min: 0, max: 24 }).map((k) => 2 ** k)], [1, fc.constantFrom(2 ** 30, 2 ** 40)]);
const pages = weighted(
  [6, fc.integer({ min: 0, max: 16 })],
  [1, fc.constantFrom(64, 256, 1024, 4096, 1 << 20, 0xffffffff)],
);
const offset = weighted(
  [6, fc.integer({ min: 0, max: 9000 })],
  [1, fc.constantFrom(4095, 4096, 8192, 1 << 20, 2 ** 40, Number.MAX_SAFE_INTEGER)],
);
const len = weighted([6, fc.integer({ min: 0, max: 300 })], [1, fc.constantFrom(4096, 8193, EXEC_MAX_IO)]);
const hex = weighted(
  [6, fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b).toString("hex"))],
  [1, fc.integer({ min: 0, max: 9000 }).map((n) => "5a".repeat(n))],
);
/** Mostly CPUs 0..3 (the machines have 1..4), so some lines name a CPU the machine lacks. */
const cpu = fc.integer({ min: 0, max: 3 });
const addr = weighted<unknown>(
  [4, fc.integer({ min: 0, max: 600 }).map((p) => new VmallocAddr(p * 4096))],
  [1, fc.integer({ min: 0, max: 2 ** 26 }).map((o) => new VmallocAddr(o))],
  [1, fc.constantFrom("0x0", "0x1", "0xffffffffffffffff", "0xFFFF000008000000", "ffff000008000000", "0x", "")],
);
const target = weighted<Record<string, unknown>>(
  [8, label.map((ref) => ({ ref }))],
  [2, addr.map((a) => ({ addr: a }))],
);

/** The keys a line may carry whatever its op; interrupt context is rare (most kernel calls BUG in it, stopping the run). */
const context = fc.record(
  { cpu, irq: weighted([1, fc.constant(true)], [4, fc.constant(false)]) },
  { requiredKeys: [] },
);
const withAs = (o: fc.Arbitrary<Record<string, unknown>>) =>
  fc.tuple(o, fc.option(label, { nil: undefined })).map(([x, as]) => (as === undefined ? x : { ...x, as }));

/** A well-formed line (its kernel call may still fail). */
const validOp: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    weighted<Record<string, unknown>>(
      [
        6,
        withAs(
          fc
            .tuple(size, fc.option(align, { nil: undefined }))
            .map(([s, a]) => (a === undefined ? { op: "vmalloc", size: s } : { op: "vmalloc", size: s, align: a })),
        ),
      ],
      [2, withAs(size.map((s) => ({ op: "vzalloc", size: s })))],
      [4, target.map((t) => ({ op: "vfree", ...t }))],
      [2, target.map((t) => ({ op: "vfree", ...t, irq: true }))],
      [2, withAs(pages.map((n) => ({ op: "vmap", pages: n })))],
      [2, target.map((t) => ({ op: "vunmap", ...t }))],
      [2, withAs(pages.map((n) => ({ op: "vm_map_ram", pages: n })))],
      [2, fc.tuple(target, pages).map(([t, n]) => ({ op: "vm_unmap_ram", ...t, pages: n }))],
      [2, fc.tuple(target, offset, hex).map(([t, o, h]) => ({ op: "write", ...t, offset: o, hex: h }))],
      [2, fc.tuple(target, offset, len).map(([t, o, l]) => ({ op: "read", ...t, offset: o, len: l }))],
      [3, fc.constantFrom("purge", "flush_work", "vmallocinfo", "meminfo", "check").map((op) => ({ op }))],
    ),
    context,
  )
  // The op's own irq (the deferred vfrees) beats the context's.
  .map(([o, ctx]) => ({ ...o, ...ctx, ...("irq" in o ? { irq: o["irq"] } : {}) }));

/** Argument names of the ops that require them (docs/exec.md's op table). */
const REQUIRED: Readonly<Record<string, readonly string[]>> = {
  vmalloc: ["size"],
  vzalloc: ["size"],
  vmap: ["pages"],
  vm_map_ram: ["pages"],
  vm_unmap_ram: ["pages"],
  write: ["offset", "hex"],
  read: ["offset", "len"],
};

/** Values no argument accepts: wrong types and numbers that are no byte or page count. */
const badValue = fc.constantFrom<unknown>(
  "8192",
  "",
  [],
  [4096],
  {},
  null,
  true,
  -1,
  0.5,
  1.5,
  -4096,
  2 ** 64,
  1e308,
  -1e308,
);
/** Keys no op takes, some of them the names of Object.prototype's members. */
const extraKey = fc.constantFrom("extra", "sizes", "label", "toString", "constructor", "valueOf", "__proto__");
/** CPU values that no machine has. */
const badCpu = fc.constantFrom<unknown>(-1, 64, 1.5, "0", null, true, 2 ** 53);

/** A line refused whatever the machine's state: one mutation of a valid line that makes it malformed. */
const malformedOp: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(validOp, fc.nat(), badValue, extraKey, badCpu, fc.nat(5))
  .map(([o, pick, bad, extra, badC, how]) => {
    const required = REQUIRED[o["op"] as string] ?? [];
    const x = { ...o };
    switch (how) {
      case 0:
        // A mistyped or out-of-range required argument (ops without one get an unknown op instead).
        if (required.length > 0) x[required[pick % required.length]!] = bad;
        else x["op"] = `${String(o["op"])}_`;
        break;
      case 1:
        if (required.length > 0) delete x[required[pick % required.length]!];
        else x["op"] = bad;
        break;
      case 2:
        // JSON.parse makes "__proto__" an own key, as a script file would have it.
        return JSON.parse(`{${JSON.stringify(extra)}:1,${JSON.stringify(x).slice(1)}`) as Record<string, unknown>;
      case 3:
        x["cpu"] = badC;
        break;
      case 4:
        x["irq"] = pick % 2 === 0 ? "true" : 1;
        break;
      case 5:
        if ("ref" in x || "addr" in x) {
          x["ref"] = "a";
          x["addr"] = "0x0";
        } else delete x["op"];
        break;
    }
    return x;
  });

/** Text that is not a JSON object, or JSON that JavaScript reads its own way. */
const junkText = weighted<ExecLine>(
  [
    3,
    fc
      .constantFrom(
        "{",
        "}",
        "[",
        '{"op":',
        "nul",
        "NaN",
        '{"op":"vmalloc","size":NaN}',
        '{"op":"vmalloc","size":Infinity}',
        "{'op':'check'}",
        '{"op":"check"} trailing',
        "\u0000",
        '{"op":"vmalloc","size":1e999}',
        '{"op":"vmalloc","size":8192,"size":-1}',
        '{"op":"toString"}',
        '{"op":"__proto__"}',
        '{"__proto__":{"op":"check"}}',
        '{"op":"check","cpu":1e400}',
        "[]",
        "null",
        '"check"',
        "42",
      )
      .map((t) => rawLine(t, true)),
  ],
  // Random printable text: refused unless it happens to be a whole op, which it never is.
  [1, fc.string({ minLength: 1, maxLength: 40 }).map((t) => rawLine(t, false))],
  [1, fc.jsonValue({ maxDepth: 2 }).map((v) => line(v, typeof v !== "object" || v === null || Array.isArray(v)))],
  // A valid line cut short is never JSON.
  [
    1,
    validOp
      .map((o) => JSON.stringify(o))
      .chain((t) => fc.integer({ min: 1, max: t.length - 1 }).map((n) => rawLine(t.slice(0, n), true))),
  ],
  [1, fc.constantFrom("", "   ", "\t").map((t) => rawLine(t, false))],
);

const execLine = weighted<ExecLine>(
  [12, validOp.map((o) => line(o))],
  [2, malformedOp.map((o) => line(o, true))],
  [1, junkText],
);

/** Whether a line is an interrupt-context vfree (or might be one: any line that says so). */
function isIrqVfree(l: ExecLine): boolean {
  const v = l.value as Record<string, unknown> | null;
  return !l.raw && typeof v === "object" && v !== null && v["op"] === "vfree" && v["irq"] === true;
}

/** Puts a flush_work before each interrupt-context vfree that follows another with no flush between. */
function flushBetweenIrqVfrees(lines: readonly ExecLine[]): ExecLine[] {
  const out: ExecLine[] = [];
  let pending = false;
  for (const l of lines) {
    if (isIrqVfree(l)) {
      if (pending) out.push(line({ op: "flush_work" }));
      pending = true;
    }
    out.push(l);
  }
  return out;
}

/** Exec cases: a machine of 1..4 CPUs and a script of up to `maxLines` lines (then `check`). */
export function execCase(o: ExecGenOptions, maxLines = 40): fc.Arbitrary<ExecCase> {
  return fc.record({
    cpus: fc.integer({ min: 1, max: 4 }),
    layout: fc.constantFrom(...LAYOUT_NAMES),
    memoryMiB: fc.constantFrom(8, 16, 64),
    lines: fc
      .array(execLine, { minLength: 1, maxLength: maxLines })
      .map((ls) => [...(o.irqDoubleFree ? ls : flushBetweenIrqVfrees(ls)), line({ op: "check" })]),
  });
}

/** The script's text, one line per ExecLine. */
export function scriptText(c: ExecCase): string {
  const layout = layoutFor("4.19", c.layout);
  const text = (l: ExecLine) =>
    l.raw
      ? (l.value as string)
      : JSON.stringify(l.value, (_, v) =>
          v instanceof VmallocAddr ? formatKaddr(layout, layout.vmallocStart + v.offset) : v,
        );
  return `${c.lines.map(text).join("\n")}\n`;
}

/** The command-line flags of the case's machine. */
export function execArgs(c: ExecCase): string[] {
  // A CPU stuck in one kernel call (a corrupted list) is reported within a second.
  return ["--cpus", String(c.cpus), "--layout", c.layout, "--memory", `${c.memoryMiB}M`, "--watchdog", "1s"];
}

const show = (s: string) => (s.length > 160 ? `${s.slice(0, 160)}…` : s);

/** How a checked run went: whether the check after it had to pass (a clean end, no misuse), or why not. */
export interface ExecVerdict {
  readonly strict: boolean;
  readonly misuse: string | null;
}

/** Checks the answers (stdout) to the case's script against the properties; throws FuzzFailure. */
export function checkAnswers(c: ExecCase, code: number, stdout: string): ExecVerdict {
  const inputs = scriptText(c).split("\n").slice(0, -1);
  const asked = inputs.map((text, i) => ({ text, line: c.lines[i]! })).filter((x) => x.text.trim() !== "");
  const answers = stdout.split("\n").filter((l) => l !== "");
  if (answers.length !== asked.length)
    throw new FuzzFailure(`${asked.length} non-blank lines got ${answers.length} answers`);
  const parsed: Record<string, unknown>[] = [];
  asked.forEach(({ text, line: l }, i) => {
    const where = `line ${show(text)} → ${show(answers[i]!)}`;
    let a: Record<string, unknown>;
    try {
      a = JSON.parse(answers[i]!) as Record<string, unknown>;
    } catch {
      throw new FuzzFailure(`an answer is not JSON: ${where}`);
    }
    if (typeof a !== "object" || a === null || typeof a["ok"] !== "boolean")
      throw new FuzzFailure(`an answer has no boolean "ok": ${where}`);
    parsed.push(a);
    let input: unknown = null;
    try {
      input = JSON.parse(text);
    } catch {
      // not JSON: the answer's op is null
    }
    const op =
      typeof input === "object" && input !== null && Object.hasOwn(input, "op") ? (input as { op: unknown }).op : null;
    if (JSON.stringify(a["op"]) !== JSON.stringify(op))
      throw new FuzzFailure(`the answer's op is not the line's: ${where}`);
    if (l.malformed && (a["ok"] !== false || typeof a["error"] !== "string"))
      throw new FuzzFailure(`a malformed line was not refused: ${where}`);
  });
  if (code !== 0) return { strict: false, misuse: null };
  const misuse = firstMisuse(
    c.layout,
    c.cpus,
    asked.map((x) => x.text),
    parsed,
  );
  if (misuse !== null) return { strict: false, misuse };
  const last = parsed.at(-1)!;
  if (last["op"] !== "check" || !Array.isArray(last["violations"]) || last["violations"].length > 0)
    throw new FuzzFailure(`the script ended cleanly but the check after it failed: ${show(answers.at(-1)!)}`);
  return { strict: true, misuse: null };
}

/** Runs the case through the library (src/cli/exec.ts's execScript, as `vmsim exec` does) and checks it. */
export async function runExecLibrary(c: ExecCase): Promise<ExecVerdict> {
  const config = makeConfig({
    cpus: c.cpus,
    layout: c.layout,
    memory: c.memoryMiB << 20,
    workqueue: "explicit",
    // A CPU stuck in one kernel call (a corrupted list) is reported within a second.
    watchdogMs: 1000,
  });
  let out = "";
  let err = "";
  const code = await execScript(
    config,
    Readable.from([scriptText(c)]),
    (l) => {
      out += l;
    },
    () => {},
    (l) => {
      err += `${l}\n`;
    },
  );
  const trace = stackTraceLine(err);
  if (trace !== null) throw new FuzzFailure(`a stack trace reached the user: ${trace}`);
  if (code !== 0 && code !== 1) throw new FuzzFailure(`execScript resolved to ${code}`);
  return checkAnswers(c, code, out);
}

/** Writes the case's script into `dir`; returns the `vmsim exec` arguments that run it. */
export function writeExecCase(c: ExecCase, dir: string, name = "script.jsonl"): string[] {
  const file = join(dir, name);
  writeFileSync(file, scriptText(c));
  return ["exec", ...execArgs(c), "--script", file];
}

/** Runs the case through the built CLI in `dir` and checks every property. */
export async function runExecCli(c: ExecCase, dir: string, timeoutMs: number): Promise<ExecVerdict> {
  const r = await runVmsim(writeExecCase(c, dir), { cwd: dir, timeoutMs });
  checkRun(r, [0, 1]);
  return checkAnswers(c, r.code!, r.stdout);
}
