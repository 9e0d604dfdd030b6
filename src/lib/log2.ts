/**
 * ALIGN (include/linux/align.h), PAGE_ALIGN (include/linux/mm.h),
 * is_power_of_2 and roundup_pow_of_two (include/linux/log2.h) for kernel
 * addresses held as numbers: exact below 2^53, where 32-bit bit operators
 * would wrap, so they divide instead of masking.
 */
import { PAGE_SIZE } from "../shared/config.js";

/** ALIGN(x, a) for a power of two `a`. */
export function ALIGN(x: number, a: number): number {
  return a === 1 ? x : Math.ceil(x / a) * a;
}

/** PAGE_ALIGN(x): x rounded up to a page boundary. */
export function PAGE_ALIGN(x: number): number {
  return Math.ceil(x / PAGE_SIZE) * PAGE_SIZE;
}

export function is_power_of_2(n: number): boolean {
  return n > 0 && (n < 2 ** 30 ? (n & (n - 1)) === 0 : Number.isInteger(Math.log2(n)));
}

export function roundup_pow_of_two(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}
