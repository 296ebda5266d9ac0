/**
 * Record ids and record sealing. The host stores each record under an id it cannot link to an
 * account name (HMAC-SHA256 of the name under a key derived from the fleet's storage key), as a
 * value it cannot read or move (AES-256-GCM bound to the record id and the record's version).
 * Byte layout: docs/formats/vault-records.md.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../../shared/errors.js';
import { Reader, Writer } from '../core/codec.js';
import { SEAL_NONCE_BYTES, seal, unseal, type SealAead } from '../core/sealing.js';
import { decodeRecord, encodeRecord, type VaultRecord } from './record.js';

export const RECORD_ID_BYTES = 32;
const te = new TextEncoder();

export interface RecordKeys {
  /** Derives record ids from account names. */
  idKey: Uint8Array;
  /** Derives the ids of accounts' passkey records (a separate key: the two id spaces never meet). */
  passkeyIdKey: Uint8Array;
  /** Seals record values. */
  sealKey: Uint8Array;
}

/** Both record keys, derived from the fleet's storage key with HKDF-SHA256 (empty salt). */
export function deriveRecordKeys(storageKey: Uint8Array): RecordKeys {
  return {
    idKey: hkdf(sha256, storageKey, new Uint8Array(0), te.encode('bkv record id key v1'), 32),
    passkeyIdKey: hkdf(sha256, storageKey, new Uint8Array(0), te.encode('bkv passkey record id key v1'), 32),
    sealKey: hkdf(sha256, storageKey, new Uint8Array(0), te.encode('bkv record seal key v1'), 32),
  };
}

/** The id the host files an account's record under: HMAC-SHA256(idKey, UTF-8 account name). */
export function recordId(keys: RecordKeys, account: string): Uint8Array {
  return hmac(sha256, keys.idKey, te.encode(account));
}

/** The id of an account's passkey record: HMAC-SHA256(passkeyIdKey, UTF-8 account name). */
export function passkeyRecordId(keys: RecordKeys, account: string): Uint8Array {
  return hmac(sha256, keys.passkeyIdKey, te.encode(account));
}

/** The record a command reads and writes. */
export function commandRecordId(keys: RecordKeys, cmd: { type: string; user: string }): Uint8Array {
  return cmd.type === 'passkey-register' || cmd.type === 'passkey-use' ? passkeyRecordId(keys, cmd.user) : recordId(keys, cmd.user);
}

function recordAad(id: Uint8Array, version: number): Uint8Array {
  return new Writer(64).string('bkv record v1').raw(id).u64(version).finish();
}

/** A stored value: u64 version ‖ nonce ‖ AES-256-GCM(sealKey, nonce, record bytes, AAD(id, version)). */
export function sealRecord(keys: RecordKeys, id: Uint8Array, record: VaultRecord, nonce: Uint8Array, aead?: SealAead): Uint8Array {
  if (nonce.length !== SEAL_NONCE_BYTES) throw new RangeError('record nonce must be 12 bytes');
  const sealed = seal(keys.sealKey, nonce, recordAad(id, record.version), encodeRecord(record), aead);
  return new Writer(8 + sealed.length).u64(record.version).raw(sealed).finish();
}

/** Opens a stored value; the version inside must equal the one outside. */
export function openRecord(keys: RecordKeys, id: Uint8Array, value: Uint8Array, aead?: SealAead): VaultRecord {
  if (value.length < 8) throw new BkvError('TAMPERED', 'stored record is too short');
  const version = new Reader(value.subarray(0, 8), 'stored record').u64();
  const record = decodeRecord(unseal(keys.sealKey, recordAad(id, version), value.subarray(8), 'stored record', aead));
  if (record.version !== version) throw new BkvError('TAMPERED', 'stored record names another version than it holds');
  return record;
}
