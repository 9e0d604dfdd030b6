/**
 * `vmsim run` (and `npm start`): the main job. Boot a machine, run the
 * vmalloc_mix workload (src/workers/workloads/vmalloc_mix.ts) on every CPU at
 * once for `--duration`, with interrupts arriving so that vfree from hardirq
 * context takes the deferred path; check the vmalloc invariants at
 * stop-the-world points between rounds; then free everything, purge, and
 * check the invariants and that no page leaked. Prints ops/s per CPU and per
 * API, a /proc/vmallocinfo excerpt, the Vmalloc lines of /proc/meminfo, the
 * verdict and the seed, and ends with one SUMMARY line.
 *
 * The workload runs in rounds of ROUND_MS: every CPU runs operations until the
 * round's deadline and parks; the main thread (the CPUs parked) runs the
 * checker, then starts the next round.
 */
import cliProgress from "cli-progress";
import type { MachineConfig } from "../shared/config.js";
import type { Report } from "../shared/report.js";
import { kstat_cpu_irqs_sum } from "../kernel/irq.js";
import { type VmallocInfo, get_vmalloc_info, vmallocinfo } from "../mm/vmalloc.js";
import { checkMachine } from "../check/index.js";
import { type LeakSummary, leakCheck, memorySnapshot } from "../check/leak.js";
import { MIX_OPS, type VmallocMixResult, maxLiveFor } from "../workers/workloads/vmalloc_mix.js";
import { Machine, MachineError } from "../workers/machine.js";
import { writeChromeTrace } from "../workers/chrome_trace.js";
import { formatTable, plural } from "./format.js";
import { describeMachine, formatMachineInfo } from "./info.js";
import { formatDuration } from "./options.js";

/** Length of a round: CPUs run this long between two stop-the-world checks. */
const ROUND_MS = 250;
/** A check may take this share of the run at most; beyond, it runs every 2nd, 4th … round. */
const CHECK_SHARE = 0.1;
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
}

/** Runs the command; resolves to the exit code (0 ok, 1 a failure was found). */
export async function runMachine(config: MachineConfig, opts: RunMachineOptions): Promise<number> {
  return runOn(await Machine.boot(config), opts);
}

function formatReport(r: Report): string {
  return `[CPU${r.cpu}] ${r.kind}: ${r.text}`;
}

