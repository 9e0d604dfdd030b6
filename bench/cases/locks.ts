/**
 * Lock fast paths, uncontended, on the main thread as CPU 0 with lockdep off
 * (the cost a kernel without CONFIG_LOCKDEP pays). The contended spinlock pair
 * is the `bench_spin_contended` workload (several CPUs; bench/micro.ts runs it).
 */
import { makeConfig } from "../../src/shared/config.js";
import { SP_LOCK, sched_point } from "../../src/sched/sched_point.js";
import { mutex_lock, mutex_unlock } from "../../src/locks/mutex.js";
import { read_lock, read_unlock, write_lock, write_unlock } from "../../src/locks/rwlock.js";
import { spin_lock, spin_unlock } from "../../src/locks/spinlock.js";
import { start_kernel } from "../../src/workers/boot.js";
import { bench_mutex, bench_rwlock, bench_spinlock } from "../../src/workers/workloads/locks.js";
import type { BenchCase } from "./types.js";

/** A fresh machine with lockdep off; also drops sched-point hooks an earlier case plugged in. */
const boot = () => {
  start_kernel(makeConfig({ cpus: 1, lockdep: false }));
};

export const cases: BenchCase[] = [
  {
    name: "sched point (free mode)",
    target: "≤ 5 ns",
    setup: boot,
    fn: () => sched_point(SP_LOCK),
  },
  {
    name: "spin_lock+spin_unlock (uncontended)",
    target: "≤ 40 ns",
    setup: boot,
    fn: () => {
      spin_lock(bench_spinlock.ptr);
      spin_unlock(bench_spinlock.ptr);
    },
  },
  {
    name: "spin_lock+spin_unlock (uncontended, --spinlock ticket)",
    target: "≤ 40 ns",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1, lockdep: false, spinlock: "ticket" }));
    },
    fn: () => {
      spin_lock(bench_spinlock.ptr);
      spin_unlock(bench_spinlock.ptr);
    },
  },
  {
    name: "read_lock+read_unlock (uncontended)",
    target: "≤ 40 ns",
    setup: boot,
    fn: () => {
      read_lock(bench_rwlock.ptr);
      read_unlock(bench_rwlock.ptr);
    },
  },
  {
    name: "write_lock+write_unlock (uncontended)",
    target: "≤ 40 ns",
    setup: boot,
    fn: () => {
      write_lock(bench_rwlock.ptr);
      write_unlock(bench_rwlock.ptr);
    },
  },
  {
    name: "mutex_lock+mutex_unlock (uncontended)",
    target: "≤ 40 ns",
    setup: boot,
    fn: () => {
      mutex_lock(bench_mutex.ptr);
      mutex_unlock(bench_mutex.ptr);
    },
  },
];
