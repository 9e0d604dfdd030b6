/**
 * Every kernel module, imported for its registrations (struct tables, static
 * variables, per-CPU variables). The main thread and every CPU worker import
 * this first, so all of them compute the same arena layout.
 */
import "./locks/lockdep.js";
import "./locks/spinlock.js";
import "./percpu/preempt.js";
