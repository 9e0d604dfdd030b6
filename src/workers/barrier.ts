/**
 * How the CPUs of a multi-CPU workload meet (harness code): a reusable start
 * barrier, and handshake words that step two CPUs through a sequence.
 *
 * Both wait on one arena word through the scheduler's futex pair
 * (`sched_wait` / `sched_wake`, src/sched/sched_det.ts), so they work in
 * either mode. Free mode: a waiter spins a while (released CPUs start within
 * microseconds of each other), then sleeps in bounded slices, and a wait that
 * outlasts the config's watchdogMs (scaled with the host's load:
 * src/sched/watchdog_clock.ts) throws. Deterministic mode: a waiter blocks
 * at once and runs again only when the word changed; there is no wall-clock
 * timeout — a barrier that can never complete leaves no CPU runnable, and that
 * is the scheduler's deadlock verdict.
 */
import { I32, machineStopping, theArena } from "../shared/arena.js";
import { MachineStopped } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, SP_SPIN, sched_point } from "../sched/sched_point.js";
import { schedDeterministic, sched_wait, sched_wake } from "../sched/sched_det.js";
import { monotonicMs, watchdogExpired } from "../sched/watchdog_clock.js";
import { SPIN_TRIES, WAIT_SLICE_MS } from "../locks/lock_wait.js";

/**
 * A reusable start barrier (sense by generation): embed it in a struct table
 * (`{ name: "start", type: BARRIER }`) or DEFINE_GLOBAL it. Zeroed is ready.
 */
export const BARRIER = defineStruct("barrier", [
  /** CPUs arrived in the current generation. */
  { name: "arrived", type: "i32", guard: "atomic" },
  /** Bumped by the last arrival: what the others wait on. */
  { name: "generation", type: "i32", guard: "atomic" },
]);
const B = BARRIER.off;

/**
 * Waits until `cpus` CPUs (this one included) have called it on the barrier at
 * `barrier`; the last to arrive opens it for all and readies it for the next
 * use. `name` names the workload in a timeout's message.
 */
export function barrierWait(barrier: number, cpus: number, name: string): void {
  const arrived = (barrier + B.arrived) >> 2;
  const generation = (barrier + B.generation) >> 2;
  // Read the generation before arriving: it cannot move until this CPU has arrived.
  const gen = Atomics.load(I32, generation);
  sched_point(SP_ATOMIC);
  if (Atomics.add(I32, arrived, 1) + 1 === cpus) {
    // Reset before opening: a released CPU arrives at the next use only after the generation moved.
    Atomics.store(I32, arrived, 0);
    Atomics.add(I32, generation, 1);
    sched_wake(generation);
    return;
  }
  waitWord(
    generation,
    (v) => v !== gen,
    barrier,
    () => `${name}: ${Atomics.load(I32, arrived)} of ${cpus} CPUs reached the start barrier`,
  );
}

/** Sets the handshake word at I32 index `w` to step `step` and wakes whoever waits for it. */
export function handshakeSet(w: number, step: number): void {
  Atomics.store(I32, w, step);
  sched_wake(w);
}

/** Waits until the handshake word at I32 index `w` reaches step `step`; `name` is for a timeout's message. */
export function handshakeWait(w: number, step: number, name: string): void {
  waitWord(
    w,
    (v) => v === step,
    w << 2,
    () => `${name}: step ${step} never came (at step ${Atomics.load(I32, w)})`,
  );
}

/**
 * Waits until `done(I32[w])`. `obj` is what a deterministic deadlock report
 * names; `what` says what was missing when a free-mode wait times out.
 */
function waitWord(w: number, done: (v: number) => boolean, obj: number, what: () => string): void {
  // Under the deterministic scheduler nobody else runs while this CPU spins: block at once.
  const tries = schedDeterministic ? 0 : SPIN_TRIES;
  for (let i = 0; i < tries; i++) {
    sched_point(SP_SPIN);
    if (done(Atomics.load(I32, w))) return;
  }
  const start = monotonicMs();
  for (;;) {
    const v = Atomics.load(I32, w);
    if (done(v)) return;
    // Sleeps only while the word still holds v: a change in between returns at once.
    sched_wait(w, v, WAIT_SLICE_MS, obj);
    sched_point(SP_SPIN);
    if (machineStopping()) throw new MachineStopped();
    if (schedDeterministic) continue;
    const waited = monotonicMs() - start;
    const { watchdogMs, cpus } = theArena().config;
    const limit = watchdogExpired(waited, watchdogMs, cpus);
    if (limit !== null) throw new Error(`${what()} (waited ${Math.round(waited)} ms)${limit.note}`);
  }
}
