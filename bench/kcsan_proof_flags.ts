/**
 * The stress flags of the data-race detector's free-running proof
 * (bench/kcsan_proof.ts), shared with test/kcsan_proof.test.ts, whose plain
 * runs take the same mix and must miss every detector-only switch.
 */

/**
 * vm_unmap_aliases and vread — the readers of the racing fields, 0.1 % and a
 * few % of the plain mix — weighted up (`vmsim stress --mix`); KCSAN's
 * sampling as its defaults (`--kcsan-skip-watch`, `--kcsan-udelay-task`, µs).
 */
export const PROOF_FLAGS = { mix: "vm_unmap_aliases=20%,vread=20%", skipWatch: 4000, udelayTask: 80 } as const;
