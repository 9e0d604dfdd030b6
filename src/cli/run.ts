/**
 * `vmsim run` (and `npm start`): the main job. Boot a machine, run the
 * vmalloc_mix workload (src/workers/workloads/vmalloc_mix.ts) on every CPU at
 * once for `--duration`, with interrupts arriving so that vfree from hardirq
 * context takes the deferred path; check the vmalloc invariants at
 * stop-the-world points between rounds; then free everything, purge, and
 * check the invariants and that no page leaked. Prints ops/s per CPU and per
 * API, a /proc/vmallocinfo excerpt, the Vmalloc lines of /proc/meminfo, the
 * result and the seed, and ends with one SUMMARY line.
 *
 * The rounds are the mix driver's (src/workers/mix_driver.ts), the same as
 * `vmsim stress` runs, with stutter and fault injection off.
 */
import type { KernelVersion, MachineConfig } from "../shared/config.js";
import { takeReports } from "../shared/report.js";
import { type VmallocInfo, get_vmalloc_info, vmallocinfo } from "../mm/vmalloc.js";
import type { LeakSummary } from "../check/leak.js";
import { formatDuration } from "../workers/cmdline.js";
import { formatInt, formatTable, plural } from "../workers/format.js";
import { MIX_ROUND_MS, type MixOutcome, driveMix, mixFailureReport, mixOk } from "../workers/mix_driver.js";
import { MIX_OPS, MIX_RCU_WALK, maxLiveFor } from "../workers/workloads/vmalloc_mix.js";
import { NO_MIX_WEIGHTS } from "../workers/mix_weights.js";
import { Machine } from "../workers/machine.js";
import { writeChromeTrace } from "../workers/chrome_trace.js";
import { describeMachine, formatMachineInfo } from "./info.js";
import { EndOfWorkloadMap } from "./map.js";
import { ProgressBar } from "./progress.js";
import { resultLine } from "./result.js";

/** Lines of /proc/vmallocinfo shown from each end. */
const EXCERPT_LINES = 4;

/** Per CPU, in the SUMMARY line. */
export interface RunCpuSummary {
  readonly cpu: number;
  readonly ops: number;
  readonly opsPerSec: number;
  /** Interrupts the CPU took (kstat irqs_sum). */
  readonly irqs: number;
}

/** The page accounting of the leak check (src/check/leak.ts). */
export type RunLeakSummary = LeakSummary;

/** The last line of a run, after `SUMMARY `: what tools parse. */
export interface RunSummary {
  readonly command: "run";
  /** True when the run found no failure. */
  readonly ok: boolean;
  /** The kernel version whose vmalloc ran. */
  readonly kernel: KernelVersion;
  readonly cpus: number;
  readonly layout: string;
  readonly memory: number;
  readonly seed: number;
  readonly irqRate: number;
  readonly workload: "vmalloc_mix";
  /** Wall time the CPUs ran the workload (the checks between rounds excluded). */
  readonly durationMs: number;
  readonly rounds: number;
  /** Invariant checks run: between rounds, and once after the cleanup. */
  readonly checks: number;
  /** Operations, all CPUs. */
  readonly ops: number;
  readonly opsPerSec: number;
  readonly perCpu: readonly RunCpuSummary[];
  /** Calls of each API (and checks: "mmu read" …), all CPUs. */
  readonly apis: Readonly<Record<string, number>>;
  /** vmap areas in /proc/vmallocinfo at the end of the workload, and after the cleanup. */
  readonly vmallocinfoAreas: number;
  readonly vmallocinfoAreasAfter: number;
  /** get_vmalloc_info() at the end of the workload, kB. */
  readonly meminfo: VmallocInfo | null;
  readonly leak: RunLeakSummary | null;
  /** True when Ctrl-C ended the run early. */
  readonly interrupted: boolean;
  readonly reports: number;
  readonly failures: readonly string[];
  /** The command that reruns this exact configuration. */
  readonly rerun: string;
}

/** How long to run, the command line that reruns this configuration (printed on failure), where to write a trace. */
export interface RunMachineOptions {
  readonly durationMs: number;
  readonly rerun: string;
  /** Write the run's Chrome trace here (the machine must boot with config.trace > 0). @defaultValue null */
  readonly trace?: string | null;
  /** Draw the vmalloc area here at the end of the workload (src/cli/map.ts). @defaultValue null */
  readonly map?: string | null;
}

/** Runs the command; resolves to the exit code (0 ok, 1 a failure was found). */
export async function runMachine(config: MachineConfig, opts: RunMachineOptions): Promise<number> {
  // Reports this thread raised before (another machine's) are not this run's.
  takeReports();
  return runOn(await Machine.boot(config), opts);
}

/** The kernel's /proc/meminfo line: the name padded to 16 columns, the value to 8, " kB". */
function meminfoLine(name: string, kb: number): string {
  return `${`${name}:`.padEnd(16)}${String(kb).padStart(8)} kB`;
}

