/**
 * `vmsim map` and the `--map` of other commands: the vmalloc area of a
 * machine at one point of a run, drawn as an SVG (src/cli/map_svg.ts) from
 * the arena (src/check/vmalloc_map.ts). `vmsim map --script` draws what an
 * exec script leaves; replay draws the failure (docs/map.md).
 */
import { writeFileSync } from "node:fs";
import { basename } from "node:path";
import type { MachineConfig } from "../shared/config.js";
import { vmallocMap } from "../check/vmalloc_map.js";
import { execScript } from "./exec.js";
import { plural } from "./format.js";
import { vmallocMapSvg } from "./map_svg.js";

/**
 * Draws the machine this thread is bound to (every CPU parked) into `path`;
 * `point` says when ("after the script …"). Returns the line that says what
 * was drawn, or throws when the file cannot be written.
 */
export function writeMap(path: string, point: string): string {
  const map = vmallocMap();
  writeFileSync(path, vmallocMapSvg(map, point));
  const lazy = map.areas.filter((a) => a.kind === "lazy").length;
  return (
    `map: ${path} (${plural(map.areas.length - lazy, "busy area")}, ${lazy} lazily freed, ` +
    `${plural(map.blocks.length, "vmap block")}${map.problems.length > 0 ? `, ${plural(map.problems.length, "problem")}` : ""})`
  );
}

/**
 * `vmsim map --script`: runs the script as `vmsim exec` does, its results
 * kept (a failed line is said on stderr), and draws the machine it leaves.
 * Resolves to the exit status: exec's (0, or 1 when a BUG stopped the
 * machine — drawn where it stopped), 1 when the SVG cannot be written.
 */
export async function mapScript(
  config: MachineConfig,
  script: string,
  input: NodeJS.ReadableStream,
  out: string,
): Promise<number> {
  let ops = 0;
  let failed = 0;
  let written = true;
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
      try {
        console.log(writeMap(out, point));
      } catch (e) {
        console.error(`vmsim: error: cannot write the map: ${(e as Error).message}`);
        written = false;
      }
    },
  );
  return written ? status : 1;
}
