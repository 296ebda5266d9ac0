/**
 * Passkey escrow commands and their results: registering a credential (id, COSE public key, K
 * wrapped under the passkey's PRF-derived key) and using a challenge. They run on the account's
 * passkey record (`src/trusted/records/passkeys.ts`), with time only from the command's timestamp.
 * See docs/passkeys.md.
 */
import { Reader, Writer } from './codec.js';

export const CHALLENGE_ID_BYTES = 16;
/** How long a passkey challenge is valid after the core issued it. */
export const PASSKEY_CHALLENGE_TTL_MS = 5 * 60 * 1000;
/** Passkeys one account may register. */
export const MAX_PASSKEYS = 10;
/** Unexpired used challenges kept per account; more uses inside the window are refused (never forgotten early). */
export const MAX_USED_CHALLENGES = 256;

export interface PasskeyCredential {
  credentialId: Uint8Array;
  coseKey: Uint8Array;
  wrappedKey: Uint8Array;
}

export type PasskeyRegisterEntry = {
  type: 'passkey-register';
  ts: number;
  user: string;
  credentialId: Uint8Array;
  coseKey: Uint8Array;
  wrappedKey: Uint8Array;
  challengeId: Uint8Array;
};
export type PasskeyUseEntry = { type: 'passkey-use'; ts: number; user: string; credentialId: Uint8Array; challengeId: Uint8Array };

export type PasskeyRegisterResult = { status: 'registered'; version: number; passkeys: number } | { status: 'replayed' | 'busy' | 'full' };
export type PasskeyUseResult = { status: 'found'; coseKey: Uint8Array; wrappedKey: Uint8Array } | { status: 'unknown' | 'replayed' | 'busy' };

export function encodePasskeyEntryBody(w: Writer, e: PasskeyRegisterEntry | PasskeyUseEntry): void {
  w.bytes(e.credentialId);
  if (e.type === 'passkey-register') w.bytes(e.coseKey).bytes(e.wrappedKey);
  w.raw(e.challengeId);
}

export function decodePasskeyEntryBody(r: Reader, type: 'passkey-register' | 'passkey-use', ts: number, user: string): PasskeyRegisterEntry | PasskeyUseEntry {
  const credentialId = r.bytes(1023);
  if (type === 'passkey-register') {
    const coseKey = r.bytes(256);
    const wrappedKey = r.bytes(128);
    return { type, ts, user, credentialId, coseKey, wrappedKey, challengeId: r.raw(CHALLENGE_ID_BYTES) };
  }
  return { type, ts, user, credentialId, challengeId: r.raw(CHALLENGE_ID_BYTES) };
}



