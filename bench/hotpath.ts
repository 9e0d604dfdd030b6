/**
 * The hot path in CPU time (issue 11 item 2): fix_size, random_size and
 * long_busy_list of the kernel's test_vmalloc loops on one CPU, in the
 * production configuration (lockdep and slub_debug off) and the debug one
 * (`vmsim test`'s defaults: both on), timed by the CPU time the process
 * spent (process.cpuUsage), not the wall clock: on a shared host the time a
 * thread waits for a core is not the code's. Writes
 * bench/results/<name>.{md,json} (default name "hotpath").
 *
 *   node dist/bench/hotpath.js [--base <dir> | --floor] [--rounds 3] [--loops 100000] [--name hotpath] [--out <dir>]
 *
 * The machine boots in this process, its main thread acting as CPU 0 as the
 * unit tests run kernel code (the same code a CPU worker runs: its sched-point
 * slow paths — machine stop, soft-lockup watchdog, interrupts and kworker, RCU
 * tick — are plugged in as cpu.ts does). Each measurement is a child process:
 * one warm-up run of the case (a tenth of the loops), then three timed runs,
 * the fastest kept. `--base <dir>` names another build's dist/ (a checkout of
 * main, built): each round then measures it and this build in turn (ABAB),
 * and the table shows both and the change. `--floor` compares with the floor
 * build instead (tools/floor_build.ts, built into dist-floor/ first): the same
 * kernel code with every Atomics operation a plain access, which is what the
 * pair costs without the price of its atomic instructions. The figure is the minimum over
 * `--rounds`. fix_size runs `--loops` pairs, the others a tenth (they map ~50
 * pages a pair).
 */
import { execFile } from "node:child_process";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildFloor } from "../tools/floor_build.js";
import { RESULTS_DIR, fmt, hostInfo, hostLine, positiveInt, runBenchMain, writeResults } from "./report.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const THIS_DIST = resolve(HERE, "..");
const TESTS = ["fix_size_alloc_test", "random_size_alloc_test", "long_busy_list_alloc_test"] as const;
const CONFIGS = [
  { name: "production", lockdep: false, slubDebug: false },
  { name: "debug", lockdep: true, slubDebug: true },
] as const;

/** What a child prints: CPU µs per pair of its fastest timed run, and sched points per pair. */
interface ChildResult {
  readonly cpuUs: number;
  readonly schedPoints: number;
}

/** The child: boots a machine in this thread, runs the case, prints a ChildResult. */
async function child(dist: string, test: string, loops: number, lockdep: boolean, slubDebug: boolean): Promise<void> {
  const src = (m: string) => import(join(dist, "src", m));
  const { makeConfig } = await src("shared/config.js");
  // Builds before slub_debug became a machine flag set it with setSlubDebug (a --base may be one).
  const { setSlubDebug } = await src("mm/slab.js");
  const { start_kernel } = await src("workers/boot.js");
  const { percpuCpuOnline } = await src("kernel/cpuhp.js");
  const { rcu_cpu_starting } = await src("rcu/tree.js");
  const { watchdog_enable } = await src("sched/watchdog.js");
  const { findWorkload, cpuCtx } = await src("workers/workload.js");
  const { schedPointCount, addSchedSlowPath } = await src("sched/sched_point.js");
  const { machineStopping } = await src("shared/arena.js");
  setSlubDebug?.(slubDebug);
  start_kernel(makeConfig({ cpus: 1, seed: 1, memory: 256 * 2 ** 20, lockdep, slubDebug }));
  percpuCpuOnline();
  rcu_cpu_starting(0);
  // cpu.ts's slow paths, in its order: the machine-stop check, then the watchdog.
  addSchedSlowPath(
    () => {
      if (machineStopping()) throw new Error("machine stopped");
    },
    4096,
    true,
  );
  watchdog_enable();
  const fn = findWorkload("test_vmalloc");
  const ctx = cpuCtx(0, 1);
  let round = 0;
  const run = (n: number) => {
    const sp0 = schedPointCount();
    const c0 = process.cpuUsage();
    const r = fn({ test, loops: n, round: ++round }, ctx) as { passed: boolean; pairs: number };
    const c = process.cpuUsage(c0);
    if (!r.passed) throw new Error(`${test} failed`);
    return { cpuUs: (c.user + c.system) / r.pairs, schedPoints: (schedPointCount() - sp0) / r.pairs };
  };
  run(Math.max(1, Math.round(loops / 10)));
  const runs = [run(loops), run(loops), run(loops)].sort((a, b) => a.cpuUs - b.cpuUs);
  process.stdout.write(`${JSON.stringify(runs[0])}\n`);
}

