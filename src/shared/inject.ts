/**
 * Deliberate bugs: test-only switches that break vmsim's vmalloc on purpose
 * (MachineConfig `inject`, `--inject <name,...>`), so that the proof that
 * vmsim hunts races is itself a test. The switches marked `stress` are caught
 * by a seeded free-running stress run on 2 CPUs, and the same seed without
 * them runs clean (test/inject.test.ts); every switch is found by an
 * exploration of its catalog scenario under the deterministic scheduler,
 * replays to the same failure, and its scenario runs clean without it
 * (src/explore/catalog.ts, test/catalog.test.ts) — except where the catalog
 * says why the deterministic scheduler cannot reach it.
 *
 * Each entry opens with its story, as tools/testing/radix-tree opens a
 * regression test: the interleaving that breaks, what goes wrong, how vmsim
 * sees it, and the real kernel's context — for the re-created historical
 * bugs, the upstream fix. The hooks live in the kernel files of the
 * generation an entry names (src/mm/v4.19/, v5.10/, v6.12/), each behind a
 * module-level boolean that is read from the config once per arena
 * (onSetCurrentCpu), so a machine without
 * injections pays one predictable branch on a constant-false flag. This file
 * is data only, on the lowest floor, so that the config can check the names.
 */
import type { KernelVersion } from "./config.js";

