/**
 * The kernel's lib/test_vmalloc.c (Uladzislau Rezki's vmalloc stress and
 * performance module, mainline) on vmsim's CPUs: every test case of its
 * table, in the table's order, with its mask bit (1 << index):
 *
 *   1 fix_size_alloc_test          vmalloc(nr_pages pages), a store, vfree — test_loop_count times
 *   2 full_fit_alloc_test          fls(CPUs) × 32 MiB of one-page areas, every other one freed,
 *                                  then one-page vmalloc+vfree pairs into the holes
 *   4 long_busy_list_alloc_test    15000 one-page areas kept, then vmalloc(100 pages) + vmalloc(1 page)
 *   8 random_size_alloc_test       vmalloc(1–100 random pages), a store, vfree
 *  16 fix_align_alloc_test         __vmalloc_node(5 pages, THREAD_ALIGN << 1, __GFP_ZERO)
 *  32 random_size_align_alloc_test 1–10 pages aligned to 2^(0..22) bytes
 *  64 align_shift_alloc_test       one page aligned to 2^0 … 2^(BITS_PER_LONG-1): meant to fail
 * 128 pcpu_alloc_test              35000 __alloc_percpu(1–1024 bytes, align 2–2048), then free_percpu
 *                                  (src/mm/percpu_chunk.ts over pcpu_get_vm_areas)
 * 256 kvfree_rcu_1_arg_vmalloc_test  vmalloc(1 page), a store, kvfree_rcu_mightsleep
 * 512 kvfree_rcu_2_arg_vmalloc_test  vmalloc(1 page), a store, kvfree_rcu(p, rcu)
 *                                  (src/mm/kvfree_rcu.ts: vfree from RCU callbacks)
 * 1024 vm_map_ram_test             nr_pages pages mapped with vm_map_ram, a store, vm_unmap_ram
 *
 * Each case returns 0 (passed) or nonzero (failed), as the module's do.
 * Stores (`*((__u8 *)p) = 1`) go through the MMU. The arrays of pointers the
 * module keeps in vmalloc'ed memory are vmalloc'ed here too (same sizes), but
 * the pointers themselves are kept in a JS array of the CPU running the test,
 * not stored through the MMU. Between two iterations of every loop the
 * worker passes a safe point (sched_op_point): where the kernel's kthread
 * would be preempted, the kworker runs deferred vfrees and the percpu balance
 * work, RCU callbacks run and interrupts are taken.
 *
 * Workloads:
 * - "test_vmalloc": one case on every CPU at once (bench/vmalloc.ts), each
 *   CPU timing its own run;
 * - "vmalloc_test": the module's kthreads vmalloc_test/N — test_func for each
 *   worker given to this CPU, one after another (workers outnumbering CPUs
 *   take turns: a workload runs to completion);
 * - "test_vmalloc_cleanup": after the run, the RCU callbacks, deferred work
 *   and lazy purges that the module's vfrees left behind.
 */
