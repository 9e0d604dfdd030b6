/**
 * The profile of a vmalloc+vfree pair (issue 11 item 2): fix_size,
 * random_size and long_busy_list (src/workers/workloads/test_vmalloc.ts) on
 * 1 CPU in the production configuration (lockdep, slub_debug and tracing
 * off, kernel 4.19), and per pair what it does — and where the time goes.
 * Writes bench/results/<name>.{md,json} (default name "profile").
 *
 *   node dist/bench/profile.js [--loops 100000] [--count-loops 20000] [--top 12] [--name profile] [--out <dir>]
 *
 * Each case runs in two child processes, so that nothing the counting needs
 * is in the timed process:
 *
 * - counting: a child whose CPU worker is loaded behind bench/profile_counting.ts
 *   (wrapped Atomics, counting Proxies for the arena views, V8 precise
 *   coverage). The case runs `--count-loops` pairs and then twice as many;
 *   the difference of the counts over the difference of the pairs is the
 *   per-pair figure (boot, warm-up and each run's setup cancel out; work
 *   done in batches — the lazy purge — averages over the runs' batches).
 * - timing: a child under `node --cpu-prof`: the case runs as
 *   src/workers/scaling.ts measures it (a warm-up, then 3 runs of `--loops`
 *   pairs; random_size and long_busy_list a tenth), and its µs per pair is
 *   reported; the CPU worker's .cpuprofile (the biggest one) is aggregated
 *   by function, and the `--top` functions by self time are listed with
 *   their share of the worker's samples in vmsim's code and the garbage
 *   collector (node's module loading at the worker's start left out).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { TestVmallocCase, TestVmallocResult } from "../src/workers/workloads/test_vmalloc.js";
import type { WorkerCounts } from "./profile_counting.js";
import { RESULTS_DIR, fmt, hostInfo, hostLine, positiveInt, runBenchMain, writeResults } from "./report.js";

const TESTS: readonly TestVmallocCase[] = [
  "fix_size_alloc_test",
  "random_size_alloc_test",
  "long_busy_list_alloc_test",
];
const SELF = fileURLToPath(import.meta.url);
/** Samples of the CPU profile, µs apart. */
const PROF_INTERVAL_US = 200;

/** A row of the counts table: what is counted, and how, from one collect's counts. */
interface CountRow {
  readonly name: string;
  readonly how: string;
  readonly of: (c: WorkerCounts) => number;
}

const callsOf = (c: WorkerCounts, pred: (name: string, path: string) => boolean) =>
  Object.entries(c.calls).reduce((a, [k, n]) => {
    const [name, path] = k.split(" ") as [string, string];
    return pred(name, path) ? a + n : a;
  }, 0);
const calls =
  (...names: string[]) =>
  (c: WorkerCounts) =>
    callsOf(c, (n) => names.includes(n));

const COUNT_ROWS: readonly CountRow[] = [
  { name: "sched points", how: "calls of sched_point + sched_op_point", of: calls("sched_point", "sched_op_point") },
  {
    name: "Atomics operations",
    how: "calls of every Atomics method",
    of: (c) => Object.values(c.atomics).reduce((a, n) => a + n, 0),
  },
  { name: "arena typed-array reads", how: "element reads of the arena's views", of: (c) => c.reads },
  { name: "arena typed-array writes", how: "element writes of the arena's views", of: (c) => c.writes },
  {
    name: "trace-hook calls",
    how: "calls of trace_event (event rings) and of src/trace/ functions",
    of: (c) => callsOf(c, (n, p) => n === "trace_event" || p.startsWith("src/trace/")),
  },
  { name: "slab allocations", how: "calls of slab_alloc (kmalloc, kmem_cache_alloc)", of: calls("slab_alloc") },
  { name: "slab frees", how: "calls of slab_free (kfree, kmem_cache_free)", of: calls("slab_free") },
  { name: "page allocations", how: "calls of __alloc_pages_nodemask", of: calls("__alloc_pages_nodemask") },
  { name: "page frees", how: "calls of __free_pages", of: calls("__free_pages") },
  { name: "PTEs set", how: "calls of set_pte", of: calls("set_pte") },
  {
    name: "PTEs cleared",
    how: "calls of pte_clear + ptep_get_and_clear",
    of: calls("pte_clear", "ptep_get_and_clear"),
  },
  {
    name: "rb-tree calls",
    how: "calls of src/lib/rbtree.ts functions (rb_left/rb_right steps, insert, erase, rebalance, next); the vmalloc generations' own descent loops are not calls",
    of: (c) => callsOf(c, (_, p) => p === "src/lib/rbtree.js"),
  },
  { name: "RCU callbacks queued", how: "calls of call_rcu + kfree_rcu", of: calls("call_rcu", "kfree_rcu") },
  { name: "RCU callbacks run", how: "calls of __rcu_reclaim", of: calls("__rcu_reclaim") },
  {
    name: "JS function calls (all of src/)",
    how: "calls of every function in src/",
    of: (c) => callsOf(c, (_, p) => p.startsWith("src/")),
  },
];

