/**
 * The import graph of a source tree, read with the TypeScript parser (so an
 * import in a comment or a string does not count): static `import … from`,
 * side-effect `import "…"`, `export … from`, dynamic `import("…")` and the
 * worker files named by `compiledModule("…")` (a path below src/). For
 * test/layers.test.ts, which checks that src/'s folders point one way.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join, posix } from "node:path";
import ts from "typescript";

/** One import: file → file, as paths relative to the tree's root ("src/mm/vmalloc.ts"). */
export interface ImportEdge {
  readonly from: string;
  readonly to: string;
  /** `import type` / `export type` (or every name imported is a type): erased, no load order at run time. */
  readonly typeOnly: boolean;
}

/** Every .ts module below `root`/`dir` (declaration files left out), as root-relative POSIX paths. */
export function sourceFiles(root: string, dir = "src"): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = posix.join(rel, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** The module a relative specifier names: "./x.js" → "dir/x.ts"; null for packages and node: modules. */
function resolve(from: string, spec: string): string | null {
  if (!spec.startsWith("./") && !spec.startsWith("../")) return null;
  return posix.normalize(posix.join(posix.dirname(from), spec)).replace(/\.js$/, ".ts");
}

function namedImportsAreTypes(clause: ts.ImportClause): boolean {
  const b = clause.namedBindings;
  return (
    clause.name === undefined &&
    b !== undefined &&
    ts.isNamedImports(b) &&
    b.elements.length > 0 &&
    b.elements.every((e) => e.isTypeOnly)
  );
}

/** The imports of one file's text; `file` is its root-relative path (where relative specifiers start). */
export function importsOf(file: string, text: string): ImportEdge[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const out: ImportEdge[] = [];
  const add = (spec: string, typeOnly: boolean, fromSrc = false): void => {
    const to = fromSrc ? posix.join("src", spec.replace(/\.js$/, ".ts")) : resolve(file, spec);
    if (to !== null) out.push({ from: file, to, typeOnly });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
      const c = n.importClause;
      add(n.moduleSpecifier.text, c !== undefined && (c.isTypeOnly || namedImportsAreTypes(c)));
    } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      const c = n.exportClause;
      const allTypes = c !== undefined && ts.isNamedExports(c) && c.elements.every((e) => e.isTypeOnly);
      add(n.moduleSpecifier.text, n.isTypeOnly || allTypes);
    } else if (ts.isCallExpression(n) && n.arguments.length === 1 && ts.isStringLiteralLike(n.arguments[0]!)) {
      const arg = n.arguments[0].text;
      if (n.expression.kind === ts.SyntaxKind.ImportKeyword) add(arg, false);
      else if (ts.isIdentifier(n.expression) && n.expression.text === "compiledModule") add(arg, false, true);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** The import graph of every module below `root`/`dir`. */
export function importGraph(root: string, dir = "src"): ImportEdge[] {
  return sourceFiles(root, dir).flatMap((f) => importsOf(f, readFileSync(join(root, f), "utf8")));
}

/** The floor of a file: its folder below src/ ("src/mm/slab.ts" → "mm"), or its name for a file at the top ("index"). */
export function floorOf(file: string): string {
  const parts = file.split("/");
  return parts.length > 2 ? parts[1]! : parts[1]!.replace(/\.ts$/, "");
}

/** Files that sit on none of `floors` (bottom to top): "src/x/y.ts (floor x)". */
export function unplacedFiles(files: readonly string[], floors: readonly string[]): string[] {
  return files.filter((f) => !floors.includes(floorOf(f))).map((f) => `${f} (floor ${floorOf(f)})`);
}

/** Each edge from a lower floor to a higher one: "a.ts -> b.ts (floor x imports floor y)". Type-only imports count. */
export function upwardEdges(edges: readonly ImportEdge[], floors: readonly string[]): string[] {
  const out = new Set<string>();
  for (const e of edges) {
    const a = floors.indexOf(floorOf(e.from));
    const b = floors.indexOf(floorOf(e.to));
    if (a >= 0 && b > a) out.add(`${e.from} -> ${e.to} (floor ${floorOf(e.from)} imports floor ${floorOf(e.to)})`);
  }
  return [...out];
}

/**
 * Import cycles among the files `within` selects, over the imports that load
 * a module at run time (type-only ones left out): each strongly connected
 * component of two or more files (or a file importing itself), sorted.
 */
export function importCycles(edges: readonly ImportEdge[], within: (file: string) => boolean): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges)
    if (!e.typeOnly && within(e.from) && within(e.to)) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  // Tarjan's algorithm.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || next.get(v)?.includes(v)) out.push(scc.sort());
  };
  for (const v of next.keys()) if (!index.has(v)) connect(v);
  return out.sort((a, b) => a[0]!.localeCompare(b[0]!));
}
