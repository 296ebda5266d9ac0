/**
 * WebAuthn assertion verification, pure and browser-safe: authenticator data, COSE public keys
 * (ES256 on P-256 and EdDSA on Ed25519, the two algorithms passkeys use), client data and the
 * signature over authenticatorData ‖ SHA-256(clientDataJSON). The vault core runs this to decide
 * whether to release a passkey-wrapped key (docs/passkeys.md); it trusts nothing the host says.
 */
import { p256 } from '@noble/curves/nist.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { base64urlnopad } from '@scure/base';
import { BkvError } from '../errors.js';

export const COSE_ALG_ES256 = -7;
export const COSE_ALG_EDDSA = -8;

/** Flags byte of authenticator data (WebAuthn §6.1). */
export const FLAG_UP = 0x01;
export const FLAG_UV = 0x04;
export const FLAG_AT = 0x40;
export const FLAG_ED = 0x80;

export const MAX_CREDENTIAL_ID = 1023;
export const MAX_COSE_KEY = 256;

const fail = (message: string, check: string): BkvError => new BkvError('VERIFICATION_FAILED', `passkey assertion refused: ${message}`, { check });
const malformed = (message: string): BkvError => new BkvError('MALFORMED', message);

// ------------------------------------------------------------------ a minimal CBOR reader

type Cbor = number | bigint | Uint8Array | string | boolean | null | Cbor[] | Map<Cbor, Cbor>;

class CborReader {
  pos = 0;
  constructor(private readonly b: Uint8Array) {}
  private byte(): number {
    if (this.pos >= this.b.length) throw malformed('CBOR data is truncated');
    return this.b[this.pos++]!;
  }
  private uint(info: number): number {
    if (info < 24) return info;
    const n = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1;
    if (n < 0) throw malformed('CBOR uses an unsupported length encoding');
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + this.byte();
    if (!Number.isSafeInteger(v)) throw malformed('CBOR integer out of range');
    return v;
  }
  read(depth = 0): Cbor {
    if (depth > 8) throw malformed('CBOR nested too deeply');
    const first = this.byte();
    const major = first >> 5;
    const info = first & 31;
    switch (major) {
      case 0:
        return this.uint(info);
      case 1:
        return -1 - this.uint(info);
      case 2: {
        const n = this.uint(info);
        if (this.pos + n > this.b.length) throw malformed('CBOR byte string is truncated');
        const out = this.b.slice(this.pos, this.pos + n);
        this.pos += n;
        return out;
      }
      case 3: {
        const n = this.uint(info);
        if (this.pos + n > this.b.length) throw malformed('CBOR text is truncated');
        const out = new TextDecoder('utf-8', { fatal: true }).decode(this.b.subarray(this.pos, this.pos + n));
        this.pos += n;
        return out;
      }
      case 4: {
        const n = this.uint(info);
        if (n > 64) throw malformed('CBOR array too long');
        const out: Cbor[] = [];
        for (let i = 0; i < n; i++) out.push(this.read(depth + 1));
        return out;
      }
      case 5: {
        const n = this.uint(info);
        if (n > 64) throw malformed('CBOR map too long');
        const out = new Map<Cbor, Cbor>();
        for (let i = 0; i < n; i++) {
          const k = this.read(depth + 1);
          if (out.has(k)) throw malformed('CBOR map has a duplicate key');
          out.set(k, this.read(depth + 1));
        }
        return out;
      }
      case 7:
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22) return null;
        throw malformed('CBOR uses an unsupported simple value');
      default:
        throw malformed('CBOR uses an unsupported type (tags or indefinite lengths)');
    }
  }
}

// ------------------------------------------------------------------ COSE keys

export interface CosePublicKey {
  alg: typeof COSE_ALG_ES256 | typeof COSE_ALG_EDDSA;
  /** ES256: the uncompressed point 04 ‖ x ‖ y (65 bytes). EdDSA: the 32-byte Ed25519 key. */
  publicKey: Uint8Array;
}

/** Parses a COSE_Key (RFC 9052/9053) of kind ES256/P-256 or EdDSA/Ed25519; anything else is refused. */
export function parseCoseKey(bytes: Uint8Array): CosePublicKey {
  if (bytes.length > MAX_COSE_KEY) throw malformed('COSE key too long');
  const r = new CborReader(bytes);
  const m = r.read();
  if (r.pos !== bytes.length) throw malformed('COSE key has trailing bytes');
  if (!(m instanceof Map)) throw malformed('COSE key is not a map');
  const kty = m.get(1);
  const alg = m.get(3);
  const crv = m.get(-1);
  const x = m.get(-2);
  if (kty === 2 && alg === COSE_ALG_ES256 && crv === 1) {
    const y = m.get(-3);
    if (!(x instanceof Uint8Array) || x.length !== 32 || !(y instanceof Uint8Array) || y.length !== 32) throw malformed('ES256 COSE key needs 32-byte x and y');
    const pub = new Uint8Array(65);
    pub[0] = 4;
    pub.set(x, 1);
    pub.set(y, 33);
    try {
      p256.Point.fromBytes(pub).assertValidity();
    } catch {
      throw malformed('ES256 COSE key is not a point on P-256');
    }
    return { alg: COSE_ALG_ES256, publicKey: pub };
  }
  if (kty === 1 && alg === COSE_ALG_EDDSA && crv === 6) {
    if (!(x instanceof Uint8Array) || x.length !== 32) throw malformed('Ed25519 COSE key needs a 32-byte x');
    try {
      ed25519.Point.fromBytes(x);
    } catch {
      throw malformed('Ed25519 COSE key is not a valid point');
    }
    return { alg: COSE_ALG_EDDSA, publicKey: x.slice() };
  }
  throw malformed(`unsupported COSE key (kty ${String(kty)}, alg ${String(alg)}, crv ${String(crv)}): passkeys must use ES256 or EdDSA`);
}

