import { BkvError } from '../../shared/errors.js';
import { FINGERPRINT_BYTES } from '../keys/backup-key.js';

/** Backup format v1 header: 64 bytes, authenticated as associated data of every chunk. */
export const HEADER_BYTES = 64;
export const FORMAT_VERSION = 1;
/** "BKVBACK\n" */
export const MAGIC = new Uint8Array([0x42, 0x4b, 0x56, 0x42, 0x41, 0x43, 0x4b, 0x0a]);
export const SALT_BYTES = 32;
export const MIN_CHUNK_SIZE = 4 * 1024;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
/** Default plaintext chunk size: 1 MiB (fast in both directions, small enough to stream). */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** AES-GCM tag length appended to every chunk. */
export const TAG_BYTES = 16;

/** 0 = a single file, 1 = a tar archive of a directory. */
export type PayloadKind = 'file' | 'tar';
const KIND_CODES: Record<PayloadKind, number> = { file: 0, tar: 1 };

export interface BackupHeader {
  version: number;
  kind: PayloadKind;
  chunkSize: number;
  fingerprint: Uint8Array;
  salt: Uint8Array;
}

/** True for a power of two between MIN_CHUNK_SIZE and MAX_CHUNK_SIZE. */
export function isValidChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

export function encodeHeader(h: BackupHeader): Uint8Array {
  if (!isValidChunkSize(h.chunkSize)) {
    throw new BkvError('USAGE', `chunk size must be a power of two from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE}`);
  }
  if (h.fingerprint.length !== FINGERPRINT_BYTES || h.salt.length !== SALT_BYTES) {
    throw new BkvError('USAGE', 'header fingerprint or salt has the wrong length');
  }
  const out = new Uint8Array(HEADER_BYTES);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[8] = h.version;
  out[9] = KIND_CODES[h.kind];
  // bytes 10-11 reserved, zero
  view.setUint32(12, h.chunkSize, false);
  out.set(h.fingerprint, 16);
  out.set(h.salt, 32);
  return out;
}

/** True when `bytes` could be the start of a backup (a prefix of the magic, or the magic itself). */
export function startsLikeBackup(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, MAGIC.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== MAGIC[i]) return false;
  return true;
}

/**
 * Parses a header. Errors: NOT_A_BACKUP (magic), TRUNCATED (shorter than 64 bytes),
 * UNSUPPORTED_VERSION, TAMPERED (a v1 header with an impossible field value).
 */
export function decodeHeader(bytes: Uint8Array): BackupHeader {
  if (bytes.length === 0) throw new BkvError('NOT_A_BACKUP', 'input is empty, not a bkv backup');
  if (!startsLikeBackup(bytes)) throw new BkvError('NOT_A_BACKUP', 'input is not a bkv backup (bad magic bytes)');
  if (bytes.length < HEADER_BYTES) {
    throw new BkvError('TRUNCATED', `backup is truncated: ${bytes.length} bytes, shorter than its ${HEADER_BYTES}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const version = bytes[8]!;
  if (version !== FORMAT_VERSION) {
    throw new BkvError('UNSUPPORTED_VERSION', `backup format version ${version} is not supported (this bkv reads version ${FORMAT_VERSION})`, { version });
  }
  const kindCode = bytes[9]!;
  const kind = kindCode === 0 ? 'file' : kindCode === 1 ? 'tar' : null;
  if (kind === null) throw new BkvError('TAMPERED', `backup header was altered: unknown payload kind ${kindCode}`);
  if (bytes[10] !== 0 || bytes[11] !== 0) throw new BkvError('TAMPERED', 'backup header was altered: reserved bytes are not zero');
  const chunkSize = view.getUint32(12, false);
  if (!isValidChunkSize(chunkSize)) throw new BkvError('TAMPERED', `backup header was altered: invalid chunk size ${chunkSize}`);
  return {
    version,
    kind,
    chunkSize,
    // Copies (`new Uint8Array`), also when `bytes` is a Buffer, whose slice() is a view.
    fingerprint: new Uint8Array(bytes.subarray(16, 32)),
    salt: new Uint8Array(bytes.subarray(32, 64)),
  };
}
