/**
 * Deleting whole ranges from the record tree: the range is cut into aligned blocks (a block is
 * every key under one tree position, the first `depth` bits of its first key), and each block's
 * subtree is emptied. The tree stays compacted: an internal node left with no record becomes
 * empty, one left with a single record becomes that record's leaf (the leaf moves up), and only
 * an internal node with two or more records stays. The same routine runs over the host's stored
 * nodes and over the core's partial tree from proofs (docs/formats/record-tree.md, "Deleting
 * ranges"). Browser-safe, pure, deterministic.
 */
import { BkvError } from '../errors.js';
import { KEY_SIZE, MAX_DEPTH, checkKey, commonPrefixBits, compareKeys, keyBit, toHex } from './hash.js';
import { EMPTY_CHILD, childHash, treeNodeHash, type ChangedNode, type NodeReader, type TreeChild, type TreeNode } from './tree.js';

/** Every key whose first `depth` bits are `key`'s (the bits of `key` after `depth` are zero). */
export interface KeyBlock {
  key: Uint8Array;
  depth: number;
}

export interface DeleteResult {
  root: TreeChild;
  rootHash: Uint8Array;
  /** Internal nodes whose children changed (and which still have two or more records), deepest first. */
  changed: ChangedNode[];
  /**
   * Internal nodes above the blocks that no longer exist (no record or a single record left
   * under them), as positions (depth, a key below them). Every internal node at or below a block
   * is gone too; those are not listed (a store drops them by range).
   */
  removed: Array<{ depth: number; key: Uint8Array }>;
}

function withBit(key: Uint8Array, i: number): Uint8Array {
  const k = key.slice();
  k[i >> 3]! |= 0x80 >> (i & 7);
  return k;
}

/** The node at a position that the reader does not have: the caller can fetch a proof of `key`. */
export function missingPosition(depth: number, key: Uint8Array): BkvError {
  return new BkvError(
    'VERIFICATION_FAILED',
    `record tree: the subtree at depth ${depth} under ${toHex(key.subarray(0, 8))}… is not known`,
    { depth, key: toHex(key) },
  );
}

/** Checks blocks: aligned (no bit set after `depth`), in increasing key order, disjoint. */
export function checkBlocks(blocks: readonly KeyBlock[]): void {
  let prevEnd: Uint8Array | null = null;
  for (const b of blocks) {
    checkKey(b.key, 'block key');
    if (!Number.isInteger(b.depth) || b.depth < 0 || b.depth > MAX_DEPTH) throw new BkvError('USAGE', `block depth ${b.depth} is out of range`);
    for (let i = b.depth; i < MAX_DEPTH; i++) {
      if (keyBit(b.key, i)) throw new BkvError('USAGE', 'a block key has bits set after its depth');
    }
    if (prevEnd && compareKeys(b.key, prevEnd) <= 0) throw new BkvError('USAGE', 'blocks must be disjoint and in increasing order');
    prevEnd = lastKeyOf(b);
  }
}

/** The last key of a block (its prefix, then ones). */
export function lastKeyOf(b: KeyBlock): Uint8Array {
  const k = b.key.slice();
  for (let i = b.depth; i < MAX_DEPTH; i++) k[i >> 3]! |= 0x80 >> (i & 7);
  return k;
}

/**
 * The maximal aligned blocks of the keys k with from ≤ k < to (`to` null: up to the end of the
 * key space), in order. At most 2 × 256 blocks; none for an empty range.
 */
export function alignedKeyBlocks(from: Uint8Array, to: Uint8Array | null): KeyBlock[] {
  checkKey(from, 'from');
  if (to !== null) checkKey(to, 'to');
  const SPACE = 1n << 256n;
  const end = to === null ? SPACE : toBig(to);
  const out: KeyBlock[] = [];
  let cur = toBig(from);
  while (cur < end) {
    // The largest block that starts at `cur` (its size divides cur) and ends at or before `end`.
    let size = cur === 0n ? SPACE : cur & -cur;
    while (cur + size > end) size >>= 1n;
    let bits = 0;
    for (let x = size; x > 1n; x >>= 1n) bits++;
    out.push({ key: fromBig(cur), depth: MAX_DEPTH - bits });
    cur += size;
  }
  return out;
}

