/**
 * A micro-benchmark case: one kernel operation measured on the main thread
 * (single CPU) by bench/micro.ts. Each module under bench/cases/ exports
 * `cases: BenchCase[]` and has one re-export line in bench/cases/index.ts.
 */
export interface BenchCase {
  /** Unique name, shown in the results table (e.g. "spin_lock+spin_unlock, uncontended"). */
  name: string;
  /**
   * What the case should achieve, as "< 50 ns/op" (also ≤, µs, us, ms) or
   * "> 2M ops/s" (also ≥, K, G); the runner marks whether it was met.
   */
  target?: string;
  /** Runs once before the case is measured (boot a machine state, fill a tree …). */
  setup?: () => void | Promise<void>;
  /** One operation; it must leave the state ready for the next call. */
  fn: () => void;
}
