/**
 * An in-memory RFC 6962 tree that can produce roots, inclusion proofs and consistency proofs for
 * any size up to its current size, and the hash tiles of C2SP tlog-tiles. Browser-safe.
 *
 * It keeps every complete subtree hash: level[0] holds leaf hashes, level[k][i] the hash of the
 * complete subtree of 2^k leaves starting at leaf i·2^k.
 */
import { emptyRoot, leafHash, nodeHash } from './hash.js';
import { MerkleProofError } from './proof.js';

/** Largest power of two strictly smaller than n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export class MerkleTree {
  private readonly levels: Uint8Array[][] = [[]];

  get size(): number {
    return this.levels[0]!.length;
  }

  /** Appends an entry (its leaf hash is computed here) and returns its index. */
  appendEntry(entry: Uint8Array): number {
    return this.appendLeafHash(leafHash(entry));
  }

  appendLeafHash(hash: Uint8Array): number {
    const index = this.size;
    this.levels[0]!.push(hash);
    let level = 0;
    let i = index;
    while (i % 2 === 1) {
      const left = this.levels[level]![i - 1]!;
      const right = this.levels[level]![i]!;
      level++;
      if (!this.levels[level]) this.levels[level] = [];
      this.levels[level]!.push(nodeHash(left, right));
      i = (i - 1) / 2;
    }
    return index;
  }

  leafHash(index: number): Uint8Array {
    const h = this.levels[0]![index];
    if (!h) throw new MerkleProofError(`no leaf ${index}`);
    return h;
  }

  /** Hash of the stored complete subtree at `level`, position `index`, if it exists. */
  storedHash(level: number, index: number): Uint8Array | undefined {
    return this.levels[level]?.[index];
  }

  /** Number of stored hashes at `level` (complete subtrees of 2^level leaves). */
  levelWidth(level: number): number {
    return this.levels[level]?.length ?? 0;
  }

  /** MTH(D[start:end]) for 0 ≤ start < end ≤ size. */
  private rangeHash(start: number, end: number): Uint8Array {
    const n = end - start;
    if (n === 1) return this.levels[0]![start]!;
    // Aligned complete subtree?
    if ((n & (n - 1)) === 0 && n <= 2 ** 52 && start % n === 0) {
      const level = Math.log2(n);
      const h = this.levels[level]?.[start / n];
      if (h) return h;
    }
    const k = splitPoint(n);
    return nodeHash(this.rangeHash(start, start + k), this.rangeHash(start + k, end));
  }

  private checkSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new MerkleProofError(`tree size ${size} is beyond the log size ${this.size}`);
    }
  }

  root(size: number = this.size): Uint8Array {
    this.checkSize(size);
    return size === 0 ? emptyRoot() : this.rangeHash(0, size);
  }

  /** RFC 9162 section 2.1.3.1 PATH(m, D[0:size]). */
  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    this.checkSize(size);
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new MerkleProofError(`leaf index ${index} is not below tree size ${size}`);
    }
    const out: Uint8Array[] = [];
    const path = (m: number, start: number, end: number): void => {
      const n = end - start;
      if (n <= 1) return;
      const k = splitPoint(n);
      if (m < k) {
        path(m, start, start + k);
        out.push(this.rangeHash(start + k, end));
      } else {
        path(m - k, start + k, end);
        out.push(this.rangeHash(start, start + k));
      }
    };
    path(index, 0, size);
    return out;
  }

  /** RFC 9162 section 2.1.4.1 PROOF(size1, D[0:size2]). */
  consistencyProof(size1: number, size2: number = this.size): Uint8Array[] {
    this.checkSize(size2);
    if (!Number.isSafeInteger(size1) || size1 < 0 || size1 > size2) {
      throw new MerkleProofError(`size1 ${size1} is not within 0..${size2}`);
    }
    if (size1 === 0 || size1 === size2) return [];
    const out: Uint8Array[] = [];
    const subproof = (m: number, start: number, end: number, b: boolean): void => {
      const n = end - start;
      if (m === n) {
        if (!b) out.push(this.rangeHash(start, end));
        return;
      }
      const k = splitPoint(n);
      if (m <= k) {
        subproof(m, start, start + k, b);
        out.push(this.rangeHash(start + k, end));
      } else {
        subproof(m - k, start + k, end, false);
        out.push(this.rangeHash(start, start + k));
      }
    };
    subproof(size1, 0, size2, true);
    return out;
  }
}