function toBig(k: Uint8Array): bigint {
  let x = 0n;
  for (const b of k) x = (x << 8n) | BigInt(b);
  return x;
}

function fromBig(x: bigint): Uint8Array {
  const k = new Uint8Array(KEY_SIZE);
  for (let i = KEY_SIZE - 1; i >= 0; i--) {
    k[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return k;
}

/**
 * Empties every block of `blocks` (aligned, increasing, disjoint: `checkBlocks`) in the tree whose
 * root child is `root`, reading internal nodes through `read`. Reads the nodes on the paths to the
 * blocks and, where a node is left with one side empty and the other an internal node it did not
 * change, that node too (to tell an internal node from a leaf known only by its hash): a reader
 * without it makes this throw `missingPosition` (VERIFICATION_FAILED, details depth and key).
 */
export function deleteBlocks(root: TreeChild, read: NodeReader, blocks: readonly KeyBlock[]): DeleteResult {
  checkBlocks(blocks);
  const changed: ChangedNode[] = [];
  const removed: Array<{ depth: number; key: Uint8Array }> = [];

  const inBlock = (key: Uint8Array, bs: readonly KeyBlock[]): boolean => bs.some((b) => commonPrefixBits(key, b.key) >= b.depth);

  // The subtree `c` at position (depth, pos) with the blocks below it (each within the position).
  const walk = (c: TreeChild, depth: number, pos: Uint8Array, bs: readonly KeyBlock[]): { child: TreeChild; changed: boolean } => {
    if (bs.length === 0 || c.kind === 'empty') return { child: c, changed: false };
    if (bs[0]!.depth === depth) return { child: EMPTY_CHILD, changed: true }; // the whole position is a block (blocks are disjoint: the only one)
    if (c.kind === 'leaf') return inBlock(c.key, bs) ? { child: EMPTY_CHILD, changed: true } : { child: c, changed: false };
    const n = read(depth, pos);
    if (!n) throw missingPosition(depth, pos);
    const right = withBit(pos, depth);
    const L = walk(n.left, depth + 1, pos, bs.filter((b) => keyBit(b.key, depth) === 0));
    const R = walk(n.right, depth + 1, right, bs.filter((b) => keyBit(b.key, depth) === 1));
    if (!L.changed && !R.changed) return { child: c, changed: false };
    const l = L.child;
    const r = R.child;
    if (l.kind === 'empty' || r.kind === 'empty') {
      const other = l.kind === 'empty' ? r : l;
      const otherChanged = l.kind === 'empty' ? R.changed : L.changed;
      if (other.kind !== 'node') {
        // Nothing or one record left under this node: it goes, and the leaf (if any) moves up.
        removed.push({ depth, key: pos });
        return { child: other, changed: true };
      }
      // An internal node on the other side: only one this routine built, or one the reader has,
      // is known to hold two or more records (a hash alone may be a leaf's).
      if (!otherChanged) {
        const otherPos = l.kind === 'empty' ? right : pos;
        if (!read(depth + 1, otherPos)) throw missingPosition(depth + 1, otherPos);
      }
    }
    const node: TreeNode = { left: l, right: r };
    const hash = treeNodeHash(node);
    changed.push({ depth, key: pos, node, hash });
    return { child: { kind: 'node', hash }, changed: true };
  };

  const top = walk(root, 0, new Uint8Array(KEY_SIZE), blocks);
  changed.sort((a, b) => b.depth - a.depth);
  return { root: top.child, rootHash: childHash(top.child), changed, removed };
}
