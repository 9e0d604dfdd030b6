/**
 * Address layouts of the simulated kernel (arch/arm64/include/asm/memory.h and
 * pgtable-hwdef.h as of v4.19; arch/arm/include/asm/pgtable.h for arm32).
 *
 * Kernel virtual addresses are 64-bit and JS numbers are exact only to 2^53,
 * so inside vmsim a kernel address is a plain number `kaddr = va - base`
 * (base = the bottom of the kernel half). Full hex is produced only at the
 * edges by {@link formatKaddr}.
 */

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
const PUD_SIZE = 2 ** 30;

/** arm64 v4.19: VMALLOC_END = PAGE_OFFSET - PUD_SIZE - VMEMMAP_SIZE - SZ_64K. */
function arm64(vaBits: 48 | 39): Layout {
  const base = (1n << 64n) - (1n << BigInt(vaBits)); // VA_START
  const pageOffsetFull = (1n << 64n) - (1n << BigInt(vaBits - 1)); // PAGE_OFFSET
  const pageOffset = Number(pageOffsetFull - base);
  const vmemmapSize = 2 ** (vaBits - 12 - 1 + 6); // STRUCT_PAGE_MAX_SHIFT = 6
  const modulesStart = 0; // MODULES_VADDR = VA_START (+ KASAN shadow, off)
  const modulesEnd = modulesStart + SZ_128M;
  const levels: PgtableLevel[] =
    vaBits === 48
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
  return {
    name: vaBits === 48 ? "arm64-va48" : "arm64-va39",
    base,
    vaBits,
    vmallocStart: modulesEnd,
    vmallocEnd: pageOffset - PUD_SIZE - vmemmapSize - SZ_64K,
    modulesStart,
    modulesEnd,
    pageOffset,
    levels,
    source: "arch/arm64/include/asm/memory.h, v4.19, 4 KiB pages, KASAN off",
  };
}

/**
 * arm32 as in the seed document: 3G/1G split, high_memory at 0xf0000000 (768 MiB
 * lowmem), VMALLOC_OFFSET 8 MiB, VMALLOC_END 0xff800000 — a 240 MB vmalloc area.
 * Two levels: 2048 pgd entries of 2 MiB (a 16 KiB pgd) and 512-entry pte tables.
 */
function arm32(): Layout {
  return {
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

export const LAYOUTS: Record<LayoutName, Layout> = {
  "arm64-va48": arm64(48),
  "arm64-va39": arm64(39),
  arm32: arm32(),
};

export function isLayoutName(s: string): s is LayoutName {
  return Object.hasOwn(LAYOUTS, s);
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
