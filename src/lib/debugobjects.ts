/**
 * lib/debugobjects.c (v4.19): lifetime tracking of kernel objects
 * (CONFIG_DEBUG_OBJECTS with CONFIG_DEBUG_OBJECTS_FREE). A user registers an
 * object by its address and a descriptor as it initialises, activates,
 * deactivates and frees it, and each free of a memory range — vfree's
 * __vunmap here — checks that no tracked object in the range is still active.
 *
 * Objects hash by the chunk (page) of their address into obj_hash, each
 * bucket an hlist under its own raw spinlock, so a freed range is checked by
 * walking the buckets of its pages. Tracking records come from
 * obj_static_pool only: the kernel moves to a kmem_cache after boot and
 * refills the pool from it (fill_pool, free_obj_work); vmsim's users track a
 * handful of objects, so a dry pool takes the kernel's out-of-memory path,
 * which switches the tracker off. debug_object_is_on_stack has nothing to
 * check: vmsim's kernel stacks are not in the arena.
 *
 * The tracker is built in but off (CONFIG_DEBUG_OBJECTS_ENABLE_DEFAULT=0):
 * a machine switches it on as the `debug_objects` boot parameter does
 * ({@link enable_object_debug}); until then every call, vfree's range check
 * included, returns after one load.
 *
 * A descriptor (struct debug_obj_descr) is code: each thread defines it at
 * module load with {@link defineDebugObjDescr}, and records keep its id.
 */
