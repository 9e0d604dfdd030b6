/**
 * The XArray (lib/xarray.c, include/linux/xarray.h, as of v5.10–v6.12): a
 * radix tree of 64-slot nodes whose loads walk it under RCU without its lock,
 * while stores, inserts and erases take xa_lock. vmalloc keeps its vmap blocks
 * in one (v5.10: the global vmap_blocks; v6.12: one per CPU, hashed by
 * address). It sits on the mm floor, not lib, because its nodes come from a
 * slab cache (radix_tree_node_cachep) and are freed after a grace period.
 *
 * An entry is an arena pointer (4-byte aligned, never below 4096) or NULL (0).
 * Internal entries are tagged as the kernel tags them: a node pointer has bit 1
 * set (xa_mk_node), so a reader can tell a node from a stored pointer. Indices
 * are non-negative integers below 2^53 (a shift of 48 needs nine levels).
 * Only what vmalloc uses is here: xa_init, xa_load, xa_insert, xa_erase and an
 * xa_for_each walk; no marks, no multi-index entries, no value entries.
 */
import { DEFINE_GLOBAL, I32, type GlobalVar, staticInit } from "../shared/arena.js";
import { defineStruct } from "../shared/struct.js";
import { SPINLOCK_T, spin_lock, spin_lock_init, spin_unlock } from "../locks/spinlock.js";
import { lock_is_held } from "../locks/lockdep.js";
import {
  RCU_HEAD,
  rcu_assign_pointer,
  rcu_dereference,
  rcu_dereference_check,
  rcu_read_lock,
  rcu_read_unlock,
} from "../rcu/rcupdate.js";
import { kfree_rcu } from "../rcu/tree.js";
import { GFP_NOWAIT, __GFP_NOWARN, gfpflags_allow_blocking } from "./gfp.js";
import { KMEM_CACHE, kmem_cache_free, kmem_cache_zalloc } from "./slab.js";

/** XA_CHUNK_SHIFT (include/linux/xarray.h, CONFIG_BASE_SMALL=0): 64 slots per node. */
export const XA_CHUNK_SHIFT = 6;
export const XA_CHUNK_SIZE = 1 << XA_CHUNK_SHIFT;
const XA_CHUNK_MASK = XA_CHUNK_SIZE - 1;

const ENOMEM = 12;
const EBUSY = 16;

/** struct xarray: its lock, flags and the head (an entry at index 0, or the top node). */
export const XARRAY = defineStruct("xarray", [
  { name: "xa_lock", type: SPINLOCK_T },
  { name: "xa_flags", type: "i32", guard: "init" },
  { name: "xa_head", type: "ptr", guard: "xa_lock; loaded under RCU" },
]);

/** struct xa_node (radix_tree_node): one level of the tree. */
export const XA_NODE = defineStruct("xa_node", [
  { name: "shift", type: "i32", guard: "xa_lock" },
  { name: "offset", type: "i32", guard: "xa_lock" },
  { name: "count", type: "i32", guard: "xa_lock" },
  { name: "parent", type: "ptr", guard: "xa_lock" },
  { name: "array", type: "ptr", guard: "xa_lock" },
  { name: "rcu_head", type: RCU_HEAD },
  { name: "slots", type: "ptr", count: XA_CHUNK_SIZE, guard: "xa_lock; loaded under RCU" },
]);

const XA = XARRAY.off;
const N = XA_NODE.off;

/** radix_tree_node_cachep (lib/radix-tree.c): the cache every XArray node comes from. */
const radix_tree_node_cachep = KMEM_CACHE(XA_NODE);

const xa_mk_node = (node: number) => node | 2;
/** xa_is_node: an internal entry (low bits 10) above 4096, as include/linux/xarray.h tells them apart. */
const xa_is_node = (entry: number) => (entry & 3) === 2 && entry > 4096;
const xa_to_node = (entry: number) => entry - 2;

