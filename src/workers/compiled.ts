/**
 * Worker threads always run compiled JavaScript from dist/ (docs/architecture.md,
 * "Why compiled workers"), also when their parent runs from the TypeScript
 * sources under vitest: this resolves a module of src/ to the file to start.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The compiled file of `module`, a path below src/ such as "workers/cpu.js";
 * with `kcsan`, of the KCSAN build beside dist/ (dist-kcsan/, docs/kcsan.md).
 */
export function compiledModule(module: string, kcsan = false): string {
  if (kcsan) {
    // This file lives in src/workers/, dist/src/workers/ or dist-kcsan/src/workers/: the package root is above.
    const up = fileURLToPath(import.meta.url).endsWith(".js") ? "../../../" : "../../";
    const file = fileURLToPath(new URL(`${up}dist-kcsan/src/${module}`, import.meta.url));
    if (!existsSync(file)) throw new Error("dist-kcsan/ (the KCSAN build) is missing: run `npm run build` first");
    return file;
  }
  if (fileURLToPath(import.meta.url).endsWith(".js")) return fileURLToPath(new URL(`../${module}`, import.meta.url));
  const dist = fileURLToPath(new URL(`../../dist/src/${module}`, import.meta.url));
  if (!existsSync(dist)) throw new Error("dist/ is missing: run `npm run build` first");
  return dist;
}
