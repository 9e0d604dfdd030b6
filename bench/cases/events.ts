/**
 * The per-CPU event ring (src/shared/events.ts): one trace_event, the cost
 * every hooked vmalloc API entry/exit and vmap_area_lock acquisition pays
 * (a vmalloc+vfree pair records about nine).
 */
import { makeConfig } from "../../src/shared/config.js";
import { EV_VFREE, trace_event } from "../../src/shared/events.js";
import { start_kernel } from "../../src/workers/boot.js";
import type { BenchCase } from "./types.js";

let addr = 0;

export const cases: BenchCase[] = [
  {
    name: "trace_event (per-CPU ring, two arguments)",
    target: "≤ 10 ns/op",
    setup: () => {
      start_kernel(makeConfig({ cpus: 1 }));
    },
    fn: () => {
      addr = (addr + 4096) & 0xfffffff; // stays a small integer: no heap number per call
      trace_event(EV_VFREE, addr, 0);
    },
  },
];
