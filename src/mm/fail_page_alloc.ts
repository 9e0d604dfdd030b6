/**
 * fail_page_alloc: fault injection into the page allocator (mm/page_alloc.c's
 * should_fail_alloc_page over lib/fault-inject.c's should_fail, v4.19).
 *
 * Knobs kept: probability (percent), interval, times, and the per-task
 * fail-nth (here per CPU: a CPU runs one task at a time). Dropped: space,
 * task filter, stack filter, and min_order / ignore-gfp-wait /
 * ignore-gfp-highmem — their kernel defaults (1, Y, Y) would exempt exactly
 * the GFP_KERNEL order-0 allocations vmalloc makes, which are the ones worth
 * failing; here every order and every gfp mask except __GFP_NOFAIL is eligible.
 *
 * Off by default (probability 0, fail-nth 0). The random draws (prandom_u32)
 * come from a per-CPU Prng seeded from (machine seed, CPU, setup generation),
 * so a seed and a setup reproduce the same failures.
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, I32, onMachineReset, staticInit, theArena } from "../shared/arena.js";
import { Prng } from "../shared/prng.js";
import { defineStruct } from "../shared/struct.js";
import { SP_ATOMIC, sched_point } from "../sched/sched_point.js";
import { in_interrupt } from "../percpu/preempt.js";
import { onSetCurrentCpu, per_cpu_ptr, smp_processor_id, this_cpu_ptr } from "../shared/smp.js";
import { __GFP_NOFAIL } from "./gfp.js";
import { __READ_ONCE } from "../locks/atomic.js";

/** struct fault_attr (v4.19), the knobs vmsim keeps. Any CPU may set them: marked accesses only. */
export const FAULT_ATTR = defineStruct("fault_attr", [
  /** Percent of eligible calls that fail, 0..100. */
  { name: "probability", type: "i32", guard: "atomic" },
  /** Only every interval-th call is eligible. */
  { name: "interval", type: "i32", guard: "atomic" },
  /** Failures left; -1 = no limit. */
  { name: "times", type: "i32", guard: "atomic" },
  /** Calls counted for `interval`. */
  { name: "count", type: "i32", guard: "atomic" },
  /** Bumped by every setup: each CPU reseeds its random stream when it sees a new one. */
  { name: "generation", type: "i32", guard: "atomic" },
]);
const fail_page_alloc = DEFINE_GLOBAL("fail_page_alloc", FAULT_ATTR);
const A_PROB = FAULT_ATTR.off.probability;
const A_INTERVAL = FAULT_ATTR.off.interval;
const A_TIMES = FAULT_ATTR.off.times;
const A_COUNT = FAULT_ATTR.off.count;
const A_GEN = FAULT_ATTR.off.generation;

/* FAULT_ATTR_INITIALIZER (v4.19): interval 1, times 1, probability 0. */
staticInit(() => {
  I32[(fail_page_alloc.ptr + A_INTERVAL) >> 2] = 1;
  I32[(fail_page_alloc.ptr + A_TIMES) >> 2] = 1;
});

/** current->fail_nth, per CPU, and which setup generation this CPU's random stream was seeded for. */
export const FAIL_NTH = defineStruct("fail_nth", [
  /** Fail the call that brings this to 0; 0 = off. Set from any CPU: marked accesses (its reads relaxed, as READ_ONCE). */
  { name: "fail_nth", type: "i32", guard: "atomic" },
  { name: "seeded_generation", type: "i32", guard: "owner" },
]);
const fail_nth = DEFINE_PER_CPU("fail_nth", FAIL_NTH);

/** This CPU's fail_nth (a byte address, as __READ_ONCE takes it). */
let nthPtr = 0;
let seededIdx = 0;
onSetCurrentCpu(() => {
  const p = this_cpu_ptr(fail_nth);
  nthPtr = p + FAIL_NTH.off.fail_nth;
  seededIdx = (p + FAIL_NTH.off.seeded_generation) >> 2;
});

/** This thread's random stream; the arena records which generation it belongs to. */
let prng = new Prng(0);
/** A restored snapshot restarts the stream: the arena's generation alone cannot say how far it had gone. */
let reseed = false;
onMachineReset(() => {
  reseed = true;
});

/** prandom_u32() of the fault injector, reseeded on a new setup generation. */
function prandom_u32(attr: number): number {
  const gen = Atomics.load(I32, (attr + A_GEN) >> 2);
  if (I32[seededIdx] !== gen || reseed) {
    reseed = false;
    prng = new Prng(theArena().config.seed ^ Math.imul(gen, 0x9e3779b1), 0x40000000 + smp_processor_id());
    I32[seededIdx] = gen;
  }
  return prng.u32();
}

