/**
 * The floor build (issue 11's measure of what synchronization costs the hot
 * path; docs/benchmarks.md, "The floor build"): compiles src/ a second time, into
 * dist-floor/, with every Atomics operation on an arena view turned into the
 * plain typed-array access it performs. The kernel code is the same step for
 * step (every lock, sched point, RCU callback and page-table store stays);
 * only the price of the atomic instruction goes. That is right on one thread
 * alone: the build runs machines of one CPU (`node dist/bench/hotpath.js
 * --floor`), never CPU workers. Atomics.wait and notify stay the futex.
 *
 *   node dist/tools/floor_build.js [outDir]
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { arenaViews, emitSrc, root } from "./src_emit.js";

/** The Atomics read-modify-writes, as the operator that makes the new value from the old one `o` and `v` (null: v). */
const RMW_OPS: ReadonlyMap<string, ts.BinaryOperator | null> = new Map([
  ["add", ts.SyntaxKind.PlusToken],
  ["sub", ts.SyntaxKind.MinusToken],
  ["and", ts.SyntaxKind.AmpersandToken],
  ["or", ts.SyntaxKind.BarToken],
  ["xor", ts.SyntaxKind.CaretToken],
  ["exchange", null],
]);

/**
 * The plain helper of Atomics.`op`, emitted into the file that uses it: `__floor_<op>(a, i, v)` stores the new
 * value and returns the old one; `__floor_compareExchange(a, i, e, v)` stores v where the old value is e (e arrives
 * converted to the element type, as Atomics.compareExchange converts it).
 */
function rmwHelper(f: ts.NodeFactory, op: string): ts.FunctionDeclaration {
  const id = (n: string) => f.createIdentifier(n);
  const cmpxchg = op === "compareExchange";
  const names = cmpxchg ? ["a", "i", "e", "v"] : ["a", "i", "v"];
  const slot = () => f.createElementAccessExpression(id("a"), id("i"));
  const oper = RMW_OPS.get(op) ?? null;
  const store = f.createExpressionStatement(
    f.createAssignment(slot(), oper === null ? id("v") : f.createBinaryExpression(id("o"), oper, id("v"))),
  );
  return f.createFunctionDeclaration(
    undefined,
    undefined,
    `__floor_${op}`,
    undefined,
    names.map((n) => f.createParameterDeclaration(undefined, undefined, n)),
    undefined,
    f.createBlock([
      f.createVariableStatement(
        undefined,
        f.createVariableDeclarationList(
          [f.createVariableDeclaration("o", undefined, undefined, slot())],
          ts.NodeFlags.Const,
        ),
      ),
      cmpxchg ? f.createIfStatement(f.createStrictEquality(id("o"), id("e")), store) : store,
      f.createReturnStatement(id("o")),
    ]),
  );
}

/** compareExchange's expected value converted to the view's element type, as Atomics converts it: `(e) <op> <mask>`. */
const TO_ELEMENT: ReadonlyMap<string, readonly [ts.BinaryOperator, number]> = new Map([
  ["I32", [ts.SyntaxKind.BarToken, 0]],
  ["U32", [ts.SyntaxKind.GreaterThanGreaterThanGreaterThanToken, 0]],
  ["U16", [ts.SyntaxKind.AmpersandToken, 0xffff]],
  ["U8", [ts.SyntaxKind.AmpersandToken, 0xff]],
]);

/** What the transformer did: the Atomics operations it made plain. */
export interface FloorStats {
  operations: number;
}

/** The transformer: makes one source file's Atomics operations on arena views plain; counts them in `stats`. */
export function floorTransformer(stats: FloorStats): ts.TransformerFactory<ts.SourceFile> {
  return (context) => (sf) => {
    const f = context.factory;
    const views = arenaViews(sf);
    if (views.size === 0) return sf;
    const used = new Set<string>();
    const visit = (node: ts.Node): ts.Node => {
      const out = ts.visitEachChild(node, visit, context);
      if (!ts.isCallExpression(out)) return out;
      const callee = out.expression;
      const view = out.arguments[0];
      if (
        !ts.isPropertyAccessExpression(callee) ||
        !ts.isIdentifier(callee.expression) ||
        callee.expression.text !== "Atomics" ||
        view === undefined ||
        !ts.isIdentifier(view) ||
        !views.has(view.text)
      )
        return out;
      const op = callee.name.text;
      const [, index, ...rest] = out.arguments;
      const element = () => f.createElementAccessExpression(view, index!);
      if (op === "load") {
        stats.operations++;
        return element();
      }
      if (op === "store") {
        stats.operations++;
        return f.createParenthesizedExpression(f.createAssignment(element(), rest[0]!));
      }
      if (op !== "compareExchange" && !RMW_OPS.has(op)) return out;
      stats.operations++;
      used.add(op);
      if (op === "compareExchange") {
        const [conv, mask] = TO_ELEMENT.get(view.text)!;
        rest[0] = f.createBinaryExpression(
          f.createParenthesizedExpression(rest[0]!),
          conv,
          f.createNumericLiteral(mask),
        );
      }
      return f.createCallExpression(f.createIdentifier(`__floor_${op}`), undefined, [view, index!, ...rest]);
    };
    const body = ts.visitEachChild(sf, visit, context);
    if (used.size === 0) return body;
    return f.updateSourceFile(body, [...body.statements, ...[...used].sort().map((op) => rmwHelper(f, op))]);
  };
}

/** Compiles src/ into `outDir` (default dist-floor/) with the transformer. */
export function buildFloor(outDir = join(root, "dist-floor")): FloorStats {
  const stats: FloorStats = { operations: 0 };
  emitSrc(outDir, floorTransformer(stats));
  return stats;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] === undefined ? undefined : resolve(process.argv[2]);
  const s = buildFloor(out);
  console.log(`floor: ${s.operations} Atomics operations made plain → ${out ?? "dist-floor/"}`);
}