function measure(
  dist: string,
  test: string,
  loops: number,
  lockdep: boolean,
  slubDebug: boolean,
): Promise<ChildResult> {
  const args = [
    fileURLToPath(import.meta.url),
    "--child",
    dist,
    test,
    String(loops),
    String(lockdep),
    String(slubDebug),
  ];
  return new Promise((res, rej) => {
    execFile(process.execPath, args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`${test}: ${stderr.trim() || err.message}`));
      else res(JSON.parse(stdout.trim().split("\n").at(-1)!) as ChildResult);
    });
  });
}

interface Row {
  readonly test: string;
  readonly config: string;
  readonly cpuUs: number;
  readonly schedPoints: number;
  readonly baseCpuUs: number | null;
  readonly baseSchedPoints: number | null;
}

async function main(): Promise<void> {
  if (process.argv[2] === "--child") {
    const [dist, test, loops, lockdep, slubDebug] = process.argv.slice(3);
    await child(dist!, test!, Number(loops), lockdep === "true", slubDebug === "true");
    return;
  }
  const { values } = parseArgs({
    options: {
      base: { type: "string" },
      floor: { type: "boolean", default: false },
      rounds: { type: "string", default: "3" },
      loops: { type: "string", default: "100000" },
      name: { type: "string", default: "hotpath" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const rounds = positiveInt("rounds", values.rounds);
  const loops = positiveInt("loops", values.loops);
  if (values.floor && values.base !== undefined) throw new RangeError("--base and --floor: give one of them");
  const floorDir = join(THIS_DIST, "..", "dist-floor");
  if (values.floor) buildFloor(floorDir);
  const base = values.floor ? floorDir : values.base === undefined ? null : resolve(values.base);
  /** The column of the other build. */
  const other = values.floor ? "floor" : "base";
  const host = hostInfo();
  const loadBefore = loadavg()[0]!;
  const rows: Row[] = [];
  for (const config of CONFIGS)
    for (const test of TESTS) {
      const n = test === "fix_size_alloc_test" ? loops : Math.max(1, Math.round(loops / 10));
      const mine: ChildResult[] = [];
      const theirs: ChildResult[] = [];
      for (let r = 0; r < rounds; r++) {
        if (base !== null) theirs.push(await measure(base, test, n, config.lockdep, config.slubDebug));
        mine.push(await measure(THIS_DIST, test, n, config.lockdep, config.slubDebug));
      }
      const best = (xs: ChildResult[]) => xs.reduce((a, b) => (b.cpuUs < a.cpuUs ? b : a));
      const m = best(mine);
      const t = theirs.length > 0 ? best(theirs) : null;
      rows.push({
        test,
        config: config.name,
        cpuUs: m.cpuUs,
        schedPoints: m.schedPoints,
        baseCpuUs: t?.cpuUs ?? null,
        baseSchedPoints: t?.schedPoints ?? null,
      });
      if (process.stderr.isTTY) process.stderr.write(`  ${config.name} ${test}: ${fmt(m.cpuUs)} µs\n`);
    }
  const loadAfter = loadavg()[0]!;
  const argv = process.argv.slice(2).join(" ");
  const withBase = base !== null;
  const md = [
    hostLine(host),
    "",
    `\`node dist/bench/hotpath.js${argv ? ` ${argv}` : ""}\` — 1 CPU, kernel 4.19, CPU µs per vmalloc+vfree pair` +
      ` (process CPU time; the minimum of ${rounds} rounds of three runs), host load ${loadBefore.toFixed(1)}` +
      ` before and ${loadAfter.toFixed(1)} after.`,
    "",
    withBase
      ? `| config | case | ${other} µs | this build µs | change | sched points per pair (${other} / this) |`
      : "| config | case | CPU µs per pair | sched points per pair |",
    withBase ? "|---|---|---:|---:|---:|---:|" : "|---|---|---:|---:|",
    ...rows.map((r) =>
      withBase
        ? `| ${r.config} | ${r.test} | ${fmt(r.baseCpuUs!)} | ${fmt(r.cpuUs)} | ${((100 * (r.cpuUs - r.baseCpuUs!)) / r.baseCpuUs!).toFixed(1)} % | ${fmt(r.baseSchedPoints!)} / ${fmt(r.schedPoints)} |`
        : `| ${r.config} | ${r.test} | ${fmt(r.cpuUs)} | ${fmt(r.schedPoints)} |`,
    ),
    "",
    ...CONFIGS.slice(1).map((c) => {
      const ratio = (t: string) => {
        const d = rows.find((r) => r.config === c.name && r.test === t)!;
        const p = rows.find((r) => r.config === "production" && r.test === t)!;
        return `${t} ${(d.cpuUs / p.cpuUs).toFixed(2)}×`;
      };
      return `${c.name} ÷ production (this build): ${TESTS.map(ratio).join(", ")}.`;
    }),
    "",
  ].join("\n");
  writeResults(values.out, values.name, md, { host, loops, rounds, base, loadBefore, loadAfter, rows });
  process.stdout.write(md);
}

await runBenchMain(main);
