/**
 * Address layouts of the simulated kernel, per kernel version
 * (arch/arm64/include/asm/memory.h, pgtable.h and pgtable-hwdef.h of v4.19,
 * v5.10 and v6.12; arch/arm/include/asm/pgtable.h for arm32, the same in all).
 *
 * Kernel virtual addresses are 64-bit and JS numbers are exact only to 2^53,
 * so inside vmsim a kernel address is a plain number `kaddr = va - base`
 * (base = the bottom of the kernel half, -(1 << VA_BITS) on arm64 in every
 * version). Full hex is produced only at the edges by {@link formatKaddr}.
 */

import type { KernelVersion } from "./config.js";

export type LayoutName = "arm64-va48" | "arm64-va39" | "arm32";

export interface PgtableLevel {
  /** Kernel name of the level: pgd, pud, pmd, pte. */
  readonly name: string;
  /** Address bits below this level's index (PGDIR_SHIFT, PUD_SHIFT …). */
  readonly shift: number;
  /** Entries per table (PTRS_PER_*). */
  readonly ptrs: number;
  /** Buddy order of one table at this level (arm32's pgd is 16 KiB). */
  readonly order: number;
}

export interface Layout {
  /** The kernel version whose headers the numbers follow. */
  readonly kernel: KernelVersion;
  readonly name: LayoutName;
  /** Bottom of the kernel half, as a BigInt; kaddr 0 is this address. */
  readonly base: bigint;
  readonly vaBits: number;
  /** VMALLOC_START and VMALLOC_END as kaddrs. */
  readonly vmallocStart: number;
  readonly vmallocEnd: number;
  /** MODULES_VADDR..MODULES_END as kaddrs (arm64: just below the vmalloc area). */
  readonly modulesStart: number;
  readonly modulesEnd: number;
  /** PAGE_OFFSET (start of the linear map) as a kaddr. */
  readonly pageOffset: number;
  /** Page-table levels from the top (pgd) down to the pte level. */
  readonly levels: readonly PgtableLevel[];
  /** The source the numbers follow. */
  readonly source: string;
}

const SZ_64K = 0x10000;
const SZ_128M = 0x8000000;
const SZ_256M = 0x10000000;
const SZ_1G = 2 ** 30;
const SZ_2G = 2 ** 31;
const PUD_SIZE = 2 ** 30;

/** The arm64 page-table levels of a 4 KiB-page kernel: 4 with VA_BITS 48, 3 with 39. */
function arm64Levels(vaBits: 48 | 39): PgtableLevel[] {
  return vaBits === 48
    ? [
        { name: "pgd", shift: 39, ptrs: 512, order: 0 },
        { name: "pud", shift: 30, ptrs: 512, order: 0 },
        { name: "pmd", shift: 21, ptrs: 512, order: 0 },
        { name: "pte", shift: 12, ptrs: 512, order: 0 },
      ]
    : [
        { name: "pgd", shift: 30, ptrs: 512, order: 0 },
        { name: "pmd", shift: 21, ptrs: 512, order: 0 },
        { name: "pte", shift: 12, ptrs: 512, order: 0 },
      ];
}

/**
 * VMEMMAP_SIZE with 4 KiB pages and a 64-byte struct page (STRUCT_PAGE_MAX_SHIFT 6): a struct page
 * for every page of the linear map's 2^(VA_BITS - 1) bytes.
 */
function vmemmapSize(vaBits: number): number {
  return 2 ** (vaBits - 1 - 12 + 6);
}

/**
 * arm64 v4.19: the kernel half starts with modules (at VA_START; KASAN shadow
 * off), then vmalloc up to VMALLOC_END = PAGE_OFFSET - PUD_SIZE - VMEMMAP_SIZE
 * - SZ_64K; the linear map is the TOP half (PAGE_OFFSET = -(1 << (VA_BITS - 1))).
 */
function arm64v419(vaBits: 48 | 39): Layout {
  const base = (1n << 64n) - (1n << BigInt(vaBits)); // VA_START
  const pageOffset = 2 ** (vaBits - 1); // PAGE_OFFSET - VA_START
  const modulesStart = 0; // MODULES_VADDR = VA_START (+ KASAN shadow, off)
  const modulesEnd = modulesStart + SZ_128M;
  return {
    kernel: "4.19",
    name: vaBits === 48 ? "arm64-va48" : "arm64-va39",
    base,
    vaBits,
    vmallocStart: modulesEnd,
    vmallocEnd: pageOffset - PUD_SIZE - vmemmapSize(vaBits) - SZ_64K,
    modulesStart,
    modulesEnd,
    pageOffset,
    levels: arm64Levels(vaBits),
    source: "arch/arm64/include/asm/memory.h, v4.19, 4 KiB pages, KASAN off",
  };
}

/**
 * arm64 v5.10 (from v5.4 the linear map is the BOTTOM half): PAGE_OFFSET =
 * -(1 << VA_BITS) starts the kernel half, PAGE_END = -(1 << (VA_BITS - 1))
 * ends the linear map; above it the KASAN shadow (off: KASAN_SHADOW_END =
 * PAGE_END), the BPF JIT region (SZ_128M), modules (SZ_128M), then vmalloc
 * from MODULES_END to VMALLOC_END = -PUD_SIZE - VMEMMAP_SIZE - SZ_64K.
 */
