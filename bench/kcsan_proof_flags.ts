/**
 * The stress flags of the data-race detector's free-running proof
 * (bench/kcsan_proof.ts), shared with test/kcsan_proof.test.ts, whose plain
 * runs take the same mix and must miss every detector-only switch.
 */

/**
 * vm_unmap_aliases and vread — the readers of the racing fields, 0.1 % and a
 * few % of the plain mix — weighted up (`vmsim stress --mix`), a watchpoint
 * every `skipWatch` accesses on average (`--kcsan-skip-watch`) and a longer
 * watch window (`--kcsan-udelay-task`, µs).
 */
export const PROOF_FLAGS = { mix: "vm_unmap_aliases=5%,vread=10%", skipWatch: 100, udelayTask: 300 } as const;
