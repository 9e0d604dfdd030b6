/**
 * The KCSAN build (docs/kcsan.md): compiles src/ a second time, into
 * dist-kcsan/, with a `before` transformer that does what the compiler's
 * -fsanitize=thread does for the kernel's KCSAN: every plain element load and
 * store of an arena view (I32, U32, U16, U8, F64 from src/shared/arena) in the
 * kernel folders calls the KCSAN runtime (src/sched/kcsan.ts) first, every
 * Atomics operation on one calls it as a marked access, and the byte view's
 * fill / subarray / set (memset, memcpy) become the runtime's range checks. Accesses written inside
 * data_race(…) are left alone. The normal build (dist/) never sees this.
 *
 * Run after `tsc -p tsconfig.json` (package.json's postbuild):
 *   node dist/tools/kcsan_build.js
 */
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileSync } from "node:fs";
import ts from "typescript";
import { KCSAN_SITES } from "../src/sched/kcsan_sites.js";
import { arenaViews, emitSrc, root } from "./src_emit.js";

/** Atomics operations by access type; wait and notify are the futex, not an access of kernel state. */
const ATOMIC_READS = new Set(["load"]);
const ATOMIC_WRITES = new Set(["store"]);
const ATOMIC_RMWS = new Set(["add", "sub", "and", "or", "xor", "exchange", "compareExchange"]);

/**
 * The atomics the kernel leaves unordered (atomic_t's void operations, atomic_set, WRITE_ONCE): their Atomics
 * calls are relaxed marked accesses. Every other Atomics store is a release (rcu_assign_pointer, an unlock) and
 * every other read-modify-write a full barrier (value-returning atomics, cmpxchg, xchg): the runtime's
 * __tsan_atomic_write_releaseN and __tsan_atomic_read_write_mbN, which end the deterministic watch windows.
 */
const RELAXED = new Set(["atomic_set", "atomic_add", "atomic_sub", "atomic_inc", "atomic_dec", "WRITE_ONCE"]);

/** The relaxed accessors whose plain access is a marked one (src/locks/atomic.ts): the kernel's bare READ_ONCE / WRITE_ONCE. */
const MARKED_PLAIN = new Set(["__READ_ONCE", "__WRITE_ONCE"]);

/** Range methods of the byte view (by name and argument count) and the runtime's memset / memcpy for them. */
const RANGE_CALLS: ReadonlyMap<string, string> = new Map([
  ["fill/3", "__tsan_memset"],
  ["subarray/2", "__tsan_memcpy_from"],
  ["set/2", "__tsan_memcpy_to"],
]);

/**
 * The kernel folders whose accesses are kernel state. Of src/locks only the
 * atomics (atomic_*, cmpxchg, READ_ONCE, WRITE_ONCE: marked accesses): the
 * lock implementations and lockdep are arch and locking code, which the
 * kernel builds with KCSAN_SANITIZE := n.
 */
const INSTRUMENTED = /\/src\/(mm|lib|rcu|kernel|percpu)\/|\/src\/locks\/atomic\.ts$/;

/**
 * Files of those folders KCSAN does not instrument, as the kernel's Makefiles
 * say KCSAN_SANITIZE := n: preempt_count (arch per-CPU ops), the MMU's table
 * walk (hardware, not code), and the page and slab allocators (mm/Makefile,
 * v5.8+: KCSAN_SANITIZE_slab.o, KCSAN_SANITIZE_slub.o,
 * KCSAN_SANITIZE_page_alloc.o := n).
 */
const EXCLUDED = new Set(["src/percpu/preempt.ts", "src/mm/mmu.ts", "src/mm/slab.ts", "src/mm/page_alloc.ts"]);

/** Is `file` (absolute) one the KCSAN build instruments? */
export function isInstrumented(file: string): boolean {
  const rel = relative(root, file).split("\\").join("/");
  return INSTRUMENTED.test(`/${rel}`) && !EXCLUDED.has(rel);
}

const skipOuter = (e: ts.Expression): ts.Expression => {
  while (ts.isParenthesizedExpression(e) || ts.isNonNullExpression(e)) e = e.expression;
  return e;
};

