/**
 * A piscina task of `vmsim explore --jobs N`: one exploration on a machine of
 * its own (the pool's thread is that machine's main thread), with its own
 * strategy seeds. Returns its statistics and, if it found one, the failing run.
 */
import type { MachineConfig } from "../shared/config.js";
import { type ExploreOptions, type ExploreStats, explore } from "./explore.js";
import { Explorer } from "./explorer.js";
// The race catalog's scenarios (catalog:…) register themselves.
import "./catalog.js";
import type { ScenarioParams } from "./scenario.js";
import { resolveScenario } from "./script.js";
import type { ScriptLine } from "../workers/workloads/exec_script.js";

export interface ExploreTask {
  readonly config: MachineConfig;
  readonly scenario: string;
  /** The script scenario's lines, by CPU. */
  readonly script?: readonly (readonly ScriptLine[])[];
  readonly params: ScenarioParams;
  readonly options: ExploreOptions;
}

export default async function exploreTask(t: ExploreTask): Promise<ExploreStats> {
  const scenario = resolveScenario(t.scenario, t.script);
  if (scenario === undefined) throw new Error(`unknown scenario ${t.scenario}`);
  const ex = await Explorer.start(t.config, scenario);
  try {
    return await explore(ex, t.params, t.options);
  } finally {
    await ex.close();
  }
}