/** One deliberate bug. */
export interface Injection {
  /** The kernel function the switch breaks. */
  readonly breaks: string;
  /** One line: what is left out (CLI help, docs). */
  readonly summary: string;
  /**
   * The generation whose code carries the switch (MachineConfig `kernel`): a
   * machine of another generation never runs that code, so the config refuses it.
   */
  readonly kernel: KernelVersion;
  /**
   * The free-running stress mix (`vmsim stress`) reaches the broken path, and
   * test/inject.test.ts proves it catches the bug; the others need their
   * catalog scenario (src/explore/catalog.ts).
   */
  readonly stress: boolean;
  /**
   * Only a data-race detector sees it: the switch moves plain stores out from
   * under the lock another CPU's reader holds, the stress mix reaches both
   * sides, and no symptom follows that today's checks can see
   * (test/kcsan_proof.test.ts); `--kcsan` reports the race itself.
   */
  readonly kcsan?: boolean;
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
    kernel: "4.19",
    summary: "alloc_vmap_area searches and inserts without vmap_area_lock",
    stress: true,
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
    kernel: "4.19",
    summary: "__purge_vmap_area_lazy frees the lazy areas without flush_tlb_kernel_range",
    stress: true,
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
    kernel: "4.19",
    summary: "vfree from interrupt context frees at once instead of deferring to free_work",
    stress: true,
  },
  /**
   * Every vfree from interrupt context queues its area on vfree_deferred
   * twice: the double free of a caller that releases one buffer from two
   * interrupt paths (a completion and a timeout handler, say). It is the
   * three-line double vfree of test/softlockup.test.ts's exec script, moved
   * inside vmalloc so that every command's deferred frees reach it: the
   * stress mix's interrupt handler and vfree_atomic, and the RCU callbacks
   * of test_vmalloc's kvfree_rcu tests (softirq context).
   *
   *   CPU0 (hardirq)                            CPU0 (kworker)
   *     vfree(p): in_interrupt()
   *       llist_add(p): p->next = NULL, first
   *       llist_add(p): p->next = p
   *                                               free_work
   *                                                 llist_for_each_safe(p, t, …)
   *                                                   __vunmap(p): freed
   *                                                   p = p->next: p again
   *                                                   __vunmap(p): "Trying to
   *                                                     vfree() nonexistent vm
   *                                                     area" … for ever
   *
   * What goes wrong: an llist has no guard against a node added twice; the
   * second add points the node at itself, and the walk of the list never
   * ends. The CPU neither sleeps nor waits on a lock, so only the soft-lockup
   * watchdog sees it (src/sched/watchdog.ts): "watchdog: BUG: soft lockup -
   * CPU#0 stuck for 10s! [vmalloc_mix]", its events showing the loop, after
   * the identical warnings counted as printk's ratelimit counts them. With
   * more than one CPU another CPU may reuse the freed page first; the walk
   * then follows whatever it stored there.
   *
   * Kernel context: v4.19's __vfree_deferred stores the llist node in the
   * area itself (32fcfd40715e, "make vfree() safe to call from interrupt
   * contexts", v3.10); nothing upstream guards it, the double free is the
   * caller's bug, as it would be here.
   */
  "double-vfree-irq": {
    breaks: "__vfree_deferred",
    kernel: "4.19",
    summary: "vfree from interrupt context queues the area twice: free_work walks a cycle (a soft lockup)",
    stress: true,
  },
  /**
   * new_vmap_block puts the new block on this CPU's vmap_block_queue before
   * it sets the block's area and counters (va, free, dirty, dirty_min,
   * dirty_max); only its lock and its list links are initialised by then.
   *
   *   CPU0: vm_map_ram → vb_alloc                CPU1: vm_unmap_aliases
   *     new_vmap_block
   *       vb = kmalloc(): slab poison 0x6b…
   *       spin_lock_init(&vb->lock)
   *       list_add_tail_rcu(&vb->free_list,
   *                         &vbq0->free)
   *                                                rcu_read_lock()
   *                                                list_for_each_entry_rcu(vb, &vbq0->free)
   *                                                  spin_lock(&vb->lock)
   *                                                  vb->dirty: 0x6b6b6b6b, not 0
   *                                                  vb->va->va_start: vb->va is
   *                                                    0x6b6b6b6b6b6b6b6b → oops
   *       vb->va = va; vb->free = …;
   *       vb->dirty = 0; …
   *
   * What goes wrong: every CPU that flushes or purges walks every CPU's
   * queue under rcu_read_lock alone (vm_unmap_aliases,
   * purge_fragmented_blocks), so a block is everybody's the moment it is on
   * its queue. A walker that reaches it before its fields are set reads what
   * the slab left there — with slab poisoning a dirty count of 0x6b6b6b6b and
   * the poison as vb->va — and vm_unmap_aliases dereferences that pointer to
   * compute the range it flushes. vmsim sees it as the oops, a "fault" report
   * "Unable to handle kernel paging request at virtual address
   * 0x6b6b6b6b6b6b6b6b" from vm_unmap_aliases (kmalloc'ed records are arena
   * offsets with no MMU in front, so the walker checks the pointer where the
   * kernel's load would fault).
   *
   * Upstream: 3e3de7947c75 ("mm: vmalloc: ensure vmap_block is initialised
   * before adding to queue", v6.11). 8c61291fd850 had given the block a `cpu`
   * field, set only after the block was in its queue's xarray, and
   * _vm_unmap_aliases, walking that xarray from another CPU, indexed
   * per_cpu(vmap_block_queue, vb->cpu) with the uninitialised value (UBSAN:
   * array index out of bounds in purge_fragmented_block, seen on Android);
   * the fix sets vb->cpu before the insert. v4.19's block has no cpu field
   * and its walkers iterate vbq->free, so the switch re-creates that ordering
   * on the fields v4.19's walkers read. The tree insert stays after the
   * fields: vmsim's rbtree stand-in for the radix tree reads each block's va,
   * the kernel's radix tree reads nothing of the block.
   */
  "vb-publish-before-init": {
    breaks: "new_vmap_block",
    kernel: "4.19",
    summary: "new_vmap_block queues the block before setting its area and counters",
    stress: false,
  },
  /**
   * vb_alloc takes a block with no page left off its CPU's queue with
   * list_del_init instead of list_del_rcu.
   *
   *   CPU0: vm_map_ram → vb_alloc                CPU1: vm_unmap_aliases
   *                                                rcu_read_lock()
   *                                                list_for_each_entry_rcu(vb, &vbq0->free)
   *     spin_lock(&vb->lock)
   *     vb->free -= 1 << order: now 0
   *                                                  spin_lock(&vb->lock): waits
   *     spin_lock(&vbq0->lock)
   *     list_del_init(&vb->free_list):
   *       vb->free_list.next = &vb->free_list
   *     spin_unlock(&vbq0->lock)
   *     spin_unlock(&vb->lock)
   *                                                  … spin_unlock(&vb->lock)
   *                                                  vb = next entry: vb again, for ever
   *
   * What goes wrong: the queues are walked under rcu_read_lock alone, and
   * list_del_rcu leaves the removed entry's next pointer as it was so that a
   * walker standing on it walks on to the rest of the list. list_del_init
   * points the entry at itself: a walker standing on the block when it
   * leaves its queue never gets off it, looping inside its RCU read-side
   * section (the kernel's soft lockup and RCU stall). vmsim sees it as the
   * deterministic scheduler's livelock: the run passes its step cap with the
   * walker still going round.
   *
   * Upstream: de5604231ce4 ("mm: percpu-vmap fix RCU list walking",
   * v2.6.33): the per-CPU block queues were walked with RCU but updated with
   * list_add and list_del_init (and free_list shared a union with rcu_head);
   * the fix made the updaters list_add_rcu and list_del_rcu.
   */
  "vb-list-del-init": {
    breaks: "vb_alloc",
    kernel: "4.19",
    summary: "vb_alloc unlinks a full block with list_del_init under RCU walkers",
    stress: false,
  } /**
   * purge_fragmented_blocks takes this CPU's vbq->lock to unlink a block of
   * the queue it purges — another CPU's, when vm_unmap_aliases purges every
   * CPU's queue — instead of that queue's own lock.
   *
   *   CPU1: vm_unmap_aliases                   CPU0: vm_map_ram, its block full
   *     purge_fragmented_blocks(cpu 0)           vb_alloc → new_vmap_block
   *       vb: CPU0's fragmented block
   *       spin_lock(&vbq1->lock)  [not vbq0's]     spin_lock(&vbq0->lock)
   *       list_del_rcu(&vb->free_list)            list_add_tail_rcu(&new->free_list, &vbq0->free)
   *         head->prev = head                        new->prev = head->prev: head
   *                                                  head->next = new, head->prev = new
   *         head->next = head: `new` is lost         spin_unlock(&vbq0->lock)
   *       spin_unlock(&vbq1->lock)
   *
   * What goes wrong: one list, two locks. The two updates interleave between
   * their single stores: a block vanishes from the queue while its neighbour
   * still points at it, or a purged block stays linked after its free. vmsim
   * sees it as DEBUG_LIST's "list_add corruption" or "list_del corruption"
   * at the next update of the queue, or as checkVmapBlocks' verdict on a queue
   * that disagrees with vmap_block_tree. (Every RCU list update is a sched
   * point between its stores, src/lib/list.ts, so the deterministic scheduler
   * can interleave there, as two CPUs' stores do.)
   *
   * Upstream: 8c61291fd850 ("mm: fix incorrect vbq reference in
   * purge_fragmented_block", v6.10): purge_fragmented_block unlinked a block
   * under the lock of this_cpu_ptr(&vmap_block_queue) where the block's own
   * queue was meant; the fix takes the queue of the CPU the block belongs to.
   * v4.19 passes the purged CPU's queue and is right; this switch re-creates
   * the later mistake on v4.19's code.
   */,
  "vb-purge-wrong-lock": {
    breaks: "purge_fragmented_blocks",
    kernel: "4.19",
    summary: "purge_fragmented_blocks unlinks another CPU's block under this CPU's vbq->lock",
    stress: false,
  },

  /**
   * show_numa_info counts the pages of an area that is still
   * VM_UNINITIALIZED: a CONFIG_NUMA /proc/vmallocinfo (vmallocinfo({ numa:
   * true })) reads vm->pages while __vmalloc_area_node is filling it in.
   *
   *   CPU0: vmalloc(8 pages)                     CPU1: cat /proc/vmallocinfo
   *     __get_vm_area_node
   *       setup_vmalloc_vm: va->vm = area,
   *         VM_VM_AREA (under vmap_area_lock)
   *     __vmalloc_area_node
   *       area->nr_pages = 8
   *       area->pages = kmalloc(…)
   *                                                s_start: spin_lock(&vmap_area_lock)
   *                                                s_show(va): VM_VM_AREA, v = va->vm
   *                                                  show_numa_info(v): v->nr_pages 8
   *                                                    page_to_nid(v->pages[0]): NULL → oops
   *       area->pages[i] = alloc_page() …
   *     clear_vm_uninitialized_flag(area)
   *
   * What goes wrong: an area is on vmap_area_list, with its vm_struct, from
   * setup_vmalloc_vm on; its page array is set up afterwards, without
   * vmap_area_lock. VM_UNINITIALIZED (cleared with a barrier once the array
   * is complete) is what keeps the /proc reader off the array meanwhile;
   * without the check it follows nr_pages into a NULL array or NULL entries.
   * vmsim sees it as the oops, a "fault" report "Unable to handle kernel NULL
   * pointer dereference at virtual address 0x0000000000000000" from
   * show_numa_info.
   *
   * Upstream: f5252e00 ("mm: avoid null pointer access in vm_struct via
   * /proc/vmallocinfo") fixed the original crash — the vm_struct was put on
   * vmlist, which vmallocinfo walked, before __vmalloc_area_node — with the
   * VM_UNLIST flag, renamed VM_UNINITIALIZED in v3.11. d4033afdf828 ("mm,
   * vmalloc: iterate vmap_area_list, instead of vmlist, in vmallocinfo()",
   * v3.10) made vmallocinfo walk vmap_area_list, where an area appears before
   * its vm_struct is complete, and added this very check (with its smp_rmb)
   * to show_numa_info; the switch takes it out again.
   */
  "vmallocinfo-uninitialized": {
    breaks: "show_numa_info",
    kernel: "4.19",
    summary: "/proc/vmallocinfo's show_numa_info reads the pages of a VM_UNINITIALIZED area",
    stress: false,
  },
  /**
   * __vunmap gives the area back (remove_vm_area) before it checks the range
   * for live debug objects (debug_check_no_obj_freed), the order before
   * f3c01d2f3ade.
   *
   *   CPU0: vfree(p)                             CPU1: a driver
   *     __vunmap(p)
   *       remove_vm_area(p): unmapped, va on
   *         vmap_purge_list
   *                                                vm_unmap_aliases(): lazy purge, p's range free
   *                                                q = vmalloc(4K): q == p
   *                                                debug_object_init(q, &descr)
   *                                                debug_object_activate(q, &descr)
   *       debug_check_no_obj_freed(p, 4K):
   *         CPU1's active object at q:
   *         "ODEBUG: free active …", fixup_free
   *                                                debug_object_deactivate(q, &descr):
   *                                                  "ODEBUG: deactivate not available …"
   *
   * What goes wrong: once remove_vm_area has queued the area for the lazy
   * purge, any CPU's purge can hand its addresses to the next vmalloc, whose
   * owner may place objects there and register them with debugobjects;
   * checking the range after that frees (or complains about) another
   * client's objects. vmsim sees it as a WARN from lib/debugobjects.c
   * (src/lib/debugobjects.ts): "ODEBUG: free active …" when the object was
   * active at the check, "ODEBUG: activate/deactivate not available …" when
   * the check silently dropped it and its owner used it next.
   *
   * Upstream: f3c01d2f3ade ("mm: vmalloc: avoid racy handling of debugobjects
   * in vunmap", v4.18) moved debug_check_no_locks_freed and
   * debug_check_no_obj_freed ahead of remove_vm_area; the find_vmap_area(addr)
   * it took instead of remove_vm_area's return value later needed
   * 6ade20327dbb ("mm/vmalloc.c: don't dereference possible NULL pointer in
   * __vunmap()", v5.0), which vmsim follows.
   */
  "vunmap-debugobjects": {
    breaks: "__vunmap",
    kernel: "4.19",
    summary: "__vunmap checks for live debug objects after giving the area back",
    stress: false,
  },
  /**
   * alloc_vmap_area's search computes in the kernel's unsigned long: ALIGN()
   * of an address near the top of the address space to a huge alignment
   * carries out of bit 63 and wraps to 0, and `found:` checks only the end of
   * the hole (addr + size > vend), not its start. No second CPU is needed:
   *
   *   CPU0: __vmalloc_node_range(PAGE_SIZE, 1 << 48, VMALLOC_START, VMALLOC_END, …)
   *     alloc_vmap_area
   *       addr = ALIGN(0xffff000008000000, 1 << 48): 0 (the carry is lost)
   *       addr + size < addr? no
   *       first: the lowest area; the "hole" below it fits
   *     found: addr + size > vend? no
   *       va->va_start = 0, __insert_vmap_area(va)
   *     BUG_ON(va->va_start < vstart)
   *
   * What goes wrong: every alignment that rounds VMALLOC_START past the top
   * (from 2^48 on arm64 VA48, 2^28 on arm32) turns the start of the search
   * into address 0, below the range, and the allocator inserts an area there
   * before its BUG_ONs catch it. vmsim sees it as that BUG:
   * "kernel BUG at mm/vmalloc.c: alloc_vmap_area: 0x0000000000000000
   * outside its bounds". Unbroken, vmsim computes on kaddrs, where ALIGN does
   * not wrap and the carried-out address counts as an overflow — the
   * behaviour of the fix; the switch lets it wrap as the kernel's did.
   *
   * Upstream: afd07389d3f4 ("mm/vmalloc.c: fix kernel BUG at
   * mm/vmalloc.c:512!", v5.1): lib/test_vmalloc.c's align_shift_alloc_test
   * (one page aligned to 2^0 … 2^63) hit the BUG on 4.20; the fix adds
   * `|| addr < vstart` to the found: check, so the request fails instead.
   */
  "huge-align-wrap": {
    breaks: "alloc_vmap_area",
    kernel: "4.19",
    summary: "alloc_vmap_area lets ALIGN wrap to 0 on a huge alignment and keeps address 0",
    stress: false,
  },
  /**
   * pcpu_get_vm_areas, when the end of the group it is fitting lies above the
   * free area that holds the group's base, gives that free area up and moves
   * on to the next one below it, instead of lowering the base within it. No
   * second CPU is needed:
   *
   *   CPU0: pcpu_create_chunk → pcpu_get_vm_areas(offsets, sizes, 2, align)
   *     [groups of an earlier chunk busy at T-12u..T-8u and T-4u..T, hole between]
   *     last group (offset 6u, 2u) fits the hole: base = T-12u
   *     group 0 (offset 0, 2u): pvm_find_va_enclose_addr(base + 2u) is the
   *       free area F below T-12u, but base + 2u > F->va_end:
   *       va = rb_prev(F): the free space below VMALLOC_START
   *       base + last_end < vmalloc_start + last_end: overflow, purge, retry, fail
   *
   * What goes wrong: the search drops the one free area that would take the
   * group once its base is lowered — here the whole vmalloc space below the
   * earlier chunk — and walks down past VMALLOC_START: the chunk cannot be
   * made although the space is there, and pcpu_alloc warns "percpu:
   * allocation failed … failed to allocate new chunk" (and its callers
   * panic). vmsim sees that warning from the catalog's two-group chunk.
   *
   * Upstream: 5336e52c9ed3 ("mm/vmalloc.c: fix percpu free VM area search
   * criteria", v5.3-rc5, Fixes 68ad4a330433 "mm/vmalloc.c: keep track of free
   * blocks for vmap allocation", v5.2): Dave Hansen's slub panic and cgroup
   * mkdir's pcpu_alloc failures; the fix restores the step that moves base
   * down within the area (`base + end > va->va_end`) ahead of the one that
   * moves to the previous area.
   */
  "pvm-search-criteria": {
    breaks: "pcpu_get_vm_areas",
    kernel: "5.10",
    summary: "pcpu_get_vm_areas skips a free area whose end is below the group's end instead of lowering base",
    stress: false,
  },
  /**
   * new_vmap_block sets vb->cpu after xa_insert has published the block.
   *
   *   CPU0: vm_map_ram → vb_alloc                CPU1: vm_unmap_aliases
   *     new_vmap_block
   *       vb = kmalloc(): slab poison 0x6b…
   *       spin_lock_init(&vb->lock), vb->va,
   *       free, dirty, used_map, free_list
   *       xa_insert(addr_to_vb_xa(va_start), vb)
   *                                                xa_for_each(&vbq->vmap_blocks, vb)
   *                                                  spin_lock(&vb->lock)
   *                                                  purge_fragmented_block(vb)
   *                                                    per_cpu(vmap_block_queue, vb->cpu):
   *                                                    vb->cpu is 0x6b6b6b6b → UBSAN
   *       vb->cpu = raw_smp_processor_id()
   *
   * What goes wrong: the xarray is walked by every CPU that flushes or
   * purges (vm_unmap_aliases), so a block is everybody's the moment it is in
   * it. purge_fragmented_block computes the block's queue from vb->cpu
   * first, so a walker that reaches the block before the store indexes the
   * per-CPU offsets with whatever the slab left there. vmsim sees it as the
   * trap UBSAN's array-index-out-of-bounds check is on arm64: per_cpu_ptr's
   * "Internal error: UBSAN: array index out of bounds: per_cpu_ptr: index
   * 1802201963 is out of range for type 'unsigned long [2]'", a BUG on CPU1.
   *
   * Upstream: 3e3de7947c75 ("mm: vmalloc: ensure vmap_block is initialised
   * before adding to queue", v6.11-rc, Fixes 8c61291fd850, which had added
   * vb->cpu): seen on Android as "Internal error: UBSAN: array index out of
   * bounds" in purge_fragmented_block ← _vm_unmap_aliases ← set_memory_ro
   * at module load. The fix moves the store ahead of xa_insert.
   */
  "vb-cpu-after-insert": {
    breaks: "new_vmap_block",
    kernel: "6.12",
    summary: "new_vmap_block sets vb->cpu after xa_insert publishes the block",
    stress: false,
  },
  /**
   * _vm_unmap_aliases flushes only the blocks that are on a free list: a block
   * whose free space is used up (vb->free == 0) left its queue's free list in
   * vb_alloc, so its dirty range is never flushed.
   *
   *   CPU0
   *     vm_map_ram × VMAP_BBMAP_BITS / VMAP_MAX_ALLOC: vb_alloc takes the
   *       block's last pages, vb->free = 0: list_del_rcu(&vb->free_list)
   *     *x = stamp                 (CPU0's TLB: x → page P)
   *     vm_unmap_ram(x): vb_free unmaps, dirty_min/max cover x; the block
   *       still has mappings, so it is not freed or purged either
   *     vm_unmap_aliases
   *       [the walk skips the block: free == 0]
   *       nothing lazy, nothing dirty found: no flush_tlb_kernel_range
   *     P is reused: CPU0's TLB still maps x → P
   *
   * What goes wrong: vm_unmap_aliases promises that no CPU keeps a lazy
   * vmap translation of a page once it returns; callers rely on that to
   * change a page's attributes or give it away (set_memory_*, the x86 PAT
   * and Xen paths). A page mapped through a fully used block keeps its
   * alias, and writes through it land in the page's next life. vmsim sees it
   * as "stale-tlb": after vm_unmap_aliases, the catalog's check finds CPU0's
   * TLB still translating x to the page.
   *
   * Upstream: fc1e0d980037 ("mm/vmalloc: prevent stale TLBs in fully
   * utilized blocks", v6.5, Thomas Gleixner's vmap_block series): walk the
   * per-CPU xarrays, which hold every block, instead of the free lists; its
   * xa_for_each later needed 8c61291fd850 (the wrong vbq->lock) and
   * 3e3de7947c75 (vb->cpu set after xa_insert, "vb-cpu-after-insert").
   */
  "vb-full-not-flushed": {
    breaks: "_vm_unmap_aliases",
    kernel: "6.12",
    summary: "_vm_unmap_aliases skips fully used blocks (off the free list), leaving their dirty range unflushed",
    stress: false,
  },
  /**
   * purge_fragmented_block unlinks a block from its free list under the lock
   * of the queue whose xarray the caller walks, not of the queue the block is
   * on (vb->cpu): since v6.9 a block sits in the xarray its address hashes
   * to, which need not be its CPU's.
   *
   *   CPU0: vm_map_ram                          CPU1: vm_unmap_aliases
   *     [block B on vbq0->free, fragmented;       _vm_unmap_aliases
   *      B's address hashes to xarray 1]            xa_for_each(&vbq1->vmap_blocks): B
   *     vb_alloc: B too full → new_vmap_block         spin_lock(&B->lock)
   *       spin_lock(&vbq0->lock)                      purge_fragmented_block(B, vbq1)
   *       list_add_tail_rcu(&new->free_list,            spin_lock(&vbq1->lock)
   *                         &vbq0->free)                list_del_rcu(&B->free_list)
   *         head->prev == B, B->next = new …              B->prev->next = B->next …
   *
   * What goes wrong: the two list updates of vbq0->free run under different
   * locks, so they interleave: the new block is linked behind a block being
   * unlinked and is lost from the list, or the list's links stop agreeing.
   * A lost block is never used again, and every later vm_map_ram makes a new
   * one until the vmalloc space is gone (erofs and f2fs hung in
   * reclaim_and_purge_vmap_areas). vmsim sees the broken links with
   * CONFIG_DEBUG_LIST's checks: "list_add corruption" (or list_del's) from
   * the next update of that list.
   *
   * Upstream: 8c61291fd850 ("mm: fix incorrect vbq reference in
   * purge_fragmented_block", v6.10-rc, Fixes fc1e0d980037), by Zhaoyang
   * Huang after Hailong Liu's analysis: the fix records the owner in vb->cpu and
   * takes per_cpu(vmap_block_queue, vb->cpu)->lock; setting vb->cpu too late
   * then needed 3e3de7947c75 ("vb-cpu-after-insert").
   */
  "vb-purge-wrong-vbq": {
    breaks: "purge_fragmented_block",
    kernel: "6.12",
    summary: "purge_fragmented_block unlinks a block under the walked xarray's vbq->lock, not its owner's",
    stress: false,
  },
  /**
   * find_vmap_area_exceed_addr_lock keeps the busy.lock of the node with the
   * lowest match so far while it takes the next node's.
   *
   *   CPU0: vread(addr) → vread_iter
   *     find_vmap_area_exceed_addr_lock(addr)
   *       spin_lock(&vmap_nodes[0].busy.lock): a match, kept locked
   *       spin_lock(&vmap_nodes[1].busy.lock)
   *         lockdep: possible recursive locking detected (&vn->busy.lock)
   *
   * What goes wrong: every node's busy.lock is one lock class (one
   * spin_lock_init site), and the search holds two of them. The nodes are
   * taken in index order, so two readers cannot deadlock each other, but
   * lockdep cannot tell the instances apart and reports on the first read
   * that finds an area in any node but the last; with a lockdep splat on
   * every /proc/kcore read it checks nothing else. No second CPU is needed.
   * vmsim sees lockdep's "possible recursive locking detected" from
   * find_vmap_area_exceed_addr_lock.
   *
   * Upstream: fc2c22693c60 ("mm: vmalloc: fix lockdep warning", v6.9-rc3,
   * Fixes 53becf32aec1 "mm: vmalloc: support multiple nodes in vread_iter"),
   * reported by Jens Axboe reading /proc/kcore with drgn: the fix finds the
   * lowest start with one lock at a time, then locks its node and looks it
   * up again, repeating when it went away meanwhile.
   */
  "vn-busy-lock-nested": {
    breaks: "find_vmap_area_exceed_addr_lock",
    kernel: "6.12",
    summary: "find_vmap_area_exceed_addr_lock holds two nodes' busy.lock at once (lockdep)",
    stress: false,
  },
  /**
   * vb_free widens the block's dirty range (dirty_min, dirty_max) before it
   * takes vb->lock, while vm_unmap_aliases reads the range under that lock.
   *
   *   CPU0: vm_unmap_ram → vb_free             CPU1: vm_unmap_aliases
   *     vunmap_page_range(addr, addr + size)     rcu_read_lock()
   *     vb->dirty_min = min(vb->dirty_min, off)  list_for_each_entry_rcu(vb, &vbq0->free)
   *     vb->dirty_max = max(vb->dirty_max, …)      spin_lock(&vb->lock)
   *                                                s = va_start + vb->dirty_min * PAGE_SIZE
   *                                                e = va_start + vb->dirty_max * PAGE_SIZE
   *     spin_lock(&vb->lock)                       spin_unlock(&vb->lock)
   *     vb->dirty += 1 << order
   *
   * What goes wrong: the dirty range is what vm_unmap_aliases flushes, and
   * vb->lock is what keeps its two words and the dirty count consistent for
   * every CPU. Unlocked, two vb_frees of one block (vm_unmap_ram may run on
   * any CPU) each read the old bound and one widening is lost: that mapping's
   * translations survive vm_unmap_aliases until the whole block is purged,
   * and the caller, which asked for no aliases (set_memory_*, Xen, x86 PAT),
   * goes on with one. The stress mix unmaps each vm_map_ram on the CPU that
   * mapped it and looks at no TLB after vm_unmap_aliases, and a reader under
   * the lock only ever sees a range that still covers what was dirty before:
   * no check of today's fails (test/kcsan_proof.test.ts). KCSAN reports the
   * plain stores racing the locked reads: "data-race in vb_free /
   * vm_unmap_aliases".
   *
   * Kernel context: the range replaced the per-block dirty bitmap in v4.1
   * (7d61bfe8fddf "mm/vmalloc: get rid of dirty bitmap inside vmap_block
   * structure"), updated under vb->lock as the bitmap was; every later
   * kernel keeps it there, and v6.5 (fc1e0d980037) has vm_unmap_aliases
   * reset it after the flush, under the same lock.
   */
  "vb-dirty-range-unlocked": {
    breaks: "vb_free",
    kernel: "4.19",
    summary: "vb_free widens dirty_min/dirty_max before taking vb->lock (only KCSAN sees it)",
    stress: false,
    kcsan: true,
  },
  /**
   * alloc_vmap_area stores its search hint, free_vmap_cache, after it drops
   * vmap_area_lock, while the next CPU to take the lock reads the hint.
   *
   *   CPU0: vmalloc → alloc_vmap_area           CPU1: vmalloc → alloc_vmap_area
   *     spin_lock(&vmap_area_lock)                spin_lock(&vmap_area_lock): waits
   *     search from free_vmap_cache; insert va0
   *     spin_unlock(&vmap_area_lock)              … gets it
   *                                               first = free_vmap_cache (not va0 yet)
   *     free_vmap_cache = &va0->rb_node           search from first; insert va1
   *                                               free_vmap_cache = &va1->rb_node
   *
   * What goes wrong: free_vmap_cache, cached_hole_size, cached_vstart and
   * cached_align describe one state of the search together ("The vmap cache
   * globals are protected by vmap_area_lock"). Stored late, CPU0's hint
   * lands in the middle of CPU1's search or after it, overwriting CPU1's
   * hint and pairing CPU0's area with CPU1's hole size and parameters: the
   * next search starts from the wrong place and steps over holes it was
   * meant to reuse, so the address space fragments faster. The hint always
   * names an area on the tree (only its owner frees va0, after the store),
   * and the search walks the real list from it, so no area overlaps another
   * and, on a range as large as arm64's vmalloc area, no allocation fails:
   * the stress mix's checks stay quiet (test/kcsan_proof.test.ts). KCSAN
   * reports the plain store racing CPU1's locked read: "data-race in
   * __alloc_vmap_area_search / alloc_vmap_area".
   *
   * Kernel context: the hints came with "mm: vmap area cache" (89699605fe7c,
   * v3.2) and went with the free tree of v5.2 (68ad4a330433 "mm/vmalloc.c:
   * keep track of free blocks for vmap allocation"), whose state sits under
   * free_vmap_area_lock.
   */
  "vmap-cache-unlocked": {
    breaks: "alloc_vmap_area",
    kernel: "4.19",
    summary: "alloc_vmap_area stores free_vmap_cache after dropping vmap_area_lock (only KCSAN sees it)",
    stress: false,
    kcsan: true,
  },
  /**
   * setup_vmalloc_vm fills in the vm_struct and marks the area VM_VM_AREA
   * without vmap_area_lock, while vread (and /proc/vmallocinfo) walks
   * vmap_area_list under it.
   *
   *   CPU0: vmalloc → __get_vm_area_node        CPU1: vread(buf, addr, count)
   *     alloc_vmap_area: va on the list            spin_lock(&vmap_area_lock)
   *     setup_vmalloc_vm(area, va, …)              list_for_each_entry(va, &vmap_area_list)
   *       vm->flags, vm->addr, vm->size = …          if (!(va->flags & VM_VM_AREA)) continue
   *       va->vm = vm                                vm = va->vm
   *       va->flags |= VM_VM_AREA                    vaddr = vm->addr; vm->size …
   *
   * What goes wrong: the area is on the list from alloc_vmap_area on; the
   * lock is what makes "VM_VM_AREA set" imply "va->vm and its fields are
   * set" for a walker. Without it nothing orders the stores for another CPU:
   * on arm64 (or after the compiler reorders them) vread can see the flag
   * before va->vm or vm->size and copy from the wrong range or through
   * NULL, and s_show prints a half-made area. On the host's x86 the stores
   * land in program order, so the walker never sees a half-made area: the
   * stress mix's vread and its checks stay quiet (test/kcsan_proof.test.ts).
   * KCSAN reports the unlocked read-modify-write of va->flags racing the
   * walker's read: "data-race in setup_vmalloc_vm / vread".
   *
   * Kernel context: Joonsoo Kim's "mm, vmalloc: protect va->vm by
   * vmap_area_lock" (v3.10) moved this setup under vmap_area_lock so that
   * vmap_area_list walkers could replace vmlist.
   */
  "setup-vm-unlocked": {
    breaks: "setup_vmalloc_vm",
    kernel: "4.19",
    summary: "setup_vmalloc_vm fills the vm_struct and VM_VM_AREA without vmap_area_lock (only KCSAN sees it)",
    stress: false,
    kcsan: true,
  },
  /**
   * v5.10's setup_vmalloc_vm binds the vm_struct to its area (va->vm)
   * without vmap_area_lock, while vread walks vmap_area_list under it.
   *
   *   CPU0: vmalloc → __get_vm_area_node        CPU1: vread(buf, addr, count)
   *     alloc_vmap_area: va on the busy list       spin_lock(&vmap_area_lock)
   *     setup_vmalloc_vm(area, va, …)              list_for_each_entry(va, &vmap_area_list)
   *       vm->flags, vm->addr, vm->size = …          if (!va->vm) continue
   *       va->vm = vm                                vm = va->vm; vaddr = vm->addr …
   *
   * What goes wrong: since v5.4 (688fcbfc06e4, "mm/vmalloc: modify struct
   * vmap_area to reduce its size") there is no VM_VM_AREA: a non-NULL va->vm
   * alone tells a walker that the area has a vm_struct, so the walker must
   * not see va->vm before vm->addr and vm->size. The lock orders them; an
   * arm64 CPU without it may not. On x86 the walker sees the stores in
   * program order and nothing fails (test/kcsan_proof.test.ts). KCSAN
   * reports the plain store of va->vm racing the walker's read:
   * "data-race in setup_vmalloc_vm / vread".
   *
   * Kernel context: v5.10 keeps v3.10's rule (setup under vmap_area_lock,
   * "mm, vmalloc: protect va->vm by vmap_area_lock"); v6.9's vmap nodes bind the vm_struct in alloc_vmap_area
   * before the area is inserted, so no walker can reach it half made.
   */
  "kva-setup-vm-unlocked": {
    breaks: "setup_vmalloc_vm",
    kernel: "5.10",
    summary: "setup_vmalloc_vm sets va->vm without vmap_area_lock (only KCSAN sees it)",
    stress: false,
    kcsan: true,
  },
  /**
   * v6.12's vb_free widens the block's dirty range before it takes vb->lock,
   * while _vm_unmap_aliases reads the range and resets it under that lock.
   *
   *   CPU0: vm_unmap_ram → vb_free             CPU1: vm_unmap_aliases
   *                                              spin_lock(&vb->lock)
   *                                              s, e from vb->dirty_min, vb->dirty_max
   *     vb->dirty_min = min(vb->dirty_min, off)
   *     vb->dirty_max = max(vb->dirty_max, …)
   *                                              vb->dirty_min = VMAP_BBMAP_BITS
   *                                              vb->dirty_max = 0   (flushed)
   *                                              spin_unlock(&vb->lock)
   *     spin_lock(&vb->lock); vb->dirty += …
   *
   * What goes wrong: since fc1e0d980037 the walker resets the range it is
   * about to flush, so a widening that lands between its read and its reset
   * is erased: that mapping's TLB entries are never flushed by any later
   * vm_unmap_aliases, only when the whole block is purged — the stale alias
   * fc1e0d980037 set out to remove. The stress mix never looks at a TLB
   * after vm_unmap_aliases, and the freed range is not reused before the
   * block's purge flushes it, so its checks stay quiet
   * (test/kcsan_proof.test.ts). KCSAN reports the plain stores racing the
   * locked accesses: "data-race in vb_free / _vm_unmap_aliases".
   *
   * Kernel context: fc1e0d980037 ("mm/vmalloc: prevent stale TLBs in fully
   * utilized blocks", v6.5, Thomas Gleixner's vmap_block series) added the
   * reset; vb_free widens under vb->lock in every kernel.
   */
  "vn-dirty-range-unlocked": {
    breaks: "vb_free",
    kernel: "6.12",
    summary: "vb_free widens dirty_min/dirty_max before taking vb->lock (only KCSAN sees it)",
    stress: false,
    kcsan: true,
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
