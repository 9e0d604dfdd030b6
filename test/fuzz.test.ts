/**
 * The short seeded fuzz campaign of CI (bench/fuzz/; `npm run fuzz` runs the
 * long one): exec scripts through the library and the CLI, replay files
 * checked on read and run by `vmsim replay` and `vmsim shrink`, command lines
 * of every command. The seed is in the test names; a failure names the folder
 * whose files reproduce its minimal counterexample and the command to run.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { type FuzzContext, type RoundResult, type Surface, fuzzContext, fuzzRound } from "../bench/fuzz/campaign.js";
import { isMalformed, replayCase, replayText } from "../bench/fuzz/replay_files.js";
import { checkReplayFile } from "../src/explore/replay_file.js";

const SEED = 20_250_917;

/** The campaign's verdict as one string: empty when clean, else the property and how to reproduce it. */
function verdict(r: RoundResult): string {
  if (r.failure === null) return "";
  return `${r.failure}\n${r.repro ? `reproduce: cd ${r.repro.dir} && ${r.repro.command}` : ""}`;
}

describe(`fuzz campaign (seed ${SEED})`, () => {
  let ctx: FuzzContext;
  beforeAll(async () => {
    ctx = await fuzzContext(join(tmpdir(), "vmsim-fuzz-test"), { irqDoubleFree: true }, 30_000);
  });

  const rounds: [Surface, number, string][] = [
    [
      "exec",
      24,
      "exec scripts through execScript: one answer per line, malformed lines refused, clean ends pass check",
    ],
    ["exec-cli", 2, "exec scripts of up to 120 lines through `vmsim exec`: exit 0 or 1, no stack trace"],
    ["replay", 8, "edited replay files through `vmsim replay` and `vmsim shrink`: malformed ones are one line, exit 2"],
    ["argv", 8, "command lines of every command: exit 0, 1 or 2 in time, usage errors one line"],
  ];
  for (const [surface, runs, what] of rounds)
    it(`${what} (${runs} cases, seed ${SEED})`, async () => {
      const r = await fuzzRound(surface, SEED, runs, ctx);
      expect(verdict(r)).toBe("");
      expect(r.runs).toBe(runs);
      // The check after a clean script is no vacuous property: some scripts end cleanly.
      if (surface === "exec") expect(r.checked).toBeGreaterThan(0);
    });

  it("every replay file explore wrote (a lost update, a list corruption, a soft lockup) passes the check on read", () => {
    expect(ctx.bases.map((b) => checkReplayFile(JSON.parse(b)).failure?.kind)).toEqual([
      "report",
      "soft-lockup",
      "report",
    ]);
  });

  it(`replay files checked on read: a malformed one throws RangeError, never another error (400 cases, seed ${SEED})`, () => {
    fc.assert(
      fc.property(replayCase(ctx.bases.length), (c) => {
        let raw: unknown;
        try {
          raw = JSON.parse(replayText(c, ctx.bases));
        } catch {
          return; // cut short: not JSON, readReplayFile's first check
        }
        let thrown: unknown = null;
        try {
          checkReplayFile(raw);
        } catch (e) {
          thrown = e;
        }
        if (thrown !== null && !(thrown instanceof RangeError)) throw thrown;
        if (isMalformed(c) && thrown === null) throw new Error("a malformed replay file was accepted");
      }),
      { seed: SEED, numRuns: 400 },
    );
  });
});
