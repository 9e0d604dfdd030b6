/**
 * `vmsim stress`: the race-hunting run (src/workers/stress.ts's runStress)
 * from the command line. A progress bar on a TTY (ops/s, violations so far,
 * ETA), nothing while it runs otherwise; then the text report — or with
 * `--json` one JSON document — and the `SUMMARY {json}` line. A failed run
 * prints its violation report (invariant, each CPU's last events, seed,
 * rerun command) on stderr and exits 1.
 */
import { theArena } from "../shared/arena.js";
import type { MachineConfig } from "../shared/config.js";
import { formatDuration } from "../workers/cmdline.js";
import { formatInt, formatTable, plural } from "../workers/format.js";
import { type StressResult, runStress } from "../workers/stress.js";
import { NO_MIX_WEIGHTS } from "../workers/mix_weights.js";
import { describeMachine, formatMachineInfo } from "./info.js";
import { EndOfWorkloadMap } from "./map.js";
import type { MapFileCliOptions, StressCliOptions, TraceCliOptions } from "./options.js";
import { ProgressBar } from "./progress.js";
import { abortOnSigint } from "./result.js";
import { mixResultLine, writeTrace } from "./run.js";

/** The per-API table prints this many (api, calls) pairs per line. */
const API_COLUMNS = 3;

/** The text report of a finished run (stdout); the violation report goes to stderr. */
function formatStressText(r: StressResult): string[] {
  const o = r.options;
  const bound = [
    o.durationMs !== null ? formatDuration(o.durationMs) : "",
    o.ops !== null ? `${formatInt(o.ops)} ops` : "",
  ]
    .filter((s) => s !== "")
    .join(" or ");
  const apis = Object.entries(r.apis).filter(([, n]) => n > 0);
  const leak = r.leak;
  return [
    formatMachineInfo(describeMachine(theArena()))[0]!,
    `stress: vmalloc_mix on ${plural(r.config.cpus, "CPU")} for ${bound}; stutter ${o.stutter}, RCU walks ${o.rcuWalk}, ` +
      `${o.mix === NO_MIX_WEIGHTS ? "" : `mix ${o.mix}, `}` +
      `fail_page_alloc ${o.failPageAlloc}%; invariants checked between rounds and after the cleanup`,
    "",
    `ops: ${formatInt(r.ops)} in ${(r.durationMs / 1000).toFixed(2)} s of workload (${formatInt(r.opsPerSec)} ops/s), ` +
      `${plural(r.rounds, "round")}, ${plural(r.checks, "check")}${r.interrupted ? ", interrupted" : ""}`,
    ...formatTable(
      r.perCpu.map((c) => [`CPU${c.cpu}`, formatInt(c.ops), formatInt(c.opsPerSec), formatInt(c.irqs)]),
      { header: ["cpu", "ops", "ops/s", "irqs"], align: "lrrr" },
    ),
    "calls per API, all CPUs:",
    ...formatTable(
      Array.from({ length: Math.ceil(apis.length / API_COLUMNS) }, (_, row) =>
        apis.slice(row * API_COLUMNS, (row + 1) * API_COLUMNS).flatMap(([name, n]) => [name, formatInt(n)]),
      ),
      { align: "lr".repeat(API_COLUMNS) },
    ),
    `allocation failures: ${formatInt(r.allocFailures)}` +
      (o.failPageAlloc > 0
        ? ` (expected: fault injection; ${formatInt(r.expectedReports)} warnings counted, not failed)`
        : ""),
    ...(r.kcsan === null
      ? []
      : [
          `kcsan: ${formatInt(r.kcsan.setup_watchpoints)} watchpoints set up (${formatInt(r.kcsan.no_capacity)} ` +
            `found their slot busy), ${formatInt(r.kcsan.data_races)} conflicting accesses, ` +
            `${formatInt(r.kcsan.races_unknown_origin)} values changed with no access seen; unreported: ` +
            `${formatInt(r.kcsan.unchanged_value_races)} with the value unchanged, ` +
            `${formatInt(r.kcsan.filtered_reports)} filtered (--kcsan-skip-report)`,
        ]),
    leak === null
      ? "leak check: not run (the run failed first)"
      : `leak check: ${leak.leakedPages} pages leaked (nr_free_pages ${leak.freeStart} → ${leak.freeEnd}, ` +
        `page tables ${leak.pagetableDelta >= 0 ? "+" : ""}${leak.pagetableDelta}, slab ${leak.slabDelta >= 0 ? "+" : ""}${leak.slabDelta})` +
        (r.ok ? "; slab objects and /proc/vmallocinfo back to their boot values" : ""),
    mixResultLine({
      ok: r.ok,
      interrupted: r.interrupted,
      failures: r.violations.length + r.nrReports,
      rounds: r.rounds,
      roundChecks: r.checks - (r.leak !== null ? 1 : 0),
      elapsedMs: r.durationMs,
    }),
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
  const bar = o.json
    ? null
    : ProgressBar.start({
        label: "stress",
        total: 1000,
        unit: "ops",
        fields: "{failures} failures",
        initial: { failures: 0 },
      });
  const mapped = new EndOfWorkloadMap(o.map);
  let r: StressResult;
  try {
    r = await abortOnSigint((signal) =>
      runStress(config, {
        ...(o.durationMs !== null ? { durationMs: o.durationMs } : {}),
        ...(o.ops !== null ? { ops: o.ops } : {}),
        failPageAlloc: o.failPageAlloc,
        stutter: o.stutter,
        rcuWalk: o.rcuWalk,
        mix: o.mix,
        signal,
        onProgress: (p) => bar?.update(Math.round(p.fraction * 1000), p.ops, { failures: p.violations }),
        atEndOfWorkload: (failure) => mapped.draw(failure),
      }),
    );
  } finally {
    bar?.stop();
  }
  // The machine is shut down but its arena is still this thread's: the rings are there to read.
  const traced = o.trace === null || writeTrace(o.trace, o.json ? console.error : console.log);
  if (o.json) {
    mapped.say(console.error);
    console.log(JSON.stringify(r, null, 2));
  } else {
    for (const line of formatStressText(r)) console.log(line);
    mapped.say(console.log);
    for (const line of r.report) console.error(line);
    console.log(`SUMMARY ${JSON.stringify(r)}`);
  }
  return r.ok && traced && mapped.ok ? 0 : 1;
}
