/**
 * Issue 14, section 5: the free-running watchdogs' limit scales with the host
 * (src/sched/watchdog_clock.ts), computed from a host description the tests
 * pass in, and their clock is the host's monotonic one.
 */
import { describe, expect, it } from "vitest";
import { formatLimit, monotonicMs, watchdogExpired, watchdogLimit } from "../src/sched/watchdog_clock.js";

describe("watchdogLimit: base × max(1, CPUs / cores, load / cores), rounded up to a tenth", () => {
  it.each([
    // [base ms, CPUs, cores, load, scale, limit ms]
    [10_000, 2, 2, 0.5, 1, 10_000], // as many cores as CPUs, an idle host: the base
    [10_000, 1, 16, 15.9, 1, 10_000], // a busy host of enough cores
    [10_000, 8, 2, 0, 4, 40_000], // 8 CPUs on 2 cores
    [10_000, 8, 2, 14.2, 7.1, 71_000], // the load weighs more than the CPUs
    [10_000, 3, 2, 1, 1.5, 15_000],
    [300, 7, 3, 0, 2.4, 720], // 7 / 3 = 2.33…: up to 2.4, never below what the host needs
    [1000, 2, 2, 2.02, 1.1, 1100], // a hair over one thread per core already scales
    [1000, 4, 0, 0, 4, 4000], // a host that reports no cores counts as one
  ])("base %i ms, %i CPUs on %i cores, load %f: ×%f, %i ms", (base, cpus, cores, load, scale, ms) => {
    const l = watchdogLimit(base, cpus, { cores, load });
    expect(l.scale).toBe(scale);
    expect(l.ms).toBeCloseTo(ms, 6);
  });

  it("says nothing when the host is not oversubscribed, and says how when it is", () => {
    expect(watchdogLimit(10_000, 2, { cores: 2, load: 1.98 }).note).toBe("");
    expect(watchdogLimit(10_000, 8, { cores: 2, load: 14.2 }).note).toBe(
      " (host oversubscribed: 8 CPUs on 2 cores, load 14.20; limit scaled ×7.1 to 71s)",
    );
    expect(watchdogLimit(300, 1, { cores: 1, load: 2.5 }).note).toBe(
      " (host oversubscribed: 1 CPU on 1 core, load 2.50; limit scaled ×2.5 to 750ms)",
    );
  });

  it("formats a limit in ms below a second, else in seconds to a tenth", () => {
    expect([formatLimit(750), formatLimit(1000), formatLimit(6100), formatLimit(71_000)]).toEqual([
      "750ms",
      "1s",
      "6.1s",
      "71s",
    ]);
  });
});

describe("watchdogExpired: null within the limit, the limit once past it", () => {
  const host = { cores: 2, load: 0 };
  it("holds back below the base and within the scaled limit; fires past it, with the note", () => {
    expect(watchdogExpired(10_000, 10_000, 8, host)).toBeNull();
    expect(watchdogExpired(39_999, 10_000, 8, host)).toBeNull();
    expect(watchdogExpired(40_001, 10_000, 8, host)).toEqual({
      ms: 40_000,
      scale: 4,
      note: " (host oversubscribed: 8 CPUs on 2 cores, load 0.00; limit scaled ×4 to 40s)",
    });
    expect(watchdogExpired(10_001, 10_000, 2, host)).toEqual({ ms: 10_000, scale: 1, note: "" });
  });
});

describe("monotonicMs", () => {
  it("reads CLOCK_MONOTONIC (process.hrtime's scale, shared by every thread), not the wall clock", () => {
    const hrMs = () => {
      const [s, ns] = process.hrtime();
      return s * 1e3 + ns / 1e6;
    };
    const before = hrMs();
    const now = monotonicMs();
    const after = hrMs();
    // Within the bracket, to some microseconds the two clocks' zeros were matched at.
    expect(now).toBeGreaterThanOrEqual(before - 0.05);
    expect(now).toBeLessThanOrEqual(after + 0.05);
  });
});
