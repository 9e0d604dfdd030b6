/**
 * The sites of the KCSAN build (tools/kcsan_build.ts): every plain access of
 * kernel state passes the id of the kernel function it is in, and the build
 * writes the names, by id, beside dist-kcsan/src. The deterministic watch
 * names the side of a race that is switched out by its site.
 */
import { readFileSync } from "node:fs";

/** The file the build writes at the root of its output (dist-kcsan/). */
export const KCSAN_SITES = "kcsan_sites.json";

let names: readonly string[] | null = null;

/** The kernel function of site `id` ("?" outside the KCSAN build). Report path only. */
export function kcsanSiteName(id: number): string {
  if (names === null) {
    // This module is dist-kcsan/src/sched/kcsan_sites.js in the build that passes sites.
    try {
      names = JSON.parse(readFileSync(new URL(`../../${KCSAN_SITES}`, import.meta.url), "utf8")) as string[];
    } catch {
      names = [];
    }
  }
  return names[id] ?? "?";
}
