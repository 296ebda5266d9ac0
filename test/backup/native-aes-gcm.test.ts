import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { gcm } from '@noble/ciphers/aes.js';
import { createCipheriv } from 'node:crypto';
import { inPlaceGcm, selfTest, type InPlaceGcm } from '../../src/node/native-aes-gcm.js';
import { fastAesGcm, nodeAesGcm } from '../../src/node/aes-gcm.js';

const status = inPlaceGcm();
/**
 * BKV_NATIVE=0 (machines without a C compiler) turns the addons off: the first test then checks
 * that the loader declines, and the tests of the addon itself are reported as skipped. CI runs
 * without it, so there every test here runs.
 */
const off = process.env.BKV_NATIVE === '0';
const withAddon = it.skipIf(off);

/** The addon's cipher; the build (npm run build) must have produced it unless node:crypto was asked for. */
function addon(): InPlaceGcm {
  if (!status.available) throw new Error(`in-place AES-GCM unavailable: ${status.reason}`);
  return status.create();
}

/** Splits `n` bytes into updates at the given cut points. */
function pieces(n: number, cuts: number[]): Array<[number, number]> {
  const at = [...new Set(cuts.map((c) => c % (n + 1)))].sort((a, b) => a - b);
  const out: Array<[number, number]> = [];
  let from = 0;
  for (const c of [...at, n]) {
    out.push([from, c]);
    from = c;
  }
  return out;
}

