/**
 * What every measurement shares — `vmsim bench` and the bench/ runners alike:
 * statistics of repeated measurements, the host they ran on, and numbers
 * formatted for tables.
 */
import os from "node:os";

/** Two-sided 95 % Student t critical values, df 1..30 (beyond: the normal 1.96). */
const T95 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** Summary of repeated measurements of one quantity. */
export interface Stats {
  readonly median: number;
  readonly mean: number;
  /** Relative margin of error of the mean, percent (95 %). */
  readonly rmePct: number;
  readonly samples: number;
}

/** Median, mean and 95 % relative margin of error of repeated measurements. */
export function statsOf(samples: readonly number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  const mean = sorted.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(sorted.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const rmePct = n > 1 ? (100 * (T95[n - 2] ?? 1.96) * sd) / Math.sqrt(n) / mean : 0;
  return { median, mean, rmePct, samples: n };
}

/** The host a run measured: results from different hosts are not comparable. */
export interface HostInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly node: string;
  readonly platform: string;
  readonly date: string;
}

/** The host this process runs on, now. */
export function hostInfo(): HostInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    date: new Date().toISOString(),
  };
}

/** The first line of every Markdown result. */
export function hostLine(h: HostInfo): string {
  return `Machine: ${h.cpu}, ${h.cores} cores, Node ${h.node}, ${h.platform}, ${h.date}`;
}

/** Numbers for tables: three significant digits, grouped thousands from 100 up. */
export function fmt(n: number): string {
  if (n >= 100) return Math.round(n).toLocaleString("en-US");
  return n.toPrecision(3);
}
