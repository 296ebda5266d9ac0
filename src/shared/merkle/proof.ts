/**
 * RFC 9162 section 2.1.3.2 / 2.1.4.2 proof verification: inclusion and consistency.
 * Browser-safe. Every failure is a `MerkleProofError` (never a crash) so callers can map it.
 */
import { HASH_SIZE, nodeHash } from './hash.js';
import { equalBytes } from '../bytes.js';

export class MerkleProofError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MerkleProofError';
  }
}

/** Largest tree size we accept: sizes and indices must be exact JavaScript integers. */
export const MAX_TREE_SIZE = Number.MAX_SAFE_INTEGER;

function checkIndex(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new MerkleProofError(`${name} must be a non-negative safe integer`);
}

function checkHashes(proof: readonly Uint8Array[]): void {
  for (const h of proof) {
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
      throw new MerkleProofError(`proof component is not a ${HASH_SIZE}-byte hash`);
    }
  }
}

/** Count of set bits. */
function onesCount(x: number): number {
  let n = 0;
  while (x > 0) {
    if (x % 2 === 1) n++;
    x = Math.floor(x / 2);
  }
  return n;
}

/** Number of trailing zero bits of x > 0. */
function trailingZeros(x: number): number {
  let n = 0;
  while (x > 0 && x % 2 === 0) {
    n++;
    x = x / 2;
  }
  return n;
}

/** Bit i of x (works beyond 32 bits). */
function bit(x: number, i: number): number {
  return Math.floor(x / 2 ** i) % 2;
}

/**
 * Splits an inclusion proof for `index` in a tree of `size` into its inner part (below the point
 * where the paths of `index` and `size-1` diverge) and its border part.
 */
function decompInclProof(index: number, size: number): { inner: number; border: number } {
  const inner = innerProofSize(index, size);
  const border = onesCount(Math.floor(index / 2 ** inner));
  return { inner, border };
}

function innerProofSize(index: number, size: number): number {
  // bit length of index XOR (size-1), done without 32-bit truncation
  let a = index;
  let b = size - 1;
  let n = 0;
  let i = 0;
  while (a > 0 || b > 0) {
    if (a % 2 !== b % 2) n = i + 1;
    a = Math.floor(a / 2);
    b = Math.floor(b / 2);
    i++;
  }
  return n;
}

function chainInner(seed: Uint8Array, proof: readonly Uint8Array[], index: number): Uint8Array {
  let h = seed;
  for (let i = 0; i < proof.length; i++) {
    h = bit(index, i) === 0 ? nodeHash(h, proof[i]!) : nodeHash(proof[i]!, h);
  }
  return h;
}

function chainInnerRight(seed: Uint8Array, proof: readonly Uint8Array[], index: number): Uint8Array {
  let h = seed;
  for (let i = 0; i < proof.length; i++) {
    if (bit(index, i) === 1) h = nodeHash(proof[i]!, h);
  }
  return h;
}

function chainBorderRight(seed: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  let h = seed;
  for (const p of proof) h = nodeHash(p, h);
  return h;
}

/** Computes the root implied by an inclusion proof; throws MerkleProofError if its shape is wrong. */
export function rootFromInclusionProof(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  checkIndex('index', index);
  checkIndex('size', size);
  if (index >= size) throw new MerkleProofError(`index ${index} is beyond tree size ${size}`);
  if (!(leaf instanceof Uint8Array) || leaf.length !== HASH_SIZE) {
    throw new MerkleProofError(`leaf hash is not a ${HASH_SIZE}-byte hash`);
  }
  checkHashes(proof);
  const { inner, border } = decompInclProof(index, size);
  if (proof.length !== inner + border) {
    throw new MerkleProofError(`wrong proof size ${proof.length}, want ${inner + border}`);
  }
  const res = chainInner(leaf, proof.slice(0, inner), index);
  return chainBorderRight(res, proof.slice(inner));
}

/** Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size` with root `root`. */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  const calc = rootFromInclusionProof(index, size, leaf, proof);
  if (!equalBytes(calc, root)) throw new MerkleProofError('inclusion proof does not lead to the root');
}

/**
 * Verifies that the tree of `size2` with `root2` extends the tree of `size1` with `root1`.
 * A proof from the empty tree is refused: it proves nothing (callers treat size 0 as trivially
 * consistent before calling).
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): void {
  checkIndex('size1', size1);
  checkIndex('size2', size2);
  if (size2 < size1) throw new MerkleProofError(`size2 (${size2}) < size1 (${size1})`);
  if (size1 === 0) throw new MerkleProofError('a consistency proof from the empty tree proves nothing');
  if (size1 === size2) {
    if (proof.length > 0) throw new MerkleProofError('size1 = size2 but the proof is not empty');
    if (!equalBytes(root1, root2)) throw new MerkleProofError('equal sizes but different roots');
    return;
  }
  if (proof.length === 0) throw new MerkleProofError('empty consistency proof');
  checkHashes(proof);
  if (root1.length !== HASH_SIZE || root2.length !== HASH_SIZE) {
    throw new MerkleProofError(`roots must be ${HASH_SIZE}-byte hashes`);
  }
  const { inner: inner0, border } = decompInclProof(size1 - 1, size2);
  const shift = trailingZeros(size1);
  const inner = inner0 - shift;
  // If size1 is a power of two, root1 is the seed; otherwise the first proof element is.
  let seed: Uint8Array;
  let start: number;
  if (size1 === 2 ** shift) {
    seed = root1;
    start = 0;
  } else {
    seed = proof[0]!;
    start = 1;
  }
  if (proof.length !== start + inner + border) {
    throw new MerkleProofError(`wrong consistency proof size ${proof.length}, want ${start + inner + border}`);
  }
  const rest = proof.slice(start);
  const mask = Math.floor((size1 - 1) / 2 ** shift);
  let hash1 = chainInnerRight(seed, rest.slice(0, inner), mask);
  hash1 = chainBorderRight(hash1, rest.slice(inner));
  if (!equalBytes(hash1, root1)) throw new MerkleProofError('consistency proof does not lead to root1');
  let hash2 = chainInner(seed, rest.slice(0, inner), mask);
  hash2 = chainBorderRight(hash2, rest.slice(inner));
  if (!equalBytes(hash2, root2)) throw new MerkleProofError('consistency proof does not lead to root2');
}
