/**
 * The record tree's nodes as both sides see them, and the routines over them: proving a key,
 * updating a tree whose nodes are read through a callback (the host's database or the core's
 * partial tree built from proofs), and `applyUpdates`, which the core runs for a committed batch.
 * Browser-safe, pure, deterministic.
 *
 * A child of an internal node is empty, one leaf (a subtree with exactly one record is that
 * record's leaf, wherever it sits), or another internal node known by its hash. An internal node
 * always has at least two leaves below it (a range deletion, `delete.ts`, keeps it so).
 */
import { BkvError } from '../errors.js';
import {
  HASH_SIZE,
  MAX_DEPTH,
  bytesEqual,
  checkHash,
  checkKey,
  commonPrefixBits,
  emptyHash,
  isZeroHash,
  keyBit,
  leafHash,
  nodeHash,
  toHex,
} from './hash.js';
import { type Proof, type ProofInput, type Terminal, proofPathHashes, toProof } from './proof.js';

export type TreeChild =
  | { kind: 'empty' }
  | { kind: 'leaf'; key: Uint8Array; valueHash: Uint8Array }
  | { kind: 'node'; hash: Uint8Array };

/** An internal node: its two children. */
export interface TreeNode {
  left: TreeChild;
  right: TreeChild;
}

/**
 * Reads the internal node at `depth` on `key`'s path (the node whose position is the first
 * `depth` bits of `key`), or undefined when the reader does not have it.
 */
export type NodeReader = (depth: number, key: Uint8Array) => TreeNode | undefined;

export const EMPTY_CHILD: TreeChild = Object.freeze({ kind: 'empty' }) as TreeChild;

export function childHash(c: TreeChild): Uint8Array {
  switch (c.kind) {
    case 'empty':
      return emptyHash();
    case 'leaf':
      return leafHash(c.key, c.valueHash);
    case 'node':
      return c.hash;
  }
}

export function treeNodeHash(n: TreeNode): Uint8Array {
  return nodeHash(childHash(n.left), childHash(n.right));
}

/** The child that a root hash stands for when nothing else is known about it. */
export function rootChild(root: Uint8Array): TreeChild {
  checkHash(root, 'root');
  return isZeroHash(root) ? EMPTY_CHILD : { kind: 'node', hash: root.slice() };
}

/** A string naming the position of the subtree at `depth` on `key`'s path. */
export function positionId(depth: number, key: Uint8Array): string {
  const full = depth >> 3;
  let s = depth.toString(16) + ':';
  for (let i = 0; i < full; i++) s += (key[i] as number).toString(16).padStart(2, '0');
  const rest = depth & 7;
  if (rest) s += ((key[full] as number) & (0xff00 >> rest) & 0xff).toString(16).padStart(2, '0');
  return s;
}

function missingNode(depth: number, key: Uint8Array): BkvError {
  return new BkvError(
    'VERIFICATION_FAILED',
    `record tree: the internal node at depth ${depth} on the path of key ${toHex(key.subarray(0, 8))}… is unknown`,
    { depth, key: toHex(key) },
  );
}

/** The proof for `key` in the tree whose root child is `root`, reading internal nodes with `read`. */
export function prove(root: TreeChild, read: NodeReader, key: Uint8Array): Proof {
  checkKey(key);
  const siblings: Uint8Array[] = [];
  let c = root;
  let d = 0;
  while (c.kind === 'node') {
    if (d >= MAX_DEPTH) throw missingNode(d, key);
    const n = read(d, key);
    if (!n) throw missingNode(d, key);
    if (keyBit(key, d) === 0) {
      siblings.push(childHash(n.right));
      c = n.left;
    } else {
      siblings.push(childHash(n.left));
      c = n.right;
    }
    d++;
  }
  const terminal: Terminal = c.kind === 'empty' ? { kind: 'empty' } : { kind: 'leaf', key: c.key, valueHash: c.valueHash };
  return { terminal, siblings };
}

/** An internal node written by an update: its position (depth, any key below it), children, hash. */
export interface ChangedNode {
  depth: number;
  key: Uint8Array;
  node: TreeNode;
  hash: Uint8Array;
}

export interface UpdateResult {
  root: TreeChild;
  rootHash: Uint8Array;
  /** Every internal node created or changed, deepest first (each position once). */
  changed: ChangedNode[];
  /** How many keys were new. */
  inserted: number;
}

