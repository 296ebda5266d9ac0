import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeyMismatchError, WrongPasswordError, LockedError } from '../../src/client/sdk/errors.js';
import { formatKeyId, keyFingerprint } from '../../src/client/keys/backup-key.js';
import type { VaultClient } from '../../src/client/sdk/vault-client.js';
import type { VaultRequest } from '../../src/shared/protocol/messages.js';
import { attemptsLeft, makeFixture, randomKey, type Fixture } from './fixture.js';

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.close();
});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** A client of the previous release: it registers without a key id. */
function olderClient(c: VaultClient): VaultClient {
  const inner = c as unknown as { call(req: VaultRequest): Promise<unknown> };
  const call = inner.call.bind(c);
  inner.call = (req) => call(req.op === 'register-finish' ? { ...req, keyId: undefined } : req);
  return c;
}

describe('key ids beside escrowed keys', () => {
  it('stores the key id of the registered key in the record', async () => {
    const k = randomKey();
    await fx.client('alice').registerKey('pw', k);
    const rec = await fx.member.peek('alice');
    expect(rec).toMatchObject({ status: 'live', keyId: keyFingerprint(k) });
    expect(await fx.client('alice').recoverKey('pw', { keyId: keyFingerprint(k) })).toEqual(k);
  });

  it('refuses a recovery for another key before any guess is spent, even with a password that is now wrong', async () => {
    const k1 = randomKey();
    const k2 = randomKey();
    await fx.client('bob').registerKey('old password', k1);
    await fx.client('bob').registerKey('new password', k2); // the key was replaced, under another password
    const before = fx.member.core.stats.credentialResponses;
    const e = await rejection(fx.client('bob').recoverKey('old password', { keyId: keyFingerprint(k1) }));
    expect(e).toBeInstanceOf(KeyMismatchError);
    expect(e).toMatchObject({
      code: 'WRONG_KEY',
      keyId: keyFingerprint(k1),
      vaultKeyId: keyFingerprint(k2),
      details: { keyId: formatKeyId(keyFingerprint(k1)), vaultKeyId: formatKeyId(keyFingerprint(k2)), attemptSpent: false },
    });
    expect((e as Error).message).toMatch(/no attempt was spent/);
    expect(await attemptsLeft(fx, 'bob')).toBe(10);
    expect(fx.member.core.stats.credentialResponses).toBe(before); // no credential response was computed
    // Without a key id the same old password is a wrong guess, as before.
    expect(((await rejection(fx.client('bob').recoverKey('old password'))) as WrongPasswordError).attemptsRemaining).toBe(9);
  });

  it('compares after recovery for a record registered without a key id: no guess is spent for the right password', async () => {
    const k1 = randomKey();
    const k2 = randomKey();
    await olderClient(fx.client('carol')).registerKey('pw', k2);
    expect(await fx.member.peek('carol')).not.toHaveProperty('keyId');
    const e = await rejection(fx.client('carol').recoverKey('pw', { keyId: keyFingerprint(k1) }));
    expect(e).toBeInstanceOf(KeyMismatchError);
    expect(await attemptsLeft(fx, 'carol')).toBe(10);
    expect(await fx.client('carol').recoverKey('pw', { keyId: keyFingerprint(k2) })).toEqual(k2);
  });

  it('refuses a key id that is not 16 bytes', async () => {
    await expect(fx.client('dan').recoverKey('pw', { keyId: new Uint8Array(15) })).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('the key for a new password backup', () => {
  it('escrows a new key for a new account, then reuses it for every later backup', async () => {
    const first = await fx.client('erin').keyForNewBackup('pw');
    expect(first).toMatchObject({ escrow: 'registered', attemptsRemaining: 10 });
    const again = await fx.client('erin').keyForNewBackup('pw');
    expect(again).toMatchObject({ escrow: 'reused', attemptsRemaining: 10 });
    expect(again.key).toEqual(first.key);
  });

  it('with a wrong password, fails with the attempts left and registers nothing', async () => {
    const first = await fx.client('fay').keyForNewBackup('pw');
    const e = await rejection(fx.client('fay').keyForNewBackup('another password'));
    expect(e).toBeInstanceOf(WrongPasswordError);
    expect((e as WrongPasswordError).attemptsRemaining).toBe(9);
    expect(await fx.client('fay').recoverKey('pw')).toEqual(first.key);
  });

  it('replaces the escrowed key only when asked to', async () => {
    const first = await fx.client('gus').keyForNewBackup('pw');
    const second = await fx.client('gus').keyForNewBackup('new pw', { replace: true });
    expect(second.escrow).toBe('registered');
    expect(second.key).not.toEqual(first.key);
    expect(await fx.client('gus').recoverKey('new pw')).toEqual(second.key);
  });

  it('does not register over a destroyed key unless asked to', async () => {
    await fx.client('hal', undefined, 1).keyForNewBackup('pw');
    await rejection(fx.client('hal').recoverKey('wrong'));
    expect(await rejection(fx.client('hal').keyForNewBackup('pw'))).toBeInstanceOf(LockedError);
    expect((await fx.member.peek('hal'))?.status).toBe('destroyed');
    expect((await fx.client('hal').keyForNewBackup('pw', { replace: true })).escrow).toBe('registered');
  });
});
