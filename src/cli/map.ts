/**
 * `vmsim map` and the `--map` of run, stress and replay: the vmalloc area of
 * a machine at one point of a run, drawn as an SVG (src/cli/map_svg.ts) from
 * the arena (src/check/vmalloc_map.ts). See docs/map.md.
 */
import { writeFileSync } from "node:fs";
import { basename } from "node:path";
import type { KernelVersion, MachineConfig } from "../shared/config.js";
import { VMALLOC_MAP_KERNELS, vmallocMap } from "../check/vmalloc_map.js";
import { execScript } from "./exec.js";
import { plural } from "../workers/format.js";
import { vmallocMapSvg } from "./map_svg.js";

/** Throws a RangeError when the map cannot draw `kernel`'s vmalloc area (it reads one generation's structures). */
export function checkMapKernel(kernel: KernelVersion): void {
  if (!VMALLOC_MAP_KERNELS.includes(kernel))
    throw new RangeError(`the vmalloc map draws kernel ${VMALLOC_MAP_KERNELS.join(", ")} only, not ${kernel}`);
}

/**
 * Draws the machine this thread is bound to (every CPU parked or stopped)
 * into `path`; `point` says when ("after the script …"). Says what it drew
 * through `say`; false (one line on stderr) when the file cannot be written.
 */
export function drawMap(path: string, point: string, say: (line: string) => void = console.log): boolean {
  const map = vmallocMap();
  try {
    writeFileSync(path, vmallocMapSvg(map, point));
  } catch (e) {
    console.error(`vmsim: error: cannot write the map: ${(e as Error).message}`);
    return false;
  }
  const lazy = map.areas.filter((a) => a.kind === "lazy").length;
  const problems = map.problems.length > 0 ? `, ${plural(map.problems.length, "problem")}` : "";
  say(
    `map: ${path} (${plural(map.areas.length - lazy, "busy area")}, ${lazy} lazily freed, ` +
      `${plural(map.blocks.length, "vmap block")}${problems})`,
  );
  return true;
}

/**
 * The `--map` of run and stress: drawn from the mix driver's atEndOfWorkload
 * hook (every CPU parked, before the cleanup frees everything), said after
 * the run's report.
 */
export class EndOfWorkloadMap {
  private line: string | null = null;
  /** Whether the SVG was written; null while it is not drawn. */
  private written: boolean | null = null;

  /** `path`: the SVG to write, null for none. */
  constructor(private readonly path: string | null) {}

  /** Draws the map now; `failure`: what failed the rounds, null when they ran clean. */
  draw(failure: string | null): void {
    if (this.path === null) return;
    const point =
      failure === null
        ? "at the end of the workload, before the cleanup"
        : `at the end of the workload, where it failed, before any cleanup: ${failure}`;
    this.written = drawMap(this.path, point, (line) => (this.line = line));
  }

  /** Says what was drawn through `say`, or on stderr that nothing was: a CPU stopped the machine mid-operation. */
  say(say: (line: string) => void): void {
    if (this.path === null) return;
    if (this.line !== null) say(this.line);
    else if (this.written === null)
      console.error("vmsim: map: not drawn: a CPU stopped the machine in the middle of an operation");
  }

  /** False when the SVG could not be written. */
  get ok(): boolean {
    return this.written !== false;
  }
}

/**
 * `vmsim map --script`: runs the script as `vmsim exec` does, its results
 * kept (a failed op is said on stderr), and draws the machine it leaves —
 * after the final flush_work, or where a BUG stopped it. Resolves to exec's
 * exit status (0, or 1 after a BUG), 1 when the SVG cannot be written.
 */
export async function mapScript(
  config: MachineConfig,
  script: string,
  input: NodeJS.ReadableStream,
  out: string,
): Promise<number> {
  let ops = 0;
  let failed = 0;
  let drawn = true;
  const name = script === "-" ? "from standard input" : basename(script);
  const status = await execScript(
    config,
    input,
    (line) => {
      ops++;
      if ((JSON.parse(line) as { ok: boolean }).ok) return;
      failed++;
      console.error(`vmsim: map: op ${ops} failed: ${line.trim()}`);
    },
    (_m, stopped) => {
      const point =
        stopped === null
          ? `after the script ${name} (${plural(ops, "op")}${failed > 0 ? `, ${failed} failed` : ""})`
          : `where a BUG stopped the machine, running the script ${name}: ${stopped}`;
      drawn = drawMap(out, point);
    },
  );
  return drawn ? status : 1;
}
