/**
 * What the second builds of src/ share (the KCSAN build, tools/kcsan_build.ts;
 * the floor build, tools/floor_build.ts): the repository's root, the arena
 * views a source file imports, and the compile of src/ into another folder
 * with a `before` transformer.
 */
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

/** The repository: this file is tools/src_emit.ts, or dist/tools/src_emit.js once compiled. */
const self = fileURLToPath(import.meta.url);
export const root = resolve(dirname(self), ...(self.endsWith(".ts") ? [".."] : ["..", ".."]));

/** The arena views and their element sizes (src/shared/arena.ts). */
export const VIEW_SIZES: ReadonlyMap<string, number> = new Map([
  ["U8", 1],
  ["U16", 2],
  ["I32", 4],
  ["U32", 4],
  ["F64", 8],
]);

/** The local names under which `sf` imports the arena views (usually the views' own names), with their sizes. */
export function arenaViews(sf: ts.SourceFile): Map<string, number> {
  const views = new Map<string, number>();
  for (const st of sf.statements) {
    if (!ts.isImportDeclaration(st) || !ts.isStringLiteral(st.moduleSpecifier)) continue;
    if (!/(^|\/)shared\/arena\.js$|^\.\/arena\.js$/.test(st.moduleSpecifier.text)) continue;
    const named = st.importClause?.namedBindings;
    if (!named || !ts.isNamedImports(named)) continue;
    for (const el of named.elements) {
      const size = VIEW_SIZES.get((el.propertyName ?? el.name).text);
      if (size !== undefined) views.set(el.name.text, size);
    }
  }
  return views;
}

/** Compiles src/ into `outDir` (as dist/ lays it out: outDir/src/…) through `transformer`; throws on any emit error. */
export function emitSrc(outDir: string, transformer: ts.TransformerFactory<ts.SourceFile>): void {
  const configPath = join(root, "tsconfig.json");
  const read = ts.readConfigFile(configPath, ts.sys.readFile);
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, "\n"));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, root);
  const files = parsed.fileNames.filter((f) => relative(root, f).split("\\").join("/").startsWith("src/"));
  const options: ts.CompilerOptions = { ...parsed.options, outDir, declaration: false, declarationMap: false };
  const program = ts.createProgram(files, options);
  const r = program.emit(undefined, undefined, undefined, false, { before: [transformer] });
  const errors = r.diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0 || r.emitSkipped)
    throw new Error(
      ts.formatDiagnostics(errors, {
        getCanonicalFileName: (f) => f,
        getCurrentDirectory: () => root,
        getNewLine: () => "\n",
      }),
    );
}
