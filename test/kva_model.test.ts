/**
 * `vmsim exec` on one CPU against an independent reference model of each generation's address
 * arithmetic (test/helpers/kva_model.ts): fixed scripts whose answers were worked out by hand from
 * each version's mm/vmalloc.c, then seeded random scripts where every returned address must be the
 * model's.
 */
import { Readable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { execScript } from "../src/cli/exec.js";
import { type KernelVersion, makeConfig } from "../src/shared/config.js";
import { LAYOUT, type ModelKernel, type ModelOp, PAGE_SIZE, earlyAreas, predict } from "./helpers/kva_model.js";

const KERNELS: readonly ModelKernel[] = ["4.19", "5.10", "6.12"];

const MiB = 1024 * 1024;

/** Runs `ops` after a first vmallocinfo (the boot areas); the results of `ops`, in order. */
async function exec(
  kernel: ModelKernel,
  ops: readonly ModelOp[],
  cpus = 1,
): Promise<{
  early: [bigint, bigint][];
  results: Record<string, unknown>[];
}> {
  const lines = [{ op: "vmallocinfo" }, ...ops].map((o) => `${JSON.stringify(o)}\n`);
  const out: string[] = [];
  const config = makeConfig({ kernel: kernel as KernelVersion, cpus, memory: 256 * MiB, workqueue: "explicit" });
  const code = await execScript(
    config,
    Readable.from(lines),
    (l) => out.push(l),
    undefined,
    () => {},
  );
  expect(code).toBe(0);
  const [info, ...results] = out.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { early: earlyAreas(info!["lines"] as string[]), results };
}

/** The address each op returned, undefined for ops that return none (the model's shape). */
function addrs(results: readonly Record<string, unknown>[]): (string | null | undefined)[] {
  return results.map((r) => ("addr" in r ? (r["addr"] as string | null) : undefined));
}

const hex = (x: bigint): string => `0x${x.toString(16).padStart(16, "0")}`;

describe.each(KERNELS)("the reference model against vmsim exec --kernel %s, hand-checked scripts", (kernel) => {
  const vs = LAYOUT[kernel].start;

  it("boots with the kernel image's five segments where that version's map_kernel puts them", async () => {
    const { early } = await exec(kernel, []);
    // v4.19 maps from _text = KIMAGE_VADDR + TEXT_OFFSET (512 KiB); from v5.8 there is no TEXT_OFFSET: v5.10
    // maps from _text = KIMAGE_VADDR = VMALLOC_START, and from v5.11 (e2a073dde921, "arm64: omit [_text,
    // _stext) from permanent kernel mapping") from _stext, one 64 KiB SEGMENT_ALIGN above it.
    expect(early).toHaveLength(5);
    expect(early[0]![0]).toBe(vs + (kernel === "4.19" ? 0x80000n : kernel === "5.10" ? 0n : 0x10000n));
    for (let i = 1; i < 5; i++) expect(early[i]![0]).toBe(early[i - 1]![1]);
  });

  it("puts guarded areas lowest first and keeps a lazily freed area until the purge", async () => {
    const ops: ModelOp[] = [
      { op: "vmalloc", size: 4096, as: "a" },
      { op: "vmalloc", size: 8192, as: "b" },
      { op: "vfree", ref: "a" },
      { op: "vmalloc", size: 4096, as: "c" },
      { op: "purge" },
      { op: "vmalloc", size: 1, as: "d" },
    ];
    const { early, results } = await exec(kernel, ops);
    // a: 1 page + guard at the lowest free address (VMALLOC_START; v5.10: _end, the image starts the area);
    // b: 2 + guard after it; c: a is lazy, so above b; d: a's hole.
    const lo = kernel === "5.10" ? early[4]![1] : vs;
    const want = [hex(lo), hex(lo + 0x2000n), undefined, hex(lo + 0x5000n), undefined, hex(lo)];
    expect(addrs(results)).toEqual(want);
    expect(predict(kernel, 1, early, ops)).toEqual(want);
  });

  it("places vm_map_ram in a 4 MiB block above the image, each mapping rounded up to a power of two", async () => {
    const ops: ModelOp[] = [
      { op: "vm_map_ram", pages: 1, as: "r1" },
      { op: "vm_map_ram", pages: 3, as: "r3" },
      { op: "vm_map_ram", pages: 1, as: "r1b" },
    ];
    const { early, results } = await exec(kernel, ops);
    const block = (early[4]![1] + 0x3fffffn) & ~0x3fffffn;
    const want = [hex(block), hex(block + 0x1000n), hex(block + 0x5000n)];
    expect(addrs(results)).toEqual(want);
    expect(predict(kernel, 1, early, ops)).toEqual(want);
  });

  it("purges past lazy_max_pages (8192 pages on one CPU): at once before v6.12, at flush_work from v6.12", async () => {
    // 2 MiB areas: 512 pages + guard, page array in kmalloc. 16 lazy ones are 8208 pages > 8192.
    const ops: ModelOp[] = [];
    for (let i = 0; i < 17; i++) ops.push({ op: "vmalloc", size: 2 * MiB, as: `a${i}` });
    for (let i = 0; i < 15; i++) ops.push({ op: "vfree", ref: `a${i}` });
    ops.push({ op: "vmalloc", size: 2 * MiB, as: "x1" }, { op: "vfree", ref: "a15" });
    ops.push({ op: "vmalloc", size: 2 * MiB, as: "x2" }, { op: "flush_work" });
    ops.push({ op: "vmalloc", size: 2 * MiB, as: "x3" });
    const { early, results } = await exec(kernel, ops);
    const got = addrs(results);
    const a0 = got[0] as string;
    const a16 = BigInt(got[16] as string);
    const step = 2n * BigInt(MiB) + 0x1000n;
    expect(got[32]).toBe(hex(a16 + step)); // x1: a0..a14 are still lazy
    if (kernel === "6.12") {
      expect(got[34]).toBe(hex(a16 + 2n * step)); // x2: the drain is only queued
      expect(got[36]).toBe(a0); // x3: flush_work ran drain_vmap_work
    } else {
      expect(got[34]).toBe(a0); // x2: the 16th lazy free purged synchronously
      expect(got[36]).toBe(hex(BigInt(a0) + step));
    }
    expect(predict(kernel, 1, early, ops)).toEqual(got);
  });
});

/** Random op scripts: vmalloc 1 B - 4 MiB (some aligned), vfree (some from irq), vmap, vm_map_ram, purge, flush_work. */
function scriptArb(): fc.Arbitrary<ModelOp[]> {
  const step = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant("vmalloc" as const),
        size: fc.oneof(fc.integer({ min: 1, max: 64 * 1024 }), fc.integer({ min: 1, max: 4 * MiB })),
        alignLog: fc.option(fc.integer({ min: 0, max: 23 }), { freq: 4 }),
      }),
    },
    { weight: 5, arbitrary: fc.record({ kind: fc.constant("free" as const), pick: fc.nat(), irq: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("vmap" as const), pages: fc.integer({ min: 1, max: 96 }) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("vm_map_ram" as const),
        pages: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 65, max: 160 })),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: "purge" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "flush_work" as const }) },
  );
  return fc.array(step, { minLength: 20, maxLength: 120 }).map((steps) => {
    // Live mappings, so that frees name what exists and the machine's memory is never exhausted.
    const live: { label: string; kind: "vmalloc" | "vmap" | "vm_map_ram"; pages: number }[] = [];
    let livePages = 0;
    const ops: ModelOp[] = [];
    let n = 0;
    for (const s of steps) {
      if (s.kind === "free") {
        if (live.length === 0) continue;
        const [m] = live.splice(s.pick % live.length, 1);
        livePages -= m!.pages;
        if (m!.kind === "vmalloc")
          ops.push(s.irq ? { op: "vfree", ref: m!.label, irq: true } : { op: "vfree", ref: m!.label });
        else if (m!.kind === "vmap") ops.push({ op: "vunmap", ref: m!.label });
        else ops.push({ op: "vm_unmap_ram", ref: m!.label, pages: m!.pages });
        continue;
      }
      if (s.kind === "purge" || s.kind === "flush_work") {
        ops.push({ op: s.kind });
        continue;
      }
      const pages = s.kind === "vmalloc" ? Math.ceil(s.size / 4096) : s.pages;
      if (livePages + pages > 24 * 256) continue; // at most 24 MiB mapped at once
      const label = `m${n++}`;
      livePages += pages;
      live.push({ label, kind: s.kind, pages });
      if (s.kind === "vmalloc")
        ops.push(
          s.alignLog === null
            ? { op: "vmalloc", size: s.size, as: label }
            : { op: "vmalloc", size: s.size, align: 2 ** s.alignLog, as: label },
        );
      else ops.push({ op: s.kind, pages: s.pages, as: label });
    }
    return ops;
  });
}

