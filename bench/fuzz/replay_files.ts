/**
 * Fuzzing replay files (`vmsim replay FILE`, `vmsim shrink FILE`): real
 * files, written by `vmsim explore` at the start of the campaign, with edits —
 * fields set to values of the wrong type or out of range, fields removed,
 * decisions edited, another scenario, a config `vmsim explore` would not
 * accept, the text cut short.
 *
 * Properties: every run ends in time with exit status 0, 1 or 2 and no stack
 * trace; a file made malformed by an edit is refused with one line and exit
 * status 2.
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { FuzzFailure, checkRun, runVmsim } from "./process.js";

/** How much an edit tells about the file: "bad" makes it malformed, "any" may or may not. */
type Verdict = "bad" | "any";

/** One edit: set (or, with `remove`, delete) the field at a dotted path. */
export interface ReplayEdit {
  readonly path: string;
  readonly remove: boolean;
  readonly value: unknown;
  readonly verdict: Verdict;
}

/** A base file, edits on distinct fields, maybe its text cut short, and the command that reads it. */
export interface ReplayCase {
  readonly base: number;
  readonly edits: readonly ReplayEdit[];
  /** Keep only this fraction of the text (always cutting it short); null: whole. */
  readonly cut: number | null;
  readonly command: "replay" | "shrink";
  readonly flags: readonly string[];
}

const set = (path: string, verdict: Verdict, ...values: unknown[]) =>
  fc.constantFrom(...values).map((value): ReplayEdit => ({ path, remove: false, value, verdict }));
const remove = (path: string, verdict: Verdict) =>
  fc.constant<ReplayEdit>({ path, remove: true, value: null, verdict });

/** Wrong types: no field of a replay file takes all of them. */
const WRONG = [null, [], {}, "1", true];

/** Edits of the decisions string: groups dropped, repeated, or one field changed. */
const decisionsEdit = fc
  .tuple(fc.nat(), fc.nat(4), fc.constantFrom("0", "1", "2", "5", "v", "zz", "-", "99999999", "3f", ""), fc.nat(2))
  .map(([g, field, v, how]) => ({ g, field, v, how }));

function editDecisions(s: string, e: { g: number; field: number; v: string; how: number }): string {
  const groups = s.split(" ").filter((x) => x !== "");
  if (groups.length === 0) return s;
  const i = e.g % groups.length;
  if (e.how === 0) groups.splice(i, 1);
  else if (e.how === 1) groups.splice(i, 0, groups[i]!);
  else {
    const f = groups[i]!.split(".");
    f[e.field % f.length] = e.v;
    groups[i] = f.join(".");
  }
  return groups.join(" ");
}

