/**
 * Span tracing (src/trace/trace.ts) and its Chrome trace-event JSON
 * (src/workers/chrome_trace.ts). Unit tests run kernel code on the main thread as
 * CPU 0 (brought online, so it records); machine tests run vmalloc_mix on
 * two worker CPUs, free-running and under the deterministic scheduler.
 * Every trace is checked to be well-formed the way Perfetto needs it: spans
 * of a track nest, and each flow arrow starts inside the releasing CPU's
 * hold of the lock and ends inside the acquiring CPU's hold of it.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine } from "../src/workers/machine.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { spin_lock, spin_unlock } from "../src/locks/spinlock.js";
import { rcu_read_lock, rcu_read_unlock } from "../src/rcu/rcupdate.js";
import { vfree, vmalloc } from "../src/mm/vmalloc.js";
import { schedOff, schedRecord, schedSetup } from "../src/sched/sched_det.js";
import { locks_test_a, locks_test_b } from "../src/workers/workloads/locks.js";
import {
  TR_LOCK_ACQUIRE,
  TR_LOCK_RELEASE,
  traceCapacity,
  traceEntries,
  traceRecorded,
  traceRegion,
  traceReset,
} from "../src/trace/trace.js";
import {
  type ChromeTrace,
  type ChromeTraceEvent,
  collectChromeTrace,
  writeChromeTrace,
} from "../src/workers/chrome_trace.js";
import { vmsim } from "./helpers/vmsim.js";

/** Integer ns, as Perfetto reads the µs of the JSON. */
const ns = (us: number) => Math.round(us * 1000);

