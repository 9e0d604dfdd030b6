/**
 * Issue 9, section 1: a CPU that loops inside one kernel call ends in a
 * soft-lockup report, never in a hang, on every command that runs kernel code.
 *
 * The loop is the kernel's own: a double vfree from interrupt context queues
 * one area twice on vfree_deferred, the llist becomes a cycle, and free_work
 * walks it for ever, warning "Trying to vfree() nonexistent vm area" each time
 * round. exec, explore and replay run the three-line script that does it; run,
 * stress and test reach the same loop through `--inject double-vfree-irq`
 * (src/shared/inject.ts) on one CPU, where nothing reuses the freed page. The
 * watchdog is 1 s (`--watchdog 1s`), so each case ends within seconds.
 */
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_CPUS } from "../src/shared/config.js";
import { MAX_PENDING_REPORTS, RATELIMIT_BURST } from "../src/shared/report.js";
import { Machine, MachineError } from "../src/workers/machine.js";
import { vmsim } from "./helpers/vmsim.js";

const dir = mkdtempSync(join(tmpdir(), "vmsim-softlockup-"));
const script = (name: string, ops: object[]): string => {
  const file = join(dir, name);
  writeFileSync(file, `${ops.map((o) => JSON.stringify(o)).join("\n")}\n`);
  return file;
};

const DOUBLE_VFREE = [
  { op: "vmalloc", size: 8192, as: "a" },
  { op: "vfree", irq: true, ref: "a" },
  { op: "vfree", irq: true, ref: "a" },
];
const dbl = script("dbl.jsonl", DOUBLE_VFREE);

/** The SUMMARY line a command ends with, parsed. */
const summaryOf = (stdout: string) =>
  JSON.parse(
    stdout
      .trimEnd()
      .split("\n")
      .at(-1)!
      .replace(/^SUMMARY /, ""),
  ) as Record<string, unknown>;

/** What a free-mode report adds when the host is oversubscribed (src/sched/watchdog_clock.ts): this host may be. */
const HOST_NOTE =
  " \\(host oversubscribed: \\d+ CPUs? on \\d+ cores?, load [\\d.]+; limit scaled ×[\\d.]+ to [\\d.]+m?s\\)";

/** The soft-lockup headline of CPU 0 running `task`, free mode (monotonic clock), with the host's note if any. */
const headline = (task: string) =>
  new RegExp(`watchdog: BUG: soft lockup - CPU#0 stuck for \\d+s! \\[${task}\\](?:${HOST_NOTE})?`);

describe("vmsim exec: a double vfree from interrupt context", () => {
  it("answers every line, then the final flush_work's soft lockup goes to stderr with CPU 0's events: exit 1", async () => {
    const r = await vmsim("exec", "--watchdog", "1s", "--script", dbl);
    expect(r.code).toBe(1);
    const lines = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l["op"], l["ok"]])).toEqual([
      ["vmalloc", true],
      ["vfree", true],
      ["vfree", true],
    ]);
    const err = r.stderr.split("\n");
    // The loop's warning: a burst, then a count (printk's ratelimit); the lockup with the loop's events.
    const warn = "[CPU0] WARN: Trying to vfree() nonexistent vm area (0xffff000008000000)";
    expect(err.slice(0, RATELIMIT_BURST)).toEqual(Array(RATELIMIT_BURST).fill(warn));
    const rest = err.slice(RATELIMIT_BURST);
    expect(rest[0]).toMatch(/^\d+ callbacks suppressed$/);
    expect(rest[1]).toMatch(new RegExp(`^\\[CPU0\\] soft-lockup: ${headline("exec_op").source}$`));
    expect(rest[2]).toBe("last 16 events of CPU#0:");
    expect(rest.slice(3, 19).filter((l) => l.includes("find_vmap_area addr=0xffff000008000000"))).toHaveLength(8);
    expect(rest[19]).toMatch(/^vmsim: exec: the machine stopped: CPU0: KernelBug: watchdog: BUG: soft lockup/);
  }, 60_000);

  it("a flush_work line that loops answers ok false with the lockup; the lines after it find the machine stopped", async () => {
    const file = script("flush.jsonl", [...DOUBLE_VFREE, { op: "flush_work" }, { op: "vmallocinfo" }]);
    const r = await vmsim("exec", "--watchdog", "1s", "--script", file);
    expect(r.code).toBe(1);
    const lines = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(5);
    expect(lines[3]).toMatchObject({ op: "flush_work", ok: false, error: expect.stringMatching(headline("exec_op")) });
    const warn = "WARN: Trying to vfree() nonexistent vm area (0xffff000008000000)";
    expect(lines[3]!["reports"]).toEqual([
      ...Array(RATELIMIT_BURST - 1).fill(warn),
      expect.stringMatching(
        /^WARN: Trying to vfree\(\) nonexistent vm area \(0xffff000008000000\)\n\d+ callbacks suppressed$/,
      ),
      expect.stringMatching(new RegExp(`^soft-lockup: ${headline("exec_op").source}\nlast 16 events of CPU#0:\n`)),
    ]);
    expect(lines[4]).toMatchObject({
      op: "vmallocinfo",
      ok: false,
      error: expect.stringMatching(/^the machine has stopped/),
    });
  }, 60_000);
});

