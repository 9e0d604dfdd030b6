/**
 * The invariants of the KVA allocator that generations 2 (v5.10) and 3
 * (v6.12) share (mm/vmalloc.c, "Global kva allocator"): address-sorted
 * rb-tree + list pairs, the augmented free tree — the kernel's
 * DEBUG_AUGMENT_PROPAGATE_CHECK and DEBUG_AUGMENT_LOWEST_MATCH_CHECK turned
 * into quiescent-point checks — and the tiling of the KVA space by busy,
 * lazy, free and pooled areas. Read-only, no lock taken: call it with every
 * CPU parked. Each generation's checker (src/check/v5.10, src/check/v6.12)
 * hands it its own struct vmap_area layout and trees.
 */
import { I32, theArena } from "../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../shared/config.js";
import { list_next, list_prev } from "../lib/list.js";
import { RB_NODE, RB_ROOT, checkRbTree, rb_next } from "../lib/rbtree.js";

/** How the checker reads a generation's struct vmap_area. */
export interface VmapAreaReader {
  /** Offsets of the rb_node and list members. */
  readonly rbNode: number;
  readonly list: number;
  readonly va_start: (va: number) => number;
  readonly va_end: (va: number) => number;
  /** How a violation names an area: `va 0x… [start-end)`. */
  readonly name: (va: number) => string;
}

/** The augmented free tree: its reader plus the generation's subtree_max_size and lowest-match search. */
export interface FreeTreeReader extends VmapAreaReader {
  readonly subtree_max_size: (va: number) => number;
  /**
   * The generation's own find_vmap_lowest_match over free_vmap_area_root,
   * with the kernel's debug check's arguments (6.12: adjust_search_size false).
   */
  readonly find_vmap_lowest_match: (size: number, align: number, vstart: number) => number;
  /**
   * Whether the search is exact for this alignment. v5.10 adds align - 1 to
   * the search length, so with align > 1 it may pass an exact fit by (its
   * debug check probes align 1 only); v6.12's probe is exact for every align.
   */
  readonly exactFor: (align: number) => boolean;
  /** VMALLOC_START, where the kernel's debug check starts its random vstart. */
  readonly vmallocStart: number;
}

/** An address range one of the allocator's structures holds, for the tiling check. */
export interface KvaPiece {
  readonly start: number;
  readonly end: number;
  /** "busy va 0x… […)", "free va …", "lazy va …", "pool[3] of node 1 va …". */
  readonly what: string;
}

function ptr(p: number): string {
  return `0x${(p >>> 0).toString(16).padStart(8, "0")}`;
}

/**
 * An rb_list — the rb-tree at `root` and the list at `head` that
 * insert_vmap_area keeps together: checks the red-black properties, that
 * every area is non-empty (and page-aligned when `aligned`: the free tree's
 * outermost blocks end at 1 and ULONG_MAX), that the in-order walk is sorted
 * without overlaps, and that the list holds the same areas in the same order
 * with consistent links. Returns the areas in address order ([] when the
 * tree is broken: nothing can walk it then).
 */
export function walkRbList(
  name: string,
  root: number,
  head: number,
  r: VmapAreaReader,
  aligned: boolean,
  out: string[],
): number[] {
  const rb = checkRbTree(root);
  if (rb !== null) {
    out.push(`rbtree: ${name}: ${rb}`);
    return [];
  }
  const vas: number[] = [];
  let n = I32[(root + RB_ROOT.off.rb_node) >> 2]!;
  if (n !== 0) for (let l: number; (l = I32[(n + RB_NODE.off.rb_left) >> 2]!) !== 0; ) n = l;
  for (; n !== 0; n = rb_next(n)) vas.push(n - r.rbNode);

  for (let i = 0; i < vas.length; i++) {
    const va = vas[i]!;
    const s = r.va_start(va);
    const e = r.va_end(va);
    if (!(s < e)) out.push(`${name}: ${r.name(va)} is empty or reversed`);
    if (aligned && (s % PAGE_SIZE !== 0 || e % PAGE_SIZE !== 0)) out.push(`${name}: ${r.name(va)} is not page-aligned`);
    if (i > 0) {
      const prev = vas[i - 1]!;
      if (r.va_start(prev) >= s) out.push(`${name}: the tree has ${r.name(prev)} before ${r.name(va)}`);
      else if (r.va_end(prev) > s) out.push(`${name}: ${r.name(prev)} overlaps ${r.name(va)}`);
    }
  }

  // The list is the tree's in-order walk, its links consistent.
  let k = 0;
  for (let e = head; ; k++) {
    const next = list_next(e);
    if (list_prev(next) !== e)
      out.push(
        `${name} list: ${e === head ? "the head" : r.name(e - r.list)}: next ${ptr(next)} has prev ${ptr(list_prev(next))}`,
      );
    if (next === head) break;
    if (k >= vas.length) {
      out.push(`${name} list: more entries than the tree's ${vas.length} areas (${r.name(next - r.list)} is extra)`);
      break;
    }
    if (next - r.list !== vas[k])
      out.push(`${name} list: entry ${k} is ${r.name(next - r.list)}, the tree's is ${r.name(vas[k]!)}`);
    e = next;
  }
  if (k < vas.length) out.push(`${name} list: ${k} entries, the tree has ${vas.length} areas`);
  return vas;
}

