import { afterEach, describe, expect, it } from "vitest";
import { checkMachine } from "../src/check/index.js";
import {
  type SchedRecord,
  type Strategy,
  VERDICT_DEADLOCK,
  VERDICT_OK,
  schedOff,
  schedRecord,
  schedSetup,
} from "../src/sched/sched_det.js";
import { Machine, MachineError } from "../src/workers/machine.js";
import type { TestVmallocResult, VmallocTestParams } from "../src/workers/workloads/test_vmalloc.js";

describe("test_vmalloc and the start barrier under the deterministic scheduler", () => {
  let m: Machine | undefined;
  afterEach(async () => {
    schedOff();
    await m?.shutdown();
    m = undefined;
  });

  /** The machine's memory: every struct page and every page's contents (what the kernel left in them). */
  function memory(mach: Machine): Buffer {
    const snap = mach.snapshot();
    const parts = mach.arena.map.filter((r) => r.name === "mem_map" || r.name === "pagedata");
    return Buffer.concat(parts.map((r) => snap.subarray(r.base, r.base + r.size)));
  }

  it("fix_size_alloc_test on 2 CPUs under PCT (depth 3, seed 1) completes, and replaying its decisions reproduces it bit for bit", async () => {
    const mach = await Machine.boot({ cpus: 2, memory: 16 * 1024 * 1024, seed: 1 });
    m = mach;
    const snap = mach.snapshot();
    const run = async (strategy: Strategy) => {
      await mach.restore(snap);
      schedSetup({ strategy, seed: 1, stepCap: 1e8 });
      const rs = (await mach.runAll("test_vmalloc", {
        test: "fix_size_alloc_test",
        loops: 200,
        round: 1,
      })) as TestVmallocResult[];
      const rec: SchedRecord = schedRecord();
      schedOff();
      // usec and loopUsec are wall-clock times: everything else of a result is the schedule's.
      return { results: rs.map((r) => ({ passed: r.passed, pairs: r.pairs })), rec, memory: memory(mach) };
    };

    const pct = await run({ kind: "pct", depth: 3, steps: 5000 });
    expect(pct.rec.verdict).toBe(VERDICT_OK);
    expect(pct.results).toEqual([
      { passed: true, pairs: 200 },
      { passed: true, pairs: 200 },
    ]);
    expect(pct.rec.lost).toBe(0);
    // The start decision and at least one switch: the CPUs really interleaved.
    expect(pct.rec.decisions.length).toBeGreaterThan(1);
    expect(checkMachine()).toEqual([]);

    const replay = await run({ kind: "replay", plan: pct.rec.decisions });
    expect(replay.rec.verdict).toBe(VERDICT_OK);
    expect(replay.rec.planLeft).toBe(0);
    expect(replay.rec.steps).toBe(pct.rec.steps);
    expect(replay.rec.decisions).toEqual(pct.rec.decisions);
    expect(replay.results).toEqual(pct.results);
    expect(replay.memory.equals(pct.memory)).toBe(true);
  });

  it("a start barrier that can never complete blocks its CPUs: the deadlock verdict, naming held locks, not a spin into the step cap (seed 2)", async () => {
    const mach = await Machine.boot({ cpus: 2, memory: 8 * 1024 * 1024, seed: 2 });
    m = mach;
    const params: VmallocTestParams = {
      testRepeatCount: 1,
      testLoopCount: 1,
      runTestMask: 1,
      sequentialTestOrder: true,
      nrPages: 0,
    };
    schedSetup({ strategy: { kind: "rr", quantum: 1 }, seed: 2, stepCap: 1e6 });
    // Three participants expected, two CPUs run: nobody can ever open the barrier.
    const err = await mach.runAll("vmalloc_test", { workers: [], participants: 3, params }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MachineError);
    expect((err as MachineError).message).toMatch(/deadlock at step \d+: no CPU can run/);
    // Lockdep (a floor above the scheduler) registered its view of held locks: the barrier holds none.
    expect((err as MachineError).message).toMatch(/CPU#0 waits for .+; holds: \(none\)$/m);
    const rec = schedRecord();
    expect(rec.verdict).toBe(VERDICT_DEADLOCK);
    expect(rec.steps).toBeLessThan(100);
  });
});

describe("bench:sched's loop under the deterministic scheduler", () => {
  it("passes more sched points than the soft-lockup bound (2^22) in one call: the loop touches the watchdog, no lockup", async () => {
    const m = await Machine.boot({ cpus: 1, memory: 8 * 1024 * 1024, seed: 1 });
    try {
      const points = 2 ** 22 + 2 ** 21;
      schedSetup({ strategy: { kind: "rr", quantum: 2 ** 31 - 1 }, seed: 1, stepCap: 2 ** 31 - 1 });
      await m.runAll("bench_sched_points", { points });
      const rec = schedRecord();
      schedOff();
      expect(rec.verdict).toBe(VERDICT_OK);
      expect(rec.steps).toBe(points);
      expect(m.reports).toEqual([]);
    } finally {
      schedOff();
      await m.shutdown();
    }
  });
});
