/**
 * Workloads: named functions a CPU runs on request. Each module under
 * src/workers/workloads/ registers its own; the CPU worker loads them all.
 * A workload is synchronous kernel-side code: it runs to completion on its CPU.
 */
import { Prng } from "../shared/prng.js";

export interface CpuCtx {
  /** This CPU's number. */
  readonly cpu: number;
  /** The machine's seed. */
  readonly seed: number;
  /** A PRNG stream of this CPU, distinct per (seed, cpu, stream). */
  prng(stream?: number): Prng;
}

export type Workload = (args: unknown, ctx: CpuCtx) => unknown;

const table = new Map<string, Workload>();

export function defineWorkload<A>(name: string, fn: (args: A, ctx: CpuCtx) => unknown): void {
  if (table.has(name)) throw new Error(`workload ${name} defined twice`);
  table.set(name, fn as Workload);
}

export function findWorkload(name: string): Workload | undefined {
  return table.get(name);
}

export function workloadNames(): string[] {
  return [...table.keys()].sort();
}

export function cpuCtx(cpu: number, seed: number): CpuCtx {
  return { cpu, seed, prng: (stream = 0) => new Prng(seed, cpu * 1024 + stream) };
}
