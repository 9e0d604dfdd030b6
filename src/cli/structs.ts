/**
 * The main records of the machine, for `vmsim info`: their sizes in the
 * summary, their field tables (describeStruct) with `--structs`.
 *
 * Import only modules that src/workers/kernel.ts imports: a module's
 * registrations (static variables) change the arena layout, and the CPUs,
 * which import kernel.ts, would refuse to attach to an arena the main thread
 * laid out differently.
 */
import { ARENA_HEADER } from "../shared/arena.js";
import type { StructDef } from "../shared/struct.js";
import { LIST_HEAD } from "../lib/list.js";
import { LLIST_NODE } from "../lib/llist.js";
import { RB_NODE } from "../lib/rbtree.js";
import { HELD_LOCKS, LOCKDEP_GRAPH } from "../locks/lockdep.js";
import { SPINLOCK_T } from "../locks/spinlock.js";
import { STRUCT_PAGE } from "../mm/mm_types.js";
import { PER_CPU_PAGES, ZONE } from "../mm/page_alloc.js";
import { MM_STRUCT } from "../mm/pgtable.js";
import { STRUCT_KMEM_CACHE, STRUCT_KMEM_CACHE_CPU } from "../mm/slab.js";
import { CPU_CONTEXT } from "../percpu/preempt.js";
import { WORK_STRUCT } from "../kernel/workqueue.js";

/** Bottom up: the machine, memory management, then the building blocks, then per-CPU state. */
export const MAIN_STRUCTS: readonly StructDef[] = [
  ARENA_HEADER,
  STRUCT_PAGE,
  ZONE,
  PER_CPU_PAGES,
  STRUCT_KMEM_CACHE,
  STRUCT_KMEM_CACHE_CPU,
  MM_STRUCT,
  SPINLOCK_T,
  LIST_HEAD,
  LLIST_NODE,
  RB_NODE,
  WORK_STRUCT,
  CPU_CONTEXT,
  HELD_LOCKS,
  LOCKDEP_GRAPH,
];
