/**
 * The deterministic scheduler's CPU sets: a struct cpumask of 64 bits (MAX_CPUS),
 * held as two 32-bit words — CPUs 0–31 in `lo`, 32–63 in `hi` — because JS bit
 * operations stop at 32. A set is mutable and reused, so a decision allocates
 * nothing; every query walks the CPUs in ascending order, so a set of CPUs
 * 0–31 answers exactly as the one 32-bit mask it replaced did.
 */

/** CPUs a mask holds. */
export const CPUMASK_BITS = 64;

/** Lowest set bit of a nonzero word (__ffs). */
const ffs = (w: number) => 31 - Math.clz32(w & -w);

/** Set bits of a word (hweight32). */
function hweight32(w: number): number {
  let n = 0;
  for (let m = w; m !== 0; m &= m - 1) n++;
  return n;
}

/** The bits of a word above bit `b` (b = 31: none; `2 << 31` is 0 in JS, so the mask is 0). */
const above = (b: number) => ~((2 << b) - 1);

/** A set of CPUs 0..63 (harness data of one thread; the arena holds masks as two words). */
export class Cpumask {
  lo = 0;
  hi = 0;

  /** Sets the two words (either may be signed or unsigned: only the bits count). */
  assign(lo: number, hi: number): this {
    this.lo = lo | 0;
    this.hi = hi | 0;
    return this;
  }

  copy(from: Cpumask): this {
    return this.assign(from.lo, from.hi);
  }

  set(cpu: number): void {
    if (cpu < 32) this.lo |= 1 << cpu;
    else this.hi |= 1 << (cpu - 32);
  }

  /** Removes `cpu`; returns this set. */
  clear(cpu: number): this {
    if (cpu < 32) this.lo &= ~(1 << cpu);
    else this.hi &= ~(1 << (cpu - 32));
    return this;
  }

  has(cpu: number): boolean {
    return cpu < 32 ? ((this.lo >>> cpu) & 1) !== 0 : ((this.hi >>> (cpu - 32)) & 1) !== 0;
  }

  empty(): boolean {
    return (this.lo | this.hi) === 0;
  }

  /** Same CPUs as the two words (signed or unsigned). */
  equals(lo: number, hi: number): boolean {
    return ((this.lo ^ lo) | (this.hi ^ hi)) === 0;
  }

  /** cpumask_weight. */
  weight(): number {
    return hweight32(this.lo) + hweight32(this.hi);
  }

  /** cpumask_first: the lowest CPU, -1 when empty. */
  first(): number {
    return this.lo !== 0 ? ffs(this.lo) : this.hi !== 0 ? 32 + ffs(this.hi) : -1;
  }

  /** cpumask_next: the lowest CPU above `cpu`, -1 when none. */
  next(cpu: number): number {
    if (cpu < 32) {
      const m = this.lo & above(cpu);
      if (m !== 0) return ffs(m);
      return this.hi !== 0 ? 32 + ffs(this.hi) : -1;
    }
    const m = this.hi & above(cpu - 32);
    return m !== 0 ? 32 + ffs(m) : -1;
  }

  /** The k-th lowest CPU (k from 0; k < weight()). */
  nth(k: number): number {
    const inLo = hweight32(this.lo);
    let m = k < inLo ? this.lo : this.hi;
    for (let i = k < inLo ? k : k - inLo; i > 0; i--) m &= m - 1;
    return (k < inLo ? 0 : 32) + ffs(m);
  }

  /** "{0,3,40}". */
  text(): string {
    const cpus: number[] = [];
    for (let cpu = this.first(); cpu >= 0; cpu = this.next(cpu)) cpus.push(cpu);
    return `{${cpus.join(",")}}`;
  }
}
