/**
 * src/'s folders point one way (docs/architecture.md, "Source tree"): a file
 * imports only from its own floor or the floors below it, and no two modules
 * import each other at run time. The graph functions are checked first on a
 * small tree with known faults, so the real check can fail.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  importCycles,
  importGraph,
  importsOf,
  sourceFiles,
  unplacedFiles,
  upwardEdges,
} from "./helpers/import_graph.js";

/** The floors of src/, bottom to top: a folder below src/, or "index" for src/index.ts (the library's API). */
const FLOORS = [
  "shared", // the arena, struct tables, config, layouts, smp_processor_id, the event ring, reports
  "sched", // sched points and the deterministic scheduler
  "percpu", // per-CPU areas, preempt_count and the irq flag
  "trace", // the trace ring (locks and RCU record into it)
  "locks", // spinlocks, rwlocks, mutexes, lockdep, might_sleep
  "lib", // lists, rbtree, bitmap, debugobjects (debugobjects takes a spinlock)
  "rcu",
  "kernel", // kernel services that take locks: irq, workqueue, cpuhp, kallsyms
  "mm",
  "check", // the invariant checkers
  "workers", // the harness: machines, CPU workers, workloads, boot, the Chrome-trace writer
  "explore",
  "cli",
  "index",
] as const;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

describe("the import graph", () => {
  const tmp = mkdtempSync(join(tmpdir(), "vmsim-layers-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const write = (file: string, text: string): void => {
    mkdirSync(dirname(join(tmp, file)), { recursive: true });
    writeFileSync(join(tmp, file), text);
  };
  write(
    "src/shared/a.ts",
    'import { b } from "../mm/b.js";\n// import { c } from "../cli/c.js";\nexport const a = b;\n',
  );
  write("src/shared/t.ts", 'import type { B } from "../mm/b.js";\nexport type T = B;\n');
  write("src/mm/b.ts", 'import { d } from "./d.js";\nexport type B = number;\nexport const b = d;\n');
  write("src/mm/d.ts", 'import { b } from "./b.js";\nexport const d = 1;\nexport const e = () => b;\n');
  write("src/mm/e.ts", 'import { type F } from "./f.js";\nexport type E = F;\n');
  write("src/mm/f.ts", 'import type { E } from "./e.js";\nexport type F = E | 1;\n');
  write("src/sched/s.ts", 'export { a } from "../shared/a.js";\nexport const s = () => import("../cli/c.js");\n');
  write(
    "src/cli/c.ts",
    'import "node:fs";\nexport const c = compiledModule("mm/b.js");\ndeclare function compiledModule(m: string): string;\n',
  );
  write("src/types/ambient.d.ts", 'declare module "x" {}\n');
  write("src/stray/x.ts", "export const x = 1;\n");
  const floors = ["shared", "sched", "mm", "cli"];

  it("reads static, type-only, re-export, dynamic and worker-file imports, and not comments", () => {
    expect(importsOf("src/shared/a.ts", 'import { b } from "../mm/b.js";\n// import "../cli/c.js";')).toEqual([
      { from: "src/shared/a.ts", to: "src/mm/b.ts", typeOnly: false },
    ]);
    const edges = importGraph(tmp);
    expect(edges.filter((e) => e.from === "src/sched/s.ts")).toEqual([
      { from: "src/sched/s.ts", to: "src/shared/a.ts", typeOnly: false },
      { from: "src/sched/s.ts", to: "src/cli/c.ts", typeOnly: false },
    ]);
    expect(edges.filter((e) => e.from === "src/cli/c.ts")).toEqual([
      { from: "src/cli/c.ts", to: "src/mm/b.ts", typeOnly: false },
    ]);
    expect(edges.filter((e) => e.typeOnly).map((e) => e.from)).toEqual([
      "src/mm/e.ts",
      "src/mm/f.ts",
      "src/shared/t.ts",
    ]);
  });

  it("names each upward edge with its floors, type-only ones included", () => {
    expect(upwardEdges(importGraph(tmp), floors).sort()).toEqual([
      "src/sched/s.ts -> src/cli/c.ts (floor sched imports floor cli)",
      "src/shared/a.ts -> src/mm/b.ts (floor shared imports floor mm)",
      "src/shared/t.ts -> src/mm/b.ts (floor shared imports floor mm)",
    ]);
  });

  it("finds run-time import cycles and leaves type-only ones out", () => {
    expect(importCycles(importGraph(tmp), () => true)).toEqual([["src/mm/b.ts", "src/mm/d.ts"]]);
    expect(importCycles(importGraph(tmp), (f) => f.startsWith("src/shared/"))).toEqual([]);
  });

  it("names files outside every floor and skips declaration files", () => {
    expect(unplacedFiles(sourceFiles(tmp), floors)).toEqual(["src/stray/x.ts (floor stray)"]);
  });
});

describe("src/", () => {
  const files = sourceFiles(root);
  const edges = importGraph(root);

  it("has every file on a floor", () => {
    expect(files.length).toBeGreaterThan(100);
    expect(unplacedFiles(files, FLOORS)).toEqual([]);
  });

  it("imports only from the same floor or a lower one", () => {
    expect(upwardEdges(edges, FLOORS)).toEqual([]);
  });

  it("has no import cycle between modules at run time", () => {
    expect(edges.filter((e) => !e.typeOnly).length).toBeGreaterThan(500);
    expect(importCycles(edges, () => true)).toEqual([]);
  });
});
