/**
 * `vmsim run` — the main job — as a user runs it: the built CLI in a child
 * process, checked on its output and exit status. The op counts depend on
 * real concurrency (two worker threads racing), so they are not asserted,
 * only that work happened, every API ran, the checks passed and the report
 * has its parts.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { MIX_OPS } from "../src/workers/workloads/vmalloc_mix.js";
import { MAIN, vmsim } from "./helpers/vmsim.js";

describe("vmsim run --duration 2s --seed 5", () => {
  it("runs the vmalloc mix on both CPUs, checks it, and ends with a SUMMARY line", async () => {
    const r = await vmsim("run", "--duration", "2s", "--seed", "5");
    expect(r.stderr).toBe(""); // not a TTY: no progress bar, and no failure
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(
      "vmsim: kernel 4.19, 2 CPUs, 64 MiB, layout arm64-va48, seed 5, lockdep on, slub_debug on, tracing off, irq rate 0.001, workqueue auto",
    );

    // ops/s per CPU: one row per CPU and the total (ops, ops/s, interrupts taken).
    expect(lines.some((l) => /^ops\/s per CPU \(\d+\.\d\d s of workload, \d+ rounds\):$/.test(l))).toBe(true);
    for (const cpu of ["CPU0", "CPU1", "all"])
      expect(lines.some((l) => new RegExp(`^  ${cpu} +[\\d,]+ +[\\d,]+ +[\\d,]+$`).test(l))).toBe(true);

    // vmallocinfo excerpt: the kernel's s_show lines (range, size, caller, pages=, flags words).
    const info = lines.findIndex((l) => /^\/proc\/vmallocinfo at the end of the workload: \d+ areas$/.test(l));
    expect(info).toBeGreaterThan(0);
    // Which types are live when the 2 s end depends on the host's speed (an ioremap may be unmapped by then).
    expect(lines[info + 1]).toMatch(/^ {2}by type: \d+ vmalloc(, \d+ [a-z_ ]+)*$/);
    const excerpt = lines.slice(info + 2, lines.indexOf("", info));
    expect(excerpt.length).toBeGreaterThanOrEqual(2);
    for (const l of excerpt)
      expect(l).toMatch(
        /^ {2}(0xffff[0-9a-f]{12}-0xffff[0-9a-f]{12} +\d+ \S.*|… \d+ more …|one line of each type not shown above:)$/,
      );

    // meminfo: the three Vmalloc lines in /proc/meminfo's format.
    expect(lines).toContain("  VmallocTotal:   135290290112 kB");
    expect(lines.some((l) => /^ {2}VmallocUsed: +\d+ kB$/.test(l))).toBe(true);
    expect(lines).toContain("  VmallocChunk:          0 kB");

    // The result, the leak check and the seed.
    expect(lines.at(-3)).toMatch(
      /^result: ok \(invariants held after \d+ of \d+ rounds and after the cleanup; no leak\)$/,
    );
    const after = lines.findIndex((l) =>
      /^after the cleanup: .* 0 pages leaked; \/proc\/vmallocinfo is back to the boot areas:$/.test(l),
    );
    expect(after).toBeGreaterThan(info);
    // arm64: the kernel image's segments, mapped at boot (vm_area_add_early), with their physical address.
    expect(lines[after + 1]).toMatch(/^ {2}0xffff[0-9a-f]{12}-0xffff[0-9a-f]{12} +\d+ \S+ phys=0x[0-9a-f]{16} vmap$/);
    expect(lines).toContain("seed: 5");

    const last = lines.at(-1)!;
    expect(last).toMatch(/^SUMMARY \{/);
    const s = JSON.parse(last.slice("SUMMARY ".length));
    expect(s).toMatchObject({
      command: "run",
      ok: true,
      cpus: 2,
      layout: "arm64-va48",
      seed: 5,
      irqRate: 0.001,
      workload: "vmalloc_mix",
      interrupted: false,
      reports: 0,
      failures: [],
      rerun: "vmsim run --seed 5 --duration 2s",
    });
    expect(s.leak.leakedPages).toBe(0);
    expect(s.checks).toBeGreaterThan(1);
    expect(s.perCpu).toHaveLength(2);
    for (const c of s.perCpu) expect(c.ops).toBeGreaterThan(0);
    expect(s.ops).toBe(s.perCpu[0].ops + s.perCpu[1].ops);
    expect(s.vmallocinfoAreas).toBeGreaterThan(s.vmallocinfoAreasAfter);
    // Every API of the mix ran; interrupts took the deferred vfree path. (Failures are counted, not expected.)
    for (const api of MIX_OPS.filter((o) => o !== "allocation failed")) expect(s.apis[api], api).toBeGreaterThan(0);
  }, 60_000);
});

describe("vmsim run interrupted by Ctrl-C", () => {
  it("ends the rounds, still cleans up and checks, and says so in its result line", async () => {
    const child = spawn(process.execPath, [MAIN, "run", "--duration", "10m", "--seed", "4"]);
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    // SIGINT once the workload is about to start (the run's handler is in place before its first line).
    child.stdout.on("data", (b: Buffer) => {
      const before = stdout;
      stdout += b.toString();
      if (!before.includes("rounds of 250 ms") && stdout.includes("rounds of 250 ms")) child.kill("SIGINT");
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines.some((l) => /^ops\/s per CPU \(\d+\.\d\d s of workload, \d+ rounds?, interrupted\):$/.test(l))).toBe(
      true,
    );
    expect(lines.at(-3)).toMatch(
      /^result: interrupted \(Ctrl-C after \d+\.\d\d s of workload; invariants held after \d+ of \d+ rounds? and after the cleanup; no leak\)$/,
    );
    const s = JSON.parse(lines.at(-1)!.slice("SUMMARY ".length));
    expect(s).toMatchObject({ command: "run", ok: true, interrupted: true, failures: [] });
    expect(s.leak.leakedPages).toBe(0);
  }, 60_000);
});
