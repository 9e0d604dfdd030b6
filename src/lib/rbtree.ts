/**
 * Red-black trees (lib/rbtree.c, include/linux/rbtree.h and
 * include/linux/rbtree_augmented.h, v4.19).
 *
 * An rb_node is embedded in its record; a node pointer is the arena address of
 * that rb_node and rb_entry (container_of) is `node - offsetof(record, member)`.
 * The parent pointer and the colour share one word, as in the kernel: records
 * are at least 4-aligned, so bit 0 holds the colour (0 red, 1 black).
 *
 * Callers search and link themselves, as in the kernel. `struct rb_node **link`
 * is the arena address of a pointer slot — `root + RB_ROOT.off.rb_node` or
 * `parent + RB_NODE.off.rb_left` / `rb_right`:
 *
 *   let link = root + RB_ROOT.off.rb_node, parent = 0, n;
 *   while ((n = I32[link >> 2]!) !== 0) {
 *     parent = n;
 *     link = n + (key < keyOf(n) ? RB_NODE.off.rb_left : RB_NODE.off.rb_right);
 *   }
 *   rb_link_node(node, parent, link);
 *   rb_insert_color(node, root);
 *
 * Every access is a plain typed-array access: the caller holds the tree's lock
 * (there are no lockless tree walkers in the code vmsim models).
 */
import { F64, I32, U32 } from "../shared/arena.js";
import { type StructDef, defineStruct } from "../shared/struct.js";
import { __WRITE_ONCE } from "../locks/atomic.js";

/** struct rb_node. Its guard is the lock of the tree it is on (vmap_area_lock, …). */
export const RB_NODE = defineStruct("rb_node", [
  /** Parent node address | colour (bit 0). */
  { name: "__rb_parent_color", type: "i32", guard: "the lock of the tree" },
  { name: "rb_right", type: "ptr", guard: "the lock of the tree" },
  { name: "rb_left", type: "ptr", guard: "the lock of the tree" },
]);

/** struct rb_root. A zeroed root is RB_ROOT, the empty tree. */
export const RB_ROOT = defineStruct("rb_root", [{ name: "rb_node", type: "ptr", guard: "the lock of the tree" }]);

/* Word indexes of the fields, added to `node >> 2`. */
const PC = RB_NODE.off.__rb_parent_color >> 2;
const RIGHT = RB_NODE.off.rb_right >> 2;
const LEFT = RB_NODE.off.rb_left >> 2;
const ROOT = RB_ROOT.off.rb_node >> 2;

export const RB_RED = 0;
export const RB_BLACK = 1;

/** rb_entry (container_of): the record whose rb_node member at offset `member` is `node`. */
export function rb_entry(node: number, member: number): number {
  return node - member;
}

/** rb_entry_safe: as rb_entry, NULL for a NULL node. */
export function rb_entry_safe(node: number, member: number): number {
  return node === 0 ? 0 : node - member;
}

/** rb_parent(r). */
export function rb_parent(node: number): number {
  return I32[(node >> 2) + PC]! & ~3;
}

/** node->rb_left. */
export function rb_left(node: number): number {
  return I32[(node >> 2) + LEFT]!;
}

/** node->rb_right. */
export function rb_right(node: number): number {
  return I32[(node >> 2) + RIGHT]!;
}

/** root->rb_node: the root node, NULL for an empty tree. */
export function rb_root_node(root: number): number {
  return I32[(root >> 2) + ROOT]!;
}

/** RB_EMPTY_ROOT(root) (v4.19): READ_ONCE(root->rb_node), as callers may ask without the tree's lock. */
export function RB_EMPTY_ROOT(root: number): boolean {
  return Atomics.load(I32, (root >> 2) + ROOT) === 0;
}

/** RB_EMPTY_NODE(node): true for a node that RB_CLEAR_NODE marked as on no tree (its parent is itself). */
export function RB_EMPTY_NODE(node: number): boolean {
  return I32[(node >> 2) + PC] === node;
}

/** RB_CLEAR_NODE(node). */
export function RB_CLEAR_NODE(node: number): void {
  I32[(node >> 2) + PC] = node;
}