interface Slice {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

function slicesOf(t: ChromeTrace): Map<number, Slice[]> {
  const by = new Map<number, Slice[]>();
  for (const e of t.traceEvents)
    if (e.ph === "X") {
      const list = by.get(e.tid) ?? [];
      list.push({ name: e.name, start: ns(e.ts), end: ns(e.ts) + ns(e.dur!) });
      by.set(e.tid, list);
    }
  for (const list of by.values()) list.sort((a, b) => a.start - b.start || b.end - a.end);
  return by;
}

/** The innermost slice of CPU `tid`'s track open at `t`. */
function innermost(slices: Map<number, Slice[]>, tid: number, t: number): Slice | undefined {
  let best: Slice | undefined;
  for (const s of slices.get(tid) ?? []) if (s.start <= t && t < s.end) best = s;
  return best;
}

/** Asserts what Perfetto needs: nesting spans on every track, flows paired and bound to the lock's holds. */
function expectWellFormed(t: ChromeTrace): void {
  const slices = slicesOf(t);
  for (const [tid, list] of slices) {
    const open: Slice[] = [];
    for (const s of list) {
      while (open.length > 0 && open.at(-1)!.end <= s.start) open.pop();
      if (open.length > 0)
        expect(s.end, `CPU${tid}: ${s.name} inside ${open.at(-1)!.name}`).toBeLessThanOrEqual(open.at(-1)!.end);
      open.push(s);
    }
  }
  const starts = new Map<unknown, ChromeTraceEvent>();
  const ends = new Map<unknown, ChromeTraceEvent>();
  for (const e of t.traceEvents) {
    if (e.ph === "s") starts.set(e.id, e);
    if (e.ph === "f") ends.set(e.id, e);
  }
  expect([...starts.keys()].sort()).toEqual([...ends.keys()].sort());
  for (const [id, s] of starts) {
    const f = ends.get(id)!;
    expect(typeof id).toBe("number");
    expect([f.cat, f.name, f.bp]).toEqual([s.cat, s.name, "e"]);
    expect(f.tid).not.toBe(s.tid);
    const from = innermost(slices, s.tid, ns(s.ts));
    const to = innermost(slices, f.tid, ns(f.ts));
    expect(from?.name, `flow ${id} starts in a hold`).toBeDefined();
    expect(to?.name, `flow ${id} ends in the hold of the same lock`).toBe(from?.name);
  }
}

const names = (t: ChromeTrace, cat: string) =>
  new Set(t.traceEvents.filter((e) => e.ph === "X" && e.cat === cat).map((e) => e.name));

describe("trace rings", () => {
  it("tracing off: no ring region and nothing recorded", () => {
    start_kernel(makeConfig({ cpus: 2 }));
    percpuCpuOnline();
    spin_lock(locks_test_a.ptr);
    spin_unlock(locks_test_a.ptr);
    expect(traceRegion().size).toBe(0);
    expect(traceCapacity()).toBe(0);
    expect(traceRecorded(0)).toBe(0);
    expect(traceEntries(0)).toEqual([]);
    expect(collectChromeTrace().traceEvents.filter((e) => e.ph !== "M")).toEqual([]);
  });

  it("a CPU records only once online, into a ring of config.trace events per CPU", () => {
    start_kernel(makeConfig({ cpus: 2, trace: 100 }));
    expect(traceRegion().size).toBeGreaterThanOrEqual(2 * 100 * 32);
    spin_lock(locks_test_a.ptr);
    spin_unlock(locks_test_a.ptr);
    expect(traceRecorded(0)).toBe(0);
    percpuCpuOnline();
    spin_lock(locks_test_a.ptr);
    spin_unlock(locks_test_a.ptr);
    expect(traceRecorded(0)).toBe(2);
    expect(traceEntries(0).map((e) => [e.type, e.key, e.det])).toEqual([
      [TR_LOCK_ACQUIRE, locks_test_a.ptr, false],
      [TR_LOCK_RELEASE, locks_test_a.ptr, false],
    ]);
    expect(traceRecorded(1)).toBe(0);
    traceReset();
    expect(traceEntries(0)).toEqual([]);
  });

  it("API calls, lock holds and RCU read sections become nested spans with their arguments", () => {
    start_kernel(makeConfig({ cpus: 1, trace: 4096, lockdep: false }));
    percpuCpuOnline();
    rcu_read_lock();
    spin_lock(locks_test_a.ptr);
    spin_unlock(locks_test_a.ptr);
    rcu_read_unlock();
    const addr = vmalloc(3 * 4096);
    vfree(addr);
    const t = collectChromeTrace();
    expectWellFormed(t);
    expect(t.traceEvents.filter((e) => e.ph === "M" && e.name.endsWith("_name")).map((e) => e.args!.name)).toEqual([
      "vmsim (1 CPU, seed 1)",
      "CPU0",
    ]);
    const x = t.traceEvents.filter((e) => e.ph === "X");
    const rcu = x.find((e) => e.name === "rcu_read_lock")!;
    const held = x.find((e) => e.name === "locks_test_a")!;
    expect(held.cat).toBe("spinlock");
    expect(held.ts).toBeGreaterThanOrEqual(rcu.ts);
    expect(held.ts + held.dur!).toBeLessThanOrEqual(rcu.ts + rcu.dur!);
    const va = x.find((e) => e.name === "__vmalloc_node_range")!;
    expect(va.args).toMatchObject({ size: 3 * 4096, caller: "vmalloc" });
    expect(va.args!.addr).toMatch(/^0xffff[0-9a-f]{12}$/);
    expect(x.find((e) => e.name === "vfree")!.args).toEqual({ addr: va.args!.addr });
    // vmalloc takes vmap_area_lock inside its span.
    const inner = x.filter((e) => e.name === "vmap_area_lock" && e.ts >= va.ts && e.ts + e.dur! <= va.ts + va.dur!);
    expect(inner.length).toBeGreaterThan(0);
  });

  it("spans that do not nest are split; a ring's start drops ends and closes begins at the trace's end", () => {
    start_kernel(makeConfig({ cpus: 1, trace: 6, lockdep: false }));
    percpuCpuOnline();
    // a ... b ... unlock a ... unlock b: b's hold outlives a's.
    spin_lock(locks_test_a.ptr);
    spin_lock(locks_test_b.ptr);
    spin_unlock(locks_test_a.ptr);
    spin_unlock(locks_test_b.ptr);
    let t = collectChromeTrace();
    expectWellFormed(t);
    const b = t.traceEvents.filter((e) => e.name === "locks_test_b");
    expect(b.map((e) => e.args)).toEqual([
      { lock: `0x${locks_test_b.ptr.toString(16)}` },
      { lock: `0x${locks_test_b.ptr.toString(16)}`, continued: true },
    ]);

    // Six slots: 3 × (lock, unlock) of a, then lock b — the ring keeps unlock a, lock a, unlock a … lock b.
    traceReset();
    for (let i = 0; i < 3; i++) {
      spin_lock(locks_test_a.ptr);
      spin_unlock(locks_test_a.ptr);
    }
    spin_lock(locks_test_b.ptr);
    t = collectChromeTrace();
    expectWellFormed(t);
    expect(t.otherData).toMatchObject({ unmatchedEnds: 1, recorded: [7] });
    const x = t.traceEvents.filter((e) => e.ph === "X");
    expect(x.map((e) => e.name)).toEqual(["locks_test_a", "locks_test_a", "locks_test_b"]);
    expect(x[2]!.args).toMatchObject({ unfinished: true });
    spin_unlock(locks_test_b.ptr);
  });
});

describe("traces of machine runs", () => {
  it("a free run of 2 CPUs: one track per CPU, API, lock, RCU and interrupt spans, well-formed", async () => {
    const m = await Machine.boot({ cpus: 2, memory: 16 * 1024 * 1024, seed: 5, irqRate: 0.002, trace: 1 << 15 });
    try {
      await m.run(0, "vmalloc_mix_irq", { on: true });
      await m.runAll("vmalloc_mix_start");
      await m.runAll("vmalloc_mix", { ops: 400, deadline: Number.MAX_SAFE_INTEGER, rcuWalk: 0.05 });
      await m.runAll("vmalloc_mix_drain");
    } finally {
      await m.shutdown();
    }
    const file = join(mkdtempSync(join(tmpdir(), "vmsim-trace-")), "run.json");
    writeChromeTrace(file);
    const t = JSON.parse(readFileSync(file, "utf8")) as ChromeTrace;
    expect(t.displayTimeUnit).toBe("ns");
    expect(t.otherData).toMatchObject({
      cpus: 2,
      seed: 5,
      eventsPerCpu: 1 << 15,
      clock: expect.stringMatching(/^performance/),
    });
    const threads = t.traceEvents.filter((e) => e.ph === "M" && e.name === "thread_name");
    expect(threads.map((e) => [e.pid, e.tid, e.args!.name])).toEqual([
      [0, 0, "CPU0"],
      [0, 1, "CPU1"],
    ]);
    expect(new Set(t.traceEvents.filter((e) => e.ph === "X").map((e) => e.tid))).toEqual(new Set([0, 1]));
    for (const api of ["__vmalloc_node_range", "vfree", "vm_map_ram", "vm_unmap_ram"])
      expect(names(t, "api")).toContain(api);
    expect(names(t, "spinlock")).toContain("vmap_area_lock");
    expect(names(t, "rcu")).toContain("rcu_read_lock");
    expect([...names(t, "irq")].some((n) => n.startsWith("irq/"))).toBe(true);
    expectWellFormed(t);
  });

  it("a deterministic run: steps as µs, lock handoff flows, and the same JSON when replayed", async () => {
    const m = await Machine.boot({ cpus: 2, memory: 8 * 1024 * 1024, seed: 7, irqRate: 0.002, trace: 1 << 14 });
    try {
      await m.run(0, "vmalloc_mix_irq", { on: true });
      const snap = m.snapshot();
      const traced = async (strategy: Parameters<typeof schedSetup>[0]["strategy"]) => {
        await m.restore(snap);
        traceReset();
        schedSetup({ strategy, seed: 3, stepCap: 1e8 });
        try {
          await m.runAll("vmalloc_mix_start");
          await m.runAll("vmalloc_mix", { ops: 60, deadline: Number.MAX_SAFE_INTEGER, rcuWalk: 0.1 });
          await m.runAll("vmalloc_mix_drain");
          return { record: schedRecord(), trace: collectChromeTrace() };
        } finally {
          schedOff();
        }
      };
      const a = await traced({ kind: "random", p: 0.05 });
      const t = a.trace;
      expect(t.otherData).toMatchObject({
        clock: expect.stringMatching(/^deterministic: .*1 step = 1 µs/),
        otherClockDropped: 0,
      });
      // Steps are µs: the last event is within the run's steps.
      const last = Math.max(...t.traceEvents.filter((e) => e.ph === "X").map((e) => e.ts + e.dur!));
      expect(last).toBeLessThanOrEqual(a.record.steps + 1);
      expect(names(t, "api")).toContain("__vmalloc_node_range");
      expect(names(t, "rcu")).toContain("rcu_read_lock");
      expect(t.otherData.handoffs).toBeGreaterThan(0);
      expect(t.traceEvents.filter((e) => e.ph === "s")).toHaveLength(Number(t.otherData.handoffs));
      expectWellFormed(t);
      // Deterministic: the release is strictly before the acquisition it hands the lock to.
      const f = new Map(t.traceEvents.filter((e) => e.ph === "f").map((e) => [e.id, e]));
      for (const s of t.traceEvents.filter((e) => e.ph === "s")) expect(s.ts).toBeLessThan(f.get(s.id)!.ts);

      const b = await traced({ kind: "replay", plan: a.record.decisions });
      expect(JSON.stringify(b.trace)).toBe(JSON.stringify(t));
    } finally {
      await m.shutdown();
    }
  });
});

describe("vmsim run --trace", () => {
  it("writes a trace that parses; a path in no folder is one line and exit 2", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "vmsim-trace-")), "run.json");
    const r = await vmsim("run", "--cpus", "2", "--memory", "16M", "--duration", "300ms", "--trace", file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^trace: [\d,]+ events, \d+ lock handoffs?, in .*run\.json \(open it in https:\/\/ui\.perfetto\.dev\)$/m,
    );
    const t = JSON.parse(readFileSync(file, "utf8")) as ChromeTrace;
    expect(t.otherData).toMatchObject({ eventsPerCpu: 65536, cpus: 2 });
    expectWellFormed(t);
    for (const cmd of ["run", "stress"]) {
      const bad = await vmsim(cmd, "--trace", "/no/such/folder/t.json");
      expect(bad.code).toBe(2);
      expect(bad.stderr.trim().split("\n")).toEqual([
        expect.stringMatching(/^vmsim: .*--trace.*no folder \/no\/such\/folder/),
      ]);
    }
  });
});