const slotAddr = (node: number, offset: number) => node + N.slots + offset * 4;
const headAddr = (xa: number) => xa + XA.xa_head;
const nodeShift = (node: number) => I32[(node + N.shift) >> 2]!;
/** The slot of `index` in a node of `shift` (indices go past 2^32, so no bit operators on them). */
const offsetOf = (index: number, shift: number) => Math.floor(index / 2 ** shift) & XA_CHUNK_MASK;
/** The largest index a tree whose top node has `shift` holds (xa_node max index). */
const maxIndex = (shift: number) => 2 ** (shift + XA_CHUNK_SHIFT) - 1;

/** xa_init (include/linux/xarray.h): an empty array whose lock has the class `lockName`. */
export function xa_init(xa: number, lockName: string): void {
  spin_lock_init(xa + XA.xa_lock, lockName);
  I32[(xa + XA.xa_flags) >> 2] = 0;
  I32[(xa + XA.xa_head) >> 2] = 0;
}

/** DEFINE_XARRAY(name): a static, initialized array; its lock's class is "name.xa_lock". */
export function DEFINE_XARRAY(name: string): GlobalVar {
  const g = DEFINE_GLOBAL(name, XARRAY);
  staticInit(() => xa_init(g.ptr, `${name}.xa_lock`));
  return g;
}

/** xa_load (lib/xarray.c): the entry at `index`, or 0; lockless, inside its own RCU read-side section. */
export function xa_load(xa: number, index: number): number {
  rcu_read_lock();
  let entry = rcu_dereference(headAddr(xa));
  if (xa_is_node(entry)) {
    if (index > maxIndex(nodeShift(xa_to_node(entry)))) entry = 0;
    while (xa_is_node(entry)) {
      const node = xa_to_node(entry);
      entry = rcu_dereference(slotAddr(node, offsetOf(index, nodeShift(node))));
    }
  } else if (index !== 0) entry = 0;
  rcu_read_unlock();
  return entry;
}

/** A load of a slot on the update side: xa_lock is held. */
function xa_entry_locked(xa: number, slot: number): number {
  return rcu_dereference_check(slot, lock_is_held(xa + XA.xa_lock));
}

/** The node xas_nomem allocated with the lock dropped (xa_state's xa_alloc), for the retry to use first. */
interface XaState {
  xa_alloc: number;
}

/**
 * xas_alloc (lib/xarray.c): a node for the slot `offset` of `parent` (0: the
 * new head): the preallocated one, else GFP_NOWAIT under xa_lock.
 */
function xas_alloc(xa: number, parent: number, offset: number, shift: number, xas: XaState): number {
  let node = xas.xa_alloc;
  if (node !== 0) xas.xa_alloc = 0;
  else node = kmem_cache_zalloc(radix_tree_node_cachep.cachep, GFP_NOWAIT | __GFP_NOWARN);
  if (node === 0) return 0;
  I32[(node + N.shift) >> 2] = shift;
  I32[(node + N.offset) >> 2] = offset;
  I32[(node + N.parent) >> 2] = parent;
  I32[(node + N.array) >> 2] = xa;
  return node;
}

/**
 * xas_expand (lib/xarray.c): grow the tree upwards until its top node covers
 * `index`; the old head moves into slot 0 of each new top. False: no memory.
 */
