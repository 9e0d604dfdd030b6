/**
 * Every kernel module, imported for its registrations (struct tables, static
 * variables, per-CPU variables). The main thread and every CPU worker import
 * this first, so all of them compute the same arena layout.
 */
import "../locks/lockdep.js";
import "../locks/spinlock.js";
import "../locks/lock_wait.js";
import "../locks/rwlock.js";
import "../locks/mutex.js";
import "../locks/might_sleep.js";
import "../locks/atomic.js";
import "../lib/list.js";
import "../lib/llist.js";
import "../lib/rbtree.js";
import "../lib/debugobjects.js";
import "../percpu/preempt.js";
import "../kernel/irq.js";
import "../kernel/workqueue.js";
import "../mm/page_alloc.js";
import "../mm/fail_page_alloc.js";
import "../mm/slab.js";
import "../mm/pgtable.js";
import "../mm/tlbflush.js";
import "../mm/mmu.js";
import "../mm/vmalloc.js";
import "../mm/percpu_chunk.js";
import "../mm/kvfree_rcu.js";
import "../rcu/tree.js";
import "../trace/trace.js";
