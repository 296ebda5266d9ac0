/**
 * Passkey escrow on the record store: one record per account (under its own record id) holding the
 * registered credentials (id, COSE public key, K wrapped under the passkey's PRF-derived key) and the
 * challenge ids already used, so an assertion is accepted at most once. The commands run like the
 * password commands: on the leader, in a batch, committed before the reply (docs/passkeys.md).
 */
import { equalBytes } from '../../shared/bytes.js';
import type { Reader, Writer } from '../core/codec.js';
import {
  CHALLENGE_ID_BYTES,
  MAX_PASSKEYS,
  MAX_USED_CHALLENGES,
  PASSKEY_CHALLENGE_TTL_MS,
  type PasskeyCredential,
  type PasskeyRegisterEntry,
  type PasskeyRegisterResult,
  type PasskeyUseEntry,
  type PasskeyUseResult,
} from '../core/passkey-state.js';

export interface PasskeyRecord {
  status: 'passkeys';
  version: number;
  credentials: PasskeyCredential[];
  used: Array<{ id: Uint8Array; ts: number }>;
}

export function encodePasskeyFields(w: Writer, r: PasskeyRecord): void {
  w.u32(r.credentials.length);
  for (const c of r.credentials) w.bytes(c.credentialId).bytes(c.coseKey).bytes(c.wrappedKey);
  w.u32(r.used.length);
  for (const u of r.used) w.raw(u.id).u64(u.ts);
}

export function decodePasskeyFields(r: Reader, version: number, malformed: (m: string) => Error): PasskeyRecord {
  const n = r.u32();
  if (n > MAX_PASSKEYS) throw malformed('passkey record has too many credentials');
  const credentials: PasskeyCredential[] = [];
  for (let i = 0; i < n; i++) credentials.push({ credentialId: r.bytes(1023), coseKey: r.bytes(256), wrappedKey: r.bytes(128) });
  const u = r.u32();
  if (u > MAX_USED_CHALLENGES) throw malformed('passkey record has too many used challenges');
  const used: PasskeyRecord['used'] = [];
  for (let i = 0; i < u; i++) used.push({ id: r.raw(CHALLENGE_ID_BYTES), ts: r.u64() });
  return { status: 'passkeys', version, credentials, used };
}

/** Marks the challenge used: 'replayed' if it was, 'busy' if too many unexpired ones are held. */
function consume(rec: PasskeyRecord, id: Uint8Array, ts: number): { outcome: 'ok' | 'replayed' | 'busy'; used: PasskeyRecord['used'] } {
  const used = rec.used.filter((u) => ts - u.ts < 2 * PASSKEY_CHALLENGE_TTL_MS);
  if (used.some((u) => equalBytes(u.id, id))) return { outcome: 'replayed', used };
  if (used.length >= MAX_USED_CHALLENGES) return { outcome: 'busy', used };
  return { outcome: 'ok', used: [...used, { id, ts }] };
}

const EMPTY: PasskeyRecord = { status: 'passkeys', version: 0, credentials: [], used: [] };

export function passkeyRegister(current: PasskeyRecord | undefined, e: PasskeyRegisterEntry): { result: PasskeyRegisterResult; next?: PasskeyRecord } {
  const rec = current ?? EMPTY;
  const c = consume(rec, e.challengeId, e.ts);
  if (c.outcome !== 'ok') return { result: { status: c.outcome } };
  const others = rec.credentials.filter((x) => !equalBytes(x.credentialId, e.credentialId));
  const spent: PasskeyRecord = { ...rec, used: c.used, version: rec.version + 1 };
  if (others.length >= MAX_PASSKEYS) return { result: { status: 'full' }, next: spent };
  const next: PasskeyRecord = { ...spent, credentials: [...others, { credentialId: e.credentialId, coseKey: e.coseKey, wrappedKey: e.wrappedKey }] };
  return { result: { status: 'registered', version: next.version, passkeys: next.credentials.length }, next };
}

export function passkeyUse(current: PasskeyRecord | undefined, e: PasskeyUseEntry): { result: PasskeyUseResult; next?: PasskeyRecord } {
  if (!current) return { result: { status: 'unknown' } };
  const c = consume(current, e.challengeId, e.ts);
  if (c.outcome !== 'ok') return { result: { status: c.outcome } };
  const next: PasskeyRecord = { ...current, used: c.used, version: current.version + 1 };
  const cred = current.credentials.find((x) => equalBytes(x.credentialId, e.credentialId));
  if (!cred) return { result: { status: 'unknown' }, next };
  return { result: { status: 'found', coseKey: cred.coseKey, wrappedKey: cred.wrappedKey }, next };
}