/** compute_subtree_max_size (v5.10, v6.12): the largest free block at or below `va`. */
function compute_subtree_max_size(va: number, f: FreeTreeReader): number {
  const child = (c: number) => (c === 0 ? 0 : f.subtree_max_size(c - f.rbNode));
  const rb = va + f.rbNode;
  return Math.max(
    f.va_end(va) - f.va_start(va),
    child(I32[(rb + RB_NODE.off.rb_left) >> 2]!),
    child(I32[(rb + RB_NODE.off.rb_right) >> 2]!),
  );
}

/** ALIGN(x, a) for a power-of-two a, on kaddrs (which may be negative below the kernel half). */
const ALIGN = (x: number, a: number) => Math.ceil(x / a) * a;

/** is_within_this_va (v5.10, v6.12): a block of `size` at `align`, at or above `vstart`, fits in `va`. */
function is_within_this_va(f: VmapAreaReader, va: number, size: number, align: number, vstart: number): boolean {
  const nva_start_addr = f.va_start(va) > vstart ? ALIGN(f.va_start(va), align) : ALIGN(vstart, align);
  return nva_start_addr >= vstart && nva_start_addr + size <= f.va_end(va);
}

/**
 * The free tree (free_vmap_area_root + free_vmap_area_list): an rb_list
 * whose neighbours are never adjacent (merge_or_add_vmap_area coalesces
 * them), whose every node's subtree_max_size is max(own size, children's) —
 * DEBUG_AUGMENT_PROPAGATE_CHECK — and whose find_vmap_lowest_match agrees
 * with a linear scan of the list for a fixed set of (size, align, vstart)
 * probes — DEBUG_AUGMENT_LOWEST_MATCH_CHECK. Returns the free areas in order.
 */
export function checkFreeTree(root: number, head: number, f: FreeTreeReader, out: string[]): number[] {
  const name = "free_vmap_area_root";
  const vas = walkRbList(name, root, head, f, false, out);
  for (let i = 1; i < vas.length; i++)
    if (f.va_end(vas[i - 1]!) === f.va_start(vas[i]!))
      out.push(`${name}: ${f.name(vas[i - 1]!)} and ${f.name(vas[i]!)} are adjacent but not merged`);

  let augmentOk = true;
  for (const va of vas) {
    const want = compute_subtree_max_size(va, f);
    if (f.subtree_max_size(va) !== want) {
      augmentOk = false;
      out.push(
        `${name}: ${f.name(va)} has subtree_max_size ${f.subtree_max_size(va)}, its subtree's largest is ${want}`,
      );
    }
  }
  // A wrong augmented value misleads the search by design: report the cause, not every probe it spoils.
  if (augmentOk && vas.length > 0) checkLowestMatch(vas, f, out);
  return vas;
}

/**
 * The probes: for a spread of free areas, their exact size and one page, at
 * VMALLOC_START and inside the area, aligned to 1, a page and 2 MiB; plus a
 * size no area holds. Deterministic (derived from the state), bounded (at
 * most 8 areas × 12 probes), each compared with the linear scan.
 */