const FLAG_WORDS = new Set(["ioremap", "vmalloc", "vmap", "user", "vpages"]);
const TYPE_ORDER = ["vmalloc", "user", "vpages", "vmap", "ioremap", "vm_map_ram", "unpurged vm_area"];

/**
 * The types of a /proc/vmallocinfo line: the flag words s_show ends a vm
 * area's line with (the token after the size is the caller, never a flag), or
 * "vm_map_ram" / "unpurged vm_area" for an area without a vm_struct.
 */
function typesOf(line: string): string[] {
  if (line.endsWith(" unpurged vm_area")) return ["unpurged vm_area"];
  if (line.endsWith(" vm_map_ram")) return ["vm_map_ram"];
  const t = line.split(/ +/);
  const out: string[] = [];
  for (let i = t.length - 1; i > 2 && FLAG_WORDS.has(t[i]!); i--) out.push(t[i]!);
  return out;
}

/** "48 vmalloc, 7 user, 23 vmap, …": how many lines carry each type. */
function countTypes(lines: readonly string[]): string {
  const n = new Map<string, number>();
  for (const l of lines) for (const k of typesOf(l)) n.set(k, (n.get(k) ?? 0) + 1);
  return TYPE_ORDER.filter((k) => n.has(k))
    .map((k) => `${n.get(k)} ${k}`)
    .join(", ");
}

/** The first and last lines, then the first line of each type those do not show. */
function excerpt(lines: readonly string[]): string[] {
  if (lines.length <= 2 * EXCERPT_LINES + 1) return lines.map((l) => `  ${l}`);
  const shown = [...lines.slice(0, EXCERPT_LINES), ...lines.slice(-EXCERPT_LINES)];
  const seen = new Set(shown.flatMap(typesOf));
  const more: string[] = [];
  for (const k of TYPE_ORDER) {
    if (seen.has(k)) continue;
    const l = lines.find((x) => typesOf(x).includes(k));
    if (l === undefined) continue;
    more.push(l);
    for (const t of typesOf(l)) seen.add(t);
  }
  return [
    ...shown.slice(0, EXCERPT_LINES).map((l) => `  ${l}`),
    `  … ${lines.length - 2 * EXCERPT_LINES} more …`,
    ...shown.slice(EXCERPT_LINES).map((l) => `  ${l}`),
    ...(more.length > 0 ? ["  one line of each type not shown above:", ...more.map((l) => `  ${l}`)] : []),
  ];
}

