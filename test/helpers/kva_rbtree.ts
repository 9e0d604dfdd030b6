/**
 * A red-black tree with the shapes lib/rbtree.c gives (insert: __rb_insert; erase: __rb_erase_augmented,
 * which replaces a two-child node by its successor, then ____rb_erase_color). The reference model needs
 * the shape and not only the set: v5.10/v6.12's find_vmap_lowest_match walks the augmented free tree,
 * and with an alignment-adjusted search length which hole it returns depends on the path it takes.
 *
 * Written for the reference model alone (test/helpers/kva_model.ts), independent of src/lib/rbtree.ts.
 */

/** One node: a free block [start, end) and its augmented value (the largest block size in its subtree). */
export interface RbNode {
  start: bigint;
  end: bigint;
  left: RbNode | null;
  right: RbNode | null;
  parent: RbNode | null;
  red: boolean;
  subtreeMax: bigint;
}

export function newNode(start: bigint, end: bigint): RbNode {
  return { start, end, left: null, right: null, parent: null, red: true, subtreeMax: end - start };
}

const isRed = (n: RbNode | null): boolean => n?.red === true;

export class RbTree {
  root: RbNode | null = null;

  /** Replaces `old` by `neu` in old's parent (or at the root): __rb_change_child. */
  private changeChild(old: RbNode, neu: RbNode | null, parent: RbNode | null): void {
    if (parent === null) this.root = neu;
    else if (parent.left === old) parent.left = neu;
    else parent.right = neu;
  }

  private rotateLeft(x: RbNode): void {
    const y = x.right!;
    x.right = y.left;
    if (y.left) y.left.parent = x;
    y.parent = x.parent;
    this.changeChild(x, y, x.parent);
    y.left = x;
    x.parent = y;
  }

  private rotateRight(x: RbNode): void {
    const y = x.left!;
    x.left = y.right;
    if (y.right) y.right.parent = x;
    y.parent = x.parent;
    this.changeChild(x, y, x.parent);
    y.right = x;
    x.parent = y;
  }

  /** rb_link_node + rb_insert_color: `node` goes to `parent`'s `side` slot (the slot a BST descent found). */
  link(node: RbNode, parent: RbNode | null, side: "left" | "right"): void {
    node.parent = parent;
    node.left = node.right = null;
    node.red = true;
    if (parent === null) this.root = node;
    else parent[side] = node;
    this.insertColor(node);
    this.updateAugment();
  }

  /** __rb_insert: recolour while the uncle is red, else one or two rotations at the grandparent. */
  private insertColor(node: RbNode): void {
    let n = node;
    for (;;) {
      const p = n.parent;
      if (p === null) {
        n.red = false;
        return;
      }
      if (!p.red) return;
      const g = p.parent!;
      if (p === g.left) {
        const uncle = g.right;
        if (isRed(uncle)) {
          uncle!.red = false;
          p.red = false;
          g.red = true;
          n = g;
          continue;
        }
        let top = p;
        if (n === p.right) {
          this.rotateLeft(p);
          top = n;
        }
        this.rotateRight(g);
        top.red = false;
        g.red = true;
        return;
      }
      const uncle = g.left;
      if (isRed(uncle)) {
        uncle!.red = false;
        p.red = false;
        g.red = true;
        n = g;
        continue;
      }
      let top = p;
      if (n === p.left) {
        this.rotateRight(p);
        top = n;
      }
      this.rotateLeft(g);
      top.red = false;
      g.red = true;
      return;
    }
  }

  /** __rb_erase_augmented + ____rb_erase_color. */
  erase(node: RbNode): void {
    let rebalance: RbNode | null = null;
    const parent = node.parent;
    if (node.left === null || node.right === null) {
      const child = node.left ?? node.right;
      this.changeChild(node, child, parent);
      if (child) {
        // The only child of a node with one child is red: it takes the node's place and colour.
        child.parent = parent;
        child.red = node.red;
      } else if (!node.red) rebalance = parent;
    } else {
      let successor = node.right;
      let succParent: RbNode;
      let child2: RbNode | null;
      if (successor.left === null) {
        succParent = successor;
        child2 = successor.right;
      } else {
        do {
          succParent = successor;
          successor = successor.left!;
        } while (successor.left !== null);
        child2 = successor.right;
        succParent.left = child2;
        successor.right = node.right;
        node.right.parent = successor;
      }
      successor.left = node.left;
      node.left.parent = successor;
      this.changeChild(node, successor, parent);
      if (child2) {
        child2.parent = succParent;
        child2.red = false;
      } else if (!successor.red) rebalance = succParent;
      successor.parent = parent;
      successor.red = node.red;
    }
    node.left = node.right = node.parent = null;
    if (rebalance) this.eraseColor(rebalance);
    this.updateAugment();
  }

