import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BkvError } from '../../src/shared/errors.js';
import { decodeRecoveryKey, encodeRecoveryKey, generateBackupKey, keyFingerprint } from '../../src/client/index.js';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

function failure(text: string): BkvError {
  try {
    decodeRecoveryKey(text);
  } catch (e) {
    return e as BkvError;
  }
  throw new Error('decoded a bad key');
}

describe('recovery key', () => {
  it('is 64 symbols in 16 dash-separated groups of 4', () => {
    const text = encodeRecoveryKey(generateBackupKey());
    expect(text).toMatch(/^([0-9A-HJKMNP-TV-Z]{4}-){15}[0-9A-HJKMNP-TV-Z]{4}$/);
  });

  it('property: round-trips, also in lower case, with spaces and O/I/L look-alikes', () => {
    fc.assert(
      fc.property(key32, (k) => {
        const text = encodeRecoveryKey(k);
        expect(decodeRecoveryKey(text)).toEqual(k);
        const typed = text.toLowerCase().replace(/-/g, ' ').replace(/0/g, 'o').replace(/1/g, 'l');
        expect(decodeRecoveryKey(`  ${typed}\n`)).toEqual(k);
      }),
      { numRuns: 200 },
    );
  });

  it('property: any single substitution is detected and its group named', () => {
    fc.assert(
      fc.property(key32, fc.integer({ min: 0, max: 63 }), fc.integer({ min: 1, max: 31 }), (k, pos, delta) => {
        const symbols = encodeRecoveryKey(k).replace(/-/g, '');
        const wrong = ALPHABET[(ALPHABET.indexOf(symbols[pos]!) + delta) % 32]!;
        const err = failure(symbols.slice(0, pos) + wrong + symbols.slice(pos + 1));
        expect(err.code).toBe('BAD_RECOVERY_KEY');
        expect(err.details.groups).toContain(Math.floor(pos / 4) + 1);
      }),
      { numRuns: 60 },
    );
  });

  it('property: any adjacent transposition is detected', () => {
    fc.assert(
      fc.property(key32, fc.integer({ min: 0, max: 62 }), (k, pos) => {
        const s = encodeRecoveryKey(k).replace(/-/g, '');
        fc.pre(s[pos] !== s[pos + 1]);
        const err = failure(s.slice(0, pos) + s[pos + 1] + s[pos] + s.slice(pos + 2));
        expect(err.code).toBe('BAD_RECOVERY_KEY');
        expect(err.details.groups).toContain(Math.floor(pos / 4) + 1);
      }),
      { numRuns: 60 },
    );
  });

  it('rejects wrong lengths and invalid characters', () => {
    const s = encodeRecoveryKey(generateBackupKey());
    expect(failure(s.slice(0, -1)).code).toBe('BAD_RECOVERY_KEY');
    expect(failure(s + 'A').code).toBe('BAD_RECOVERY_KEY');
    expect(failure('U' + s.slice(1)).message).toContain("'U'");
  });

  it('fingerprints are 16 bytes and differ between keys', () => {
    const a = keyFingerprint(generateBackupKey());
    expect(a.length).toBe(16);
    expect(a).not.toEqual(keyFingerprint(generateBackupKey()));
  });
});