/** What a counting child prints: per-pair counts. */
interface CountResult {
  readonly test: TestVmallocCase;
  readonly pairs: number;
  readonly perPair: Record<string, number>;
  readonly atomicsPerPair: Record<string, number>;
  /** The most called functions, calls per pair. */
  readonly topCalls: { readonly fn: string; readonly perPair: number }[];
}

/** What a timing child prints, and what the parent adds from its profile. */
interface TimeResult {
  readonly test: TestVmallocCase;
  readonly loops: number;
  readonly usPerPair: number;
  readonly topSelf: { readonly fn: string; readonly selfPct: number }[];
}

/*** The children ***/

/** The counting child: every CPU worker is loaded behind the counting preload. */
async function countChild(test: TestVmallocCase, loops: number): Promise<CountResult> {
  const wt = createRequire(import.meta.url)("node:worker_threads") as typeof import("node:worker_threads");
  const Real = wt.Worker;
  const pre = new URL("./profile_counting.js", import.meta.url).href;
  wt.Worker = class extends Real {
    constructor(url: string | URL, opts: import("node:worker_threads").WorkerOptions = {}) {
      super(`import(${JSON.stringify(pre)}).then(() => import(${JSON.stringify(String(url))}))`, {
        ...opts,
        eval: true,
      });
    }
  };
  syncBuiltinESMExports();
  const { Machine } = await import("../src/workers/machine.js");
  const { memoryFor } = await import("../src/workers/scaling.js");
  const { PROFILE_CHANNEL } = await import("./profile_counting.js");
  const m = await Machine.boot({
    kernel: "4.19",
    cpus: 1,
    seed: 1,
    memory: memoryFor(1, [test], loops),
    lockdep: false,
    slubDebug: false,
  });
  const channel = new wt.BroadcastChannel(PROFILE_CHANNEL);
  const collect = () =>
    new Promise<WorkerCounts>((resolve) => {
      channel.onmessage = (e) => resolve((e as { data: WorkerCounts }).data);
      channel.postMessage("collect");
    });
  let round = 0;
  const run = async (n: number) => {
    const [r] = (await m.runAll("test_vmalloc", { test, loops: n, round: ++round })) as TestVmallocResult[];
    if (!r?.passed || m.reports.length > 0) throw new Error(`${test} failed: ${m.reports[0]?.text ?? ""}`);
    return r.pairs;
  };
  try {
    await run(Math.max(1, loops >> 2));
    await collect();
    const p1 = await run(loops);
    const c1 = await collect();
    const p2 = await run(2 * loops);
    const c2 = await collect();
    const pairs = p2 - p1;
    const diff = (of: (c: WorkerCounts) => number) => (of(c2) - of(c1)) / pairs;
    const perPair = Object.fromEntries(COUNT_ROWS.map((r) => [r.name, diff(r.of)]));
    const atomicsPerPair = Object.fromEntries(
      Object.keys(c2.atomics)
        .map((k) => [k, diff((c) => c.atomics[k] ?? 0)] as const)
        .filter(([, n]) => n !== 0),
    );
    const topCalls = Object.keys(c2.calls)
      .filter((k) => k.split(" ")[1]!.startsWith("src/"))
      .map((fn) => ({ fn, perPair: diff((c) => c.calls[fn] ?? 0) }))
      .sort((a, b) => b.perPair - a.perPair)
      .slice(0, 15);
    return { test, pairs, perPair, atomicsPerPair, topCalls };
  } finally {
    channel.close();
    await m.shutdown();
  }
}

/** The timing child (run under --cpu-prof): µs per pair as src/workers/scaling.ts measures it. */
async function timeChild(test: TestVmallocCase, loops: number): Promise<{ usPerPair: number; loops: number }> {
  const { measureTestVmalloc } = await import("../src/workers/scaling.js");
  const [p] = await measureTestVmalloc(1, { tests: [test], repeats: 3, loops });
  return { usPerPair: p!.usPerPair, loops: p!.loops };
}

/*** The parent ***/

function child(nodeArgs: readonly string[], args: readonly string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...nodeArgs, SELF, ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${args.join(" ")}: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout.trim().split("\n").pop()!));
    });
  });
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly hitCount?: number;
}

/**
 * The `top` functions by self time in the biggest .cpuprofile of `dir` (the
 * CPU worker's), as shares of its samples in vmsim's code and the garbage collector.
 */