  /** ____rb_erase_color: `parent` lost a black node on one side (the side whose child is `n`, null at first). */
  private eraseColor(parentIn: RbNode): void {
    let n: RbNode | null = null;
    let parent: RbNode = parentIn;
    for (;;) {
      if (n !== parent.right) {
        let sib = parent.right!;
        if (sib.red) {
          this.rotateLeft(parent);
          sib.red = false;
          parent.red = true;
          sib = parent.right!;
        }
        if (!isRed(sib.right)) {
          if (!isRed(sib.left)) {
            sib.red = true;
            if (parent.red) {
              parent.red = false;
              return;
            }
            n = parent;
            if (parent.parent === null) return;
            parent = parent.parent;
            continue;
          }
          this.rotateRight(sib);
          sib = parent.right!;
        }
        this.rotateLeft(parent);
        sib.red = parent.red;
        parent.red = false;
        sib.right!.red = false;
        return;
      }
      let sib = parent.left!;
      if (sib.red) {
        this.rotateRight(parent);
        sib.red = false;
        parent.red = true;
        sib = parent.left!;
      }
      if (!isRed(sib.left)) {
        if (!isRed(sib.right)) {
          sib.red = true;
          if (parent.red) {
            parent.red = false;
            return;
          }
          n = parent;
          if (parent.parent === null) return;
          parent = parent.parent;
          continue;
        }
        this.rotateLeft(sib);
        sib = parent.left!;
      }
      this.rotateRight(parent);
      sib.red = parent.red;
      parent.red = false;
      sib.left!.red = false;
      return;
    }
  }

  /** The augmented values, recomputed from the leaves (what the kernel's propagation keeps up to date). */
  updateAugment(): void {
    const walk = (n: RbNode | null): bigint => {
      if (n === null) return 0n;
      const l = walk(n.left);
      const r = walk(n.right);
      let m = n.end - n.start;
      if (l > m) m = l;
      if (r > m) m = r;
      n.subtreeMax = m;
      return m;
    };
    walk(this.root);
  }

  first(): RbNode | null {
    let n = this.root;
    while (n?.left) n = n.left;
    return n;
  }

  last(): RbNode | null {
    let n = this.root;
    while (n?.right) n = n.right;
    return n;
  }

  static next(n: RbNode): RbNode | null {
    if (n.right) {
      let m = n.right;
      while (m.left) m = m.left;
      return m;
    }
    let c = n;
    while (c.parent && c === c.parent.right) c = c.parent;
    return c.parent;
  }

  static prev(n: RbNode): RbNode | null {
    if (n.left) {
      let m = n.left;
      while (m.right) m = m.right;
      return m;
    }
    let c = n;
    while (c.parent && c === c.parent.left) c = c.parent;
    return c.parent;
  }

  /** In address order. */
  *nodes(): Generator<RbNode> {
    for (let n = this.first(); n; n = RbTree.next(n)) yield n;
  }

  /** find_va_links: the slot [start, end) goes to; null on overlap (the kernel WARNs). */
  findLinks(start: bigint, end: bigint): { parent: RbNode | null; side: "left" | "right" } | null {
    let parent: RbNode | null = null;
    let side: "left" | "right" = "left";
    for (let n = this.root; n; n = n[side]) {
      parent = n;
      if (end <= n.start) side = "left";
      else if (start >= n.end) side = "right";
      else return null;
    }
    return { parent, side };
  }
}

export const subtreeMax = (n: RbNode | null): bigint => (n === null ? 0n : n.subtreeMax);
