/**
 * A piscina task of a stress campaign (src/cli/campaign.ts): one stress run on
 * a machine of its own. The pool's thread is that machine's main thread: it
 * boots the machine, starts its CPU workers, runs runStress and shuts it down.
 */
import type { MachineConfig } from "../shared/config.js";
import { type StressOptions, type StressResult, runStress } from "./stress.js";

/** What a task carries: structured-clone data only (no callbacks, no signal). */
export interface StressTask {
  readonly config: MachineConfig;
  readonly options: Omit<StressOptions, "onProgress" | "afterRound" | "signal">;
}

/** Runs one seed's stress run. */
export default function stressTask(task: StressTask): Promise<StressResult> {
  return runStress(task.config, task.options);
}
