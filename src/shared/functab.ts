/**
 * Kernel function pointers in the arena. A callback stored in a record (an
 * rcu_head's func, a work_struct's func) is a 32-bit id derived from the
 * function's name, so every thread resolves it to its own copy of the same
 * code no matter in which order modules registered.
 */

import { kernelName } from "./arena.js";

const byId = new Map<number, { name: string; fn: (arg: number) => void }>();

function hashName(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0) | 1; // never 0: 0 is the NULL function pointer
}

/** Declares a kernel function that records may point to; returns its id. */
export function defineKernelFn(name: string, fn: (arg: number) => void): number {
  const id = hashName(name) | 0;
  const had = byId.get(id);
  if (had && had.name !== name) throw new Error(`kernel function id clash: ${name} vs ${had.name}`);
  if (had) throw new Error(`kernel function ${name} defined twice`);
  byId.set(id, { name, fn });
  return id;
}

/**
 * A direct-mapped cache of resolved ids (this thread's code, immutable once
 * defined): a softirq, an RCU callback or a work item runs per operation, and
 * a Map lookup per call cost more than the call.
 */
const CACHE_SIZE = 64;
/** An empty slot holds id 0, the NULL function pointer, whose call is the bad-pointer error. */
const cachedIds = new Int32Array(CACHE_SIZE);
const callNull = (): void => {
  throw new Error("call through a bad function pointer 0");
};
const cachedFns: ((arg: number) => void)[] = new Array<(arg: number) => void>(CACHE_SIZE).fill(callNull);

/** Calls the function `id` points to with `arg` (a record pointer). */
export function callKernelFn(id: number, arg: number): void {
  // Ids are odd (hashName): bit 0 says nothing.
  const slot = (id >>> 1) & (CACHE_SIZE - 1);
  if (cachedIds[slot] === id) {
    cachedFns[slot]!(arg);
    return;
  }
  const f = byId.get(id);
  if (!f) throw new Error(`call through a bad function pointer ${id >>> 0}`);
  cachedIds[slot] = id;
  cachedFns[slot] = f.fn;
  f.fn(arg);
}

export function kernelFnName(id: number): string {
  const f = byId.get(id);
  return f ? kernelName(f.name) : `0x${(id >>> 0).toString(16)}`;
}