const COMPOUND = new Set([
  ts.SyntaxKind.PlusEqualsToken,
  ts.SyntaxKind.MinusEqualsToken,
  ts.SyntaxKind.AsteriskEqualsToken,
  ts.SyntaxKind.SlashEqualsToken,
  ts.SyntaxKind.PercentEqualsToken,
  ts.SyntaxKind.AsteriskAsteriskEqualsToken,
  ts.SyntaxKind.LessThanLessThanEqualsToken,
  ts.SyntaxKind.GreaterThanGreaterThanEqualsToken,
  ts.SyntaxKind.GreaterThanGreaterThanGreaterThanEqualsToken,
  ts.SyntaxKind.AmpersandEqualsToken,
  ts.SyntaxKind.BarEqualsToken,
  ts.SyntaxKind.CaretEqualsToken,
  ts.SyntaxKind.AmpersandAmpersandEqualsToken,
  ts.SyntaxKind.BarBarEqualsToken,
  ts.SyntaxKind.QuestionQuestionEqualsToken,
]);

/** The name a function is known by: its own, or the variable or property it is assigned to. */
function functionName(node: ts.Node): string | undefined {
  if (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isFunctionExpression(node)) {
    if (node.name !== undefined && ts.isIdentifier(node.name)) return node.name.text;
  }
  if (!ts.isFunctionExpression(node) && !ts.isArrowFunction(node)) return undefined;
  const p = node.parent;
  if ((ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p)) && ts.isIdentifier(p.name)) return p.name.text;
  return undefined;
}

/** A function of the harness (a camelCase name, such as irqSchedPoint): its accesses are not kernel code's. */
function isHarnessFunction(node: ts.Node): boolean {
  const name = functionName(node);
  return name !== undefined && /[A-Z]/.test(name.replace(/^_+/, "")) && /[a-z]/.test(name);
}

/** What the transformer did: files and accesses instrumented, and the sites' function names (site id: index). */
export interface KcsanStats {
  files: number;
  accesses: number;
  readonly sites: string[];
}

/**
 * The transformer: rewrites the accesses of one kernel source file; counts them in `stats`. A plain access
 * also passes its site, the id of the kernel function it is in (stats.sites), for the deterministic
 * watch's report of a CPU that is switched out. The lock code's RELEASE_POINTS start with __tsan_release().
 */
