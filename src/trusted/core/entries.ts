import { BkvError } from '../../shared/errors.js';
import { Reader, Writer } from './codec.js';
import { decodePasskeyEntryBody, encodePasskeyEntryBody, type PasskeyRegisterEntry, type PasskeyUseEntry } from './passkey-state.js';

/** Argon2id parameters the client used as OPAQUE's key-stretching function (public). */
export interface Ksf {
  memory: number; // KiB
  iterations: number;
  parallelism: number;
}

/** Replicated log entries: the only way the vault's state changes. Encoded once, stored as bytes. */
export type Entry =
  | { type: 'register'; ts: number; user: string; opaqueRecord: Uint8Array; wrappedKey: Uint8Array; ksf: Ksf; limit: number }
  | { type: 'attempt'; ts: number; user: string; attemptId: Uint8Array }
  | { type: 'finish'; ts: number; user: string; attemptId: Uint8Array; success: boolean; erase: boolean }
  // Passkey escrow (src/core/passkey-state.ts): register a credential, use a challenge.
  | PasskeyRegisterEntry
  | PasskeyUseEntry;

const TAG = { register: 1, attempt: 2, finish: 3, 'passkey-register': 4, 'passkey-use': 5 } as const;
export const ATTEMPT_ID_BYTES = 16;

export function encodeEntry(e: Entry): Uint8Array {
  const w = new Writer().u8(TAG[e.type]).u64(e.ts).string(e.user);
  switch (e.type) {
    case 'register':
      w.bytes(e.opaqueRecord).bytes(e.wrappedKey).u32(e.ksf.memory).u32(e.ksf.iterations).u32(e.ksf.parallelism).u32(e.limit);
      break;
    case 'attempt':
      w.raw(e.attemptId);
      break;
    case 'finish':
      w.raw(e.attemptId).u8(e.success ? 1 : 0).u8(e.erase ? 1 : 0);
      break;
    case 'passkey-register':
    case 'passkey-use':
      encodePasskeyEntryBody(w, e);
      break;
  }
  return w.finish();
}

export function decodeEntry(bytes: Uint8Array): Entry {
  const r = new Reader(bytes, 'log entry');
  const tag = r.u8();
  const ts = r.u64();
  const user = r.string(256);
  let e: Entry;
  if (tag === TAG.register) {
    const opaqueRecord = r.bytes(1024);
    const wrappedKey = r.bytes(1024);
    const ksf = { memory: r.u32(), iterations: r.u32(), parallelism: r.u32() };
    e = { type: 'register', ts, user, opaqueRecord, wrappedKey, ksf, limit: r.u32() };
  } else if (tag === TAG.attempt) {
    e = { type: 'attempt', ts, user, attemptId: r.raw(ATTEMPT_ID_BYTES) };
  } else if (tag === TAG.finish) {
    const attemptId = r.raw(ATTEMPT_ID_BYTES);
    const success = r.u8();
    const erase = r.u8();
    if (success > 1 || erase > 1) throw new BkvError('MALFORMED', 'log entry has a bad flag');
    e = { type: 'finish', ts, user, attemptId, success: success === 1, erase: erase === 1 };
  } else if (tag === TAG['passkey-register'] || tag === TAG['passkey-use']) {
    e = decodePasskeyEntryBody(r, tag === TAG['passkey-register'] ? 'passkey-register' : 'passkey-use', ts, user);
  } else {
    throw new BkvError('MALFORMED', `unknown log entry type ${tag}`);
  }
  r.end();
  return e;
}

/** Results of applying entries, returned to the member that proposed them. */
export type AttemptResult =
  | { status: 'granted'; attemptsRemaining: number; limit: number; opaqueRecord: Uint8Array; ksf: Ksf }
  | { status: 'unknown' | 'locked' | 'duplicate'; attemptsRemaining: number; limit: number }
  // The attempt named a key id and the record holds another one: no guess was spent.
  | { status: 'key-mismatch'; attemptsRemaining: number; limit: number; keyId: Uint8Array };

export type FinishResult =
  | { status: 'recovered'; wrappedKey: Uint8Array; attemptsRemaining: number }
  | { status: 'erased' }
  | { status: 'wrong-password'; attemptsRemaining: number }
  | { status: 'destroyed' }
  | { status: 'stale' };

export type RegisterResult = { status: 'registered'; version: number; attemptsRemaining: number };