function xas_expand(xa: number, index: number, xas: XaState): boolean {
  let head = xa_entry_locked(xa, headAddr(xa));
  let shift: number;
  if (xa_is_node(head)) shift = nodeShift(xa_to_node(head)) + XA_CHUNK_SHIFT;
  else if (head === 0) {
    // An empty array grows only as high as the index needs.
    shift = 0;
    while (index > maxIndex(shift)) shift += XA_CHUNK_SHIFT;
    const node = xas_alloc(xa, 0, 0, shift, xas);
    if (node === 0) return false;
    rcu_assign_pointer(headAddr(xa), xa_mk_node(node));
    return true;
  } else shift = 0;
  while (!xa_is_node(head) || index > maxIndex(nodeShift(xa_to_node(head)))) {
    const node = xas_alloc(xa, 0, 0, shift, xas);
    if (node === 0) return false;
    if (head !== 0) {
      I32[slotAddr(node, 0) >> 2] = head;
      I32[(node + N.count) >> 2] = 1;
      if (xa_is_node(head)) I32[(xa_to_node(head) + N.parent) >> 2] = node;
    }
    rcu_assign_pointer(headAddr(xa), xa_mk_node(node));
    head = xa_mk_node(node);
    shift += XA_CHUNK_SHIFT;
  }
  return true;
}

/**
 * xa_insert (include/linux/xarray.h): store `entry` at `index` if nothing is
 * there. 0, -EBUSY when the index is occupied, -ENOMEM when a node could not be
 * had. Nodes are allocated with GFP_NOWAIT under xa_lock; when that fails and
 * `gfp` may block, xas_nomem allocates one with the lock dropped and the insert
 * starts over.
 */
export function xa_insert(xa: number, index: number, entry: number, gfp: number): number {
  if (entry === 0 || (entry & 3) !== 0) throw new RangeError(`xa_insert: entry ${entry} is not an aligned pointer`);
  const lock = xa + XA.xa_lock;
  const xas: XaState = { xa_alloc: 0 };
  let ret: number;
  for (;;) {
    spin_lock(lock);
    ret = __xa_insert(xa, index, entry, xas);
    spin_unlock(lock);
    if (ret !== -ENOMEM || xas.xa_alloc !== 0 || !gfpflags_allow_blocking(gfp)) break;
    xas.xa_alloc = kmem_cache_zalloc(radix_tree_node_cachep.cachep, gfp); // xas_nomem
    if (xas.xa_alloc === 0) break;
  }
  if (xas.xa_alloc !== 0) kmem_cache_free(radix_tree_node_cachep.cachep, xas.xa_alloc); // xas_destroy
  return ret;
}

/** __xa_insert (lib/xarray.c): the insert itself; xa_lock held. */
function __xa_insert(xa: number, index: number, entry: number, xas: XaState): number {
  let ret = 0;
  if (index === 0 && xa_entry_locked(xa, headAddr(xa)) === 0) rcu_assign_pointer(headAddr(xa), entry);
  else if (!xas_expand(xa, index, xas)) ret = -ENOMEM;
  else {
    let node = xa_to_node(xa_entry_locked(xa, headAddr(xa)));
    for (;;) {
      const shift = nodeShift(node);
      const offset = offsetOf(index, shift);
      const slot = slotAddr(node, offset);
      const next = xa_entry_locked(xa, slot);
      if (shift === 0) {
        if (next !== 0) ret = -EBUSY;
        else {
          rcu_assign_pointer(slot, entry);
          I32[(node + N.count) >> 2]! += 1;
        }
        break;
      }
      if (next !== 0) {
        node = xa_to_node(next);
        continue;
      }
      const child = xas_alloc(xa, node, offset, shift - XA_CHUNK_SHIFT, xas);
      if (child === 0) {
        ret = -ENOMEM;
        // A node made for this insert and left empty goes (and the nodes above it that it alone kept).
        if (I32[(node + N.count) >> 2] === 0) xas_delete_node(xa, node);
        break;
      }
      rcu_assign_pointer(slot, xa_mk_node(child));
      I32[(node + N.count) >> 2]! += 1;
      node = child;
    }
  }
  if (ret !== 0) xas_shrink(xa);
  return ret;
}

