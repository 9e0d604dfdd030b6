/**
 * `vmsim test` — the kernel's lib/test_vmalloc.c on vmsim's CPUs — and the two
 * kernel pieces it brought: the percpu chunk allocator (pcpu_alloc_test) and
 * kvfree_rcu (the kvfree_rcu tests).
 *
 * The CLI runs as a user runs it: the built command (dist/) in a child
 * process, judged on its exit status, its Summary lines and its SUMMARY line.
 * The smoke runs keep test_vmalloc.sh's smoke preset (test_repeat_count=10)
 * with a smaller test_loop_count so that CI stays short; the preset's own
 * 10000 loops take about a minute here (docs/cli.md, "vmsim test").
 *
 * The percpu and kvfree_rcu tests run kernel code on the main thread (CPU 0
 * after start_kernel), on the arm32 layout, whose vmalloc area ends at
 * VMALLOC_END = 0xff800000: pcpu_get_vm_areas places chunks top-down from
 * there. A chunk on 2 CPUs is one area of 2 units of 32 KiB:
 *
 *   0xff7f0000            0xff7f8000            0xff800000
 *   | unit 0 (CPU0)       | unit 1 (CPU1)       |
 *
 * and a percpu pointer is the address of its copy in unit 0.
 */
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { takeReports } from "../src/shared/report.js";
import { checkMachine } from "../src/check/index.js";
import { start_kernel } from "../src/workers/boot.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { per_cpu_ptr } from "../src/shared/smp.js";
import { run_pending_work, work_pending } from "../src/kernel/workqueue.js";
import { kfree_rcu, rcu_barrier, rcu_cpu_starting } from "../src/rcu/tree.js";
import { kfree_rcu_mightsleep, kvfree_rcu, kvfree_rcu_mightsleep } from "../src/mm/kvfree_rcu.js";
import { isFault, mmuRead, mmuWrite } from "../src/mm/mmu.js";
import {
  PCPU_MIN_UNIT_SIZE as UNIT,
  __alloc_percpu,
  free_percpu,
  pcpuChunkCensus,
  pcpu_nr_pages,
} from "../src/mm/percpu_chunk.js";
import {
  VFREE_DEFERRED,
  find_vm_area,
  purge_vmap_area_lazy,
  vfree_deferred,
  vmalloc,
  vmallocinfo,
} from "../src/mm/v4.19/vmalloc.js";
import { TEST_CASE_ARRAY, TEST_VMALLOC_MODULES } from "../src/workers/workloads/test_vmalloc.js";
import { Machine } from "../src/workers/machine.js";
import { kfree, kmalloc } from "../src/mm/slab.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { vmsim } from "./helpers/vmsim.js";
import { runVmsim } from "../bench/fuzz/process.js";

/** The SUMMARY line's object. */
function summaryOf(stdout: string) {
  const line = stdout.split("\n").find((l) => l.startsWith("SUMMARY "));
  if (line === undefined) throw new Error(`no SUMMARY line in:\n${stdout}`);
  return JSON.parse(line.slice("SUMMARY ".length));
}

const summaryLine = (test: string, passed: number, xfailed: number, repeat: number, loops: number) =>
  new RegExp(
    `^Summary: ${test} passed: ${passed} failed: 0 xfailed: ${xfailed} repeat: ${repeat} loops: ${loops} avg: \\d+ usec$`,
    "m",
  );

