/**
 * memset (lib/string.c, v4.19) on the arena: the byte stores kzalloc, the
 * slab poison and __GFP_ZERO make. A typed array's fill() is a runtime call
 * that costs twice an unrolled store loop below 256 bytes, so short ranges
 * (slab objects) are filled with word stores and long ones (pages) by fill()
 * of whole words, which beats a byte fill() threefold on a page.
 */
import { I32, U8 } from "../shared/arena.js";

/** Below this many bytes the store loop beats fill(). */
const FILL_MIN = 256;

/** memset(s, c, count) (v4.19): `count` bytes at arena address `s` set to the byte `c`. */
export function memset(s: number, c: number, count: number): void {
  const end = s + count;
  let p = s;
  while (p < end && (p & 3) !== 0) U8[p++] = c;
  const wordEnd = end & ~3;
  if (p < wordEnd) {
    const word = Math.imul(c & 0xff, 0x01010101);
    if (wordEnd - p >= FILL_MIN) {
      I32.fill(word, p >> 2, wordEnd >> 2);
    } else {
      // A local view and four stores a turn: the loop then keeps the array's base in a register.
      const w = I32;
      let i = p >> 2;
      const e = wordEnd >> 2;
      for (; i + 4 <= e; i += 4) {
        w[i] = word;
        w[i + 1] = word;
        w[i + 2] = word;
        w[i + 3] = word;
      }
      for (; i < e; i++) w[i] = word;
    }
    p = wordEnd;
  }
  while (p < end) U8[p++] = c;
}