/** rb_is_red(rb). */
export function rb_is_red(node: number): boolean {
  return (I32[(node >> 2) + PC]! & 1) === RB_RED;
}

/** rb_is_black(rb). */
export function rb_is_black(node: number): boolean {
  return (I32[(node >> 2) + PC]! & 1) === RB_BLACK;
}

function rb_set_black(node: number): void {
  I32[(node >> 2) + PC] |= RB_BLACK;
}

function rb_set_parent(node: number, parent: number): void {
  const i = (node >> 2) + PC;
  I32[i] = (I32[i]! & 1) | parent;
}

function rb_set_parent_color(node: number, parent: number, color: number): void {
  I32[(node >> 2) + PC] = parent | color;
}

/** rb_link_node (v4.19): makes `node` a red leaf below `parent`, stored into the pointer slot at `link`. */
export function rb_link_node(node: number, parent: number, link: number): void {
  const n = node >> 2;
  I32[n + PC] = parent;
  I32[n + LEFT] = 0;
  I32[n + RIGHT] = 0;
  I32[link >> 2] = node;
}

/*** Augmented rbtree callbacks (include/linux/rbtree_augmented.h) ***/

/** struct rb_augment_callbacks: keeps per-subtree data (vmap_area's subtree_max_size) up to date. */
export interface RbAugmentCallbacks {
  /** Recomputes the augmented value from `node` up to (not including) `stop`, stopping early when unchanged. */
  readonly propagate: (node: number, stop: number) => void;
  /** `newNode` takes `oldNode`'s place: copy the value (the subtree is the same). */
  readonly copy: (oldNode: number, newNode: number) => void;
  /** `newNode` rotated into `oldNode`'s place: it inherits the value, `oldNode` recomputes its own. */
  readonly rotate: (oldNode: number, newNode: number) => void;
}

/** What RB_DECLARE_CALLBACKS needs to know about the record. */
export interface RbDeclareCallbacks<F extends string> {
  /** The rb_node member of the record. */
  readonly rbfield: F;
  /** The augmented field (f64, i32, u32 or ptr). */
  readonly rbaugmented: F;
  /** The augmented value of a record (its address) from its own fields and its children's augmented values. */
  readonly rbcompute: (entry: number) => number;
}

/**
 * RB_DECLARE_CALLBACKS (v4.19): the three callbacks for records of `rbstruct`
 * whose augmented field is a function (`rbcompute`) of the record and its
 * children. Declare once at module load; the callbacks allocate nothing.
 */
export function RB_DECLARE_CALLBACKS<F extends string>(
  rbstruct: StructDef<F>,
  o: RbDeclareCallbacks<F>,
): RbAugmentCallbacks {
  const member = rbstruct.off[o.rbfield];
  const aug = rbstruct.off[o.rbaugmented];
  const type = rbstruct.fields.find((f) => f.name === o.rbaugmented)!.type;
  const compute = o.rbcompute;
  if (type === "f64") {
    return {
      propagate(rb, stop) {
        while (rb !== stop) {
          const node = rb - member;
          const augmented = compute(node);
          if (F64[(node + aug) >> 3] === augmented) break;
          F64[(node + aug) >> 3] = augmented;
          rb = rb_parent(rb);
        }
      },
      copy(rbOld, rbNew) {
        F64[(rbNew - member + aug) >> 3] = F64[(rbOld - member + aug) >> 3]!;
      },
      rotate(rbOld, rbNew) {
        const old = rbOld - member;
        F64[(rbNew - member + aug) >> 3] = F64[(old + aug) >> 3]!;
        F64[(old + aug) >> 3] = compute(old);
      },
    };
  }
  if (type !== "i32" && type !== "u32" && type !== "ptr")
    throw new TypeError(`RB_DECLARE_CALLBACKS: ${rbstruct.name}.${o.rbaugmented} is not a scalar`);
  // i32, u32 and ptr share the words; compare through the view of the field's signedness.
  const view = type === "u32" ? () => U32 : () => I32;
  return {
    propagate(rb, stop) {
      const v = view();
      while (rb !== stop) {
        const node = rb - member;
        const augmented = compute(node);
        if (v[(node + aug) >> 2] === augmented) break;
        v[(node + aug) >> 2] = augmented;
        rb = rb_parent(rb);
      }
    },
    copy(rbOld, rbNew) {
      I32[(rbNew - member + aug) >> 2] = I32[(rbOld - member + aug) >> 2]!;
    },
    rotate(rbOld, rbNew) {
      const old = rbOld - member;
      I32[(rbNew - member + aug) >> 2] = I32[(old + aug) >> 2]!;
      view()[(old + aug) >> 2] = compute(old);
    },
  };
}

