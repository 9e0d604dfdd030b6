/**
 * Which CPU this thread is. A worker thread is one CPU for its whole life; the
 * main thread is CPU 0 while it boots the machine (as the boot CPU is), and
 * touches kernel state afterwards only while every CPU is parked.
 */
import { type PerCpuVar, per_cpu_ptr, theArena } from "./arena.js";

let cpuId = 0;
let thisBase = 0;

/** smp_processor_id(): the CPU this code runs on. */
export function smp_processor_id(): number {
  return cpuId;
}

/** num_online_cpus(): every CPU of the machine is online for the whole run. */
export function num_online_cpus(): number {
  return theArena().config.cpus;
}

/** this_cpu_ptr(&var): address of this CPU's instance. */
export function this_cpu_ptr(v: PerCpuVar): number {
  return thisBase + v.offset;
}

/** per_cpu_ptr(&var, cpu). */
export { per_cpu_ptr };

/** Harness: binds this thread to CPU `cpu` (after the arena is attached). */
export function setCurrentCpu(cpu: number): void {
  const a = theArena();
  if (cpu < 0 || cpu >= a.config.cpus) throw new RangeError(`no CPU ${cpu}`);
  cpuId = cpu;
  thisBase = a.percpuBase + cpu * a.percpuStride;
  for (const fn of onCpuSet) fn(cpu);
}

const onCpuSet: ((cpu: number) => void)[] = [];

/** Modules that cache per-CPU addresses register here to be told the CPU. */
export function onSetCurrentCpu(fn: (cpu: number) => void): void {
  onCpuSet.push(fn);
}
