/**
 * The data-race detector's proof (issue 12): every detector-only switch of
 * src/shared/inject.ts (`kcsan: true`: plain stores moved out from under the
 * lock another CPU's reader holds, missed by the plain stress run, see
 * test/kcsan_proof.test.ts) is reported by `vmsim stress --kcsan` on 2 CPUs
 * within 60 s, for each of 20 seeds. A seed counts when the run fails on a
 * KCSAN report whose title names the function the switch breaks. Writes
 * bench/results/kcsan-proof.{md,json}: per switch, the seeds caught, the
 * workload time to the report (min, median, max), and the report's title.
 *
 *   node dist/bench/kcsan_proof.js [--seeds 20] [--cap 60s] [--only <switch,…>] [--mix <op=P%,…>]
 *                                  [--skip-watch N] [--udelay-task US] [--strict on|off]
 *                                  [--skip-report <func,…>|""] [--out <dir>]
 *
 * The defaults are the proof's flags (PROOF_FLAGS, bench/kcsan_proof_flags.ts): the stress mix weighted
 * towards the operations on the racing sides (`--mix`, a flag of `vmsim
 * stress`) and KCSAN's own knobs (strict rules, the report filter); test/kcsan_proof.test.ts runs the plain
 * stress with the same mix and shows it misses every switch.
 *
 * Exits 1 when a switch was missed by some seed.
 */
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG, makeConfig } from "../src/shared/config.js";
import { INJECTIONS, INJECT_NAMES, type InjectName, isInjectName } from "../src/shared/inject.js";
import { formatDuration, parseDuration } from "../src/workers/cmdline.js";
import { STRESS_MACHINE_FLAGS, type StressResult, runStress } from "../src/workers/stress.js";
import { normalizeMixWeights } from "../src/workers/mix_weights.js";
import { PROOF_FLAGS, backportsFor } from "./kcsan_proof_flags.js";
import { RESULTS_DIR, hostInfo, hostLine, positiveInt, runBenchMain, writeResults } from "./report.js";

/** The switches only the detector sees. */
export const DETECTOR_ONLY: readonly InjectName[] = INJECT_NAMES.filter(
  (n) => (INJECTIONS[n] as { kcsan?: boolean }).kcsan === true,
);

/** One seed's run. */
interface SeedRun {
  readonly seed: number;
  readonly caught: boolean;
  /** Workload time until the run stopped (the report, or the cap). */
  readonly ms: number;
  readonly ops: number;
  /** The first line of the first failing report or violation ("" when clean). */
  readonly first: string;
  /** Races the report filter (--kcsan-skip-report) counted instead of reporting. */
  readonly filtered: number;
}

