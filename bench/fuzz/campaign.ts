/**
 * A fuzz campaign over the three things users hand to vmsim — exec scripts,
 * replay files, command lines — in rounds of seeded fast-check runs. A
 * failing case is shrunk by fast-check to a minimal counterexample and
 * written as files that reproduce it with one command.
 */
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import fc from "fast-check";
import { type ArgvCase, argvCase, argvFolder, runArgvCli } from "./argv.js";
import {
  type ExecCase,
  type ExecGenOptions,
  execCase,
  runExecCli,
  runExecLibrary,
  writeExecCase,
} from "./exec_scripts.js";
import { type ReplayCase, makeBaseReplayFiles, replayCase, runReplayCli, writeReplayCase } from "./replay_files.js";

/**
 * The surfaces: exec scripts through the library (`vmsim exec`'s execScript,
 * in this process: many scripts per second) and through the CLI, replay files
 * and command lines through the CLI.
 */
export const SURFACES = ["exec", "exec-cli", "replay", "argv"] as const;
export type Surface = (typeof SURFACES)[number];

/** What a campaign needs: a folder for its files, the base replay files, the generators' options, a time limit per run. */
export interface FuzzContext {
  readonly dir: string;
  readonly bases: readonly string[];
  readonly exec: ExecGenOptions;
  /** A `vmsim` run that takes longer has hung. */
  readonly timeoutMs: number;
}

/** Sets a campaign up in a fresh folder below `parent`: the base replay files come from `vmsim explore` (a few seconds). */
export async function fuzzContext(parent: string, exec: ExecGenOptions, timeoutMs: number): Promise<FuzzContext> {
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, "fuzz-"));
  return { dir, bases: await makeBaseReplayFiles(dir), exec, timeoutMs };
}

/** How one round of one surface went. */
export interface RoundResult {
  readonly surface: Surface;
  readonly seed: number;
  readonly runs: number;
  /** Exec scripts that ended cleanly without a misuse the kernel does not check: their `check` had to pass. */
  readonly checked: number;
  /** The property that broke, on the minimal counterexample; null when none did. */
  readonly failure: string | null;
  /** The folder whose files reproduce the failure, and the command that does. */
  readonly repro: { readonly dir: string; readonly command: string } | null;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

/** Writes the files that reproduce a failing case into `dir`; returns the command to run there. */
function writeRepro(surface: Surface, value: unknown, ctx: FuzzContext, dir: string): string {
  mkdirSync(dir, { recursive: true });
  let argv: readonly string[];
  switch (surface) {
    case "exec":
    case "exec-cli":
      argv = writeExecCase(value as ExecCase, dir);
      break;
    case "replay":
      argv = writeReplayCase(value as ReplayCase, ctx.bases, dir);
      break;
    case "argv": {
      cpSync(argvFolder(ctx.dir, ctx.bases[0]!), dir, { recursive: true });
      argv = (value as ArgvCase).argv;
      break;
    }
  }
  const command = `vmsim ${argv.map((a) => shellQuote(a.startsWith(dir) ? relative(dir, a) : a)).join(" ")}`;
  writeFileSync(join(dir, "command.sh"), `#!/bin/sh\n# run in this folder\n${command}\n`);
  return command;
}

/** Runs `numRuns` cases of `surface` from `seed`; a failure is shrunk and written as a reproduction. */
export async function fuzzRound(
  surface: Surface,
  seed: number,
  numRuns: number,
  ctx: FuzzContext,
  onCase: () => void = () => {},
): Promise<RoundResult> {
  const work = join(ctx.dir, "work");
  mkdirSync(work, { recursive: true });
  let checked = 0;
  const run = async (c: unknown) => {
    onCase();
    switch (surface) {
      case "exec":
        if ((await runExecLibrary(c as ExecCase)).strict) checked++;
        break;
      case "exec-cli":
        if ((await runExecCli(c as ExecCase, work, ctx.timeoutMs)).strict) checked++;
        break;
      case "replay":
        await runReplayCli(c as ReplayCase, ctx.bases, work, ctx.timeoutMs);
        break;
      case "argv":
        await runArgvCli(c as ArgvCase, work, ctx.bases[0]!, ctx.timeoutMs);
        break;
    }
  };
  const arbitrary: fc.Arbitrary<unknown> =
    surface === "replay"
      ? replayCase(ctx.bases.length)
      : surface === "argv"
        ? argvCase
        : execCase(ctx.exec, surface === "exec-cli" ? 120 : 40);
  const d = await fc.check(fc.asyncProperty(arbitrary, run), { seed, numRuns });
  if (!d.failed) return { surface, seed, runs: d.numRuns, checked, failure: null, repro: null };
  const value = d.counterexample?.[0];
  const failure = d.errorInstance instanceof Error ? d.errorInstance.message : String(d.errorInstance);
  if (value === undefined) return { surface, seed, runs: d.numRuns, checked, failure, repro: null };
  const dir = join(ctx.dir, `failure-${surface}-${seed}`);
  const repro = { dir, command: writeRepro(surface, value, ctx, dir) };
  return { surface, seed, runs: d.numRuns, checked, failure, repro };
}