// ------------------------------------------------------------------ authenticator data

export interface AuthenticatorData {
  rpIdHash: Uint8Array;
  flags: number;
  signCount: number;
  /** Present when the AT flag is set (registration). */
  attested?: { aaguid: Uint8Array; credentialId: Uint8Array; cosePublicKey: Uint8Array };
}

export function parseAuthenticatorData(bytes: Uint8Array): AuthenticatorData {
  if (bytes.length < 37) throw malformed('authenticator data is shorter than 37 bytes');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: AuthenticatorData = { rpIdHash: bytes.slice(0, 32), flags: bytes[32]!, signCount: view.getUint32(33) };
  let pos = 37;
  if (out.flags & FLAG_AT) {
    if (bytes.length < pos + 18) throw malformed('attested credential data is truncated');
    const aaguid = bytes.slice(pos, pos + 16);
    const idLen = view.getUint16(pos + 16);
    pos += 18;
    if (idLen > MAX_CREDENTIAL_ID || bytes.length < pos + idLen) throw malformed('credential id is truncated or too long');
    const credentialId = bytes.slice(pos, pos + idLen);
    pos += idLen;
    const r = new CborReader(bytes.subarray(pos));
    r.read();
    const cosePublicKey = bytes.slice(pos, pos + r.pos);
    pos += r.pos;
    out.attested = { aaguid, credentialId, cosePublicKey };
  }
  if (out.flags & FLAG_ED) {
    const r = new CborReader(bytes.subarray(pos));
    r.read();
    pos += r.pos;
  }
  if (pos !== bytes.length) throw malformed('authenticator data has trailing bytes');
  return out;
}

// ------------------------------------------------------------------ assertions

export interface WebAuthnAssertion {
  authenticatorData: Uint8Array;
  clientDataJSON: Uint8Array;
  /** ES256: DER-encoded ECDSA signature; EdDSA: 64 bytes. */
  signature: Uint8Array;
}

export interface AssertionPolicy {
  /** The relying party id the credential is scoped to (a host name, e.g. `localhost`). */
  rpId: string;
  /** Origins allowed in clientDataJSON, e.g. `https://backup.example`. */
  origins: readonly string[];
  /** Require the UV (user verified) flag; UP (user present) is always required. */
  requireUserVerification?: boolean;
}

export interface VerifiedAssertion {
  /** The challenge clientDataJSON carries (the caller checks it is one it issued). */
  challenge: Uint8Array;
  signCount: number;
  flags: number;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/**
 * Verifies an assertion (WebAuthn §7.2, steps 11-21 that concern a relying party without
 * stored state): clientDataJSON's type is `webauthn.get`, its origin allowed and not
 * cross-origin; the authenticator data's rpIdHash is SHA-256(rpId), the UP flag (and UV when
 * required) set; the signature by `key` over authenticatorData ‖ SHA-256(clientDataJSON).
 * Returns the challenge for the caller to check. Throws VERIFICATION_FAILED with `details.check`.
 */
export function verifyAssertion(key: CosePublicKey, a: WebAuthnAssertion, policy: AssertionPolicy): VerifiedAssertion {
  if (a.clientDataJSON.length > 4096) throw malformed('clientDataJSON too long');
  let cd: { type?: unknown; challenge?: unknown; origin?: unknown; crossOrigin?: unknown };
  try {
    cd = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(a.clientDataJSON)) as typeof cd;
  } catch {
    throw malformed('clientDataJSON is not JSON');
  }
  if (cd === null || typeof cd !== 'object') throw malformed('clientDataJSON is not an object');
  if (cd.type !== 'webauthn.get') throw fail(`client data type is ${JSON.stringify(cd.type)}, not "webauthn.get"`, 'type');
  if (typeof cd.origin !== 'string' || !policy.origins.includes(cd.origin)) {
    throw fail(`origin ${JSON.stringify(cd.origin)} is not one this vault allows`, 'origin');
  }
  if (cd.crossOrigin === true) throw fail('the assertion was made in a cross-origin frame', 'origin');
  let challenge: Uint8Array;
  try {
    challenge = base64urlnopad.decode(String(cd.challenge));
  } catch {
    throw fail('the challenge is not base64url', 'challenge');
  }
  const ad = parseAuthenticatorData(a.authenticatorData);
  if (!equal(ad.rpIdHash, sha256(new TextEncoder().encode(policy.rpId)))) throw fail(`the credential is not scoped to ${policy.rpId} (rpIdHash differs)`, 'rp-id');
  if (!(ad.flags & FLAG_UP)) throw fail('the user was not present (UP flag clear)', 'user-presence');
  if (policy.requireUserVerification && !(ad.flags & FLAG_UV)) throw fail('the user was not verified (UV flag clear)', 'user-verification');
  const message = new Uint8Array(a.authenticatorData.length + 32);
  message.set(a.authenticatorData);
  message.set(sha256(a.clientDataJSON), a.authenticatorData.length);
  let ok = false;
  try {
    ok =
      key.alg === COSE_ALG_ES256
        ? p256.verify(a.signature, message, key.publicKey, { prehash: true, lowS: false, format: 'der' })
        : a.signature.length === 64 && ed25519.verify(a.signature, message, key.publicKey);
  } catch {
    ok = false;
  }
  if (!ok) throw fail('the signature does not verify under the registered credential', 'signature');
  return { challenge, signCount: ad.signCount, flags: ad.flags };
}
