/**
 * Deliberate bugs: test-only switches that break vmsim's vmalloc on purpose
 * (MachineConfig `inject`, `--inject <name,...>`), so that the proof that
 * `vmsim stress` hunts races is itself a test: with a switch on, a seeded
 * stress run on 2 CPUs must report a violation or a kernel report; with it
 * off, the same seed runs clean (test/inject.test.ts).
 *
 * Each entry opens with its story, as tools/testing/radix-tree opens a
 * regression test: the interleaving that breaks, what goes wrong, how vmsim
 * sees it, and the real kernel's context. The hooks live in src/mm/vmalloc.ts,
 * each behind a module-level boolean that is read from the config once per
 * arena (onSetCurrentCpu), so a machine without injections pays one
 * predictable branch on a constant-false flag.
 */

/** One deliberate bug. */
export interface Injection {
  /** The kernel function the switch breaks. */
  readonly breaks: string;
  /** One line: what is left out (CLI help, README). */
  readonly summary: string;
}

/** The registry of deliberate bugs, by the name `--inject` takes. */
export const INJECTIONS = {
  /**
   * alloc_vmap_area searches for a hole and inserts the new area without
   * vmap_area_lock (the search from free_vmap_cache, __insert_vmap_area and
   * the free_vmap_cache update all run unlocked).
   *
   *   CPU0: vmalloc(8K)                        CPU1: vmalloc(8K)
   *     alloc_vmap_area                          alloc_vmap_area
   *       search from free_vmap_cache: [A, A+12K)  search from free_vmap_cache: [A, A+12K)
   *       __insert_vmap_area(va0)                  __insert_vmap_area(va1)
   *         rb_link_node under parent P              rb_link_node under parent P
   *         rb_insert_color rotates …                rb_insert_color rotates …
   *       free_vmap_cache = va0                    free_vmap_cache = va1
   *
   * What goes wrong: both CPUs find the same hole and hand out overlapping
   * areas (two vmallocs whose pages map the same kernel addresses: the second
   * vmap_page_range finds live PTEs, or one CPU's stamp is read back by the
   * other); or both link into the same child slot and one area is lost from
   * the tree while it stays on the list; or the rebalancing of one insert
   * rotates nodes the other is walking, leaving a tree that breaks the
   * red-black rules or the address order. Frees (__free_vmap_area under the
   * lock) race with the unlocked inserts the same way. vmsim sees it as
   * __insert_vmap_area's BUG (an overlap the walk meets), a failed
   * vmap_page_range (a live PTE), a stamp mismatch, or at the next
   * stop-the-world point as checkVmalloc's violations (tree ≠ list, overlap,
   * rbtree colour/order, PTEs of an area not its pages).
   *
   * Kernel context: v4.19's comment "The vmap cache globals are protected by
   * vmap_area_lock" is the whole contract of the global kva allocator — one
   * spinlock for vmap_area_root, vmap_area_list and the free_vmap_cache
   * hints. v5.6 split it (e36176be1c39 "mm/vmalloc: rework vmap_area_lock":
   * free_vmap_area_lock for the free tree, vmap_area_lock for the busy one),
   * and v6.9 into per-node busy trees; each split had to re-prove that no
   * tree is touched under the wrong lock. This switch is that mistake.
   */
  "no-vmap-area-lock": {
    breaks: "alloc_vmap_area",
    summary: "alloc_vmap_area searches and inserts without vmap_area_lock",
  },
  /**
   * __purge_vmap_area_lazy returns the lazily freed areas to the allocator
   * without its flush_tlb_kernel_range.
   *
   *   CPU0                                     CPU1
   *     p = vmalloc(4K) at A → page X
   *     *p = stamp            (CPU0's TLB: A → X)
   *     vfree(p): unmap A, queue its va lazily
   *                                              purge_vmap_area_lazy
   *                                                [flush_tlb_kernel_range skipped]
   *                                                __free_vmap_area(va): A is free
   *     q = vmalloc(4K) at A → page Y
   *     *q = stamp            → CPU0's TLB hits A → X: a freed page
   *
   * What goes wrong: the lazy scheme unmaps at vfree but leaves each CPU's
   * translations in place until the purge, which flushes the whole range once
   * before any of the address space can be handed out again. Without that
   * flush, a CPU that used the old area keeps translating its addresses to
   * the old, freed pages after the range was reused: loads read another
   * owner's (or a freed page's) data, stores corrupt it. vmsim's MMU reports
   * each access served by a TLB entry whose PTE has changed since the fill
   * ("stale-tlb", src/mm/mmu.ts), and the stamp read through it does not
   * match.
   *
   * Kernel context: lazy unmapping came with the vmap rewrite (db64fe02258f
   * "mm: rewrite vmap layer", v2.6.28): vunmap no longer flushes; the TLB is
   * flushed, once per batch of lazily freed areas, when their address space
   * is about to be reused. Everything that keeps a stale vmalloc translation
   * harmless rests on that one flush_tlb_kernel_range in
   * __purge_vmap_area_lazy.
   */
  "no-purge-flush": {
    breaks: "__purge_vmap_area_lazy",
    summary: "__purge_vmap_area_lazy frees the lazy areas without flush_tlb_kernel_range",
  },
  /**
   * vfree from interrupt context frees at once (__vunmap) instead of queueing
   * the area on this CPU's vfree_deferred for free_work.
   *
   *   CPU0 (process context)                   CPU0 (hardirq)
   *     …                                        vmalloc_mix_irq_handler
   *                                                vfree(p): in_interrupt(), but
   *                                                  __vunmap(p) right here
   *                                                    remove_vm_area: might_sleep()
   *                                                    free_vmap_area_noflush
   *                                                      → purge: mutex_lock(vmap_purge_lock)
   *                                                    __free_pages, kfree
   *
   * What goes wrong: __vunmap may sleep (remove_vm_area's might_sleep, the
   * purge's vmap_purge_lock mutex) and takes vmap_area_lock with interrupts
   * enabled; from a hardirq that is a sleep in atomic context, and an
   * interrupt that arrives while its CPU holds vmap_area_lock deadlocks on
   * it. vmsim reports "BUG: sleeping function called from invalid context"
   * (might_sleep with CONFIG_DEBUG_ATOMIC_SLEEP, src/locks/might_sleep.ts),
   * lockdep's recursive-locking splat, or the soft lockup that follows.
   *
   * Kernel context: vfree became safe to call from interrupt context with
   * 32fcfd40715e ("make vfree() safe to call from interrupt contexts", v3.10),
   * which added the per-CPU vfree_deferred llist and its work item; v4.10's
   * vfree_atomic reuses that path for atomic context.
   */
  "irq-vfree-not-deferred": {
    breaks: "vfree",
    summary: "vfree from interrupt context frees at once instead of deferring to free_work",
  },
} as const satisfies Record<string, Injection>;

/** The name of a deliberate bug. */
export type InjectName = keyof typeof INJECTIONS;

/** Every deliberate bug, in registry order. */
export const INJECT_NAMES = Object.keys(INJECTIONS) as InjectName[];

/** Is `s` the name of a deliberate bug? */
export function isInjectName(s: string): s is InjectName {
  return Object.hasOwn(INJECTIONS, s);
}
