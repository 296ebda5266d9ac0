/**
 * node:crypto implementations of the primitives the consensus code lets a host inject: the same
 * bytes as the @noble defaults, several times faster (member processes and the fleet benchmark).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import type { HmacSha256 } from '../../trusted/consensus/auth.js';
import type { SealCrypto } from '../../trusted/consensus/sealed-state.js';
import type { CoreEnv } from '../../trusted/core/env.js';
import { systemEnv } from '../../trusted/core/env.js';
import type { ChannelPrimitives } from '../../shared/protocol/hpke-suite.js';

const TAG = 16;

export const nativeHmacSha256: HmacSha256 = (key, data) => createHmac('sha256', key).update(data).digest();

export const nativeSealCrypto: SealCrypto = {
  gcmSeal(key, nonce, aad, plaintext) {
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    const head = c.update(plaintext);
    const tail = c.final();
    const out = new Uint8Array(head.length + tail.length + TAG);
    out.set(head);
    out.set(tail, head.length);
    out.set(c.getAuthTag(), head.length + tail.length);
    return out;
  },
  gcmOpen(key, nonce, aad, sealed) {
    if (sealed.length < TAG) throw new Error('sealed data too short');
    const d = createDecipheriv('aes-256-gcm', key, nonce);
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    const head = d.update(sealed.subarray(0, sealed.length - TAG));
    const tail = d.final(); // throws on a bad tag
    if (tail.length === 0) return new Uint8Array(head.buffer, head.byteOffset, head.byteLength);
    const out = new Uint8Array(head.length + tail.length);
    out.set(head);
    out.set(tail, head.length);
    return out;
  },
  sha256: (data) => createHash('sha256').update(data).digest(),
};

// node:crypto takes keys as KeyObjects only. Public keys (a new one per request) go in as JWK
// (RFC 8037), which OpenSSL imports about ten times faster than DER; private keys go in as PKCS#8
// DER (RFC 8410) and are cached, since a member uses one: the fleet key.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const b64u = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

const privateKeys = new Map<string, KeyObject>();
function privateKeyObject(sk: Uint8Array): KeyObject {
  if (sk.length !== 32) throw new Error('X25519 secret key must be 32 bytes');
  const id = b64u(sk);
  let k = privateKeys.get(id);
  if (!k) {
    k = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, sk]), format: 'der', type: 'pkcs8' });
    if (privateKeys.size >= 4) privateKeys.delete(privateKeys.keys().next().value!);
    privateKeys.set(id, k);
  }
  return k;
}

/**
 * The client-channel primitives through node:crypto (OpenSSL): X25519 without a WebCrypto job per
 * operation, HMAC and AES-GCM synchronously. OpenSSL refuses an all-zero X25519 result.
 */
export const nativeChannelPrimitives: ChannelPrimitives = {
  x25519: {
    publicKey: (sk) => {
      const { x } = createPublicKey(privateKeyObject(sk)).export({ format: 'jwk' });
      return new Uint8Array(Buffer.from(x!, 'base64url'));
    },
    sharedSecret: (sk, pk) => {
      if (pk.length !== 32) throw new Error('X25519 public key must be 32 bytes');
      const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pk) }, format: 'jwk' });
      return new Uint8Array(diffieHellman({ privateKey: privateKeyObject(sk), publicKey }));
    },
    randomSecretKey: () => new Uint8Array(randomBytes(32)),
  },
  hmacSha256: (key, data) => new Uint8Array(nativeHmacSha256(key, data)),
  gcmSeal: (key, nonce, aad, plaintext) => nativeSealCrypto.gcmSeal(key, nonce, aad, plaintext),
  gcmOpen: (key, nonce, aad, sealed) => nativeSealCrypto.gcmOpen(key, nonce, aad, sealed),
};

/** The production core environment on Node: system clock and CSPRNG, native channel crypto. */
export const nodeCoreEnv: CoreEnv = { ...systemEnv, channelPrimitives: nativeChannelPrimitives };
