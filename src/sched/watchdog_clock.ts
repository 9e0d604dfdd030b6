/**
 * The clock and the limit of every free-running watchdog (harness code): the
 * soft lockup (src/sched/watchdog.ts), the hung task (src/locks/lock_wait.ts),
 * the RCU stall (src/rcu/tree.ts), the hard lockup (src/workers/machine.ts),
 * the stress rounds' overrun (src/workers/mix_driver.ts) and the workloads'
 * bounded waits.
 *
 * The clock is monotonic: a wall-clock step (NTP, a suspended VM) neither
 * fires a watchdog nor hides one. The limit scales with the host: a CPU of the
 * machine is a thread, and on a host with fewer cores than the machine has
 * CPUs, or a busy one, a thread waits for a core — time the code did not
 * spend. So the `--watchdog` threshold (the base) is multiplied by
 *
 *   scale = max(1, CPUs / cores, load / cores), rounded up to a tenth
 *
 * where cores is os.availableParallelism() and load the host's 1-minute load
 * average (os.loadavg(); 0 where the OS has none, so only the CPUs count), read
 * when a watchdog has passed its base — a watchdog that has not costs a compare.
 * A report of a scaled limit says so.
 *
 * Deterministic runs never read it: their bounds are counted in sched points.
 */
import { availableParallelism, loadavg } from "node:os";

/**
 * performance.now()'s zero on CLOCK_MONOTONIC (process.hrtime's scale): the
 * narrowest of a few bracketed reads. {@link monotonicMs} is then one scale
 * for every thread, each of which has its own performance.now() zero.
 */
const originMs = (() => {
  let best = Number.POSITIVE_INFINITY;
  let origin = 0;
  for (let i = 0; i < 8; i++) {
    const before = performance.now();
    const [s, ns] = process.hrtime();
    const after = performance.now();
    if (after - before < best) {
      best = after - before;
      origin = s * 1e3 + ns / 1e6 - (before + after) / 2;
    }
  }
  return origin;
})();

/**
 * Milliseconds on the host's monotonic clock: the clock of every watchdog and
 * deadline, comparable between the machine's threads (to a microsecond).
 */
export function monotonicMs(): number {
  return performance.now() + originMs;
}

/** What the host gives the machine's CPUs, read when a limit is checked. */
export interface HostLoad {
  /** Cores this process may run on: os.availableParallelism(). */
  readonly cores: number;
  /** The host's 1-minute load average: os.loadavg()[0] (0 where the OS keeps none). */
  readonly load: number;
}

/** The host now. */
export function hostLoad(): HostLoad {
  return { cores: availableParallelism(), load: loadavg()[0]! };
}

/** A watchdog's limit on this host. */
export interface WatchdogLimit {
  /** The limit: the base × scale, in ms. */
  readonly ms: number;
  /** max(1, CPUs / cores, load / cores), rounded up to a tenth. */
  readonly scale: number;
  /**
   * "" when the scale is 1; else what a report appends, e.g.
   * " (host oversubscribed: 4 CPUs on 2 cores, load 12.42; limit scaled ×6.3 to 6.3s)".
   */
  readonly note: string;
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? "" : "s"}`;

/** A limit as a report shows it: "40s", "6.3s", "900ms". */
export function formatLimit(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${Math.round(ms / 100) / 10}s`;
}

/**
 * The effective limit of a watchdog whose base (the `--watchdog` threshold,
 * or a multiple of it) is `baseMs`, on a machine of `cpus` CPUs run by `host`:
 * the one place the formula lives (see the file's comment).
 */
export function watchdogLimit(baseMs: number, cpus: number, host: HostLoad = hostLoad()): WatchdogLimit {
  const cores = Math.max(1, host.cores);
  // A hair below a tenth first: 0.3 × 10 is 3.0000000000000004, which must stay ×0.3.
  const scale = Math.ceil(Math.max(1, cpus / cores, host.load / cores) * 10 - 1e-9) / 10;
  const ms = baseMs * scale;
  if (scale === 1) return { ms, scale, note: "" };
  const seen = `${plural(cpus, "CPU")} on ${plural(cores, "core")}, load ${host.load.toFixed(2)}`;
  return { ms, scale, note: ` (host oversubscribed: ${seen}; limit scaled ×${scale} to ${formatLimit(ms)})` };
}

/**
 * The check of a watchdog that has waited `elapsedMs` against base `baseMs`
 * on a machine of `cpus` CPUs: null while within the limit, else the limit
 * (its note goes into the report). Below the base nothing is read.
 */
export function watchdogExpired(
  elapsedMs: number,
  baseMs: number,
  cpus: number,
  host?: HostLoad,
): WatchdogLimit | null {
  if (elapsedMs <= baseMs) return null;
  const limit = watchdogLimit(baseMs, cpus, host);
  return elapsedMs > limit.ms ? limit : null;
}