/** The edits the campaign makes, one arbitrary per field. */
const EDITS: readonly fc.Arbitrary<ReplayEdit>[] = [
  set("format", "bad", "vmsim-replay2", "", ...WRONG),
  set("version", "bad", 0, 2, 1.5, -1, ...WRONG),
  set("vmsim", "any", "0.0.1", "", "9.9.9"),
  set("vmsim", "bad", 1, null),
  // 33 and 64 are valid too (the deterministic scheduler covers MAX_CPUS = 64), but booting that many workers per
  // case is more than a CI fuzz round affords: test/explore64.test.ts replays such machines.
  set("config.cpus", "any", 1, 2, 3),
  set("config.cpus", "bad", 0, 65, 66, -1, 1.5, 2 ** 53, ...WRONG),
  set("config.layout", "any", "arm64-va39", "arm32"),
  set("config.layout", "bad", "x86", "", "toString", "constructor", ...WRONG),
  set("config.memory", "any", 8 << 20, 16 << 20),
  set("config.memory", "bad", 0, 4096, 5 << 20, 2 ** 40, -(8 << 20), 1.5, "8M", ...WRONG),
  set("config.seed", "any", 0, 7, 0xffffffff),
  set("config.seed", "bad", -1, 2 ** 32, 1.5, ...WRONG),
  set("config.lockdep", "any", true, false),
  set("config.lockdep", "bad", "yes", 1, 0, null, []),
  set("config.watchdogMs", "any", 1000, 60_000),
  set("config.watchdogMs", "bad", 0, -1, 1.5, "10s", ...WRONG),
  set("config.irqRate", "any", 0, 0.01),
  set("config.irqRate", "bad", -1, 2, "0", null, []),
  set("config.workqueue", "any", "auto", "explicit"),
  set("config.workqueue", "bad", "sometimes", "", 1, null),
  set("config.inject", "any", [], ["no-vmap-area-lock"], ["no-purge-flush", "vb-list-del-init"]),
  set("config.inject", "bad", ["nope"], "no-vmap-area-lock", [1], 1, null, {}),
  set("config.trace", "any", 0, 64),
  set("config.trace", "bad", -1, 1.5, 2 ** 30, "64", null),
  remove("config.trace", "any"),
  set("config.extra", "any", 1),
  set("scenario.name", "any", "stress", "demo:abba", "demo:lost-update", "test_vmalloc:fix_size_alloc_test", "script"),
  set("scenario.name", "bad", "nope", "", "toString", "catalog:", 1, null, []),
  set("scenario.ops", "any", 1, 2, 3),
  set("scenario.ops", "bad", 0, -1, 1.5, 2_000_000, 2 ** 53, "2", null, []),
  set("scenario.skip", "any", [], [[0]], [[], [1]], [[0, 1]]),
  set("scenario.skip", "bad", "x", [1], [[-1]], [[1.5]], [["0"]], null, {}),
  set(
    "scenario.script",
    "any",
    [
      [
        { op: "vmalloc", size: 4096, as: "a" },
        { op: "vfree", ref: "a" },
      ],
      [],
    ],
    [[{ op: "purge" }], [{ op: "vmalloc", size: 8192, cpu: 1 }]],
  ),
  set(
    "scenario.script",
    "bad",
    "x",
    [["x"]],
    [[{ op: "nope" }]],
    [[{ op: "check" }]],
    [[{ op: "vmalloc", size: -1 }]],
    [[{ op: "vmalloc", size: 4096, cpu: 1 }]],
    [[{ op: "vfree", ref: "never" }]],
    [[{ op: "vmalloc", size: 4096 }], [], [], [], [{ op: "purge" }]],
    {},
    [],
    [[]],
  ),
  set(
    "strategy",
    "any",
    { kind: "random", p: 0.1 },
    { kind: "rr", quantum: 1 },
    { kind: "exhaustive", bound: 2 },
    { kind: "shrunk", from: "x" },
  ),
  set("strategy", "bad", { kind: "x" }, { kind: "pct" }, { kind: "random", p: "0.1" }, "pct", null, [], 1),
  set("seed", "any", 0, 1, 0xffffffff),
  set("seed", "bad", -1, 2 ** 32, 1.5, ...WRONG),
  set("stepCap", "any", 1, 50, 100_000),
  set("stepCap", "bad", 0, -1, 1.5, 2 ** 40, ...WRONG),
  set("steps", "bad", -1, 1.5, ...WRONG),
  set("switches", "bad", -1, 1.5, ...WRONG),
  set("preemptions", "bad", -1, 1.5, ...WRONG),
  set("decisions", "any", ""),
  set("decisions", "bad", "x y", "1.2", "0.0.1.0.- 1.5.1.0.-", "0.w.1.0.-", "0.0.1.9.-", 5, null, []),
  decisionsEdit.map((e): ReplayEdit => ({ path: "decisions", remove: false, value: e, verdict: "any" })),
  set(
    "failure",
    "any",
    null,
    { kind: "bug", signature: "x", text: "x" },
    { kind: "soft-lockup", signature: "x", text: "x" },
  ),
  set("failure", "bad", "x", {}, { kind: "nope", signature: "x", text: "x" }, { kind: "bug" }, [], 1),
  set("digest", "any", "0000000000000000", ""),
  set("digest", "bad", 1, null, []),
  ...["format", "version", "vmsim", "config", "scenario", "scenario.name", "scenario.ops", "scenario.skip"].map((p) =>
    remove(p, "bad"),
  ),
  ...["strategy", "seed", "stepCap", "steps", "decisions", "failure", "digest"].map((p) => remove(p, "bad")),
];

/** Replay cases over `bases` base files. */
export function replayCase(bases: number): fc.Arbitrary<ReplayCase> {
  return fc.record({
    base: fc.nat(bases - 1),
    edits: fc.uniqueArray(fc.oneof(...EDITS), { maxLength: 3, selector: (e) => e.path }),
    cut: fc.oneof(
      { weight: 7, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.double({ min: 0, max: 0.999, noNaN: true }) },
    ),
    command: fc.constantFrom("replay", "shrink"),
    flags: fc
      .subarray(["--repeat", "--check-determinism", "--timeline"])
      .map((fs) => fs.flatMap((f) => (f === "--repeat" ? ["--repeat", "2"] : [f]))),
  });
}

