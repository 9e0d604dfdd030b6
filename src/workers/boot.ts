/**
 * start_kernel for the simulated machine, on the main thread acting as the boot
 * CPU (CPU 0), in the kernel's order (init/main.c): memory first, then the
 * allocators built on it, then RCU and workqueues.
 */
import "./kernel.js";
import "./workloads/index.js";
import { type Arena, createArena } from "../shared/arena.js";
import type { MachineConfig } from "../shared/config.js";
import { lockdepAttach } from "../locks/lockdep.js";
import { spinlockAttach } from "../locks/spinlock.js";
import { setCurrentCpu } from "../shared/smp.js";
import { mem_init } from "../mm/page_alloc.js";
import { kmem_cache_init } from "../mm/slab.js";
import { paging_init } from "../mm/pgtable.js";
import { rcu_init } from "../rcu/tree.js";
import { workqueue_init_early } from "../kernel/workqueue.js";
import { vmalloc_init } from "../mm/vmalloc.js";

/** Creates the arena and runs the boot sequence; leaves this thread as CPU 0. */
export function start_kernel(config: MachineConfig): Arena {
  const arena = createArena(config);
  setCurrentCpu(0);
  lockdepAttach();
  spinlockAttach();
  mem_init();
  kmem_cache_init();
  paging_init();
  rcu_init();
  workqueue_init_early();
  vmalloc_init();
  return arena;
}
