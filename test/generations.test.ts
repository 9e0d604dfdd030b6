/**
 * The --kernel plumbing: the vmalloc API binds the selected generation, the
 * layouts follow each version's headers, the kernel is refused where it is not
 * built in or not supported (one line, exit 2), and it is recorded — SUMMARY
 * lines, replay files (an old file without it is 4.19's), campaign merges.
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KERNEL_VERSIONS, type KernelVersion, makeConfig } from "../src/shared/config.js";
import { KERNEL_LAYOUTS, LAYOUT_NAMES, formatKaddr } from "../src/shared/layouts.js";
import { I32, U8, createArena, theArena } from "../src/shared/arena.js";
import { lockdepAttach } from "../src/locks/lockdep.js";
import { GFP_KERNEL } from "../src/mm/gfp.js";
import { alloc_page, mem_init, page_address, page_to_pfn } from "../src/mm/page_alloc.js";
import { kmem_cache_init } from "../src/mm/slab.js";
import {
  PAGE_KERNEL,
  kernel_pte_lookup,
  paging_init,
  pte_pfn,
  vmap_page_range,
  vunmap_page_range,
} from "../src/mm/pgtable.js";
import { mmuWrite } from "../src/mm/mmu.js";
import { setCurrentCpu } from "../src/shared/smp.js";
import { start_kernel } from "../src/workers/boot.js";
import * as api from "../src/mm/vmalloc.js";
import { vmalloc_generation as V4_19 } from "../src/mm/v4.19/vmalloc.js";
import { checkScenarioKernel, findScenario } from "../src/explore/scenario.js";
import "../src/explore/catalog.js";
import { type CampaignFile, mergeCampaigns } from "../src/cli/campaign.js";
import { checkMapKernel } from "../src/cli/map.js";
import { vmsim } from "./helpers/vmsim.js";

const MiB = 1024 * 1024;

describe("the generation-neutral vmalloc API", () => {
  it("every version --kernel knows has its generation; another is a RangeError naming them", () => {
    for (const v of KERNEL_VERSIONS) expect(api.vmalloc_generation_of(v).version).toBe(v);
    expect(() => api.vmalloc_generation_of("2.6")).toThrow(
      'no vmalloc generation for kernel "2.6"; available: 4.19, 5.10, 6.12',
    );
  });

  it("a thread that takes a CPU of a machine binds every export to that machine's generation", () => {
    for (const version of KERNEL_VERSIONS) {
      start_kernel(makeConfig({ kernel: version, cpus: 2, memory: 16 * MiB }));
      const g = api.vmalloc_generation_of(version);
      expect(api.vmalloc_version).toBe(version);
      expect(api.vmalloc).toBe(g.vmalloc);
      expect(api.vfree).toBe(g.vfree);
      // vm_map_ram may be an adapter a later generation's getter builds (5.8 dropped its prot): bound, not compared.
      expect(api.vm_unmap_ram).toBe(g.vm_unmap_ram);
      expect(api.purge_vmap_area_lazy).toBe(g.purge_vmap_area_lazy);
      expect(api.rcu_vmap_area_list).toBe(g.rcu_vmap_area_list);
      const layout = KERNEL_LAYOUTS[version]["arm64-va48"];
      expect([api.VMALLOC_START, api.VMALLOC_END]).toEqual([layout.vmallocStart, layout.vmallocEnd]);
      // Taking another CPU keeps the binding; the first allocation lands at the version's VMALLOC_START or above.
      setCurrentCpu(1);
      expect(api.vmalloc).toBe(g.vmalloc);
      const p = api.vmalloc(8192);
      expect(p).toBeGreaterThanOrEqual(layout.vmallocStart);
      expect(api.find_vm_area(p)).not.toBe(0);
      api.vfree(p);
    }
  });

  it("generation 1's object is v4.19's own functions, vm_map_ram from its vmap_block.ts", () => {
    expect(V4_19.version).toBe("4.19");
    expect(api.vmalloc_generation_of("4.19")).toBe(V4_19);
    start_kernel(makeConfig({ cpus: 1, memory: 16 * MiB }));
    expect(theArena().config.kernel).toBe("4.19");
    expect(api.rcu_vmap_area_list?.head).toBeGreaterThan(0);
  });
});

describe("address layouts per kernel version", () => {
  const hex = (v: KernelVersion, name: (typeof LAYOUT_NAMES)[number], k: "vmallocStart" | "vmallocEnd") =>
    formatKaddr(KERNEL_LAYOUTS[v][name], KERNEL_LAYOUTS[v][name][k]);

  it("v5.10's arm64 vmalloc areas are v5.10.7's memory.h + pgtable.h numbers", () => {
    expect([hex("5.10", "arm64-va48", "vmallocStart"), hex("5.10", "arm64-va48", "vmallocEnd")]).toEqual([
      "0xffff800010000000",
      "0xfffffdffbfff0000",
    ]);
    expect([hex("5.10", "arm64-va39", "vmallocStart"), hex("5.10", "arm64-va39", "vmallocEnd")]).toEqual([
      "0xffffffc010000000",
      "0xfffffffebfff0000",
    ]);
  });

  it("v6.12's: modules (2G) at PAGE_END, vmalloc to VMEMMAP_START - 256M below VMEMMAP_END = -1G", () => {
    const l = KERNEL_LAYOUTS["6.12"]["arm64-va48"];
    expect(formatKaddr(l, l.modulesStart)).toBe("0xffff800000000000");
    expect(formatKaddr(l, l.modulesEnd)).toBe("0xffff800080000000");
    expect(hex("6.12", "arm64-va48", "vmallocStart")).toBe("0xffff800080000000");
    // VMEMMAP_SIZE = (2^47 >> 12) * 64 = 2 TiB; VMEMMAP_START = -1G - 2T = 0xfffffdffc0000000.
    expect(hex("6.12", "arm64-va48", "vmallocEnd")).toBe("0xfffffdffb0000000");
    expect([hex("6.12", "arm64-va39", "vmallocStart"), hex("6.12", "arm64-va39", "vmallocEnd")]).toEqual([
      "0xffffffc080000000",
      "0xfffffffeb0000000",
    ]);
  });

  it("from 5.10 the linear map is the bottom of the kernel half; v4.19's is the top; arm32 never changes", () => {
    for (const v of ["5.10", "6.12"] as const)
      for (const name of ["arm64-va48", "arm64-va39"] as const) {
        const l = KERNEL_LAYOUTS[v][name];
        expect(formatKaddr(l, l.pageOffset)).toBe(formatKaddr(l, 0));
        expect(l.modulesStart).toBe(l.pageOffset + 2 ** (l.vaBits - 1) + (v === "5.10" ? 128 * MiB : 0));
      }
    const old = KERNEL_LAYOUTS["4.19"]["arm64-va48"];
    expect(formatKaddr(old, old.pageOffset)).toBe("0xffff800000000000");
    const { kernel: _, ...arm32 } = KERNEL_LAYOUTS["4.19"].arm32;
    for (const v of KERNEL_VERSIONS)
      expect({ ...KERNEL_LAYOUTS[v].arm32, kernel: undefined }).toEqual({ ...arm32, kernel: undefined });
  });

  it("every version's layouts: page-aligned, modules below vmalloc, all inside the kernel half", () => {
    for (const name of LAYOUT_NAMES)
      for (const v of KERNEL_VERSIONS) {
        const l = KERNEL_LAYOUTS[v][name];
        expect(l.kernel).toBe(v);
        expect([l.vmallocStart % 4096, l.vmallocEnd % 4096]).toEqual([0, 0]);
        expect(l.modulesEnd).toBeLessThanOrEqual(l.vmallocStart);
        expect(l.vmallocStart).toBeLessThan(l.vmallocEnd);
        expect(l.vmallocEnd).toBeLessThanOrEqual(2 ** l.vaBits);
      }
  });

  it.each([
    "5.10",
    "6.12",
  ] as const)("%s: the page tables map, walk and unmap the top and bottom of its vmalloc area", (v) => {
    for (const layout of ["arm64-va48", "arm64-va39"] as const) {
      // The buddy, slab and page tables alone: they are shared by every generation.
      createArena(makeConfig({ kernel: v, cpus: 1, layout, memory: 16 * MiB }));
      setCurrentCpu(0);
      lockdepAttach();
      mem_init();
      kmem_cache_init();
      paging_init();
      const l = KERNEL_LAYOUTS[v][layout];
      const page = alloc_page(GFP_KERNEL);
      const arr = page_address(alloc_page(GFP_KERNEL));
      I32[arr >> 2] = page;
      for (const at of [l.vmallocStart, l.vmallocEnd - 4096]) {
        expect(vmap_page_range(at, at + 4096, PAGE_KERNEL, arr)).toBe(1);
        expect(pte_pfn(kernel_pte_lookup(at))).toBe(page_to_pfn(page));
        expect(mmuWrite(at + 8, Uint8Array.of(0x5a))).toBe(true);
        expect(U8[page_address(page) + 8]).toBe(0x5a);
        vunmap_page_range(at, at + 4096);
        expect(kernel_pte_lookup(at)).toBe(0);
      }
    }
  });
});

describe("--kernel on the command line", () => {
  it.each(KERNEL_VERSIONS)("vmsim info --kernel %s names the kernel first and prints its layout", async (v) => {
    const r = await vmsim("info", "--kernel", v);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toMatch(
      new RegExp(`^vmsim: kernel ${v.replace(".", "\\.")}, 2 CPUs, 64 MiB, layout arm64-va48,`),
    );
    const l = KERNEL_LAYOUTS[v]["arm64-va48"];
    expect(r.stdout).toContain(`VMALLOC_START  ${formatKaddr(l, l.vmallocStart)}`);
    expect(r.stdout).toContain(`VMALLOC_END    ${formatKaddr(l, l.vmallocEnd)}`);
    expect(r.stdout).toContain(`PAGE_OFFSET    ${formatKaddr(l, l.pageOffset)}`);
  });

  it("an unknown version, and exec's old --alloc: one line on stderr, exit 2", async () => {
    const bad = await vmsim("info", "--kernel", "3.10");
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain("unknown kernel; expected one of 4.19, 5.10, 6.12.");
    const alloc = await vmsim("exec", "--alloc", "legacy");
    expect(alloc.code).toBe(2);
    expect(alloc.stderr).toBe("vmsim: error: unknown option '--alloc'\n");
  });

  it("a catalog scenario runs on its generation only; the map draws generation 1 only", () => {
    const s = findScenario("catalog:vm_map_ram")!;
    expect(s.config.kernel).toBe("4.19");
    expect(() => checkScenarioKernel(s, "4.19")).not.toThrow();
    expect(() => checkScenarioKernel(s, "5.10")).toThrow(
      "scenario catalog:vm_map_ram runs on kernel 4.19 only, not 5.10",
    );
    expect(() => checkScenarioKernel(findScenario("stress")!, "6.12")).not.toThrow();
    expect(() => checkMapKernel("4.19")).not.toThrow();
    expect(() => checkMapKernel("6.12")).toThrow("the vmalloc map draws kernel 4.19 only, not 6.12");
  });

  it("exec --kernel 4.19 answers exactly what the default does", async () => {
    const script = join(mkdtempSync(join(tmpdir(), "vmsim-gen-")), "s.jsonl");
    writeFileSync(
      script,
      '{"op":"vmalloc","size":8192,"as":"a"}\n{"op":"vfree","ref":"a"}\n{"op":"vmalloc","size":4096}\n',
    );
    const plain = await vmsim("exec", "--cpus", "1", "--script", script);
    const named = await vmsim("exec", "--cpus", "1", "--kernel", "4.19", "--script", script);
    expect(plain.code).toBe(0);
    expect(named).toEqual(plain);
    expect(plain.stdout.split("\n")[0]).toContain('"addr":"0xffff000008000000"');
  });
});

describe("the kernel in replay files, SUMMARY lines and campaign files", () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "vmsim-gen-replay-"));
    const r = await vmsim("explore", "--scenario", "demo:abba", "--out", dir, "--json");
    expect(r.code).toBe(1);
    const summary = JSON.parse(
      r.stdout
        .trim()
        .split("\n")
        .at(-1)!
        .replace(/^SUMMARY /, ""),
    ) as Record<string, unknown>;
    expect(summary["kernel"]).toBe("4.19");
    file = join(dir, readdirSync(dir).find((f) => f.endsWith(".json"))!);
  }, 120_000);
  afterAll(() => {});

  const edited = (edit: (config: Record<string, unknown>) => void) => {
    const f = JSON.parse(readFileSync(file, "utf8")) as { config: Record<string, unknown> };
    edit(f.config);
    const path = join(dir, `edited-${Math.random().toString(36).slice(2)}.json.txt`);
    writeFileSync(path, JSON.stringify(f));
    return path;
  };

  it("explore writes the kernel into the file; replay runs it bit for bit and says it in SUMMARY", async () => {
    expect(JSON.parse(readFileSync(file, "utf8")).config.kernel).toBe("4.19");
    const r = await vmsim("replay", file);
    const summary = JSON.parse(
      r.stdout
        .trim()
        .split("\n")
        .at(-1)!
        .replace(/^SUMMARY /, ""),
    );
    expect(summary).toMatchObject({ command: "replay", kernel: "4.19", bitForBit: true });
  });

  it("a file from before the generations (no config.kernel) is 4.19's and replays the same", async () => {
    const old = edited((c) => delete c["kernel"]);
    const r = await vmsim("replay", old);
    const summary = JSON.parse(
      r.stdout
        .trim()
        .split("\n")
        .at(-1)!
        .replace(/^SUMMARY /, ""),
    );
    expect(summary).toMatchObject({ kernel: "4.19", bitForBit: true });
  });

  it("a file naming an unknown kernel: one line, exit 2", async () => {
    const bad = edited((c) => (c["kernel"] = "2.6"));
    const r = await vmsim("replay", bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`vmsim: error: ${bad}: unknown kernel "2.6"; expected one of 4.19, 5.10, 6.12\n`);
  });

  it("stress merge takes a campaign file without config.kernel as 4.19's", () => {
    const base = makeConfig({});
    const { seed: _, ...config } = base;
    const file = (c: object, seed: number): CampaignFile =>
      ({
        command: "stress-campaign",
        ok: true,
        parts: [{ seeds: { from: seed, to: seed }, shard: null, jobs: 1, wallMs: 1, host: {}, interrupted: false }],
        config: c,
        options: { durationMs: 1000, ops: null, failPageAlloc: 0, stutter: 0.01, rcuWalk: 0.01 },
        runs: [
          { seed, ok: true, ops: 1, opsPerSec: 1, durationMs: 1, rounds: 1, checks: 1, allocFailures: 0, rerun: "" },
        ],
      }) as unknown as CampaignFile;
    const { kernel: __, ...old } = config;
    const merged = mergeCampaigns([file(config, 1), file(old, 2)]);
    expect(merged.config.kernel).toBe("4.19");
    expect(merged.totals.seeds).toBe(2);
    expect(() => mergeCampaigns([file(config, 1), file({ ...config, kernel: "5.10" }, 2)])).toThrow(
      "the files ran different machines or options",
    );
  });
});
