/**
 * The race catalog under the data-race detector: which catalog entries race
 * on a plain access, and the explorations that show the detector reports each
 * on the plain exploration's first failing run or earlier (issue 12). Shared
 * by bench/kcsan_catalog.ts, which writes the table, and
 * test/kcsan_catalog.test.ts, which holds every entry to it.
 */
import type { CatalogEntry } from "../src/explore/catalog.js";
import { catalogConfig } from "../src/explore/catalog.js";
import { Explorer, type Failure } from "../src/explore/explorer.js";
import { findScenario } from "../src/explore/scenario.js";
import type { MachineConfig } from "../src/shared/config.js";
import type { InjectName } from "../src/shared/inject.js";
import { PROOF_FLAGS, backportsFor } from "./kcsan_proof_flags.js";

/**
 * The catalog's races on plain accesses (the others are a lock taken twice,
 * a missing TLB flush, a sleep in an interrupt, an llist cycle or arithmetic:
 * no data race for the detector to see), and the plain access each races on.
 */
export const PLAIN_RACES: Readonly<Partial<Record<InjectName, { readonly access: string; readonly fns: string[] }>>> = {
  "no-vmap-area-lock": {
    access: "the search's and the insert's tree and list accesses, no lock on one side",
    fns: ["__alloc_vmap_area_search", "__insert_vmap_area", "__list_add_rcu", "list_prev", "list_next"],
  },
  "vb-publish-before-init": {
    access: "vb->va, vb->free, vb->dirty stored after the block is on its queue",
    fns: ["new_vmap_block"],
  },
  "vmallocinfo-uninitialized": {
    access: "area->nr_pages and area->pages stored while s_show reads them",
    fns: ["__vmalloc_area_node", "show_numa_info", "vm_pages", "vm_nr_pages"],
  },
  "vb-cpu-after-insert": { access: "vb->cpu stored after xa_insert published the block", fns: ["new_vmap_block"] },
  "vb-purge-wrong-lock": {
    access: "the queue's list_head prev pointers under two different locks",
    fns: ["list_del_rcu", "list_prev", "__list_add_rcu", "__list_del"],
  },
  "vb-purge-wrong-vbq": {
    access: "the queue's list_head prev pointers under two different locks",
    fns: ["list_del_rcu", "list_prev", "__list_add_rcu", "__list_del"],
  },
};

/** One entry's explorations, plain and with the detector on. */
export interface Row {
  readonly inject: InjectName;
  readonly kernel: string;
  readonly scenario: string;
  readonly access: string;
  /** The plain exploration's first failing iteration seed (0: none within the bound) and its failure. */
  readonly plainSeed: number;
  readonly plainSignature: string;
  /** The same with `--kcsan`: the first failing seed, its signature, and the KCSAN report of the entry's race. */
  readonly kcsanSeed: number;
  readonly kcsanSignature: string;
  readonly race: string;
  /** The detector reported the entry's race on the plain exploration's first failing run or earlier. */
  readonly caught: boolean;
  readonly iterations: number;
}

/** The flags of the detector's runs (docs/kcsan.md, "The catalog under the detector"). */
export const DETECTOR = { kcsan: true, kcsanStrict: PROOF_FLAGS.strict, kcsanSkipReport: [...PROOF_FLAGS.skipReport] };

/** The first failing run of `e`'s exploration on `config`, iteration seeds 1 … `iterations`. */
async function firstFailure(
  e: CatalogEntry,
  config: MachineConfig,
  iterations: number,
): Promise<{ seed: number; failure: Failure | null }> {
  const ex = await Explorer.start(config, findScenario(e.scenario)!);
  try {
    for (let seed = 1; seed <= iterations; seed++) {
      const o = await ex.runOnce(e.strategy!, seed, { ops: e.ops, skip: [] }, e.stepCap);
      if (o.failure !== null) return { seed, failure: o.failure };
    }
  } finally {
    await ex.close();
  }
  return { seed: 0, failure: null };
}

/** The KCSAN report among `text`'s that names one of `fns` ("" when none does). */
function raceIn(text: string, fns: readonly string[]): string {
  for (const m of text.matchAll(/BUG: KCSAN: data-race in (\S+)(?: \/ (\S+))?/g))
    if (fns.includes(m[1]!) || (m[2] !== undefined && fns.includes(m[2]))) return m[0].slice(5);
  return "";
}

/** Explores `e` plain and with the detector. */
export async function exploreUnderDetector(e: CatalogEntry, race: { access: string; fns: string[] }): Promise<Row> {
  const iterations = 2 * (e.budget?.iterations ?? 20);
  const plain = await firstFailure(e, catalogConfig(e, true), iterations);
  const config = { ...catalogConfig(e, true), ...DETECTOR, backport: backportsFor(e.kernel) };
  const kcsan = await firstFailure(e, config, iterations);
  const found = kcsan.failure === null ? "" : raceIn(kcsan.failure.text, race.fns);
  return {
    inject: e.inject,
    kernel: e.kernel,
    scenario: e.scenario,
    access: race.access,
    plainSeed: plain.seed,
    plainSignature: plain.failure?.signature ?? "",
    kcsanSeed: kcsan.seed,
    kcsanSignature: kcsan.failure?.signature ?? "",
    race: found,
    caught: found !== "" && (plain.seed === 0 || kcsan.seed <= plain.seed),
    iterations,
  };
}
