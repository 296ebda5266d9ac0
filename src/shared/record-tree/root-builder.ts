/**
 * Computes the record tree's root from records streamed in strictly increasing key order, with
 * memory bounded by the key length (at most 257 pending subtrees), whatever the number of
 * records. Optionally reports every internal node as it is completed (children before parents,
 * left before right: post-order), so a host can bulk-load its node table in one pass.
 * Browser-safe, pure.
 */
import { BkvError } from '../errors.js';
import { checkHash, checkKey, commonPrefixBits, compareKeys, keyBit, nodeHash, emptyHash, toHex } from './hash.js';
import { EMPTY_CHILD, type TreeChild, type TreeNode, childHash } from './tree.js';

/** Receives an internal node at `depth` (`key`: any key below it) with its children and hash. */
export type NodeSink = (depth: number, key: Uint8Array, node: TreeNode, hash: Uint8Array) => void;

interface Pending {
  /** The subtree, as a child at `depth`. */
  child: TreeChild;
  /** The depth at which `child` currently stands (only meaningful for internal nodes). */
  depth: number;
  /** A key below it (its first). */
  key: Uint8Array;
  /** The depth of the node that joins it with the pending subtree before it (-1: none). */
  join: number;
}

export class RootBuilder {
  private readonly stack: Pending[] = [];
  private prev: Uint8Array | null = null;
  private n = 0;
  private result: TreeChild | null = null;

  constructor(private readonly onNode?: NodeSink) {}

  /** How many records were added. */
  get count(): number {
    return this.n;
  }

  add(key: Uint8Array, valueHash: Uint8Array): void {
    if (this.result) throw new BkvError('USAGE', 'RootBuilder already finished');
    checkKey(key);
    checkHash(valueHash, 'value hash');
    const k = key.slice();
    const leaf: TreeChild = { kind: 'leaf', key: k, valueHash: valueHash.slice() };
    if (this.prev === null) {
      this.stack.push({ child: leaf, depth: 256, key: k, join: -1 });
    } else {
      if (compareKeys(this.prev, k) >= 0) {
        throw new BkvError('USAGE', `RootBuilder: keys must be strictly increasing (key ${toHex(k.subarray(0, 8))}… after ${toHex(this.prev.subarray(0, 8))}…)`);
      }
      const c = commonPrefixBits(this.prev, k);
      while (this.stack.length >= 2 && this.stack[this.stack.length - 1]!.join > c) this.mergeTop();
      // The subtree holding the previous key becomes the left child of the node at depth c.
      this.lift(this.stack[this.stack.length - 1]!, c + 1);
      this.stack.push({ child: leaf, depth: 256, key: k, join: c });
    }
    this.prev = k;
    this.n++;
  }

  private mergeTop(): void {
    const right = this.stack.pop()!;
    const left = this.stack.pop()!;
    const s = right.join;
    this.lift(right, s + 1); // `left` was lifted to s + 1 when `right` began
    const node: TreeNode = { left: left.child, right: right.child };
    const hash = nodeHash(childHash(left.child), childHash(right.child));
    this.onNode?.(s, left.key, node, hash);
    this.stack.push({ child: { kind: 'node', hash }, depth: s, key: left.key, join: left.join });
  }

  /** Raises an internal node to stand at depth `to`, through single-child nodes; a leaf stays a leaf. */
  private lift(e: Pending, to: number): void {
    if (e.child.kind !== 'node') {
      e.depth = to;
      return;
    }
    let child = e.child;
    for (let j = e.depth - 1; j >= to; j--) {
      const node: TreeNode = keyBit(e.key, j) === 0 ? { left: child, right: EMPTY_CHILD } : { left: EMPTY_CHILD, right: child };
      const hash = keyBit(e.key, j) === 0 ? nodeHash(child.hash, emptyHash()) : nodeHash(emptyHash(), child.hash);
      this.onNode?.(j, e.key, node, hash);
      child = { kind: 'node', hash };
    }
    e.child = child;
    e.depth = to;
  }

  /** The root as a child (empty, one leaf, or an internal node). */
  finishChild(): TreeChild {
    if (this.result) return this.result;
    while (this.stack.length >= 2) this.mergeTop();
    const last = this.stack[0];
    if (!last) {
      this.result = EMPTY_CHILD;
    } else {
      this.lift(last, 0);
      this.result = last.child;
    }
    this.stack.length = 0;
    return this.result;
  }

  /** The root hash (32 zero bytes when nothing was added). */
  finish(): Uint8Array {
    return childHash(this.finishChild());
  }
}
