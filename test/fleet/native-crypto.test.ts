import { describe, expect, it } from 'vitest';
import { nobleHmacSha256 } from '../../src/trusted/consensus/auth.js';
import { nobleSealCrypto } from '../../src/trusted/consensus/sealed-state.js';
import { nativeHmacSha256, nativeSealCrypto } from '../../src/host/fleet/native-crypto.js';
import { Prng } from '../../src/sim/prng.js';

describe('native consensus crypto', () => {
  const rng = new Prng(11);
  it('produces the same bytes as the @noble defaults, and each opens what the other sealed', () => {
    for (const n of [0, 1, 15, 16, 17, 300, 70_000]) {
      const key = rng.bytes(32);
      const nonce = rng.bytes(12);
      const aad = rng.bytes(42);
      const pt = rng.bytes(n);
      const a = nativeSealCrypto.gcmSeal(key, nonce, aad, pt);
      const b = nobleSealCrypto.gcmSeal(key, nonce, aad, pt);
      expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
      expect(Buffer.from(nativeSealCrypto.gcmOpen(key, nonce, aad, b)).equals(Buffer.from(pt))).toBe(true);
      expect(Buffer.from(nobleSealCrypto.gcmOpen(key, nonce, aad, a)).equals(Buffer.from(pt))).toBe(true);
      expect(Buffer.from(nativeSealCrypto.sha256(pt)).equals(Buffer.from(nobleSealCrypto.sha256(pt)))).toBe(true);
      expect(Buffer.from(nativeHmacSha256(key, pt)).equals(Buffer.from(nobleHmacSha256(key, pt)))).toBe(true);
    }
  });

  it('refuses altered ciphertext, associated data or tag', () => {
    const key = rng.bytes(32);
    const nonce = rng.bytes(12);
    const aad = rng.bytes(10);
    const sealed = nativeSealCrypto.gcmSeal(key, nonce, aad, rng.bytes(100));
    for (const at of [0, 50, sealed.length - 1]) {
      const bad = sealed.slice();
      bad[at] = (bad[at] as number) ^ 1;
      expect(() => nativeSealCrypto.gcmOpen(key, nonce, aad, bad)).toThrow();
    }
    const badAad = aad.slice();
    badAad[0] = (badAad[0] as number) ^ 1;
    expect(() => nativeSealCrypto.gcmOpen(key, nonce, badAad, sealed)).toThrow();
    expect(() => nativeSealCrypto.gcmOpen(key, nonce, aad, sealed.subarray(0, 10))).toThrow();
  });
});
