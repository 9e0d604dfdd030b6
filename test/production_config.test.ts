/**
 * The production configuration (issue 11): `vmsim test --mode performance`
 * and `vmsim bench` boot as the kernel's performance runs do — lockdep,
 * slub_debug and tracing off, said in the header — and flags turn each back
 * on; every command that boots a machine takes --no-slub-debug beside
 * --no-lockdep, and the setting is recorded where lockdep's is.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_CONFIG, makeConfig } from "../src/shared/config.js";
import { readReplayFile } from "../src/explore/replay_file.js";
import { vmsim } from "./helpers/vmsim.js";

/** The SUMMARY line's object. */
function summaryOf(stdout: string) {
  const line = stdout.split("\n").find((l) => l.startsWith("SUMMARY "));
  if (line === undefined) throw new Error(`no SUMMARY line in:\n${stdout}`);
  return JSON.parse(line.slice("SUMMARY ".length));
}

/** The header line: "vmsim: kernel …". */
const headerOf = (stdout: string) => stdout.split("\n").find((l) => l.startsWith("vmsim: kernel ")) ?? "";

const FIX_SIZE = ["--cpus", "1", "--run-test-mask", "0x1", "--test-loop-count", "200"];

describe("vmsim test: the mode decides the debugging, flags override it", () => {
  it.each([
    [[], "lockdep off, slub_debug off", false, false, ""],
    [["--lockdep"], "lockdep on, slub_debug off", true, false, " --lockdep"],
    [["--slub-debug", "--lockdep"], "lockdep on, slub_debug on", true, true, " --lockdep --slub-debug"],
  ] as const)("--mode performance %j boots %s", async (flags, said, lockdep, slubDebug, rerunFlags) => {
    const r = await vmsim("test", "--mode", "performance", ...FIX_SIZE, ...flags);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(headerOf(r.stdout)).toContain(`, ${said}, tracing off, `);
    const s = summaryOf(r.stdout);
    expect(s).toMatchObject({ mode: "performance", lockdep, slubDebug, trace: 0 });
    // The rerun names what differs from the mode's defaults, so it boots the same machine.
    expect(s.rerun).toBe(
      `vmsim test --cpus 1${rerunFlags} --test-loop-count 200 --run-test-mask 0x1 --mode performance`,
    );
  });

  it("the other modes keep lockdep and slub_debug on; --no-slub-debug turns slub_debug off", async () => {
    const on = await vmsim("test", "--mode", "smoke", ...FIX_SIZE);
    expect(headerOf(on.stdout)).toContain(", lockdep on, slub_debug on, tracing off, ");
    expect(summaryOf(on.stdout)).toMatchObject({ lockdep: true, slubDebug: true });
    const off = await vmsim("test", "--mode", "smoke", "--no-slub-debug", ...FIX_SIZE);
    expect(off.code).toBe(0);
    expect(headerOf(off.stdout)).toContain(", lockdep on, slub_debug off, tracing off, ");
    const s = summaryOf(off.stdout);
    expect(s.slubDebug).toBe(false);
    expect(s.rerun).toBe("vmsim test --cpus 1 --no-slub-debug --test-loop-count 200 --run-test-mask 0x1 --mode smoke");
  });

  it("--trace-buffer says tracing on in the header", async () => {
    const r = await vmsim("test", "--mode", "performance", "--trace-buffer", "64", ...FIX_SIZE);
    expect(r.code).toBe(0);
    expect(headerOf(r.stdout)).toContain(", lockdep off, slub_debug off, tracing on (64 events per CPU), ");
    expect(summaryOf(r.stdout).trace).toBe(64);
  });
});

describe("--no-slub-debug beside --no-lockdep", () => {
  it.each(["info", "run", "stress", "exec", "map", "test", "explore"])("vmsim %s --help has both", async (command) => {
    const r = await vmsim(command, "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {2}--no-lockdep /m);
    expect(r.stdout).toMatch(/^ {2}--no-slub-debug /m);
  });

  it("vmsim bench (production by default) has --lockdep, --slub-debug and --trace-buffer to turn them on", async () => {
    const r = await vmsim("bench", "--help");
    for (const flag of ["--lockdep", "--slub-debug", "--trace-buffer <events>"])
      expect(r.stdout).toMatch(new RegExp(`^ {2}${flag} `, "m"));
    expect(r.stdout).not.toMatch(/--no-slub-debug/);
  });

  it("vmsim info says slub_debug off; the machine's addresses do not change with it", async () => {
    const on = await vmsim("info");
    const off = await vmsim("info", "--no-slub-debug");
    expect(headerOf(on.stdout)).toContain(", lockdep on, slub_debug on, tracing off, ");
    expect(headerOf(off.stdout)).toContain(", lockdep on, slub_debug off, tracing off, ");
    const rest = (s: string) => s.split("\n").slice(1).join("\n");
    expect(rest(off.stdout)).toBe(rest(on.stdout));
  });

  it("vmsim exec gives the same results, address for address, without slub_debug and lockdep", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmsim-prodconf-"));
    try {
      const script = join(dir, "s.jsonl");
      writeFileSync(
        script,
        [
          { op: "vmalloc", size: 8192, as: "a" },
          { op: "vmalloc", size: 4096 * 5, as: "b" },
          { op: "vfree", ref: "a" },
          { op: "vmalloc", size: 4096, as: "c" },
          { op: "vfree", ref: "b" },
          { op: "vfree", ref: "c" },
          { op: "vmallocinfo" },
        ]
          .map((l) => JSON.stringify(l))
          .join("\n"),
      );
      const debug = await vmsim("exec", "--script", script);
      const prod = await vmsim("exec", "--script", script, "--no-slub-debug", "--no-lockdep");
      expect(debug.code).toBe(0);
      expect(prod.stderr).toBe("");
      expect(prod.stdout).toBe(debug.stdout);
      expect(debug.stdout).toMatch(/"addr"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("slub_debug in the machine config and the replay file", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-prodconf-replay-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is on by default and must be a boolean", () => {
    expect(DEFAULT_CONFIG.slubDebug).toBe(true);
    expect(makeConfig({ slubDebug: false }).slubDebug).toBe(false);
    expect(() => makeConfig({ slubDebug: "no" as unknown as boolean })).toThrow(
      'slubDebug must be true or false, got "no"',
    );
  });

  it("explore records it; the file replays bit for bit; a file without it replays with slub_debug on", async () => {
    const found = await vmsim(
      "explore",
      ...["--script", "docs/examples/race.jsonl", "--inject", "no-vmap-area-lock"],
      ...["--strategy", "exhaustive", "--bound", "1", "--no-slub-debug", "--out", dir],
    );
    expect(found.code).toBe(1);
    const file = join(dir, readdirSync(dir).find((f) => f.endsWith(".json"))!);
    expect(readReplayFile(file).config.slubDebug).toBe(false);
    const replayed = await vmsim("replay", file);
    expect(replayed.code).toBe(1);
    expect(summaryOf(replayed.stdout)).toMatchObject({ asRecorded: true, bitForBit: true });

    // A file written before the flag existed: today's default, slub_debug on.
    const old = JSON.parse(readFileSync(file, "utf8"));
    delete old.config.slubDebug;
    const oldFile = join(dir, "old.json.txt");
    writeFileSync(oldFile, JSON.stringify(old));
    expect(readReplayFile(oldFile).config.slubDebug).toBe(true);
  });
});
