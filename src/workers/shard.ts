/**
 * The split every `--shard i/n` uses (stress, explore, test, bench): item k
 * (0-based) belongs to shard (k mod n) + 1, so shards 1/n … n/n are disjoint
 * and together hold every item. A shard of a shard (`--jobs` inside
 * `--shard`) splits the shard's own items the same way. The merges read the
 * shards back with the checks below.
 */

/** Shard `index` (1-based) of `count`. */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** The items of `shard` (all of them without one): item k (0-based) belongs to shard (k mod n) + 1. */
export function shardItems<T>(items: readonly T[], shard: Shard | null): T[] {
  return shard === null ? [...items] : items.filter((_, k) => k % shard.count === shard.index - 1);
}

/** The items of a shard of a shard …: {@link shardItems} applied in turn, outermost first. */
export function nestedShardItems<T>(items: readonly T[], part: readonly Shard[]): T[] {
  return part.reduce<T[]>((xs, s) => shardItems(xs, s), [...items]);
}

/**
 * The numbers 0, 1, 2 … `last` (null: without end) of a nested shard, in
 * order. Blocks of ∏ counts numbers split alike (each block starts at a
 * multiple of every count), so a stream without end is split as its prefixes are.
 */
export function* shardNumbers(part: readonly Shard[], last: number | null): Generator<number> {
  const block = part.reduce((a, s) => a * s.count, 1);
  for (let from = 0; last === null || from <= last; from += block) {
    const n = last === null ? block : Math.min(block, last - from + 1);
    yield* nestedShardItems(
      Array.from({ length: n }, (_, k) => from + k),
      part,
    );
  }
}

/** Whether a nested shard holds item 0 (the first of every split): every index is 1. */
export function holdsFirst(part: readonly Shard[]): boolean {
  return part.every((s) => s.index === 1);
}

/** Whether `x`, read from a results file, is a shard (i/n with 1 ≤ i ≤ n) or null (a part that is not one). */
export function isShardOrNull(x: unknown): x is Shard | null {
  if (x === null) return true;
  if (typeof x !== "object") return false;
  const { index, count } = x as Record<string, unknown>;
  return (
    Number.isInteger(index) &&
    Number.isInteger(count) &&
    (index as number) >= 1 &&
    (index as number) <= (count as number)
  );
}

/**
 * "i/n of SPACE" for each shard of a sharded space that no part holds; `spaceOf` names a part's space ("1-100",
 * "--cpus 1,2,4"), and a part without a shard holds its whole space.
 */
export function missingShards<P extends { readonly shard: Shard | null }>(
  parts: readonly P[],
  spaceOf: (p: P) => string,
): string[] {
  const whole = new Set(parts.filter((p) => p.shard === null).map(spaceOf));
  const held = new Map<string, Set<number>>();
  for (const p of parts) {
    if (p.shard === null || whole.has(spaceOf(p))) continue;
    const key = `${p.shard.count} of ${spaceOf(p)}`;
    held.set(key, (held.get(key) ?? new Set()).add(p.shard.index));
  }
  const out: string[] = [];
  for (const [key, got] of held) {
    const count = Number(key.split(" ")[0]);
    for (let i = 1; i <= count; i++) if (!got.has(i)) out.push(`${i}/${key}`);
  }
  return out;
}
