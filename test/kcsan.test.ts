/**
 * KCSAN (docs/kcsan.md): the instrumented build rewrites exactly the plain and
 * marked accesses of kernel state, the normal build never sees it, a pinned
 * deterministic run reports a data race in KCSAN's format and replays it, and
 * a short free-running `--kcsan` stress sets watchpoints (CI's KCSAN run).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kcsanTransformer } from "../tools/kcsan_build.js";
import { Explorer } from "../src/explore/explorer.js";
import { replayFileOf, writeReplayFile } from "../src/explore/replay_file.js";
import { findScenario } from "../src/explore/scenario.js";
import { makeConfig } from "../src/shared/config.js";
import { runStress } from "../src/workers/stress.js";
import { vmsim } from "./helpers/vmsim.js";

const ROOT = resolve(import.meta.dirname, "..");

/** Compiles `source` as the file `file` (below the repository) through the KCSAN transformer. */
function instrument(file: string, source: string): { text: string; accesses: number; sites: string[] } {
  const stats = { files: 0, accesses: 0, sites: [] as string[] };
  const out = ts.transpileModule(source, {
    fileName: join(ROOT, file),
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 },
    transformers: { before: [kcsanTransformer(stats)] },
  });
  return { text: out.outputText, accesses: stats.accesses, sites: stats.sites };
}

const ARENA_IMPORT =
  'import { I32, U8, F64 } from "../shared/arena.js";\nimport { data_race } from "../locks/atomic.js";\n';

