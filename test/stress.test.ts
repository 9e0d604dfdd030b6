/**
 * `vmsim stress` (src/workers/stress.ts, src/cli/stress.ts) and the per-CPU
 * event rings it reports from (src/shared/events.ts). The stress runs are
 * seeded and bounded by op count; their interleavings are real (two worker
 * threads), so the tests assert what holds under every interleaving: a clean
 * run is clean, a corrupted machine or a WARN fails with the full report.
 * This file is CI's short stress (a few seconds).
 */
import { describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import {
  EV_VFREE,
  EV_VMALLOC,
  TRACE_RING_SIZE,
  lastEvents,
  trace_event,
  traceEventCount,
  tracing_snapshot,
  tracing_snapshot_clear,
} from "../src/shared/events.js";
import { HARDIRQ_OFFSET } from "../src/shared/preempt_mask.js";
import { start_kernel } from "../src/workers/boot.js";
import { holdHarnessPages } from "../src/check/pages.js";
import { isFault, mmuWrite } from "../src/mm/mmu.js";
import { vfree, vmalloc_to_page, vmallocinfo } from "../src/mm/vmalloc.js";
import { layoutOf } from "../src/shared/config.js";
import { parseKaddr } from "../src/shared/layouts.js";
import { theArena } from "../src/shared/arena.js";
import { runStress } from "../src/workers/stress.js";
import { MIX_OPS } from "../src/workers/workloads/vmalloc_mix.js";
import { vmsim } from "./helpers/vmsim.js";

describe("per-CPU event ring", () => {
  it("keeps the last 256 events of a CPU in order, across wraps, with full kernel addresses", () => {
    start_kernel(makeConfig({ cpus: 1 }));
    const h0 = traceEventCount(0);
    // Three laps and a bit: event i frees the page at kaddr 0x8000000 + i pages.
    const n = 3 * TRACE_RING_SIZE + 44;
    for (let i = 0; i < n; i++) trace_event(EV_VFREE, 0x8000000 + i * 4096, i % 2 === 0 ? 0 : HARDIRQ_OFFSET);
    expect(traceEventCount(0)).toBe(h0 + n);

    const all = lastEvents(0, 10_000);
    expect(all).toHaveLength(TRACE_RING_SIZE);
    const first = n - TRACE_RING_SIZE;
    expect(all[0]).toBe(
      `CPU0 #${h0 + first} vfree addr=0xffff${(0x8000000 + first * 4096).toString(16).padStart(12, "0")} in=process`,
    );
    expect(all.at(-1)).toBe(
      `CPU0 #${h0 + n - 1} vfree addr=0xffff${(0x8000000 + (n - 1) * 4096).toString(16).padStart(12, "0")} in=hardirq`,
    );
    for (let k = 1; k < all.length; k++) expect(all[k]).toContain(`#${h0 + first + k} `);
    expect(lastEvents(0, 2)).toEqual(all.slice(-2));

    // A snapshot freezes what the reader shows; clearing it shows the live ring again.
    tracing_snapshot();
    trace_event(EV_VMALLOC, 8192, 1);
    expect(lastEvents(0, 1)).toEqual(all.slice(-1));
    tracing_snapshot_clear();
    expect(lastEvents(0, 1)).toEqual([`CPU0 #${h0 + n} vmalloc size=8192 align=0x1`]);
  });
});

describe("runStress", () => {
  const seed = 11;
  it(`runs clean on 2 CPUs with 5% of page allocations failing (seed ${seed})`, async () => {
    const r = await runStress(makeConfig({ cpus: 2, seed, irqRate: 0.001 }), { ops: 20_000, failPageAlloc: 5 });
    expect(r.report).toEqual([]);
    expect(r).toMatchObject({
      command: "stress",
      ok: true,
      seed,
      ops: 20_000,
      violations: [],
      reports: [],
      nrReports: 0,
      interrupted: false,
      rerun: `vmsim stress --seed ${seed} --ops 20000 --fail-page-alloc 5`,
      options: { durationMs: null, ops: 20_000, failPageAlloc: 5, stutter: 0.01, rcuWalk: 0.01 },
    });
    expect(r.perCpu.map((c) => c.ops)).toEqual([10_000, 10_000]);
    // Every failed allocation freed what it had taken: nothing leaked.
    expect(r.allocFailures).toBeGreaterThan(0);
    expect(r.expectedReports).toBeGreaterThan(0);
    expect(r.leak?.leakedPages).toBe(0);
    expect(r.checks).toBeGreaterThanOrEqual(2);
    for (const api of MIX_OPS) expect(r.apis[api], api).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it("reports a corrupted machine: the invariant, every CPU's last events, the seed and the rerun command", async () => {
    const r = await runStress(makeConfig({ cpus: 2, seed: 5, irqRate: 0.001 }), {
      ops: 20_000,
      events: 16,
      // One page counted twice: the page census between rounds must see it.
      afterRound: (round) => {
        if (round === 1) holdHarnessPages(1);
      },
    });
    expect(r.ok).toBe(false);
    expect(r.rounds).toBe(1);
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toMatch(/^after round 1: pages conserved: .* \(1 counted twice\)$/);
    expect(r.leak).toBeNull();
    const report = r.report.join("\n");
    expect(r.report[0]).toMatch(/^vmsim stress: FAILED \(seed 5, \d+ ops in 1 round\)$/);
    expect(report).toContain(`  invariant: ${r.violations[0]}`);
    for (const cpu of [0, 1]) {
      const at = r.report.indexOf(`  last 16 events of CPU${cpu}, when the CPUs parked:`);
      expect(at).toBeGreaterThan(0);
      const events = r.report.slice(at + 1, at + 17);
      for (const e of events) expect(e).toMatch(new RegExp(`^ {4}CPU${cpu} #\\d+ \\S`));
      // Each CPU vmalloc'ed, freed and took vmap_area_lock in its last 16 events: full 64-bit addresses.
      expect(events.join("\n")).toMatch(/spin_lock\(vmap_area_lock\) in=\w+ addr=0xffff[0-9a-f]{12}/);
    }
    expect(r.report.slice(-2)).toEqual(["  seed: 5", "  rerun: vmsim stress --seed 5 --ops 20000"]);
  });

  it("ends at a WARN, with the events snapshotted where the WARN happened", async () => {
    const r = await runStress(makeConfig({ cpus: 2, seed: 6, irqRate: 0.001 }), {
      ops: 20_000,
      events: 4,
      afterRound: (round) => {
        if (round === 1) vfree(4097); // not page-aligned: __vunmap WARNs
      },
    });
    expect(r.ok).toBe(false);
    expect(r.nrReports).toBe(1);
    expect(r.reports[0]).toMatchObject({ kind: "WARN", cpu: 0 });
    expect(r.report).toContain("  report: [CPU0] WARN: Trying to vfree() bad address (0xffff000000001001)");
    const at = r.report.indexOf("  last 4 events of CPU0, at the first report or BUG (snapshot):");
    expect(r.report.slice(at + 3, at + 5)).toEqual([
      expect.stringMatching(/^ {4}CPU0 #\d+ vfree addr=0xffff000000001001 in=process$/),
      expect.stringMatching(/^ {4}CPU0 #\d+ report kind=WARN nr=1$/),
    ]);
  });

  it("a round that ends in a BUG still counts the ops and API calls the CPUs ran in it", async () => {
    let afterFirst = { ops: 0, elapsedMs: 0 };
    let overwritten = 0;
    const r = await runStress(makeConfig({ cpus: 2, seed: 8, irqRate: 0.001 }), {
      durationMs: 30_000,
      stutter: 0,
      onProgress: (p) => {
        if (afterFirst.ops === 0) afterFirst = p;
      },
      // Overwrites the stamp of every mapped page the workload allocated: the next load of one is a BUG.
      afterRound: (round) => {
        if (round !== 1) return;
        const layout = layoutOf(theArena().config);
        for (const line of vmallocinfo().filter((l) => !l.includes(" phys="))) {
          const [from, to] = line
            .split(" ")[0]!
            .split("-")
            .map((a) => parseKaddr(layout, a)!);
          for (let page = from!; page < to!; page += 4096) {
            if (vmalloc_to_page(page) === 0) continue; // a guard page, an unmapped reservation
            expect(isFault(mmuWrite(page, new Uint8Array(8).fill(0xee)))).toBe(false);
            overwritten++;
          }
        }
      },
    });
    expect(overwritten).toBeGreaterThan(0);
    expect(r.ok).toBe(false);
    expect(r.rounds).toBe(2);
    expect(r.violations[0]).toMatch(/^BUG: CPU\d: KernelBug: vmalloc_mix: .* read eeeeeeeeeeeeeeee, expected /);
    // The second round's ops, counted although no CPU's result came back.
    expect(r.ops).toBeGreaterThan(afterFirst.ops);
    expect(r.durationMs).toBeGreaterThan(afterFirst.elapsedMs);
    expect(r.ops).toBe(r.perCpu[0]!.ops + r.perCpu[1]!.ops);
    expect(r.apis["mmu read"]).toBeGreaterThan(0);
    expect(r.report[0]).toBe(`vmsim stress: FAILED (seed 8, ${r.ops} ops in 2 rounds)`);
  });

  it("refuses bad options", async () => {
    await expect(runStress(makeConfig(), { failPageAlloc: 101 })).rejects.toThrow(RangeError);
    await expect(runStress(makeConfig(), { stutter: 2 })).rejects.toThrow(RangeError);
    await expect(runStress(makeConfig(), { ops: 0 })).rejects.toThrow(RangeError);
  });
});

describe("vmsim stress", () => {
  it("--ops 6000 --seed 2: runs quietly off a TTY, prints the report and one SUMMARY line, exits 0", async () => {
    const r = await vmsim("stress", "--ops", "6000", "--seed", "2");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(
      "vmsim: kernel 4.19, 2 CPUs, 64 MiB, layout arm64-va48, seed 2, lockdep on, slub_debug on, tracing off, irq rate 0.001, workqueue auto",
    );
    expect(lines.at(-3)).toMatch(
      /^result: ok \(invariants held after \d+ of \d+ rounds and after the cleanup; no leak\)$/,
    );
    expect(lines).toContain("seed: 2");
    const s = JSON.parse(lines.at(-1)!.replace(/^SUMMARY /, ""));
    expect(s).toMatchObject({
      command: "stress",
      ok: true,
      seed: 2,
      ops: 6000,
      rerun: "vmsim stress --seed 2 --ops 6000",
    });
  });

  it("bad arguments: one line on stderr, exit 2", async () => {
    for (const args of [
      ["--fail-page-alloc", "101"],
      ["--stutter", "1.5"],
      ["--ops", "x"],
    ]) {
      const r = await vmsim("stress", ...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.trimEnd().split("\n"), args.join(" ")).toHaveLength(1);
    }
  });
});
