/**
 * mm/shrinker.c (v6.12), reduced to what vmsim's caches need: a cache that
 * can give memory back under pressure registers a shrinker (shrinker_alloc +
 * shrinker_register), and reclaim asks every registered shrinker how much it
 * holds (count_objects) and to free it (scan_objects). vmsim's reclaim is the
 * page allocator's slow path (src/mm/page_alloc.ts): a blocking allocation
 * that still finds no page after draining the per-CPU lists runs shrink_slab
 * and tries once more.
 *
 * Not modelled: memcg- and NUMA-aware shrinkers (one node, no memcg),
 * deferred work (nr_deferred), the seeks/priority scaling of do_shrink_slab
 * (each shrinker is asked for everything it counts, in batches), and
 * shrinker_free: a registered shrinker stays for the life of the machine, so
 * the RCU walk of shrink_slab needs no reference on the shrinker it calls.
 *
 * Locking, as in the kernel: shrinker_mutex serialises registration;
 * shrink_slab walks shrinker_list under rcu_read_lock (list_add_tail_rcu
 * publishes a shrinker fully initialised).
 */
import { DEFINE_GLOBAL, DEFINE_PER_CPU, F64, I32, staticInit } from "../shared/arena.js";
import { this_cpu_ptr } from "../shared/smp.js";
import { callKernelFn, defineKernelFn } from "../shared/functab.js";
import { defineStruct } from "../shared/struct.js";
import { ksym, ksym_name } from "../kernel/kallsyms.js";
import { mutex_lock, mutex_unlock, DEFINE_MUTEX } from "../locks/mutex.js";
import { INIT_LIST_HEAD, LIST_HEAD, list_add_tail_rcu, list_next_rcu } from "../lib/list.js";
import { rcu_read_lock, rcu_read_unlock } from "../rcu/rcupdate.js";
import { GFP_KERNEL } from "./gfp.js";
import { registerShrinkSlab } from "./page_alloc.js";
import { kzalloc } from "./slab.js";

/** SHRINK_STOP (include/linux/shrinker.h): scan_objects freed what it could and wants no more calls. */
export const SHRINK_STOP = -1;
/** SHRINK_EMPTY: count_objects has nothing to free (distinct from 0, "cannot tell now"). */
export const SHRINK_EMPTY = -2;
/** SHRINKER_REGISTERED (v6.12): set by shrinker_register. */
export const SHRINKER_REGISTERED = 1 << 0;
/** SHRINK_BATCH (v6.12): objects asked of scan_objects per call when the shrinker sets no batch. */
export const SHRINK_BATCH = 128;

/** struct shrink_control (v6.12, reduced): the request of one shrink_slab round; the kernel's is on the stack. */
export const SHRINK_CONTROL = defineStruct("shrink_control", [
  { name: "gfp_mask", type: "i32", guard: "owner" },
  /** Objects scan_objects should look at. */
  { name: "nr_to_scan", type: "i32", guard: "owner" },
  /** Objects it looked at (it may set more than nr_to_scan). */
  { name: "nr_scanned", type: "i32", guard: "owner" },
  /**
   * vmsim's, not the kernel's: the count_objects / scan_objects result. vmsim's
   * function pointers (src/shared/functab.ts) return nothing, so the callee
   * stores its unsigned long here.
   */
  { name: "ret", type: "f64", guard: "owner" },
  /** vmsim's: the shrinker being called (the kernel passes it as the first argument). */
  { name: "shrinker", type: "ptr", guard: "owner" },
]);

/** struct shrinker (v6.12, reduced). kzalloc'ed by shrinker_alloc, never freed. */
export const SHRINKER = defineStruct("shrinker", [
  /** unsigned long (*count_objects)(struct shrinker *, struct shrink_control *): a kernel function id. */
  { name: "count_objects", type: "i32", guard: "init" },
  /** unsigned long (*scan_objects)(struct shrinker *, struct shrink_control *). */
  { name: "scan_objects", type: "i32", guard: "init" },
  /** Objects per scan_objects call; 0 is SHRINK_BATCH. */
  { name: "batch", type: "i32", guard: "init" },
  { name: "flags", type: "i32", guard: "shrinker_mutex" },
  /** On shrinker_list. */
  { name: "list", type: LIST_HEAD, guard: "shrinker_mutex" },
  /** The name shrinker_alloc was given (the kernel keeps it for debugfs), interned in the kallsyms table. */
  { name: "name_id", type: "i32", guard: "init" },
]);

/**
 * The shrink_control of this CPU's reclaim (the kernel's is on the reclaimer's
 * stack). A shrinker's callbacks must not reclaim again on the same CPU.
 */
const shrink_control = DEFINE_PER_CPU("shrink_control", SHRINK_CONTROL);

export const shrinker_list = DEFINE_GLOBAL("shrinker_list", LIST_HEAD);
staticInit(() => INIT_LIST_HEAD(shrinker_list.ptr));
export const shrinker_mutex = DEFINE_MUTEX("shrinker_mutex");

const S = SHRINKER.off;
const SC = SHRINK_CONTROL.off;