/*** lib/rbtree.c ***/

function __rb_change_child(old: number, node: number, parent: number, root: number): void {
  if (parent !== 0) {
    const p = parent >> 2;
    // WRITE_ONCE, as rbtree_augmented.h: lockless readers (RB_EMPTY_ROOT, lockless lookups) see the links.
    if (I32[p + LEFT] === old) __WRITE_ONCE(parent + LEFT * 4, node);
    else __WRITE_ONCE(parent + RIGHT * 4, node);
  } else {
    __WRITE_ONCE(root + ROOT * 4, node);
  }
}

/** Rotation helper: `node` takes `old`'s parent and colour, `old` gets `node` as parent and `color`. */
function __rb_rotate_set_parents(old: number, node: number, root: number, color: number): void {
  const parent = rb_parent(old);
  I32[(node >> 2) + PC] = I32[(old >> 2) + PC]!;
  rb_set_parent_color(old, node, color);
  __rb_change_child(old, node, parent, root);
}

/**
 * __rb_insert (v4.19): rebalance after linking the red leaf `node`; `rotate` sees every rotation. Child links are
 * stored with WRITE_ONCE here and in the erase paths, as lib/rbtree.c does for lockless lookups (since v4.3).
 */
function __rb_insert(node: number, root: number, rotate: RbAugmentCallbacks["rotate"]): void {
  // A red node's parent word is the bare pointer.
  let parent = I32[(node >> 2) + PC]!;
  for (;;) {
    // Loop invariant: node is red.
    if (parent === 0) {
      // node is the root: the first node, or case 1 recursed up to it.
      rb_set_parent_color(node, 0, RB_BLACK);
      return;
    }
    // A black parent: no red-red violation, done.
    if (rb_is_black(parent)) return;
    const gparent = I32[(parent >> 2) + PC]!; // parent is red: the bare pointer
    let tmp = I32[(gparent >> 2) + RIGHT]!;
    if (parent !== tmp) {
      // parent is gparent's left child.
      if (tmp !== 0 && rb_is_red(tmp)) {
        // Case 1 — red uncle: recolour, and continue at gparent (its parent may be red).
        rb_set_parent_color(tmp, gparent, RB_BLACK);
        rb_set_parent_color(parent, gparent, RB_BLACK);
        node = gparent;
        parent = rb_parent(node);
        rb_set_parent_color(node, parent, RB_RED);
        continue;
      }
      tmp = I32[(parent >> 2) + RIGHT]!;
      if (node === tmp) {
        // Case 2 — black uncle, node is a right child: rotate left at parent, then case 3.
        tmp = I32[(node >> 2) + LEFT]!;
        __WRITE_ONCE(parent + RIGHT * 4, tmp);
        __WRITE_ONCE(node + LEFT * 4, parent);
        if (tmp !== 0) rb_set_parent_color(tmp, parent, RB_BLACK);
        rb_set_parent_color(parent, node, RB_RED);
        rotate(parent, node);
        parent = node;
        tmp = I32[(node >> 2) + RIGHT]!;
      }
      // Case 3 — black uncle, node is a left child: rotate right at gparent.
      __WRITE_ONCE(gparent + LEFT * 4, tmp); // == parent->rb_right
      __WRITE_ONCE(parent + RIGHT * 4, gparent);
      if (tmp !== 0) rb_set_parent_color(tmp, gparent, RB_BLACK);
      __rb_rotate_set_parents(gparent, parent, root, RB_RED);
      rotate(gparent, parent);
      return;
    }
    // parent is gparent's right child: the mirror image.
    tmp = I32[(gparent >> 2) + LEFT]!;
    if (tmp !== 0 && rb_is_red(tmp)) {
      // Case 1 — colour flips.
      rb_set_parent_color(tmp, gparent, RB_BLACK);
      rb_set_parent_color(parent, gparent, RB_BLACK);
      node = gparent;
      parent = rb_parent(node);
      rb_set_parent_color(node, parent, RB_RED);
      continue;
    }
    tmp = I32[(parent >> 2) + LEFT]!;
    if (node === tmp) {
      // Case 2 — rotate right at parent.
      tmp = I32[(node >> 2) + RIGHT]!;
      __WRITE_ONCE(parent + LEFT * 4, tmp);
      __WRITE_ONCE(node + RIGHT * 4, parent);
      if (tmp !== 0) rb_set_parent_color(tmp, parent, RB_BLACK);
      rb_set_parent_color(parent, node, RB_RED);
      rotate(parent, node);
      parent = node;
      tmp = I32[(node >> 2) + LEFT]!;
    }
    // Case 3 — rotate left at gparent.
    __WRITE_ONCE(gparent + RIGHT * 4, tmp); // == parent->rb_left
    __WRITE_ONCE(parent + LEFT * 4, gparent);
    if (tmp !== 0) rb_set_parent_color(tmp, gparent, RB_BLACK);
    __rb_rotate_set_parents(gparent, parent, root, RB_RED);
    rotate(gparent, parent);
    return;
  }
}

