/**
 * The race catalog under the data-race detector (issue 12): for every catalog
 * entry whose bug is a race on a plain access (src/explore/catalog.ts), the
 * entry's exploration with `--kcsan` must fail first with a KCSAN report —
 * the detector names the race on the first failing run or earlier, before
 * (or instead of) the symptom the catalog's checks see. Explorations are
 * deterministic: each line of the result is the same on every rerun of an
 * unchanged build. Writes bench/results/kcsan-catalog.{md,json}.
 *
 *   node dist/bench/kcsan_catalog.js [--skip-watch 5] [--out <dir>]
 *
 * Exits 1 when an entry's first failing run is not a KCSAN report.
 */
import { parseArgs } from "node:util";
import { CATALOG, type CatalogEntry, catalogConfig } from "../src/explore/catalog.js";
import { Explorer } from "../src/explore/explorer.js";
import { findScenario } from "../src/explore/scenario.js";
import type { InjectName } from "../src/shared/inject.js";
import { RESULTS_DIR, hostInfo, hostLine, positiveInt, runBenchMain, writeResults } from "./report.js";

/**
 * The catalog's races on plain accesses (the others are a lock taken twice,
 * a missing TLB flush, a sleep in an interrupt, an llist cycle or arithmetic:
 * no data race for the detector to see), and the plain access each races on.
 */
export const PLAIN_RACES: Readonly<Partial<Record<InjectName, string>>> = {
  "no-vmap-area-lock": "the search's and the insert's tree and cache accesses, no lock on one side",
  "vb-publish-before-init": "vb->va, vb->free, vb->dirty stored after the block is on its queue",
  "vmallocinfo-uninitialized": "area->nr_pages and area->pages stored while s_show reads them",
  "vb-cpu-after-insert": "vb->cpu stored after xa_insert published the block",
  "vb-purge-wrong-lock": "the queue's list_head prev pointers under two different locks",
  "vb-purge-wrong-vbq": "the queue's list_head prev pointers under two different locks",
};

/** One entry's exploration with the detector on. */
interface Row {
  readonly inject: InjectName;
  readonly kernel: string;
  readonly scenario: string;
  readonly race: string;
  /** The first iteration seed whose run failed (0: none within the bound). */
  readonly firstFailingSeed: number;
  readonly signature: string;
  readonly kcsanFirst: boolean;
  readonly iterations: number;
}

async function explore(e: CatalogEntry, skipWatch: number, race: string): Promise<Row> {
  const scenario = findScenario(e.scenario)!;
  const config = { ...catalogConfig(e, true), kcsan: true, kcsanSkipWatch: skipWatch };
  const iterations = 2 * (e.budget?.iterations ?? 20);
  const ex = await Explorer.start(config, scenario);
  try {
    for (let seed = 1; seed <= iterations; seed++) {
      const o = await ex.runOnce(e.strategy!, seed, { ops: e.ops, skip: [] }, e.stepCap);
      if (o.failure === null) continue;
      const signature = o.failure.signature;
      return {
        inject: e.inject,
        kernel: e.kernel,
        scenario: e.scenario,
        race,
        firstFailingSeed: seed,
        signature,
        kcsanFirst: signature.startsWith("kcsan:"),
        iterations,
      };
    }
  } finally {
    await ex.close();
  }
  return {
    inject: e.inject,
    kernel: e.kernel,
    scenario: e.scenario,
    race,
    firstFailingSeed: 0,
    signature: "",
    kcsanFirst: false,
    iterations,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { "skip-watch": { type: "string", default: "5" }, out: { type: "string", default: RESULTS_DIR } },
  });
  const skipWatch = positiveInt("skip-watch", values["skip-watch"]);
  const host = hostInfo();
  const rows: Row[] = [];
  for (const e of CATALOG) {
    const race = PLAIN_RACES[e.inject];
    if (race === undefined || e.strategy === null) continue;
    const row = await explore(e, skipWatch, race);
    process.stderr.write(`${row.inject}: seed ${row.firstFailingSeed}: ${row.signature || "no failure"}\n`);
    rows.push(row);
  }
  const md = `${[
    hostLine(host),
    "",
    "The race catalog under the detector: each entry whose race is on a plain access, explored as the catalog " +
      `explores it (its scenario, strategy and machine) with \`--kcsan --kcsan-skip-watch ${skipWatch}\`, iteration ` +
      "seeds 1, 2, 3 … up to twice its budget. The first failing run must fail on a KCSAN report.",
    "",
    "| switch | scenario | the plain access | first failing seed | its failure | KCSAN first |",
    "|---|---|---|---:|---|---|",
    ...rows.map(
      (r) =>
        `| \`${r.inject}\` (${r.kernel}) | \`${r.scenario}\` | ${r.race} | ${r.firstFailingSeed || `none in ${r.iterations}`} | ` +
        `${r.signature ? `\`${r.signature}\`` : "—"} | ${r.kcsanFirst ? "yes" : "**no**"} |`,
    ),
    "",
    `Made by \`node dist/bench/kcsan_catalog.js${skipWatch === 5 ? "" : ` --skip-watch ${skipWatch}`}\`.`,
  ].join("\n")}\n`;
  writeResults(values.out, "kcsan-catalog", md, { host, skipWatch, entries: rows });
  process.stdout.write(md);
  if (rows.some((r) => !r.kcsanFirst)) process.exitCode = 1;
}

await runBenchMain(main);
