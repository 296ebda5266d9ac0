import { base32crockford } from '@scure/base';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../../shared/errors.js';
import { BACKUP_KEY_BYTES, assertBackupKey } from './backup-key.js';

/**
 * The "64-digit recovery key": K as 64 Crockford base32 symbols, shown as 16 groups of 4.
 * Symbols 1-52 carry K and 4 zero bits, symbols 53-64 carry a 60-bit check value
 * (the first 60 bits of SHA-256("bkv recovery key v1" || K)). See docs/formats/recovery-key.md.
 */
export const RECOVERY_KEY_SYMBOLS = 64;
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const DOMAIN = new TextEncoder().encode('bkv recovery key v1');
const GROUP = 4;

function checkValue(key: Uint8Array): Uint8Array {
  const input = new Uint8Array(DOMAIN.length + key.length);
  input.set(DOMAIN);
  input.set(key, DOMAIN.length);
  const digest = sha256(input);
  // 4 zero bits, then the first 60 bits of the digest: 8 bytes in all.
  const out = new Uint8Array(8);
  let acc = 0n;
  for (let i = 0; i < 8; i++) acc = (acc << 8n) | BigInt(digest[i]!);
  acc >>= 4n;
  for (let i = 7; i >= 0; i--) {
    out[i] = Number(acc & 0xffn);
    acc >>= 8n;
  }
  return out;
}

function symbolsOf(key: Uint8Array): string {
  const raw = new Uint8Array(BACKUP_KEY_BYTES + 8);
  raw.set(key);
  raw.set(checkValue(key), BACKUP_KEY_BYTES);
  return base32crockford.encode(raw);
}

/** Formats 64 symbols as 16 dash-separated groups of 4. */
export function groupSymbols(symbols: string): string {
  const groups: string[] = [];
  for (let i = 0; i < symbols.length; i += GROUP) groups.push(symbols.slice(i, i + GROUP));
  return groups.join('-');
}

/** Encodes K as its recovery key, e.g. `7K3M-...-Q2ZD` (16 groups of 4 symbols). */
export function encodeRecoveryKey(key: Uint8Array): string {
  assertBackupKey(key);
  return groupSymbols(symbolsOf(key));
}

/**
 * Canonical symbols of a typed recovery key: spaces, dashes and line breaks ignored, case folded,
 * O read as 0 and I/L read as 1. Throws BAD_RECOVERY_KEY on other characters or a wrong length.
 */
export function normalizeRecoveryKey(text: string): string {
  const s = text
    .replace(/[\s-]+/g, '')
    .toUpperCase()
    .replace(/O/g, '0')
    .replace(/[IL]/g, '1');
  for (let i = 0; i < s.length; i++) {
    if (!ALPHABET.includes(s[i]!)) {
      throw new BkvError('BAD_RECOVERY_KEY', `recovery key: '${s[i]}' (symbol ${i + 1}) is not a valid character`);
    }
  }
  if (s.length !== RECOVERY_KEY_SYMBOLS) {
    throw new BkvError(
      'BAD_RECOVERY_KEY',
      `recovery key: expected ${RECOVERY_KEY_SYMBOLS} characters, got ${s.length}`,
    );
  }
  return s;
}

/** The key K if `symbols` (canonical form) is a valid recovery key, else null. */
function tryDecode(symbols: string): Uint8Array | null {
  const raw = base32crockford.decode(symbols);
  const key = raw.slice(0, BACKUP_KEY_BYTES);
  const check = checkValue(key);
  let diff = 0;
  for (let i = 0; i < 8; i++) diff |= check[i]! ^ raw[BACKUP_KEY_BYTES + i]!;
  return diff === 0 ? key : null;
}

/** Where a single typo would explain a failed check: 0-based symbol positions touched. */
export interface TypoCandidate {
  kind: 'substitution' | 'transposition';
  positions: number[];
  corrected: string;
}

/** Every single-symbol substitution or adjacent transposition of `symbols` that is a valid key. */
export function findTypoCandidates(symbols: string): TypoCandidate[] {
  const found: TypoCandidate[] = [];
  for (let i = 0; i < symbols.length; i++) {
    for (const c of ALPHABET) {
      if (c === symbols[i]) continue;
      const cand = symbols.slice(0, i) + c + symbols.slice(i + 1);
      if (tryDecode(cand)) found.push({ kind: 'substitution', positions: [i], corrected: cand });
    }
  }
  for (let i = 0; i + 1 < symbols.length; i++) {
    if (symbols[i] === symbols[i + 1]) continue;
    const cand = symbols.slice(0, i) + symbols[i + 1] + symbols[i] + symbols.slice(i + 2);
    if (tryDecode(cand)) found.push({ kind: 'transposition', positions: [i, i + 1], corrected: cand });
  }
  return found;
}

/**
 * Decodes a recovery key to K. On a failed check, throws BAD_RECOVERY_KEY naming the group that
 * most likely holds the typo (found by trying every single substitution and adjacent swap);
 * the key is never corrected silently.
 */
export function decodeRecoveryKey(text: string): Uint8Array {
  const symbols = normalizeRecoveryKey(text);
  const key = tryDecode(symbols);
  if (key) return key;
  const candidates = findTypoCandidates(symbols);
  const groups = [...new Set(candidates.flatMap((c) => c.positions.map((p) => Math.floor(p / GROUP) + 1)))];
  let hint = 'check every group';
  if (groups.length === 1) hint = `the typo is likely in group ${groups[0]}`;
  else if (groups.length > 1 && groups.length <= 3) hint = `the typo is likely in group ${groups.join(' or ')}`;
  throw new BkvError('BAD_RECOVERY_KEY', `recovery key has a typo (check value does not match); ${hint}`, {
    groups,
  });
}
