/**
 * Per-CPU access helpers a kernel engineer reaches for (include/linux/percpu-defs.h,
 * the get_cpu/put_cpu pair of include/linux/smp.h and the CPU iterators of
 * include/linux/cpumask.h, v4.19), on top of DEFINE_PER_CPU / this_cpu_ptr /
 * per_cpu_ptr (src/shared/arena.ts, src/shared/smp.ts).
 *
 * A CPU here is a thread that never migrates, and interrupts arrive only at
 * sched points, so the this_cpu_* operations are plain loads and stores: no
 * JS statement below contains a sched point, which makes each one atomic with
 * respect to this CPU's own interrupts — the guarantee the kernel's this_cpu
 * ops give. They are not atomic against other CPUs, exactly as in the kernel.
 * The field operations are for 32-bit integer fields (i32, u32, ptr).
 */
import { I32, type PerCpuVar, per_cpu_ptr, theArena } from "../shared/arena.js";
import type { StructDef } from "../shared/struct.js";
import { preempt_disable, preempt_enable } from "./preempt.js";
import { smp_processor_id, this_cpu_ptr } from "../shared/smp.js";

/** The name of a field of the struct behind a per-CPU variable. */
export type PerCpuField<S extends StructDef> = keyof S["off"] & string;

/**
 * raw_cpu_ptr(&var) (v4.19): this CPU's instance without the preemption check.
 * No CPU ever migrates in vmsim, so it is the same address as this_cpu_ptr.
 */
export function raw_cpu_ptr(v: PerCpuVar): number {
  return this_cpu_ptr(v);
}

/** I32 index of `field` in the instance of `v` at per-CPU address `p`. */
function fieldIdx(v: PerCpuVar, p: number, field: string): number {
  return (p + (v.struct.off as Record<string, number>)[field]!) >> 2;
}

/** this_cpu_read(var.field) (v4.19). */
export function this_cpu_read<S extends StructDef>(v: PerCpuVar<S>, field: PerCpuField<S>): number {
  return I32[fieldIdx(v, this_cpu_ptr(v), field)]!;
}

/** this_cpu_write(var.field, val) (v4.19). */
export function this_cpu_write<S extends StructDef>(v: PerCpuVar<S>, field: PerCpuField<S>, val: number): void {
  I32[fieldIdx(v, this_cpu_ptr(v), field)] = val;
}

/** this_cpu_add(var.field, n) (v4.19). */
export function this_cpu_add<S extends StructDef>(v: PerCpuVar<S>, field: PerCpuField<S>, n: number): void {
  const i = fieldIdx(v, this_cpu_ptr(v), field);
  I32[i] = I32[i]! + n;
}

/** this_cpu_inc(var.field) (v4.19). */
export function this_cpu_inc<S extends StructDef>(v: PerCpuVar<S>, field: PerCpuField<S>): void {
  this_cpu_add(v, field, 1);
}

/** this_cpu_dec(var.field) (v4.19). */
export function this_cpu_dec<S extends StructDef>(v: PerCpuVar<S>, field: PerCpuField<S>): void {
  this_cpu_add(v, field, -1);
}

/**
 * per_cpu(var, cpu).field read as a value (v4.19). Another CPU's owner-guarded
 * fields are only stable while that CPU is parked (the harness reads stats then).
 */
export function per_cpu<S extends StructDef>(v: PerCpuVar<S>, cpu: number, field: PerCpuField<S>): number {
  return I32[fieldIdx(v, per_cpu_ptr(v, cpu), field)]!;
}

/** get_cpu() (v4.19): preemption off, then the CPU number; pair with put_cpu(). */
export function get_cpu(): number {
  preempt_disable();
  return smp_processor_id();
}

/** put_cpu() (v4.19). */
export function put_cpu(): void {
  preempt_enable();
}

/* cpu_possible_mask as a list, cached per machine size (the iterators are used in loops). */
let possible: readonly number[] = [];

/** num_possible_cpus() (v4.19): the machine's CPU count; no CPU is ever hot-added. */
export function num_possible_cpus(): number {
  return theArena().config.cpus;
}

/**
 * for_each_possible_cpu(cpu) (v4.19), as the list to loop over:
 * `for (const cpu of for_each_possible_cpu()) …`.
 */
export function for_each_possible_cpu(): readonly number[] {
  const n = theArena().config.cpus;
  if (possible.length !== n) possible = Object.freeze(Array.from({ length: n }, (_, cpu) => cpu));
  return possible;
}

/** for_each_online_cpu(cpu) (v4.19): every CPU is online for the whole run, so the possible list. */
export function for_each_online_cpu(): readonly number[] {
  return for_each_possible_cpu();
}
