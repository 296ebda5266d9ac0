/** A software WebAuthn authenticator for tests: ES256 or Ed25519 credentials, a PRF, assertions. */
import { p256 } from '@noble/curves/nist.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { base64urlnopad } from '@scure/base';
import type { PasskeyAssertion } from '../../src/client/sdk/passkey-client.js';

function cborHead(major: number, n: number): number[] {
  if (n < 24) return [(major << 5) | n];
  if (n < 256) return [(major << 5) | 24, n];
  return [(major << 5) | 25, n >> 8, n & 255];
}
function cborInt(v: number): number[] {
  return v >= 0 ? cborHead(0, v) : cborHead(1, -1 - v);
}
function cborBytes(b: Uint8Array): number[] {
  return [...cborHead(2, b.length), ...b];
}
export function coseKey(entries: [number, number | Uint8Array][]): Uint8Array {
  const out = [...cborHead(5, entries.length)];
  for (const [k, v] of entries) out.push(...cborInt(k), ...(typeof v === 'number' ? cborInt(v) : cborBytes(v)));
  return new Uint8Array(out);
}

export interface SoftCredential {
  credentialId: Uint8Array;
  cosePublicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
  prf(input: Uint8Array): Uint8Array;
}

export function newCredential(alg: 'ES256' | 'EdDSA' = 'ES256'): SoftCredential {
  const credentialId = crypto.getRandomValues(new Uint8Array(16));
  const prfSecret = crypto.getRandomValues(new Uint8Array(32));
  const prf = (input: Uint8Array) => hmac(sha256, prfSecret, input);
  if (alg === 'ES256') {
    const sk = p256.utils.randomSecretKey();
    const pub = p256.getPublicKey(sk, false);
    return {
      credentialId,
      cosePublicKey: coseKey([[1, 2], [3, -7], [-1, 1], [-2, pub.slice(1, 33)], [-3, pub.slice(33)]]),
      sign: (m) => p256.sign(m, sk, { prehash: true, format: 'der' }),
      prf,
    };
  }
  const sk = ed25519.utils.randomSecretKey();
  return {
    credentialId,
    cosePublicKey: coseKey([[1, 1], [3, -8], [-1, 6], [-2, ed25519.getPublicKey(sk)]]),
    sign: (m) => ed25519.sign(m, sk),
    prf,
  };
}

export interface AssertOptions {
  rpId?: string;
  origin?: string;
  type?: string;
  flags?: number;
  signCount?: number;
}

/** An assertion over `challenge` as a browser and authenticator would make it. */
export function assertWith(cred: SoftCredential, challenge: Uint8Array, o: AssertOptions = {}): PasskeyAssertion {
  const clientDataJSON = new TextEncoder().encode(
    JSON.stringify({ type: o.type ?? 'webauthn.get', challenge: base64urlnopad.encode(challenge), origin: o.origin ?? 'http://localhost:7480', crossOrigin: false }),
  );
  const authenticatorData = new Uint8Array(37);
  authenticatorData.set(sha256(new TextEncoder().encode(o.rpId ?? 'localhost')));
  authenticatorData[32] = o.flags ?? 0x05; // UP | UV
  new DataView(authenticatorData.buffer).setUint32(33, o.signCount ?? 1);
  const msg = new Uint8Array(37 + 32);
  msg.set(authenticatorData);
  msg.set(sha256(clientDataJSON), 37);
  return { authenticatorData, clientDataJSON, signature: cred.sign(msg) };
}
