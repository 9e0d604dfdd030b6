import { BACKPORT_NAMES, type BackportName, KNOWN_RACES } from "../src/shared/backport.js";
import type { KernelVersion } from "../src/shared/config.js";

/**
 * The stress flags of the data-race detector's free-running proof
 * (bench/kcsan_proof.ts), shared with test/kcsan_proof.test.ts, whose plain
 * runs take the same mix and must miss every detector-only switch.
 */

/**
 * vm_unmap_aliases and vread — the readers of the racing fields, 0.1 % and a
 * few % of the plain mix — weighted up (`vmsim stress --mix`); a watchpoint
 * four times as often as KCSAN's default and a window 2.5 times as long
 * (`--kcsan-skip-watch`, `--kcsan-udelay-task`, µs: on a loaded 2-core host
 * the other CPU needs the time to run into it); KCSAN's strict rules
 * (`--kcsan-strict`: vb_free mostly rewrites the dirty range with the value it
 * holds, which the default rules drop); and the report filter
 * (`--kcsan-skip-report`) holding the followed kernels' own races that would
 * end a run first (docs/kcsan.md#what-it-found): `clear_vm_uninitialized_flag`
 * and 4.19's `vmalloc_user` (vm_flags), and `rb_link_node`, whose plain store
 * 6.12's RB_EMPTY_ROOT peeks at with READ_ONCE — a race only the strict rules
 * report.
 */
export const PROOF_FLAGS = {
  mix: "vm_unmap_aliases=20%,vread=20%",
  skipWatch: 1000,
  udelayTask: 200,
  strict: true,
  skipReport: ["clear_vm_uninitialized_flag", "vmalloc_user", "rb_link_node"],
} as const;

/**
 * The known races of `kernel` marked as their upstream fix marks them
 * (src/shared/backport.ts): a run must stop on the switch's race, not on a
 * race the followed kernel really has.
 */
export function backportsFor(kernel: KernelVersion): BackportName[] {
  return BACKPORT_NAMES.filter((b) => (KNOWN_RACES[b].kernels as readonly KernelVersion[]).includes(kernel));
}
