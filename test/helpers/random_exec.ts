/**
 * A seeded 2-CPU run of random exec ops at once — vmallocs and vzallocs, some
 * aligned, vfrees some of them from interrupt context — with every invariant
 * checked between rounds, after the deferred work and after a purge. The
 * checkers' tests of each generation run it on their kernel.
 */
import { expect } from "vitest";
import { PAGE_SIZE, type KernelVersion } from "../../src/shared/config.js";
import { Prng } from "../../src/shared/prng.js";
import { checkMachine } from "../../src/check/index.js";
import { Machine } from "../../src/workers/machine.js";
import type { ExecReply, ExecRequest } from "../../src/workers/workloads/exec.js";

export async function randomExecOnTwoCpus(kernel: KernelVersion, seed: number): Promise<void> {
  const m = await Machine.boot({ kernel, cpus: 2, seed, workqueue: "explicit" });
  try {
    const rng = new Prng(seed, 0);
    const live: number[][] = [[], []];
    for (let round = 0; round < 60; round++) {
      const reqs: ExecRequest[] = [0, 1].map((cpu) => {
        const mine = live[cpu]!;
        if (mine.length > 0 && rng.next() < 0.45) {
          const addr = mine.splice(Math.floor(rng.next() * mine.length), 1)[0]!;
          return { op: "vfree", addr, irq: rng.next() < 0.3, held: null };
        }
        return {
          op: rng.next() < 0.5 ? "vmalloc" : "vzalloc",
          size: 1 + Math.floor(rng.next() * 40_000),
          irq: false,
          align: rng.next() < 0.2 ? PAGE_SIZE << Math.floor(rng.next() * 6) : null,
        } as ExecRequest;
      });
      const replies = (await m.runAll("exec_op", (cpu: number) => reqs[cpu])) as ExecReply[];
      replies.forEach((r, cpu) => {
        if (r.addr) live[cpu]!.push(r.addr);
      });
      if (round % 20 === 19) {
        for (const cpu of [0, 1]) await m.run(cpu, "exec_op", { op: "flush_work", irq: false } satisfies ExecRequest);
        expect(checkMachine()).toEqual([]);
      }
    }
    await m.run(0, "exec_op", { op: "purge", irq: false } satisfies ExecRequest);
    expect(checkMachine()).toEqual([]);
    expect(m.reports).toEqual([]);
  } finally {
    await m.shutdown();
  }
}