export function kcsanTransformer(stats: KcsanStats): ts.TransformerFactory<ts.SourceFile> {
  const siteIds = new Map<string, number>();
  const siteOf = (name: string): number => {
    let id = siteIds.get(name);
    if (id === undefined) {
      id = stats.sites.length;
      stats.sites.push(name);
      siteIds.set(name, id);
    }
    return id;
  };
  return (context) => (sf) => {
    const f = context.factory;
    if (!isInstrumented(sf.fileName)) return withReleasePoints(sf, context);
    const views = arenaViews(sf);
    if (views.size === 0) return withReleasePoints(sf, context);
    const used = new Set<string>();
    /** The kernel function being visited: its name is the site of the plain accesses in it. */
    let fn = "?";
    const call = (name: string, index: ts.Expression): ts.Expression => {
      used.add(name);
      stats.accesses++;
      const plain = !name.startsWith("__tsan_atomic_");
      const args = plain ? [index, f.createNumericLiteral(siteOf(fn))] : [index];
      return f.createCallExpression(f.createIdentifier(name), undefined, args);
    };
    const viewOf = (e: ts.Expression): number | undefined => {
      const x = skipOuter(e);
      return ts.isElementAccessExpression(x) && ts.isIdentifier(x.expression)
        ? views.get(x.expression.text)
        : undefined;
    };
    // Inside __READ_ONCE and __WRITE_ONCE (src/locks/atomic.ts) a plain access is a marked one, as the kernel's.
    let marked = false;
    // Inside the RELAXED atomics an Atomics write orders nothing.
    let relaxed = false;
    /** `V[i]` with its index checked by the runtime, the rest of the expression visited. */
    const rewrite = (e: ts.Expression, kind: "read" | "write" | "read_write"): ts.Expression => {
      const x = skipOuter(e) as ts.ElementAccessExpression;
      const size = views.get((x.expression as ts.Identifier).text)!;
      const access = f.updateElementAccessExpression(
        x,
        x.expression,
        call(
          `__tsan_${marked ? "atomic_" : ""}${kind}${size}`,
          ts.visitNode(x.argumentExpression, visit) as ts.Expression,
        ),
      );
      return x === e ? access : rewrap(e, access);
    };
    /** Puts `inner` back inside the parentheses and `!` that wrapped the access. */
    const rewrap = (e: ts.Expression, inner: ts.Expression): ts.Expression => {
      if (ts.isParenthesizedExpression(e)) return f.updateParenthesizedExpression(e, rewrap(e.expression, inner));
      if (ts.isNonNullExpression(e)) return f.updateNonNullExpression(e, rewrap(e.expression, inner));
      return inner;
    };
    const visit = (node: ts.Node): ts.Node => {
      // Harness and hardware models in the kernel folders are camelCase (kernel code keeps the kernel's
      // snake_case names): the simulated interrupt controller, the TLB's probe, statistics. Not kernel code.
      if (isHarnessFunction(node)) return node;
      const name = functionName(node);
      if (name !== undefined) {
        const outer = fn;
        fn = name;
        try {
          return visitFunction(node);
        } finally {
          fn = outer;
        }
      }
      return visitFunction(node);
    };
    const visitFunction = (node: ts.Node): ts.Node => {
      if (ts.isFunctionDeclaration(node) && node.name !== undefined && MARKED_PLAIN.has(node.name.text)) {
        marked = true;
        const out = ts.visitEachChild(node, visit, context);
        marked = false;
        return out;
      }
      if (ts.isFunctionDeclaration(node) && node.name !== undefined && RELAXED.has(node.name.text)) {
        relaxed = true;
        const out = ts.visitEachChild(node, visit, context);
        relaxed = false;
        return out;
      }
      if (ts.isCallExpression(node)) {
        const callee = node.expression;
        // data_race(expr): KCSAN ignores the accesses inside.
        if (ts.isIdentifier(callee) && callee.text === "data_race") return node;
        // memset / memcpy on the byte view: U8.fill(c, from, to), U8.subarray(from, to), U8.set(src, at).
        if (
          ts.isPropertyAccessExpression(callee) &&
          ts.isIdentifier(callee.expression) &&
          views.get(callee.expression.text) === 1
        ) {
          const fn = RANGE_CALLS.get(`${callee.name.text}/${node.arguments.length}`);
          if (fn !== undefined) {
            used.add(fn);
            stats.accesses++;
            return f.createCallExpression(
              f.createIdentifier(fn),
              undefined,
              node.arguments.map((a) => ts.visitNode(a, visit) as ts.Expression),
            );
          }
        }
        if (
          ts.isPropertyAccessExpression(callee) &&
          ts.isIdentifier(callee.expression) &&
          callee.expression.text === "Atomics" &&
          node.arguments.length >= 2 &&
          ts.isIdentifier(node.arguments[0]!) &&
          views.has((node.arguments[0] as ts.Identifier).text)
        ) {
          const op = callee.name.text;
          const kind = ATOMIC_READS.has(op)
            ? "read"
            : ATOMIC_WRITES.has(op)
              ? "write"
              : ATOMIC_RMWS.has(op)
                ? "read_write"
                : null;
          if (kind !== null) {
            const size = views.get((node.arguments[0] as ts.Identifier).text)!;
            const [view, index, ...rest] = node.arguments;
            const order = relaxed || kind === "read" ? "" : kind === "write" ? "_release" : "_mb";
            return f.updateCallExpression(node, node.expression, node.typeArguments, [
              view!,
              call(`__tsan_atomic_${kind}${order}${size}`, ts.visitNode(index!, visit) as ts.Expression),
              ...rest.map((a) => ts.visitNode(a, visit) as ts.Expression),
            ]);
          }
        }
      }
      if (ts.isBinaryExpression(node) && viewOf(node.left) !== undefined) {
        const op = node.operatorToken.kind;
        if (op === ts.SyntaxKind.EqualsToken || COMPOUND.has(op))
          return f.updateBinaryExpression(
            node,
            rewrite(node.left, op === ts.SyntaxKind.EqualsToken ? "write" : "read_write"),
            node.operatorToken,
            ts.visitNode(node.right, visit) as ts.Expression,
          );
      }
      if (
        (ts.isPrefixUnaryExpression(node) || ts.isPostfixUnaryExpression(node)) &&
        (node.operator === ts.SyntaxKind.PlusPlusToken || node.operator === ts.SyntaxKind.MinusMinusToken) &&
        viewOf(node.operand) !== undefined
      ) {
        const operand = rewrite(node.operand, "read_write");
        return ts.isPrefixUnaryExpression(node)
          ? f.updatePrefixUnaryExpression(node, operand)
          : f.updatePostfixUnaryExpression(node, operand);
      }
      if (ts.isElementAccessExpression(node) && viewOf(node) !== undefined) return rewrite(node, "read");
      return ts.visitEachChild(node, visit, context);
    };
    const out = withReleasePoints(ts.visitEachChild(sf, visit, context), context, used);
    if (used.size === 0) return out;
    stats.files++;
    return withRuntimeImport(out, used, f);
  };
}

