/**
 * The docs tell the truth: every example of output in README.md and docs/ is
 * real output, and the reference names every flag the CLI has.
 *
 * Each example block in the Markdown is announced by a comment with its
 * command, which is also the list to refresh when output changes:
 *
 *     <!-- example: vmsim run --duration 2s -->              pasted (timings vary)
 *     <!-- checked example: vmsim info -->                  re-run here, exit 0
 *     <!-- checked example, exit 2: vmsim info --memory 65M -->
 *
 * and the fenced block right after it starts with `$ <command>`. A checked
 * example is run with the built CLI (dist/) from the repository root; its
 * stdout then stderr must equal the block's lines, where a line that is only
 * `…` stands for any number of lines and `…` inside a line for any text.
 * When one fails, the message carries the fresh output to paste. A checked
 * example that writes a file the repository tracks (`--out
 * docs/images/lesson.svg`, the README's picture) writes into a temporary
 * folder instead, and the file must be the tracked one byte for byte.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { vmsim } from "./helpers/vmsim.js";

const ROOT = resolve(import.meta.dirname, "..");
const DOC_FILES = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".md"))
    .map((f) => join("docs", f)),
];

/** The front door stays short: the reference lives in docs/. */
const README_MAX_LINES = 300;

interface Example {
  readonly file: string;
  /** 1-based line of the announcing comment. */
  readonly line: number;
  readonly command: string;
  readonly checked: boolean;
  readonly exit: number;
  /** The fenced block's lines after the `$ command` line. */
  readonly expected: readonly string[];
  /** The block's first line, which must be `$ <command>`. */
  readonly prompt: string;
}

const MARKER = /^<!-- (checked )?example(?:, exit (\d+))?: (.+?) -->$/;

/** Every announced example of one Markdown file. */
function examplesOf(file: string): Example[] {
  const lines = readFileSync(join(ROOT, file), "utf8").split("\n");
  const out: Example[] = [];
  lines.forEach((text, i) => {
    const m = MARKER.exec(text.trim());
    if (!m) return;
    const open = lines[i + 1] ?? "";
    const body: string[] = [];
    if (open.startsWith("```"))
      for (let j = i + 2; j < lines.length && !lines[j]!.startsWith("```"); j++) body.push(lines[j]!);
    out.push({
      file,
      line: i + 1,
      command: m[3]!,
      checked: m[1] !== undefined,
      exit: Number(m[2] ?? 0),
      prompt: open.startsWith("```") ? (body[0] ?? "") : `(no fenced block after the comment: ${open})`,
      expected: body.slice(1),
    });
  });
  return out;
}

const EXAMPLES = DOC_FILES.flatMap(examplesOf);
const CHECKED = EXAMPLES.filter((e) => e.checked);

/** One expected line against one actual line: `…` inside a line matches any text. */
function lineMatches(expected: string, actual: string): boolean {
  if (!expected.includes("…")) return expected === actual;
  const parts = expected.split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`).test(actual);
}

/** Whether the actual lines are the expected ones, a line of only `…` standing for any number of lines. */
function outputMatches(expected: readonly string[], actual: readonly string[], i = 0, j = 0): boolean {
  if (i === expected.length) return j === actual.length;
  if (expected[i]!.trim() === "…") {
    for (let k = j; k <= actual.length; k++) if (outputMatches(expected, actual, i + 1, k)) return true;
    return false;
  }
  return j < actual.length && lineMatches(expected[i]!, actual[j]!) && outputMatches(expected, actual, i + 1, j + 1);
}

/** The arguments of a `vmsim …` command line (plain words: checked examples use no quoting). */
function argsOf(command: string): string[] {
  const words = command.split(/\s+/);
  if (words[0] !== "vmsim") throw new Error(`a checked example runs vmsim, not: ${command}`);
  return words.slice(1);
}

/** An example's `--out` that names a tracked file, redirected into `dir`; null when it names none. */
function redirectedOut(args: string[], dir: string): { readonly tracked: string; readonly temp: string } | null {
  const i = args.indexOf("--out");
  const tracked = args[i + 1];
  if (i < 0 || tracked === undefined || !existsSync(join(ROOT, tracked))) return null;
  const temp = join(dir, basename(tracked));
  args[i + 1] = temp;
  return { tracked, temp };
}

describe("docs: examples", () => {
  it("every example is announced and starts with its command", () => {
    expect(CHECKED.length).toBeGreaterThan(5);
    for (const e of EXAMPLES) expect(e.prompt, `${e.file}:${e.line}`).toBe(`$ ${e.command}`);
  });

  it("the matcher takes … for elided lines and elided text, and nothing else", () => {
    expect(outputMatches(["a", "…", "d"], ["a", "b", "c", "d"])).toBe(true);
    expect(outputMatches(["a", "…"], ["a"])).toBe(true);
    expect(outputMatches(["x 1… z"], ["x 12 y z"])).toBe(true);
    expect(outputMatches(["a", "d"], ["a", "b", "d"])).toBe(false);
    expect(outputMatches(["x (1)"], ["x (2)"])).toBe(false);
  });

  it.each(
    CHECKED.map((e) => [`${e.file}:${e.line} ${e.command}`, e] as const),
  )("%s prints what the docs show", async (_, e) => {
    const dir = mkdtempSync(join(tmpdir(), "vmsim-docs-"));
    try {
      const args = argsOf(e.command);
      const out = redirectedOut(args, dir);
      const r = await vmsim(...args);
      const printed = `${r.stdout}${r.stderr}`;
      const actual = (out ? printed.replaceAll(out.temp, out.tracked) : printed).replace(/\n$/, "").split("\n");
      const fresh = `fresh output of ${e.command} (exit ${r.code}):\n${actual.join("\n")}`;
      expect(outputMatches(e.expected, actual), fresh).toBe(true);
      expect(r.code, fresh).toBe(e.exit);
      if (out)
        expect(
          readFileSync(out.temp, "utf8") === readFileSync(join(ROOT, out.tracked), "utf8"),
          `${out.tracked} is not what \`${e.command}\` writes now: run it from the repository root to refresh it`,
        ).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The flags of one command and its subcommands, read from `vmsim … --help`. */
