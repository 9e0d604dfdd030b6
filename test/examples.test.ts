/**
 * examples/ works as written: every YAML file parses, the GitHub Actions
 * workflow and the Kubernetes Jobs have the shape a campaign needs (a matrix
 * of shards and a merge job that needs it; an Indexed Job whose index is the
 * shard, a shared volume, a merge Job), the Dockerfile copies files that
 * exist, and every `vmsim` command line in them parses with the CLI's own
 * parser (VMSIM_PARSE_ONLY=1), so a renamed flag or a bad value breaks this test.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { MAIN } from "./helpers/vmsim.js";

const ROOT = resolve(import.meta.dirname, "..");
const EXAMPLES = join(ROOT, "examples");
const YAML_FILES = readdirSync(EXAMPLES, { recursive: true, encoding: "utf8" })
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML is walked by key
type Doc = any;

function docsOf(file: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(join(EXAMPLES, file), "utf8"));
  if (!Array.isArray(docs)) return [];
  for (const d of docs) expect(d.errors, `${file}: ${d.errors.join("; ")}`).toEqual([]);
  return docs.map((d) => d.toJS());
}

/** The `vmsim …` commands of a shell script: one per `;`, `&&` or `||` separated part that starts with vmsim. */
function vmsimCommands(script: string): string[] {
  return script
    .split(/;|&&|\|\||\n/)
    .map((s) => s.trim())
    .filter((s) => s.startsWith("vmsim "));
}

/**
 * A command's words as the shell would give them to vmsim in shard 1 (matrix
 * entry 1, completion index 0): expressions and variables replaced, quotes
 * removed; globs stay as written (they only have to parse).
 */
function wordsOf(command: string, env: Record<string, string>, matrix: Record<string, string> = {}): string[] {
  const text = command
    .replace(/\$\{\{\s*matrix\.(\w+)\s*\}\}/g, (_, k: string) => matrix[k] ?? `(no matrix.${k})`)
    .replace(/\$\(\(JOB_COMPLETION_INDEX \+ 1\)\)/g, "1")
    .replace(/\$\{?([A-Z_]+)\}?/g, (m, name: string) => env[name] ?? m);
  return text
    .split(/\s+/)
    .filter((w) => w !== "")
    .map((w) => w.replace(/^"(.*)"$/, "$1"));
}

/** A workflow's env: `${{ inputs.x || 'default' }}` is its default (what a scheduled run gets). */
function envOf(env: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env ?? {}).map(([k, v]) => [k, String(v).replace(/^\$\{\{.*\|\|\s*'([^']*)'\s*\}\}$/, "$1")]),
  );
}

const TMP = mkdtempSync(join(tmpdir(), "vmsim-examples-"));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));
let jobDirs = 0;

/**
 * A job's working folder as its commands find it: empty but for the folders
 * `made` (what a download step made; a pod's volume, mounted at /results,
 * is the folder's results/ — the commands' /results/ is rewritten so).
 */
function jobDir(made: readonly string[]): string {
  const dir = join(TMP, `job-${++jobDirs}`);
  for (const m of ["", ...made]) mkdirSync(join(dir, m), { recursive: true });
  return dir;
}

