/**
 * Every workload module. Workloads may define static variables of their own,
 * so the main thread (boot) and each CPU import this same list: one layout.
 */
import "./lib.js";
import "./locks.js";
import "./mm.js";
import "./selftest.js";
import "./percpu.js";
import "./pgtable.js";
import "./rcu.js";
import "./vmalloc_mix.js";
import "./test_vmalloc.js";
import "./vmap_block.js";
import "./exec.js";
import "./vmalloc.js";
import "./catalog.js";
import "./sched.js";
import "./sched_demo.js";
import "./exec_script.js";
import "./vfree_ipi.js";
