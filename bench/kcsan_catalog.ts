/**
 * The race catalog under the data-race detector (issue 12): for every catalog
 * entry whose bug is a race on a plain access (src/explore/catalog.ts), the
 * detector must report the entry's race on the plain exploration's first
 * failing run or earlier. Explorations are deterministic: each line of the
 * result is the same on every rerun of an unchanged build. Writes
 * bench/results/kcsan-catalog.{md,json}.
 *
 *   node dist/bench/kcsan_catalog.js [--out <dir>]
 *
 * Exits 1 when an entry's race is not caught so.
 */
import { parseArgs } from "node:util";
import { CATALOG } from "../src/explore/catalog.js";
import { PLAIN_RACES, type Row, exploreUnderDetector } from "./kcsan_catalog_runs.js";
import { PROOF_FLAGS } from "./kcsan_proof_flags.js";
import { RESULTS_DIR, hostInfo, hostLine, runBenchMain, writeResults } from "./report.js";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: "string", default: RESULTS_DIR } } });
  const host = hostInfo();
  const rows: Row[] = [];
  for (const e of CATALOG) {
    const race = PLAIN_RACES[e.inject];
    if (race === undefined || e.strategy === null) continue;
    const row = await exploreUnderDetector(e, race);
    process.stderr.write(
      `${row.inject}: plain seed ${row.plainSeed}, --kcsan seed ${row.kcsanSeed}: ${row.race || "no report of its race"}\n`,
    );
    rows.push(row);
  }
  const flags = `--kcsan --kcsan-strict --kcsan-skip-report ${PROOF_FLAGS.skipReport.join(",")}`;
  const md = `${[
    hostLine(host),
    "",
    "The race catalog under the detector: each entry whose race is on a plain access, explored as the catalog " +
      "explores it (its scenario, strategy and machine, iteration seeds 1, 2, 3 … up to twice its budget), once " +
      `plain and once with \`${flags}\` and the known races' backports (4.19, 5.10: \`--backport ` +
      "vb-counters-read-once`). The detector does not change a deterministic run's schedule, so both explorations " +
      "make the same runs until its first report; it must report the entry's race on the plain exploration's " +
      "first failing run or earlier.",
    "",
    "| switch | the plain access | plain: first failing seed, its failure | `--kcsan`: first failing seed | the race it reports | the run's first report | caught |",
    "|---|---|---|---:|---|---|---|",
    ...rows.map(
      (r) =>
        `| \`${r.inject}\` (${r.kernel}, \`${r.scenario}\`) | ${r.access} | ` +
        `${r.plainSeed ? `${r.plainSeed}: \`${r.plainSignature}\`` : `none in ${r.iterations}`} | ` +
        `${r.kcsanSeed || `none in ${r.iterations}`} | ${r.race ? `\`${r.race}\`` : "—"} | ` +
        `${r.kcsanSignature.startsWith("kcsan:") ? "the race" : `\`${r.kcsanSignature}\``} | ${r.caught ? "yes" : "**no**"} |`,
    ),
    "",
    "Made by `node dist/bench/kcsan_catalog.js`.",
  ].join("\n")}\n`;
  writeResults(values.out, "kcsan-catalog", md, { host, flags, entries: rows });
  process.stdout.write(md);
  if (rows.some((r) => !r.caught)) process.exitCode = 1;
}

await runBenchMain(main);
