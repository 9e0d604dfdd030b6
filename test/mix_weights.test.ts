/**
 * `vmsim stress --mix` (src/workers/mix_weights.ts): operations of the mix
 * given a share of every CPU's operations. The value is checked and written
 * one way; a weighted run makes the weighted calls in about their share and
 * says so in its rerun command; a bad value is one line on stderr, exit 2.
 * Without --mix the mix draws what it always drew: the replay, exec and
 * explore tests (whose schedules and addresses are the mix's) guard that.
 */
import { describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { MIX_WEIGHTED_OPS, normalizeMixWeights, parseMixWeights } from "../src/workers/mix_weights.js";
import { runStress } from "../src/workers/stress.js";
import { vmsim } from "./helpers/vmsim.js";

describe("parseMixWeights", () => {
  it("reads op=P% pairs in any order into shares in MIX_WEIGHTED_OPS order; '' is none", () => {
    expect(MIX_WEIGHTED_OPS).toEqual(["vm_unmap_aliases", "purge_vmap_area_lazy", "vread"]);
    expect(parseMixWeights("")).toEqual([0, 0, 0]);
    expect(parseMixWeights("vread=10%, vm_unmap_aliases=2.5%")).toEqual([0.025, 0, 0.1]);
    expect(normalizeMixWeights(" vread=10% ,vm_unmap_aliases=5%")).toBe("vm_unmap_aliases=5%,vread=10%");
    expect(normalizeMixWeights("purge_vmap_area_lazy=0.5%")).toBe("purge_vmap_area_lazy=0.5%");
    expect(normalizeMixWeights("")).toBe("");
  });

  it.each([
    ["vread", 'expected op=P% (e.g. vm_unmap_aliases=5%), got "vread"'],
    ["vread=0.1", 'expected op=P% (e.g. vm_unmap_aliases=5%), got "vread=0.1"'],
    ["vmalloc=5%", "vmalloc is not one of vm_unmap_aliases, purge_vmap_area_lazy, vread"],
    ["vread=5%,vread=1%", "vread is given twice"],
    ["vread=0%", "vread=0% is not a share in (0, 90%]"],
    ["vread=91%", "vread=91% is not a share in (0, 90%]"],
    ["vread=50%,vm_unmap_aliases=45%", "the shares add up to 95%, more than 90%"],
  ])("refuses %j: %s", (spec, message) => {
    expect(() => parseMixWeights(spec)).toThrow(new RangeError(`--mix: ${message}`));
  });
});

describe("vmsim stress --mix", () => {
  it("gives the weighted operations about their share, and its rerun command keeps the flag", async () => {
    const ops = 4000;
    const config = makeConfig({ cpus: 2, seed: 3, irqRate: 0.001 });
    const r = await runStress(config, { ops, mix: "vread=10%,vm_unmap_aliases=5%" });
    expect(r.report).toEqual([]);
    expect(r.options.mix).toBe("vm_unmap_aliases=5%,vread=10%");
    expect(r.rerun).toBe("vmsim stress --seed 3 --ops 4000 --mix vm_unmap_aliases=5%,vread=10%");
    // 5 % of 4,000 is 200 (binomial: σ ≈ 14); the plain mix calls it 0.1 % of the time.
    expect(r.apis.vm_unmap_aliases).toBeGreaterThan(120);
    expect(r.apis.vm_unmap_aliases).toBeLessThan(300);
    const plain = await runStress(config, { ops });
    expect(plain.options.mix).toBe("");
    expect(plain.rerun).toBe("vmsim stress --seed 3 --ops 4000");
    expect(plain.apis.vm_unmap_aliases).toBeLessThan(30);
    expect(r.apis.vread).toBeGreaterThan(plain.apis.vread! + 150);
  }, 120_000);

  it.each([
    ["vread=95%", "argument 'vread=95%' is invalid. vread=95% is not a share in (0, 90%]."],
    ["x=1%", "x is not one of vm_unmap_aliases, purge_vmap_area_lazy, vread."],
  ])("--mix %s: one line on stderr, exit 2", async (spec, message) => {
    const r = await vmsim("stress", "--mix", spec, "--ops", "10");
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^vmsim: error: /);
    expect(r.stderr).toContain(message);
  });
});
