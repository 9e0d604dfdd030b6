/**
 * kvfree_rcu for vmalloc'ed objects (include/linux/rcupdate.h and
 * kernel/rcu/tree.c of v5.9–v6.12; mm/slab_common.c since v6.13): free an
 * object after a grace period, on top of call_rcu (src/rcu/tree.ts). v4.19
 * has only kfree_rcu; lib/test_vmalloc.c's kvfree_rcu tests need the later
 * API, so it is modelled here in the kernel's spirit:
 *
 * - kvfree_rcu(ptr, rhf), the two-argument form: the object embeds a
 *   `struct rcu_head` at offset rhf, and that head is queued. The kernel gets
 *   the object back from the head's address; vmsim's head is written through
 *   the linear alias of the object's page (call_rcu's records are arena
 *   offsets, a vmalloc address is not), which no longer encodes the vmalloc
 *   address. So the object reserves KVFREE_RCU_HEAD_SIZE bytes — what
 *   struct rcu_head takes on a 64-bit kernel — and vmsim's 8-byte rcu_head is
 *   followed by the object's address (since v5.12 the kernel, too, keeps the
 *   object's pointer in its head: in head->func).
 * - kvfree_rcu_mightsleep(ptr), the one-argument form (kvfree_rcu(ptr) before
 *   v6.3): no head in the object. The kernel parks the pointer in a
 *   separately allocated page of pointers and, when it cannot get one, falls
 *   back to synchronize_rcu() and a direct kvfree(). vmsim's separate record
 *   holds one pointer; the fallback is the kernel's.
 *
 * The callbacks run where RCU callbacks run (softirq context, see tree.ts),
 * so their vfree takes vfree's deferred path (in_interrupt()) and the area is
 * freed later by free_work in a kworker. vmsim cannot tell a kmalloc pointer
 * (an arena offset) from a vmalloc address by value, so this kvfree_rcu is for
 * vmalloc'ed objects; kmalloc'ed records use kfree_rcu, or
 * kfree_rcu_mightsleep for the one-argument form.
 */
import { F64 } from "../shared/arena.js";
import { PAGE_SIZE } from "../shared/config.js";
import { defineKernelFn } from "../shared/functab.js";
import { KernelBug } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { might_sleep } from "../locks/might_sleep.js";
import { RCU_HEAD } from "../rcu/rcupdate.js";
import { call_rcu, synchronize_rcu } from "../rcu/tree.js";
import { GFP_KERNEL, __GFP_NOWARN } from "./gfp.js";
import { page_address } from "./mm_types.js";
import { kfree, kmalloc } from "./slab.js";
import { vfree, vmalloc_to_page } from "./vmalloc.js";

/** vmsim's rcu_head for kvfree_rcu: the rcu_head, then the kaddr of the object it frees. */
const KVFREE_RCU_HEAD = defineStruct("kvfree_rcu_head", [
  { name: "rcu", type: RCU_HEAD },
  { name: "ptr", type: "f64", guard: "init" },
]);

/** Bytes an object reserves at `rhf` for kvfree_rcu(ptr, rhf): sizeof(struct rcu_head) on a 64-bit kernel. */
export const KVFREE_RCU_HEAD_SIZE = KVFREE_RCU_HEAD.size;

/** The RCU callback of the two-argument form: the head sits in the object it frees (kvfree of it: vfree). */
function kvfree_rcu_reclaim(head: number): void {
  vfree(F64[(head + KVFREE_RCU_HEAD.off.ptr) >> 3]!);
}
const KVFREE_RCU_RECLAIM = defineKernelFn("kvfree_rcu_reclaim", kvfree_rcu_reclaim);

/** The RCU callback of the one-argument form: the head is a record of its own. */
function kvfree_rcu_headless_reclaim(head: number): void {
  const ptr = F64[(head + KVFREE_RCU_HEAD.off.ptr) >> 3]!;
  kfree(head);
  vfree(ptr);
}
const KVFREE_RCU_HEADLESS_RECLAIM = defineKernelFn("kvfree_rcu_headless_reclaim", kvfree_rcu_headless_reclaim);

/**
 * kvfree_rcu(ptr, rhf): vfree the vmalloc'ed object `ptr` after a grace
 * period, through the rcu_head slot at byte offset `rhf` of the object
 * (KVFREE_RCU_HEAD_SIZE bytes, 8-aligned, within its first page's bytes
 * from `ptr`). Any context but NMI, as call_rcu.
 */
export function kvfree_rcu(ptr: number, rhf: number): void {
  const at = ptr + rhf;
  if (rhf % 8 !== 0 || (at % PAGE_SIZE) + KVFREE_RCU_HEAD_SIZE > PAGE_SIZE)
    throw new KernelBug(`kvfree_rcu: rcu_head at offset ${rhf} is not 8-aligned within one page`);
  const page = vmalloc_to_page(at);
  if (!page) throw new KernelBug(`kvfree_rcu: ${ptr.toString(16)} is not a mapped vmalloc address`);
  const head = page_address(page) + (at % PAGE_SIZE);
  F64[(head + KVFREE_RCU_HEAD.off.ptr) >> 3] = ptr;
  call_rcu(head + KVFREE_RCU_HEAD.off.rcu, KVFREE_RCU_RECLAIM);
}

/**
 * kvfree_rcu_mightsleep(ptr) (v6.3; kvfree_rcu(ptr) in v5.9–v6.2): vfree the
 * vmalloc'ed object `ptr` after a grace period, without a head in the object.
 * May sleep: without memory for its record it waits for the grace period.
 */
export function kvfree_rcu_mightsleep(ptr: number): void {
  might_sleep();
  const head = kmalloc(KVFREE_RCU_HEAD.size, GFP_KERNEL | __GFP_NOWARN);
  if (!head) {
    synchronize_rcu();
    vfree(ptr);
    return;
  }
  F64[(head + KVFREE_RCU_HEAD.off.ptr) >> 3] = ptr;
  call_rcu(head + KVFREE_RCU_HEAD.off.rcu, KVFREE_RCU_HEADLESS_RECLAIM);
}

/** The RCU callback of kfree_rcu_mightsleep: the head is a record of its own, the object a kmalloc'ed one. */
function kfree_rcu_headless_reclaim(head: number): void {
  const ptr = F64[(head + KVFREE_RCU_HEAD.off.ptr) >> 3]!;
  kfree(head);
  kfree(ptr);
}
const KFREE_RCU_HEADLESS_RECLAIM = defineKernelFn("kfree_rcu_headless_reclaim", kfree_rcu_headless_reclaim);

/**
 * kfree_rcu_mightsleep(ptr) (v6.3; kvfree_rcu(ptr) of a kmalloc'ed object in
 * v5.9–v6.2): kfree `ptr` after a grace period, without a head in the object,
 * as kvfree_rcu_mightsleep does for vmalloc'ed ones.
 */
export function kfree_rcu_mightsleep(ptr: number): void {
  might_sleep();
  const head = kmalloc(KVFREE_RCU_HEAD.size, GFP_KERNEL | __GFP_NOWARN);
  if (!head) {
    synchronize_rcu();
    kfree(ptr);
    return;
  }
  F64[(head + KVFREE_RCU_HEAD.off.ptr) >> 3] = ptr;
  call_rcu(head + KVFREE_RCU_HEAD.off.rcu, KFREE_RCU_HEADLESS_RECLAIM);
}
