/**
 * Struct tables: the layout rules of defineStruct, and a pin of every computed
 * offset of every exported struct (thi.ng/wasm-api-bindgen's habit): a field
 * added, moved or retyped shows up here as a diff to review, not as a silent
 * change of the arena layout.
 */
import { XARRAY, XA_NODE } from "../src/mm/xarray.js";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LIST_HEAD } from "../src/lib/list.js";
import { LLIST_HEAD, LLIST_NODE } from "../src/lib/llist.js";
import { RB_NODE, RB_ROOT } from "../src/lib/rbtree.js";
import { ATOMIC_LONG_T, ATOMIC_T } from "../src/locks/atomic.js";
import { HELD_LOCKS, LOCKDEP_GRAPH } from "../src/locks/lockdep.js";
import { MUTEX } from "../src/locks/mutex.js";
import { RWLOCK_T } from "../src/locks/rwlock.js";
import { SPINLOCK_T } from "../src/locks/spinlock.js";
import { FAIL_NTH, FAULT_ATTR } from "../src/mm/fail_page_alloc.js";
import { STRUCT_PAGE } from "../src/mm/mm_types.js";
import { FREE_AREA, PER_CPU_PAGES, ZONE } from "../src/mm/page_alloc.js";
import { MM_STRUCT } from "../src/mm/pgtable.js";
import { VFREE_DEFERRED, VMAP_AREA, VM_STRUCT } from "../src/mm/v4.19/vmalloc.js";
import { VMAP_BLOCK, VMAP_BLOCK_QUEUE } from "../src/mm/v4.19/vmap_block.js";
import {
  RB_LIST,
  VFREE_DEFERRED as VFREE_DEFERRED_6_12,
  VMAP_AREA as VMAP_AREA_6_12,
  VMAP_NODE,
  VMAP_POOL,
  VM_STRUCT as VM_STRUCT_6_12,
} from "../src/mm/v6.12/vmalloc.js";
import { SHRINKER, SHRINK_CONTROL } from "../src/mm/shrinker.js";
import { MIX_AREA, MIX_CPU, MIX_HANDOFF } from "../src/workers/workloads/vmalloc_mix.js";
import { KSYM_ENTRY, KSYM_TABLE } from "../src/kernel/kallsyms.js";
import { STRUCT_KMEM_CACHE, STRUCT_KMEM_CACHE_CPU, STRUCT_KMEM_CACHE_NODE } from "../src/mm/slab.js";
import { CPU_TLB, TLBI_BROADCAST, TLB_ENTRY } from "../src/mm/tlbflush.js";
import { IRQ_CPUSTAT, IRQ_DESC, IRQ_DESC_TABLE } from "../src/kernel/irq.js";
import { CPU_CONTEXT } from "../src/percpu/preempt.js";
import { WORKER_POOL, WORK_STRUCT, WQ_BARRIER, WQ_FLUSHER } from "../src/kernel/workqueue.js";
import { RCU_SEGCBLIST } from "../src/rcu/rcu_segcblist.js";
import { RCU_HEAD, RCU_READER } from "../src/rcu/rcupdate.js";
import { RCU_DATA, RCU_STATE } from "../src/rcu/tree.js";
import { ARENA_HEADER } from "../src/shared/arena.js";
import { TRACE_ENTRY, TRACE_RING, TRACE_SNAPSHOT } from "../src/shared/events.js";
import { LLIST_TEST_NODE } from "../src/workers/workloads/lib.js";
import { type StructDef, defineStruct, describeStruct } from "../src/shared/struct.js";
import { SCHED_CPU, SCHED_DECISION, SCHED_DET } from "../src/sched/sched_det.js";
import { DEMO_COUNTER } from "../src/workers/workloads/sched_demo.js";
import { BARRIER } from "../src/workers/barrier.js";
import { SOFTIRQ_CPUSTAT, SOFTIRQ_VEC } from "../src/percpu/softirq.js";
import { VFREE_IPI_MAILBOX } from "../src/workers/workloads/vfree_ipi.js";

interface Pin {
  readonly def: StructDef;
  readonly size: number;
  readonly align: number;
  readonly off: Record<string, number>;
}

