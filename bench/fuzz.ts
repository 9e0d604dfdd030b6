/**
 * The long fuzz campaign: exec scripts, replay files and command lines
 * (bench/fuzz/) in seeded rounds until the duration is spent or a property
 * breaks. Prints its seed first, a progress bar on a TTY (a line a minute
 * otherwise), and a one-line summary; a failure is shrunk to a minimal
 * counterexample and written as files that reproduce it, with the command.
 *
 *   npm run fuzz -- [--duration 10m] [--seed S] [--out DIR] [--no-irq-double-free]
 *
 * The same seed runs the same cases in the same order. Exits 1 on a failure.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ProgressBar } from "../src/cli/progress.js";
import { formatDuration, parseDuration } from "../src/workers/cmdline.js";
import { SURFACES, type Surface, fuzzContext, fuzzRound } from "./fuzz/campaign.js";
import { runBenchMain } from "./report.js";

/** Cases per surface and round: CLI runs cost a process each, library runs a fraction of that. */
const ROUND: Readonly<Record<Surface, number>> = { exec: 8, "exec-cli": 2, replay: 4, argv: 4 };

/** A `vmsim` run that takes longer than this has hung (the slowest good command lines take a few seconds). */
const RUN_TIMEOUT_MS = 60_000;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: "string", default: "10m" },
      seed: { type: "string" },
      out: { type: "string", default: join(tmpdir(), "vmsim-fuzz") },
      // Off: no two deferred vfrees of one address pending at once (for a vmsim without the soft-lockup verdict).
      "no-irq-double-free": { type: "boolean", default: false },
    },
  });
  const durationMs = parseDuration(values.duration);
  if (durationMs === null || durationMs <= 0) throw new RangeError("--duration: expected e.g. 90s or 10m");
  const seed = values.seed === undefined ? Math.floor(Math.random() * 0x7fffffff) : Number(values.seed);
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0x7fffffff)
    throw new RangeError(`--seed must be an integer in 0..${0x7fffffff}, got ${values.seed}`);
  console.log(
    `fuzz: seed ${seed}, duration ${formatDuration(durationMs)}` +
      `${values["no-irq-double-free"] ? ", no deferred double vfrees" : ""} (rerun: npm run fuzz -- --seed ${seed} --duration ${formatDuration(durationMs)})`,
  );
  const ctx = await fuzzContext(values.out, { irqDoubleFree: !values["no-irq-double-free"] }, RUN_TIMEOUT_MS);
  console.log(`fuzz: files in ${ctx.dir}`);

  const runs: Record<Surface, number> = { exec: 0, "exec-cli": 0, replay: 0, argv: 0 };
  let cases = 0;
  let checked = 0;
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  const bar = ProgressBar.start({
    label: "fuzz",
    total: durationMs,
    unit: "cases",
    fields: "{cases} cases",
    initial: { cases: 0 },
  });
  let lastLine = 0;
  const tick = () => {
    cases++;
    const ms = elapsed();
    bar?.update(Math.min(ms, durationMs), cases, { cases });
    // Off a terminal: a line a minute.
    if (bar === null && ms - lastLine >= 60_000) {
      lastLine = ms;
      console.log(
        `fuzz: ${formatDuration(Math.round(ms / 1000) * 1000)}, ${cases} cases (${((cases * 1000) / ms).toFixed(1)}/s)`,
      );
    }
  };

  let failed: Awaited<ReturnType<typeof fuzzRound>> | null = null;
  try {
    for (let round = 0; failed === null && elapsed() < durationMs; round++) {
      for (const [i, surface] of SURFACES.entries()) {
        if (elapsed() >= durationMs) break;
        const r = await fuzzRound(surface, (seed + round * SURFACES.length + i) >>> 0, ROUND[surface], ctx, tick);
        runs[surface] += r.runs;
        checked += r.checked;
        if (r.failure !== null) {
          failed = r;
          break;
        }
      }
    }
  } finally {
    bar?.stop();
  }

  const total = Object.values(runs).reduce((a, n) => a + n, 0);
  if (failed !== null) {
    console.log(`FAILED (${failed.surface}, round seed ${failed.seed}): ${failed.failure}`);
    if (failed.repro !== null) {
      console.log(`minimal counterexample: ${failed.repro.dir}`);
      console.log(`reproduce it: cd ${failed.repro.dir} && ${failed.repro.command}`);
    }
    process.exitCode = 1;
  }
  console.log(
    `fuzz: ${total} cases (${SURFACES.map((s) => `${s} ${runs[s]}`).join(", ")}; ${checked} clean scripts checked), ` +
      `${failed === null ? 0 : 1} failures, ` +
      `seed ${seed}, ${(elapsed() / 1000).toFixed(0)} s`,
  );
}

await runBenchMain(main);
