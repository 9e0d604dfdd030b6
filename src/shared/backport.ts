/**
 * Known races: data races that a followed kernel version really has, found by
 * the data-race detector (`--kcsan`, docs/kcsan.md) and later annotated or
 * fixed upstream. vmsim's port keeps each one as its kernel had it, so the
 * detector keeps reporting it; `--backport <name>` (MachineConfig `backport`)
 * applies the upstream change — the marked accesses of the later kernel — to
 * the port of the versions listed, and the report goes away. Each entry opens
 * with its story, as src/shared/inject.ts does; the hooks sit in the kernel
 * files behind a module-level boolean read once per arena. This file is data
 * only, on the lowest floor, so that the config can check the names.
 */
import type { KernelVersion } from "./config.js";

/** One known race and the upstream change that annotated it. */
export interface KnownRace {
  /** The detector's title for it: `BUG: KCSAN: data-race in <pair>`. */
  readonly pair: string;
  /** The versions whose port has the race (and the hook that backports the change). */
  readonly kernels: readonly KernelVersion[];
  /** The upstream commit (12 hex digits) and its title. */
  readonly upstream: string;
  /** One line: what the backport changes (CLI help, docs). */
  readonly summary: string;
}

/** The registry of known races, by the name `--backport` takes. */
export const KNOWN_RACES = {
  /**
   * purge_fragmented_blocks looks at a block's free and dirty counts before
   * it takes vb->lock (a cheap filter; the test is repeated under the lock),
   * while the block's CPU changes them under vb->lock in vb_alloc and any CPU
   * in vb_free.
   *
   *   CPU0: vm_map_ram → vb_alloc               CPU1: vm_unmap_aliases
   *     spin_lock(&vb->lock)                      purge_fragmented_blocks(cpu 0)
   *     vb->free -= 1 << order                      rcu_read_lock()
   *                                                 vb->free + vb->dirty == VMAP_BBMAP_BITS?
   *     spin_unlock(&vb->lock)                        (no lock: a plain load)
   *
   * What it costs: nothing the kernel needs. The unlocked test is a hint,
   * repeated under vb->lock before anything is changed, and the counts are
   * aligned words a CPU loads whole; but the compiler may tear or re-load a
   * plain access, and KCSAN cannot tell a deliberate hint from a bug. vmsim's
   * detector reports it on 4.19 and 5.10: "data-race in
   * purge_fragmented_blocks / vb_alloc" (or vb_free).
   *
   * Upstream: 7f48121e9fa8 ("mm/vmalloc: add missing READ/WRITE_ONCE()
   * annotations", v6.5, Thomas Gleixner's vmap_block series): the unlocked
   * test reads both counts with READ_ONCE and every update of them under
   * vb->lock is a WRITE_ONCE. v6.12 has it; the backport gives 4.19 and 5.10
   * the same markings.
   */
  "vb-counters-read-once": {
    pair: "purge_fragmented_blocks / vb_alloc",
    kernels: ["4.19", "5.10"],
    upstream: '7f48121e9fa8 "mm/vmalloc: add missing READ/WRITE_ONCE() annotations" (v6.5)',
    summary: "vb->free and vb->dirty read with READ_ONCE by purge_fragmented_blocks, written with WRITE_ONCE",
  },
} as const satisfies Record<string, KnownRace>;

/** The name of a known race. */
export type BackportName = keyof typeof KNOWN_RACES;

/** Every known race, in registry order. */
export const BACKPORT_NAMES = Object.keys(KNOWN_RACES) as BackportName[];

/** Is `s` the name of a known race? */
export function isBackportName(s: string): s is BackportName {
  return Object.hasOwn(KNOWN_RACES, s);
}
