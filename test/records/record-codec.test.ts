import { describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { decodeRecord, encodeRecord, type LiveRecord } from '../../src/trusted/records/record.js';
import { deriveRecordKeys, openRecord, recordId, sealRecord } from '../../src/trusted/records/record-keys.js';
import { runCommand } from '../../src/trusted/records/commands.js';

const KSF = { memory: 256, iterations: 1, parallelism: 1 };
const keys = deriveRecordKeys(new Uint8Array(32).fill(7));
const live: LiveRecord = {
  status: 'live', version: 3, opaqueRecord: new Uint8Array(192).fill(1), wrappedKey: new Uint8Array(60).fill(2), ksf: KSF,
  limit: 5, attemptsRemaining: 4, open: [{ id: new Uint8Array(16).fill(9), ts: 1_700_000_000_000 }], recent: [new Uint8Array(16).fill(9)],
};
const nonce = () => crypto.getRandomValues(new Uint8Array(12));

describe('vault records', () => {
  it('round-trip live records and tombstones', () => {
    expect(decodeRecord(encodeRecord(live))).toEqual(live);
    expect(decodeRecord(encodeRecord({ status: 'destroyed', version: 9 }))).toEqual({ status: 'destroyed', version: 9 });
    expect(decodeRecord(encodeRecord({ status: 'erased', version: 2 }))).toEqual({ status: 'erased', version: 2 });
  });

  it('round-trip a live record with a key id as format 2, and keep records without one byte-identical to format 1', () => {
    const withId: LiveRecord = { ...live, keyId: new Uint8Array(16).fill(0xab) };
    const bytes = encodeRecord(withId);
    expect(bytes[0]).toBe(2);
    expect(bytes.length).toBe(encodeRecord(live).length + 16);
    expect(bytes.subarray(-16)).toEqual(withId.keyId);
    expect(decodeRecord(bytes)).toEqual(withId);
    expect(encodeRecord(live)[0]).toBe(1);
    expect(decodeRecord(encodeRecord(live))).not.toHaveProperty('keyId');
    // A key id is 16 bytes, and only a live record has one.
    expect(() => decodeRecord(bytes.slice(0, -1))).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
    const tomb = encodeRecord({ status: 'destroyed', version: 9 });
    expect(() => decodeRecord(Uint8Array.of(2, ...tomb.slice(1)))).toThrow(/only a live vault record carries a key id/);
  });

  it('refuse malformed records', () => {
    const bytes = encodeRecord(live);
    for (const bad of [bytes.slice(0, -1), Uint8Array.of(...bytes, 0), Uint8Array.of(2, ...bytes.slice(1)), Uint8Array.of(1, 7, ...bytes.slice(2))]) {
      expect(() => decodeRecord(bad)).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
    }
    const tooMany = { ...live, attemptsRemaining: 6 };
    expect(() => decodeRecord(encodeRecord(tooMany))).toThrow(/more attempts left than its limit/);
  });

  it('derive record ids that depend on the name and the fleet key only', () => {
    const a = recordId(keys, 'alice');
    expect(a).toHaveLength(32);
    expect(recordId(keys, 'alice')).toEqual(a);
    expect(recordId(keys, 'alicf')).not.toEqual(a);
    expect(recordId(deriveRecordKeys(new Uint8Array(32).fill(8)), 'alice')).not.toEqual(a);
    // Not the name in clear, nor a plain hash of it.
    expect(Buffer.from(a).toString('utf8')).not.toContain('alice');
  });

  it('seal a record to its id and version: a value moved to another id, or relabelled with another version, does not open', () => {
    const id = recordId(keys, 'alice');
    const value = sealRecord(keys, id, live, nonce());
    expect(openRecord(keys, id, value)).toEqual(live);
    expect(() => openRecord(keys, recordId(keys, 'bob'), value)).toThrow(expect.objectContaining({ code: 'TAMPERED' }));
    const relabelled = value.slice();
    relabelled[7]! ^= 1; // the version in clear
    expect(() => openRecord(keys, id, relabelled)).toThrow(expect.objectContaining({ code: 'TAMPERED' }));
    const flipped = value.slice();
    flipped[flipped.length - 1]! ^= 1;
    expect(() => openRecord(keys, id, flipped)).toThrow(expect.objectContaining({ code: 'TAMPERED' }));
    expect(() => openRecord(deriveRecordKeys(new Uint8Array(32)), id, value)).toThrow(expect.objectContaining({ code: 'TAMPERED' }));
  });
});

describe('vault commands on one record', () => {
  const reg = { type: 'register' as const, ts: 1, user: 'alice', opaqueRecord: new Uint8Array(192), wrappedKey: new Uint8Array(60), ksf: KSF, limit: 2 };
  const attempt = (n: number, ts = 10) => ({ type: 'attempt' as const, ts, user: 'alice', attemptId: new Uint8Array(16).fill(n) });
  const finish = (n: number, success: boolean, erase = false) => ({ type: 'finish' as const, ts: 20, user: 'alice', attemptId: new Uint8Array(16).fill(n), success, erase });

  it('spend one guess per attempt, destroy the record after the last wrong one, and keep a tombstone', () => {
    let rec = runCommand(undefined, reg).next!;
    const a1 = runCommand(rec, attempt(1));
    expect(a1.result).toMatchObject({ kind: 'attempt', r: { status: 'granted', attemptsRemaining: 1 } });
    rec = a1.next!;
    expect(runCommand(rec, attempt(1)).result).toMatchObject({ r: { status: 'duplicate' } });
    rec = runCommand(rec, finish(1, false)).next!;
    rec = runCommand(rec, attempt(2)).next!;
    const last = runCommand(rec, finish(2, false));
    expect(last.result).toMatchObject({ kind: 'finish', r: { status: 'destroyed' } });
    expect(last.next).toMatchObject({ status: 'destroyed' });
    expect(runCommand(last.next!, attempt(3)).result).toMatchObject({ r: { status: 'locked' } });
    expect(runCommand(last.next!, attempt(3)).next).toBeUndefined();
    // Registering again over the tombstone starts at the next version.
    expect(runCommand(last.next!, reg).next).toMatchObject({ status: 'live', version: last.next!.version + 1, attemptsRemaining: 2 });
  });

  it('reset the counter on a successful recovery and release the wrapped key', () => {
    let rec = runCommand(undefined, reg).next!;
    rec = runCommand(rec, attempt(1)).next!;
    const ok = runCommand(rec, finish(1, true));
    expect(ok.result).toMatchObject({ r: { status: 'recovered', attemptsRemaining: 2 } });
    const erased = runCommand(runCommand(ok.next!, attempt(2)).next!, finish(2, true, true));
    expect(erased.next).toEqual({ status: 'erased', version: expect.any(Number) });
    expect(runCommand(erased.next!, attempt(3)).result).toMatchObject({ r: { status: 'unknown' } });
  });

  it('never change the input record', () => {
    const rec = runCommand(undefined, reg).next!;
    const before = encodeRecord(rec);
    runCommand(rec, attempt(1));
    runCommand(rec, finish(1, true));
    expect(encodeRecord(rec)).toEqual(before);
    expect(isBkvError(new Error('x'))).toBe(false);
  });

  it('keep the registered key id, and answer an attempt for another key id as key-mismatch without spending a guess', () => {
    const id = new Uint8Array(16).fill(1);
    const other = new Uint8Array(16).fill(2);
    const rec = runCommand(undefined, { ...reg, keyId: id }).next! as LiveRecord;
    expect(rec.keyId).toEqual(id);
    const mismatch = runCommand(rec, { ...attempt(1), keyId: other });
    expect(mismatch.result).toEqual({ kind: 'attempt', r: { status: 'key-mismatch', attemptsRemaining: 2, limit: 2, keyId: id } });
    expect(mismatch.next).toBeUndefined();
    // The same key id, or none, is an ordinary attempt that costs a guess.
    expect(runCommand(rec, { ...attempt(1), keyId: id }).result).toMatchObject({ r: { status: 'granted', attemptsRemaining: 1 } });
    expect(runCommand(rec, attempt(1)).result).toMatchObject({ r: { status: 'granted', attemptsRemaining: 1 } });
    // A record registered without a key id cannot tell: the attempt goes ahead (the client compares after recovery).
    const old = runCommand(undefined, reg).next!;
    expect(runCommand(old, { ...attempt(1), keyId: other }).result).toMatchObject({ r: { status: 'granted' } });
    // Registering again without a key id drops the old one.
    expect(runCommand(rec, reg).next).not.toHaveProperty('keyId');
  });
});
