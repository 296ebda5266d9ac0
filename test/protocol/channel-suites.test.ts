import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  deriveChannelKeyPair,
  openRequest,
  openResponse,
  sealRequest,
  sealResponse,
  type ChannelKeyPair,
} from '../../src/shared/protocol/channel.js';
import { hpkeSuite, noblePrimitives, webCryptoSuite, type ChannelPrimitives } from '../../src/shared/protocol/hpke-suite.js';
import { nativeChannelPrimitives } from '../../src/host/fleet/native-crypto.js';
import { isBkvError } from '../../src/shared/errors.js';

const te = new TextEncoder();
const seed = new Uint8Array(32).map((_, i) => i * 7 + 1);

/** The same key pair in @hpke/core's own WebCrypto suite: the reference the others must match. */
async function webCryptoKeyPair(s: Uint8Array): Promise<ChannelKeyPair> {
  const keyPair = await webCryptoSuite.kem.deriveKeyPair(s.slice().buffer);
  const publicKey = new Uint8Array(await webCryptoSuite.kem.serializePublicKey(keyPair.publicKey));
  return { publicKey, keyPair, suite: webCryptoSuite, primitives: noblePrimitives };
}

async function expectTampered(p: Promise<unknown>) {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(isBkvError(err) && err.code).toBe('TAMPERED');
}

const cases: Array<[string, ChannelPrimitives]> = [
  ['@noble', noblePrimitives],
  ['node:crypto', nativeChannelPrimitives],
];

describe.each(cases)('HPKE channel computed with %s primitives', (_name, primitives) => {
  it('derives the same fleet key pair as the WebCrypto suite', async () => {
    const ref = await webCryptoKeyPair(seed);
    const mine = await deriveChannelKeyPair(seed, primitives);
    expect(mine.publicKey).toEqual(ref.publicKey);
  });

  it('opens what the WebCrypto suite sealed, with the same exported keys, and the reverse', async () => {
    const ref = await webCryptoKeyPair(seed);
    const mine = await deriveChannelKeyPair(seed, primitives);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 1500 }), fc.string({ minLength: 1, maxLength: 40 }), async (msg, account) => {
        const a = await sealRequest(ref.publicKey, account, msg); // WebCrypto, as a browser client
        const opened = await openRequest(mine, account, a.envelope);
        expect(opened.plaintext).toEqual(msg);
        expect(opened.responseKey).toEqual(a.responseKey);
        expect(opened.continuationKey).toEqual(a.continuationKey);
        const b = await sealRequest(mine.publicKey, account, msg, primitives);
        const back = await openRequest(ref, account, b.envelope);
        expect(back.plaintext).toEqual(msg);
        expect(back.responseKey).toEqual(b.responseKey);
      }),
      { numRuns: 25 },
    );
  });

  it('replies interoperate with the @noble AES-GCM a client uses', () => {
    const key = new Uint8Array(32).fill(9);
    const nonce = new Uint8Array(12).fill(3);
    const msg = te.encode('credential response');
    expect(openResponse(key, sealResponse(key, msg, nonce, primitives))).toEqual(msg);
    expect(sealResponse(key, msg, nonce, primitives)).toEqual(sealResponse(key, msg, nonce, noblePrimitives));
  });

  it('HKDF over the injected HMAC matches @noble HKDF for any input', async () => {
    const kdf = hpkeSuite(primitives).kdf;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 1, max: 200 }), async (ikm, info, len) => {
        const prk = new Uint8Array(await kdf.extract(new Uint8Array(0), ikm));
        const okm = new Uint8Array(await kdf.expand(prk, info, len));
        expect(okm).toEqual(hkdf(sha256, ikm, undefined, info, len));
      }),
      { numRuns: 50 },
    );
  });

  it('attack: a flipped bit in the envelope, another account, or a low-order ephemeral key is refused as TAMPERED', async () => {
    const mine = await deriveChannelKeyPair(seed, primitives);
    const { envelope } = await sealRequest(mine.publicKey, 'alice', te.encode('hello'), primitives);
    for (const i of [1, 20, 40, envelope.length - 1]) {
      const bad = envelope.slice();
      bad[i]! ^= 0x01;
      await expectTampered(openRequest(mine, 'alice', bad));
    }
    await expectTampered(openRequest(mine, 'mallory', envelope));
    // Ephemeral keys whose shared secret is all zeros (the identity and a point of order 8):
    // the DH must fail rather than derive a key everyone knows.
    const lowOrder = [new Uint8Array(32), Uint8Array.from([0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00])];
    for (const point of lowOrder) {
      expect(() => primitives.x25519.sharedSecret(seed, point)).toThrow();
      const bad = envelope.slice();
      bad.set(point, 1);
      await expectTampered(openRequest(mine, 'alice', bad));
    }
  });
});