/** Every exported struct table, by its kernel name. */
const PINS: Record<string, Pin> = {
  // Names that start with "_" are quoted: the naming lint refuses them as plain keys.
  /* the machine */
  arena_header: {
    def: ARENA_HEADER,
    size: 64,
    align: 8,
    off: {
      magic: 0,
      version: 4,
      layout_hash: 8,
      nr_cpus: 12,
      nr_pages: 16,
      arena_size: 24, // f64: padded from 20 to 8-byte alignment
      globals_base: 32,
      percpu_base: 36,
      percpu_stride: 40,
      pagedata_base: 44,
      stop: 48,
      stop_cpu: 52,
      nr_reports: 56, // ends at 60, tail-padded to 64
    },
  },
  /* the deterministic scheduler */
  sched_det: {
    def: SCHED_DET,
    size: 320,
    align: 8,
    off: {
      on: 0,
      token: 4,
      arrived: 8,
      expected: 12,
      strategy: 16,
      continue_random: 20,
      prob: 24,
      quantum: 32,
      step_cap: 40,
      steps: 48,
      next_due: 56,
      switches: 64,
      preemptions: 72,
      rng: 80, // u32[4]
      change_step: 96, // f64[16]
      change_prio: 224, // i32[16]
      nr_change: 288,
      next_change: 292,
      log_len: 296,
      log_lost: 300,
      plan_len: 304,
      plan_pos: 308,
      plan_skipped: 312,
      verdict: 316,
    },
  },
  sched_cpu: {
    def: SCHED_CPU,
    size: 36,
    align: 4,
    off: {
      state: 0,
      wait_w: 4,
      wait_v: 8,
      wait_lock: 12,
      wait_describe: 16,
      wake: 20,
      prio: 24,
      plan_next: 28,
      plan_end: 32,
    },
  },
  /* the log's and the plan's entries: five words, as when the runnable mask was 32 bits (the arena does not move) */
  sched_decision: {
    def: SCHED_DECISION,
    size: 20,
    align: 4,
    off: { step: 0, cpu_why: 4, mask: 8, local: 16 }, // mask: u32[2]
  },
  demo_counter: { def: DEMO_COUNTER, size: 4, align: 4, off: { value: 0 } },
  barrier: { def: BARRIER, size: 8, align: 4, off: { arrived: 0, generation: 4 } },
  /* lib: lists and trees */
  list_head: { def: LIST_HEAD, size: 8, align: 4, off: { next: 0, prev: 4 } },
  llist_head: { def: LLIST_HEAD, size: 4, align: 4, off: { first: 0 } },
  llist_node: { def: LLIST_NODE, size: 4, align: 4, off: { next: 0 } },
  xarray: { def: XARRAY, size: 28, align: 4, off: { xa_lock: 0, xa_flags: 20, xa_head: 24 } },
  xa_node: {
    def: XA_NODE,
    size: 284,
    align: 4,
    off: { shift: 0, offset: 4, count: 8, parent: 12, array: 16, rcu_head: 20, slots: 28 },
  },
  rb_node: { def: RB_NODE, size: 12, align: 4, off: { ["__rb_parent_color"]: 0, rb_right: 4, rb_left: 8 } },
  rb_root: { def: RB_ROOT, size: 4, align: 4, off: { rb_node: 0 } },
  /* locks */
  atomic_t: { def: ATOMIC_T, size: 4, align: 4, off: { counter: 0 } },
  atomic_long_t: { def: ATOMIC_LONG_T, size: 4, align: 4, off: { counter: 0 } },
  spinlock_t: {
    def: SPINLOCK_T,
    size: 20,
    align: 4,
    off: { tickets: 0, sleepers: 4, owner_cpu: 8, class: 12, serving: 16 },
  },
  rwlock_t: {
    def: RWLOCK_T,
    size: 36,
    align: 4,
    off: { cnts: 0, sleepers: 4, owner_cpu: 8, class: 12, wait_lock: 16 },
  },
  mutex: { def: MUTEX, size: 12, align: 4, off: { state: 0, owner_cpu: 4, class: 8 } },
  held_locks: {
    def: HELD_LOCKS,
    size: 772,
    align: 4,
    off: { depth: 0, lock: 4, class: 196, read: 388, state: 580 },
  },
  lockdep_graph: {
    def: LOCKDEP_GRAPH,
    size: 176648,
    align: 4,
    off: {
      graph_lock: 0,
      nr_classes: 4,
      class_names: 8,
      before: 4104,
      subclasses: 69640,
      usage_mask: 73736,
      usage_cpu: 74248,
      usage_trace: 78344,
    },
  },
  /* per-CPU context, interrupts, workqueues */
  cpu_context: { def: CPU_CONTEXT, size: 8, align: 4, off: { preempt_count: 0, irqs_off: 4 } },
  irq_desc: { def: IRQ_DESC, size: 48, align: 4, off: { lock: 0, handler: 20, dev_id: 24, in_progress: 28, name: 32 } },
  irq_desc_table: { def: IRQ_DESC_TABLE, size: 776, align: 4, off: { requested: 0, irq_err_count: 4, desc: 8 } },
  irq_cpustat: { def: IRQ_CPUSTAT, size: 72, align: 4, off: { pending: 0, irqs_sum: 4, kstat_irqs: 8 } },
  work_struct: { def: WORK_STRUCT, size: 16, align: 4, off: { data: 0, entry: 4, func: 12 } },
  worker_pool: {
    def: WORKER_POOL,
    size: 48,
    align: 4,
    off: { lock: 0, cpu: 20, id: 24, worklist: 28, worker_cpu: 36, current_work: 40, current_func: 44 },
  },
  wq_barrier: { def: WQ_BARRIER, size: 20, align: 4, off: { work: 0, done: 16 } },
  wq_flusher: { def: WQ_FLUSHER, size: 84, align: 4, off: { depth: 0, barr: 4 } },
  /* RCU */
  rcu_head: { def: RCU_HEAD, size: 8, align: 4, off: { next: 0, func: 4 } },
  rcu_reader: { def: RCU_READER, size: 12, align: 4, off: { ctr: 0, nesting: 4, need_qs: 8 } },
  rcu_segcblist: { def: RCU_SEGCBLIST, size: 36, align: 4, off: { head: 0, tails: 4, gp_seq: 20 } },
  rcu_state: {
    def: RCU_STATE,
    size: 36,
    align: 4,
    off: { lock: 0, gp_seq: 20, gp_seq_needed: 24, qs_left: 28, gp_waiters: 32 },
  },
  rcu_data: {
    def: RCU_DATA,
    size: 84,
    align: 4,
    off: {
      nocb_lock: 0,
      cblist: 20,
      n_cbs_queued: 56,
      n_cbs_invoked: 60,
      nocb_runner: 64,
      nocb_rerun: 68,
      gp_ctr_snap: 72,
      qs_pending: 76,
      swept_gp_seq: 80,
    },
  },
  /* mm */
  page: {
    def: STRUCT_PAGE,
    size: 56,
    align: 4,
    off: {
      flags: 0,
      ["_refcount"]: 4,
      page_type: 8,
      private: 12,
      index: 16,
      lru: 20,
      compound_head: 28,
      compound_order: 32,
      slab_cache: 36,
      freelist: 40,
      inuse: 44,
      objects: 48,
      frozen: 52,
    },
  },
  free_area: { def: FREE_AREA, size: 12, align: 4, off: { free_list: 0, nr_free: 8 } },
  zone: {
    def: ZONE,
    size: 176,
    align: 4,
    off: { lock: 0, free_area: 20, zone_start_pfn: 152, spanned_pages: 156, managed_pages: 160, vm_stat: 164 },
  },
  per_cpu_pages: { def: PER_CPU_PAGES, size: 20, align: 4, off: { count: 0, high: 4, batch: 8, list: 12 } },
  kmem_cache: {
    def: STRUCT_KMEM_CACHE,
    size: 116,
    align: 4,
    off: {
      cpu_slab: 0,
      flags: 4,
      min_partial: 8,
      size: 12,
      object_size: 16,
      offset: 20,
      order: 24,
      objects: 28,
      align: 32,
      name: 36,
      list: 68,
      node: 76,
    },
  },
  kmem_cache_cpu: {
    def: STRUCT_KMEM_CACHE_CPU,
    size: 16,
    align: 4,
    off: { freelist: 0, page: 4, nr_alloc: 8, nr_free: 12 },
  },
  kmem_cache_node: {
    def: STRUCT_KMEM_CACHE_NODE,
    size: 40,
    align: 4,
    off: { list_lock: 0, nr_partial: 20, partial: 24, nr_slabs: 32, total_objects: 36 },
  },
  mm_struct: {
    def: MM_STRUCT,
    size: 44,
    align: 4,
    off: { pgd: 0, page_table_lock: 4, nr_tables: 24, nr_table_races: 40 },
  },
  tlb_entry: { def: TLB_ENTRY, size: 16, align: 8, off: { vpn: 0, pte: 8, ptep: 12 } },
  cpu_tlb: {
    def: CPU_TLB,
    size: 1064,
    align: 8,
    off: { seen: 0, nr_hits: 8, nr_misses: 16, nr_invalidated: 24, nr_stale: 32, entries: 40 },
  },
  tlbi_broadcast: {
    def: TLBI_BROADCAST,
    size: 1072,
    align: 8,
    off: { lock: 0, gen: 20, wgen: 24, nr_range: 32, nr_all: 40, log: 48 },
  },
  fault_attr: {
    def: FAULT_ATTR,
    size: 20,
    align: 4,
    off: { probability: 0, interval: 4, times: 8, count: 12, generation: 16 },
  },
  fail_nth: { def: FAIL_NTH, size: 8, align: 4, off: { fail_nth: 0, seeded_generation: 4 } },
  /* vmalloc */
  vmap_area: {
    def: VMAP_AREA,
    size: 64,
    align: 8,
    off: {
      va_start: 0,
      va_end: 8,
      flags: 16,
      rb_node: 20,
      list: 32,
      purge_list: 40,
      vm: 44,
      rcu_head: 48,
      alloc_cpu: 56,
    },
  },
  vm_struct: {
    def: VM_STRUCT,
    size: 64,
    align: 8,
    off: { next: 0, addr: 8, size: 16, flags: 24, pages: 32, nr_pages: 40, phys_addr: 48, caller: 56 },
  },
  /* vmalloc, generation 3 (src/mm/v6.12): a generation's struct of a name already pinned is keyed "name (vX)" */
  "vmap_area (v6.12)": {
    def: VMAP_AREA_6_12,
    size: 64,
    align: 8,
    off: { va_start: 0, va_end: 8, rb_node: 16, list: 28, subtree_max_size: 40, vm: 48, flags: 52, alloc_cpu: 56 },
  },
  "vm_struct (v6.12)": {
    def: VM_STRUCT_6_12,
    size: 72,
    align: 8,
    off: {
      next: 0,
      addr: 8,
      size: 16,
      flags: 24,
      pages: 32,
      nr_pages: 40,
      phys_addr: 48,
      caller: 56,
      requested_size: 64,
    },
  },
  "vfree_deferred (v6.12)": { def: VFREE_DEFERRED_6_12, size: 20, align: 4, off: { list: 0, wq: 4 } },
  rb_list: { def: RB_LIST, size: 32, align: 4, off: { root: 0, head: 4, lock: 12 } },
  vmap_pool: { def: VMAP_POOL, size: 12, align: 4, off: { head: 0, len: 8 } },
  vmap_node: {
    def: VMAP_NODE,
    size: 3188,
    align: 4,
    off: {
      pool: 0,
      pool_lock: 3072,
      skip_populate: 3092,
      busy: 3096,
      lazy: 3128,
      purge_list: 3160,
      purge_work: 3168,
      nr_purged: 3184,
    },
  },
  shrinker: {
    def: SHRINKER,
    size: 28,
    align: 4,
    off: { count_objects: 0, scan_objects: 4, batch: 8, flags: 12, list: 16, name_id: 24 },
  },
  shrink_control: {
    def: SHRINK_CONTROL,
    size: 32,
    align: 8,
    off: { gfp_mask: 0, nr_to_scan: 4, nr_scanned: 8, ret: 16, shrinker: 24 },
  },
  vmap_block_queue: { def: VMAP_BLOCK_QUEUE, size: 28, align: 4, off: { lock: 0, free: 20 } },
  vmap_block: {
    def: VMAP_BLOCK,
    size: 76,
    align: 4,
    off: {
      lock: 0,
      va: 20,
      free: 24,
      dirty: 28,
      dirty_min: 32,
      dirty_max: 36,
      free_list: 40,
      rcu_head: 48,
      purge: 56,
      rb_node: 64,
    },
  },
  vfree_deferred: { def: VFREE_DEFERRED, size: 20, align: 4, off: { list: 0, wq: 4 } },
  ksym_entry: { def: KSYM_ENTRY, size: 56, align: 4, off: { state: 0, hash: 4, name: 8 } },
  ksym_table: { def: KSYM_TABLE, size: 28672, align: 4, off: { entries: 0 } },
  trace_entry: { def: TRACE_ENTRY, size: 24, align: 8, off: { tag: 0, a: 8, b: 16 } },
  trace_ring: { def: TRACE_RING, size: 6152, align: 8, off: { head: 0, entries: 8 } },
  trace_snapshot: { def: TRACE_SNAPSHOT, size: 8, align: 4, off: { state: 0, snapshot_on_warning: 4 } },
  /* workloads */
  vmalloc_mix_area: {
    def: MIX_AREA,
    size: 40,
    align: 8,
    off: { kind: 0, tag: 4, nr_pages: 8, pages: 12, vm: 16, api: 20, addr: 24, size: 32 },
  },
  vmalloc_mix_handoff: {
    def: MIX_HANDOFF,
    size: 32,
    align: 8,
    off: { state: 0, tag: 4, api: 8, addr: 16, size: 24 },
  },
  vmalloc_mix_cpu: {
    def: MIX_CPU,
    size: 2232,
    align: 8,
    off: { nr_live: 0, incoming: 8, to_irq: 40, counts: 72, ops: 304, live: 312 },
  },
  llist_test_node: { def: LLIST_TEST_NODE, size: 12, align: 4, off: { llnode: 0, cpu: 4, seq: 8 } },
  softirq_vec: { def: SOFTIRQ_VEC, size: 40, align: 4, off: { action: 0 } },
  softirq_cpustat: { def: SOFTIRQ_CPUSTAT, size: 44, align: 4, off: { pending: 0, softirqs: 4 } },
  vfree_ipi_mailbox: {
    def: VFREE_IPI_MAILBOX,
    size: 264,
    align: 4,
    off: { slot: 0, in_free_work: 256, after_del_all: 260 },
  },
};