/** Runs `vmsim ARGS` with VMSIM_PARSE_ONLY=1 in `cwd` (default: a folder of its own). */
function parseOnly(
  args: readonly string[],
  cwd = jobDir([]),
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [MAIN, ...args.map((a) => a.replace(/^\/results\//, "results/"))],
      { cwd, env: { ...process.env, VMSIM_PARSE_ONLY: "1" }, timeout: 60_000 },
      (err, stdout, stderr) => done({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** A job's matrix entries: its `include` list, or the first value of each matrix key (shard 1); one empty entry without a matrix. */
function matrixEntries(job: Doc): Record<string, string>[] {
  const m = job.strategy?.matrix ?? {};
  if (Array.isArray(m.include)) return m.include;
  return [Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String((v as unknown[])[0])]))];
}

/**
 * Parses every vmsim command of every job (each matrix entry) of a workflow,
 * in a folder with what the job's download steps made; resolves to how many
 * command lines there were.
 */
async function workflowCommands(file: string, wf: Doc, env: Record<string, string>): Promise<number> {
  let n = 0;
  for (const job of Object.values(wf.jobs) as Doc[]) {
    const downloads = job.steps.filter((s: Doc) => /download-artifact/.test(s.uses ?? ""));
    for (const entry of matrixEntries(job)) {
      const cwd = jobDir(downloads.map((s: Doc) => s.with.path));
      for (const c of job.steps.flatMap((s: Doc) => vmsimCommands(s.run ?? ""))) {
        await expectParses(file, wordsOf(c, env, entry), cwd);
        n++;
      }
    }
  }
  return n;
}

async function expectParses(where: string, words: readonly string[], cwd: string): Promise<void> {
  expect(words[0], where).toBe("vmsim");
  const r = await parseOnly(words.slice(1), cwd);
  expect(r.stderr, `${where}: ${words.join(" ")}`).toBe("");
  expect(r.code, `${where}: ${words.join(" ")}`).toBe(0);
  expect(r.stdout).toMatch(/^VMSIM_PARSE_ONLY: vmsim \S+.* parses$/m);
}

describe("examples/", () => {
  it("every YAML file parses", () => {
    expect(YAML_FILES).toEqual(
      expect.arrayContaining([
        "github-actions/nightly-explore.yml",
        "github-actions/nightly-test-bench.yml",
        "kubernetes/explore-job.yaml",
      ]),
    );
    for (const f of YAML_FILES) expect(docsOf(f).length, f).toBeGreaterThan(0);
  });

  it("the parse-only switch refuses what the CLI refuses", async () => {
    expect((await parseOnly(["explore", "--shard", "1/3"])).code).toBe(0);
    expect((await parseOnly(["explore", "--shards", "1/3"])).code).toBe(2);
    expect((await parseOnly(["explore", "--shard", "4/3"])).code).toBe(2);
  });

  describe("GitHub Actions: nightly-explore.yml", () => {
    const [wf] = docsOf("github-actions/nightly-explore.yml");
    const env = envOf(wf.env);

    it("runs nightly and by hand, a matrix of shards that upload their folders, and a merge job that needs them", () => {
      expect(wf.on.schedule[0].cron).toMatch(/^\S+ \S+ \* \* \*$/);
      expect(wf.on).toHaveProperty("workflow_dispatch");
      const explore = wf.jobs.explore;
      const shards: number[] = explore.strategy.matrix.shard;
      const n = shards.length;
      expect(shards).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(explore.strategy["fail-fast"]).toBe(false);
      const run = explore.steps.find((s: Doc) => /vmsim explore /.test(s.run ?? "")).run;
      expect(run).toContain(`--shard \${{ matrix.shard }}/${n} --out results/shard-\${{ matrix.shard }}`);
      const upload = explore.steps.find((s: Doc) => /upload-artifact/.test(s.uses ?? ""));
      expect(upload.if).toBe("always()");
      expect(upload.with.path).toBe(`results/shard-\${{ matrix.shard }}/`);

      const merge = wf.jobs.merge;
      expect([merge.needs].flat()).toContain("explore");
      expect(merge.if).toBe("always()");
      const download = merge.steps.find((s: Doc) => /download-artifact/.test(s.uses ?? ""));
      expect(download.with.pattern).toBe("explore-shard-*");
      const merged = merge.steps.find((s: Doc) => /vmsim explore merge/.test(s.run ?? "")).run;
      expect(merged).toContain(`${download.with.path}/*/explore-shard-*-of-${n}.json`);
      expect(merge.steps.some((s: Doc) => /upload-artifact/.test(s.uses ?? "") && s.if === "always()")).toBe(true);
    });

    it("every vmsim command in it parses, in a folder with what the job's steps made", async () => {
      expect(await workflowCommands("nightly-explore.yml", wf, env)).toBe(2);
    });
  });

  describe("GitHub Actions: nightly-test-bench.yml", () => {
    const [wf] = docsOf("github-actions/nightly-test-bench.yml");

    it("test: a matrix of shards and a merge that needs them; bench: CPU counts by runner and a merge", () => {
      expect(wf.on).toHaveProperty("workflow_dispatch");
      const shards: number[] = wf.jobs.test.strategy.matrix.shard;
      const n = shards.length;
      expect(shards).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      const run = (job: Doc, re: RegExp): string => job.steps.find((s: Doc) => re.test(s.run ?? "")).run;
      expect(run(wf.jobs.test, /vmsim test /)).toContain(
        `--shard \${{ matrix.shard }}/${n} --out test-\${{ matrix.shard }}.json`,
      );
      expect([wf.jobs["test-merge"].needs].flat()).toContain("test");
      expect(run(wf.jobs["test-merge"], /vmsim test merge/)).toContain("results/test-*.json");
      const benches: { name: string; cpus: string; runner: string }[] = wf.jobs.bench.strategy.matrix.include;
      expect(benches.map((b) => b.cpus)).toEqual(["1,2,4", "8,16"]);
      expect(wf.jobs.bench["runs-on"]).toBe(`\${{ matrix.runner }}`);
      expect([wf.jobs["bench-merge"].needs].flat()).toContain("bench");
      expect(run(wf.jobs["bench-merge"], /vmsim bench merge/)).toContain(
        benches.map((b) => `results/bench-${b.name}`).join(" "),
      );
    });

    it("every vmsim command in it parses, in a folder with what the job's steps made", async () => {
      expect(await workflowCommands("nightly-test-bench.yml", wf, envOf(wf.env))).toBe(5);
    });
  });

  describe("Kubernetes: explore-job.yaml and its Dockerfile", () => {
    const docs = docsOf("kubernetes/explore-job.yaml");
    const jobs = docs.filter((d) => d.kind === "Job");
    const indexed = jobs.find((j) => j.spec.completionMode === "Indexed");
    const merge = jobs.find((j) => j !== indexed);
    const args = (j: Doc): string => j.spec.template.spec.containers[0].args.join("\n");

    it("an Indexed Job whose index is the shard, and a merge Job, on one shared volume", () => {
      const n = indexed.spec.completions;
      expect(indexed.spec.parallelism).toBe(n);
      expect(args(indexed)).toContain(`--shard $((JOB_COMPLETION_INDEX + 1))/${n}`);
      // A pod that found a failure (exit 1) succeeds: a retry would only find it again.
      expect(args(indexed)).toMatch(/\|\| test \$\? -eq 1$/);
      expect(args(merge)).toContain(`vmsim explore merge /results/shard-*/explore-shard-*-of-${n}.json`);
      const claim = docs.find((d) => d.kind === "PersistentVolumeClaim");
      expect(claim.spec.accessModes).toContain("ReadWriteMany");
      for (const j of [indexed, merge]) {
        const pod = j.spec.template.spec;
        expect(pod.restartPolicy).toBe("Never");
        expect(pod.volumes[0].persistentVolumeClaim.claimName).toBe(claim.metadata.name);
        expect(pod.containers[0].volumeMounts[0]).toEqual({ name: pod.volumes[0].name, mountPath: "/results" });
      }
    });

    it("every vmsim command in it parses, with the volume mounted", async () => {
      const commands = jobs.flatMap((j) => vmsimCommands(args(j)));
      expect(commands.length).toBe(2);
      for (const c of commands) await expectParses("explore-job.yaml", wordsOf(c, {}), jobDir(["results"]));
    });

    it("the Dockerfile builds from files the repository has and puts vmsim on the PATH", () => {
      const lines = readFileSync(join(EXAMPLES, "kubernetes/Dockerfile"), "utf8").split("\n");
      const copied = lines.filter((l) => l.startsWith("COPY ")).flatMap((l) => l.split(/\s+/).slice(1, -1));
      expect(copied).toContain("package-lock.json");
      for (const f of copied) expect(existsSync(join(ROOT, f)), f).toBe(true);
      expect(lines).toContain("RUN npm ci && npm link");
      expect(docs.flatMap((d) => d.spec?.template?.spec?.containers ?? []).map((c: Doc) => c.image)).toEqual([
        "vmsim:latest",
        "vmsim:latest",
      ]);
      expect(lines.join("\n")).toContain("-t vmsim:latest");
    });
  });
});