/**
 * __rb_erase_color (v4.19): after an erase removed a black node below
 * `parent`, restore equal black heights; `rotate` sees every rotation.
 */
export function __rb_erase_color(parent: number, root: number, rotate: RbAugmentCallbacks["rotate"]): void {
  let node = 0;
  for (;;) {
    // Loop invariants: node is black (or NULL at first), node is not the root,
    // and every path through parent and node is one black node short.
    let sibling = I32[(parent >> 2) + RIGHT]!;
    if (node !== sibling) {
      // node is parent's left child.
      if (rb_is_red(sibling)) {
        // Case 1 — red sibling: rotate left at parent so the sibling is black.
        const tmp1 = I32[(sibling >> 2) + LEFT]!;
        __WRITE_ONCE(parent + RIGHT * 4, tmp1);
        __WRITE_ONCE(sibling + LEFT * 4, parent);
        rb_set_parent_color(tmp1, parent, RB_BLACK);
        __rb_rotate_set_parents(parent, sibling, root, RB_RED);
        rotate(parent, sibling);
        sibling = tmp1;
      }
      let tmp1 = I32[(sibling >> 2) + RIGHT]!;
      if (tmp1 === 0 || rb_is_black(tmp1)) {
        const tmp2 = I32[(sibling >> 2) + LEFT]!;
        if (tmp2 === 0 || rb_is_black(tmp2)) {
          // Case 2 — black sibling with black children: make the sibling red; then
          // paint a red parent black, or carry the shortage up from a black one.
          rb_set_parent_color(sibling, parent, RB_RED);
          if (rb_is_red(parent)) {
            rb_set_black(parent);
          } else {
            node = parent;
            parent = rb_parent(node);
            if (parent !== 0) continue;
          }
          return;
        }
        // Case 3 — the sibling's left child is red: rotate right at the sibling, then case 4.
        tmp1 = I32[(tmp2 >> 2) + RIGHT]!;
        __WRITE_ONCE(sibling + LEFT * 4, tmp1);
        __WRITE_ONCE(tmp2 + RIGHT * 4, sibling);
        __WRITE_ONCE(parent + RIGHT * 4, tmp2);
        if (tmp1 !== 0) rb_set_parent_color(tmp1, sibling, RB_BLACK);
        rotate(sibling, tmp2);
        tmp1 = sibling;
        sibling = tmp2;
      }
      // Case 4 — the sibling's right child is red: rotate left at parent; the
      // sibling takes parent's colour, parent and that child turn black.
      const tmp2 = I32[(sibling >> 2) + LEFT]!;
      __WRITE_ONCE(parent + RIGHT * 4, tmp2);
      __WRITE_ONCE(sibling + LEFT * 4, parent);
      rb_set_parent_color(tmp1, sibling, RB_BLACK);
      if (tmp2 !== 0) rb_set_parent(tmp2, parent);
      __rb_rotate_set_parents(parent, sibling, root, RB_BLACK);
      rotate(parent, sibling);
      return;
    }
    // node is parent's right child: the mirror image.
    sibling = I32[(parent >> 2) + LEFT]!;
    if (rb_is_red(sibling)) {
      // Case 1 — rotate right at parent.
      const tmp1 = I32[(sibling >> 2) + RIGHT]!;
      __WRITE_ONCE(parent + LEFT * 4, tmp1);
      __WRITE_ONCE(sibling + RIGHT * 4, parent);
      rb_set_parent_color(tmp1, parent, RB_BLACK);
      __rb_rotate_set_parents(parent, sibling, root, RB_RED);
      rotate(parent, sibling);
      sibling = tmp1;
    }
    let tmp1 = I32[(sibling >> 2) + LEFT]!;
    if (tmp1 === 0 || rb_is_black(tmp1)) {
      const tmp2 = I32[(sibling >> 2) + RIGHT]!;
      if (tmp2 === 0 || rb_is_black(tmp2)) {
        // Case 2 — sibling colour flip.
        rb_set_parent_color(sibling, parent, RB_RED);
        if (rb_is_red(parent)) {
          rb_set_black(parent);
        } else {
          node = parent;
          parent = rb_parent(node);
          if (parent !== 0) continue;
        }
        return;
      }
      // Case 3 — rotate left at the sibling.
      tmp1 = I32[(tmp2 >> 2) + LEFT]!;
      __WRITE_ONCE(sibling + RIGHT * 4, tmp1);
      __WRITE_ONCE(tmp2 + LEFT * 4, sibling);
      __WRITE_ONCE(parent + LEFT * 4, tmp2);
      if (tmp1 !== 0) rb_set_parent_color(tmp1, sibling, RB_BLACK);
      rotate(sibling, tmp2);
      tmp1 = sibling;
      sibling = tmp2;
    }
    // Case 4 — rotate right at parent + colour flips.
    const tmp2 = I32[(sibling >> 2) + RIGHT]!;
    __WRITE_ONCE(parent + LEFT * 4, tmp2);
    __WRITE_ONCE(sibling + RIGHT * 4, parent);
    rb_set_parent_color(tmp1, sibling, RB_BLACK);
    if (tmp2 !== 0) rb_set_parent(tmp2, parent);
    __rb_rotate_set_parents(parent, sibling, root, RB_BLACK);
    rotate(parent, sibling);
    return;
  }
}

