/**
 * What a booted machine has — read back from its arena header and region map,
 * not from the config that asked for it — as one JSON-ready object and as a
 * text report in the style of the kernel's boot log ("Virtual kernel memory
 * layout:" of arch/arm64/mm/init.c and arch/arm/mm/init.c, v4.19).
 */
import { ARENA_HEADER, type Arena, F64, I32, U32 } from "../shared/arena.js";
import { type MachineConfig, PAGE_SIZE, layoutOf } from "../shared/config.js";
import { type Layout, formatKaddr } from "../shared/layouts.js";
import { type StructDef, describeStruct } from "../shared/struct.js";
import { formatTable, hex32, humanBytes, plural } from "../workers/format.js";
import { MAIN_STRUCTS } from "./structs.js";

/** One span of the kernel's virtual address space, addresses as full hex. */
export interface AddressRange {
  readonly start: string;
  readonly end: string;
  readonly bytes: number;
}

/** The machine as `vmsim info --json` prints it. */
export interface MachineInfo {
  readonly config: MachineConfig;
  readonly cpus: readonly { readonly cpu: number; readonly percpuArea: number }[];
  readonly memory: { readonly pages: number; readonly pageSize: number; readonly bytes: number };
  readonly layout: {
    readonly name: string;
    readonly vaBits: number;
    readonly source: string;
    readonly pageOffset: string;
    readonly modules: AddressRange;
    readonly vmalloc: AddressRange & { readonly pages: number };
    /** The linear map of the machine's physical memory: PAGE_OFFSET .. PAGE_OFFSET + memory. */
    readonly linearMap: AddressRange;
  };
  readonly pgtable: readonly {
    readonly level: string;
    readonly shift: number;
    readonly entries: number;
    /** Bytes of address space one entry maps. */
    readonly entryMaps: number;
    /** Bytes of one table: a buddy block of `order`. */
    readonly tableBytes: number;
    readonly order: number;
  }[];
  readonly arena: {
    readonly bytes: number;
    readonly layoutHash: string;
    readonly regions: readonly { readonly name: string; readonly base: number; readonly size: number }[];
  };
  /** Size in bytes of each main struct; with `--structs`, its fields too. */
  readonly structs: readonly {
    readonly name: string;
    readonly size: number;
    readonly align: number;
    readonly fields?: StructDef["fields"];
  }[];
}

function range(layout: Layout, start: number, end: number): AddressRange {
  return { start: formatKaddr(layout, start), end: formatKaddr(layout, end), bytes: end - start };
}

/** Describes the machine this thread is attached to (after start_kernel or Machine.boot). */
export function describeMachine(arena: Arena, opts: { structs?: boolean } = {}): MachineInfo {
  const H = ARENA_HEADER.off;
  const cpus = I32[H.nr_cpus >> 2]!;
  const pages = I32[H.nr_pages >> 2]!;
  const percpuBase = I32[H.percpu_base >> 2]!;
  const percpuStride = I32[H.percpu_stride >> 2]!;
  const layout = layoutOf(arena.config);
  const vmalloc = range(layout, layout.vmallocStart, layout.vmallocEnd);
  return {
    config: arena.config,
    cpus: Array.from({ length: cpus }, (_, cpu) => ({ cpu, percpuArea: percpuBase + cpu * percpuStride })),
    memory: { pages, pageSize: PAGE_SIZE, bytes: pages * PAGE_SIZE },
    layout: {
      name: layout.name,
      vaBits: layout.vaBits,
      source: layout.source,
      pageOffset: formatKaddr(layout, layout.pageOffset),
      modules: range(layout, layout.modulesStart, layout.modulesEnd),
      vmalloc: { ...vmalloc, pages: vmalloc.bytes / PAGE_SIZE },
      linearMap: range(layout, layout.pageOffset, layout.pageOffset + pages * PAGE_SIZE),
    },
    pgtable: layout.levels.map((l) => ({
      level: l.name,
      shift: l.shift,
      entries: l.ptrs,
      entryMaps: 2 ** l.shift,
      tableBytes: PAGE_SIZE << l.order,
      order: l.order,
    })),
    arena: {
      bytes: F64[H.arena_size >> 3]!,
      layoutHash: hex32(U32[H.layout_hash >> 2]!),
      regions: arena.map,
    },
    structs: MAIN_STRUCTS.map((s) => ({
      name: s.name,
      size: s.size,
      align: s.align,
      ...(opts.structs ? { fields: s.fields } : {}),
    })),
  };
}

/**
 * One line of the kernel's layout block: arm64 prints `0x%16lx - 0x%16lx (%6ld GB)`,
 * arm32 `0x%08lx - 0x%08lx (%4ld MB)`.
 */