describe.each(KERNELS)("the reference model against vmsim exec --kernel %s, random scripts", (kernel) => {
  it("returns the model's address for every allocation", { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(scriptArb(), async (ops) => {
        const { early, results } = await exec(kernel, ops);
        expect(addrs(results)).toEqual(predict(kernel, 1, early, ops));
      }),
      { seed: 0x5eed10, numRuns: 25, endOnFailure: true },
    );
  });
});

/** Boot areas like vmsim's arm64 image: five adjacent segments from `first`, 17.8 MiB in all. */
function imageAt(first: bigint): [bigint, bigint][] {
  const sizes = [0x990000n, 0x380000n, 0xb0000n, 0xd0000n, 0x113000n];
  let at = first;
  return sizes.map((s) => {
    const seg: [bigint, bigint] = [at, at + s];
    at += s;
    return seg;
  });
}

describe.each(KERNELS)("the reference model of %s on its own, random scripts", (kernel) => {
  it("returns aligned addresses inside VMALLOC_START..VMALLOC_END that overlap no live mapping or boot area", () => {
    const { start, end } = LAYOUT[kernel];
    const early = imageAt(start + (kernel === "4.19" ? 0x80000n : 0x10000n));
    fc.assert(
      fc.property(scriptArb(), fc.integer({ min: 1, max: 3 }), (ops, cpus) => {
        const spread = ops.map((op, i) => ({ ...op, cpu: i % cpus }));
        const got = predict(kernel, cpus, early, spread);
        const live = new Map<string, [bigint, bigint]>();
        const deferred: string[] = [];
        spread.forEach((op, i) => {
          const addr = got[i];
          if (op.op === "vfree" && op.irq) deferred.push(op.ref);
          else if (op.op === "vfree" || op.op === "vunmap" || op.op === "vm_unmap_ram") live.delete(op.ref);
          else if (op.op === "flush_work") for (const r of deferred.splice(0)) live.delete(r);
          if (typeof addr !== "string" || !("as" in op) || op.as === undefined) return;
          const a = BigInt(addr);
          const pages = "pages" in op ? op.pages : Math.ceil(op.size / 4096);
          const span: [bigint, bigint] = [a, a + BigInt(pages) * PAGE_SIZE];
          const align = "align" in op && op.align !== undefined ? BigInt(op.align) : 1n;
          expect(a % (align > PAGE_SIZE ? align : PAGE_SIZE)).toBe(0n);
          expect(a >= start && span[1] <= end).toBe(true);
          for (const [s, e] of [...live.values(), ...early]) expect(span[1] <= s || span[0] >= e).toBe(true);
          live.set(op.as, span);
        });
      }),
      { seed: 0x5eed10, numRuns: 40 },
    );
  });
});