/**
 * __rb_erase_augmented (v4.19): unlinks `node`, keeping the augmented values
 * right; returns the node below which a black node went missing (NULL when
 * the colours were fixed locally) for __rb_erase_color.
 */
function __rb_erase_augmented(node: number, root: number, augment: RbAugmentCallbacks): number {
  const n = node >> 2;
  const child = I32[n + RIGHT]!;
  let tmp = I32[n + LEFT]!;
  let rebalance: number;
  if (tmp === 0) {
    // Case 1 — at most one child (the right one). A lone child is red and node
    // black, so recolouring the child in place keeps the black height.
    const pc = I32[n + PC]!;
    const parent = pc & ~3;
    __rb_change_child(node, child, parent, root);
    if (child !== 0) {
      I32[(child >> 2) + PC] = pc;
      rebalance = 0;
    } else {
      rebalance = (pc & 1) === RB_BLACK ? parent : 0;
    }
    tmp = parent;
  } else if (child === 0) {
    // Still case 1, the child is the left one.
    const pc = I32[n + PC]!;
    I32[(tmp >> 2) + PC] = pc;
    const parent = pc & ~3;
    __rb_change_child(node, tmp, parent, root);
    rebalance = 0;
    tmp = parent;
  } else {
    let successor = child;
    let parent: number;
    let child2: number;
    tmp = I32[(child >> 2) + LEFT]!;
    if (tmp === 0) {
      // Case 2 — the successor is node's right child: it moves up in place.
      parent = successor;
      child2 = I32[(successor >> 2) + RIGHT]!;
      augment.copy(node, successor);
    } else {
      // Case 3 — the successor is the leftmost node of the right subtree: unhook
      // it (its right child takes its place) and put it where node was.
      do {
        parent = successor;
        successor = tmp;
        tmp = I32[(tmp >> 2) + LEFT]!;
      } while (tmp !== 0);
      child2 = I32[(successor >> 2) + RIGHT]!;
      __WRITE_ONCE(parent + LEFT * 4, child2);
      __WRITE_ONCE(successor + RIGHT * 4, child);
      rb_set_parent(child, successor);
      augment.copy(node, successor);
      augment.propagate(parent, successor);
    }
    tmp = I32[n + LEFT]!;
    __WRITE_ONCE(successor + LEFT * 4, tmp);
    rb_set_parent(tmp, successor);

    const pc = I32[n + PC]!;
    __rb_change_child(node, successor, pc & ~3, root);
    if (child2 !== 0) {
      I32[(successor >> 2) + PC] = pc;
      rb_set_parent_color(child2, parent, RB_BLACK);
      rebalance = 0;
    } else {
      const pc2 = I32[(successor >> 2) + PC]!;
      I32[(successor >> 2) + PC] = pc;
      rebalance = (pc2 & 1) === RB_BLACK ? parent : 0;
    }
    tmp = successor;
  }
  augment.propagate(tmp, 0);
  return rebalance;
}

