import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { BkvError } from '../../shared/errors.js';

/** Length in bytes of a backup key K. */
export const BACKUP_KEY_BYTES = 32;
/** Length in bytes of a key fingerprint as stored in backup headers. */
export const FINGERPRINT_BYTES = 16;

const FINGERPRINT_INFO = new TextEncoder().encode('bkv key fingerprint v1');

/** Draws a fresh backup key K (32 bytes) from the platform CSPRNG. */
export function generateBackupKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(BACKUP_KEY_BYTES));
}

/** Throws USAGE unless `key` is a 32-byte backup key. */
export function assertBackupKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== BACKUP_KEY_BYTES) {
    throw new BkvError('USAGE', `a backup key must be ${BACKUP_KEY_BYTES} bytes`);
  }
}

/**
 * A 16-byte identifier of K: HKDF-SHA256(K, no salt, info "bkv key fingerprint v1").
 * It does not depend on the per-backup salt, so a wrong key is recognised before any chunk is read.
 */
export function keyFingerprint(key: Uint8Array): Uint8Array {
  assertBackupKey(key);
  return hkdf(sha256, key, undefined, FINGERPRINT_INFO, FINGERPRINT_BYTES);
}

/**
 * How a key id (the 16-byte key fingerprint, stored in every backup header and beside an escrowed
 * key in the vault) is shown to people and in JSON: 32 lower-case hex digits.
 */
export function formatKeyId(id: Uint8Array): string {
  return bytesToHex(id);
}