describe('in-place AES-256-GCM addon', () => {
  it('is built and passed its self-test (or BKV_NATIVE=0 turned it off)', () => {
    if (off) expect(status).toEqual({ available: false, reason: 'BKV_NATIVE=0' });
    else expect(status, status.available ? '' : status.reason).toMatchObject({ available: true });
  });

  withAddon('seals exactly as node:crypto and @noble/ciphers do, in any split of updates, and opens its output', () => {
    const g = addon();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 80 }),
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        fc.nat(7),
        (key, nonce, aad, plain, cuts, offset) => {
          const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
          c.setAAD(aad);
          const want = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
          expect(Buffer.from(gcm(key, nonce, aad).encrypt(plain)).equals(want)).toBe(true);
          // In place inside a larger buffer, at an offset, the tag right after the data.
          const buf = Buffer.alloc(offset + plain.length + 16 + 3, 0xee);
          buf.set(plain, offset);
          const data = buf.subarray(offset, offset + plain.length);
          g.start(true, key, nonce, aad);
          for (const [a, b] of pieces(plain.length, cuts)) g.update(data.subarray(a, b));
          g.finishSeal(buf.subarray(offset + plain.length, offset + plain.length + 16));
          expect(buf.subarray(offset, offset + plain.length + 16).equals(want)).toBe(true);
          expect(buf.subarray(0, offset).every((b) => b === 0xee) && buf.subarray(-3).every((b) => b === 0xee)).toBe(true);
          g.start(false, key, nonce, aad);
          for (const [a, b] of pieces(plain.length, cuts.slice().reverse())) g.update(data.subarray(a, b));
          expect(g.finishOpen(want.subarray(plain.length))).toBe(true);
          expect(Buffer.from(data).equals(Buffer.from(plain))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  withAddon('rejects every forgery: a flipped bit in ciphertext, tag or associated data, another key or nonce', () => {
    const g = addon();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ minLength: 1, maxLength: 40 }),
        fc.uint8Array({ minLength: 1, maxLength: 500 }),
        fc.constantFrom('ciphertext', 'tag', 'aad', 'key', 'nonce'),
        fc.nat(),
        (key, nonce, aad, plain, what, where) => {
          const sealed = Buffer.from(plain);
          const tag = Buffer.alloc(16);
          g.start(true, key, nonce, aad);
          g.update(sealed);
          g.finishSeal(tag);
          const flip = (b: Uint8Array) => {
            const c = Uint8Array.from(b);
            c[where % c.length]! ^= 1 << where % 8;
            return c;
          };
          const forged = {
            ciphertext: flip(sealed),
            tag: flip(tag),
            aad: flip(aad),
            key: flip(key),
            nonce: flip(nonce),
          };
          g.start(false, what === 'key' ? forged.key : key, what === 'nonce' ? forged.nonce : nonce, what === 'aad' ? forged.aad : aad);
          g.update(what === 'ciphertext' ? forged.ciphertext : Uint8Array.from(sealed));
          expect(g.finishOpen(what === 'tag' ? forged.tag : tag)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  withAddon('throws on misuse instead of crashing or computing garbage', () => {
    const g = addon();
    const key = new Uint8Array(32);
    const nonce = new Uint8Array(12);
    const aad = new Uint8Array(0);
    const tag = new Uint8Array(16);
    expect(() => g.update(new Uint8Array(4))).toThrow(/update\(\) before start\(\)/);
    expect(() => g.finishSeal(tag)).toThrow(/finishSeal\(\) without start/);
    expect(() => g.start(true, new Uint8Array(16), nonce, aad)).toThrow(/key must be 32 bytes/);
    expect(() => g.start(true, key, new Uint8Array(16), aad)).toThrow(/nonce must be 12 bytes/);
    expect(() => g.start(true, 'k' as unknown as Uint8Array, nonce, aad)).toThrow(TypeError);
    expect(() => g.start(true, new Uint16Array(16) as unknown as Uint8Array, nonce, aad)).toThrow(TypeError);
    expect(() => g.start('yes' as unknown as boolean, key, nonce, aad)).toThrow(TypeError);
    g.start(true, key, nonce, aad);
    expect(() => g.update({} as Uint8Array)).toThrow(TypeError);
    expect(() => g.finishSeal(new Uint8Array(15))).toThrow(/tag must be 16 bytes/);
    expect(() => g.finishOpen(tag)).toThrow(/finishOpen\(\) without start\(encrypt = false\)/);
    g.finishSeal(tag);
    expect(() => g.finishSeal(tag)).toThrow(/finishSeal\(\) without start/); // one tag per message
    // A failed start leaves no half-started message behind.
    expect(() => g.start(false, key, new Uint8Array(11), aad)).toThrow(/nonce/);
    expect(() => g.update(new Uint8Array(1))).toThrow(/before start/);
  });

  withAddon('accepts only its own contexts', async () => {
    addon();
    const { createRequire } = await import('node:module');
    const raw = createRequire(import.meta.url)('../../native/build/Release/bkv_aes_gcm.node') as Record<string, (...a: unknown[]) => unknown>;
    for (const handle of [{}, null, 7, 'ctx', new Uint8Array(8)]) {
      expect(() => raw.update!(handle, new Uint8Array(4)), String(handle)).toThrow(/expected an AES-GCM context/);
    }
    expect(() => raw.start!()).toThrow(/missing arguments/);
  });

  it('backs the streaming path\'s chunk cipher: same bytes as node:crypto, inputs untouched, forgeries refused', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 5000 }),
        fc.nat(),
        async (key, nonce, aad, plain, where) => {
          const [fast, ref] = [await fastAesGcm(key), await nodeAesGcm(key)];
          const input = Uint8Array.from(plain);
          const sealed = Buffer.concat(await fast.seal(nonce, input, aad));
          expect(sealed.equals(Buffer.concat(await ref.seal(nonce, plain, aad)))).toBe(true);
          expect(Buffer.from(input).equals(Buffer.from(plain))).toBe(true);
          const copy = Uint8Array.from(sealed);
          const opened = await fast.open(nonce, copy, aad);
          expect(opened && Buffer.concat(opened).equals(Buffer.from(plain))).toBe(true);
          expect(Buffer.from(copy).equals(sealed)).toBe(true);
          const forged = Uint8Array.from(sealed);
          forged[where % forged.length]! ^= 1 << where % 8;
          expect(await fast.open(nonce, forged, aad)).toBeNull();
          expect(await fast.open(nonce, sealed.subarray(0, 15), aad)).toBeNull();
        },
      ),
      { numRuns: 200 },
    );
  });

  withAddon('is never used when it disagrees with node:crypto (the self-test catches a broken build)', () => {
    const real = addon();
    const skipsLastByte = (): InPlaceGcm => ({
      ...real,
      update: (data) => real.update(data.subarray(0, Math.max(0, data.length - 1))),
    });
    expect(selfTest(skipsLastByte)).toMatch(/differs from node:crypto/);
    const acceptsAnything = (): InPlaceGcm => {
      const g = addon();
      return { ...g, finishOpen: (t) => (g.finishOpen(t), true) };
    };
    expect(selfTest(acceptsAnything)).toMatch(/forged tag/);
    expect(selfTest(addon)).toBeNull();
  });
});
