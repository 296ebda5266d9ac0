import { describe, expect, it } from 'vitest';
import { MerkleTree, useSha256, verifyInclusion } from '../../src/shared/merkle/index.js';
import { installNativeSha256 } from '../../src/node/native-sha256.js';
import { sha256 } from '@noble/hashes/sha2.js';

describe('the pluggable SHA-256 behind Merkle hashing', () => {
  it('refuses an implementation that gives wrong results', () => {
    expect(() => useSha256((d) => sha256(d).map((b) => b ^ 1))).toThrow(/wrong results/);
    expect(() => useSha256(() => new Uint8Array(31))).toThrow(/wrong results/);
  });

  it('gives the same roots and proofs with the native hash as with @noble/hashes', () => {
    const leaves = Array.from({ length: 37 }, (_, i) => new TextEncoder().encode(`entry ${i}`));
    const build = () => {
      const t = new MerkleTree();
      for (const l of leaves) t.appendEntry(l);
      return t;
    };
    const before = build();
    installNativeSha256();
    const after = build();
    expect(after.root()).toEqual(before.root());
    for (const i of [0, 5, 36]) {
      expect(() => verifyInclusion(i, 37, before.leafHash(i), after.inclusionProof(i), before.root())).not.toThrow();
    }
    useSha256(sha256);
  });
});
