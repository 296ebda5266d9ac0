/**
 * One user's vault record, as the core sees it in the clear: the OPAQUE registration record, the
 * wrapped backup key, the key-stretching parameters, the guess counter and the open attempts. A
 * record is never removed from the record tree; destroying or erasing it leaves a tombstone that
 * holds no secret (so a destroyed account keeps answering "locked"). Byte layout:
 * docs/formats/vault-records.md.
 */
import { BkvError } from '../../shared/errors.js';
import { Reader, Writer } from '../core/codec.js';
import { ATTEMPT_ID_BYTES, type Ksf } from '../core/entries.js';
import { decodePasskeyFields, encodePasskeyFields, type PasskeyRecord } from './passkeys.js';

/** An open attempt: a credential response was (or is about to be) released for it. */
export interface OpenAttempt {
  id: Uint8Array;
  ts: number;
}

export interface LiveRecord {
  status: 'live';
  version: number;
  opaqueRecord: Uint8Array;
  wrappedKey: Uint8Array;
  ksf: Ksf;
  limit: number;
  attemptsRemaining: number;
  open: OpenAttempt[];
  /** The most recent attempt ids, to recognise a replayed or duplicated recovery start. */
  recent: Uint8Array[];
  /**
   * The escrowed key's identifier as the registering client gave it (16 bytes: the key id of the
   * backup format, docs/formats/backup.md), or absent (registered without one). Not a secret: a
   * recovery start naming another key id is answered `key-mismatch` without spending a guess.
   */
  keyId?: Uint8Array;
}

/** What is left of a record whose guesses ran out (`destroyed`) or whose owner erased it (`erased`). */
export interface Tombstone {
  status: 'destroyed' | 'erased';
  version: number;
}

/** An account's passkey escrow: a record of its own, under its own record id (`passkeys.ts`). */
export type { PasskeyRecord };

export type VaultRecord = LiveRecord | Tombstone | PasskeyRecord;

/** Format 1: every record. Format 2: a live record that carries a key id (16 bytes at its end). */
export const RECORD_FORMAT = 1;
export const RECORD_FORMAT_KEY_ID = 2;
export const KEY_ID_BYTES = 16;
const STATUS = { live: 0, destroyed: 1, erased: 2, passkeys: 3 } as const;
/** Field limits (the same as the log entries that create records). */
export const MAX_OPAQUE_RECORD = 1024;
export const MAX_WRAPPED_KEY = 1024;
export const MAX_OPEN = 64;
export const RECENT_IDS = 8;

export function encodeRecord(r: VaultRecord): Uint8Array {
  const format = r.status === 'live' && r.keyId ? RECORD_FORMAT_KEY_ID : RECORD_FORMAT;
  const w = new Writer(r.status === 'live' ? 256 + r.opaqueRecord.length : 16).u8(format).u8(STATUS[r.status]).u64(r.version);
  if (r.status === 'passkeys') {
    encodePasskeyFields(w, r);
    return w.finish();
  }
  if (r.status !== 'live') return w.finish();
  w.bytes(r.opaqueRecord).bytes(r.wrappedKey).u32(r.ksf.memory).u32(r.ksf.iterations).u32(r.ksf.parallelism);
  w.u32(r.limit).u32(r.attemptsRemaining).u32(r.open.length);
  for (const a of r.open) w.raw(a.id).u64(a.ts);
  w.u32(r.recent.length);
  for (const id of r.recent) w.raw(id);
  if (r.keyId) {
    if (r.keyId.length !== KEY_ID_BYTES) throw malformed('a key id must be 16 bytes');
    w.raw(r.keyId);
  }
  return w.finish();
}

export function decodeRecord(bytes: Uint8Array): VaultRecord {
  const r = new Reader(bytes, 'vault record');
  const format = r.u8();
  if (format !== RECORD_FORMAT && format !== RECORD_FORMAT_KEY_ID) throw malformed(`vault record has an unknown format ${format}`);
  const status = r.u8();
  const version = r.u64();
  if (format === RECORD_FORMAT_KEY_ID && status !== STATUS.live) throw malformed('only a live vault record carries a key id');
  if (status === STATUS.destroyed || status === STATUS.erased) {
    r.end();
    return { status: status === STATUS.destroyed ? 'destroyed' : 'erased', version };
  }
  if (status === STATUS.passkeys) {
    const rec = decodePasskeyFields(r, version, malformed);
    r.end();
    return rec;
  }
  if (status !== STATUS.live) throw malformed(`vault record has an unknown status ${status}`);
  const opaqueRecord = r.bytes(MAX_OPAQUE_RECORD);
  const wrappedKey = r.bytes(MAX_WRAPPED_KEY);
  const ksf = { memory: r.u32(), iterations: r.u32(), parallelism: r.u32() };
  const limit = r.u32();
  const attemptsRemaining = r.u32();
  if (attemptsRemaining > limit) throw malformed('vault record has more attempts left than its limit');
  const nOpen = r.u32();
  if (nOpen > MAX_OPEN) throw malformed('vault record has too many open attempts');
  const open: OpenAttempt[] = [];
  for (let i = 0; i < nOpen; i++) open.push({ id: r.raw(ATTEMPT_ID_BYTES), ts: r.u64() });
  const nRecent = r.u32();
  if (nRecent > RECENT_IDS) throw malformed('vault record has too many recent attempt ids');
  const recent: Uint8Array[] = [];
  for (let i = 0; i < nRecent; i++) recent.push(r.raw(ATTEMPT_ID_BYTES));
  const keyId = format === RECORD_FORMAT_KEY_ID ? r.raw(KEY_ID_BYTES) : undefined;
  r.end();
  return { status: 'live', version, opaqueRecord, wrappedKey, ksf, limit, attemptsRemaining, open, recent, ...(keyId ? { keyId } : {}) };
}

function malformed(message: string): BkvError {
  return new BkvError('MALFORMED', message);
}
