/**
 * A replay never diverges, even on a busy host. A CPU whose last operation
 * took rcu_read_lock (vm_map_ram's vb_alloc, a purge's block walk) returns
 * with its RCU reader counter odd and goes idle as it parks: that store must
 * happen while it still holds the run token. Stored after the handoff, it
 * races with the next holder's grace-period scans — on a busy host the
 * parking thread is often preempted right after the handoff — and whether a
 * grace period ends, with its kfree_rcu callbacks and their sched points,
 * becomes the host's choice: "replay diverged". Two spinning threads load the
 * host while the recordings replay.
 */
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { Explorer } from "../src/explore/explorer.js";
import { scriptScenario } from "../src/explore/script.js";
import type { ScriptLine } from "../src/workers/workloads/exec_script.js";

/** Recordings (sched seeds 1..RECORDINGS) and replays of each. */
const RECORDINGS = 8;
const REPLAYS = 4;

/**
 * CPU0 maps and unmaps a few vm_map_ram blocks and ends on a vm_map_ram (its
 * counter odd at return); CPU1 frees areas and purges them all along, so
 * grace periods that wait for CPU0 are in progress when CPU0 returns.
 */
function script(): ScriptLine[][] {
  const cpu0: ScriptLine[] = [];
  for (let i = 0; i < 4; i++)
    cpu0.push({ op: "vm_map_ram", pages: 1, as: `m${i}` }, { op: "vm_unmap_ram", ref: `m${i}`, pages: 1 });
  cpu0.push({ op: "vm_map_ram", pages: 1, as: "last" });
  const cpu1: ScriptLine[] = [];
  for (let i = 0; i < 40; i++) {
    cpu1.push({ op: "vmalloc", size: 4096, as: `v${i}` }, { op: "vfree", ref: `v${i}` });
    if (i % 3 === 2) cpu1.push({ op: "purge" });
  }
  cpu1.push({ op: "purge" });
  return [cpu0, cpu1];
}

describe("replays under host load (2 CPUs, machine seed 1, two busy threads beside)", () => {
  let ex: Explorer;
  const busy: Worker[] = [];
  beforeAll(async () => {
    const lines = script();
    const s = scriptScenario(lines);
    ex = await Explorer.start(makeConfig({ ...s.config, cpus: 2, memory: 8 * 1024 * 1024, seed: 1 }), s);
    for (let i = 0; i < 2; i++) busy.push(new Worker("for (;;) {}", { eval: true }));
  });
  afterAll(async () => {
    await Promise.all(busy.map((w) => w.terminate()));
    await ex.close();
  });

  it(`${RECORDINGS} random-strategy recordings (p 0.05, sched seeds 1..${RECORDINGS}) each replay ${REPLAYS} times bit for bit`, async () => {
    const params = { ops: Math.max(...script().map((l) => l.length)), skip: [] };
    const diverged: string[] = [];
    for (let seed = 1; seed <= RECORDINGS; seed++) {
      const rec = await ex.runOnce({ kind: "random", p: 0.05 }, seed, params);
      expect(rec.failure).toBeNull();
      for (let i = 0; i < REPLAYS; i++) {
        const rep = await ex.runOnce({ kind: "replay", plan: rec.record.decisions }, seed, params);
        if (rep.failure !== null || rep.digest !== rec.digest)
          diverged.push(`seed ${seed} replay ${i}: ${rep.failure?.text ?? "same decisions, another digest"}`);
      }
    }
    expect(diverged).toEqual([]);
  }, 30_000);
});
