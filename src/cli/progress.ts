/**
 * The progress bar of every long command (run, stress, campaigns, test,
 * bench, explore, shrink): on stderr when it is a terminal, nothing
 * otherwise (a pipe, a CI log). One shape for all:
 *
 *   stress [████████░░░░] 62% | 187,593 ops/s | ETA 4s | 0 failures
 */
import cliProgress from "cli-progress";
import { formatInt } from "../workers/format.js";

/** Fields a command shows after the ETA, by cli-progress token: `{ failures: 0 }` for "{failures} failures". */
export type ProgressFields = Readonly<Record<string, string | number>>;

/** What a bar shows. */
export interface ProgressOptions {
  /** What runs: "stress", "test_vmalloc" … */
  readonly label: string;
  /** The value at which the bar is full (ms of a budget, runs, seeds …). */
  readonly total: number;
  /** What the rate counts per second of wall time ("ops", "runs"); null: no rate (nothing counted while it runs). */
  readonly unit: string | null;
  /** The command's own counters after the ETA, as a cli-progress format: "{failures} failures". @defaultValue none */
  readonly fields?: string;
  /** The starting values of those fields' tokens. @defaultValue {} */
  readonly initial?: ProgressFields;
}

/** Seconds as "1h05m", "2m30s", "15s"; "?" before the rate is known (cli-progress passes "INF" or "NULL"). */
function etaText(t: number | string): string {
  if (typeof t !== "number") return "?";
  const s = Math.round(t);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** A progress bar on stderr; {@link ProgressBar.start} gives null off a terminal. */
export class ProgressBar {
  private readonly t0 = performance.now();

  private constructor(private readonly bar: cliProgress.SingleBar) {}

  /** Starts a bar when stderr is a terminal; null otherwise (the command stays quiet). */
  static start(o: ProgressOptions): ProgressBar | null {
    if (!process.stderr.isTTY) return null;
    const parts = [`  ${o.label} [{bar}] {percentage}%`];
    if (o.unit !== null) parts.push(`{rate} ${o.unit}/s`);
    parts.push("ETA {eta_formatted}");
    if (o.fields !== undefined) parts.push(o.fields);
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: parts.join(" | "),
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 20,
        formatTime: etaText,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(o.total, 0, { rate: 0, ...o.initial });
    return new ProgressBar(bar);
  }

  /**
   * Moves the bar to `value` of its total; `count` is what the rate counts
   * (ops, runs) so far, `fields` the command's counters.
   */
  update(value: number, count: number, fields: ProgressFields = {}): void {
    const secs = (performance.now() - this.t0) / 1000;
    this.bar.update(value, { ...fields, rate: formatInt(secs > 0 ? count / secs : 0) });
  }

  /** Changes the value at which the bar is full. */
  setTotal(total: number): void {
    this.bar.setTotal(total);
  }

  /** Clears the bar (and shows the cursor again). Safe to call twice. */
  stop(): void {
    this.bar.stop();
  }
}