describe("vmsim test --mode smoke", () => {
  it.each([
    1, 2,
  ])("passes every test of the module on %i CPU(s), align_shift_alloc_test as an expected failure", async (cpus) => {
    const r = await vmsim("test", "--mode", "smoke", "--cpus", String(cpus), "--test-loop-count", "100");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    for (let w = 0; w < cpus; w++) expect(r.stdout).toMatch(new RegExp(`^All test took worker${w}=\\d+ cycles$`, "m"));
    for (const c of TEST_CASE_ARRAY) {
      const lines = r.stdout.match(new RegExp(`^Summary: ${c.name} .*$`, "gm")) ?? [];
      expect(lines).toHaveLength(cpus);
      expect(r.stdout).toMatch(summaryLine(c.name, c.xfail ? 0 : 10, c.xfail ? 10 : 0, 10, 100));
    }
    const s = summaryOf(r.stdout);
    expect(s).toMatchObject({ command: "test", ok: true, mode: "smoke", cpus, nrThreads: cpus, failed: 0 });
    expect(s.params).toEqual({
      testRepeatCount: 10,
      testLoopCount: 100,
      runTestMask: 0x7fffffff,
      sequentialTestOrder: false,
      nrPages: 0,
    });
    expect(s.passed).toBe(10 * 10 * cpus);
    expect(s.xfailed).toBe(10 * cpus);
    // Each xfailed run of align_shift_alloc_test warns twice: the vmap allocation, then vmalloc's warn_alloc.
    expect(s.expectedReports).toBe(2 * 10 * cpus);
    expect(s.reports).toBe(0);
    expect(s.leak.leakedPages).toBe(0);
    expect(s.rerun).toBe(`vmsim test${cpus === 2 ? "" : " --cpus 1"} --test-loop-count 100 --mode smoke`);
    expect(r.stdout).toContain(
      `\nresult: ok (${100 * cpus} test runs passed; align_shift_alloc_test failed ${10 * cpus} times as it is meant to, ` +
        `with ${20 * cpus} expected allocation warnings; invariants ok, nothing leaked)\nseed: 1\nSUMMARY `,
    );
  }, 120_000);
});

describe("vmsim test --mode smoke on the later generations", () => {
  it.each([
    ["5.10", 1],
    ["5.10", 2],
    ["6.12", 1],
    ["6.12", 2],
  ] as const)(
    "kernel %s, %i CPU(s): every case of that version's module passes, nothing leaks",
    async (kernel, cpus) => {
      const r = await vmsim(
        "test",
        "--mode",
        "smoke",
        "--kernel",
        kernel,
        "--cpus",
        String(cpus),
        "--test-loop-count",
        "100",
      );
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const { cases, cyclesLabel } = TEST_VMALLOC_MODULES[kernel];
      // v5.10's smoke run is its test_vmalloc.sh's single_cpu_test=1: one kthread whatever the CPUs.
      const took = r.stdout.match(new RegExp(`^All test took ${cyclesLabel}\\d+=\\d+ cycles$`, "gm")) ?? [];
      const workers = kernel === "5.10" ? 1 : cpus;
      expect(took).toHaveLength(workers);
      for (const c of cases)
        expect(r.stdout.match(new RegExp(`^Summary: ${c.name} .*$`, "gm")) ?? []).toHaveLength(workers);
      const s = summaryOf(r.stdout);
      expect(s).toMatchObject({ command: "test", ok: true, mode: "smoke", kernel, cpus, failed: 0, reports: 0 });
      expect(s.passed).toBe((cases.length - 1) * 10 * workers);
      expect(s.xfailed).toBe(10 * workers);
      expect(s.leak.leakedPages).toBe(0);
    },
    120_000,
  );
});