async function runOn(m: Machine, { durationMs, rerun, trace = null, map = null }: RunMachineOptions): Promise<number> {
  const config = m.config;
  /** /proc/vmallocinfo and the meminfo lines at the end of the workload (null: a CPU failed before it). */
  const live: { info: string[]; meminfo: VmallocInfo | null } = { info: [], meminfo: null };
  let afterInfo: string[] = [];
  const mapped = new EndOfWorkloadMap(map);
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  let bar: ProgressBar | null = null;
  let x: MixOutcome;
  try {
    console.log(formatMachineInfo(describeMachine(m.arena))[0]);
    console.log(
      `vmalloc_mix: ${plural(config.cpus, "CPU")} for ${formatDuration(durationMs)}, at most ${maxLiveFor(config)} live areas per CPU, ` +
        `rounds of ${MIX_ROUND_MS} ms with the invariants checked between rounds`,
    );
    console.log("");
    bar = ProgressBar.start({
      label: "vmalloc_mix",
      total: durationMs,
      unit: "ops",
      fields: "{failures} failures",
      initial: { failures: 0 },
    });
    x = await driveMix(
      m,
      { durationMs, ops: null, failPageAlloc: 0, stutter: 0, rcuWalk: MIX_RCU_WALK, mix: NO_MIX_WEIGHTS },
      {
        signal: abort.signal,
        onProgress: (p) => bar?.update(Math.min(p.elapsedMs, durationMs), p.ops, { failures: p.violations }),
        atEndOfWorkload: (failure) => {
          mapped.draw(failure);
          live.info = vmallocinfo();
          live.meminfo = get_vmalloc_info();
        },
      },
    );
    if (x.cleanedUp) afterInfo = vmallocinfo();
  } finally {
    bar?.stop();
    process.removeListener("SIGINT", onSigint);
    await m.shutdown();
  }
  const ok = mixOk(x);
  const failures = [
    ...x.violations,
    ...x.reports.map((r) => `[CPU${r.cpu}] ${r.kind}: ${r.text}`),
    ...(x.nrReports > x.reports.length ? [`… and ${x.nrReports - x.reports.length} more reports`] : []),
  ];

  const secs = x.elapsedMs / 1000;
  const rate = (n: number) => (secs > 0 ? n / secs : 0);
  const perCpu = x.perCpu.map((c) => ({ cpu: c.cpu, ops: c.ops, opsPerSec: Math.round(rate(c.ops)), irqs: c.irqs }));

  console.log(
    `ops/s per CPU (${secs.toFixed(2)} s of workload, ${plural(x.rounds, "round")}${x.interrupted ? ", interrupted" : ""}):`,
  );
  for (const line of formatTable(
    [
      ...perCpu.map((p) => [`CPU${p.cpu}`, formatInt(p.ops), formatInt(p.opsPerSec), formatInt(p.irqs)]),
      ["all", formatInt(x.ops), formatInt(rate(x.ops)), formatInt(perCpu.reduce((a, p) => a + p.irqs, 0))],
    ],
    { header: ["cpu", "ops", "ops/s", "irqs"], align: "lrrr" },
  ))
    console.log(line);
  console.log("");
  console.log("calls per API, all CPUs:");
  for (const line of formatTable(
    MIX_OPS.filter((name) => x.apis[name] > 0).map((name) => [
      name,
      formatInt(x.apis[name]),
      formatInt(rate(x.apis[name])),
    ]),
    { header: ["api", "calls", "calls/s"], align: "lrr" },
  ))
    console.log(line);
  console.log("");
  const meminfo = live.meminfo;
  if (meminfo !== null) {
    console.log(`/proc/vmallocinfo at the end of the workload: ${plural(live.info.length, "area")}`);
    console.log(`  by type: ${countTypes(live.info)}`);
    for (const line of excerpt(live.info)) console.log(line);
    console.log("");
    console.log("/proc/meminfo at the end of the workload:");
    for (const [k, v] of Object.entries(meminfo)) console.log(`  ${meminfoLine(k, v)}`);
    console.log("");
  }
  const leak = x.leak;
  if (leak !== null) {
    console.log(
      `after the cleanup: nr_free_pages ${leak.freeStart} → ${leak.freeEnd} ` +
        `(page tables +${leak.pagetableDelta}, slab ${leak.slabDelta >= 0 ? "+" : ""}${leak.slabDelta}): ${leak.leakedPages} pages leaked; ` +
        `/proc/vmallocinfo is back to the boot areas:`,
    );
    for (const line of afterInfo) console.log(`  ${line}`);
    console.log("");
  }
  console.log(mixResultLine({ ...x, ok, failures: failures.length }));
  console.log(`seed: ${config.seed}`);
  const traced = trace === null || writeTrace(trace, console.log);
  mapped.say(console.log);
  if (!ok) for (const line of mixFailureReport("vmsim run", x, config.seed, rerun)) console.error(line);
  const summary: RunSummary = {
    command: "run",
    ok,
    kernel: config.kernel,
    cpus: config.cpus,
    layout: config.layout,
    memory: config.memory,
    seed: config.seed,
    irqRate: config.irqRate,
    workload: "vmalloc_mix",
    durationMs: Math.round(x.elapsedMs),
    rounds: x.rounds,
    checks: x.roundChecks + (x.cleanedUp ? 1 : 0),
    ops: x.ops,
    opsPerSec: Math.round(rate(x.ops)),
    perCpu,
    apis: x.apis,
    vmallocinfoAreas: live.info.length,
    vmallocinfoAreasAfter: afterInfo.length,
    meminfo,
    leak,
    interrupted: x.interrupted,
    reports: x.nrReports,
    failures,
    rerun,
  };
  console.log(`SUMMARY ${JSON.stringify(summary)}`);
  return summary.ok && traced && mapped.ok ? 0 : 1;
}

/** What the result line of a mix run (run, stress) says. */
export interface MixRunVerdict {
  readonly ok: boolean;
  readonly interrupted: boolean;
  /** Failures found: violations and failing reports. */
  readonly failures: number;
  readonly rounds: number;
  /** Checks between rounds. */
  readonly roundChecks: number;
  /** Workload time, ms. */
  readonly elapsedMs: number;
}

/**
 * The result line of `vmsim run` and `vmsim stress`: ok, FAILED, or
 * interrupted when Ctrl-C ended a clean run early.
 */
export function mixResultLine(v: MixRunVerdict): string {
  if (!v.ok)
    return resultLine(
      "FAILED",
      `${plural(v.failures, "failure")}, report on stderr${v.interrupted ? "; interrupted by Ctrl-C" : ""}`,
    );
  const checked = `invariants held after ${v.roundChecks} of ${plural(v.rounds, "round")} and after the cleanup; no leak`;
  if (!v.interrupted) return resultLine("ok", checked);
  return resultLine("interrupted", `Ctrl-C after ${(v.elapsedMs / 1000).toFixed(2)} s of workload; ${checked}`);
}

/**
 * Writes the machine's trace to `path` and says so through `say`; false (with
 * one error line on stderr) when the file cannot be written.
 */
export function writeTrace(path: string, say: (line: string) => void): boolean {
  try {
    const t = writeChromeTrace(path);
    say(
      `trace: ${formatInt(t.events)} events, ${plural(t.handoffs, "lock handoff")}, in ${path} (open it in https://ui.perfetto.dev)`,
    );
    return true;
  } catch (e) {
    console.error(`vmsim: error: ${(e as Error).message}`);
    return false;
  }
}