/** xas_delete_node (lib/xarray.c): free empty nodes from `node` upwards; readers may stand on them, so by RCU. */
function xas_delete_node(xa: number, node: number): void {
  while (node !== 0 && I32[(node + N.count) >> 2] === 0) {
    const parent = I32[(node + N.parent) >> 2]!;
    if (parent === 0) rcu_assign_pointer(headAddr(xa), 0);
    else {
      rcu_assign_pointer(slotAddr(parent, I32[(node + N.offset) >> 2]!), 0);
      I32[(parent + N.count) >> 2]! -= 1;
    }
    kfree_rcu(node, N.rcu_head);
    node = parent;
  }
  xas_shrink(xa);
}

/**
 * xas_shrink (lib/xarray.c): while the top node holds only slot 0, make that
 * entry the head. A leaf entry can become the head only at index 0.
 */
function xas_shrink(xa: number): void {
  for (;;) {
    const head = xa_entry_locked(xa, headAddr(xa));
    if (!xa_is_node(head)) return;
    const node = xa_to_node(head);
    const count = I32[(node + N.count) >> 2]!;
    if (count === 0) {
      rcu_assign_pointer(headAddr(xa), 0);
      kfree_rcu(node, N.rcu_head);
      return;
    }
    if (count !== 1) return;
    const first = xa_entry_locked(xa, slotAddr(node, 0));
    if (first === 0) return;
    if (!xa_is_node(first) && nodeShift(node) !== 0) return;
    if (xa_is_node(first)) I32[(xa_to_node(first) + N.parent) >> 2] = 0;
    rcu_assign_pointer(headAddr(xa), first);
    kfree_rcu(node, N.rcu_head);
  }
}

/** xa_erase (lib/xarray.c): remove the entry at `index`; returns it, or 0 when there was none. */
export function xa_erase(xa: number, index: number): number {
  const lock = xa + XA.xa_lock;
  spin_lock(lock);
  let old = 0;
  let entry = xa_entry_locked(xa, headAddr(xa));
  if (!xa_is_node(entry)) {
    if (index === 0 && entry !== 0) {
      old = entry;
      rcu_assign_pointer(headAddr(xa), 0);
    }
  } else if (index <= maxIndex(nodeShift(xa_to_node(entry)))) {
    let node = xa_to_node(entry);
    for (;;) {
      const slot = slotAddr(node, offsetOf(index, nodeShift(node)));
      entry = xa_entry_locked(xa, slot);
      if (!xa_is_node(entry)) {
        if (entry !== 0) {
          old = entry;
          rcu_assign_pointer(slot, 0);
          I32[(node + N.count) >> 2]! -= 1;
          xas_delete_node(xa, node);
        }
        break;
      }
      node = xa_to_node(entry);
    }
  }
  spin_unlock(lock);
  return old;
}

/**
 * xa_for_each (include/linux/xarray.h): call `fn(index, entry)` for every
 * present entry in index order. The caller holds xa_lock or is the only
 * thread running (the checkers); the walk takes no lock itself.
 */
export function xa_for_each(xa: number, fn: (index: number, entry: number) => void): void {
  const walk = (entry: number, base: number): void => {
    if (entry === 0) return;
    if (!xa_is_node(entry)) {
      fn(base, entry);
      return;
    }
    const node = xa_to_node(entry);
    const step = 2 ** nodeShift(node);
    for (let i = 0; i < XA_CHUNK_SIZE; i++) walk(Atomics.load(I32, slotAddr(node, i) >> 2), base + i * step);
  };
  walk(Atomics.load(I32, headAddr(xa) >> 2), 0);
}

/** The number of nodes in the tree (for the checkers: an empty array holds none). */
export function xa_nr_nodes(xa: number): number {
  let n = 0;
  const walk = (entry: number): void => {
    if (!xa_is_node(entry)) return;
    n++;
    const node = xa_to_node(entry);
    for (let i = 0; i < XA_CHUNK_SIZE; i++) walk(Atomics.load(I32, slotAddr(node, i) >> 2));
  };
  walk(Atomics.load(I32, headAddr(xa) >> 2));
  return n;
}