function progressBar(): cliProgress.SingleBar | null {
  if (!process.stderr.isTTY) return null;
  return new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: "  vmalloc_mix [{bar}] {percentage}% | ETA {eta_formatted} | {rate} ops/s | {checks} checks ok",
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");

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

async function runOn(m: Machine, { durationMs, rerun, trace = null }: RunMachineOptions): Promise<number> {
  const config = m.config;
  const failures: string[] = [];
  const cpuCounts: number[][] = Array.from({ length: config.cpus }, () => MIX_OPS.map(() => 0));
  const cpuOps: number[] = Array.from({ length: config.cpus }, () => 0);
  let elapsed = 0;
  let rounds = 0;
  let checks = 0;
  let finalCheck = false;
  let interrupted = false;
  let liveInfo: string[] = [];
  let liveMeminfo: VmallocInfo | null = null;
  let afterInfo: string[] = [];
  let leak: RunLeakSummary | null = null;
  const onSigint = () => {
    interrupted = true;
  };
  process.once("SIGINT", onSigint);
  const bar = progressBar();
  const maxLive = maxLiveFor(config);
  /** Takes the CPUs' counters; the ops of a workload round count towards ops/s, the drain's do not. */
  const took = (rs: unknown[], round: boolean) => {
    for (const [cpu, r] of (rs as VmallocMixResult[]).entries()) {
      cpuCounts[cpu] = r.counts;
      if (round) cpuOps[cpu]! += r.ops;
    }
  };
  try {
    console.log(formatMachineInfo(describeMachine(m.arena))[0]);
    console.log(
      `vmalloc_mix: ${plural(config.cpus, "CPU")} for ${formatDuration(durationMs)}, at most ${maxLive} live areas per CPU, ` +
        `rounds of ${ROUND_MS} ms with the invariants checked between rounds`,
    );
    console.log("");
    const irq = await m.run(0, "vmalloc_mix_irq", { on: true });
    if (irq !== 0) throw new Error(`request_irq for vmalloc_mix returned ${irq}`);
    await m.runAll("vmalloc_mix_start");
    const start = memorySnapshot();

    bar?.start(durationMs, 0, { rate: 0, checks: 0 });
    let checkEvery = 1;
    while (!interrupted && elapsed < durationMs) {
      const t0 = performance.now();
      const deadline = Date.now() + Math.min(ROUND_MS, durationMs - elapsed);
      took(await m.runAll("vmalloc_mix", { ops: Number.MAX_SAFE_INTEGER, deadline, maxLive }), true);
      elapsed += performance.now() - t0;
      rounds++;
      if (rounds % checkEvery === 0) {
        const c0 = performance.now();
        const v = checkMachine();
        checks++;
        if (v.length > 0) {
          failures.push(...v.map((s) => `after round ${rounds}: ${s}`));
          break;
        }
        if (performance.now() - c0 > CHECK_SHARE * ROUND_MS) checkEvery *= 2;
      }
      const ops = cpuOps.reduce((a, b) => a + b, 0);
      bar?.update(Math.min(elapsed, durationMs), { rate: int(ops / (elapsed / 1000)), checks });
      // A report (WARN, lockdep, fault …) already fails the run: stop here, then clean up and check.
      if (m.reports.length > 0) break;
    }
    bar?.stop();
    liveInfo = vmallocinfo();
    liveMeminfo = get_vmalloc_info();

    if (failures.length === 0) {
      took(await m.runAll("vmalloc_mix_drain"), false);
      await m.run(0, "vmalloc_mix_finish");
      const v = checkMachine();
      finalCheck = true;
      failures.push(...v.map((s) => `after the cleanup: ${s}`));
      const end = memorySnapshot();
      afterInfo = [...end.vmallocinfo];
      const l = leakCheck(start, end);
      leak = l.summary;
      failures.push(...l.violations);
    }
  } catch (e) {
    bar?.stop();
    if (!(e instanceof MachineError)) throw e;
    failures.push(e.message);
  } finally {
    process.removeListener("SIGINT", onSigint);
    await m.shutdown();
  }
  for (const r of m.reports) failures.push(formatReport(r));

  const secs = elapsed / 1000;
  const rate = (n: number) => (secs > 0 ? n / secs : 0);
  const ops = cpuOps.reduce((a, b) => a + b, 0);
  const irqs = Array.from({ length: config.cpus }, (_, cpu) => kstat_cpu_irqs_sum(cpu));
  const perCpu = cpuOps.map((n, cpu) => ({ cpu, ops: n, opsPerSec: Math.round(rate(n)), irqs: irqs[cpu]! }));
  const apis: Record<string, number> = {};
  for (const [o, name] of MIX_OPS.entries()) apis[name] = cpuCounts.reduce((a, c) => a + c[o]!, 0);

  console.log(`ops/s per CPU (${secs.toFixed(2)} s of workload, ${plural(rounds, "round")}):`);
  for (const line of formatTable(
    [
      ...perCpu.map((p) => [`CPU${p.cpu}`, int(p.ops), int(p.opsPerSec), int(p.irqs)]),
      ["all", int(ops), int(rate(ops)), int(irqs.reduce((a, b) => a + b, 0))],
    ],
    { header: ["cpu", "ops", "ops/s", "irqs"], align: "lrrr" },
  ))
    console.log(line);
  console.log("");
  console.log("calls per API, all CPUs:");
  for (const line of formatTable(
    MIX_OPS.filter((name) => apis[name]! > 0).map((name) => [name, int(apis[name]!), int(rate(apis[name]!))]),
    { header: ["api", "calls", "calls/s"], align: "lrr" },
  ))
    console.log(line);
  console.log("");
  if (liveMeminfo !== null) {
    console.log(`/proc/vmallocinfo at the end of the workload: ${plural(liveInfo.length, "area")}`);
    console.log(`  by type: ${countTypes(liveInfo)}`);
    for (const line of excerpt(liveInfo)) console.log(line);
    console.log("");
    console.log("/proc/meminfo at the end of the workload:");
    for (const [k, v] of Object.entries(liveMeminfo)) console.log(`  ${meminfoLine(k, v)}`);
    console.log("");
  }
  if (leak !== null) {
    console.log(
      `after the cleanup: nr_free_pages ${leak.freeStart} → ${leak.freeEnd} ` +
        `(page tables +${leak.pagetableDelta}, slab ${leak.slabDelta >= 0 ? "+" : ""}${leak.slabDelta}): ${leak.leakedPages} pages leaked; ` +
        `/proc/vmallocinfo is back to the boot areas:`,
    );
    for (const line of afterInfo) console.log(`  ${line}`);
    console.log("");
  }
  console.log(
    failures.length === 0
      ? `invariants: ok (checked after ${checks} of ${plural(rounds, "round")} and after the cleanup; no leak)`
      : `invariants: FAILED (${plural(failures.length, "failure")}, listed on stderr)`,
  );
  console.log(`seed: ${config.seed}`);
  const traced = trace === null || writeTrace(trace, console.log);
  for (const f of failures) console.error(`vmsim: FAILED: ${f}`);
  if (failures.length > 0) console.error(`vmsim: rerun with: ${rerun}`);
  const summary: RunSummary = {
    command: "run",
    ok: failures.length === 0,
    cpus: config.cpus,
    layout: config.layout,
    memory: config.memory,
    seed: config.seed,
    irqRate: config.irqRate,
    workload: "vmalloc_mix",
    durationMs: Math.round(elapsed),
    rounds,
    checks: checks + (finalCheck ? 1 : 0),
    ops,
    opsPerSec: Math.round(rate(ops)),
    perCpu,
    apis,
    vmallocinfoAreas: liveInfo.length,
    vmallocinfoAreasAfter: afterInfo.length,
    meminfo: liveMeminfo,
    leak,
    interrupted,
    reports: m.reports.length,
    failures,
    rerun,
  };
  console.log(`SUMMARY ${JSON.stringify(summary)}`);
  return summary.ok && traced ? 0 : 1;
}

/**
 * Writes the machine's trace to `path` and says so through `say`; false (with
 * one error line on stderr) when the file cannot be written.
 */
export function writeTrace(path: string, say: (line: string) => void): boolean {
  try {
    const t = writeChromeTrace(path);
    say(
      `trace: ${int(t.events)} events, ${plural(t.handoffs, "lock handoff")}, in ${path} (open it in https://ui.perfetto.dev)`,
    );
    return true;
  } catch (e) {
    console.error(`vmsim: error: ${(e as Error).message}`);
    return false;
  }
}
