import { availableParallelism } from "node:os";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { I32, per_cpu_ptr } from "../src/shared/arena.js";
import { MAX_CPUS, type MachineConfig, makeConfig } from "../src/shared/config.js";
import { defineKernelFn } from "../src/shared/functab.js";
import { KernelBug, type Report, takeReports } from "../src/shared/report.js";
import { sched_op_point } from "../src/sched/sched_point.js";
import { in_softirq, preempt_disable, preempt_enable } from "../src/percpu/preempt.js";
import { setCurrentCpu, smp_processor_id } from "../src/shared/smp.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { kfree, kmalloc, kzalloc } from "../src/mm/slab.js";
import {
  RCU_READER,
  rcu_dereference,
  rcu_dereference_check,
  rcu_dereference_protected,
  rcu_read_lock,
  rcu_read_lock_held,
  rcu_read_unlock,
  rcu_reader,
} from "../src/rcu/rcupdate.js";
import { MUTEX, mutex_init, mutex_lock, mutex_unlock } from "../src/locks/mutex.js";
import { VERDICT_OK, schedOff, schedRecord, schedSetup } from "../src/sched/sched_det.js";
import {
  RCU_NEXT_TAIL,
  RCU_SEGCBLIST,
  RCU_WAIT_TAIL,
  rcu_segcblist_accelerate,
  rcu_segcblist_advance,
  rcu_segcblist_enqueue,
  rcu_segcblist_extract_done_cbs,
  rcu_segcblist_init,
  rcu_segcblist_ready_cbs,
} from "../src/rcu/rcu_segcblist.js";
import {
  call_rcu,
  kfree_rcu,
  rcu_barrier,
  rcu_cpu_starting,
  rcu_get_gp_seq,
  rcuCallbacksPending,
  synchronize_rcu,
} from "../src/rcu/tree.js";
import { start_kernel } from "../src/workers/boot.js";
import { Machine } from "../src/workers/machine.js";
import { POISON_FREE_WORD, type RcuReadStats } from "../src/workers/workloads/rcu.js";

/* A test record: rcu_head at 0 (8 bytes), then a value word. */
const REC_SIZE = 16;
const REC_HEAD = 0;
const REC_VALUE = 8;

/** Callbacks the test function saw: (head, CPU, softirq context). */
let invoked: { head: number; cpu: number; softirq: boolean }[] = [];
const test_rcu_cb = defineKernelFn("rcu_test_callback", (head: number) => {
  invoked.push({ head, cpu: smp_processor_id(), softirq: in_softirq() });
});

function boot(over: Partial<MachineConfig> = {}): void {
  start_kernel(makeConfig({ cpus: 2, ...over }));
  rcu_cpu_starting(0);
  invoked = [];
  takeReports();
}

function record(value: number): number {
  const p = kmalloc(REC_SIZE, GFP_KERNEL);
  I32[(p + REC_VALUE) >> 2] = value;
  return p;
}

/** Runs `f` as CPU `cpu` (the main thread stands in for it), then returns to CPU 0. */
function onCpu(cpu: number, f: () => void): void {
  setCurrentCpu(cpu);
  try {
    f();
  } finally {
    setCurrentCpu(0);
  }
}

function kinds(reports: Report[]): string[] {
  return reports.map((r) => r.kind);
}