/* The plain tree's callbacks do nothing (the kernel's dummy_callbacks). */
function dummy_propagate(_node: number, _stop: number): void {}
function dummy_copy(_old: number, _new: number): void {}
function dummy_rotate(_old: number, _new: number): void {}
const dummy_callbacks: RbAugmentCallbacks = { propagate: dummy_propagate, copy: dummy_copy, rotate: dummy_rotate };

/** rb_insert_color (v4.19): rebalances after rb_link_node. */
export function rb_insert_color(node: number, root: number): void {
  __rb_insert(node, root, dummy_rotate);
}

/** rb_erase (v4.19): unlinks `node` and rebalances. */
export function rb_erase(node: number, root: number): void {
  const rebalance = __rb_erase_augmented(node, root, dummy_callbacks);
  if (rebalance !== 0) __rb_erase_color(rebalance, root, dummy_rotate);
}

/**
 * rb_insert_augmented (v4.19): as rb_insert_color for an augmented tree. The
 * caller has already updated the augmented values on the path down to `node`.
 */
export function rb_insert_augmented(node: number, root: number, augment: RbAugmentCallbacks): void {
  __rb_insert(node, root, augment.rotate);
}

/** rb_erase_augmented (v4.19): as rb_erase, keeping the augmented values right. */
export function rb_erase_augmented(node: number, root: number, augment: RbAugmentCallbacks): void {
  const rebalance = __rb_erase_augmented(node, root, augment);
  if (rebalance !== 0) __rb_erase_color(rebalance, root, augment.rotate);
}

/** rb_first (v4.19): the leftmost (smallest) node, NULL for an empty tree. */
export function rb_first(root: number): number {
  let n = I32[(root >> 2) + ROOT]!;
  if (n === 0) return 0;
  for (let l = I32[(n >> 2) + LEFT]!; l !== 0; l = I32[(n >> 2) + LEFT]!) n = l;
  return n;
}

/** rb_last (v4.19): the rightmost (largest) node, NULL for an empty tree. */
export function rb_last(root: number): number {
  let n = I32[(root >> 2) + ROOT]!;
  if (n === 0) return 0;
  for (let r = I32[(n >> 2) + RIGHT]!; r !== 0; r = I32[(n >> 2) + RIGHT]!) n = r;
  return n;
}

