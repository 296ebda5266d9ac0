/**
 * Client-side entry point (browser and Node). Everything exported here must run in a browser:
 * no `node:` imports anywhere under src/client/ (a test bundles this file for the browser).
 */
export { BkvError, isBkvError, type ErrorCode } from '../shared/errors.js';
export { BACKUP_KEY_BYTES, generateBackupKey, keyFingerprint } from './keys/backup-key.js';
export {
  decodeRecoveryKey,
  encodeRecoveryKey,
  findTypoCandidates,
  normalizeRecoveryKey,
  type TypoCandidate,
} from './keys/recovery-key.js';
export type { ChunkCipher, ChunkCipherFactory } from './backup/cipher.js';
export { webCryptoAesGcm } from './backup/webcrypto-cipher.js';
export {
  DEFAULT_CHUNK_SIZE,
  FORMAT_VERSION,
  HEADER_BYTES,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  TAG_BYTES,
  decodeHeader,
  type BackupHeader,
  type PayloadKind,
} from './backup/header.js';
export { encryptBackup, type EncryptOptions } from './backup/encrypt.js';
export { openBackup, type DecryptOptions, type OpenedBackup } from './backup/decrypt.js';
export * from './fleet/index.js';