/** atomic_dec_not_zero (v4.19) on an I32 index. */
function atomic_dec_not_zero(i: number): void {
  sched_point(SP_ATOMIC);
  for (;;) {
    const v = Atomics.load(I32, i);
    if (v === 0 || Atomics.compareExchange(I32, i, v, v - 1) === v) return;
  }
}

/** should_fail (lib/fault-inject.c, v4.19); `size` (the space knob's unit) is dropped with the knob. */
function should_fail(attr: number): boolean {
  if (!in_interrupt()) {
    // v4.19 reads fail_nth with READ_ONCE and the knob plainly: relaxed loads, every allocation.
    const n = __READ_ONCE(nthPtr);
    if (n !== 0) {
      Atomics.store(I32, nthPtr >> 2, n - 1);
      if (n - 1 !== 0) return false;
      return fail(attr);
    }
  }
  const probability = __READ_ONCE(attr + A_PROB);
  if (probability === 0) return false;
  if (Atomics.load(I32, (attr + A_TIMES) >> 2) === 0) return false;
  const interval = Atomics.load(I32, (attr + A_INTERVAL) >> 2);
  if (interval > 1) {
    sched_point(SP_ATOMIC);
    if ((Atomics.add(I32, (attr + A_COUNT) >> 2, 1) + 1) % interval !== 0) return false;
  }
  if (probability <= prandom_u32(attr) % 100) return false;
  return fail(attr);
}

function fail(attr: number): boolean {
  const times = (attr + A_TIMES) >> 2;
  if (Atomics.load(I32, times) !== -1) atomic_dec_not_zero(times);
  return true;
}

/** should_fail_alloc_page (mm/page_alloc.c, v4.19): __GFP_NOFAIL allocations are never failed. */
export function should_fail_alloc_page(gfp: number, _order: number): boolean {
  if (gfp & __GFP_NOFAIL) return false;
  return should_fail(fail_page_alloc.ptr);
}

/** The knobs of {@link setup_fail_page_alloc}; one call sets all of them. */
export interface FailPageAllocOptions {
  /** Percent of eligible allocations that fail, 0..100. @defaultValue 0 */
  probability?: number;
  /** Only every interval-th allocation is eligible. @defaultValue 1 */
  interval?: number;
  /** Failures left before injection stops, -1 = no limit. @defaultValue -1 */
  times?: number;
  /** Fail exactly the nth allocation (counted from this call) on CPU `cpu`; 0 = off. @defaultValue 0 */
  nth?: number;
  /** The CPU whose fail-nth is set. @defaultValue the calling CPU */
  cpu?: number;
}

/**
 * Sets fail_page_alloc (the debugfs knobs and /proc/<pid>/fail-nth) from any
 * CPU. For an exactly reproducible run, call it while the other CPUs are
 * parked: a CPU that allocates meanwhile may see some old and some new knobs.
 */
export function setup_fail_page_alloc(o: FailPageAllocOptions = {}): void {
  const probability = o.probability ?? 0;
  const interval = o.interval ?? 1;
  const times = o.times ?? -1;
  const nth = o.nth ?? 0;
  if (!Number.isInteger(probability) || probability < 0 || probability > 100)
    throw new RangeError(`fail_page_alloc probability must be an integer percent 0..100, got ${probability}`);
  if (!Number.isInteger(interval) || interval < 1) throw new RangeError(`interval must be >= 1, got ${interval}`);
  if (!Number.isInteger(times) || times < -1) throw new RangeError(`times must be -1 or >= 0, got ${times}`);
  if (!Number.isInteger(nth) || nth < 0) throw new RangeError(`nth must be >= 0, got ${nth}`);
  const a = fail_page_alloc.ptr;
  Atomics.store(I32, (a + A_PROB) >> 2, probability);
  Atomics.store(I32, (a + A_INTERVAL) >> 2, interval);
  Atomics.store(I32, (a + A_TIMES) >> 2, times);
  Atomics.store(I32, (a + A_COUNT) >> 2, 0);
  Atomics.add(I32, (a + A_GEN) >> 2, 1);
  const cpu = o.cpu ?? smp_processor_id();
  Atomics.store(I32, (per_cpu_ptr(fail_nth, cpu) + FAIL_NTH.off.fail_nth) >> 2, nth);
}

/** fail_dump (v4.19): the FAULT_INJECTION line that precedes an injected failure's report. */
export function fail_dump(): string {
  const a = fail_page_alloc.ptr;
  const get = (off: number) => Atomics.load(I32, (a + off) >> 2);
  return (
    "FAULT_INJECTION: forcing a failure.\n" +
    `name fail_page_alloc, interval ${get(A_INTERVAL)}, probability ${get(A_PROB)}, space 0, times ${get(A_TIMES)}`
  );
}