import { DEFINE_GLOBAL, I32, U8, theArena } from "../../shared/arena.js";
import { type KernelVersion, PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { ksym } from "../../kernel/kallsyms.js";
import { Prng } from "../../shared/prng.js";
import { KernelBug, type Report, reportCountOf, takeReports } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { SP_ATOMIC, sched_op_point, sched_point } from "../../sched/sched_point.js";
import { holdHarnessPages, releaseHarnessPages } from "../../check/pages.js";
import { num_online_cpus, smp_processor_id } from "../../shared/smp.js";
import { flush_scheduled_work } from "../../kernel/workqueue.js";
import { kfree_rcu, rcu_barrier } from "../../rcu/tree.js";
import { GFP_KERNEL, __GFP_ZERO } from "../../mm/gfp.js";
import { KVFREE_RCU_HEAD_SIZE, kfree_rcu_mightsleep, kvfree_rcu, kvfree_rcu_mightsleep } from "../../mm/kvfree_rcu.js";
import { isFault, mmuWrite } from "../../mm/mmu.js";
import { __free_page, alloc_page } from "../../mm/page_alloc.js";
import { __alloc_percpu, free_percpu } from "../../mm/percpu_chunk.js";
import { PAGE_KERNEL } from "../../mm/pgtable.js";
import { kfree, kmalloc, kzalloc } from "../../mm/slab.js";
import {
  NUMA_NO_NODE,
  __vmalloc_node,
  purge_vmap_area_lazy,
  vfree,
  vm_map_ram,
  vm_unmap_aliases,
  vm_unmap_ram,
  vmalloc,
} from "../../mm/vmalloc.js";
import { BARRIER, barrierWait } from "../barrier.js";
import { defineWorkload } from "../workload.js";

/** test_case_array: every case of the module, in its order; case i is selected by bit i of run_test_mask. */
export const TEST_CASE_ARRAY = [
  { name: "fix_size_alloc_test", xfail: false },
  { name: "full_fit_alloc_test", xfail: false },
  { name: "long_busy_list_alloc_test", xfail: false },
  { name: "random_size_alloc_test", xfail: false },
  { name: "fix_align_alloc_test", xfail: false },
  { name: "random_size_align_alloc_test", xfail: false },
  /* This test case is supposed to be failed. */
  { name: "align_shift_alloc_test", xfail: true },
  { name: "pcpu_alloc_test", xfail: false },
  { name: "kvfree_rcu_1_arg_vmalloc_test", xfail: false },
  { name: "kvfree_rcu_2_arg_vmalloc_test", xfail: false },
  { name: "vm_map_ram_test", xfail: false },
] as const;

/** v5.9–v5.18's two kmalloc cases of the kvfree_rcu API (mask bits 1024 and 2048 in v5.10's table). */
const SLAB_CASES = [
  { name: "kvfree_rcu_1_arg_slab_test", xfail: false },
  { name: "kvfree_rcu_2_arg_slab_test", xfail: false },
] as const;

/** A test case, by the module's name (of any version's table). */
export type TestVmallocCase = (typeof TEST_CASE_ARRAY)[number]["name"] | (typeof SLAB_CASES)[number]["name"];

/** One entry of a version's test_case_array. */
export interface TestCaseDesc {
  readonly name: TestVmallocCase;
  /** Meant to fail (align_shift_alloc_test): vmsim's verdict; the module counts it as xfailed from v6.17 on. */
  readonly xfail: boolean;
}

/** A version's lib/test_vmalloc.c: its case table, its parameters and the shape of its Summary lines. */
export interface TestVmallocModule {
  /** Where the table and the format come from. */
  readonly source: string;
  /** test_case_array, in order: case i is bit i of run_test_mask. */
  readonly cases: readonly TestCaseDesc[];
  /** The Summary line has "xfailed: N" (v6.17's xfail); before, the expected failure is one more "failed". */
  readonly xfailed: boolean;
  /** "All test took worker%d=…" (nr_threads workers, v5.13+) or "All test took CPU%d=…" (a kthread per CPU). */
  readonly cyclesLabel: "worker" | "CPU";
  /** Has the nr_pages parameter (v5.15+); without it fix_size_alloc_test maps 3 pages. */
  readonly nrPages: boolean;
  /** Has nr_threads (v5.13+); before, one kthread per online CPU, or one with single_cpu_test. */
  readonly nrThreads: boolean;
}

/**
 * The module each kernel runs. v4.19 predates lib/test_vmalloc.c (v5.1): its
 * machines run the mainline module, as they always have. v5.10.7's has the
 * two kmalloc kvfree_rcu cases, single_cpu_test instead of nr_threads and a
 * fixed 3-page fix_size; v6.12's is mainline's table without xfail.
 */
export const TEST_VMALLOC_MODULES: Readonly<Record<KernelVersion, TestVmallocModule>> = {
  "4.19": {
    source: "lib/test_vmalloc.c, mainline (v6.17+)",
    cases: TEST_CASE_ARRAY,
    xfailed: true,
    cyclesLabel: "worker",
    nrPages: true,
    nrThreads: true,
  },
  "5.10": {
    source: "lib/test_vmalloc.c, v5.10",
    cases: [...TEST_CASE_ARRAY.filter((c) => c.name !== "vm_map_ram_test"), ...SLAB_CASES],
    xfailed: false,
    cyclesLabel: "CPU",
    nrPages: false,
    nrThreads: false,
  },
  "6.12": {
    source: "lib/test_vmalloc.c, v6.12",
    cases: TEST_CASE_ARRAY,
    xfailed: false,
    cyclesLabel: "worker",
    nrPages: true,
    nrThreads: true,
  },
};

/** v5.10's fix_size_alloc_test: vmalloc(3 * PAGE_SIZE), before nr_pages. */
const FIX_SIZE_PAGES_V5_10 = 3;

/** The loops bench/vmalloc.ts times (one vmalloc+vfree pair per iteration, or two). */
export const TEST_VMALLOC_CASES = [
  "fix_size_alloc_test",
  "random_size_alloc_test",
  "long_busy_list_alloc_test",
] as const satisfies readonly TestVmallocCase[];

/** Arguments of `test_vmalloc`. */
export interface TestVmallocArgs {
  readonly test: TestVmallocCase;
  /** test_loop_count (module default 1000000). */
  readonly loops: number;
  /** nr_pages of fix_size_alloc_test and vm_map_ram_test (module default 0, meaning 1). */
  readonly nrPages?: number;
  /** Which run on this machine (1, 2, …): picks the random stream; every CPU waits at the start line for all. */
  readonly round: number;
}

/** What one CPU measured. */
export interface TestVmallocResult {
  /** The test function returned 0. */
  readonly passed: boolean;
  /** The whole test, µs (the module's "avg: … usec" for test_repeat_count 1). */
  readonly usec: number;
  /** The timed loop alone (full_fit and long_busy_list without their setup and teardown), µs. */
  readonly loopUsec: number;
  /** Allocation+free pairs in the timed loop. */
  readonly pairs: number;
}

/** The module parameters of a run (test_vmalloc.c's names in the comments). */
export interface VmallocTestParams {
  /** test_repeat_count: runs of each selected case. */
  readonly testRepeatCount: number;
  /** test_loop_count: iterations of each case's loop. */
  readonly testLoopCount: number;
  /** run_test_mask: bit i selects TEST_CASE_ARRAY[i]. */
  readonly runTestMask: number;
  /** sequential_test_order: table order instead of a per-worker shuffle. */
  readonly sequentialTestOrder: boolean;
  /** nr_pages (0 means 1). */
  readonly nrPages: number;
}

/** Arguments of `vmalloc_test`: the workers this CPU runs, in turn. */
export interface VmallocTestArgs {
  readonly workers: readonly number[];
  /** CPUs that run workers: they all meet at the start line first. */
  readonly participants: number;
  readonly params: VmallocTestParams;
}

/** struct test_case_data (v6.x), plus vmsim's expected failures. */
export interface TestCaseData {
  readonly test: TestVmallocCase;
  readonly passed: number;
  /** Failed runs of a case that is meant to pass. */
  readonly failed: number;
  /** Failed runs of align_shift_alloc_test, which is meant to fail. */
  readonly xfailed: number;
  /** Average µs per run ("avg: … usec"); 0 for a case the mask skipped. */
  readonly time: number;
}

/** A report raised on a worker's CPU: while `test` ran, or before its first test. */
export interface TestReport extends Report {
  readonly test: TestVmallocCase | "(before the first test)";
}

/** What one worker (kthread vmalloc_test/N) did. */
export interface VmallocTestWorker {
  readonly worker: number;
  readonly cpu: number;
  /** t->stop - t->start: ns of this worker's wall-clock time (process.hrtime), from the start line to its last test. */
  readonly cycles: number;
  /** Every case, in table order. */
  readonly data: readonly TestCaseData[];
  /** Reports that fail the run. */
  readonly reports: readonly TestReport[];
  /** The allocation-failure warnings align_shift_alloc_test is meant to raise. */
  readonly expectedReports: number;
}

/*** The start line (prepare_for_test_rwsem) and the progress counters ***/

/**
 * The module's workers block on prepare_for_test_rwsem until all are
 * started; here the CPUs meet at a reusable start barrier.
 */
const test_vmalloc_start = DEFINE_GLOBAL("test_vmalloc_start", BARRIER);

/** Case runs finished and failed so far, all workers: what the progress bar shows. */
const TEST_VMALLOC_PROGRESS = defineStruct("test_vmalloc_progress", [
  { name: "done", type: "i32", guard: "atomic" },
  { name: "failed", type: "i32", guard: "atomic" },
]);
const test_vmalloc_progress = DEFINE_GLOBAL("test_vmalloc_progress", TEST_VMALLOC_PROGRESS);

/** Harness: case runs finished and failed (xfail excluded) since the last reset; any thread. */
export function testVmallocProgress(): { done: number; failed: number } {
  const p = test_vmalloc_progress.ptr;
  return {
    done: Atomics.load(I32, (p + TEST_VMALLOC_PROGRESS.off.done) >> 2),
    failed: Atomics.load(I32, (p + TEST_VMALLOC_PROGRESS.off.failed) >> 2),
  };
}

/** Harness: zero the progress counters (the main thread, CPUs parked). */
export function resetTestVmallocProgress(): void {
  const p = test_vmalloc_progress.ptr;
  Atomics.store(I32, (p + TEST_VMALLOC_PROGRESS.off.done) >> 2, 0);
  Atomics.store(I32, (p + TEST_VMALLOC_PROGRESS.off.failed) >> 2, 0);
}

/** Wait until `participants` CPUs (this one included) reached the start line. */
function startLine(participants: number): void {
  barrierWait(test_vmalloc_start.ptr, participants, "test_vmalloc");
}

/*** The test cases ***/

/** What a case reads: the parameters it uses, its random stream, and (vmsim) what its timed loop did. */
interface TestRun {
  /** test_loop_count */
  readonly loops: number;
  /** nr_pages */
  readonly nrPages: number;
  /** get_random_*() */
  readonly rnd: Prng;
  /** __builtin_return_address(0): the case's name, as /proc/vmallocinfo shows it. */
  readonly caller: number;
  /** The timed loop's start and end (performance.now(); 0: the whole case) and its pairs. */
  loopStart: number;
  loopEnd: number;
  pairs: number;
}

const byte = new Uint8Array(1);

/** `*((__u8 *)p) = v`: one store through the page tables; a fault (already reported) is an oops. */
function store(p: number, v: number): void {
  byte[0] = v;
  if (isFault(mmuWrite(p, byte))) throw new KernelBug("test_vmalloc: store to a fresh mapping faulted");
}

/** Where the module's kthread could be preempted: the kworker, RCU callbacks and interrupts run here. */
const preemptPoint = sched_op_point;

/** sizeof(void *) of the machine. */
function sizeofPtr(): number {
  return layoutOf(theArena().config).vaBits > 32 ? 8 : 4;
}

/** THREAD_ALIGN: arm64 with VMAP_STACK 2 × THREAD_SIZE (16 KiB); arm32 THREAD_SIZE (8 KiB). */
function threadAlign(): number {
  return layoutOf(theArena().config).vaBits > 32 ? 2 * 16384 : 8192;
}

function random_size_align_alloc_test(t: TestRun): number {
  t.pairs = t.loops;
  for (let i = 0; i < t.loops; i++) {
    const rnd = t.rnd.u32() & 0xff; /* get_random_u8() */

    /* Maximum 1024 pages, if PAGE_SIZE is 4096. */
    const align = 1 << (rnd % 23);

    /* Maximum 10 pages. */
    const size = ((rnd % 10) + 1) * PAGE_SIZE;

    const ptr = __vmalloc_node(size, align, GFP_KERNEL | __GFP_ZERO, PAGE_KERNEL, 0, t.caller);
    if (!ptr) return -1;

    vfree(ptr);
    preemptPoint();
  }
  return 0;
}

/* This test case is supposed to be failed. */
function align_shift_alloc_test(t: TestRun): number {
  const bitsPerLong = sizeofPtr() * 8;
  for (let i = 0; i < bitsPerLong; i++) {
    const align = 2 ** i;
    const ptr = __vmalloc_node(PAGE_SIZE, align, GFP_KERNEL | __GFP_ZERO, PAGE_KERNEL, 0, t.caller);
    if (!ptr) return -1;
    t.pairs++;
    vfree(ptr);
    preemptPoint();
  }
  return 0;
}

function fix_align_alloc_test(t: TestRun): number {
  t.pairs = t.loops;
  const align = threadAlign() << 1;
  for (let i = 0; i < t.loops; i++) {
    const ptr = __vmalloc_node(5 * PAGE_SIZE, align, GFP_KERNEL | __GFP_ZERO, PAGE_KERNEL, 0, t.caller);
    if (!ptr) return -1;

    vfree(ptr);
    preemptPoint();
  }
  return 0;
}

function random_size_alloc_test(t: TestRun): number {
  t.pairs = t.loops;
  for (let i = 0; i < t.loops; i++) {
    const n = t.rnd.int(1, 100); /* get_random_u32_inclusive(1, 100) */
    const p = vmalloc(n * PAGE_SIZE, t.caller);
    if (!p) return -1;

    store(p, 1);
    vfree(p);
    preemptPoint();
  }
  return 0;
}

function long_busy_list_alloc_test(t: TestRun): number {
  const ptr = vmalloc(sizeofPtr() * 15000, t.caller);
  if (!ptr) return -1;

  const busy: number[] = [];
  for (let i = 0; i < 15000; i++) {
    busy.push(vmalloc(PAGE_SIZE, t.caller));
    preemptPoint();
  }

  t.loopStart = performance.now();
  const rv = long_busy_list_loop(t);
  t.loopEnd = performance.now();

  /* leave: */
  for (const p of busy) vfree(p);
  vfree(ptr);
  return rv;
}

/** long_busy_list_alloc_test's loop: 0 on success, -1 for its `goto leave`. */
function long_busy_list_loop(t: TestRun): number {
  for (let i = 0; i < t.loops; i++) {
    const ptr_1 = vmalloc(100 * PAGE_SIZE, t.caller);
    if (!ptr_1) return -1;

    const ptr_2 = vmalloc(PAGE_SIZE, t.caller);
    if (!ptr_2) {
      vfree(ptr_1);
      return -1;
    }

    store(ptr_1, 0);
    store(ptr_2, 1);

    vfree(ptr_1);
    vfree(ptr_2);
    t.pairs += 2;
    preemptPoint();
  }

  /*  Success */
  return 0;
}

function full_fit_alloc_test(t: TestRun): number {
  const junk_length = (32 - Math.clz32(num_online_cpus())) * ((32 * 1024 * 1024) / PAGE_SIZE);

  const ptr = vmalloc(sizeofPtr() * junk_length, t.caller);
  if (!ptr) return -1;

  const junk_ptr = vmalloc(sizeofPtr() * junk_length, t.caller);
  if (!junk_ptr) {
    vfree(ptr);
    return -1;
  }

  const kept: number[] = [];
  const junk: number[] = [];
  for (let i = 0; i < junk_length; i++) {
    kept.push(vmalloc(PAGE_SIZE, t.caller));
    junk.push(vmalloc(PAGE_SIZE, t.caller));
    preemptPoint();
  }

  for (const p of junk) vfree(p);

  t.loopStart = performance.now();
  const rv = full_fit_loop(t);
  t.loopEnd = performance.now();

  /* error: */
  for (const p of kept) vfree(p);
  vfree(ptr);
  vfree(junk_ptr);
  return rv;
}

/** full_fit_alloc_test's loop into the holes: 0 on success, -1 for its `goto error`. */
function full_fit_loop(t: TestRun): number {
  for (let i = 0; i < t.loops; i++) {
    const tmp = vmalloc(PAGE_SIZE, t.caller);
    if (!tmp) return -1;

    store(tmp, 1);
    vfree(tmp);
    t.pairs++;
    preemptPoint();
  }

  /* Success */
  return 0;
}

function fix_size_alloc_test(t: TestRun): number {
  t.pairs = t.loops;
  const size = (t.nrPages > 0 ? t.nrPages : 1) * PAGE_SIZE;
  for (let i = 0; i < t.loops; i++) {
    const ptr = vmalloc(size, t.caller);
    if (!ptr) return -1;

    store(ptr, 0);

    vfree(ptr);
    preemptPoint();
  }
  return 0;
}

function pcpu_alloc_test(t: TestRun): number {
  let rv = 0;
  const pcpu = vmalloc(sizeofPtr() * 35000, t.caller);
  if (!pcpu) return -1;

  const ptrs: number[] = [];
  for (let i = 0; i < 35000; i++) {
    const size = t.rnd.int(1, PAGE_SIZE / 4); /* get_random_u32_inclusive(1, PAGE_SIZE / 4) */

    /* Maximum PAGE_SIZE */
    const align = 1 << t.rnd.int(1, 11);

    const p = __alloc_percpu(size, align);
    if (!p) rv = -1;
    ptrs.push(p);
    preemptPoint();
  }

  for (const p of ptrs) {
    free_percpu(p);
    preemptPoint();
  }
  t.pairs = ptrs.length;

  vfree(pcpu);
  return rv;
}

/** struct test_kvfree_rcu: the rcu_head kvfree_rcu uses (16 bytes, as on a 64-bit kernel), then array[20]. */
const TEST_KVFREE_RCU = defineStruct("test_kvfree_rcu", [
  { name: "rcu", type: "i32", count: KVFREE_RCU_HEAD_SIZE / 4, guard: "rcu_data.nocb_lock" },
  /** unsigned char array[20] */
  { name: "array", type: "i32", count: 5, guard: "owner" },
]);

function kvfree_rcu_1_arg_vmalloc_test(t: TestRun): number {
  t.pairs = t.loops;
  for (let i = 0; i < t.loops; i++) {
    const p = vmalloc(PAGE_SIZE, t.caller);
    if (!p) return -1;

    store(p + TEST_KVFREE_RCU.off.array, 0x61 /* 'a' */);
    kvfree_rcu_mightsleep(p);
    preemptPoint();
  }
  return 0;
}

/** v5.10: kvfree_rcu(p) of a kmalloc'ed struct test_kvfree_rcu (kfree_rcu_mightsleep since v6.3). */
function kvfree_rcu_1_arg_slab_test(t: TestRun): number {
  t.pairs = t.loops;
  for (let i = 0; i < t.loops; i++) {
    const p = kmalloc(TEST_KVFREE_RCU.size, GFP_KERNEL);
    if (!p) return -1;

    U8[p + TEST_KVFREE_RCU.off.array] = 0x61; /* 'a' */
    kfree_rcu_mightsleep(p);
    preemptPoint();
  }
  return 0;
}

/** v5.10: kvfree_rcu(p, rcu) of a kmalloc'ed struct test_kvfree_rcu (kfree_rcu). */
function kvfree_rcu_2_arg_slab_test(t: TestRun): number {
  t.pairs = t.loops;
  for (let i = 0; i < t.loops; i++) {
    const p = kmalloc(TEST_KVFREE_RCU.size, GFP_KERNEL);
    if (!p) return -1;

    U8[p + TEST_KVFREE_RCU.off.array] = 0x61; /* 'a' */
    kfree_rcu(p, TEST_KVFREE_RCU.off.rcu);
    preemptPoint();
  }
  return 0;
}

function kvfree_rcu_2_arg_vmalloc_test(t: TestRun): number {
  t.pairs = t.loops;
  for (let i = 0; i < t.loops; i++) {
    const p = vmalloc(PAGE_SIZE, t.caller);
    if (!p) return -1;

    store(p + TEST_KVFREE_RCU.off.array, 0x61 /* 'a' */);
    kvfree_rcu(p, TEST_KVFREE_RCU.off.rcu);
    preemptPoint();
  }
  return 0;
}

/**
 * alloc_pages_bulk_array (v5.13+, as the module uses it): fill the
 * `nrPages` slots of the empty `pageArray` (int32 struct page pointers) with
 * order-0 pages; returns how many are filled. v4.19 has no bulk path: one
 * page at a time, up to the first failure.
 */
function alloc_pages_bulk_array(gfp: number, nrPages: number, pageArray: number): number {
  let nr = 0;
  for (; nr < nrPages; nr++) {
    const page = alloc_page(gfp);
    if (!page) break;
    I32[(pageArray >> 2) + nr] = page;
  }
  return nr;
}

function vm_map_ram_test(t: TestRun): number {
  const map_nr_pages = t.nrPages > 0 ? t.nrPages : 1;
  /* kcalloc(map_nr_pages, sizeof(struct page *)) */
  const pages = kzalloc(map_nr_pages * 4, GFP_KERNEL);
  if (!pages) return -1;

  const nr_allocated = alloc_pages_bulk_array(GFP_KERNEL, map_nr_pages, pages);
  // The test owns these pages, outside every kernel structure: the checker's page census counts them so.
  holdHarnessPages(nr_allocated);
  if (nr_allocated === map_nr_pages) {
    /* Run the test loop. */
    t.pairs = t.loops;
    for (let i = 0; i < t.loops; i++) {
      const v_ptr = vm_map_ram(pages, map_nr_pages, NUMA_NO_NODE, PAGE_KERNEL);
      store(v_ptr, 0x61 /* 'a' */);
      vm_unmap_ram(v_ptr, map_nr_pages);
      preemptPoint();
    }
  }

  /* cleanup: */
  for (let i = 0; i < nr_allocated; i++) __free_page(I32[(pages >> 2) + i]!);
  releaseHarnessPages(nr_allocated);

  kfree(pages);

  /* 0 indicates success. */
  return nr_allocated !== map_nr_pages ? 1 : 0;
}

/** The test functions, by name (test_case_array's test_func). */
const TEST_FUNC: Record<TestVmallocCase, (t: TestRun) => number> = {
  fix_size_alloc_test,
  full_fit_alloc_test,
  long_busy_list_alloc_test,
  random_size_alloc_test,
  fix_align_alloc_test,
  random_size_align_alloc_test,
  align_shift_alloc_test,
  pcpu_alloc_test,
  kvfree_rcu_1_arg_vmalloc_test,
  kvfree_rcu_2_arg_vmalloc_test,
  vm_map_ram_test,
  kvfree_rcu_1_arg_slab_test,
  kvfree_rcu_2_arg_slab_test,
};

function newRun(test: TestVmallocCase, loops: number, nrPages: number, rnd: Prng): TestRun {
  return { loops, nrPages, rnd, caller: ksym(test), loopStart: 0, loopEnd: 0, pairs: 0 };
}

defineWorkload("test_vmalloc", (a: TestVmallocArgs, ctx): TestVmallocResult => {
  const rnd = ctx.prng(0x7e5 + a.round);
  startLine(theArena().config.cpus);
  const t = newRun(a.test, a.loops, a.nrPages ?? 0, rnd);
  const t0 = performance.now();
  const rv = TEST_FUNC[a.test](t);
  const usec = (performance.now() - t0) * 1000;
  const loopUsec = t.loopEnd > 0 ? (t.loopEnd - t.loopStart) * 1000 : usec;
  return { passed: rv === 0, usec, loopUsec, pairs: t.pairs };
});

/*** The module's kthreads ***/

/** Random streams of the workers: past every (cpu, stream) pair of cpuCtx, so worker N's stream is its own. */
const WORKER_STREAM_BASE = 0x10000;

/** What align_shift_alloc_test is meant to make the allocator say (v4.19's words; v6.12's below them). */
export const EXPECTED_WARNING =
  /^(vmap allocation for size \d+ failed|cpu\d+: vmalloc: allocation failure|vmalloc_node_range for size \d+ failed|cpu\d+: vmalloc error: size \d+)/;

/** shuffle_array (v6.x): j is drawn below i, so each element moves. */
function shuffle_array(arr: number[], rnd: Prng): void {
  for (let i = arr.length - 1; i > 0; i--) {
    /* Cut the range. */
    const j = Math.floor(rnd.next() * i); /* get_random_u32_below(i) */

    /* Swap indexes. */
    [arr[i], arr[j]] = [arr[j]!, arr[i]!];
  }
}

/** Atomics.add on a progress counter. */
function progress(field: "done" | "failed"): void {
  sched_point(SP_ATOMIC);
  Atomics.add(I32, (test_vmalloc_progress.ptr + TEST_VMALLOC_PROGRESS.off[field]) >> 2, 1);
}

/**
 * test_func (v6.x): run every selected case test_repeat_count times, in a
 * per-worker shuffled order unless sequential_test_order, counting passes and
 * failures and the average time of each case; t->start and t->stop around it.
 */
function test_func(worker: number, p: VmallocTestParams, seed: number): VmallocTestWorker {
  const module = TEST_VMALLOC_MODULES[theArena().config.kernel];
  const cases = module.cases;
  const nrPages = module.nrPages ? p.nrPages : FIX_SIZE_PAGES_V5_10;
  const rnd = new Prng(seed, WORKER_STREAM_BASE + worker);
  const random_array = cases.map((_, i) => i);
  if (!p.sequentialTestOrder) shuffle_array(random_array, rnd);

  const data = cases.map((c) => ({ test: c.name, passed: 0, failed: 0, xfailed: 0, time: 0 }));
  const reports: TestReport[] = takeReports().map((r) => ({ ...r, test: "(before the first test)" as const }));
  let expectedReports = 0;

  const start = process.hrtime.bigint();
  for (const index of random_array) {
    /* Skip tests if run_test_mask has been specified. */
    if (!((p.runTestMask >>> index) & 1)) continue;
    const c = cases[index]!;
    const d = data[index]!;

    const kt = performance.now();
    for (let j = 0; j < p.testRepeatCount; j++) {
      const ok = TEST_FUNC[c.name](newRun(c.name, p.testLoopCount, nrPages, rnd)) === 0;
      if (ok) d.passed++;
      else if (c.xfail) d.xfailed++;
      else {
        d.failed++;
        progress("failed");
      }
      progress("done");
      for (const r of takeReports()) {
        if (c.xfail && r.kind === "WARN" && EXPECTED_WARNING.test(r.text)) expectedReports += reportCountOf(r);
        else reports.push({ ...r, test: c.name });
      }
    }

    /* Take an average time that test took. */
    d.time = Math.floor(((performance.now() - kt) * 1000) / p.testRepeatCount);
  }
  const stop = process.hrtime.bigint();

  return { worker, cpu: smp_processor_id(), cycles: Number(stop - start), data, reports, expectedReports };
}

defineWorkload("vmalloc_test", (a: VmallocTestArgs, ctx): VmallocTestWorker[] => {
  /* Block until initialization is done. */
  startLine(a.participants);
  return a.workers.map((w) => test_func(w, a.params, ctx.seed));
});

/**
 * After the module's run: every kvfree_rcu callback runs (rcu_barrier), the
 * vfrees they deferred and the percpu balance work run (flush_scheduled_work),
 * the vmap blocks and lazily freed areas are purged, and the vmap_areas the
 * purge kfree_rcu'ed are freed (rcu_barrier).
 */
defineWorkload("test_vmalloc_cleanup", () => {
  rcu_barrier();
  flush_scheduled_work();
  vm_unmap_aliases();
  purge_vmap_area_lazy();
  rcu_barrier();
});