function arm64v510(vaBits: 48 | 39): Layout {
  const base = (1n << 64n) - (1n << BigInt(vaBits)); // PAGE_OFFSET
  const pageEnd = 2 ** (vaBits - 1); // PAGE_END - PAGE_OFFSET
  const modulesStart = pageEnd + SZ_128M; // BPF_JIT_REGION_END
  const modulesEnd = modulesStart + SZ_128M;
  return {
    kernel: "5.10",
    name: vaBits === 48 ? "arm64-va48" : "arm64-va39",
    base,
    vaBits,
    vmallocStart: modulesEnd,
    vmallocEnd: 2 ** vaBits - PUD_SIZE - vmemmapSize(vaBits) - SZ_64K,
    modulesStart,
    modulesEnd,
    pageOffset: 0,
    levels: arm64Levels(vaBits),
    source: "arch/arm64/include/asm/memory.h + pgtable.h, v5.10.7 (ejga2001/linux-5.10.7), 4 KiB pages, KASAN off",
  };
}

/**
 * arm64 v6.12: the linear map is the bottom half as in v5.10; the BPF JIT
 * region is gone (v5.16) and modules grew to 2 GiB (v6.6): MODULES_VADDR =
 * _PAGE_END(VA_BITS_MIN), MODULES_VSIZE = SZ_2G, VMALLOC_START = MODULES_END;
 * vmemmap sits right below VMEMMAP_END = -SZ_1G (v6.9), and VMALLOC_END =
 * VMEMMAP_START - SZ_256M.
 */
function arm64v612(vaBits: 48 | 39): Layout {
  const base = (1n << 64n) - (1n << BigInt(vaBits)); // PAGE_OFFSET
  const modulesStart = 2 ** (vaBits - 1); // _PAGE_END(VA_BITS_MIN) - PAGE_OFFSET
  const modulesEnd = modulesStart + SZ_2G;
  const vmemmapStart = 2 ** vaBits - SZ_1G - vmemmapSize(vaBits); // VMEMMAP_END - VMEMMAP_SIZE
  return {
    kernel: "6.12",
    name: vaBits === 48 ? "arm64-va48" : "arm64-va39",
    base,
    vaBits,
    vmallocStart: modulesEnd,
    vmallocEnd: vmemmapStart - SZ_256M,
    modulesStart,
    modulesEnd,
    pageOffset: 0,
    levels: arm64Levels(vaBits),
    source: "arch/arm64/include/asm/memory.h + pgtable.h, v6.12 (atmark-techno/linux-6.12-at), 4 KiB pages, KASAN off",
  };
}

/**
 * arm32 as in the seed document: 3G/1G split, high_memory at 0xf0000000 (768 MiB
 * lowmem), VMALLOC_OFFSET 8 MiB, VMALLOC_END 0xff800000 — a 240 MB vmalloc area.
 * Two levels: 2048 pgd entries of 2 MiB (a 16 KiB pgd) and 512-entry pte tables.
 * The same for every kernel version vmsim runs.
 */
function arm32(kernel: KernelVersion): Layout {
  return {
    kernel,
    name: "arm32",
    base: 0n,
    vaBits: 32,
    vmallocStart: 0xf0800000,
    vmallocEnd: 0xff800000,
    modulesStart: 0xbf000000,
    modulesEnd: 0xc0000000,
    pageOffset: 0xc0000000,
    levels: [
      { name: "pgd", shift: 21, ptrs: 2048, order: 2 },
      { name: "pte", shift: 12, ptrs: 512, order: 0 },
    ],
    source: "arch/arm/include/asm/pgtable.h + the seed's 240 MB vmalloc area",
  };
}

/** The layout presets, by name. */
export const LAYOUT_NAMES: readonly LayoutName[] = ["arm64-va48", "arm64-va39", "arm32"];

/** Every preset of every kernel version: `KERNEL_LAYOUTS[kernel][name]`. */
export const KERNEL_LAYOUTS: Readonly<Record<KernelVersion, Readonly<Record<LayoutName, Layout>>>> = {
  "4.19": { "arm64-va48": arm64v419(48), "arm64-va39": arm64v419(39), arm32: arm32("4.19") },
  "5.10": { "arm64-va48": arm64v510(48), "arm64-va39": arm64v510(39), arm32: arm32("5.10") },
  "6.12": { "arm64-va48": arm64v612(48), "arm64-va39": arm64v612(39), arm32: arm32("6.12") },
};

/** The layout `name` of kernel `kernel`. */
export function layoutFor(kernel: KernelVersion, name: LayoutName): Layout {
  return KERNEL_LAYOUTS[kernel][name];
}

export function isLayoutName(s: string): s is LayoutName {
  return (LAYOUT_NAMES as readonly string[]).includes(s);
}

/** Full kernel virtual address as lowercase hex: `0xffff000008000000`. */
export function formatKaddr(layout: Layout, kaddr: number): string {
  const full = layout.base + BigInt(kaddr);
  const digits = layout.vaBits > 32 ? 16 : 8;
  return `0x${full.toString(16).padStart(digits, "0")}`;
}

/** Parses a full kernel address (hex string) into a kaddr; null when it is not in the kernel half. */
export function parseKaddr(layout: Layout, hex: string): number | null {
  if (!/^0x[0-9a-fA-F]{1,16}$/.test(hex)) return null;
  const full = BigInt(hex);
  if (full < layout.base || full >= layout.base + (1n << BigInt(Math.min(layout.vaBits, 52)))) return null;
  return Number(full - layout.base);
}
