/**
 * KCSAN's strict rules and report filter (docs/kcsan.md#strict-rules-and-the-report-filter):
 * `--kcsan-strict` reports a race the default rules drop (no value change:
 * CONFIG_KCSAN_REPORT_VALUE_CHANGE_ONLY, or a watched plain write:
 * CONFIG_KCSAN_ASSUME_PLAIN_WRITES_ATOMIC), `--kcsan-skip-report` counts a
 * race in a listed function instead of failing the run, bad values are one
 * line and exit 2, and a strict replay file replays only with the flag.
 * Deterministic runs: the bounds leave room for schedules that move as the
 * kernel code changes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Explorer, type Outcome } from "../src/explore/explorer.js";
import { replayFileOf, writeReplayFile } from "../src/explore/replay_file.js";
import { findScenario } from "../src/explore/scenario.js";
import { type MachineConfig, makeConfig } from "../src/shared/config.js";
import { vmsim } from "./helpers/vmsim.js";

/** The pinned exploration: stress, 20 ops per CPU, the vmap_area_lock taken out (deterministic: every access watched). */
const scenario = findScenario("stress")!;
const params = { ops: 20, skip: [] };
const strategy = { kind: "random" as const, p: 0.01 };
const SEEDS = 10;
const config = (over: Partial<MachineConfig>): MachineConfig =>
  makeConfig({
    ...scenario.config,
    cpus: 2,
    memory: 8 * 1024 * 1024,
    seed: 1,
    inject: ["no-vmap-area-lock"],
    kcsan: true,
    ...over,
  });

/** Runs iteration seeds `from`..`seeds` and returns each outcome. */
async function explore(c: MachineConfig, seeds = SEEDS, from = 1): Promise<Outcome[]> {
  const ex = await Explorer.start(c, scenario);
  try {
    const out: Outcome[] = [];
    for (let s = from; s <= seeds; s++) out.push(await ex.runOnce(strategy, s, params));
    return out;
  } finally {
    await ex.close();
  }
}

const isKcsan = (o: Outcome): boolean => o.failure?.signature.startsWith("kcsan: BUG: KCSAN: data-race in ") ?? false;
/** A known-origin report without a value change: only the strict rules make one. */
const unchanged = (o: Outcome): boolean => isKcsan(o) && !o.failure!.text.includes("value changed:");

describe("--kcsan-strict (CONFIG_KCSAN_STRICT)", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-kcsan-strict-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`reports, within seeds 1..${SEEDS}, a race that left the value unchanged; the default rules never do`, async () => {
    const strict = await explore(config({ kcsanStrict: true }));
    const at = strict.findIndex(unchanged);
    expect(at, strict.map((o) => o.failure?.signature ?? "clean").join("; ")).toBeGreaterThanOrEqual(0);
    const found = strict[at]!;
    expect(found.failure!.text).toMatch(/\n {0,4}write to 0x[0-9a-f]+ of \d bytes by task \d on cpu \d:\n/);
    // The same seeds under the default rules: every KCSAN report they make shows a value change.
    const plain = await explore(config({}), at + 1);
    for (const o of plain) if (isKcsan(o)) expect(o.failure!.text).toContain("value changed:");
    expect(unchanged(plain[at]!)).toBe(false);

    // Its replay file records the rules: `vmsim replay` wants --kcsan-strict for it, and refuses it elsewhere.
    const file = join(dir, "strict.json");
    writeReplayFile(
      file,
      replayFileOf({
        config: config({ kcsanStrict: true }),
        scenario: scenario.name,
        script: undefined,
        params,
        strategy,
        seed: at + 1,
        stepCap: 50_000_000,
        outcome: found,
      }),
    );
    const refused = await vmsim("replay", "--kcsan", file);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split("\n")).toEqual([
      `vmsim: error: ${file} records a --kcsan-strict run: replay it with --kcsan-strict`,
    ]);
    const replayed = await vmsim("replay", "--kcsan", "--kcsan-strict", file);
    expect(replayed.stdout).toContain(found.failure!.signature.slice("kcsan: ".length));
    expect(replayed.code).toBe(1);
  }, 300_000);

  it("is refused by the replay of a file recorded without it", async () => {
    const file = join(dir, "default.json");
    const [o] = await explore(config({}), 1);
    writeReplayFile(
      file,
      replayFileOf({
        config: config({}),
        scenario: scenario.name,
        script: undefined,
        params,
        strategy,
        seed: 1,
        stepCap: 50_000_000,
        outcome: o!,
      }),
    );
    const refused = await vmsim("replay", "--kcsan", "--kcsan-strict", file);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split("\n")).toEqual([
      `vmsim: error: ${file} records a run without --kcsan-strict: replay it without --kcsan-strict`,
    ]);
  }, 120_000);
});

