import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { AeadId, Dhkem, HkdfSha256Native, KemId, XCurveDhkemPrimitives, type AeadEncryptionContext, type AeadInterface } from '@hpke/common';
import { gcm } from '@noble/ciphers/aes.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';

/**
 * The HPKE cipher suites of the vault channel: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * AES-256-GCM (RFC 9180). The HPKE protocol itself (key schedule, labels, nonces, exporter) is
 * always @hpke/core's; what varies is who computes the three primitives underneath it:
 *
 * - `webCryptoSuite`: the platform's WebCrypto (the default for clients: native in browsers);
 * - `hpkeSuite(primitives)`: synchronous primitives handed in by the caller. The vault core uses
 *   this with `noblePrimitives` by default (pure, deterministic, no asynchronous crypto jobs), and
 *   a host may inject faster native ones (node:crypto on a member), as it injects the clock.
 *
 * Every suite produces the same bytes; tests check each against the WebCrypto suite both ways.
 */
export interface ChannelPrimitives {
  /** X25519 (RFC 7748). `sharedSecret` must throw when the result is all zeros (a low-order point). */
  x25519: {
    publicKey(secretKey: Uint8Array): Uint8Array;
    sharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
    randomSecretKey(): Uint8Array;
  };
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** AES-256-GCM, 16-byte tag appended. */
  gcmSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** Throws when the tag does not verify. */
  gcmOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array;
}

/** Pure-JavaScript primitives from the audited @noble libraries; run anywhere. */
export const noblePrimitives: ChannelPrimitives = {
  x25519: {
    publicKey: (sk) => x25519.getPublicKey(sk),
    sharedSecret: (sk, pk) => x25519.getSharedSecret(sk, pk),
    randomSecretKey: () => x25519.utils.randomSecretKey(),
  },
  hmacSha256: (key, data) => hmac(sha256, key, data),
  gcmSeal: (key, nonce, aad, plaintext) => gcm(key, nonce, aad).encrypt(plaintext),
  gcmOpen: (key, nonce, aad, sealed) => gcm(key, nonce, aad).decrypt(sealed),
};

/** The WebCrypto-backed suite exactly as @hpke/core ships it. */
export const webCryptoSuite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

type Bytes = ArrayBufferLike | ArrayBufferView;
const u8 = (b: Bytes): Uint8Array =>
  ArrayBuffer.isView(b) ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(b);
const ab = (u: Uint8Array): ArrayBuffer => u.slice().buffer as ArrayBuffer;
const HASH_BYTES = 32;

/**
 * HKDF-SHA256 (RFC 5869) over an injected HMAC. The HPKE label framing (`buildLabeledIkm`,
 * `buildLabeledInfo`, `labeledExtract`, `labeledExpand`) is inherited from @hpke/common unchanged.
 */
class HkdfSha256Over extends HkdfSha256Native {
  constructor(private readonly mac: ChannelPrimitives['hmacSha256']) {
    super();
  }

  override async extract(salt: Bytes, ikm: Bytes): Promise<ArrayBuffer> {
    const s = u8(salt);
    if (s.length !== 0 && s.length !== HASH_BYTES) throw new Error('HKDF salt must be empty or 32 bytes');
    return ab(this.mac(s.length === 0 ? new Uint8Array(HASH_BYTES) : s, u8(ikm)));
  }

  override async expand(prk: Bytes, info: Bytes, len: number): Promise<ArrayBuffer> {
    return ab(this.expandSync(u8(prk), u8(info), len));
  }

  override async extractAndExpand(salt: Bytes, ikm: Bytes, info: Bytes, len: number): Promise<ArrayBuffer> {
    return this.expand(await this.extract(salt, ikm), info, len);
  }

  private expandSync(prk: Uint8Array, info: Uint8Array, len: number): Uint8Array {
    if (len > 255 * HASH_BYTES) throw new Error('HKDF output too long');
    const out = new Uint8Array(len);
    let prev: Uint8Array = new Uint8Array(0);
    for (let i = 1, off = 0; off < len; i++) {
      const input = new Uint8Array(prev.length + info.length + 1);
      input.set(prev);
      input.set(info, prev.length);
      input[input.length - 1] = i;
      prev = this.mac(prk, input);
      out.set(prev.subarray(0, Math.min(prev.length, len - off)), off);
      off += prev.length;
    }
    return out;
  }
}

/** AES-256-GCM for HPKE over injected primitives. */
class Aes256GcmOver implements AeadInterface {
  readonly id = AeadId.Aes256Gcm;
  readonly keySize = 32;
  readonly nonceSize = 12;
  readonly tagSize = 16;

  constructor(private readonly p: ChannelPrimitives) {}

  createEncryptionContext(key: Bytes): AeadEncryptionContext {
    const k = u8(key).slice();
    const p = this.p;
    return {
      seal: async (iv, data, aad) => ab(p.gcmSeal(k, u8(iv), u8(aad), u8(data))),
      open: async (iv, data, aad) => ab(p.gcmOpen(k, u8(iv), u8(aad), u8(data))),
    };
  }
}

/** DHKEM(X25519, HKDF-SHA256): the sizes RFC 9180 §7.1 gives it. */
class DhkemX25519Over extends Dhkem {
  override readonly secretSize = 32;
  override readonly encSize = 32;
  override readonly publicKeySize = 32;
  override readonly privateKeySize = 32;
}

const suites = new WeakMap<ChannelPrimitives, CipherSuite>();

/** The channel suite computed with `primitives` (one suite per primitives object). */
export function hpkeSuite(primitives: ChannelPrimitives): CipherSuite {
  let suite = suites.get(primitives);
  if (!suite) {
    const kdf = new HkdfSha256Over(primitives.hmacSha256);
    const curve = {
      getPublicKey: primitives.x25519.publicKey,
      getSharedSecret: primitives.x25519.sharedSecret,
      utils: { randomSecretKey: primitives.x25519.randomSecretKey },
    };
    // XCurveDhkemPrimitives does DeriveKeyPair (RFC 9180 §7.1.3) and key encoding; `curve` only
    // does the scalar multiplications.
    const prim = new XCurveDhkemPrimitives('X25519', 32, curve as never, kdf);
    const kem = new DhkemX25519Over(KemId.DhkemX25519HkdfSha256, prim, kdf);
    suite = new CipherSuite({ kem, kdf: new HkdfSha256Over(primitives.hmacSha256), aead: new Aes256GcmOver(primitives) });
    suites.set(primitives, suite);
  }
  return suite;
}
