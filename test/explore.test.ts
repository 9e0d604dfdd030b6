/**
 * The deterministic scheduler end to end: a recorded run replays bit for bit
 * (same decisions, results and event rings), a tampered recording diverges
 * loudly, the scheduler's deadlock and livelock verdicts, every strategy
 * finds the demo races, bounded exhaustive search ends, shrinking keeps the
 * failure while cutting CPUs, operations and preemptions, and the CLI's
 * explore → replay → shrink round trip. Every run is seeded: the seeds are in
 * the test names.
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { explore } from "../src/explore/explore.js";
import { Explorer } from "../src/explore/explorer.js";
import {
  REPLAY_FORMAT,
  REPLAY_VERSION,
  type ReplayFile,
  decodeDecisions,
  encodeDecisions,
  readReplayFile,
  replayFileOf,
} from "../src/explore/replay_file.js";
import { findScenario } from "../src/explore/scenario.js";
import { type Candidate, ShrinkNotReplayed, confirmShrunk, shrink } from "../src/explore/shrink.js";
import { WHY_DUE } from "../src/sched/sched_det.js";
import { kernelCallChain } from "../src/shared/report.js";
import { vmsim } from "./helpers/vmsim.js";

const MEMORY = 8 * 1024 * 1024;

function scenario(name: string) {
  const s = findScenario(name);
  if (s === undefined) throw new Error(`no scenario ${name}`);
  return s;
}

describe("record and replay (stress scenario, 2 CPUs, machine seed 3)", () => {
  let ex: Explorer;
  beforeAll(async () => {
    const s = scenario("stress");
    ex = await Explorer.start(makeConfig({ ...s.config, cpus: 2, memory: MEMORY, seed: 3 }), s);
  });
  afterAll(async () => ex.close());

  it("a random-strategy run (p 0.01, sched seed 7) replays bit for bit, twice", async () => {
    const params = { ops: 40, skip: [] };
    const rec = await ex.runOnce({ kind: "random", p: 0.01 }, 7, params);
    expect(rec.failure).toBeNull();
    expect(rec.record.switches).toBeGreaterThan(5);
    const plan = rec.record.decisions;
    for (let i = 0; i < 2; i++) {
      const rep = await ex.runOnce({ kind: "replay", plan }, 7, params);
      expect(rep.failure).toBeNull();
      expect(rep.digest).toBe(rec.digest);
      expect(rep.record.steps).toBe(rec.record.steps);
      expect(rep.record.decisions).toEqual(plan);
    }
  });

  it("a recording followed as a plan anchored in each CPU's progress (the shrinker's) reproduces the run", async () => {
    const params = { ops: 30, skip: [] };
    for (const p of [0.005, 0.02]) {
      const rec = await ex.runOnce({ kind: "random", p }, 13, params);
      const local = await ex.runOnce({ kind: "local", plan: rec.record.decisions }, 13, params);
      expect(local.record.decisions).toEqual(rec.record.decisions);
      expect(local.digest).toBe(rec.digest);
    }
  });

  it("a tampered recording stops at the first divergence, naming expected and actual runnable CPUs", async () => {
    const params = { ops: 20, skip: [] };
    const rec = await ex.runOnce({ kind: "random", p: 0.02 }, 11, params);
    const plan = rec.record.decisions.map((d) => ({ ...d }));
    const i = plan.findIndex((d, k) => k > 1 && d.why === WHY_DUE);
    expect(i).toBeGreaterThan(0);
    plan[i] = { ...plan[i]!, step: plan[i]!.step + 1 };
    const rep = await ex.runOnce({ kind: "replay", plan }, 11, params);
    expect(rep.failure?.kind).toBe("diverged");
    expect(rep.failure?.text).toMatch(
      /replay diverged at step \d+ on CPU\d .*expected decision \d+: .*actual runnable \{/,
    );
  });

  it("a run past its step cap is a livelock verdict", async () => {
    const out = await ex.runOnce({ kind: "pct", depth: 2, steps: 1000 }, 1, { ops: 20, skip: [] }, 500);
    expect(out.failure?.kind).toBe("livelock");
  });

  it("the compact decision encoding round-trips", async () => {
    const rec = await ex.runOnce({ kind: "random", p: 0.02 }, 5, { ops: 10, skip: [] });
    expect(decodeDecisions(encodeDecisions(rec.record.decisions))).toEqual(rec.record.decisions);
  });
});

describe("strategies find the demo races (2 CPUs, machine seed 1, sched seeds from 1)", () => {
  const cases = [
    ["demo:lost-update", "report"],
    ["demo:abba", "deadlock"],
  ] as const;
  for (const [name, kind] of cases)
    for (const strategy of ["pct", "random", "rr", "exhaustive", "portfolio"] as const)
      it(`${name} by ${strategy}`, async () => {
        const s = scenario(name);
        const ex = await Explorer.start(makeConfig({ ...s.config, cpus: 2, memory: MEMORY, seed: 1 }), s);
        try {
          const st = await explore(
            ex,
            { ops: 2, skip: [] },
            { strategy, depth: 2, p: 0.1, quantum: 1, bound: 2, budgetMs: 20_000, iterations: 400, seed: 1 },
          );
          expect(st.found?.outcome.failure?.kind).toBe(kind);
        } finally {
          await ex.close();
        }
      });

  it("the deadlock verdict names each CPU's lock and its holder", async () => {
    const s = scenario("demo:abba");
    const ex = await Explorer.start(makeConfig({ ...s.config, cpus: 2, memory: MEMORY, seed: 1 }), s);
    try {
      const st = await explore(ex, { ops: 1, skip: [] }, { ...baseOptions, strategy: "exhaustive", bound: 1 });
      const text = st.found?.outcome.failure?.text ?? "";
      expect(text).toMatch(/CPU#0 waits for demo_lock_b, held by CPU#1/);
      expect(text).toMatch(/CPU#1 waits for demo_lock_a, held by CPU#0/);
    } finally {
      await ex.close();
    }
  });

  it("a found deadlock (pct, sched seed 1) replays bit for bit, and shrinking it confirms by a strict replay", async () => {
    const s = scenario("demo:abba");
    const config = makeConfig({ ...s.config, cpus: 2, memory: MEMORY, seed: 1 });
    const ex = await Explorer.start(config, s);
    let file: ReplayFile;
    try {
      const st = await explore(ex, { ops: 2, skip: [] }, { ...baseOptions, strategy: "pct", depth: 3 });
      const f = st.found!;
      expect(f.outcome.failure?.kind).toBe("deadlock");
      // A deadlock is never logged: the replay runs out of recorded decisions exactly where nobody can run.
      const rep = await ex.runOnce({ kind: "replay", plan: f.outcome.record.decisions }, f.seed, { ops: 2, skip: [] });
      expect(rep.failure?.kind).toBe("deadlock");
      expect(rep.digest).toBe(f.outcome.digest);
      file = replayFileOf({
        config,
        scenario: s.name,
        script: undefined,
        params: { ops: 2, skip: [] },
        strategy: f.strategy,
        seed: f.seed,
        stepCap: 1e6,
        outcome: f.outcome,
      });
    } finally {
      await ex.close();
    }
    const r = await shrink(file, 20_000);
    expect(r.unreplayed).toBeNull();
    expect(r.outcome.failure?.kind).toBe("deadlock");
    expect(r.file.scenario.ops).toBe(1);
  });

  it("exhaustive search with bound 0 runs one schedule of a bug-free run and says it is done", async () => {
    const s = scenario("demo:lost-update");
    const ex = await Explorer.start(makeConfig({ ...s.config, cpus: 1, memory: MEMORY, seed: 1 }), s);
    try {
      const st = await explore(ex, { ops: 3, skip: [] }, { ...baseOptions, strategy: "exhaustive", bound: 0 });
      expect(st.found).toBeNull();
      expect(st.exhausted).toBe(true);
      expect(st.distinct).toBe(1);
    } finally {
      await ex.close();
    }
  });

  it("exhaustive search with bound 1 finds the lost update of 2 CPUs with exactly one preemption", async () => {
    const s = scenario("demo:lost-update");
    const ex = await Explorer.start(makeConfig({ ...s.config, cpus: 2, memory: MEMORY, seed: 1 }), s);
    try {
      const st = await explore(ex, { ops: 1, skip: [] }, { ...baseOptions, strategy: "exhaustive", bound: 1 });
      expect(st.found?.outcome.record.preemptions).toBe(1);
    } finally {
      await ex.close();
    }
  });
});

const baseOptions = {
  strategy: "pct",
  depth: 3,
  p: 0.05,
  quantum: 1,
  bound: 2,
  budgetMs: 20_000,
  iterations: 2000,
  seed: 1,
} as const;

describe("shrinking (demo:lost-update, 3 CPUs, 4 ops each, machine seed 1)", () => {
  it("keeps the lost update while cutting CPUs, operations and preemptions; the result replays", async () => {
    const s = scenario("demo:lost-update");
    const config = makeConfig({ ...s.config, cpus: 3, memory: MEMORY, seed: 1 });
    const ex = await Explorer.start(config, s);
    let file: ReplayFile;
    try {
      const st = await explore(ex, { ops: 4, skip: [] }, { ...baseOptions, strategy: "random", p: 0.3 });
      const f = st.found!;
      expect(f.outcome.failure?.kind).toBe("report");
      file = {
        format: REPLAY_FORMAT,
        version: REPLAY_VERSION,
        vmsim: "test",
        config,
        scenario: { name: s.name, ops: 4, skip: [] },
        strategy: f.strategy,
        seed: f.seed,
        stepCap: 1e6,
        steps: f.outcome.record.steps,
        switches: f.outcome.record.switches,
        preemptions: f.outcome.record.preemptions,
        decisions: encodeDecisions(f.outcome.record.decisions),
        failure: f.outcome.failure,
        digest: f.outcome.digest,
      };
    } finally {
      await ex.close();
    }
    const r = await shrink(file, 20_000);
    expect(r.file.failure?.signature).toBe(file.failure?.signature);
    expect(r.file.config.cpus).toBe(2);
    expect(r.file.scenario.ops - Math.min(...r.file.scenario.skip.map((x) => x.length))).toBeLessThanOrEqual(1);
    expect(r.file.preemptions).toBeLessThanOrEqual(file.preemptions);
    expect(r.file.preemptions).toBe(1);
  });
});

describe("confirming a shrink (demo:lost-update, 2 CPUs, 2 ops each, machine seed 1, pct sched seed 1)", () => {
  const s = scenario("demo:lost-update");
  const config = makeConfig({ ...s.config, cpus: 2, memory: MEMORY, seed: 1 });
  let ex: Explorer;
  let file: ReplayFile;
  let real: Candidate;
  let broken: Candidate;
  beforeAll(async () => {
    ex = await Explorer.start(config, s);
    const params = { ops: 2, skip: [[], []] };
    const f = (await explore(ex, params, baseOptions)).found!;
    file = replayFileOf({
      config,
      scenario: s.name,
      script: undefined,
      params,
      strategy: f.strategy,
      seed: f.seed,
      stepCap: 1e6,
      outcome: f.outcome,
    });
    real = { cpus: 2, ops: 2, skip: [[], []], plan: f.outcome.record.decisions };
    // A plan whose first switch names a runnable set the run never has: its strict replay diverges there.
    const [start, ...rest] = real.plan;
    broken = { ...real, plan: [{ ...start!, mask: start!.mask ^ 0b100 }, ...rest] };
  });
  afterAll(async () => ex.close());

  it("a smallest run that does not replay falls back on the last kept run that does, and says what it did", async () => {
    const c = await confirmShrunk(async () => ex, file, [real, broken]);
    expect(c.candidate).toBe(real);
    expect(c.outcome.failure?.signature).toBe(file.failure?.signature);
    expect(c.unreplayed).toMatch(/^diverged: .*replay diverged at step 0 on CPU\d \(start\)/);
    expect(c.runs).toBe(2);
  });

  it("no kept run replaying is a ShrinkNotReplayed error naming what the smallest did", async () => {
    await expect(confirmShrunk(async () => ex, file, [broken])).rejects.toThrow(ShrinkNotReplayed);
    await expect(confirmShrunk(async () => ex, file, [broken])).rejects.toThrow(
      /^none of the 1 runs the shrinker kept replays as recorded \(the smallest: diverged: .*\): a nondeterminism bug in vmsim$/,
    );
  });
});

describe("the CLI round trip: vmsim explore → replay → shrink", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-explore-"));

  it("explore finds the lost update, writes a replay file and prints the command that replays it", async () => {
    const r = await vmsim("explore", "--scenario", "demo:lost-update", "--budget", "20s", "--out", dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^pct: n = 2 CPUs, k = \d+ steps .*1\/\(n·k\^\(d−1\)\) = /m);
    expect(r.stdout).toMatch(/^FOUND on run \d+ \(pct d=3/m);
    const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
    expect(files).toHaveLength(1);
    expect(r.stdout).toContain(`replay it:   vmsim replay ${join(dir, files[0]!)}`);
    expect(r.stdout).toMatch(
      /^result: FAILED \(report: \[CPU\d\] WARN: WARNING: lost update: counter is \d+, expected \d+ \(2 CPUs\), on run \d+; replay file .*\.json\)\nSUMMARY /m,
    );
    const summary = JSON.parse(/^SUMMARY (.*)$/m.exec(r.stdout)![1]!);
    expect(summary).toMatchObject({ command: "explore", ok: false, found: true, scenario: "demo:lost-update" });
    expect(readReplayFile(join(dir, files[0]!)).failure?.kind).toBe("report");
  });

  it("replay reproduces it bit for bit, and --check-determinism agrees", async () => {
    const file = join(dir, readdirSync(dir).find((f) => f.endsWith(".json"))!);
    const r = await vmsim("replay", file, "--check-determinism", "--timeline");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^FAILS: \[CPU\d\] WARN: WARNING: lost update: counter is \d+, expected \d+ .*\(as recorded\)$/m,
    );
    expect(r.stdout).toMatch(/^signature: WARN: WARNING: lost update: counter is #, expected # \(# CPUs\)$/m);
    expect(r.stdout).toMatch(/= the recorded run's \(bit for bit\)/);
    expect(r.stdout).toMatch(/^determinism: second replay digest \w+ = first/m);
    expect(r.stdout).toMatch(/^ +\d+ +CPU\d +preempts CPU\d/m);
    expect(r.stdout).toMatch(/^result: FAILED \(report: .*lost update.*, as recorded, bit for bit\)\nSUMMARY /m);
    expect(JSON.parse(/^SUMMARY (.*)$/m.exec(r.stdout)![1]!)).toMatchObject({ command: "replay", ok: false });
  });

  it("shrink writes FILE.min.json with one preemption, and it replays", async () => {
    const file = join(dir, readdirSync(dir).find((f) => f.endsWith(".json") && !f.endsWith(".min.json"))!);
    const r = await vmsim("shrink", file, "--budget", "30s");
    expect(r.code).toBe(1);
    const summary = JSON.parse(/^SUMMARY (.*)$/m.exec(r.stdout)![1]!);
    expect(summary).toMatchObject({ command: "shrink", ok: false, preemptions: 1 });
    expect(r.stdout).toMatch(/^result: FAILED \(the shrunk run still fails: report: .*lost update.*\)\nSUMMARY /m);
    const min = file.replace(/\.json$/, ".min.json");
    expect(summary.file).toBe(min);
    const again = await vmsim("replay", min);
    expect(again.stdout).toMatch(/bit for bit/);
  });

  it("a deadlock explore finds (demo:abba, pct sched seed 1) shrinks to a file that replays bit for bit", async () => {
    const out = join(dir, "abba");
    expect((await vmsim("explore", "--scenario", "demo:abba", "--out", out)).code).toBe(1);
    const file = join(out, readdirSync(out)[0]!);
    const r = await vmsim("shrink", file, "--budget", "30s");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^result: FAILED \(the shrunk run still fails: deadlock: .*no CPU can run\)\nSUMMARY /m);
    const summary = JSON.parse(/^SUMMARY (.*)$/m.exec(r.stdout)![1]!);
    expect(summary).toMatchObject({ command: "shrink", ok: false, replayed: true, ops: 1 });
    const again = await vmsim("replay", summary.file);
    expect(again.stdout).toMatch(/^result: FAILED \(deadlock: .*, as recorded, bit for bit\)$/m);
  });

  it("--script runs each CPU's op-script lines at once; bounded exhaustive search covers every schedule and ends", async () => {
    const script = join(dir, "race.jsonl");
    writeFileSync(
      script,
      [
        { op: "vmalloc", size: 8192, as: "a", cpu: 0 },
        { op: "vmalloc", size: 4096, as: "b", cpu: 1 },
        { op: "vfree", ref: "a", cpu: 0 },
        { op: "vfree", ref: "b", cpu: 1 },
      ]
        .map((l) => JSON.stringify(l))
        .join("\n"),
    );
    const r = await vmsim("explore", "--script", script, "--strategy", "exhaustive", "--bound", "1", "--out", dir);
    expect(r.code).toBe(0);
    const summary = JSON.parse(/^SUMMARY (.*)$/m.exec(r.stdout)![1]!);
    expect(summary).toMatchObject({ scenario: "script", ok: true, exhausted: true, found: false });
    expect(r.stdout).toMatch(/^result: ok \(no failure in \d+ runs, every schedule within the bound explored\)$/m);
    expect(summary.distinct).toBeGreaterThan(5);
  });

  it("--jobs 2 runs two explorations on machines of their own and reports the first failure", async () => {
    const out = join(dir, "jobs");
    const r = await vmsim("explore", "--scenario", "demo:lost-update", "--jobs", "2", "--budget", "20s", "--out", out);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/2 jobs/);
    expect(r.stdout).toMatch(/^FOUND on run \d+ of job [12] /m);
    // Both jobs start with the same non-preemptive schedule: counted once.
    const summary = JSON.parse(/^SUMMARY (.*)$/m.exec(r.stdout)![1]!);
    expect(summary.distinct).toBeLessThanOrEqual(summary.runs);
    expect(readdirSync(out).filter((f) => f.endsWith(".json"))).toHaveLength(1);
  });

  it("test_vmalloc scenarios: align_shift's expected warnings are no failure, pcpu_alloc gets the memory it needs", async () => {
    const shift = await vmsim(
      "explore",
      "--scenario",
      "test_vmalloc:align_shift_alloc_test",
      "--ops",
      "2",
      "--iterations",
      "3",
    );
    expect(shift.code).toBe(0);
    // --iterations 3: the non-preemptive run and 3 more.
    expect(shift.stdout).toMatch(/^result: ok \(no failure in 4 runs\)$/m);
    const pcpu = await vmsim(
      "explore",
      "--scenario",
      "test_vmalloc:pcpu_alloc_test",
      "--ops",
      "2",
      "--iterations",
      "1",
    );
    expect(pcpu.code).toBe(0);
    expect(pcpu.stdout).toMatch(
      /^vmsim explore: scenario test_vmalloc:pcpu_alloc_test \(2 ops per CPU\), 2 CPUs, 224 MiB,/m,
    );
  });

  it("a replay file edited out of what explore accepts is refused on read, naming the field (found by fuzzing)", async () => {
    const file = join(dir, readdirSync(dir).find((f) => f.endsWith(".json") && !f.endsWith(".min.json"))!);
    const good: unknown = JSON.parse(readFileSync(file, "utf8"));
    type Fields = Record<string, unknown> & { config: Record<string, unknown>; scenario: Record<string, unknown> };
    const edited = (edit: (f: Fields) => void) => {
      const f = structuredClone(good) as Fields;
      edit(f);
      const path = join(dir, "edited.json.txt");
      writeFileSync(path, JSON.stringify(f));
      return path;
    };
    const refusals: [(f: Fields) => void, string][] = [
      [(f) => (f.config.layout = "toString"), "unknown layout toString"],
      [(f) => (f.config.inject = 1), "inject must be a list of injection names, got 1"],
      [(f) => (f.config.lockdep = "yes"), 'lockdep must be true or false, got "yes"'],
      [(f) => (f.config.watchdogMs = 0), "watchdogMs must be a positive integer (milliseconds), got 0"],
      [(f) => (f.scenario.ops = 1.5), "scenario.ops must be an integer in 1..1000000, got 1.5"],
      [(f) => (f.scenario.skip = [[-1]]), "scenario.skip must be one list of operation numbers (0..1) per CPU"],
      [(f) => (f.scenario.name = "nope"), "unknown scenario nope; expected one of"],
      [
        (f) => (f.scenario.script = [[{ op: "vmalloc", size: 4096, cpu: 1 }]]),
        `CPU 0's script line 1: it says "cpu": 1`,
      ],
      [(f) => (f["strategy"] = { kind: "pct" }), "strategy must be one of random, pct, rr, exhaustive, shrunk"],
      [(f) => (f["stepCap"] = 0), "stepCap must be an integer in 1..2000000000, got 0"],
      [(f) => (f["decisions"] = "0.5.3.0.-"), "decision at step 0 names CPU 5 or mask 11 of a 2-CPU machine"],
      [(f) => (f["failure"] = { kind: "bug" }), "failure must be null or {kind"],
      [(f) => (f["vmsim"] = 1), '"vmsim" must be a version string, got 1'],
    ];
    for (const [edit, message] of refusals) expect(() => readReplayFile(edited(edit))).toThrow(message);
    // The case: more CPUs than deterministic mode covers ended in a RangeError stack trace from schedSetup.
    const cpus65 = edited((f) => (f.config.cpus = 65));
    for (const command of ["replay", "shrink"]) {
      const r = await vmsim(command, cpus65);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`vmsim: error: ${cpus65}: cpus must be an integer in 1..64, got 65\n`);
    }
  });

  it("bad input is one line and exit 2", async () => {
    for (const args of [
      ["explore", "--scenario", "nope"],
      ["explore", "--strategy", "dfs"],
      ["explore", "--cpus", "65"],
      ["replay", join(dir, "missing.json")],
      ["shrink", join(dir, "missing.json")],
      ["explore", "--script", join(dir, "missing.jsonl")],
      ["explore", "--script", join(dir, "race.jsonl"), "--scenario", "stress"],
      // Where the replay file would go is checked before the run, not when it found a failure.
      ["explore", "--scenario", "demo:abba", "--out", join(dir, "race.jsonl", "sub")],
      ["explore", "--scenario", "demo:abba", "--trace", join(dir, "missing", "t.json")],
      ["shrink", join(dir, "missing.json"), "--out", dir],
    ]) {
      const r = await vmsim(...args);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});

describe("what explore says when it finds a failure", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-found-"));

  it("the vmallocinfo race (catalog, pct seed 1): the real first failure, its function and call trace, once with its count, the signature apart", async () => {
    const r = await vmsim(
      ...["explore", "--scenario", "catalog:vmallocinfo", "--inject", "vmallocinfo-uninitialized", "--ops", "8"],
      ...["--strategy", "pct", "--depth", "2", "--out", dir],
    );
    expect(r.code).toBe(1);
    const found = /^FOUND on run \d+ \(pct d=2 k=\d+, sched seed \d+\): (.*)$/m.exec(r.stdout)?.[1];
    // The address as the oops printed it, not the signature's blotted #x….
    expect(found).toMatch(
      /^\[CPU1\] fault in show_numa_info \(\d+ times\): Unable to handle kernel NULL pointer dereference at virtual address 0x0000000000000000$/,
    );
    expect(r.stdout).toMatch(/^ {6}call trace: show_numa_info ← s_show ← vmallocinfo$/m);
    // Once in the report, once where the timeline ends.
    const report = r.stdout.slice(0, r.stdout.indexOf("replay file:"));
    expect(report.match(/Unable to handle kernel NULL pointer dereference at virtual address 0x0/g)).toHaveLength(1);
    expect(r.stdout).toMatch(/^ +\d+ {2}FAILS: \[CPU1\] fault in show_numa_info \(\d+ times\): Unable to handle/m);
    expect(r.stdout).toMatch(
      /^signature: fault: Unable to handle kernel NULL pointer dereference at virtual address #x… \(what runs of the same bug share\)$/m,
    );
    const summary = JSON.parse(/^SUMMARY (.*)$/m.exec(r.stdout)![1]!);
    expect(summary.failure).toBe("fault: Unable to handle kernel NULL pointer dereference at virtual address #x…");
    const file = readReplayFile(join(dir, readdirSync(dir).find((f) => f.endsWith(".json"))!));
    expect(file.failure?.where).toEqual(["show_numa_info", "s_show", "vmallocinfo"]);
  });

  it("runs, distinct schedules and the preemption histogram count the same runs, the non-preemptive one included", async () => {
    // One CPU has one schedule: 1 + 5 runs, 1 distinct schedule.
    const one = await vmsim(
      ...["explore", "--scenario", "demo:lost-update", "--cpus", "1", "--strategy", "random", "--iterations", "5"],
    );
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^runs: 6 in [\d.]+ s \([\d.]+ runs\/s\), 1 distinct schedule$/m);
    expect(one.stdout).toMatch(/^preemptions per run: 0: 6$/m);
    for (const args of [
      ["--scenario", "demo:lost-update", "--strategy", "random", "--p", "0.3", "--iterations", "40", "--ops", "1"],
      ["--scenario", "demo:lost-update", "--strategy", "exhaustive", "--bound", "2", "--ops", "1", "--cpus", "3"],
    ]) {
      const r = await vmsim("explore", ...args, "--out", dir);
      const runs = Number(/^runs: ([\d,]+) in/m.exec(r.stdout)![1]!.replace(/,/g, ""));
      const distinct = Number(/, ([\d,]+) distinct schedules?/m.exec(r.stdout)![1]!.replace(/,/g, ""));
      const histogram = /^preemptions per run: (.*)$/m
        .exec(r.stdout)![1]!
        .split(", ")
        .reduce((a, x) => a + Number(x.split(": ")[1]!.replace(/,/g, "")), 0);
      expect(distinct, args.join(" ")).toBeLessThanOrEqual(runs);
      expect(histogram, args.join(" ")).toBe(runs);
      const summary = JSON.parse(/^SUMMARY (.*)$/m.exec(r.stdout)![1]!);
      expect(summary).toMatchObject({ runs, distinct });
      const found = /^FOUND on run (\d+) /m.exec(r.stdout);
      if (found) expect(Number(found[1])).toBe(runs);
    }
  });
});

describe("kernelCallChain", () => {
  const stack = [
    "Error",
    "    at nullPointerOops (file:///x/dist/src/mm/vmalloc.js:1528:5)",
    "    at show_numa_info (file:///x/dist/src/mm/vmalloc.js:1520:20)",
    "    at s_show (file:///x/dist/src/mm/vmalloc.js:1566:17)",
    "    at vmallocinfo (file:///x/dist/src/mm/vmalloc.js:1581:20)",
    "    at file:///x/dist/src/workers/workloads/catalog.js:147:18",
    "    at forEachOp (file:///x/dist/src/workers/workloads/catalog.js:31:13)",
    "    at Object.run (file:///x/dist/src/workers/cpu.js:45:27)",
    "    at callback (file:///x/node_modules/comlink/dist/esm/comlink.mjs:103:48)",
  ].join("\n");

  it("keeps the kernel-named frames from the failing function up to the workload, innermost first", () => {
    expect(kernelCallChain(stack)).toEqual(["show_numa_info", "s_show", "vmallocinfo"]);
  });

  it("skips the scheduler's frames before the kernel's, and has nothing to say about a workload's own access", () => {
    const spin = [
      "Error",
      "    at livelock (file:///x/src/sched/sched_det.ts:120:5)",
      "    at decide (file:///x/src/sched/sched_det.ts:400:5)",
      "    at schedPointSlow (file:///x/src/sched/sched_point.ts:40:5)",
      "    at spin_lock (file:///x/src/locks/spinlock.ts:80:3)",
      "    at vm_unmap_aliases (file:///x/src/mm/vmap_block.ts:530:7)",
      "    at file:///x/src/workers/workloads/catalog.ts:60:9",
    ].join("\n");
    expect(kernelCallChain(spin)).toEqual(["spin_lock", "vm_unmap_aliases"]);
    const store = [
      "Error",
      "    at staleTlbHit (file:///x/src/mm/mmu.ts:52:3)",
      "    at mmuWrite (file:///x/src/mm/mmu.ts:98:15)",
      "    at file:///x/src/workers/workloads/catalog.ts:90:9",
      "    at vfree (file:///x/src/mm/vmalloc.ts:980:9)",
    ].join("\n");
    expect(kernelCallChain(store)).toEqual([]);
  });
});
