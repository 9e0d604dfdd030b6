/**
 * Worker threads always run compiled JavaScript from dist/ (docs/architecture.md,
 * "Why compiled workers"), also when their parent runs from the TypeScript
 * sources under vitest: this resolves a module of src/ to the file to start.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The compiled file of `module`, a path below src/ such as "workers/cpu.js". */
export function compiledModule(module: string): string {
  // This file lives in src/workers/ (or dist/src/workers/ once compiled).
  if (fileURLToPath(import.meta.url).endsWith(".js")) return fileURLToPath(new URL(`../${module}`, import.meta.url));
  const dist = fileURLToPath(new URL(`../../dist/src/${module}`, import.meta.url));
  if (!existsSync(dist)) throw new Error("dist/ is missing: run `npm run build` first");
  return dist;
}