/**
 * The release points of the lock code, which is not instrumented: the KCSAN build starts each of these functions
 * with __tsan_release(), as the kernel's barriers call kcsan_release() (CONFIG_KCSAN_WEAK_MEMORY) before an unlock's
 * store. The normal build is untouched.
 */
const RELEASE_POINTS = new Set(["arch_spin_unlock", "queued_read_unlock", "queued_write_unlock", "mutex_unlock"]);

/** `sf` with __tsan_release() at the start of its RELEASE_POINTS functions (`used` gets the name). */
function withReleasePoints(
  sf: ts.SourceFile,
  context: ts.TransformationContext,
  used = new Set<string>(),
): ts.SourceFile {
  const f = context.factory;
  let found = false;
  const visit = (node: ts.Node): ts.Node => {
    if (ts.isFunctionDeclaration(node) && node.name !== undefined && RELEASE_POINTS.has(node.name.text) && node.body) {
      found = true;
      const release = f.createExpressionStatement(
        f.createCallExpression(f.createIdentifier("__tsan_release"), undefined, []),
      );
      return f.updateFunctionDeclaration(
        node,
        node.modifiers,
        node.asteriskToken,
        node.name,
        node.typeParameters,
        node.parameters,
        node.type,
        f.updateBlock(node.body, [release, ...node.body.statements]),
      );
    }
    return node;
  };
  const out = ts.visitEachChild(sf, visit, context);
  if (!found) return out;
  if (used.size > 0) {
    used.add("__tsan_release");
    return out;
  }
  return withRuntimeImport(out, new Set(["__tsan_release"]), f);
}

/** `sf` with an import of `names` from the runtime (src/sched/kcsan.ts) in front. */
function withRuntimeImport(sf: ts.SourceFile, names: ReadonlySet<string>, f: ts.NodeFactory): ts.SourceFile {
  let runtime = relative(dirname(sf.fileName), join(root, "src/sched/kcsan.js")).split("\\").join("/");
  if (!runtime.startsWith(".")) runtime = `./${runtime}`;
  const imp = f.createImportDeclaration(
    undefined,
    f.createImportClause(
      false,
      undefined,
      f.createNamedImports(
        [...names].sort().map((n) => f.createImportSpecifier(false, undefined, f.createIdentifier(n))),
      ),
    ),
    f.createStringLiteral(runtime),
  );
  return f.updateSourceFile(sf, [imp, ...sf.statements]);
}

/** Compiles src/ into dist-kcsan/ with the transformer; throws on any emit error. */
export function buildKcsan(outDir = join(root, "dist-kcsan")): KcsanStats {
  const stats: KcsanStats = { files: 0, accesses: 0, sites: [] };
  emitSrc(outDir, kcsanTransformer(stats));
  writeFileSync(join(outDir, KCSAN_SITES), `${JSON.stringify(stats.sites)}\n`);
  return stats;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const s = buildKcsan();
  console.log(`kcsan: instrumented ${s.accesses} accesses in ${s.files} files → dist-kcsan/`);
}