describe("vmsim exec on a machine with more CPUs than the host has cores", () => {
  // Twice the host's cores: 4 CPUs on a 2-core host (MAX_CPUS bounds it, so a host of more than 32 cores cannot).
  const cores = availableParallelism();
  const cpus = Math.min(MAX_CPUS, 2 * cores);
  it.runIf(cpus > cores)(
    `the soft lockup says the host was oversubscribed, and the limit was scaled at least ×${cpus / cores}`,
    async () => {
      const r = await vmsim("exec", "--cpus", String(cpus), "--watchdog", "1s", "--script", dbl);
      expect(r.code).toBe(1);
      const report = r.stderr.split("\n").find((l) => l.startsWith("[CPU0] soft-lockup: "));
      const note = new RegExp(
        `^\\[CPU0\\] soft-lockup: watchdog: BUG: soft lockup - CPU#0 stuck for (\\d+)s! \\[exec_op\\] ` +
          `\\(host oversubscribed: ${cpus} CPUs on ${cores} cores?, load ([\\d.]+); limit scaled ×([\\d.]+) to ([\\d.]+)s\\)$`,
      ).exec(report ?? "");
      expect(note, report).not.toBeNull();
      const [stuck, load, scale, limit] = note!.slice(1).map(Number) as [number, number, number, number];
      // The formula (src/sched/watchdog_clock.ts): 1 s × max(1, CPUs / cores, load / cores), up to a tenth
      // (the load printed to two decimals may sit a hair off the one the limit used).
      expect(scale).toBeGreaterThanOrEqual(cpus / cores);
      expect(Math.abs(scale - Math.max(cpus / cores, load / cores))).toBeLessThanOrEqual(0.11);
      expect(limit).toBe(scale);
      expect(stuck).toBeGreaterThanOrEqual(Math.floor(limit));
    },
    60_000,
  );
});