import { DEFINE_GLOBAL, F64, I32, staticInit } from "../shared/arena.js";
import { PAGE_SHIFT } from "../shared/config.js";
import { reportBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import {
  DEFINE_SPINLOCK,
  SPINLOCK_T,
  spin_lock,
  spin_lock_init,
  spin_lock_irqsave,
  spin_unlock,
  spin_unlock_irqrestore,
} from "../locks/spinlock.js";
import { LIST_POISON1, LIST_POISON2 } from "./list.js";

const EINVAL = 22;

const ODEBUG_HASH_BITS = 14;
const ODEBUG_HASH_SIZE = 1 << ODEBUG_HASH_BITS;
const ODEBUG_POOL_SIZE = 1024;
const ODEBUG_CHUNK_SHIFT = PAGE_SHIFT;
const ODEBUG_CHUNK_SIZE = 1 << ODEBUG_CHUNK_SHIFT;

/** enum debug_obj_state (include/linux/debugobjects.h, v4.19). */
const ODEBUG_STATE_NONE = 0;
const ODEBUG_STATE_INIT = 1;
const ODEBUG_STATE_INACTIVE = 2;
export const ODEBUG_STATE_ACTIVE = 3;
const ODEBUG_STATE_DESTROYED = 4;
const ODEBUG_STATE_NOTAVAILABLE = 5;
const obj_states = ["none", "initialized", "inactive", "active", "destroyed", "not available"] as const;

/** struct debug_obj_descr (v4.19), the parts vmsim's users need. */
export interface DebugObjDescr {
  readonly name: string;
  /** Tells whether an unknown object being activated is a static one (then it is tracked from here on). */
  readonly is_static_object?: (addr: number) => boolean;
  /** An active or unknown object is activated: true when the fixup repaired the state. */
  readonly fixup_activate?: (addr: number, state: number) => boolean;
  /** An active object is freed: true when the fixup repaired the state (it must untrack or deactivate it). */
  readonly fixup_free?: (addr: number, state: number) => boolean;
}

const descrs: DebugObjDescr[] = [];

/** Registers a descriptor at module load (every thread, in the same order); returns its id. */
export function defineDebugObjDescr(d: DebugObjDescr): number {
  descrs.push(d);
  return descrs.length;
}

/*** Structures ***/

const HLIST_HEAD = defineStruct("hlist_head", [{ name: "first", type: "ptr", guard: "the lock of the list" }]);

/** struct debug_obj (v4.19): its hlist_node comes first, so a node is its record. */
const DEBUG_OBJ = defineStruct("debug_obj", [
  { name: "next", type: "ptr", guard: "debug_bucket.lock (pool_lock while on obj_pool)" },
  { name: "pprev", type: "ptr", guard: "debug_bucket.lock (pool_lock while on obj_pool)" },
  { name: "state", type: "i32", guard: "debug_bucket.lock" },
  { name: "astate", type: "i32", guard: "debug_bucket.lock" },
  /** The tracked object's address (a kaddr). */
  { name: "object", type: "f64", guard: "debug_bucket.lock" },
  /** Descriptor id ({@link defineDebugObjDescr}). */
  { name: "descr", type: "i32", guard: "debug_bucket.lock" },
]);
const O = DEBUG_OBJ.off;

/** struct debug_bucket (v4.19). */
const DEBUG_BUCKET = defineStruct("debug_bucket", [
  { name: "list", type: HLIST_HEAD, guard: "debug_bucket.lock" },
  { name: "lock", type: SPINLOCK_T },
]);

const obj_hash = DEFINE_GLOBAL(
  "obj_hash",
  defineStruct("debug_bucket_array", [{ name: "b", type: DEBUG_BUCKET, count: ODEBUG_HASH_SIZE }]),
);
const obj_static_pool = DEFINE_GLOBAL(
  "obj_static_pool",
  defineStruct("debug_obj_array", [{ name: "o", type: DEBUG_OBJ, count: ODEBUG_POOL_SIZE, guard: "pool_lock" }]),
);
const pool_lock = DEFINE_SPINLOCK("pool_lock");
const obj_pool = DEFINE_GLOBAL("obj_pool", HLIST_HEAD);

/** The file's static ints. */
const ODEBUG = defineStruct("debugobjects_statics", [
  { name: "obj_pool_free", type: "i32", guard: "pool_lock" },
  { name: "obj_pool_used", type: "i32", guard: "pool_lock" },
  /** Set by the debug_objects boot parameter, cleared when the pool runs dry; read without a lock (__read_mostly). */
  { name: "debug_objects_enabled", type: "i32", guard: "atomic" },
  { name: "debug_objects_warnings", type: "i32", guard: "atomic" },
  { name: "debug_objects_fixups", type: "i32", guard: "atomic" },
  /** debug_print_object's `static int limit`: five splats per boot. */
  { name: "print_limit", type: "i32", guard: "atomic" },
]);
const statics = DEFINE_GLOBAL("debugobjects_statics", ODEBUG);
const st = (f: keyof typeof ODEBUG.off) => (statics.ptr + ODEBUG.off[f]) >> 2;

/*** hlist (include/linux/list.h): the buckets and the pool ***/

function hlist_add_head(n: number, h: number): void {
  const first = I32[h >> 2]!;
  I32[(n + O.next) >> 2] = first;
  if (first) I32[(first + O.pprev) >> 2] = n + O.next;
  I32[h >> 2] = n;
  I32[(n + O.pprev) >> 2] = h;
}

function hlist_del(n: number): void {
  const next = I32[(n + O.next) >> 2]!;
  const pprev = I32[(n + O.pprev) >> 2]!;
  I32[pprev >> 2] = next;
  if (next) I32[(next + O.pprev) >> 2] = pprev;
  I32[(n + O.next) >> 2] = LIST_POISON1;
  I32[(n + O.pprev) >> 2] = LIST_POISON2;
}

/** debug_objects_early_init (v4.19): bucket locks, and every static record on the pool. */
staticInit(() => {
  for (let i = 0; i < ODEBUG_HASH_SIZE; i++)
    spin_lock_init(obj_hash.ptr + i * DEBUG_BUCKET.size + DEBUG_BUCKET.off.lock, "debug_bucket.lock");
  for (let i = 0; i < ODEBUG_POOL_SIZE; i++) hlist_add_head(obj_static_pool.ptr + i * DEBUG_OBJ.size, obj_pool.ptr);
  I32[st("obj_pool_free")] = ODEBUG_POOL_SIZE;
});

/** enable_object_debug (v4.19): the `debug_objects` boot parameter; a machine calls it before it runs workloads. */
export function enable_object_debug(): void {
  I32[st("debug_objects_enabled")] = 1;
}

/*** The tracker ***/

/** lookup_object (v4.19): the record of `addr` in bucket `b`, or 0; the bucket lock held. */
function lookup_object(addr: number, b: number): number {
  for (let obj = I32[(b + DEBUG_BUCKET.off.list) >> 2]!; obj; obj = I32[(obj + O.next) >> 2]!)
    if (F64[(obj + O.object) >> 3] === addr) return obj;
  return 0;
}

/** alloc_object (v4.19): a pool record for `addr`, on bucket `b`; 0 when the pool is empty. */
function alloc_object(addr: number, b: number, descr: number): number {
  spin_lock(pool_lock.ptr);
  const obj = I32[obj_pool.ptr >> 2]!;
  if (obj) {
    F64[(obj + O.object) >> 3] = addr;
    I32[(obj + O.descr) >> 2] = descr;
    I32[(obj + O.state) >> 2] = ODEBUG_STATE_NONE;
    I32[(obj + O.astate) >> 2] = 0;
    hlist_del(obj);
    hlist_add_head(obj, b + DEBUG_BUCKET.off.list);
    I32[st("obj_pool_used")]!++;
    I32[st("obj_pool_free")]!--;
  }
  spin_unlock(pool_lock.ptr);
  return obj;
}

/** free_object (v4.19): back to the pool (the kernel's kmem_cache path is not modelled). */
function free_object(obj: number): void {
  const flags = spin_lock_irqsave(pool_lock.ptr);
  I32[st("obj_pool_used")]!--;
  I32[st("obj_pool_free")]!++;
  hlist_add_head(obj, obj_pool.ptr);
  spin_unlock_irqrestore(pool_lock.ptr, flags);
}

/** debug_objects_oom (v4.19): the pool ran dry; every tracked record goes back to it. */
function debug_objects_oom(): void {
  reportBug("WARN", "ODEBUG: Out of memory. ODEBUG disabled");
  for (let i = 0; i < ODEBUG_HASH_SIZE; i++) {
    const db = obj_hash.ptr + i * DEBUG_BUCKET.size;
    const flags = spin_lock_irqsave(db + DEBUG_BUCKET.off.lock);
    const head = db + DEBUG_BUCKET.off.list;
    let freelist = I32[head >> 2]!;
    I32[head >> 2] = 0;
    spin_unlock_irqrestore(db + DEBUG_BUCKET.off.lock, flags);
    for (let next: number; freelist; freelist = next) {
      next = I32[(freelist + O.next) >> 2]!;
      free_object(freelist);
    }
  }
}

/**
 * get_bucket (v4.19): the bucket of `addr`'s chunk, hash_long of the chunk
 * number; vmsim hashes the low 32 bits of the kaddr's chunk (hash_32), which
 * spreads the buckets just as well.
 */
function get_bucket(addr: number): number {
  const chunk = Math.floor(addr / ODEBUG_CHUNK_SIZE) >>> 0;
  return obj_hash.ptr + (Math.imul(chunk, 0x61c88647) >>> (32 - ODEBUG_HASH_BITS)) * DEBUG_BUCKET.size;
}

/** debug_print_object (v4.19): the WARN, five times per boot at most. */
function debug_print_object(state: number, astate: number, descr: number, msg: string): void {
  const limit = st("print_limit");
  if (I32[limit]! < 5) {
    I32[limit]!++;
    // No descriptor of vmsim's gives a debug_hint: %pS of NULL.
    reportBug(
      "WARN",
      `ODEBUG: ${msg} ${obj_states[state]} (active state ${astate}) object type: ${descrs[descr - 1]!.name} hint: 0x0`,
    );
  }
  I32[st("debug_objects_warnings")]!++;
}

/** debug_object_fixup (v4.19): let the descriptor repair the damage. */
function debug_object_fixup(
  fixup: ((addr: number, state: number) => boolean) | undefined,
  addr: number,
  state: number,
): boolean {
  if (fixup?.(addr, state)) {
    I32[st("debug_objects_fixups")]!++;
    return true;
  }
  return false;
}

const enabled = () => I32[st("debug_objects_enabled")] !== 0;

/** debug_object_init (v4.19): `addr` is initialised; an active object re-initialised is a splat. */
export function debug_object_init(addr: number, descr: number): void {
  if (!enabled()) return;
  const db = get_bucket(addr);
  const lock = db + DEBUG_BUCKET.off.lock;
  const flags = spin_lock_irqsave(lock);
  let obj = lookup_object(addr, db);
  if (!obj) {
    obj = alloc_object(addr, db, descr);
    if (!obj) {
      I32[st("debug_objects_enabled")] = 0;
      spin_unlock_irqrestore(lock, flags);
      debug_objects_oom();
      return;
    }
  }
  const state = I32[(obj + O.state) >> 2]!;
  switch (state) {
    case ODEBUG_STATE_NONE:
    case ODEBUG_STATE_INIT:
    case ODEBUG_STATE_INACTIVE:
      I32[(obj + O.state) >> 2] = ODEBUG_STATE_INIT;
      break;
    case ODEBUG_STATE_ACTIVE:
      // The descriptors of vmsim's users have no fixup_init: the splat is all.
      debug_print_object(state, I32[(obj + O.astate) >> 2]!, I32[(obj + O.descr) >> 2]!, "init");
      break;
    case ODEBUG_STATE_DESTROYED:
      debug_print_object(state, I32[(obj + O.astate) >> 2]!, I32[(obj + O.descr) >> 2]!, "init");
      break;
  }
  spin_unlock_irqrestore(lock, flags);
}

/** debug_object_activate (v4.19): `addr` goes active; 0, or -EINVAL when the check failed. */
export function debug_object_activate(addr: number, descr: number): number {
  if (!enabled()) return 0;
  const d = descrs[descr - 1]!;
  const db = get_bucket(addr);
  const lock = db + DEBUG_BUCKET.off.lock;
  const flags = spin_lock_irqsave(lock);
  const obj = lookup_object(addr, db);
  if (obj) {
    const state = I32[(obj + O.state) >> 2]!;
    let ret = 0;
    switch (state) {
      case ODEBUG_STATE_INIT:
      case ODEBUG_STATE_INACTIVE:
        I32[(obj + O.state) >> 2] = ODEBUG_STATE_ACTIVE;
        break;
      case ODEBUG_STATE_ACTIVE:
        debug_print_object(state, I32[(obj + O.astate) >> 2]!, descr, "activate");
        spin_unlock_irqrestore(lock, flags);
        return debug_object_fixup(d.fixup_activate, addr, state) ? 0 : -EINVAL;
      case ODEBUG_STATE_DESTROYED:
        debug_print_object(state, I32[(obj + O.astate) >> 2]!, descr, "activate");
        ret = -EINVAL;
        break;
    }
    spin_unlock_irqrestore(lock, flags);
    return ret;
  }
  spin_unlock_irqrestore(lock, flags);
  /*
   * We are here when a static object is activated. We let the type specific
   * code confirm whether this is true or not; if not, this must be a bug.
   */
  if (d.is_static_object?.(addr)) {
    debug_object_init(addr, descr);
    debug_object_activate(addr, descr);
    return 0;
  }
  debug_print_object(ODEBUG_STATE_NOTAVAILABLE, 0, descr, "activate");
  return debug_object_fixup(d.fixup_activate, addr, ODEBUG_STATE_NOTAVAILABLE) ? 0 : -EINVAL;
}

/** debug_object_deactivate (v4.19): `addr` goes inactive; an untracked or destroyed object is a splat. */
export function debug_object_deactivate(addr: number, descr: number): void {
  if (!enabled()) return;
  const db = get_bucket(addr);
  const lock = db + DEBUG_BUCKET.off.lock;
  const flags = spin_lock_irqsave(lock);
  const obj = lookup_object(addr, db);
  if (obj) {
    const state = I32[(obj + O.state) >> 2]!;
    const astate = I32[(obj + O.astate) >> 2]!;
    switch (state) {
      case ODEBUG_STATE_INIT:
      case ODEBUG_STATE_INACTIVE:
      case ODEBUG_STATE_ACTIVE:
        if (!astate) I32[(obj + O.state) >> 2] = ODEBUG_STATE_INACTIVE;
        else debug_print_object(state, astate, descr, "deactivate");
        break;
      case ODEBUG_STATE_DESTROYED:
        debug_print_object(state, astate, descr, "deactivate");
        break;
    }
  } else debug_print_object(ODEBUG_STATE_NOTAVAILABLE, 0, descr, "deactivate");
  spin_unlock_irqrestore(lock, flags);
}

/** debug_object_free (v4.19): `addr` is freed and untracked; freeing an active object is a splat and a fixup. */
export function debug_object_free(addr: number, descr: number): void {
  if (!enabled()) return;
  const db = get_bucket(addr);
  const lock = db + DEBUG_BUCKET.off.lock;
  const flags = spin_lock_irqsave(lock);
  const obj = lookup_object(addr, db);
  if (!obj) {
    spin_unlock_irqrestore(lock, flags);
    return;
  }
  const state = I32[(obj + O.state) >> 2]!;
  if (state === ODEBUG_STATE_ACTIVE) {
    debug_print_object(state, I32[(obj + O.astate) >> 2]!, descr, "free");
    spin_unlock_irqrestore(lock, flags);
    debug_object_fixup(descrs[descr - 1]!.fixup_free, addr, state);
    return;
  }
  hlist_del(obj);
  spin_unlock_irqrestore(lock, flags);
  free_object(obj);
}

/**
 * debug_check_no_obj_freed (v4.19, with __debug_check_no_obj_freed): the
 * range [address, address + size) is being freed; every object tracked in it
 * is untracked, an active one with a splat and its descriptor's fixup_free.
 */
export function debug_check_no_obj_freed(address: number, size: number): void {
  if (!enabled()) return;
  const saddr = address;
  const eaddr = saddr + size;
  let paddr = saddr - (saddr % ODEBUG_CHUNK_SIZE);
  for (let chunks = Math.ceil((eaddr - paddr) / ODEBUG_CHUNK_SIZE); chunks > 0; chunks--) {
    const db = get_bucket(paddr);
    // repeat: after a fixup, which ran with the bucket unlocked.
    while (check_bucket_freed(db, saddr, eaddr));
    paddr += ODEBUG_CHUNK_SIZE;
  }
}

/**
 * One pass of __debug_check_no_obj_freed over bucket `db`: untracks the
 * objects in [saddr, eaddr); returns true when it stopped at an active one
 * (splat, fixup_free with the bucket unlocked), so the bucket is walked again.
 */
function check_bucket_freed(db: number, saddr: number, eaddr: number): boolean {
  const lock = db + DEBUG_BUCKET.off.lock;
  const flags = spin_lock_irqsave(lock);
  for (let obj = I32[(db + DEBUG_BUCKET.off.list) >> 2]!, tmp: number; obj; obj = tmp) {
    tmp = I32[(obj + O.next) >> 2]!;
    const oaddr = F64[(obj + O.object) >> 3]!;
    if (oaddr < saddr || oaddr >= eaddr) continue;
    const state = I32[(obj + O.state) >> 2]!;
    if (state === ODEBUG_STATE_ACTIVE) {
      const descr = I32[(obj + O.descr) >> 2]!;
      debug_print_object(state, I32[(obj + O.astate) >> 2]!, descr, "free");
      spin_unlock_irqrestore(lock, flags);
      debug_object_fixup(descrs[descr - 1]!.fixup_free, oaddr, state);
      return true;
    }
    hlist_del(obj);
    free_object(obj);
  }
  spin_unlock_irqrestore(lock, flags);
  return false;
}
