import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MerkleTree,
  MerkleProofError,
  verifyConsistency,
  verifyInclusion,
  emptyRoot,
  encodeTileIndex,
  decodeTileIndex,
  tilePath,
  encodeEntryBundle,
  decodeEntryBundle,
} from '../../src/shared/merkle/index.js';

function buildTree(n: number): MerkleTree {
  const t = new MerkleTree();
  for (let i = 0; i < n; i++) t.appendEntry(new TextEncoder().encode(`entry ${i}`));
  return t;
}

describe('MerkleTree proofs verify against the RFC 9162 verifier', () => {
  const tree = buildTree(300);

  it('empty tree root is SHA-256 of the empty string', () => {
    expect(Buffer.from(new MerkleTree().root()).toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(new MerkleTree().root()).toEqual(emptyRoot());
  });

  it('every inclusion proof of small trees verifies, and a flipped bit fails', () => {
    for (let size = 1; size <= 40; size++) {
      const root = tree.root(size);
      for (let i = 0; i < size; i++) {
        const proof = tree.inclusionProof(i, size);
        verifyInclusion(i, size, tree.leafHash(i), proof, root);
        if (proof.length > 0) {
          const bad = proof.map((p) => p.slice());
          bad[0]![0]! ^= 1;
          expect(() => verifyInclusion(i, size, tree.leafHash(i), bad, root)).toThrow(MerkleProofError);
        }
      }
    }
  });

  it('consistency proofs between any two sizes verify (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 300 }), (a, b) => {
        const [s1, s2] = a <= b ? [a, b] : [b, a];
        verifyConsistency(s1, s2, tree.consistencyProof(s1, s2), tree.root(s1), tree.root(s2));
      }),
      { numRuns: 300 },
    );
  });

  it('a rewritten history is not consistent with the original', () => {
    const other = new MerkleTree();
    for (let i = 0; i < 20; i++) other.appendEntry(new TextEncoder().encode(i === 5 ? 'evil' : `entry ${i}`));
    expect(() => verifyConsistency(10, 20, other.consistencyProof(10, 20), tree.root(10), other.root(20))).toThrow(
      MerkleProofError,
    );
  });

  it('fuzzed proofs never crash, they raise MerkleProofError', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -5, max: 2 ** 60 }),
        fc.integer({ min: -5, max: 2 ** 60 }),
        fc.array(fc.uint8Array({ minLength: 0, maxLength: 40 }), { maxLength: 70 }),
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        (x, y, proof, h) => {
          for (const f of [
            () => verifyInclusion(x, y, h, proof, h),
            () => verifyConsistency(x, y, proof, h, h),
          ]) {
            try {
              f();
            } catch (e) {
              expect(e).toBeInstanceOf(MerkleProofError);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('tlog-tiles paths', () => {
  it('encodes indices in x-prefixed groups of three', () => {
    expect(encodeTileIndex(0)).toBe('000');
    expect(encodeTileIndex(1234067)).toBe('x001/x234/067');
    expect(tilePath(0, 1234067)).toBe('tile/0/x001/x234/067');
    expect(tilePath(1, 0, 5)).toBe('tile/1/000.p/5');
    expect(decodeTileIndex(['x001', 'x234', '067'])).toBe(1234067);
    expect(decodeTileIndex(['x000', '001'])).toBeUndefined();
    expect(decodeTileIndex(['1'])).toBeUndefined();
  });
  it('round-trips entry bundles', () => {
    const entries = [new Uint8Array([1, 2]), new Uint8Array(0), new Uint8Array(300).fill(7)];
    expect(decodeEntryBundle(encodeEntryBundle(entries))).toEqual(entries);
    expect(() => decodeEntryBundle(new Uint8Array([0, 5, 1]))).toThrow(RangeError);
  });
});
