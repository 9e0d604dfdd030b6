/**
 * The script scenario: an op script (docs/exec.md) whose lines say which CPU runs
 * them (`"cpu": k`). `vmsim exec` runs such a script one line at a time;
 * `vmsim explore --script` runs every CPU's lines at once, each CPU in its own
 * order, under the deterministic scheduler — then the deferred work on every
 * CPU, then the checks. Replay files carry the script, so they stand alone.
 */
import { readFileSync } from "node:fs";
import { type MachineConfig, layoutOf } from "../shared/config.js";
import { LineError, isObject, parseOp } from "../workers/exec_op.js";
import type { ScriptLine } from "../workers/workloads/exec_script.js";
import { type Scenario, findScenario, scenarioNames } from "./scenario.js";

/** The scenario name replay files give a script. */
export const SCRIPT_SCENARIO = "script";

/** Validates one line of a script as `vmsim exec` does (labels are the CPU's own); returns its CPU. */
function scriptLine(o: unknown, config: MachineConfig, labels: Map<string, number>[]): number {
  if (!isObject(o)) throw new LineError("not a JSON object");
  const cpu = typeof o["cpu"] === "number" ? o["cpu"] : 0;
  const layout = layoutOf(config);
  const p = parseOp(o, config.cpus, labels[cpu] ?? new Map(), layout);
  if (p.op === "check") throw new LineError("check: explore checks every invariant after the script; leave it out");
  if (typeof p.args["as"] === "string") labels[p.cpu]!.set(p.args["as"], layout.vmallocStart);
  return p.cpu;
}

const cpuLabels = (config: MachineConfig) => Array.from({ length: config.cpus }, () => new Map<string, number>());

/**
 * Splits a script's text into each CPU's lines, validating every line as
 * `vmsim exec` does (labels are per CPU here); throws RangeError naming the
 * line and the problem.
 */
export function parseScript(text: string, config: MachineConfig): ScriptLine[][] {
  const perCpu: ScriptLine[][] = Array.from({ length: config.cpus }, () => []);
  const labels = cpuLabels(config);
  text.split("\n").forEach((raw, i) => {
    if (raw.trim() === "") return;
    const where = `script line ${i + 1}`;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch (e) {
      throw new RangeError(`${where}: not JSON: ${(e as Error).message}`);
    }
    try {
      perCpu[scriptLine(o, config, labels)]!.push(o as ScriptLine);
    } catch (e) {
      if (e instanceof LineError) throw new RangeError(`${where}: ${e.message}`);
      throw e;
    }
  });
  if (perCpu.every((l) => l.length === 0)) throw new RangeError("the script has no lines");
  return perCpu;
}

/**
 * Checks a script already split by CPU (a replay file's) as parseScript
 * checks a script's text: at most one list per CPU, each line valid and on
 * its own CPU's list; throws RangeError naming the CPU, the line and the problem.
 */
export function checkScript(script: unknown, config: MachineConfig): ScriptLine[][] {
  if (!Array.isArray(script) || script.length > config.cpus || !script.every(Array.isArray))
    throw new RangeError(`the script must be a list of at most ${config.cpus} lists of lines (one per CPU)`);
  const labels = cpuLabels(config);
  script.forEach((lines: unknown[], cpu) => {
    lines.forEach((o, i) => {
      try {
        if (scriptLine(o, config, labels) !== cpu) throw new LineError(`it says "cpu": ${(o as ScriptLine)["cpu"]}`);
      } catch (e) {
        if (e instanceof LineError) throw new RangeError(`CPU ${cpu}'s script line ${i + 1}: ${e.message}`);
        throw e;
      }
    });
  });
  if (script.every((l: unknown[]) => l.length === 0)) throw new RangeError("the script has no lines");
  return script as ScriptLine[][];
}

/** Reads and parses a script file; RangeError when it cannot be read or a line is bad. */
export function readScript(path: string, config: MachineConfig): ScriptLine[][] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new RangeError(`cannot read the script: ${(e as Error).message}`);
  }
  return parseScript(text, config);
}

/** The scenario of a script split by CPU; `ops` = lines per CPU (the first ops lines of each). */
export function scriptScenario(script: readonly (readonly ScriptLine[])[]): Scenario {
  return {
    name: SCRIPT_SCENARIO,
    summary: "an op script (docs/exec.md), every CPU running its own lines at once",
    config: { workqueue: "explicit", irqRate: 0 },
    ops: Math.max(...script.map((l) => l.length)),
    skippable: true,
    async setup() {},
    async run(m, p) {
      const results = await m.runAll("exec_script", (cpu: number) => ({
        lines: (script[cpu] ?? []).slice(0, p.ops),
        skip: p.skip[cpu] ?? [],
      }));
      // Deferred work runs at the end of the script, as `vmsim exec` runs it.
      await m.runAll("exec_op", { op: "flush_work", irq: false });
      return results;
    },
  };
}

/** The scenario a replay file names (a script scenario from the script it carries). */
export function resolveScenario(
  name: string,
  script: readonly (readonly ScriptLine[])[] | undefined,
): Scenario | undefined {
  if (name === SCRIPT_SCENARIO) return script !== undefined ? scriptScenario(script) : undefined;
  return findScenario(name);
}

/** A scenario by name (a script scenario from its lines), or a RangeError listing the names. */
export function scenarioOf(name: string, script?: readonly (readonly ScriptLine[])[]): Scenario {
  const s = resolveScenario(name, script);
  if (s === undefined)
    throw new RangeError(
      name === SCRIPT_SCENARIO
        ? "a script scenario needs its script"
        : `unknown scenario ${name}; expected one of ${scenarioNames().join(", ")}`,
    );
  return s;
}
