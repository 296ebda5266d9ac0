/**
 * K wrapped under a key derived from a passkey's PRF output (WebAuthn PRF extension, CTAP2
 * hmac-secret). The PRF is evaluated on one fixed, public input, so every device holding the
 * (synced) passkey derives the same secret; HKDF with a domain-separated label binds the wrapping
 * key to this use, the account and the credential. See docs/passkeys.md.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../../shared/errors.js';

const te = new TextEncoder();

/** The PRF input ("salt" in WebAuthn's terms): SHA-256 of a fixed label, the same on every device. */
export const PASSKEY_PRF_INPUT: Uint8Array = sha256(te.encode('bkv passkey prf input v1'));

function lengthPrefixed(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  const v = new DataView(out.buffer);
  let o = 0;
  for (const p of parts) {
    v.setUint32(o, p.length);
    out.set(p, o + 4);
    o += 4 + p.length;
  }
  return out;
}

/** wrapping key = HKDF-SHA256(ikm = PRF output, salt = none, info = "bkv passkey wrap v1" ‖ len‖account ‖ len‖credential id). */
export function passkeyWrappingKey(prfOutput: Uint8Array, account: string, credentialId: Uint8Array): Uint8Array {
  if (prfOutput.length < 32) throw new BkvError('USAGE', 'the passkey PRF output must be at least 32 bytes');
  return hkdf(sha256, prfOutput, undefined, lengthPrefixed(te.encode('bkv passkey wrap v1'), te.encode(account), credentialId), 32);
}

const aad = (account: string) => lengthPrefixed(te.encode('bkv passkey wrapped key v1'), te.encode(account));

/** 12-byte nonce ‖ AES-256-GCM(K) with the account as associated data (60 bytes). */
export function wrapWithPasskey(prfOutput: Uint8Array, account: string, credentialId: Uint8Array, k: Uint8Array, nonce: Uint8Array = crypto.getRandomValues(new Uint8Array(12))): Uint8Array {
  if (k.length !== 32) throw new BkvError('USAGE', 'the backup key must be 32 bytes');
  const ct = gcm(passkeyWrappingKey(prfOutput, account, credentialId), nonce, aad(account)).encrypt(k);
  const out = new Uint8Array(12 + ct.length);
  out.set(nonce);
  out.set(ct, 12);
  return out;
}

export function unwrapWithPasskey(prfOutput: Uint8Array, account: string, credentialId: Uint8Array, wrapped: Uint8Array): Uint8Array {
  try {
    return gcm(passkeyWrappingKey(prfOutput, account, credentialId), wrapped.subarray(0, 12), aad(account)).decrypt(wrapped.subarray(12));
  } catch {
    throw new BkvError('WRONG_KEY', 'the passkey does not unwrap the escrowed key (another passkey, or the record was altered)');
  }
}
