/**
 * Test records without the buddy allocator: boots a small one-CPU machine and
 * bump-allocates from the last `pages` page frames, away from boot's pages.
 */
import { PAGE_SIZE, makeConfig } from "../../src/shared/config.js";
import { U8, theArena } from "../../src/shared/arena.js";
import { start_kernel } from "../../src/workers/boot.js";

export interface RecordArea {
  /** An 8-byte-aligned, zeroed record of `size` bytes. */
  alloc(size: number): number;
  /** Zeroes everything handed out and starts over. */
  reset(): void;
}

export function bootWithRecordArea(pages: number): RecordArea {
  start_kernel(makeConfig({ cpus: 1, memory: 8 * 1024 * 1024 }));
  const a = theArena();
  const end = a.pagedataBase + a.nrPages * PAGE_SIZE;
  const base = end - pages * PAGE_SIZE;
  let brk = base;
  return {
    alloc(size) {
      const p = brk;
      brk += (size + 7) & ~7;
      if (brk > end) throw new Error("test record area exhausted");
      return p;
    },
    reset() {
      U8.fill(0, base, brk);
      brk = base;
    },
  };
}