function topSelf(dir: string, top: number): TimeResult["topSelf"] {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  const biggest = files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
  if (biggest === undefined) throw new Error("the timing child wrote no .cpuprofile");
  const prof = JSON.parse(readFileSync(join(dir, biggest), "utf8")) as { nodes: ProfileNode[] };
  const self = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0;
    const { functionName, url, lineNumber } = n.callFrame;
    // vmsim's own code and the collector: node's module loading at the worker's start is not the pair's.
    if (hits === 0 || (!url.includes("/dist/") && functionName !== "(garbage collector)")) continue;
    total += hits;
    const at = url.indexOf("/dist/");
    const where = url === "" ? "" : ` ${at >= 0 ? url.slice(at + 6) : basename(url)}:${lineNumber + 1}`;
    const key = `${functionName || "(anonymous)"}${where}`;
    self.set(key, (self.get(key) ?? 0) + hits);
  }
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, hits]) => ({ fn, selfPct: (100 * hits) / total }));
}

const short: Record<TestVmallocCase, string> = {
  fix_size_alloc_test: "fix_size",
  random_size_alloc_test: "random_size",
  long_busy_list_alloc_test: "long_busy_list",
} as Record<TestVmallocCase, string>;

function markdown(counts: readonly CountResult[], times: readonly TimeResult[], command: string): string {
  const num = (n: number) => (n === 0 ? "0" : n < 10 ? n.toFixed(2) : fmt(n));
  const lines = [
    hostLine(hostInfo()),
    "",
    `\`${command}\` — 1 CPU, kernel 4.19, production configuration (lockdep, slub_debug and tracing off).`,
    "",
    "Per vmalloc+vfree pair (counting run; the difference of two runs over the difference of their pairs):",
    "",
    `| per pair | ${counts.map((c) => short[c.test]).join(" | ")} | counted as |`,
    `|---|${counts.map(() => "---:|").join("")}---|`,
    `| µs per pair (timing run, median) | ${times.map((t) => t.usPerPair.toFixed(2)).join(" | ")} | scaling.ts's figure, under --cpu-prof |`,
    ...COUNT_ROWS.map((r) => `| ${r.name} | ${counts.map((c) => num(c.perPair[r.name]!)).join(" | ")} | ${r.how} |`),
    "",
  ];
  for (const c of counts)
    lines.push(
      `Atomics per ${short[c.test]} pair: ${Object.entries(c.atomicsPerPair)
        .map(([k, n]) => `${k} ${num(n)}`)
        .join(", ")}.`,
      "",
    );
  for (const t of times) {
    const c = counts.find((x) => x.test === t.test)!;
    lines.push(
      `${short[t.test]}: the CPU worker's top functions by self time (share of its samples in vmsim's code and GC) and the most called:`,
      "",
      "| self % | function | | calls per pair | function |",
      "|---:|---|---|---:|---|",
      ...Array.from({ length: Math.max(t.topSelf.length, c.topCalls.length) }, (_, i) => {
        const s = t.topSelf[i];
        const k = c.topCalls[i];
        return `| ${s ? s.selfPct.toFixed(1) : ""} | ${s ? `\`${s.fn}\`` : ""} | | ${k ? num(k.perPair) : ""} | ${k ? `\`${k.fn}\`` : ""} |`;
      }),
      "",
    );
  }
  return `${lines.join("\n")}`;
}

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`  ${text}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: "string" },
      test: { type: "string" },
      loops: { type: "string", default: "100000" },
      "count-loops": { type: "string", default: "20000" },
      top: { type: "string", default: "12" },
      name: { type: "string", default: "profile" },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const loops = positiveInt("loops", values.loops);
  if (values.child !== undefined) {
    const test = values.test as TestVmallocCase;
    if (!TESTS.includes(test)) throw new RangeError(`--test must be one of ${TESTS.join(", ")}, got ${values.test}`);
    const r = values.child === "count" ? await countChild(test, loops) : await timeChild(test, loops);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const countLoops = positiveInt("count-loops", values["count-loops"]);
  const top = positiveInt("top", values.top);
  const counts: CountResult[] = [];
  const times: TimeResult[] = [];
  for (const test of TESTS) {
    // The cases other than fix_size map ~50 pages a pair: a tenth of the loops, as scaling.ts runs them.
    const n = test === "fix_size_alloc_test" ? countLoops : Math.max(1, Math.round(countLoops / 10));
    progress(`${test}: counting (${n} and ${2 * n} loops)`);
    counts.push((await child([], ["--child", "count", "--test", test, "--loops", String(n)])) as CountResult);
    progress(`${test}: timing under --cpu-prof`);
    const dir = mkdtempSync(join(tmpdir(), "vmsim-profile-"));
    try {
      const t = (await child(
        ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${PROF_INTERVAL_US}`],
        ["--child", "time", "--test", test, "--loops", String(loops)],
      )) as { usPerPair: number; loops: number };
      times.push({ test, loops: t.loops, usPerPair: t.usPerPair, topSelf: topSelf(dir, top) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const command = `node dist/bench/profile.js --loops ${loops} --count-loops ${countLoops}`;
  const md = markdown(counts, times, command);
  process.stdout.write(md);
  writeResults(values.out, values.name, md, { host: hostInfo(), command, counts, times });
}

await runBenchMain(main);
