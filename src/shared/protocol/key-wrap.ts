import { gcm } from '@noble/ciphers/aes.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../errors.js';

const te = new TextEncoder();

function subkey(secret: Uint8Array, label: string): Uint8Array {
  return hkdf(sha256, secret, undefined, te.encode(label), 32);
}

/**
 * Wraps the backup key K under a key derived from OPAQUE's export key. Only a client that knows
 * the password can derive it; the vault stores the result without being able to open it.
 * Layout: 12-byte nonce ‖ AES-256-GCM(K) with the account as associated data.
 */
export function wrapBackupKey(exportKey: Uint8Array, account: string, k: Uint8Array, nonce: Uint8Array): Uint8Array {
  const ct = gcm(subkey(exportKey, 'bkv wrap backup key v1'), nonce, te.encode(account)).encrypt(k);
  const out = new Uint8Array(12 + ct.length);
  out.set(nonce);
  out.set(ct, 12);
  return out;
}

export function unwrapBackupKey(exportKey: Uint8Array, account: string, wrapped: Uint8Array): Uint8Array {
  try {
    return gcm(subkey(exportKey, 'bkv wrap backup key v1'), wrapped.subarray(0, 12), te.encode(account)).decrypt(
      wrapped.subarray(12),
    );
  } catch {
    throw new BkvError('TAMPERED', 'the escrowed key did not unwrap: the vault record was altered');
  }
}

/** Seals bytes under a key derived from the OPAQUE session key (core → client, after KE3). */
export function sealForSession(sessionKey: Uint8Array, plaintext: Uint8Array, nonce: Uint8Array): Uint8Array {
  const ct = gcm(subkey(sessionKey, 'bkv session release v1'), nonce).encrypt(plaintext);
  const out = new Uint8Array(12 + ct.length);
  out.set(nonce);
  out.set(ct, 12);
  return out;
}

export function openForSession(sessionKey: Uint8Array, sealed: Uint8Array): Uint8Array {
  try {
    return gcm(subkey(sessionKey, 'bkv session release v1'), sealed.subarray(0, 12)).decrypt(sealed.subarray(12));
  } catch {
    throw new BkvError('TAMPERED', 'the released key did not open under the session key');
  }
}
