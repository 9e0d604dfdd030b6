/**
 * Bitmaps in the arena (include/linux/bitmap.h, bitops.h and lib/find_bit.c,
 * v4.19): the non-atomic operations, for bitmaps whose lock the caller holds.
 *
 * A bitmap is an array of 32-bit words at an arena address: bit `n` is bit
 * `n & 31` of word `n >> 5` (the kernel's layout with BITS_PER_LONG = 32).
 * The searches go a word at a time, so a full or empty word costs one load.
 */
import { I32 } from "../shared/arena.js";

/** BITS_TO_LONGS (v4.19): the 32-bit words a bitmap of `nbits` bits takes. */
export function BITS_TO_LONGS(nbits: number): number {
  return (nbits + 31) >>> 5;
}

/** Index of the lowest set bit of a nonzero word (__ffs). */
function __ffs(w: number): number {
  return 31 - Math.clz32(w & -w);
}

/** __set_bit (v4.19): non-atomic. */
export function __set_bit(nr: number, addr: number): void {
  const i = (addr >> 2) + (nr >>> 5);
  I32[i] = I32[i]! | (1 << (nr & 31));
}

/** The mask of bits `lo..hi-1` of one word (0 <= lo < hi <= 32). */
function rangeMask(lo: number, hi: number): number {
  return (hi === 32 ? -1 : (1 << hi) - 1) & ~((1 << lo) - 1);
}

/** bitmap_set (v4.19): set bits `start..start+nbits-1`. */
export function bitmap_set(addr: number, start: number, nbits: number): void {
  const base = addr >> 2;
  for (let n = start, end = start + nbits; n < end; ) {
    const lo = n & 31;
    const hi = Math.min(32, lo + end - n);
    const i = base + (n >>> 5);
    I32[i] = I32[i]! | rangeMask(lo, hi);
    n += hi - lo;
  }
}

/** bitmap_clear (v4.19): clear bits `start..start+nbits-1`. */
export function bitmap_clear(addr: number, start: number, nbits: number): void {
  const base = addr >> 2;
  for (let n = start, end = start + nbits; n < end; ) {
    const lo = n & 31;
    const hi = Math.min(32, lo + end - n);
    const i = base + (n >>> 5);
    I32[i] = I32[i]! & ~rangeMask(lo, hi);
    n += hi - lo;
  }
}

/** _find_next_bit (lib/find_bit.c, v4.19): the first bit at or after `offset` equal to `want`, or `size`. */
function _find_next_bit(addr: number, size: number, offset: number, invert: number): number {
  if (offset >= size) return size;
  const base = addr >> 2;
  let i = offset >>> 5;
  const last = (size - 1) >>> 5;
  let w = (I32[base + i]! ^ invert) & ~((1 << (offset & 31)) - 1);
  for (;;) {
    if (w !== 0) return Math.min((i << 5) + __ffs(w), size);
    if (++i > last) return size;
    w = I32[base + i]! ^ invert;
  }
}

/** find_next_bit (v4.19): the first set bit at or after `offset`, or `size` when none. */
export function find_next_bit(addr: number, size: number, offset: number): number {
  return _find_next_bit(addr, size, offset, 0);
}

/** find_next_zero_bit (v4.19): the first clear bit at or after `offset`, or `size` when none. */
export function find_next_zero_bit(addr: number, size: number, offset: number): number {
  return _find_next_bit(addr, size, offset, -1);
}

/** find_last_bit (v4.19): the last set bit below `size`, or `size` when none. */
export function find_last_bit(addr: number, size: number): number {
  if (size === 0) return 0;
  const base = addr >> 2;
  let i = (size - 1) >>> 5;
  let w = I32[base + i]! & rangeMask(0, size - (i << 5));
  for (;;) {
    if (w !== 0) return (i << 5) + 31 - Math.clz32(w);
    if (i === 0) return size;
    w = I32[base + --i]!;
  }
}