/** Sets or removes the field at `path` of `root` (nothing when a parent is no object). */
function applyEdit(root: Record<string, unknown>, e: ReplayEdit): void {
  const keys = e.path.split(".");
  let o: unknown = root;
  for (const k of keys.slice(0, -1)) {
    o = (o as Record<string, unknown>)[k];
    if (typeof o !== "object" || o === null || Array.isArray(o)) return;
  }
  const obj = o as Record<string, unknown>;
  const last = keys.at(-1)!;
  if (e.remove) delete obj[last];
  else if (e.path === "decisions" && typeof e.value === "object" && e.value !== null && "how" in e.value)
    obj[last] = editDecisions(String(obj[last]), e.value as Parameters<typeof editDecisions>[1]);
  else obj[last] = structuredClone(e.value);
}

/** The text of the case's file. */
export function replayText(c: ReplayCase, bases: readonly string[]): string {
  const f = JSON.parse(bases[c.base]!) as Record<string, unknown>;
  for (const e of c.edits) applyEdit(f, e);
  const text = `${JSON.stringify(f, null, 1)}\n`;
  return c.cut === null ? text : text.slice(0, Math.floor(c.cut * (text.trimEnd().length - 1)));
}

/** Whether the case's file is malformed by construction. */
export function isMalformed(c: ReplayCase): boolean {
  return c.cut !== null || c.edits.some((e) => e.verdict === "bad");
}

/** Writes the case's file into `dir`; returns the `vmsim` arguments that read it. */
export function writeReplayCase(c: ReplayCase, bases: readonly string[], dir: string): string[] {
  const file = join(dir, "replay.json");
  writeFileSync(file, replayText(c, bases));
  return c.command === "replay"
    ? ["replay", file, ...c.flags]
    : ["shrink", file, "--budget", "3s", "--out", join(dir, "replay.min.json")];
}

/** Runs the case through the built CLI in `dir` and checks every property. */
export async function runReplayCli(c: ReplayCase, bases: readonly string[], dir: string, timeoutMs: number) {
  const r = await runVmsim(writeReplayCase(c, bases, dir), { cwd: dir, timeoutMs });
  checkRun(r);
  if (isMalformed(c) && r.code !== 2)
    throw new FuzzFailure(`a malformed replay file was not refused (exit ${r.code}): ${r.stdout.split("\n")[0]}`);
  // Every base file records a failure: unedited, it replays (and shrinks) to that failure.
  if (c.edits.length === 0 && c.cut === null && r.code !== 1)
    throw new FuzzFailure(`a replay file as explore wrote it ended in exit ${r.code}: ${r.stderr.split("\n")[0]}`);
}

/** Writes the base replay files into `dir` with `vmsim explore` (a few seconds); returns their texts. */
export async function makeBaseReplayFiles(dir: string): Promise<string[]> {
  const script = join(dir, "base-script.jsonl");
  writeFileSync(
    script,
    [
      { op: "vmalloc", size: 8192, as: "a", cpu: 0 },
      { op: "vfree", ref: "a", cpu: 0 },
      { op: "vmalloc", size: 4096, as: "b", cpu: 1 },
      { op: "vfree", ref: "b", cpu: 1 },
    ]
      .map((l) => JSON.stringify(l))
      .join("\n"),
  );
  // The deferred double vfree: its flush loops on a cyclic list until the soft-lockup verdict.
  const lockup = join(dir, "base-lockup.jsonl");
  writeFileSync(
    lockup,
    [
      { op: "vmalloc", size: 8192, as: "a" },
      { op: "vfree", irq: true, ref: "a" },
      { op: "vfree", irq: true, ref: "a" },
    ]
      .map((l) => JSON.stringify(l))
      .join("\n"),
  );
  const runs = [
    ["explore", "--scenario", "demo:lost-update", "--iterations", "50"],
    ["explore", "--script", script, "--inject", "no-vmap-area-lock", "--iterations", "200"],
    ["explore", "--script", lockup, "--iterations", "1"],
  ];
  for (const args of runs) {
    const r = await runVmsim([...args, "--budget", "60s", "--out", join(dir, "base")], { cwd: dir, timeoutMs: 90_000 });
    if (r.code !== 1) throw new Error(`vmsim ${args.join(" ")} found no failure (exit ${r.code}): ${r.stderr}`);
  }
  return readdirSync(join(dir, "base"))
    .sort()
    .map((f) => readFileSync(join(dir, "base", f), "utf8"));
}