/**
 * A count_objects or scan_objects callback: `fn(shrinker, sc)` returns the
 * kernel's unsigned long (or SHRINK_STOP / SHRINK_EMPTY). Declared once at
 * module load, as defineKernelFn declares any function a record points to.
 */
export function defineShrinkerFn(name: string, fn: (shrinker: number, sc: number) => number): number {
  return defineKernelFn(name, (sc) => {
    F64[(sc + SC.ret) >> 3] = fn(I32[(sc + SC.shrinker) >> 2]!, sc);
  });
}

/** shrinker_alloc (v6.12): a zeroed shrinker named `name`, or 0; the caller sets its callbacks. */
export function shrinker_alloc(flags: number, name: string): number {
  const shrinker = kzalloc(SHRINKER.size, GFP_KERNEL);
  if (!shrinker) return 0;
  I32[(shrinker + S.flags) >> 2] = flags & ~SHRINKER_REGISTERED;
  I32[(shrinker + S.name_id) >> 2] = ksym(name);
  INIT_LIST_HEAD(shrinker + S.list);
  return shrinker;
}

/** shrinker_register (v6.12): publish `shrinker` on shrinker_list. */
export function shrinker_register(shrinker: number): void {
  mutex_lock(shrinker_mutex.ptr);
  list_add_tail_rcu(shrinker + S.list, shrinker_list.ptr);
  I32[(shrinker + S.flags) >> 2] = I32[(shrinker + S.flags) >> 2]! | SHRINKER_REGISTERED;
  mutex_unlock(shrinker_mutex.ptr);
}

/** The count_objects and scan_objects of a shrinker, set by its owner after shrinker_alloc. */
export function shrinker_set_callbacks(shrinker: number, countObjects: number, scanObjects: number): void {
  I32[(shrinker + S.count_objects) >> 2] = countObjects;
  I32[(shrinker + S.scan_objects) >> 2] = scanObjects;
}

function call_shrinker_fn(fn: number, shrinker: number, sc: number): number {
  I32[(sc + SC.shrinker) >> 2] = shrinker;
  callKernelFn(fn, sc);
  return F64[(sc + SC.ret) >> 3]!;
}

/**
 * do_shrink_slab (v6.12, without the seeks/priority scaling and the deferred
 * count): ask `shrinker` to free everything it counts, `batch` objects per
 * scan_objects call, until it has scanned that much or answers SHRINK_STOP.
 * Returns the objects it freed.
 */
function do_shrink_slab(sc: number, shrinker: number): number {
  const freeable = call_shrinker_fn(I32[(shrinker + S.count_objects) >> 2]!, shrinker, sc);
  if (freeable === 0 || freeable === SHRINK_EMPTY) return freeable;
  const batch = I32[(shrinker + S.batch) >> 2]! || SHRINK_BATCH;
  let freed = 0;
  for (let scanned = 0; scanned < freeable; ) {
    const nr_to_scan = Math.min(batch, freeable - scanned);
    I32[(sc + SC.nr_to_scan) >> 2] = nr_to_scan;
    I32[(sc + SC.nr_scanned) >> 2] = nr_to_scan;
    const ret = call_shrinker_fn(I32[(shrinker + S.scan_objects) >> 2]!, shrinker, sc);
    if (ret === SHRINK_STOP) break;
    freed += ret;
    scanned += I32[(sc + SC.nr_scanned) >> 2]!;
  }
  return freed;
}

/**
 * shrink_slab (v6.12, one node, no memcg): run every registered shrinker
 * once; returns the objects they freed. The callbacks run outside the RCU
 * read-side section, as the kernel's do (they may sleep); shrinkers are never
 * freed, so the walk may resume from the one just called. SHRINK_EMPTY when
 * no shrinker is registered.
 */
export function shrink_slab(gfpMask: number): number {
  // list_empty's READ_ONCE: no shrinker yet (4.19 and 5.10 register none), no RCU section and its sched points.
  if (Atomics.load(I32, shrinker_list.ptr >> 2) === shrinker_list.ptr) return SHRINK_EMPTY;
  const sc = this_cpu_ptr(shrink_control);
  I32[(sc + SC.gfp_mask) >> 2] = gfpMask;
  let freed = 0;
  rcu_read_lock();
  for (let e = list_next_rcu(shrinker_list.ptr); e !== shrinker_list.ptr; e = list_next_rcu(e)) {
    const shrinker = e - S.list;
    if (!(I32[(shrinker + S.flags) >> 2]! & SHRINKER_REGISTERED)) continue;
    rcu_read_unlock();
    const ret = do_shrink_slab(sc, shrinker);
    if (ret === SHRINK_EMPTY) {
      rcu_read_lock();
      continue;
    }
    freed += ret;
    rcu_read_lock();
  }
  rcu_read_unlock();
  return freed;
}

registerShrinkSlab(shrink_slab);

/** Harness: the registered shrinkers' names, in registration order. */
export function registeredShrinkers(): string[] {
  const out: string[] = [];
  for (let e = I32[shrinker_list.ptr >> 2]!; e !== shrinker_list.ptr; e = I32[e >> 2]!)
    out.push(ksym_name(I32[(e - S.list + S.name_id) >> 2]!));
  return out;
}