/** rb_next (v4.19): the in-order successor, NULL after the last node. */
export function rb_next(node: number): number {
  if (RB_EMPTY_NODE(node)) return 0;
  // With a right subtree: its leftmost node.
  let n = I32[(node >> 2) + RIGHT]!;
  if (n !== 0) {
    for (let l = I32[(n >> 2) + LEFT]!; l !== 0; l = I32[(n >> 2) + LEFT]!) n = l;
    return n;
  }
  // Otherwise the first ancestor of which we are in the left subtree.
  let parent: number;
  while ((parent = rb_parent(node)) !== 0 && node === I32[(parent >> 2) + RIGHT]) node = parent;
  return parent;
}

/** rb_prev (v4.19): the in-order predecessor, NULL before the first node. */
export function rb_prev(node: number): number {
  if (RB_EMPTY_NODE(node)) return 0;
  let n = I32[(node >> 2) + LEFT]!;
  if (n !== 0) {
    for (let r = I32[(n >> 2) + RIGHT]!; r !== 0; r = I32[(n >> 2) + RIGHT]!) n = r;
    return n;
  }
  let parent: number;
  while ((parent = rb_parent(node)) !== 0 && node === I32[(parent >> 2) + LEFT]) node = parent;
  return parent;
}

/** rb_replace_node (v4.19): `node` takes `victim`'s place (same position, colour and children) without rebalancing. */
export function rb_replace_node(victim: number, node: number, root: number): void {
  const v = victim >> 2;
  const n = node >> 2;
  const parent = I32[v + PC]! & ~3;
  // Copy the pointers and colour from the victim to the replacement.
  I32[n + PC] = I32[v + PC]!;
  I32[n + LEFT] = I32[v + LEFT]!;
  I32[n + RIGHT] = I32[v + RIGHT]!;
  if (I32[v + LEFT] !== 0) rb_set_parent(I32[v + LEFT]!, node);
  if (I32[v + RIGHT] !== 0) rb_set_parent(I32[v + RIGHT]!, node);
  __rb_change_child(victim, node, parent, root);
}

/*** Debug check (harness) ***/

/**
 * Checks the red-black properties of the tree at `root`: black root, no red
 * node with a red child, equal black height on every path, parent pointers
 * that match the child links, no cycles. Returns the first violation found,
 * or null. O(n); for tests and the quiescent-point checker, not hot paths.
 */
export function checkRbTree(root: number): string | null {
  const top = I32[(root >> 2) + ROOT]!;
  if (top === 0) return null;
  if (rb_parent(top) !== 0) return `root ${hex(top)} has parent ${hex(rb_parent(top))}`;
  if (!rb_is_black(top)) return `root ${hex(top)} is red`;
  // Iterative DFS: a corrupted tree may be deep or cyclic; a node count bound catches cycles.
  const limit = I32.length / 3;
  const stack: number[] = [top, 0];
  let blackHeight = -1;
  let seen = 0;
  while (stack.length > 0) {
    const blacks = stack.pop()!;
    const node = stack.pop()!;
    if (++seen > limit) return "more nodes than the arena can hold: the tree has a cycle";
    if ((node & 3) !== 0) return `node ${hex(node)} is not 4-aligned`;
    const b = blacks + (rb_is_black(node) ? 1 : 0);
    const children = [rb_left(node), rb_right(node)];
    for (const c of children) {
      if (c === 0) {
        if (blackHeight < 0) blackHeight = b;
        else if (b !== blackHeight) return `black height ${b} below ${hex(node)}, ${blackHeight} elsewhere`;
        continue;
      }
      if (rb_parent(c) !== node)
        return `node ${hex(c)} is a child of ${hex(node)} but its parent is ${hex(rb_parent(c))}`;
      if (rb_is_red(node) && rb_is_red(c)) return `red node ${hex(node)} has a red child ${hex(c)}`;
      stack.push(c, b);
    }
  }
  return null;
}

function hex(p: number): string {
  return `0x${(p >>> 0).toString(16)}`;
}