describe("rcu on one thread (main thread as CPU 0, CPU 1 by switching)", () => {
  beforeEach(() => boot());

  it("read-side sections nest; an unbalanced unlock is reported", () => {
    expect(rcu_read_lock_held()).toBe(false);
    rcu_read_lock();
    rcu_read_lock();
    rcu_read_unlock();
    expect(rcu_read_lock_held()).toBe(true);
    rcu_read_unlock();
    expect(rcu_read_lock_held()).toBe(false);
    expect(takeReports()).toEqual([]);
    rcu_read_unlock();
    const r = takeReports();
    expect(kinds(r)).toEqual(["rcu"]);
    expect(r[0]!.text).toMatch(/rcu_read_unlock\(\) without a matching rcu_read_lock\(\) on CPU#0/);
    expect(rcu_read_lock_held()).toBe(false);
  });

  it("synchronize_rcu with no reader completes exactly one grace period, across the gp_seq wrap", () => {
    const s0 = rcu_get_gp_seq();
    expect(s0).toBe(-1200); // 300 grace periods before the wrap, as the kernel starts
    synchronize_rcu();
    expect(rcu_get_gp_seq()).toBe(s0 + 4);
    rcu_read_lock();
    rcu_read_unlock();
    for (let i = 0; i < 400; i++) synchronize_rcu();
    expect(rcu_get_gp_seq()).toBe(s0 + 4 * 401);
    expect(takeReports()).toEqual([]);
  });

  it("call_rcu waits for a reader on another CPU, nested sections included; rcu_barrier invokes it in softirq context", () => {
    onCpu(1, () => {
      rcu_read_lock();
      rcu_read_lock();
      rcu_read_unlock(); // still inside the outer section
    });
    const p = record(1);
    call_rcu(p + REC_HEAD, test_rcu_cb);
    expect(invoked).toEqual([]);
    // Safe points on CPU 0 poll grace periods and invoke ready callbacks: none may be ready.
    for (let i = 0; i < 100_000; i++) sched_op_point();
    expect(invoked).toEqual([]);
    expect(rcuCallbacksPending()).toBe(1);
    onCpu(1, () => rcu_read_unlock());
    rcu_barrier();
    expect(invoked).toEqual([{ head: p + REC_HEAD, cpu: 0, softirq: true }]);
    expect(rcuCallbacksPending()).toBe(0);
    expect(takeReports()).toEqual([]);
    kfree(p);
  });

  it("a callback queued while a grace period is in progress waits for a reader that began during it", () => {
    boot({ cpus: 3 });
    const a = record(1);
    const b = record(2);
    /*  CPU1  ──S1──────────┤
     *  CPU2        ├──S2────────────────┤
     *  CPU0  A  [gp g starts]  B   [g ends: A]   [g+1 ends: B]
     *  g waits for S1 only; S2 may hold B, so B needs g+1.  */
    onCpu(1, () => rcu_read_lock());
    call_rcu(a + REC_HEAD, test_rcu_cb);
    for (let i = 0; i < 1000; i++) sched_op_point();
    const g = rcu_get_gp_seq();
    expect(g & 3).toBe(1); // in progress, waiting for CPU 1
    onCpu(2, () => rcu_read_lock());
    call_rcu(b + REC_HEAD, test_rcu_cb);
    onCpu(1, () => rcu_read_unlock());
    for (let i = 0; i < 10_000; i++) sched_op_point();
    expect(rcu_get_gp_seq()).toBe(g + 4); // g ended, g+1 waits for CPU 2
    expect(invoked.map((r) => r.head)).toEqual([a + REC_HEAD]);
    onCpu(2, () => rcu_read_unlock());
    rcu_barrier();
    expect(invoked.map((r) => r.head)).toEqual([a + REC_HEAD, b + REC_HEAD]);
  });

  it("callbacks run in the order they were queued, and after rcu_barrier all of them have run", () => {
    const heads = Array.from({ length: 50 }, (_, i) => record(i) + REC_HEAD);
    for (const [i, h] of heads.entries()) {
      call_rcu(h, test_rcu_cb);
      if (i % 7 === 0) synchronize_rcu();
    }
    rcu_barrier();
    expect(invoked.map((r) => r.head)).toEqual(heads);
    for (const h of heads) kfree(h - REC_HEAD);
  });

  it("synchronize_rcu and rcu_barrier inside a read-side section are reported and BUG, not a hang", () => {
    rcu_read_lock();
    expect(() => synchronize_rcu()).toThrow(KernelBug);
    expect(() => rcu_barrier()).toThrow(KernelBug);
    rcu_read_unlock();
    const r = takeReports();
    expect(kinds(r)).toEqual(["rcu", "rcu"]);
    expect(r[0]!.text).toMatch(/Illegal synchronize_rcu\(\) in RCU read-side critical section on CPU#0/);
    expect(r[1]!.text).toMatch(/Illegal rcu_barrier\(\) in RCU read-side critical section/);
  });

  it("synchronize_rcu in atomic context is reported as a sleep in atomic context", () => {
    preempt_disable();
    synchronize_rcu();
    preempt_enable();
    const r = takeReports();
    expect(kinds(r)).toEqual(["lockdep"]);
    expect(r[0]!.text).toMatch(/BUG: sleeping function called from invalid context/);
  });

  it("a reader that never leaves stalls synchronize_rcu: an RCU stall report and BUG, not a hang", () => {
    boot({ watchdogMs: 100 });
    onCpu(1, () => rcu_read_lock());
    expect(() => synchronize_rcu()).toThrow(/rcu_preempt detected stalls on CPUs\/tasks: \{ 1 \}/);
    expect(kinds(takeReports())).toEqual(["rcu"]);
    onCpu(1, () => rcu_read_unlock());
    synchronize_rcu();
  });

  // Twice the host's cores (the main thread stands in for every CPU: no threads start); MAX_CPUS bounds it.
  const cores = availableParallelism();
  const cpus = Math.min(MAX_CPUS, 2 * cores);
  it.runIf(cpus > cores)(
    "the RCU stall of a machine with more CPUs than the host has cores says the host was oversubscribed",
    () => {
      boot({ cpus, watchdogMs: 100 });
      onCpu(1, () => rcu_read_lock());
      expect(() => synchronize_rcu()).toThrow(
        new RegExp(
          `^INFO: rcu_preempt detected stalls on CPUs/tasks: \\{ 1 \\} \\(detected by 0, synchronize_rcu waited \\d+ ms, gp_seq -?\\d+\\) ` +
            `\\(host oversubscribed: ${cpus} CPUs on ${cores} cores?, load [\\d.]+; limit scaled ×[\\d.]+ to [\\d.]+m?s\\)$`,
        ),
      );
      onCpu(1, () => rcu_read_unlock());
    },
  );

  it("kfree_rcu keeps a record intact for a reader inside its section; kfree (the broken variant) poisons it under the reader", () => {
    const p = record(42);
    rcu_read_lock();
    kfree_rcu(p, REC_HEAD);
    for (let i = 0; i < 10_000; i++) sched_op_point();
    expect(I32[(p + REC_VALUE) >> 2]).toBe(42);
    rcu_read_unlock();
    rcu_barrier();
    expect(I32[(p + REC_VALUE) >> 2]).toBe(POISON_FREE_WORD);

    const q = record(43);
    rcu_read_lock();
    expect(I32[(q + REC_VALUE) >> 2]).toBe(43);
    kfree(q);
    expect(I32[(q + REC_VALUE) >> 2]).toBe(POISON_FREE_WORD);
    rcu_read_unlock();
  });

  it("the outermost rcu_read_unlock ends the epoch a grace period waits for; with none waiting the epoch stays open", () => {
    const odd = () => Atomics.load(I32, (per_cpu_ptr(rcu_reader, 1) + RCU_READER.off.ctr) >> 2) & 1;
    const p = record(7);
    onCpu(1, () => {
      rcu_read_lock();
      rcu_read_lock();
    });
    kfree_rcu(p, REC_HEAD);
    // CPU 0's safe points start the grace period: it waits for CPU 1.
    for (let i = 0; i < 1000; i++) sched_op_point();
    expect(rcu_get_gp_seq() & 3).toBe(1);
    onCpu(1, () => {
      rcu_read_unlock();
      expect(odd()).toBe(1); // still inside the outer section
      rcu_read_unlock();
      expect(odd()).toBe(0); // the reader's end is the end of its protection
      // No grace period waits now: the next section's epoch stays open past its unlock (lazy).
      rcu_read_lock();
      rcu_read_unlock();
      expect(odd()).toBe(1);
    });
    rcu_barrier();
    expect(I32[(p + REC_VALUE) >> 2]).toBe(POISON_FREE_WORD);
    expect(takeReports()).toEqual([]);
  });

  it("PROVE_RCU: rcu_dereference outside a reader, or _protected without the updaters' lock, is suspicious RCU usage, once per CPU", () => {
    const slot = record(0) + REC_VALUE;
    rcu_read_lock();
    rcu_dereference(slot);
    rcu_read_unlock();
    rcu_dereference_check(slot, true); // the update side, its lock held
    rcu_dereference_protected(slot, true);
    expect(takeReports()).toEqual([]);
    rcu_dereference(slot);
    rcu_dereference(slot); // RCU_LOCKDEP_WARN's __warned: reported once
    rcu_dereference_protected(slot, false);
    onCpu(1, () => rcu_dereference_check(slot, false));
    const r = takeReports();
    expect(r.map((x) => [x.kind, x.cpu])).toEqual([
      ["lockdep", 0],
      ["lockdep", 0],
      ["lockdep", 1],
    ]);
    const head = (x: Report) => x.text.split("\n").slice(0, 3);
    const site = "test/rcu\\.test\\.ts:\\d+:\\d+";
    expect(head(r[0]!)).toEqual([
      "WARNING: suspicious RCU usage",
      "-----------------------------",
      expect.stringMatching(new RegExp(`^${site} suspicious rcu_dereference_check\\(\\) usage!$`)),
    ]);
    expect(head(r[1]!)[2]).toMatch(new RegExp(`^${site} suspicious rcu_dereference_protected\\(\\) usage!$`));
    expect(head(r[2]!)[2]).toMatch(new RegExp(`^${site} suspicious rcu_dereference_check\\(\\) usage!$`));
    expect(r[0]!.text).toContain("\nno locks held by CPU0.\n\nstack backtrace:\n");
  });

  it("PROVE_RCU: mutex_lock inside a read-side section is a sleeping function called from invalid context, with the RCU nest depth", () => {
    const mutex = kzalloc(MUTEX.size, GFP_KERNEL);
    mutex_init(mutex, "rcu_test_mutex");
    rcu_read_lock();
    mutex_lock(mutex);
    mutex_unlock(mutex);
    rcu_read_unlock();
    mutex_lock(mutex); // outside the reader: may sleep
    mutex_unlock(mutex);
    const r = takeReports();
    expect(kinds(r)).toEqual(["lockdep"]);
    expect(r[0]!.text.split("\n").slice(0, 4)).toEqual([
      "BUG: sleeping function called from invalid context at mutex_lock",
      "in_atomic(): 0, irqs_disabled(): 0, CPU: 0, preempt_count: 0x0",
      "RCU nest depth: 1, expected: 0",
      "no locks held by CPU0.",
    ]);
    kfree(mutex);
  });

  it("rcu_segcblist: callbacks move to DONE only when their grace period has ended", () => {
    const l = kzalloc(RCU_SEGCBLIST.size, GFP_KERNEL);
    const h = Array.from({ length: 5 }, () => kzalloc(REC_SIZE, GFP_KERNEL));
    rcu_segcblist_init(l);
    /*  head → h0 h1 h2 [WAIT, gp 8] → h3 h4 [NEXT_READY, gp 12]  */
    for (const x of h.slice(0, 3)) rcu_segcblist_enqueue(l, x);
    expect(rcu_segcblist_accelerate(l, 8)).toBe(true);
    for (const x of h.slice(3)) rcu_segcblist_enqueue(l, x);
    expect(rcu_segcblist_accelerate(l, 12)).toBe(true);
    expect(rcu_segcblist_accelerate(l, 16)).toBe(false); // NEXT is empty: h3 h4 keep gp 12
    rcu_segcblist_advance(l, 5); // grace period 8 in progress
    expect(rcu_segcblist_ready_cbs(l)).toBe(false);
    rcu_segcblist_advance(l, 8);
    const chain: number[] = [];
    for (let x = rcu_segcblist_extract_done_cbs(l); x !== 0; x = I32[x >> 2]!) chain.push(x);
    expect(chain).toEqual(h.slice(0, 3));
    // h3 h4 now wait in WAIT for gp 12; NEXT is empty.
    expect(I32[((l + RCU_SEGCBLIST.off.gp_seq) >> 2) + RCU_WAIT_TAIL]).toBe(12);
    expect(I32[((l + RCU_SEGCBLIST.off.tails) >> 2) + RCU_NEXT_TAIL]).toBe(h[4]);
    rcu_segcblist_advance(l, 12);
    expect(rcu_segcblist_extract_done_cbs(l)).toBe(h[3]);
    expect(I32[(l + RCU_SEGCBLIST.off.head) >> 2]).toBe(0);
  });
});

describe("rcu on a machine", () => {
  let m: Machine | undefined;
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });

  it.each([
    [2, 11],
    [4, 12],
  ])("readers never see a freed record over 1e5 updates on %i CPUs (seed %i)", async (cpus, seed) => {
    m = await Machine.boot({ cpus, seed });
    const writers = cpus / 2;
    const updates = 100_000 / writers;
    const results = await Promise.all(
      Array.from({ length: cpus }, (_, cpu) =>
        cpu < writers
          ? m!.run(cpu, "rcu_torture_writer", { id: cpu, updates, syncEvery: 4096 })
          : m!.run(cpu, "rcu_torture_reader", { writers, minReads: 1000 }),
      ),
    );
    for (const r of results.slice(writers) as RcuReadStats[]) {
      expect(r.poisoned).toBe(0);
      expect(r.torn).toBe(0);
      expect(r.reads).toBeGreaterThanOrEqual(1000);
    }
    expect(await m.run(0, "rcu_torture_cleanup")).toBe(0);
    expect(m.reports).toEqual([]);
  });

  it("a reader inside its section keeps the old record; a plain kfree (the broken writer) shows it poison (seed 5)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 5 });
    await m.run(0, "rcu_torture_writer", { id: 0, updates: 1 });
    const [reader, updater] = await Promise.all([
      m.run(1, "rcu_handshake_reader"),
      m.run(0, "rcu_handshake_updater", { broken: false, ticks: 20_000 }),
    ]);
    expect(reader).toEqual({ before: 1, after: 1 });
    expect(updater).toEqual({ freedSeq: POISON_FREE_WORD });
    expect(m.reports).toEqual([]);
    await m.shutdown();

    m = await Machine.boot({ cpus: 2, seed: 5 });
    await m.run(0, "rcu_torture_writer", { id: 0, updates: 1 });
    const [broken] = await Promise.all([
      m.run(1, "rcu_handshake_reader"),
      m.run(0, "rcu_handshake_updater", { broken: true, ticks: 0 }),
    ]);
    expect(broken).toEqual({ before: 1, after: POISON_FREE_WORD });
  });

  it("list_add_rcu/list_del_rcu + kfree_rcu: readers walking the list never see a freed entry (seed 21)", async () => {
    m = await Machine.boot({ cpus: 4, seed: 21 });
    const results = await Promise.all([
      m.run(0, "rcu_list_updater", { id: 0, updates: 20_000, target: 32 }),
      m.run(1, "rcu_list_updater", { id: 1, updates: 20_000, target: 32 }),
      m.run(2, "rcu_list_reader", { writers: 2, minWalks: 100, maxLen: 100_000 }),
      m.run(3, "rcu_list_reader", { writers: 2, minWalks: 100, maxLen: 100_000 }),
    ]);
    for (const r of results.slice(2) as (RcuReadStats & { walks: number })[]) {
      expect(r.poisoned).toBe(0);
      expect(r.torn).toBe(0);
      expect(r.walks).toBeGreaterThanOrEqual(100);
    }
    expect(await m.run(0, "rcu_list_cleanup")).toBe(0);
    expect(m.reports).toEqual([]);
  });

  it("deterministic (PCT, the updater first): a read after an early rcu_read_unlock sees the record freed by the grace period that ended at the unlock (seed 1)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 5 });
    await m.run(0, "rcu_torture_writer", { id: 0, updates: 1 });
    const snap = m.snapshot();
    const run = async (unlockEarly: boolean) => {
      await m!.restore(snap);
      // Depth 1: strict priorities, no change points. The woken updater preempts the reader at its next sched point.
      const draw = schedSetup({ strategy: { kind: "pct", depth: 1, steps: 1 }, seed: 1, stepCap: 1e6 });
      expect(draw!.priorities[0]).toBeGreaterThan(draw!.priorities[1]!);
      try {
        const out = await m!.runAll("rcu_handshake", (cpu: number) =>
          cpu === 0 ? { updater: { broken: false, ticks: 4 } } : { reader: { unlockEarly } },
        );
        expect(schedRecord().verdict).toBe(VERDICT_OK);
        return out;
      } finally {
        schedOff();
      }
    };
    // Inside the section the record is intact; after the early unlock the grace period ends at once.
    expect(await run(false)).toEqual([{ freedSeq: POISON_FREE_WORD }, { before: 1, after: 1 }]);
    expect(await run(true)).toEqual([{ freedSeq: POISON_FREE_WORD }, { before: 1, after: POISON_FREE_WORD }]);
    expect(m.reports).toEqual([]);
  });

  it.each([
    ["deterministic (round-robin, quantum 50)", true],
    ["free", false],
  ])("%s: a CPU blocked on a mutex, its last reader's epoch open, does not hold synchronize_rcu on the holder (seed 4)", async (_, det) => {
    m = await Machine.boot({ cpus: 2, seed: 4, watchdogMs: 5000 });
    if (det) schedSetup({ strategy: { kind: "rr", quantum: 50 }, seed: 4, stepCap: 2e6 });
    try {
      const out = await m.runAll("rcu_blocked_on_mutex", (cpu: number) => ({ holder: cpu === 0 }));
      expect(out).toEqual([2, 2]);
      if (det) expect(schedRecord().verdict).toBe(VERDICT_OK);
    } finally {
      schedOff();
    }
    expect(m.reports).toEqual([]);
  });

  it("callbacks queued by a CPU that went idle are invoked by another CPU's safe points (seed 3)", async () => {
    m = await Machine.boot({ cpus: 2, seed: 3 });
    expect(await m.run(1, "rcu_queue_kfree_rcu", { n: 1000 })).toBe(1000);
    expect(await m.run(0, "rcu_drain_at_safe_points")).toBeGreaterThan(0);
    expect(await m.run(1, "rcu_torture_cleanup")).toBe(0);
    expect(m.reports).toEqual([]);
  });
});
