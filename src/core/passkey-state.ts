/**
 * Replicated state of passkey escrows: per account, the registered credentials (id, COSE public
 * key, K wrapped under the passkey's PRF-derived key) and the challenge ids already used, so an
 * assertion is accepted at most once. Applied deterministically from log entries like the
 * password records (time only from entry timestamps). See docs/passkeys.md.
 */
import { BkvError } from '../client/errors.js';
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

export interface AccountPasskeys {
  credentials: PasskeyCredential[];
  used: { id: Uint8Array; ts: number }[];
  version: number;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

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

export class PasskeyState {
  private accounts = new Map<string, AccountPasskeys>();

  get size(): number {
    return this.accounts.size;
  }

  /** Read-only view for tests; never leaves the core. */
  peek(user: string): Readonly<AccountPasskeys> | undefined {
    return this.accounts.get(user);
  }

  /** Marks the challenge used; 'replayed' if it was, 'busy' if too many unexpired ones are held. */
  private consume(acc: AccountPasskeys, id: Uint8Array, ts: number): 'ok' | 'replayed' | 'busy' {
    acc.used = acc.used.filter((u) => ts - u.ts < 2 * PASSKEY_CHALLENGE_TTL_MS);
    if (acc.used.some((u) => same(u.id, id))) return 'replayed';
    if (acc.used.length >= MAX_USED_CHALLENGES) return 'busy';
    acc.used.push({ id, ts });
    return 'ok';
  }

  register(e: PasskeyRegisterEntry): PasskeyRegisterResult {
    const acc = this.accounts.get(e.user) ?? { credentials: [], used: [], version: 0 };
    const c = this.consume(acc, e.challengeId, e.ts);
    this.accounts.set(e.user, acc);
    if (c !== 'ok') return { status: c };
    const others = acc.credentials.filter((x) => !same(x.credentialId, e.credentialId));
    if (others.length >= MAX_PASSKEYS) return { status: 'full' };
    acc.credentials = [...others, { credentialId: e.credentialId, coseKey: e.coseKey, wrappedKey: e.wrappedKey }];
    acc.version += 1;
    return { status: 'registered', version: acc.version, passkeys: acc.credentials.length };
  }

  use(e: PasskeyUseEntry): PasskeyUseResult {
    const acc = this.accounts.get(e.user);
    if (!acc) return { status: 'unknown' };
    const c = this.consume(acc, e.challengeId, e.ts);
    if (c !== 'ok') return { status: c };
    const cred = acc.credentials.find((x) => same(x.credentialId, e.credentialId));
    if (!cred) return { status: 'unknown' };
    return { status: 'found', coseKey: cred.coseKey, wrappedKey: cred.wrappedKey };
  }

  /** Snapshot section: u32 accounts, then per account (sorted): user, version, credentials, used ids. Empty state → zero bytes. */
  encode(): Uint8Array {
    if (this.accounts.size === 0) return new Uint8Array(0);
    const w = new Writer(1024).u32(this.accounts.size);
    for (const user of [...this.accounts.keys()].sort()) {
      const a = this.accounts.get(user)!;
      w.string(user).u64(a.version).u32(a.credentials.length);
      for (const c of a.credentials) w.bytes(c.credentialId).bytes(c.coseKey).bytes(c.wrappedKey);
      w.u32(a.used.length);
      for (const u of a.used) w.raw(u.id).u64(u.ts);
    }
    return w.finish();
  }

  static decode(bytes: Uint8Array): PasskeyState {
    const s = new PasskeyState();
    if (bytes.length === 0) return s;
    const r = new Reader(bytes, 'passkey snapshot');
    for (let n = r.u32(); n > 0; n--) {
      const user = r.string(256);
      const version = r.u64();
      const credentials: PasskeyCredential[] = [];
      for (let k = r.u32(); k > 0; k--) {
        if (credentials.length >= MAX_PASSKEYS) throw new BkvError('MALFORMED', 'passkey snapshot has too many credentials');
        credentials.push({ credentialId: r.bytes(1023), coseKey: r.bytes(256), wrappedKey: r.bytes(128) });
      }
      const used: { id: Uint8Array; ts: number }[] = [];
      for (let k = r.u32(); k > 0; k--) used.push({ id: r.raw(CHALLENGE_ID_BYTES), ts: r.u64() });
      s.accounts.set(user, { credentials, used, version });
    }
    r.end();
    return s;
  }
}

export function encodePasskeyResult(w: Writer, r: PasskeyRegisterResult | PasskeyUseResult): void {
  const codes = ['registered', 'found', 'unknown', 'replayed', 'busy', 'full'] as const;
  w.u8(codes.indexOf(r.status));
  if (r.status === 'registered') w.u64(r.version).u32(r.passkeys);
  if (r.status === 'found') w.bytes(r.coseKey).bytes(r.wrappedKey);
}

export function decodePasskeyResult(r: Reader): PasskeyRegisterResult | PasskeyUseResult {
  const codes = ['registered', 'found', 'unknown', 'replayed', 'busy', 'full'] as const;
  const status = codes[r.u8()];
  if (status === 'registered') return { status, version: r.u64(), passkeys: r.u32() };
  if (status === 'found') return { status, coseKey: r.bytes(256), wrappedKey: r.bytes(128) };
  if (status === 'unknown' || status === 'replayed' || status === 'busy') return { status };
  if (status === 'full') return { status };
  throw new BkvError('MALFORMED', 'bad passkey result');
}
