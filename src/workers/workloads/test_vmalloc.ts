/**
 * The test loops of the kernel's lib/test_vmalloc.c (Uladzislau Rezki's
 * vmalloc stress and performance module, as in mainline), run by every CPU of
 * a machine at once as the module's kthreads run them (one worker per CPU):
 *
 * - fix_size_alloc_test: vmalloc(nr_pages pages), one store, vfree — test_loop_count times;
 * - random_size_alloc_test: vmalloc(1–100 random pages), one store, vfree;
 * - long_busy_list_alloc_test: 15000 one-page areas kept allocated (a long
 *   busy list for alloc_vmap_area to walk), then vmalloc(100 pages) +
 *   vmalloc(1 page), a store to each, both vfree'd — test_loop_count times.
 *
 * The store (`*((__u8 *)ptr) = 0`) goes through the MMU, as the module's does.
 * long_busy_list's pointer array is vmalloc'ed (sizeof(void *) × 15000, as
 * the module does); the 15000 pointers themselves are kept in a JS array, not
 * stored through the MMU. Each CPU times its own test (performance.now() on
 * its thread, as the module's ktime_get) and returns the microseconds.
 */
import { DEFINE_GLOBAL, I32, machineStopping, theArena } from "../../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { KernelBug, MachineStopped } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { SP_ATOMIC, SP_SPIN, sched_point } from "../../sched/sched_point.js";
import { isFault, mmuWrite } from "../../mm/mmu.js";
import { vfree, vmalloc } from "../../mm/vmalloc.js";
import { defineWorkload } from "../workload.js";

/** The test cases this file runs, by the module's names. */
export const TEST_VMALLOC_CASES = [
  "fix_size_alloc_test",
  "random_size_alloc_test",
  "long_busy_list_alloc_test",
] as const;
export type TestVmallocCase = (typeof TEST_VMALLOC_CASES)[number];

/** Arguments of `test_vmalloc`. */
export interface TestVmallocArgs {
  readonly test: TestVmallocCase;
  /** test_loop_count (module default 1000000). */
  readonly loops: number;
  /** nr_pages of fix_size_alloc_test (module default 0, meaning 1). */
  readonly nrPages?: number;
  /** Which run on this machine (1, 2, …): every CPU waits at the start line for all CPUs of this round. */
  readonly round: number;
}

/** What one CPU measured. */
export interface TestVmallocResult {
  /** test_func returned 0. */
  readonly passed: boolean;
  /** The whole test, µs (the module's "avg: … usec" for test_repeat_count 1). */
  readonly usec: number;
  /** The timed loop alone (long_busy_list without its 15000-area setup and teardown), µs. */
  readonly loopUsec: number;
  /** vmalloc+vfree pairs in the timed loop. */
  readonly pairs: number;
}

/** prepare_for_test_rwsem's job: every worker starts the test when all are ready. */
const test_vmalloc_start = DEFINE_GLOBAL(
  "test_vmalloc_start",
  defineStruct("test_vmalloc_start", [{ name: "arrived", type: "i32", guard: "atomic" }]),
);

function startLine(round: number): void {
  const w = test_vmalloc_start.ptr >> 2;
  sched_point(SP_ATOMIC);
  Atomics.add(I32, w, 1);
  const all = round * theArena().config.cpus;
  const deadline = Date.now() + 10_000;
  while (Atomics.load(I32, w) < all) {
    sched_point(SP_SPIN);
    if (machineStopping()) throw new MachineStopped();
    if (Date.now() > deadline) throw new Error(`test_vmalloc: CPUs missing at the start line of round ${round}`);
  }
}

const byte = new Uint8Array(1);

/** `*((__u8 *)p) = v`: one store through the page tables; a fault (already reported) ends the test. */
function store(p: number, v: number): void {
  byte[0] = v;
  if (isFault(mmuWrite(p, byte))) throw new KernelBug(`test_vmalloc: store to a fresh vmalloc area faulted`);
}

function fix_size_alloc_test(loops: number, nrPages: number): boolean {
  for (let i = 0; i < loops; i++) {
    const ptr = vmalloc((nrPages > 0 ? nrPages : 1) * PAGE_SIZE);
    if (ptr === 0) return false;
    store(ptr, 0);
    vfree(ptr);
  }
  return true;
}

function random_size_alloc_test(loops: number, rnd: () => number): boolean {
  for (let i = 0; i < loops; i++) {
    const p = vmalloc(rnd() * PAGE_SIZE);
    if (p === 0) return false;
    store(p, 1);
    vfree(p);
  }
  return true;
}

/** Runs `fn` and returns its time in µs. */
function timed(fn: () => boolean): [boolean, number] {
  const t0 = performance.now();
  const ok = fn();
  return [ok, (performance.now() - t0) * 1000];
}

defineWorkload("test_vmalloc", (a: TestVmallocArgs, ctx): TestVmallocResult => {
  const rng = ctx.prng(0x7e5 + a.round);
  startLine(a.round);
  switch (a.test) {
    case "fix_size_alloc_test": {
      const [passed, usec] = timed(() => fix_size_alloc_test(a.loops, a.nrPages ?? 0));
      return { passed, usec, loopUsec: usec, pairs: a.loops };
    }
    case "random_size_alloc_test": {
      // get_random_u32_inclusive(1, 100)
      const [passed, usec] = timed(() => random_size_alloc_test(a.loops, () => rng.int(1, 100)));
      return { passed, usec, loopUsec: usec, pairs: a.loops };
    }
    case "long_busy_list_alloc_test": {
      let loopUsec = 0;
      const [passed, usec] = timed(() => {
        const sizeofPtr = layoutOf(theArena().config).vaBits > 32 ? 8 : 4;
        const ptr = vmalloc(sizeofPtr * 15000);
        if (ptr === 0) return false;
        const busy: number[] = [];
        for (let i = 0; i < 15000; i++) busy.push(vmalloc(PAGE_SIZE));
        let rv = true;
        const t0 = performance.now();
        for (let i = 0; i < a.loops; i++) {
          const ptr_1 = vmalloc(100 * PAGE_SIZE);
          if (ptr_1 === 0) {
            rv = false;
            break;
          }
          const ptr_2 = vmalloc(PAGE_SIZE);
          if (ptr_2 === 0) {
            vfree(ptr_1);
            rv = false;
            break;
          }
          store(ptr_1, 0);
          store(ptr_2, 1);
          vfree(ptr_1);
          vfree(ptr_2);
        }
        loopUsec = (performance.now() - t0) * 1000;
        // The module vfree's NULL too (a no-op); skip it here.
        for (const p of busy) if (p !== 0) vfree(p);
        vfree(ptr);
        return rv;
      });
      return { passed, usec, loopUsec, pairs: 2 * a.loops };
    }
    default:
      throw new Error(`test_vmalloc: unknown test ${String(a.test)}`);
  }
});