function layoutLine(info: MachineInfo, name: string, r: AddressRange, unit: "MB" | "GB"): string {
  const wide = info.layout.vaBits > 32;
  const n = Math.floor(r.bytes / (unit === "GB" ? 2 ** 30 : 2 ** 20));
  return `    ${name.padEnd(7)} : ${r.start} - ${r.end}   (${String(n).padStart(wide ? 6 : 4)} ${unit})`;
}

/**
 * "lockdep on, slub_debug on, tracing off": the debugging a machine boots with
 * (a production kernel's performance run has all three off).
 */
export function debugConfigLine(c: Pick<MachineConfig, "lockdep" | "slubDebug" | "trace">): string {
  const onOff = (on: boolean) => (on ? "on" : "off");
  const tracing = c.trace > 0 ? `on (${c.trace} events per CPU)` : "off";
  return `lockdep ${onOff(c.lockdep)}, slub_debug ${onOff(c.slubDebug)}, tracing ${tracing}`;
}

/** The text report of `vmsim info` (also the header of `vmsim run`). */
export function formatMachineInfo(info: MachineInfo, opts: { structs?: boolean } = {}): string[] {
  const c = info.config;
  const l = info.layout;
  const wide = l.vaBits > 32;
  const out: string[] = [
    `vmsim: kernel ${c.kernel}, ${plural(info.cpus.length, "CPU")}, ${humanBytes(info.memory.bytes)}, layout ${l.name}, seed ${c.seed}, ${debugConfigLine(c)}, irq rate ${c.irqRate}, workqueue ${c.workqueue}${c.inject.length > 0 ? `, injected bugs: ${c.inject.join(", ")}` : ""}${c.kcsan ? `, KCSAN (${c.kcsanStrict ? "strict, " : ""}skip_watch ${c.kcsanSkipWatch}, udelay ${c.kcsanUdelayTask}/${c.kcsanUdelayInterrupt} us${c.kcsanSkipReport.length > 0 ? `, skip_report ${c.kcsanSkipReport.join(",")}` : ""})` : ""}`,
    "",
    "Virtual kernel memory layout:",
    // The kernel's own order: arm64 modules, vmalloc … memory; arm32 vmalloc, lowmem, modules.
    ...(wide
      ? [
          layoutLine(info, "modules", l.modules, "MB"),
          layoutLine(info, "vmalloc", l.vmalloc, "GB"),
          layoutLine(info, "memory", l.linearMap, "MB"),
        ]
      : [
          layoutLine(info, "vmalloc", l.vmalloc, "MB"),
          layoutLine(info, "lowmem", l.linearMap, "MB"),
          layoutLine(info, "modules", l.modules, "MB"),
        ]),
    "",
    ...formatTable(
      [
        ["VA_BITS", `${l.vaBits}  (${l.source})`],
        ["PAGE_OFFSET", l.pageOffset],
        ["MODULES_VADDR", l.modules.start],
        ["MODULES_END", l.modules.end],
        ["VMALLOC_START", l.vmalloc.start],
        ["VMALLOC_END", l.vmalloc.end],
        ["vmalloc area", `${l.vmalloc.bytes} bytes = ${l.vmalloc.pages} pages (${humanBytes(l.vmalloc.bytes)})`],
      ],
      { align: "ll" },
    ),
    "",
    `Page tables: ${info.pgtable.length} levels, ${humanBytes(info.memory.pageSize)} pages`,
    ...formatTable(
      info.pgtable.map((p) => [
        p.level,
        String(p.shift),
        String(p.entries),
        humanBytes(p.entryMaps),
        `${humanBytes(p.tableBytes)} (order ${p.order})`,
      ]),
      { header: ["level", "shift", "entries", "entry maps", "table"], align: "lrrrl" },
    ),
    "",
    `CPUs: ${info.cpus.length}`,
    ...formatTable(
      info.cpus.map((p) => [`CPU${p.cpu}`, hex32(p.percpuArea)]),
      { header: ["cpu", "per-cpu area"], align: "ll" },
    ),
    "",
    `Physical memory: ${info.memory.pages} pages of ${info.memory.pageSize} bytes (${humanBytes(info.memory.bytes)})`,
    "",
    `Arena: one SharedArrayBuffer of ${info.arena.bytes} bytes (${humanBytes(info.arena.bytes)}), layout hash ${info.arena.layoutHash}`,
    ...formatTable(
      info.arena.regions.map((r) => [r.name, hex32(r.base), hex32(r.base + r.size), humanBytes(r.size)]),
      { header: ["region", "base", "end", "size"], align: "lllr" },
    ),
    "",
    `Structs (bytes): ${info.structs.map((s) => `${s.name} ${s.size}`).join(", ")}`,
  ];
  if (opts.structs) for (const s of MAIN_STRUCTS) out.push("", describeStruct(s));
  return out;
}