describe("struct tables: pinned layouts", () => {
  it.each(Object.entries(PINS))("struct %s", (name, pin) => {
    const s = pin.def;
    expect(s.name).toBe(name.replace(/ \(v[\d.]+\)$/, ""));
    expect({ size: s.size, align: s.align }).toEqual({ size: pin.size, align: pin.align });
    expect(Object.fromEntries(s.fields.map((f) => [f.name, f.offset]))).toEqual(pin.off);
    expect({ ...s.off }).toEqual(pin.off);
  });

  it("pins every exported struct table in src/", () => {
    const exported: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith(".ts"))
          for (const m of readFileSync(p, "utf8").matchAll(/export const \w+ = defineStruct\(\s*"([^"]+)"/g))
            exported.push(m[1]!);
      }
    };
    walk(join(import.meta.dirname, "../src"));
    expect(exported.filter((n) => !(n in PINS))).toEqual([]);
  });
});

describe("defineStruct: C layout rules", () => {
  it("aligns each field to its own size and the struct to its widest field", () => {
    const s = defineStruct("t", [
      { name: "a", type: "i32" },
      { name: "b", type: "f64" },
      { name: "c", type: "u32" },
    ]);
    // a@0, hole 4..8, b@8, c@16, tail padding to 24
    expect(s.off).toEqual({ a: 0, b: 8, c: 16 });
    expect([s.size, s.align]).toEqual([24, 8]);
  });

  it("packs 4-byte fields without holes", () => {
    const s = defineStruct("t", [
      { name: "a", type: "ptr" },
      { name: "b", type: "i32" },
      { name: "c", type: "u32" },
    ]);
    expect(s.off).toEqual({ a: 0, b: 4, c: 8 });
    expect([s.size, s.align]).toEqual([12, 4]);
  });

  it("lays out arrays as consecutive elements", () => {
    const s = defineStruct("t", [
      { name: "n", type: "i32" },
      { name: "v", type: "f64", count: 3 },
      { name: "tail", type: "i32" },
    ]);
    expect(s.off).toEqual({ n: 0, v: 8, tail: 32 });
    expect(s.fields[1]).toMatchObject({ size: 24, count: 3 });
    expect(s.size).toBe(40);
  });

  it("embeds a struct at its alignment and carries its alignment outward", () => {
    const inner = defineStruct("inner", [
      { name: "x", type: "i32" },
      { name: "d", type: "f64" },
    ]);
    const s = defineStruct("outer", [
      { name: "a", type: "i32" },
      { name: "in", type: inner },
      { name: "list", type: LIST_HEAD },
    ]);
    expect(s.off).toEqual({ a: 0, in: 8, list: 24 });
    expect([s.size, s.align]).toEqual([32, 8]);
    expect(s.fields[1]!.type).toBe("inner");
  });

  it("rejects a duplicate field name", () => {
    expect(() =>
      defineStruct("t", [
        { name: "a", type: "i32" },
        { name: "a", type: "u32" },
      ]),
    ).toThrow("struct t: duplicate field a");
  });

  it("gives an empty struct 4 bytes (a record still has an address)", () => {
    expect(defineStruct("t", []).size).toBe(4);
  });

  it("records the guard of each field", () => {
    const s = defineStruct("t", [
      { name: "word", type: "u32", guard: "atomic" },
      { name: "owner", type: "i32", guard: "t_lock" },
      { name: "free", type: "i32" },
    ]);
    expect(s.fields.map((f) => f.guard)).toEqual(["atomic", "t_lock", undefined]);
  });

  it("describes a struct one field per line, with offset, type and guard", () => {
    expect(describeStruct(LIST_HEAD).split("\n")).toEqual([
      "struct list_head { /* 8 bytes */",
      "  +   0 next                   ptr  /* the lock of the list */",
      "  +   4 prev                   ptr  /* the lock of the list */",
      "}",
    ]);
  });
});