describe("vmsim explore --script / vmsim replay: the deterministic soft lockup", () => {
  it("explore finds it on its first run, writes a replay file, and replay reproduces it bit for bit: exit 1", async () => {
    const out = mkdtempSync(join(dir, "replay-"));
    const found = await vmsim("explore", "--script", dbl, "--out", out, "--json");
    expect(found.code).toBe(1);
    const summary = summaryOf(found.stdout);
    // No clock in a deterministic run: the CPU's own sched points since its last safe point are the clock.
    const verdict = "watchdog: BUG: soft lockup - CPU## stuck for # sched points! [exec_op]";
    expect(summary).toMatchObject({ found: true, failure: verdict });
    const [file] = readdirSync(out);
    const replay = await vmsim("replay", join(out, file!));
    expect(replay.code).toBe(1);
    expect(replay.stdout).toContain("= the recorded run's (bit for bit)");
    expect(replay.stdout).toContain("watchdog: BUG: soft lockup - CPU#0 stuck for 4198400 sched points! [exec_op]");
    expect(summaryOf(replay.stdout)).toMatchObject({ failure: verdict, asRecorded: true });
    // The lockup leads the failure's text, not the warning the CPU repeated on its way round.
    expect(replay.stdout).toMatch(/^FAILS: \[CPU0\] soft-lockup in \w+: watchdog: BUG: soft lockup - CPU#0 stuck/m);
  }, 120_000);
});

describe.each([
  ["run", ["--duration", "30s"], "vmalloc_mix"],
  ["stress", ["--duration", "30s"], "vmalloc_mix"],
  // kvfree_rcu_1_arg_vmalloc_test: its RCU callbacks vfree in softirq context, the deferred path.
  ["test", ["--run-test-mask", "256"], "vmalloc_test"],
])("vmsim %s --inject double-vfree-irq on 1 CPU", (command, args, task) => {
  it(`ends in the soft lockup of [${task}] within the 1 s watchdog, with its SUMMARY line: exit 1`, async () => {
    const r = await vmsim(command, "--cpus", "1", "--watchdog", "1s", "--inject", "double-vfree-irq", ...args);
    expect(r.code).toBe(1);
    expect(`${r.stdout}\n${r.stderr}`).toMatch(headline(task));
    const summary = JSON.parse(
      r.stdout
        .trimEnd()
        .split("\n")
        .at(-1)!
        .replace(/^SUMMARY /, ""),
    ) as { ok: boolean };
    expect(summary.ok).toBe(false);
  }, 60_000);
});

describe("the soft-lockup watchdog and printk's ratelimit, on the library API", () => {
  let m: Machine | null = null;
  afterEach(async () => {
    await m?.shutdown();
    m = null;
  });

  it("a CPU looping in free_work stops the machine; its repeated warning is a burst, then a count", async () => {
    m = await Machine.boot({ cpus: 1, memory: 8 * 1024 * 1024, workqueue: "explicit", watchdogMs: 300 });
    const addr = (await m.run(0, "exec_op", { op: "vmalloc", size: 8192, align: null, irq: false })) as {
      addr: number;
    };
    for (let i = 0; i < 2; i++) await m.run(0, "exec_op", { op: "vfree", addr: addr.addr, irq: true, held: null });
    const err = await m.run(0, "exec_op", { op: "flush_work", irq: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MachineError);
    expect((err as MachineError).message).toMatch(
      // 300 ms, or more on a busy host: the limit scales with the host's load.
      /^CPU0: KernelBug: watchdog: BUG: soft lockup - CPU#0 stuck for \d+m?s! \[exec_op\]/,
    );
    expect(m.stopped).toBe(true);
    expect(m.reports.map((r) => r.kind)).toEqual([...Array(RATELIMIT_BURST).fill("WARN"), "soft-lockup"]);
    const last = m.reports[RATELIMIT_BURST - 1]!;
    expect(last.suppressed).toBeGreaterThan(0);
    expect(last.text).toBe(
      `Trying to vfree() nonexistent vm area (0xffff000008000000)\n${last.suppressed} callbacks suppressed`,
    );
  }, 30_000);

  it("keeps a burst of identical reports and counts the rest, and keeps at most MAX_PENDING_REPORTS", async () => {
    m = await Machine.boot({ cpus: 1, memory: 8 * 1024 * 1024 });
    await m.run(0, "warn_flood", { times: 1000, distinct: 3 });
    // Each text: a burst of RATELIMIT_BURST copies, the last counting the rest (334 + 333 + 333 warnings).
    expect(m.reports).toHaveLength(3 * RATELIMIT_BURST);
    expect(m.reports.filter((r) => r.suppressed !== undefined).map((r) => [r.text, r.suppressed])).toEqual([
      ["selftest warning 0\n324 callbacks suppressed", 324],
      ["selftest warning 1\n323 callbacks suppressed", 323],
      ["selftest warning 2\n323 callbacks suppressed", 323],
    ]);
    m.reports.length = 0;
    await m.run(0, "warn_flood", { times: MAX_PENDING_REPORTS + 10, distinct: MAX_PENDING_REPORTS + 10 });
    expect(m.reports).toHaveLength(MAX_PENDING_REPORTS + 1);
    expect(m.reports.at(-1)).toMatchObject({ kind: "WARN", text: "printk: 10 messages suppressed", suppressed: 9 });
  }, 30_000);
});
