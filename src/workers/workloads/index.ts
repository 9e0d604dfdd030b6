/**
 * Every workload module. Workloads may define static variables of their own,
 * so the main thread (boot) and each CPU import this same list: one layout.
 */
import "./selftest.js";
