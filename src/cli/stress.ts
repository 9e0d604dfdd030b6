/**
 * `vmsim stress`: the race-hunting run (src/workers/stress.ts's runStress)
 * from the command line. A progress bar on a TTY (ops/s, violations so far,
 * ETA), nothing while it runs otherwise; then the text report — or with
 * `--json` one JSON document — and the `SUMMARY {json}` line. A failed run
 * prints its violation report (invariant, each CPU's last events, seed,
 * rerun command) on stderr and exits 1.
 */
import cliProgress from "cli-progress";
import { theArena } from "../shared/arena.js";
import type { MachineConfig } from "../shared/config.js";
import { type StressResult, runStress } from "../workers/stress.js";
import { formatTable, plural } from "./format.js";
import { describeMachine, formatMachineInfo } from "./info.js";
import { type MapFileCliOptions, type StressCliOptions, type TraceCliOptions, formatDuration } from "./options.js";
import { endOfWorkloadMap } from "./map.js";
import { writeTrace } from "./run.js";

function progressBar(): cliProgress.SingleBar | null {
  if (!process.stderr.isTTY) return null;
  return new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: "  stress [{bar}] {percentage}% | ETA {eta_formatted} | {rate} ops/s | {violations} violations",
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");
/** The per-API table prints this many (api, calls) pairs per line. */
const API_COLUMNS = 3;

/** The text report of a finished run (stdout); the violation report goes to stderr. */
function formatStressText(r: StressResult): string[] {
  const o = r.options;
  const bound = [o.durationMs !== null ? formatDuration(o.durationMs) : "", o.ops !== null ? `${int(o.ops)} ops` : ""]
    .filter((s) => s !== "")
    .join(" or ");
  const apis = Object.entries(r.apis).filter(([, n]) => n > 0);
  const leak = r.leak;
  return [
    formatMachineInfo(describeMachine(theArena()))[0]!,
    `stress: vmalloc_mix on ${plural(r.config.cpus, "CPU")} for ${bound}; stutter ${o.stutter}, RCU walks ${o.rcuWalk}, ` +
      `fail_page_alloc ${o.failPageAlloc}%; invariants checked between rounds and after the cleanup`,
    "",
    `ops: ${int(r.ops)} in ${(r.durationMs / 1000).toFixed(2)} s of workload (${int(r.opsPerSec)} ops/s), ` +
      `${plural(r.rounds, "round")}, ${plural(r.checks, "check")}${r.interrupted ? ", interrupted" : ""}`,
    ...formatTable(
      r.perCpu.map((c) => [`CPU${c.cpu}`, int(c.ops), int(c.opsPerSec), int(c.irqs)]),
      { header: ["cpu", "ops", "ops/s", "irqs"], align: "lrrr" },
    ),
    "calls per API, all CPUs:",
    ...formatTable(
      Array.from({ length: Math.ceil(apis.length / API_COLUMNS) }, (_, row) =>
        apis.slice(row * API_COLUMNS, (row + 1) * API_COLUMNS).flatMap(([name, n]) => [name, int(n)]),
      ),
      { align: "lr".repeat(API_COLUMNS) },
    ),
    `allocation failures: ${int(r.allocFailures)}` +
      (o.failPageAlloc > 0
        ? ` (expected: fault injection; ${int(r.expectedReports)} warnings counted, not failed)`
        : ""),
    leak === null
      ? "leak check: not run (the run failed first)"
      : `leak check: ${leak.leakedPages} pages leaked (nr_free_pages ${leak.freeStart} → ${leak.freeEnd}, ` +
        `page tables ${leak.pagetableDelta >= 0 ? "+" : ""}${leak.pagetableDelta}, slab ${leak.slabDelta >= 0 ? "+" : ""}${leak.slabDelta})` +
        (r.ok ? "; slab objects and /proc/vmallocinfo back to their boot values" : ""),
    r.ok
      ? "verdict: ok"
      : `verdict: FAILED (${plural(r.violations.length + r.nrReports, "failure")}, report on stderr)`,
    `seed: ${r.seed}`,
  ];
}

/**
 * Runs `vmsim stress`; resolves to the exit code (0 clean, 1 a violation, a
 * report, a leak, or a trace that could not be written).
 */
export async function stressMachine(
  config: MachineConfig,
  o: StressCliOptions & TraceCliOptions & MapFileCliOptions,
): Promise<number> {
  const bar = o.json ? null : progressBar();
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  bar?.start(1000, 0, { rate: 0, violations: 0 });
  let mapped = true;
  let mapLine = "";
  let r: StressResult;
  try {
    r = await runStress(config, {
      ...(o.durationMs !== null ? { durationMs: o.durationMs } : {}),
      ...(o.ops !== null ? { ops: o.ops } : {}),
      failPageAlloc: o.failPageAlloc,
      stutter: o.stutter,
      rcuWalk: o.rcuWalk,
      signal: abort.signal,
      onProgress: (p) =>
        bar?.update(Math.round(p.fraction * 1000), { rate: int(p.opsPerSec), violations: p.violations }),
      ...(o.map !== null
        ? {
            atEndOfWorkload: (failure: string | null) => {
              mapped = endOfWorkloadMap(o.map!, failure, (line) => (mapLine = line));
            },
          }
        : {}),
    });
  } finally {
    bar?.stop();
    process.removeListener("SIGINT", onSigint);
  }
  // The machine is shut down but its arena is still this thread's: the rings are there to read.
  const traced = o.trace === null || writeTrace(o.trace, o.json ? console.error : console.log);
  if (o.json) {
    if (mapLine !== "") console.error(mapLine);
    console.log(JSON.stringify(r, null, 2));
  } else {
    for (const line of formatStressText(r)) console.log(line);
    if (mapLine !== "") console.log(mapLine);
    for (const line of r.report) console.error(line);
    console.log(`SUMMARY ${JSON.stringify(r)}`);
  }
  return r.ok && traced && mapped ? 0 : 1;
}