interface Work {
  depth: number;
  key: Uint8Array;
  node: TreeNode;
}

const PLACEHOLDER: TreeChild = Object.freeze({ kind: 'node', hash: new Uint8Array(HASH_SIZE) }) as TreeChild;

/**
 * Inserts and updates keys of a tree in order, reading the nodes it needs through `read` (never
 * writing through it), then recomputes the hashes once in `finish`. The same key may be set twice
 * (the later value wins). A node on a key's path that `read` does not have throws
 * BkvError('VERIFICATION_FAILED').
 */
export class TreeUpdater {
  private root: TreeChild;
  private readonly work = new Map<string, Work>();
  private inserted = 0;
  private finished = false;

  constructor(
    root: TreeChild,
    private readonly read: NodeReader,
  ) {
    this.root = root;
  }

  private load(depth: number, key: Uint8Array): Work {
    const id = positionId(depth, key);
    let w = this.work.get(id);
    if (!w) {
      const n = this.read(depth, key);
      if (!n) throw missingNode(depth, key);
      w = { depth, key, node: { left: n.left, right: n.right } };
      this.work.set(id, w);
    }
    return w;
  }

  /** Sets `key` to `valueHash`; returns whether the key was new. */
  set(key: Uint8Array, valueHash: Uint8Array): 'inserted' | 'updated' {
    if (this.finished) throw new BkvError('USAGE', 'TreeUpdater already finished');
    checkKey(key);
    checkHash(valueHash, 'value hash');
    const k = key.slice();
    const leaf: TreeChild = { kind: 'leaf', key: k, valueHash: valueHash.slice() };
    let holder: Work | null = null;
    let d = 0;
    let c = this.root;
    for (;;) {
      if (c.kind === 'node') {
        if (d >= MAX_DEPTH) throw missingNode(d, k);
        holder = this.load(d, k);
        c = keyBit(k, d) === 0 ? holder.node.left : holder.node.right;
        d++;
        continue;
      }
      let result: 'inserted' | 'updated';
      let put: TreeChild;
      if (c.kind === 'empty') {
        put = leaf;
        result = 'inserted';
      } else if (bytesEqual(c.key, k)) {
        put = leaf;
        result = 'updated';
      } else {
        put = this.split(d, c, leaf as Extract<TreeChild, { kind: 'leaf' }>);
        result = 'inserted';
      }
      if (holder === null) this.root = put;
      else if (keyBit(k, d - 1) === 0) holder.node.left = put;
      else holder.node.right = put;
      if (result === 'inserted') this.inserted++;
      return result;
    }
  }

  /** Replaces the leaf `old` at `depth` by the internal nodes that separate it from `leaf`. */
  private split(
    depth: number,
    old: Extract<TreeChild, { kind: 'leaf' }>,
    leaf: Extract<TreeChild, { kind: 'leaf' }>,
  ): TreeChild {
    const cpl = commonPrefixBits(old.key, leaf.key);
    if (cpl < depth) {
      throw new BkvError(
        'VERIFICATION_FAILED',
        `record tree: the leaf of key ${toHex(old.key.subarray(0, 8))}… sits off its own path at depth ${depth}`,
      );
    }
    const k = leaf.key;
    const bottom: TreeNode = keyBit(k, cpl) === 0 ? { left: leaf, right: old } : { left: old, right: leaf };
    this.work.set(positionId(cpl, k), { depth: cpl, key: k, node: bottom });
    for (let j = cpl - 1; j >= depth; j--) {
      const n: TreeNode = keyBit(k, j) === 0 ? { left: PLACEHOLDER, right: EMPTY_CHILD } : { left: EMPTY_CHILD, right: PLACEHOLDER };
      this.work.set(positionId(j, k), { depth: j, key: k, node: n });
    }
    return PLACEHOLDER;
  }

  /** Recomputes the hashes of every node touched, bottom up. */
  finish(): UpdateResult {
    if (this.finished) throw new BkvError('USAGE', 'TreeUpdater already finished');
    this.finished = true;
    const all = [...this.work.values()].sort((a, b) => b.depth - a.depth);
    const changed: ChangedNode[] = [];
    for (const w of all) {
      const hash = treeNodeHash(w.node);
      changed.push({ depth: w.depth, key: w.key, node: w.node, hash });
      const c: TreeChild = { kind: 'node', hash };
      if (w.depth === 0) {
        this.root = c;
        continue;
      }
      const parent = this.work.get(positionId(w.depth - 1, w.key));
      if (!parent) throw new BkvError('INTERNAL', 'record tree: a changed node has no parent in the update');
      if (keyBit(w.key, w.depth - 1) === 0) parent.node.left = c;
      else parent.node.right = c;
    }
    return { root: this.root, rootHash: childHash(this.root), changed, inserted: this.inserted };
  }
}

