/** Workloads the machine's own tests run: the smallest real uses of each mechanism. */
import { DEFINE_GLOBAL, I32 } from "../../shared/arena.js";
import { KernelBug, reportBug } from "../../shared/report.js";
import { defineStruct } from "../../shared/struct.js";
import { DEFINE_SPINLOCK, spin_lock, spin_unlock } from "../../locks/spinlock.js";
import { LIST_HEAD, list_next } from "../../lib/list.js";
import { defineWorkload } from "../workload.js";

const counter_lock = DEFINE_SPINLOCK("selftest_counter_lock");
const COUNTER = defineStruct("selftest_counter", [{ name: "value", type: "i32", guard: "selftest_counter_lock" }]);
const counter = DEFINE_GLOBAL("selftest_counter", COUNTER);

/** A plain (non-atomic) increment under a spinlock: no update is lost iff the lock excludes. */
defineWorkload("spin_counter", (a: { iters: number }) => {
  const i = counter.ptr >> 2;
  for (let n = 0; n < a.iters; n++) {
    spin_lock(counter_lock.ptr);
    I32[i] = I32[i]! + 1;
    spin_unlock(counter_lock.ptr);
  }
  return I32[i];
});

defineWorkload("read_counter", () => I32[counter.ptr >> 2]);

/** BUG(): stops the machine with a report. */
defineWorkload("bug", (a: { message: string }) => {
  throw new KernelBug(a.message);
});

/** A list whose only entry points back at itself, not at the head: a cycle, as a race can leave one. */
const CYCLE = defineStruct("selftest_cycle", [
  { name: "head", type: LIST_HEAD, guard: "owner" },
  { name: "entry", type: LIST_HEAD, guard: "owner" },
]);
const cycle = DEFINE_GLOBAL("selftest_cycle", CYCLE);

/** Walks the cycle to its head, which it never reaches — nor a sched point: a hard lockup. */
defineWorkload("hard_lockup", () => {
  const head = cycle.ptr + CYCLE.off.head;
  const entry = cycle.ptr + CYCLE.off.entry;
  I32[(head + LIST_HEAD.off.next) >> 2] = entry;
  I32[(entry + LIST_HEAD.off.next) >> 2] = entry;
  let n = 0;
  for (let e = list_next(head); e !== head; e = list_next(e)) n++;
  return n;
});

/** `times` WARNs cycling through `distinct` texts: a CPU warning over and over, as a looping one does. */
defineWorkload("warn_flood", (a: { times: number; distinct: number }) => {
  for (let i = 0; i < a.times; i++) reportBug("WARN", `selftest warning ${i % a.distinct}`);
});
