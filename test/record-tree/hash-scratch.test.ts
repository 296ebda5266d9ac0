import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { leafHash, nodeHash } from '../../src/shared/record-tree/index.js';
import { installNativeRecordTreeSha256 } from '../../src/host/record-store/index.js';

const bytes = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff);
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
};

describe('record-tree hashes over a reused input buffer', () => {
  for (const native of [false, true]) {
    it(`${native ? "Node's" : "@noble's"} SHA-256: each result is its own array, chained hashes stay right`, () => {
      if (native) installNativeRecordTreeSha256();
      const a = bytes(32, 1);
      const b = bytes(32, 2);
      const first = nodeHash(a, b);
      const second = leafHash(a, first); // an earlier result as input to the next hash
      const third = nodeHash(second, first);
      expect(first).toEqual(sha256(concat(Uint8Array.of(1), a, b)));
      expect(second).toEqual(sha256(concat(Uint8Array.of(0), a, first)));
      expect(third).toEqual(sha256(concat(Uint8Array.of(1), second, first)));
      expect(Object.getPrototypeOf(third)).toBe(Uint8Array.prototype); // not a Buffer (whose slice is a view)
      third.fill(0); // a caller changing one result changes no other
      expect(first).toEqual(sha256(concat(Uint8Array.of(1), a, b)));
      expect(nodeHash(second, first)).toEqual(sha256(concat(Uint8Array.of(1), second, first)));
    });
  }
});