describe("--kcsan-skip-report (the debugfs report filter)", () => {
  it("suppresses a report by either access' top frame, and the run goes on past it", async () => {
    const runs = await explore(config({}));
    const seed = runs.findIndex(isKcsan) + 1;
    expect(seed, runs.map((o) => o.failure?.signature ?? "clean").join("; ")).toBeGreaterThan(0);
    const first = runs[seed - 1];
    const pair = first!.failure!.signature.slice("kcsan: BUG: KCSAN: data-race in ".length).split(" / ");
    for (const func of pair) {
      const [filtered] = await explore(config({ kcsanSkipReport: [func] }), seed, seed);
      // The same schedule, but the report that failed it is counted instead: the run goes on to its end.
      expect(filtered!.failure?.signature ?? "clean", `filter ${func}`).not.toBe(first!.failure!.signature);
      expect(filtered!.record.steps, `filter ${func}`).toBeGreaterThanOrEqual(first!.record.steps);
      if (isKcsan(filtered!)) expect(filtered!.failure!.signature).not.toContain(func);
    }
  }, 300_000);

  it("takes the debugfs spelling (!func) and names in the config; anything else is one line, exit 2", async () => {
    expect(makeConfig({ kcsan: true, kcsanSkipReport: ["vb_free", "vm_flags"] }).kcsanSkipReport).toEqual([
      "vb_free",
      "vm_flags",
    ]);
    expect(() => makeConfig({ kcsanSkipReport: ["vb-free"] })).toThrow(
      'kcsanSkipReport: "vb-free" is not a kernel function name',
    );
    for (const [args, line] of [
      [["--kcsan-skip-report", "vb free"], `"vb free" is not a kernel function name.`],
      [["--kcsan-skip-report", ""], `"" is not a kernel function name.`],
      [["--kcsan-skip-report", "vb_free,,vread"], `"" is not a kernel function name.`],
    ] as const) {
      const r = await vmsim("stress", "--kcsan", "--ops", "1", ...args);
      expect(r.code, args.join(" ")).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines, args.join(" ")).toHaveLength(1);
      expect(lines[0]).toContain(line);
      expect(r.stdout).toBe("");
    }
    const strictValue = await vmsim("stress", "--kcsan", "--kcsan-strict=yes", "--ops", "1");
    expect(strictValue.code).toBe(2);
    expect(strictValue.stderr.trim().split("\n")).toHaveLength(1);
  }, 120_000);

  it("counts what it suppressed in the stress result; the rerun command carries both flags", async () => {
    const ok = await vmsim(
      ...["stress", "--kcsan", "--kcsan-strict", "--kcsan-skip-report", "!vb_free,vread", "--ops", "200", "--json"],
    );
    expect(ok.code, ok.stderr).toBe(0);
    const summary = JSON.parse(ok.stdout) as { kcsan: Record<string, number>; rerun: string };
    expect(Object.keys(summary.kcsan)).toEqual(
      expect.arrayContaining(["filtered_reports", "unchanged_value_races", "data_races"]),
    );
    expect(summary.rerun).toContain("--kcsan-strict --kcsan-skip-report vb_free,vread");
  }, 120_000);
});