function mergeChild(a: TreeChild, b: TreeChild, where: string): TreeChild {
  if (a.kind === 'empty' && b.kind === 'empty') return a;
  if (a.kind === 'leaf' && b.kind === 'leaf' && bytesEqual(a.key, b.key) && bytesEqual(a.valueHash, b.valueHash)) return a;
  if (a.kind !== 'empty' && b.kind !== 'empty' && bytesEqual(childHash(a), childHash(b))) {
    return a.kind === 'leaf' ? a : b; // what a leaf is beats knowing only its hash
  }
  throw new BkvError('VERIFICATION_FAILED', `record-tree proofs disagree about the node at ${where}`);
}

export interface KeyedProof {
  key: Uint8Array;
  proof: ProofInput;
}

export interface KeyedValueHash {
  key: Uint8Array;
  valueHash: Uint8Array;
}

/**
 * The partial tree that a set of proofs against `root` reveals: its root child and a reader of
 * its internal nodes. Every proof is verified (BkvError('VERIFICATION_FAILED') otherwise).
 */
export function partialTree(root: Uint8Array, proofs: readonly KeyedProof[]): { root: TreeChild; read: NodeReader; proven: Set<string> } {
  let top = rootChild(root);
  const nodes = new Map<string, TreeNode>();
  const proven = new Set<string>();
  for (const { key, proof } of proofs) {
    const p = toProof(proof);
    const path = proofPathHashes(key, p);
    if (!bytesEqual(path[0]!, root)) {
      throw new BkvError(
        'VERIFICATION_FAILED',
        `record-tree proof for key ${toHex(key.subarray(0, 8))}… does not match the root`,
        { key: toHex(key) },
      );
    }
    const depth = p.siblings.length;
    const terminal: TreeChild =
      p.terminal.kind === 'empty' ? EMPTY_CHILD : { kind: 'leaf', key: p.terminal.key, valueHash: p.terminal.valueHash };
    if (depth === 0) {
      top = mergeChild(top, terminal, 'the root');
    } else if (top.kind === 'leaf') {
      throw new BkvError('VERIFICATION_FAILED', 'record-tree proofs disagree about the root');
    }
    for (let i = 0; i < depth; i++) {
      const onPath: TreeChild = i + 1 === depth ? terminal : { kind: 'node', hash: path[i + 1]! };
      const s = p.siblings[i]!;
      const off: TreeChild = isZeroHash(s) ? EMPTY_CHILD : { kind: 'node', hash: s };
      const n: TreeNode = keyBit(key, i) === 0 ? { left: onPath, right: off } : { left: off, right: onPath };
      const id = positionId(i, key);
      const had = nodes.get(id);
      if (had) {
        const where = `depth ${i}`;
        nodes.set(id, { left: mergeChild(had.left, n.left, where), right: mergeChild(had.right, n.right, where) });
      } else {
        nodes.set(id, n);
      }
    }
    proven.add(toHex(key));
  }
  return { root: top, read: (d, k) => nodes.get(positionId(d, k)), proven };
}

/**
 * What every member runs to apply a committed batch: verifies each proof against `root`, applies
 * the updates in order (a key may appear more than once), and returns the new root. Every updated
 * key needs a proof (BkvError('USAGE') otherwise); a proof that does not verify throws
 * BkvError('VERIFICATION_FAILED').
 */
export function applyUpdates(root: Uint8Array, proofs: readonly KeyedProof[], updates: readonly KeyedValueHash[]): Uint8Array {
  const partial = partialTree(root, proofs);
  const u = new TreeUpdater(partial.root, partial.read);
  for (const { key, valueHash } of updates) {
    checkKey(key);
    if (!partial.proven.has(toHex(key))) {
      throw new BkvError('USAGE', `record tree: no proof was given for updated key ${toHex(key.subarray(0, 8))}…`, {
        key: toHex(key),
      });
    }
    u.set(key, valueHash);
  }
  return u.finish().rootHash;
}
