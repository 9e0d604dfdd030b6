/**
 * A short per-step timeline of a deterministic run, for a person: each
 * switch of the run token (who ran, who runs next and why, who could run),
 * then the failure and every CPU's last events.
 */
import { type Decision, WHY_BLOCK, WHY_DONE, WHY_DUE, WHY_START, WHY_YIELD, maskText } from "../sched/sched_det.js";
import { type Failure, failureHeadline } from "./explorer.js";

function why(d: Decision, from: number, kcsan: boolean): string {
  switch (d.why) {
    case WHY_START:
      return "starts the call";
    case WHY_DUE:
      return from >= 0 ? `preempts CPU${from}` : "runs";
    case WHY_BLOCK:
      return `runs: CPU${from} blocked (waits for a lock, a grace period or a flush)`;
    case WHY_DONE:
      return `runs: CPU${from} finished its call`;
    case WHY_YIELD:
      // A KCSAN machine also yields in its oops window (kcsan_oops_window, src/sched/kcsan.ts).
      return `runs: CPU${from} yielded (${kcsan ? "KCSAN's oops window, or waiting for a grace period" : "waiting for a grace period"})`;
    default:
      return "runs";
  }
}

/** The timeline lines; `events` holds each CPU's last events at the end of the run; `kcsan`: a --kcsan machine's. */
export function timeline(
  decisions: readonly Decision[],
  steps: number,
  failure: Failure | null,
  events: readonly (readonly string[])[] = [],
  kcsan = false,
): string[] {
  const out = ["   step  token  why (runnable CPUs)"];
  let cur = -1;
  for (const d of decisions) {
    const from = d.why === WHY_START ? -1 : cur;
    out.push(`${String(d.step).padStart(7)}  CPU${d.cpu}   ${why(d, from, kcsan)} ${maskText(d.mask, d.maskHi)}`);
    cur = d.cpu;
  }
  out.push(`${String(steps).padStart(7)}  ${failure ? `FAILS: ${failureHeadline(failure)}` : "end of the run"}`);
  events.forEach((ev, cpu) => {
    if (ev.length === 0) return;
    out.push(`  CPU${cpu}'s last events:`);
    for (const e of ev) out.push(`    ${e}`);
  });
  return out;
}