describe("vmsim test's parameters", () => {
  it("runs only the tests run_test_mask selects; nr_threads above --cpus share CPUs in turn", async () => {
    // 0x401: fix_size_alloc_test (bit 0) and vm_map_ram_test (bit 10); workers 0 and 2 on CPU0, 1 on CPU1.
    const r = await vmsim(
      "test",
      ...["--cpus", "2", "--nr-threads", "3", "--run-test-mask", "0x401"],
      ...["--test-loop-count", "50", "--nr-pages", "3", "--sequential-test-order"],
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const summaries = r.stdout.match(/^Summary: .*$/gm) ?? [];
    expect(summaries.map((l) => l.split(" ")[1])).toEqual([
      ..."012".split("").flatMap(() => ["fix_size_alloc_test", "vm_map_ram_test"]),
    ]);
    expect(r.stdout).toMatch(summaryLine("vm_map_ram_test", 1, 0, 1, 50));
    expect(r.stdout).toContain("nr_threads=3 sequential_test_order=1 test_repeat_count=1 test_loop_count=50");
    const s = summaryOf(r.stdout);
    expect(s.workers.map((w: { worker: number; cpu: number }) => [w.worker, w.cpu])).toEqual([
      [0, 0],
      [1, 1],
      [2, 0],
    ]);
    expect(s.tests.map((t: { test: string }) => t.test)).toEqual(["fix_size_alloc_test", "vm_map_ram_test"]);
    expect(s.passed).toBe(6);
  });

  it("counts align_shift_alloc_test's failures as xfailed and still exits 0", async () => {
    const r = await vmsim("test", "--cpus", "1", "--run-test-mask", "64", "--test-repeat-count", "3");
    expect(r.code).toBe(0);
    expect((r.stdout.match(/^Summary: .*$/gm) ?? []).length).toBe(1);
    expect(r.stdout).toMatch(summaryLine("align_shift_alloc_test", 0, 3, 3, 1000000));
    expect(summaryOf(r.stdout)).toMatchObject({ ok: true, passed: 0, failed: 0, xfailed: 3, expectedReports: 6 });
  });

  it("a run with more reports than a call's arguments can hold (169,318: full_fit on 8 MiB) ends in its verdict", async () => {
    // Found by fuzzing the command line: spreading them into one push() overflowed the stack.
    const r = await runVmsim(
      [
        "test",
        "--cpus",
        "1",
        "--memory",
        "8M",
        "--run-test-mask",
        "2",
        "--test-loop-count",
        "1",
        "--test-repeat-count",
        "4",
      ],
      { cwd: tmpdir(), timeoutMs: 60_000 },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/^ {4}at |RangeError/m);
    expect(r.stdout).toMatch(/^result: FAILED \(\d+ failures, listed on stderr\)$/m);
  });

  it("fails with exit status 1 when a test that must pass fails, and prints the rerun command", async () => {
    // fix_size_alloc_test with nr_pages beyond the machine's memory: vmalloc returns NULL (and warns).
    const r = await vmsim(
      "test",
      ...["--cpus", "1", "--memory", "16M", "--run-test-mask", "1", "--nr-pages", "5000", "--test-loop-count", "2"],
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^Summary: fix_size_alloc_test passed: 0 failed: 1 xfailed: 0 repeat: 1 loops: 2 avg: \d+ usec$/m,
    );
    expect(r.stderr).toContain("vmsim: FAILED: fix_size_alloc_test failed 1 time");
    expect(r.stderr).toContain("WARN during fix_size_alloc_test: cpu0: vmalloc: allocation failure");
    expect(r.stderr).toContain(
      "vmsim: rerun with: vmsim test --cpus 1 --memory 16M --test-loop-count 2 --run-test-mask 0x1 --nr-pages 5000",
    );
    expect(summaryOf(r.stdout)).toMatchObject({ ok: false, failed: 1 });
    expect(r.stdout).toMatch(/^result: FAILED \(\d+ failures, listed on stderr\)$/m);
  });

  it.each([
    [["--mode", "fast"], "option '--mode <name>' argument 'fast' is invalid. unknown mode"],
    [["--run-test-mask", "0"], "run-test-mask must be an integer in 1..2147483647"],
    [["--run-test-mask", "0x80000000"], "run-test-mask must be an integer in 1..2147483647"],
    [["--nr-threads", "65536"], "nr-threads must be an integer in 0..65535"],
    [["--test-loop-count", "0"], "test-loop-count must be an integer in 1..2147483647"],
    [["--test-repeat-count", "x"], "test-repeat-count must be an integer in 1..2147483647"],
    [["--memory", "65M"], "memory must be a multiple of 4 MiB"],
    [["--nr-thread", "2"], "unknown option '--nr-thread'"],
  ])("refuses %j with one line on stderr and exit status 2", async (args, msg) => {
    const r = await vmsim("test", ...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^vmsim: error: /);
    expect(r.stderr).toContain(msg);
  });
});

/** Boots a 2-CPU arm32 machine on the main thread (CPU 0) with RCU and the kworker hooked in. */
function boot(): void {
  start_kernel(makeConfig({ cpus: 2, layout: "arm32", memory: 64 * 1024 * 1024 }));
  rcu_cpu_starting(0);
  percpuCpuOnline();
  takeReports();
}

const byteAt = (addr: number) => {
  const r = mmuRead(addr, 1);
  if (isFault(r)) throw new Error(`fault at 0x${addr.toString(16)}`);
  return r[0];
};

describe("the percpu chunk allocator (pcpu_alloc_test's __alloc_percpu / free_percpu)", () => {
  it("hands out first-fit aligned offsets, valid and zeroed in every unit", () => {
    boot();
    const a = __alloc_percpu(4, 4);
    const b = __alloc_percpu(8, 64);
    const c = __alloc_percpu(1, 2); // rounded up to one 4-byte fragment, right after a
    /*
     * unit 0: 0xff7f0000 a (4) | 0xff7f0004 c (4) | … | 0xff7f0040 b (8)
     */
    expect([a, b, c]).toEqual([0xff7f0000, 0xff7f0040, 0xff7f0004]);
    expect(vmallocinfo()).toContain("0xff7f0000-0xff800000   65536 pcpu_get_vm_areas vmalloc");
    // One page of each unit is backed.
    expect(pcpu_nr_pages()).toBe(2);

    // CPU1's copy of b is one unit up; a freed and reallocated area comes back zeroed.
    expect(mmuWrite(b + UNIT, new Uint8Array([0xaa]))).toBe(true);
    expect(byteAt(b + UNIT)).toBe(0xaa);
    free_percpu(b);
    expect(__alloc_percpu(8, 64)).toBe(b);
    expect(byteAt(b + UNIT)).toBe(0);

    free_percpu(a);
    expect(__alloc_percpu(4, 4)).toBe(a);
    for (const p of [a, b, c]) free_percpu(p);
    expect(pcpuChunkCensus()).toEqual({ chunks: 1, inUse: 0 });
    // The chunk's last page is mapped, without a guard page, and its pages are counted as percpu.
    expect(checkMachine()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });

  it("creates a chunk when none fits, and the balance work destroys every free chunk but one", () => {
    boot();
    const x = __alloc_percpu(4, 4);
    // A whole unit cannot share the first chunk with x: the next chunk goes right below it.
    const y = __alloc_percpu(UNIT, 4096);
    expect([x, y]).toEqual([0xff7f0000, 0xff7e0000]);
    expect(pcpuChunkCensus()).toEqual({ chunks: 2, inUse: 2 });
    expect(pcpu_nr_pages()).toBe(2 * (1 + 8));

    free_percpu(y); // the other chunk still holds x: nothing to reap
    expect(run_pending_work()).toBe(0);
    free_percpu(x); // two free chunks: the reaper runs
    expect(run_pending_work()).toBe(1);
    expect(pcpuChunkCensus()).toEqual({ chunks: 1, inUse: 0 });
    expect(pcpu_nr_pages()).toBe(2);
    purge_vmap_area_lazy();
    expect(vmallocinfo()).toEqual(["0xff7f0000-0xff800000   65536 pcpu_get_vm_areas vmalloc"]);
    expect(checkMachine()).toEqual([]);

    expect(__alloc_percpu(UNIT + 4, 4)).toBe(0);
    expect(takeReports().map((r) => r.text)).toEqual([
      "WARNING: CPU: 0 at mm/percpu.c pcpu_alloc: illegal size (32772) or align (4) for percpu allocation",
    ]);
  });
});

describe("kvfree_rcu (the kvfree_rcu tests)", () => {
  it.each([
    ["kvfree_rcu(p, rcu)", (p: number) => kvfree_rcu(p, 0)],
    ["kvfree_rcu_mightsleep(p)", (p: number) => kvfree_rcu_mightsleep(p)],
  ])("%s: vfree from the RCU callback takes the deferred path, free_work frees the area", (_, free) => {
    boot();
    const p = vmalloc(4096);
    free(p);
    expect(find_vm_area(p)).not.toBe(0);
    // The callback runs in softirq context: in_interrupt(), so vfree only queues the area.
    rcu_barrier();
    expect(find_vm_area(p)).not.toBe(0);
    expect(work_pending(per_cpu_ptr(vfree_deferred, 0) + VFREE_DEFERRED.off.wq)).toBe(true);
    expect(run_pending_work()).toBe(1);
    expect(find_vm_area(p)).toBe(0);
    expect(checkMachine()).toEqual([]);
    expect(takeReports()).toEqual([]);
  });
});

describe("kfree_rcu of kmalloc'ed objects (v5.10's kvfree_rcu_*_slab_test)", () => {
  it.each([
    ["kfree_rcu(p, rcu)", (p: number) => kfree_rcu(p, 0)],
    ["kfree_rcu_mightsleep(p)", (p: number) => kfree_rcu_mightsleep(p)],
  ])("%s: the object stays allocated until the grace period, then kfree gives it back", (_, free) => {
    boot();
    const p = kmalloc(36, GFP_KERNEL);
    free(p);
    // Not freed yet: the next object of the same cache is another one.
    const other = kmalloc(36, GFP_KERNEL);
    expect(other).not.toBe(p);
    kfree(other);
    rcu_barrier();
    // Freed by the callback: SLUB's freelist hands the most recently freed object out first.
    expect(kmalloc(36, GFP_KERNEL)).toBe(p);
    expect(takeReports()).toEqual([]);
  });
});

describe("each kernel's lib/test_vmalloc.c", () => {
  it("v5.10's table: no vm_map_ram_test, the two slab cases at bits 10 and 11, no xfailed, a kthread per CPU", () => {
    const m = TEST_VMALLOC_MODULES["5.10"];
    expect(m.cases.map((c) => c.name)).toEqual([
      ...TEST_CASE_ARRAY.slice(0, 10).map((c) => c.name),
      "kvfree_rcu_1_arg_slab_test",
      "kvfree_rcu_2_arg_slab_test",
    ]);
    expect([m.xfailed, m.cyclesLabel, m.nrPages, m.nrThreads]).toEqual([false, "CPU", false, false]);
  });

  it("v6.12's is mainline's table, before xfail; 4.19 (which predates the module) runs mainline's", () => {
    expect(TEST_VMALLOC_MODULES["6.12"].cases).toEqual(TEST_CASE_ARRAY);
    expect([TEST_VMALLOC_MODULES["6.12"].xfailed, TEST_VMALLOC_MODULES["6.12"].cyclesLabel]).toEqual([false, "worker"]);
    expect(TEST_VMALLOC_MODULES["4.19"]).toMatchObject({
      cases: TEST_CASE_ARRAY,
      xfailed: true,
      cyclesLabel: "worker",
    });
  });

  it("the slab cases pass on a machine's CPUs and leave nothing behind", async () => {
    const m = await Machine.boot(makeConfig({ cpus: 2, memory: 64 * 1024 * 1024 }));
    try {
      for (const test of ["kvfree_rcu_1_arg_slab_test", "kvfree_rcu_2_arg_slab_test"] as const) {
        const r = await m.runAll("test_vmalloc", { test, loops: 200, round: 1 });
        expect((r as { passed: boolean }[]).map((x) => x.passed)).toEqual([true, true]);
      }
      await m.run(0, "test_vmalloc_cleanup");
      expect(checkMachine()).toEqual([]);
      expect(m.reports).toEqual([]);
    } finally {
      await m.shutdown();
    }
  });
});
