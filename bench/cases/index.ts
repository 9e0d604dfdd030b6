/**
 * Every micro-benchmark module, one re-export line each:
 * `export { cases as <module>Cases } from "./<module>.js";`
 * bench/micro.ts runs every `BenchCase[]` exported here.
 */
export { cases as percpuCases } from "./percpu.js";
export { cases as pgtableCases } from "./pgtable.js";
export { cases as locksCases } from "./locks.js";
export { cases as mmCases } from "./mm.js";
export { cases as libCases } from "./lib.js";
export { cases as rcuCases } from "./rcu.js";
export { cases as vmallocCases } from "./vmalloc.js";
export { cases as vmapBlockCases } from "./vmap_block.js";
export { cases as eventsCases } from "./events.js";
export { cases as traceCases } from "./trace.js";
