/**
 * The floor build (tools/floor_build.ts): Atomics operations on arena views
 * become the plain accesses they perform, with the same results; other
 * arrays, wait and notify stay atomic.
 */
import { join, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { floorTransformer } from "../tools/floor_build.js";

const ROOT = resolve(import.meta.dirname, "..");

/** Compiles `source` as a file of src/mm, through the floor transformer unless `normal`. */
function plain(source: string, normal = false): { text: string; operations: number } {
  const stats = { operations: 0 };
  const out = ts.transpileModule(source, {
    fileName: join(ROOT, "src/mm/example.ts"),
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 },
    transformers: { before: normal ? [] : [floorTransformer(stats)] },
  });
  return { text: out.outputText, operations: stats.operations };
}

const ARENA_IMPORT = 'import { I32, U8 } from "../shared/arena.js";\n';

describe("the floor transformer", () => {
  it("makes loads, stores and read-modify-writes of the arena views plain; leaves wait, notify and other arrays", () => {
    const { text, operations } = plain(
      `${ARENA_IMPORT}const other = new Int32Array(new SharedArrayBuffer(8));\nexport function f(i: number): number {\n  Atomics.store(I32, i, 1);\n  const o = Atomics.add(I32, i + 1, 2);\n  Atomics.notify(I32, i);\n  Atomics.wait(I32, i, 5, 0);\n  Atomics.store(other, 0, 1);\n  return Atomics.load(I32, i) + o + Atomics.compareExchange(U8, i, 256, 3);\n}\n`,
    );
    expect(text).toContain("(I32[i] = 1);");
    expect(text).toContain("const o = __floor_add(I32, i + 1, 2);");
    expect(text).toContain("Atomics.notify(I32, i);");
    expect(text).toContain("Atomics.wait(I32, i, 5, 0);");
    expect(text).toContain("Atomics.store(other, 0, 1);");
    // compareExchange's expected value is converted to the element type first, as Atomics does.
    expect(text).toContain("return I32[i] + o + __floor_compareExchange(U8, i, (256) & 255, 3);");
    expect(text).toContain("function __floor_add(a, i, v)");
    expect(text).not.toContain("function __floor_sub");
    expect(operations).toBe(4);
  });

  it("computes what Atomics computes, operation by operation", () => {
    const ops = ["add", "sub", "and", "or", "xor", "exchange"];
    const source = `${ARENA_IMPORT}export function run(v: number): number[] {\n  return [${ops.map((op) => `Atomics.${op}(I32, 0, v), I32[0]!`).join(", ")}, Atomics.compareExchange(I32, 0, I32[0]!, 7), Atomics.compareExchange(I32, 0, 1, 9), Atomics.load(I32, 0), Atomics.compareExchange(U8, 4, -1, 2), U8[4]!];\n}\n`;
    /** Runs the compiled `run` on fresh views whose words are not zero. */
    const runOf = (text: string): number[] => {
      const sab = new SharedArrayBuffer(8);
      const I32 = new Int32Array(sab);
      const U8 = new Uint8Array(sab);
      I32[0] = -5;
      U8[4] = 255;
      const body = text.replace(/^import .*$/m, "").replace("export function", "function");
      return new Function("I32", "U8", `${body}\nreturn run(0x7ffffff3);`)(I32, U8) as number[];
    };
    const floor = plain(source);
    expect(floor.text).not.toMatch(/Atomics\.(add|sub|and|or|xor|exchange|compareExchange|load)\(/);
    const got = runOf(floor.text);
    expect(got).toEqual(runOf(plain(source, true).text));
    expect(got.at(-1)).toBe(2);
  });
});
