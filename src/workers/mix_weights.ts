/**
 * `vmsim stress --mix`: operations of the vmalloc mix given a share of every
 * CPU's operations of their own, drawn before the mix's own choice — so that
 * an operation the mix makes rarely (vm_unmap_aliases is 0.1 % of it) comes
 * often enough for a sampling detector (`--kcsan`) or a slow symptom to meet
 * it. Without `--mix` the mix draws exactly what it always drew.
 *
 *   --mix vm_unmap_aliases=5%,vread=10%
 */

/** The operations `--mix` can weight (names as the mix counts them, src/workers/workloads/vmalloc_mix.ts). */
export const MIX_WEIGHTED_OPS = ["vm_unmap_aliases", "purge_vmap_area_lazy", "vread"] as const;
export type MixWeightedOp = (typeof MIX_WEIGHTED_OPS)[number];

/** The weighted operations together take at most this share: the mix keeps the rest. */
export const MIX_WEIGHTS_MAX = 0.9;

/** No weights: the mix as it always was. */
export const NO_MIX_WEIGHTS = "";

/**
 * Parses a `--mix` value ("op=P%,…", P a percentage) into each weighted
 * operation's share, in MIX_WEIGHTED_OPS order; "" gives all zeros. Throws
 * RangeError saying what is wrong (an unknown operation, a repeated one, a
 * share outside (0, 90 %], a total above 90 %).
 */
export function parseMixWeights(spec: string): number[] {
  const shares = MIX_WEIGHTED_OPS.map(() => 0);
  if (spec.trim() === "") return shares;
  for (const part of spec.split(",")) {
    const m = /^\s*([a-z_]+)\s*=\s*(\d+(?:\.\d+)?)%\s*$/.exec(part);
    if (m === null) throw new RangeError(`--mix: expected op=P% (e.g. vm_unmap_aliases=5%), got "${part}"`);
    const i = MIX_WEIGHTED_OPS.indexOf(m[1] as MixWeightedOp);
    if (i < 0) throw new RangeError(`--mix: ${m[1]} is not one of ${MIX_WEIGHTED_OPS.join(", ")}`);
    if (shares[i] !== 0) throw new RangeError(`--mix: ${m[1]} is given twice`);
    const share = Number(m[2]) / 100;
    if (!(share > 0 && share <= MIX_WEIGHTS_MAX))
      throw new RangeError(`--mix: ${m[1]}=${m[2]}% is not a share in (0, ${MIX_WEIGHTS_MAX * 100}%]`);
    shares[i] = share;
  }
  const total = shares.reduce((a, b) => a + b, 0);
  if (total > MIX_WEIGHTS_MAX + 1e-12)
    throw new RangeError(
      `--mix: the shares add up to ${+(total * 100).toFixed(6)}%, more than ${MIX_WEIGHTS_MAX * 100}%`,
    );
  return shares;
}

/** The canonical spelling of a `--mix` value (operations in MIX_WEIGHTED_OPS order); throws as parseMixWeights. */
export function normalizeMixWeights(spec: string): string {
  const shares = parseMixWeights(spec);
  return MIX_WEIGHTED_OPS.flatMap((op, i) =>
    shares[i] === 0 ? [] : [`${op}=${+(shares[i]! * 100).toFixed(6)}%`],
  ).join(",");
}