function checkLowestMatch(vas: readonly number[], f: FreeTreeReader, out: string[]): void {
  const stride = Math.max(1, Math.floor(vas.length / 7));
  const picks = new Set<number>([vas[vas.length - 1]!]);
  for (let i = 0; i < vas.length && picks.size < 8; i += stride) picks.add(vas[i]!);
  let largest = 0;
  for (const va of vas) largest = Math.max(largest, f.va_end(va) - f.va_start(va));
  const probes: [number, number, number][] = [[largest + PAGE_SIZE, 1, f.vmallocStart]];
  for (const va of picks) {
    const size = Math.min(f.va_end(va) - f.va_start(va), 2 ** 40);
    const inside = f.va_start(va) + PAGE_SIZE / 2;
    for (const s of [size, PAGE_SIZE])
      for (const vstart of [f.vmallocStart, inside])
        for (const align of [1, PAGE_SIZE, 2 << 20]) probes.push([s, align, vstart]);
  }
  const lowest = (pred: (va: number) => boolean) => vas.find(pred) ?? 0;
  for (const [size, align, vstart] of probes) {
    const tree = f.find_vmap_lowest_match(size, align, vstart);
    const fits = (va: number) => is_within_this_va(f, va, size, align, vstart);
    const linear = lowest(fits);
    const what = `find_vmap_lowest_match(size ${size}, align ${align}, vstart ${vstart})`;
    const name = (va: number) => (va === 0 ? "NULL" : f.name(va));
    if (f.exactFor(align)) {
      if (tree !== linear) out.push(`lowest match: ${what} is ${name(tree)}, the linear scan finds ${name(linear)}`);
      continue;
    }
    // The adjusted search length (size + align - 1) finds any block that big at or above vstart, maybe a lower fit.
    const length = size + align - 1;
    const bound = lowest((va) => f.va_start(va) >= vstart && f.va_end(va) - f.va_start(va) >= length);
    if (tree !== 0 && !fits(tree)) out.push(`lowest match: ${what} is ${name(tree)}, which cannot hold it`);
    else if (
      tree === 0
        ? bound !== 0
        : (linear !== 0 && f.va_start(tree) < f.va_start(linear)) ||
          (bound !== 0 && f.va_start(tree) > f.va_start(bound))
    )
      out.push(
        `lowest match: ${what} is ${name(tree)}; the lowest fit is ${name(linear)}, the lowest block of ${length} bytes ${name(bound)}`,
      );
  }
}

/**
 * The tiling: the pieces (busy, lazy, free and pooled areas) cover [lo, hi)
 * — the span vmap_init_free_space gave the free tree at boot — exactly once:
 * no two overlap, nothing is lost between them.
 */
export function checkTiling(
  pieces: KvaPiece[],
  lo: number,
  hi: number,
  fmt: (kaddr: number) => string,
  out: string[],
): void {
  const sorted = [...pieces].sort((a, b) => a.start - b.start || a.end - b.end);
  let at = lo;
  let last: KvaPiece | null = null;
  for (const p of sorted) {
    if (p.start > at)
      out.push(
        `tiling: [${fmt(at)}-${fmt(p.start)}) is in no tree, list or pool${last ? ` (after ${last.what})` : ""}`,
      );
    else if (p.start < at && last !== null) out.push(`tiling: ${last.what} overlaps ${p.what}`);
    else if (p.start < lo) out.push(`tiling: ${p.what} starts below the KVA space's start ${fmt(lo)}`);
    if (p.end > at) {
      at = p.end;
      last = p;
    }
  }
  if (at < hi)
    out.push(`tiling: [${fmt(at)}-${fmt(hi)}) is in no tree, list or pool${last ? ` (after ${last.what})` : ""}`);
  else if (at > hi && last !== null) out.push(`tiling: ${last.what} ends above the KVA space's end ${fmt(hi)}`);
}

/**
 * The KVA space vmap_init_free_space (v5.10, v6.12) hands the free tree at
 * boot, [1, ULONG_MAX), as kaddrs: address 0 lies 2^64 - 2^vaBits below the
 * kernel half (arm32: base 0, a 4 GiB space). In doubles, 1 rounds to that
 * kaddr as the generations' own vmap_init_free_space computes it.
 */
export function kvaSpace(): { lo: number; hi: number } {
  const layout = layoutOf(theArena().config);
  const wrap = 2 ** layout.vaBits;
  const nul = wrap - (layout.vaBits > 32 ? 2 ** 64 : 2 ** 32);
  return { lo: nul + 1, hi: wrap - 1 };
}
