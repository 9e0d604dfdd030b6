/**
 * Page-table invariants (docs/architecture.md), read-only, for a machine whose CPUs are
 * all parked: every table reachable from swapper_pg_dir is a PageTable page
 * with a reference, every upper-level entry is empty or a table descriptor,
 * and the table counters (init_mm's per-level counts, NR_PAGETABLE) equal
 * what a full walk finds. The walk also hands every present PTE to the
 * vmalloc checker, which matches them against the areas.
 */
import { I32, pfn_to_data, theArena } from "../shared/arena.js";
import { layoutOf } from "../shared/config.js";
import { formatKaddr } from "../shared/layouts.js";
import { PageTable, STRUCT_PAGE, page_ref_count, virt_to_page } from "../mm/mm_types.js";
import { NR_PAGETABLE, global_zone_page_state, page_to_pfn, pfn_valid } from "../mm/page_alloc.js";
import { MM_STRUCT, PMD_TYPE_TABLE, init_mm, pgtablePages, pte_pfn, pte_present } from "../mm/pgtable.js";

/** A present leaf entry: the kaddr it maps and the descriptor. */
export type PteVisitor = (kaddr: number, pte: number) => void;

/** What a walk of the kernel page tables found. */
export interface PgtableWalk {
  /** Table pages reachable from swapper_pg_dir (the pgd counts 1 << its order). */
  readonly tablePages: number;
  readonly violations: string[];
}

/**
 * Walks every kernel page table from swapper_pg_dir, calls `visit` for each
 * present PTE in address order, and checks each table page on the way.
 */
export function walkKernelPageTables(visit: PteVisitor): PgtableWalk {
  const layout = layoutOf(theArena().config);
  const levels = layout.levels;
  const last = levels.length - 1;
  const violations: string[] = [];
  let tablePages = 0;
  const hex = (e: number) => `0x${(e >>> 0).toString(16).padStart(8, "0")}`;

  const checkTable = (contents: number, level: number, kaddr: number) => {
    const l = levels[level]!;
    for (let i = 0; i < 1 << l.order; i++) {
      const page = virt_to_page(contents) + i * STRUCT_PAGE.size;
      const wrong = [
        ...(PageTable(page) ? [] : ["not PageTable"]),
        // A multi-page table (arm32's 16 KiB pgd) is one non-compound block: its head holds the reference.
        ...(i > 0 || page_ref_count(page) >= 1 ? [] : [`refcount ${page_ref_count(page)}`]),
      ];
      if (wrong.length > 0)
        violations.push(
          `page tables: the ${l.name} table for ${formatKaddr(layout, kaddr)} (pfn ${page_to_pfn(page)}) is ${wrong.join(", ")}`,
        );
    }
  };

  const walk = (contents: number, level: number, base: number) => {
    const l = levels[level]!;
    const span = 2 ** l.shift;
    tablePages += 1 << l.order;
    checkTable(contents, level, base);
    for (let i = 0; i < l.ptrs; i++) {
      const e = Atomics.load(I32, (contents + i * 8) >> 2);
      if (e === 0) continue;
      const kaddr = base + i * span;
      if (level === last) {
        if (pte_present(e)) visit(kaddr, e);
        else violations.push(`page tables: pte for ${formatKaddr(layout, kaddr)} is ${hex(e)}: not none, not present`);
      } else if ((e & PMD_TYPE_TABLE) !== PMD_TYPE_TABLE || !pfn_valid(pte_pfn(e))) {
        violations.push(`page tables: ${l.name} entry for ${formatKaddr(layout, kaddr)} is ${hex(e)}: not a table`);
      } else {
        walk(pfn_to_data(pte_pfn(e)), level + 1, kaddr);
      }
    }
  };

  // kaddr 0 is the bottom of the kernel half: the pgd's slot 0 (arm32: 0, the whole 4 GiB).
  walk(I32[(init_mm.ptr + MM_STRUCT.off.pgd) >> 2]!, 0, 0);
  return { tablePages, violations };
}

/**
 * The page-table counters against a walk: init_mm's per-level table counts
 * (pgtablePages) and the zone's NR_PAGETABLE must both equal the table pages
 * reachable from swapper_pg_dir — kernel-range tables are never freed, so a
 * difference is a leaked or doubly linked table.
 */
export function checkPageTableCounters(walk: PgtableWalk): string[] {
  const out: string[] = [];
  const counted = pgtablePages();
  const zone = global_zone_page_state(NR_PAGETABLE);
  if (counted !== walk.tablePages)
    out.push(
      `page tables: init_mm counts ${counted} table pages, ${walk.tablePages} are reachable from swapper_pg_dir`,
    );
  if (zone !== walk.tablePages)
    out.push(`page tables: NR_PAGETABLE is ${zone}, ${walk.tablePages} table pages are reachable from swapper_pg_dir`);
  return out;
}