describe("the KCSAN transformer", () => {
  it("rewrites plain loads, stores and read-modify-writes of the arena views, and imports the runtime", () => {
    const { text, accesses, sites } = instrument(
      "src/mm/example.ts",
      `${ARENA_IMPORT}export function f(a: number, b: number): number {\n  I32[a] = I32[b]! + 1;\n  F64[a] += 2;\n  U8[b]++;\n  --I32[(a)]!;\n  const g = () => I32[a]!;\n  return I32[b]! + g();\n}\n`,
    );
    expect(text).toContain('from "../sched/kcsan.js"');
    // The second argument is the site: the kernel function the access is in (the build's sites table).
    expect(text).toContain("I32[__tsan_write4(a, 0)] = I32[__tsan_read4(b, 0)] + 1;");
    expect(text).toContain("F64[__tsan_read_write8(a, 0)] += 2;");
    expect(text).toContain("U8[__tsan_read_write1(b, 0)]++;");
    expect(text).toContain("--I32[__tsan_read_write4((a), 0)];");
    expect(text).toContain("const g = () => I32[__tsan_read4(a, 1)];");
    expect(text).toContain("return I32[__tsan_read4(b, 0)] + g();");
    expect(sites).toEqual(["f", "g"]);
    expect(accesses).toBe(7);
  });

  it("checks Atomics operations as marked accesses, leaves wait/notify and data_race() alone", () => {
    const { text } = instrument(
      "src/lib/example.ts",
      `${ARENA_IMPORT}export function g(i: number): number {\n  Atomics.store(I32, i, 1);\n  Atomics.add(I32, i, 1);\n  Atomics.notify(I32, i);\n  return Atomics.load(I32, i) + data_race(I32[i]!);\n}\n`,
    );
    // Outside the relaxed atomics a store releases and a read-modify-write is a full barrier.
    expect(text).toContain("Atomics.store(I32, __tsan_atomic_write_release4(i), 1);");
    expect(text).toContain("Atomics.add(I32, __tsan_atomic_read_write_mb4(i), 1);");
    expect(text).toContain("Atomics.notify(I32, i);");
    expect(text).toContain("Atomics.load(I32, __tsan_atomic_read4(i)) + data_race(I32[i]);");
  });

  it("keeps atomic_t's void operations, atomic_set and WRITE_ONCE relaxed, and starts the unlocks with a release", () => {
    const src = `${ARENA_IMPORT}export function atomic_inc(v: number): void {\n  Atomics.add(I32, v >> 2, 1);\n}\nexport function WRITE_ONCE(p: number, v: number): void {\n  Atomics.store(I32, p >> 2, v);\n}\n`;
    const { text } = instrument("src/locks/atomic.ts", src);
    expect(text).toContain("Atomics.add(I32, __tsan_atomic_read_write4(v >> 2), 1);");
    expect(text).toContain("Atomics.store(I32, __tsan_atomic_write4(p >> 2), v);");
    // The lock code is not instrumented, but its release points are, in every file.
    const unlock =
      "export function arch_spin_unlock(l: number): void {\n  l++;\n}\nexport function spin_lock(l: number): void {\n  l++;\n}\n";
    const lock = instrument("src/locks/spinlock.ts", unlock);
    expect(lock.text).toMatch(/function arch_spin_unlock\(l\) \{\s*__tsan_release\(\);\s*l\+\+;/);
    expect(lock.text).toMatch(/function spin_lock\(l\) \{\s*l\+\+;/);
    expect(lock.text).toContain('import { __tsan_release } from "../sched/kcsan.js";');
    expect(lock.accesses).toBe(0);
  });

  it("marks __WRITE_ONCE's plain store and __READ_ONCE's plain load (marked in the KCSAN build, plain in the normal one)", () => {
    const src = `${ARENA_IMPORT}export function __WRITE_ONCE(ptr: number, v: number): void {\n  I32[ptr >> 2] = v;\n}\nexport function __READ_ONCE(ptr: number): number {\n  return I32[ptr >> 2]!;\n}\nexport function h(i: number): number {\n  I32[i] = 0;\n  return I32[i]!;\n}\n`;
    const { text } = instrument("src/locks/atomic.ts", src);
    expect(text).toContain("I32[__tsan_atomic_write4(ptr >> 2)] = v;");
    expect(text).toContain("return I32[__tsan_atomic_read4(ptr >> 2)];");
    expect(text).toContain("I32[__tsan_write4(i, 0)] = 0;");
    expect(text).toContain("return I32[__tsan_read4(i, 0)];");
    const normal = readFileSync(join(ROOT, "dist/src/locks/atomic.js"), "utf8");
    expect(normal).toMatch(/function __WRITE_ONCE\(ptr, v\) \{\s*I32\[ptr >> 2\] = v;/);
    expect(normal).toMatch(/function __READ_ONCE\(ptr\) \{\s*return I32\[ptr >> 2\];/);
  });

  it("turns the byte view's fill, subarray and set into memset and memcpy range checks", () => {
    const { text } = instrument(
      "src/mm/example.ts",
      `${ARENA_IMPORT}export function h(a: number, b: Uint8Array): void {
  U8.fill(0, a, a + 64);
  b.set(U8.subarray(a, a + 8), 0);
  U8.set(b, a);
  U8.fill(0);
}
`,
    );
    expect(text).toContain("__tsan_memset(0, a, a + 64);");
    expect(text).toContain("b.set(__tsan_memcpy_from(a, a + 8), 0);");
    expect(text).toContain("__tsan_memcpy_to(b, a);");
    expect(text).toContain("U8.fill(0);");
  });

  it("leaves harness code alone: camelCase functions, folders outside the kernel, excluded files, other arrays", () => {
    const body = "export function irqSchedPoint(i: number): number {\n  return I32[i]!;\n}\n";
    expect(instrument("src/kernel/example.ts", `${ARENA_IMPORT}${body}`).accesses).toBe(0);
    const kernel = "export function f(i: number): number {\n  return I32[i]!;\n}\n";
    expect(instrument("src/workers/example.ts", `${ARENA_IMPORT}${kernel}`).accesses).toBe(0);
    expect(instrument("src/sched/example.ts", `${ARENA_IMPORT}${kernel}`).accesses).toBe(0);
    expect(instrument("src/locks/spinlock.ts", `${ARENA_IMPORT}${kernel}`).accesses).toBe(0);
    expect(instrument("src/mm/slab.ts", `${ARENA_IMPORT}${kernel}`).accesses).toBe(0);
    expect(instrument("src/mm/example.ts", `${ARENA_IMPORT}${kernel}`).accesses).toBe(1);
    const local = "const I32 = new Int32Array(4);\nexport function f(i: number): number {\n  return I32[i]!;\n}\n";
    const plain = instrument("src/mm/example.ts", local);
    expect(plain.accesses).toBe(0);
    expect(plain.text).not.toContain("kcsan");
  });
});

describe("the two builds", () => {
  it("dist/ has no KCSAN call; dist-kcsan/ has them in the kernel and is dist/ byte for byte elsewhere", () => {
    const read = (root: string, file: string) => readFileSync(join(ROOT, root, "src", file), "utf8");
    for (const file of ["mm/v4.19/vmalloc.js", "mm/v6.12/vmalloc.js", "lib/rbtree.js"]) {
      expect(read("dist", file)).not.toContain("__tsan_");
      expect(read("dist-kcsan", file)).toContain("__tsan_read4(");
    }
    for (const file of ["workers/stress.js", "sched/sched_det.js", "locks/lockdep.js", "explore/explorer.js"])
      expect(read("dist-kcsan", file)).toBe(read("dist", file));
    // The lock code differs only where it releases: the unlocks start with __tsan_release(), which dist/ has not.
    const unlock = read("dist-kcsan", "locks/spinlock.js");
    expect(unlock).toContain("__tsan_release();");
    expect(unlock.replace(/\n\s*__tsan_release\(\);/g, "").replace(/^import \{ __tsan_release \}.*\n/m, "")).toBe(
      read("dist", "locks/spinlock.js"),
    );
  });
});

describe("a deterministic --kcsan run (no-vmap-area-lock, kernel 4.19, random p 0.01, the first reporting seed of 1..20)", () => {
  const params = { ops: 40, skip: [] };
  const strategy = { kind: "random" as const, p: 0.01 };
  const scenario = findScenario("stress")!;
  const config = makeConfig({
    ...scenario.config,
    cpus: 2,
    memory: 8 * 1024 * 1024,
    seed: 1,
    inject: ["no-vmap-area-lock"],
    kcsan: true,
  });
  let ex: Explorer;
  const dir = mkdtempSync(join(tmpdir(), "vmsim-kcsan-"));
  beforeAll(async () => {
    ex = await Explorer.start(config, scenario);
  });
  afterAll(async () => {
    await ex.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports the data race in KCSAN's format, and its replay reproduces it bit for bit", async () => {
    // Which seed reports first moves with the kernel code's access sequence; that one of the first 20 does, does not.
    let seed = 1;
    let rec = await ex.runOnce(strategy, seed, params);
    while (!rec.failure?.signature.startsWith("kcsan:") && seed < 20) rec = await ex.runOnce(strategy, ++seed, params);
    const signature = rec.failure?.signature ?? "";
    expect(signature).toMatch(/^kcsan: BUG: KCSAN: data-race in \w+ \/ \w+$/);
    const pair = signature.slice("kcsan: BUG: KCSAN: data-race in ".length);
    const text = rec.failure!.text;
    expect(text).toMatch(/\n {0,4}(read|write) to 0x[0-9a-f]+ of [48] bytes by task \d on cpu \d:\n/);
    expect(text).toMatch(/\n\s+alloc_vmap_area\n/);
    expect(text).toMatch(/locks held: /);
    const rep = await ex.runOnce({ kind: "replay", plan: rec.record.decisions }, seed, params);
    expect(rep.failure?.signature).toBe(rec.failure!.signature);
    expect(rep.digest).toBe(rec.digest);

    // The CLI replays the file only when told it is a KCSAN run.
    const file = join(dir, "replay.json");
    writeReplayFile(
      file,
      replayFileOf({
        config,
        scenario: scenario.name,
        script: undefined,
        params,
        strategy: { kind: "random", p: 0.01 },
        seed,
        stepCap: 50_000_000,
        outcome: rec,
      }),
    );
    const refused = await vmsim("replay", file);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split("\n")).toEqual([
      `vmsim: error: ${file} records a --kcsan run: replay it with --kcsan`,
    ]);
    const replayed = await vmsim("replay", "--kcsan", file);
    expect(replayed.stdout).toContain(`BUG: KCSAN: data-race in ${pair}`);
    expect(replayed.code).toBe(1);
  });
});

describe("vmsim explore --kcsan --kcsan-strict → vmsim replay --kcsan (vmap-cache-unlocked, random p 0.5, 40 ops)", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmsim-kcsan-explore-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // The cache hint is a plain store after the unlock: only the strict rules watch a plain write.
  it("the replay file of a found KCSAN report replays bit for bit, 5 times of 5", async () => {
    const found = await vmsim(
      ...["explore", "--scenario", "stress", "--inject", "vmap-cache-unlocked", "--kcsan", "--kcsan-strict"],
      ...["--strategy", "random", "--p", "0.5", "--ops", "40", "--iterations", "8", "--budget", "10m", "--out", dir],
    );
    expect(found.code).toBe(1);
    expect(found.stdout).toMatch(/\nFOUND on run \d+ .*BUG: KCSAN: data-race in \w+ \/ \w+\n/);
    const file = /^replay file: (\S+) /m.exec(found.stdout)?.[1] ?? "";
    expect(file.startsWith(dir)).toBe(true);
    const replayed = await vmsim("replay", "--kcsan", "--kcsan-strict", "--repeat", "5", file);
    expect(replayed.stdout).not.toContain("DIVERGED");
    expect(replayed.stdout).toMatch(/ = the recorded run's \(bit for bit\)\n/);
    expect(replayed.stdout).toContain("repeat: 5/5 replays failed as recorded, 5/5 bit for bit\n");
    expect(replayed.code).toBe(1);
  }, 300_000);
});

describe("a short free-running --kcsan stress (CI)", () => {
  it("boots the CPUs on the KCSAN build: they set up watchpoints and check every access", async () => {
    const r = await runStress(makeConfig({ kcsan: true, kcsanSkipWatch: 400, seed: 3 }), { ops: 2000 });
    expect(r.config.kcsan).toBe(true);
    expect(r.kcsan).not.toBeNull();
    expect(r.kcsan!.setup_watchpoints).toBeGreaterThan(10);
    expect(r.ops).toBeGreaterThanOrEqual(2000);
    // Without --kcsan there are no counters at all.
    const plain = await runStress(makeConfig({ seed: 3 }), { ops: 200 });
    expect(plain.kcsan).toBeNull();
  });
});