/** The KCSAN report that names the function `breaks`, if the run stopped on one. */
export function kcsanTitle(r: StressResult, breaks: string): string | null {
  for (const rep of r.reports) {
    const title = rep.text.split("\n")[0] ?? "";
    if (rep.kind === "kcsan" && title.startsWith("BUG: KCSAN:") && title.includes(breaks)) return title;
  }
  return null;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[(s.length - 1) >> 1]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: "string", default: "20" },
      cap: { type: "string", default: "60s" },
      only: { type: "string" },
      mix: { type: "string", default: PROOF_FLAGS.mix },
      "skip-watch": { type: "string", default: String(PROOF_FLAGS.skipWatch) },
      "udelay-task": { type: "string", default: String(PROOF_FLAGS.udelayTask) },
      strict: { type: "string", default: PROOF_FLAGS.strict ? "on" : "off" },
      "skip-report": { type: "string", default: PROOF_FLAGS.skipReport.join(",") },
      out: { type: "string", default: RESULTS_DIR },
    },
  });
  const seeds = positiveInt("seeds", values.seeds);
  const capMs = parseDuration(values.cap);
  if (capMs === null || capMs <= 0) throw new RangeError("--cap: expected a duration such as 60s");
  const skipWatch = positiveInt("skip-watch", values["skip-watch"]);
  const udelayTask = positiveInt("udelay-task", values["udelay-task"]);
  const mix = normalizeMixWeights(values.mix);
  if (values.strict !== "on" && values.strict !== "off") throw new RangeError("--strict: expected on or off");
  const strict = values.strict === "on";
  const skipReport = values["skip-report"] === "" ? [] : values["skip-report"].split(",");
  const only = values.only === undefined ? DETECTOR_ONLY : values.only.split(",");
  for (const n of only)
    if (!isInjectName(n) || !DETECTOR_ONLY.includes(n))
      throw new RangeError(`--only: ${n} is not a detector-only switch (${DETECTOR_ONLY.join(", ")})`);

  const host = hostInfo();
  const rows: { name: InjectName; kernel: string; command: string; runs: SeedRun[]; title: string }[] = [];
  for (const name of only as InjectName[]) {
    const inj = INJECTIONS[name];
    const runs: SeedRun[] = [];
    let title = "";
    for (let seed = 1; seed <= seeds; seed++) {
      const config = makeConfig({
        kernel: inj.kernel,
        cpus: 2,
        seed,
        inject: [name],
        backport: backportsFor(inj.kernel),
        irqRate: STRESS_MACHINE_FLAGS.irqRate.defaultValue,
        kcsan: true,
        kcsanSkipWatch: skipWatch,
        kcsanUdelayTask: udelayTask,
        kcsanStrict: strict,
        kcsanSkipReport: skipReport,
      });
      const r = await runStress(config, { durationMs: capMs, mix });
      const t = kcsanTitle(r, inj.breaks);
      if (t !== null && title === "") title = t;
      const rep = r.reports[0];
      const first = r.violations[0] ?? (rep ? rep.text.split("\n")[0]! : "");
      const filtered = r.kcsan?.filtered_reports ?? 0;
      runs.push({ seed, caught: t !== null, ms: r.durationMs, ops: r.ops, first, filtered });
      process.stderr.write(
        `${name} seed ${seed}: ${t ?? (first || "clean")} (${r.durationMs} ms, ${r.ops} ops, ${filtered} filtered)\n`,
      );
    }
    const flags = `--kcsan${skipWatch === DEFAULT_CONFIG.kcsanSkipWatch ? "" : ` --kcsan-skip-watch ${skipWatch}`}${
      udelayTask === DEFAULT_CONFIG.kcsanUdelayTask ? "" : ` --kcsan-udelay-task ${udelayTask}`
    }${strict ? " --kcsan-strict" : ""}${skipReport.length === 0 ? "" : ` --kcsan-skip-report ${skipReport.join(",")}`}`;
    const backports = backportsFor(inj.kernel);
    const command = `vmsim stress --kernel ${inj.kernel} --cpus 2 --seed <1..${seeds}> --inject ${name}${
      backports.length === 0 ? "" : ` --backport ${backports.join(",")}`
    } ${flags}${mix === "" ? "" : ` --mix ${mix}`} --duration ${formatDuration(capMs)}`;
    rows.push({ name, kernel: inj.kernel, command, runs, title });
  }

  const sec = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  const table = rows.map((row) => {
    const caught = row.runs.filter((r) => r.caught);
    const ms = caught.map((r) => r.ms);
    const times = ms.length === 0 ? "—" : `${sec(Math.min(...ms))} / ${sec(median(ms))} / ${sec(Math.max(...ms))}`;
    const filtered = row.runs.reduce((n, r) => n + r.filtered, 0);
    return `| \`${row.name}\` (${row.kernel}) | ${caught.length}/${row.runs.length} | ${times} | ${filtered} | ${row.title || "—"} |`;
  });
  const missed = rows.filter((row) => row.runs.some((r) => !r.caught));
  const md = `${[
    hostLine(host),
    "",
    `The detector's proof: each detector-only switch (\`--inject\`, src/shared/inject.ts) under \`vmsim stress --kcsan\`, ` +
      `2 CPUs, seeds 1–${seeds}, each run capped at ${formatDuration(capMs)} of workload; kcsan_skip_watch ${skipWatch}, ` +
      `udelay_task ${udelayTask} µs, ${strict ? "strict rules" : "default rules"}, report filter ` +
      `${skipReport.join(",") || "empty"}, mix ${mix || "as is"}. A seed counts when the run stops on a KCSAN report naming ` +
      "the function the switch breaks.",
    "",
    "| switch | seeds caught | time to the report (min / median / max) | reports filtered | report |",
    "|---|---:|---:|---:|---|",
    ...table,
    "",
    "Commands:",
    "",
    ...rows.map((row) => `    ${row.command}`),
    "",
    "Made by `node dist/bench/kcsan_proof.js" +
      `${seeds === 20 ? "" : ` --seeds ${seeds}`}${capMs === 60_000 ? "" : ` --cap ${formatDuration(capMs)}`}` +
      `${values.only === undefined ? "" : ` --only ${values.only}`}` +
      `${mix === normalizeMixWeights(PROOF_FLAGS.mix) ? "" : ` --mix ${mix || '""'}`}` +
      `${skipWatch === PROOF_FLAGS.skipWatch ? "" : ` --skip-watch ${skipWatch}`}` +
      `${udelayTask === PROOF_FLAGS.udelayTask ? "" : ` --udelay-task ${udelayTask}`}` +
      `${strict === PROOF_FLAGS.strict ? "" : ` --strict ${values.strict}`}` +
      `${values["skip-report"] === PROOF_FLAGS.skipReport.join(",") ? "" : ` --skip-report ${values["skip-report"] || '""'}`}\`.`,
  ].join("\n")}\n`;
  writeResults(values.out, "kcsan-proof", md, {
    host,
    seeds,
    capMs,
    skipWatch,
    udelayTask,
    strict,
    skipReport,
    mix,
    switches: rows,
  });
  process.stdout.write(md);
  if (missed.length > 0) process.exitCode = 1;
}

await runBenchMain(main);
