/**
 * Client-side entry point (browser and Node). Everything exported here must run in a browser:
 * no `node:` imports anywhere under src/client/ (a test bundles this file for the browser).
 */
export { BkvError, isBkvError, type ErrorCode } from '../shared/errors.js';
export { BACKUP_KEY_BYTES, formatKeyId, generateBackupKey, keyFingerprint } from './keys/backup-key.js';
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
export { backupLayout, type BackupLayout } from './backup/layout.js';
export { encryptBackup, type EncryptOptions } from './backup/encrypt.js';
export { openBackup, type DecryptOptions, type OpenedBackup } from './backup/decrypt.js';
export * from './fleet/index.js';
export { readableChunks } from './backup/streams.js';
export { readTar, writeTar, safeTarPath, type TarEntry, type TarFileInput } from './backup/tar.js';
export { archivePath, type TarEntryType } from './backup/tar-reader.js';
export { ArchiveGuard } from './backup/tar-guard.js';
// The vault SDK: password escrow (OPAQUE), passkey escrow, transports and fleet keys over the air.
export {
  VaultClient, DEFAULT_CLIENT_KSF, type BackupKeyResult, type PreparedRecovery, type RecoverOptions, type TrustedFleetKeys, type VaultClientOptions,
} from './sdk/vault-client.js';
export { httpTransport, type HttpTransportOptions, type VaultTransport } from './sdk/transport.js';
export { gatewayBundleFetcher, overTheAirFleet } from './sdk/fleet-source.js';
export { FleetKeyMismatchError, KeyMismatchError, LockedError, NotRegisteredError, WrongPasswordError } from './sdk/errors.js';
export { PasskeyVaultClient, type PasskeyAssertion, type PasskeyVaultClientOptions } from './sdk/passkey-client.js';
export { PASSKEY_PRF_INPUT, passkeyWrappingKey, unwrapWithPasskey, wrapWithPasskey } from './keys/passkey-wrap.js';
export { MemoryCheckpointStore, type CheckpointStore } from './fleet/store.js';
