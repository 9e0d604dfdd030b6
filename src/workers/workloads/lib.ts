/**
 * Workloads for the lib/ data structures' multi-CPU tests: concurrent
 * llist_add against one consumer, as vfree's deferred path uses it.
 *
 * Nodes are carved from the top of the page-contents region (disjoint per CPU),
 * not allocated: these workloads test the list alone, beside no allocator.
 */
import { DEFINE_GLOBAL, I32, theArena } from "../../shared/arena.js";
import { PAGE_SIZE } from "../../shared/config.js";
import { KernelBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import {
  LLIST_HEAD,
  LLIST_NODE,
  llist_add,
  llist_add_batch,
  llist_del_all,
  llist_del_first,
  llist_next,
} from "../../lib/llist.js";
import { BARRIER, barrierWait } from "../barrier.js";
import { defineWorkload } from "../workload.js";

/** A test record on llist_test_head: who added it, and its place in that CPU's adding order. */
export const LLIST_TEST_NODE = defineStruct("llist_test_node", [
  { name: "llnode", type: LLIST_NODE },
  { name: "cpu", type: "i32", guard: "init" },
  { name: "seq", type: "i32", guard: "init" },
]);
const llist_test_head = DEFINE_GLOBAL("llist_test_head", LLIST_HEAD);
/** The start line of `llist_add_race`: every CPU waits for all, so the adders really overlap. */
const llist_test_start = DEFINE_GLOBAL("llist_test_start", BARRIER);
const T = LLIST_TEST_NODE.off;

/** Arguments of `llist_add_race`. */
export interface LlistRaceArgs {
  /** Nodes this CPU adds (every CPU must pass the same count: it sizes the node area). */
  readonly count: number;
  /** Largest llist_add_batch chain; 1 = llist_add only. */
  readonly batchMax: number;
  /** Take the whole list with llist_del_all after every this many adds; 0 = never. One CPU only. */
  readonly drainEvery: number;
  /** Take one node with llist_del_first after every this many adds; 0 = never. The draining CPU only. */
  readonly delFirstEvery: number;
}

/** What a CPU saw in `llist_add_race`. */
export interface LlistRaceResult {
  /** Adds that returned true (found the list empty). */
  readonly empties: number;
  /** Removals that left the list empty: a non-empty llist_del_all, a llist_del_first of the last node. */
  readonly emptied: number;
  /** Node chains this CPU took off, each in list order (a llist_del_first is a chain of one). */
  readonly taken: number[][];
}

/** Address of CPU `cpu`'s record `seq`, for `count` records per CPU. */
function testRecord(cpu: number, seq: number, count: number): number {
  const a = theArena();
  const size = LLIST_TEST_NODE.size;
  const top = a.pagedataBase + a.nrPages * PAGE_SIZE;
  const base = (top - a.config.cpus * count * size) & ~7;
  return base + (cpu * count + seq) * size;
}

/** The chain from `first`, in list order; more than `max` nodes means the list has a cycle. */
function chainOf(first: number, max: number): number[] {
  const out: number[] = [];
  for (let n = first; n !== 0; n = llist_next(n)) {
    if (out.length === max) throw new KernelBug(`llist_test_head: chain longer than the ${max} nodes added: a cycle`);
    out.push(n);
  }
  return out;
}

/** Adds `count` nodes to llist_test_head in seeded batches; optionally consumes concurrently. */
defineWorkload("llist_add_race", (a: LlistRaceArgs, ctx): LlistRaceResult => {
  const prng = ctx.prng();
  const head = llist_test_head.ptr;
  const taken: number[][] = [];
  let empties = 0;
  let emptied = 0;
  let ops = 0;
  const max = a.count * theArena().config.cpus;
  barrierWait(llist_test_start.ptr, theArena().config.cpus, "llist_add_race");
  for (let seq = 0; seq < a.count; ) {
    const k = Math.min(prng.int(1, a.batchMax), a.count - seq);
    // Chain seq .. seq+k-1 newest first, as consecutive llist_adds would leave them.
    for (let j = 0; j < k; j++) {
      const rec = testRecord(ctx.cpu, seq + j, a.count);
      I32[(rec + T.cpu) >> 2] = ctx.cpu;
      I32[(rec + T.seq) >> 2] = seq + j;
      if (j > 0)
        I32[(rec + T.llnode + LLIST_NODE.off.next) >> 2] = testRecord(ctx.cpu, seq + j - 1, a.count) + T.llnode;
    }
    const last = testRecord(ctx.cpu, seq, a.count) + T.llnode;
    const first = testRecord(ctx.cpu, seq + k - 1, a.count) + T.llnode;
    if (k === 1 ? llist_add(first, head) : llist_add_batch(first, last, head)) empties++;
    seq += k;
    ops++;
    if (a.drainEvery > 0 && ops % a.drainEvery === 0) {
      const chain = chainOf(llist_del_all(head), max);
      if (chain.length > 0) {
        emptied++;
        taken.push(chain);
      }
    }
    if (a.delFirstEvery > 0 && ops % a.delFirstEvery === 0) {
      const n = llist_del_first(head);
      if (n !== 0) {
        // Its next is still what the list held after it: NULL means we took the last node.
        if (llist_next(n) === 0) emptied++;
        taken.push([n]);
      }
    }
  }
  return { empties, emptied, taken };
});

/** Takes everything left on llist_test_head (at most `max` nodes were added); returns the chain in list order. */
defineWorkload("llist_drain", (a: { max: number }) => chainOf(llist_del_all(llist_test_head.ptr), a.max));

/** The (cpu, seq) a test node carries, read back by the test. */
export function llistTestNodeId(node: number): { cpu: number; seq: number } {
  const rec = node - T.llnode;
  return { cpu: I32[(rec + T.cpu) >> 2]!, seq: I32[(rec + T.seq) >> 2]! };
}
