import { afterEach, describe, expect, it } from "vitest";
import { HARD_LOCKUP_MS, Machine, MachineError } from "../src/workers/machine.js";

let m: Machine | undefined;
afterEach(async () => {
  await m?.shutdown();
  m = undefined;
});

describe("machine", () => {
  it.each([2, 4])("a spinlock-protected counter loses no update on %i CPUs", async (cpus) => {
    m = await Machine.boot({ cpus, seed: 7 });
    const iters = 20_000;
    await m.runAll("spin_counter", { iters });
    expect(await m.run(0, "read_counter")).toBe(cpus * iters);
  });

  it("a CPU that throws ends the run with a report naming the CPU and the seed", async () => {
    m = await Machine.boot({ cpus: 2, seed: 42 });
    const run = m.runAll("bug", (cpu: number) => (cpu === 1 ? { message: "kernel BUG at test" } : { message: "x" }));
    await expect(run).rejects.toBeInstanceOf(MachineError);
    await expect(m.run(1, "bug", { message: "kernel BUG at vmalloc.c:1" })).rejects.toThrow(
      /CPU1: KernelBug: kernel BUG at vmalloc.c:1 \(seed 42\)/,
    );
    expect(m.stopped).toBe(true);
  });

  it("a CPU looping without sched points after the stop is ended by the hard-lockup watchdog", async () => {
    m = await Machine.boot({ cpus: 2, seed: 3 });
    const looping = m.run(0, "hard_lockup");
    await expect(m.run(1, "bug", { message: "kernel BUG at test" })).rejects.toThrow(/CPU1: KernelBug/);
    const err = await looping.catch((e: unknown) => e);
    // HARD_LOCKUP_MS, scaled on an oversubscribed host, which the message then says (src/sched/watchdog_clock.ts).
    const m0 =
      /^CPU0: HardLockup: watchdog: Watchdog detected hard LOCKUP on cpu 0: no sched point (\d+) ms after the machine stopped( \(host oversubscribed: [^)]+\))? \(seed 3\)$/.exec(
        (err as Error).message,
      );
    expect(m0, (err as Error).message).not.toBeNull();
    const limit = Number(m0![1]);
    if (m0![2] === undefined) expect(limit).toBe(HARD_LOCKUP_MS);
    else expect(limit).toBeGreaterThan(HARD_LOCKUP_MS);
  });
});