async function flagsOf(path: readonly string[]): Promise<Map<string, string[]>> {
  const r = await vmsim(...path, "--help");
  const flags = new Map<string, string[]>([[path.join(" "), []]]);
  let section = "";
  for (const line of r.stdout.split("\n")) {
    if (/^\S.*:$/.test(line)) section = line;
    const item = /^ {2}(\S+)/.exec(line)?.[1];
    if (item === undefined) continue;
    if (section === "Options:")
      for (const f of line.match(/--[a-z][a-z-]*/g) ?? []) if (f !== "--help") flags.get(path.join(" "))!.push(f);
    if (section === "Commands:" && item !== "help")
      for (const [k, v] of await flagsOf([...path, item])) flags.set(k, v);
  }
  return flags;
}

describe("docs: reference", () => {
  it(`README.md fits on a few screens (under ${README_MAX_LINES} lines)`, () => {
    const n = readFileSync(join(ROOT, "README.md"), "utf8").split("\n").length;
    expect(n).toBeLessThan(README_MAX_LINES);
  });

  it("docs/cli.md has a section for every command and names every flag", async () => {
    const cli = readFileSync(join(ROOT, "docs/cli.md"), "utf8");
    const byCommand = await flagsOf([]);
    expect(byCommand.size).toBeGreaterThan(8);
    for (const [command, flags] of byCommand) {
      if (command === "") continue;
      expect(cli, `a heading for vmsim ${command}`).toMatch(new RegExp(`^#+ .*\`vmsim ${command}\\b`, "m"));
      for (const f of flags) expect(cli, `vmsim ${command} ${f}`).toMatch(new RegExp(`${f}(?![a-z-])`));
    }
  });

  it("every relative link in README.md and docs/ names a file that exists, and a heading in it", () => {
    for (const file of DOC_FILES) {
      const text = readFileSync(join(ROOT, file), "utf8").replace(/<!--[\s\S]*?-->/g, "");
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const [path, anchor] = target!.split("#") as [string, string | undefined];
        if (/^[a-z]+:/.test(path)) continue;
        const linked = path === "" ? file : join(dirname(file), path);
        expect(existsSync(join(ROOT, linked)), `${file} links to ${target}`).toBe(true);
        if (anchor !== undefined) expect(anchorsOf(linked), `${file} links to ${target}`).toContain(anchor);
      }
    }
  });
});

/** The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped, spaces as hyphens. */
function anchorsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8").replace(/^```[\s\S]*?^```/gm, "");
  return [...text.matchAll(/^#+ (.+)$/gm)].map(([, h]) =>
    h!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/ /g, "-"),
  );
}

describe("docs: source paths", () => {
  it("every src/, test/ and bench/ file README.md and docs/ name exists", () => {
    for (const file of DOC_FILES) {
      const text = readFileSync(join(ROOT, file), "utf8");
      for (const [path] of text.matchAll(/\b(?:src|test|bench)\/[\w./-]+\.ts\b/g))
        expect(existsSync(join(ROOT, path)), `${file} names ${path}`).toBe(true);
    }
  });
});

describe("docs: the anchor rule", () => {
  it("matches GitHub's for headings with code, punctuation and underscores", () => {
    expect(anchorsOf("docs/cli.md")).toContain("vmsim-test-the-kernels-libtest_vmallocc");
    expect(anchorsOf("docs/races.md")).toContain("deterministic-scheduling-explore-replay-shrink");
  });
});
