import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { LockedError, NotRegisteredError, WrongPasswordError } from '../../src/client/sdk/errors.js';
import { makeFixture, randomKey, type Fixture, attemptsLeft } from './fixture.js';

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.close();
});

async function expectRejects<T extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => T): Promise<T> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(cls);
    return e as T;
  }
  throw new Error('expected a rejection');
}

describe('password escrow of the backup key', () => {
  it('registers K and recovers the same K on a device with no local state', async () => {
    const k = randomKey();
    await fx.client('alice').registerKey('correct horse', k);
    const fresh = fx.client('alice');
    expect(await fresh.recoverKey('correct horse')).toEqual(k);
    expect(fx.member.core.stats.recoveries).toBe(1);
  });

  it('decrements and reports attempts on wrong passwords', async () => {
    await fx.client('bob').registerKey('right', randomKey());
    const c = fx.client('bob');
    expect((await expectRejects(c.recoverKey('wrong1'), WrongPasswordError)).attemptsRemaining).toBe(9);
    expect((await expectRejects(c.recoverKey('wrong2'), WrongPasswordError)).attemptsRemaining).toBe(8);
    expect((await attemptsLeft(fx, 'bob'))).toBe(8);
  });

  it('destroys the key after ten wrong passwords: the right one then fails', async () => {
    const k = randomKey();
    await fx.client('carol').registerKey('right', k);
    const c = fx.client('carol');
    for (let i = 9; i >= 1; i--) {
      expect((await expectRejects(c.recoverKey(`wrong${i}`), WrongPasswordError)).attemptsRemaining).toBe(i);
    }
    await expectRejects(c.recoverKey('wrong0'), LockedError);
    expect((await fx.member.peek('carol'))?.status).toBe('destroyed');
    await expectRejects(c.recoverKey('right'), LockedError);
  });

  it('resets the counter after a successful recovery', async () => {
    const k = randomKey();
    await fx.client('dave').registerKey('right', k);
    const c = fx.client('dave');
    for (let i = 0; i < 5; i++) await expectRejects(c.recoverKey('nope'), WrongPasswordError);
    expect(await c.recoverKey('right')).toEqual(k);
    expect((await attemptsLeft(fx, 'dave'))).toBe(10);
    expect((await expectRejects(c.recoverKey('nope'), WrongPasswordError)).attemptsRemaining).toBe(9);
  });

  it('lets two devices recover the same account at once', async () => {
    const k = randomKey();
    await fx.client('twin').registerKey('pw', k);
    const got = await Promise.all([1, 2, 3].map(() => fx.client('twin').recoverKey('pw')));
    for (const g of got) expect(g).toEqual(k);
    expect((await attemptsLeft(fx, 'twin'))).toBe(10);
  });

  it('a prepared recovery spends no attempt until used, and works once', async () => {
    const k = randomKey();
    await fx.client('prep').registerKey('pw', k);
    const c = fx.client('prep');
    const p = await c.prepareRecovery('pw');
    expect((await attemptsLeft(fx, 'prep'))).toBe(10);
    expect(await c.recoverKey('pw', p)).toEqual(k);
    await expect(c.recoverKey('pw', p)).rejects.toSatisfy((e) => isBkvError(e, 'USAGE'));
    await expect(c.recoverKey('other', await c.prepareRecovery('pw'))).rejects.toSatisfy((e) => isBkvError(e, 'USAGE'));
  });

  it('honours a configured attempt limit', async () => {
    await fx.client('erin', undefined, 3).registerKey('right', randomKey());
    const c = fx.client('erin');
    await expectRejects(c.recoverKey('a'), WrongPasswordError);
    await expectRejects(c.recoverKey('b'), WrongPasswordError);
    await expectRejects(c.recoverKey('c'), LockedError);
    await expectRejects(c.recoverKey('right'), LockedError);
  });

  it('re-registration replaces the record and its key', async () => {
    const k1 = randomKey();
    const k2 = randomKey();
    await fx.client('frank').registerKey('one', k1);
    await fx.client('frank').registerKey('two', k2);
    await expectRejects(fx.client('frank').recoverKey('one'), WrongPasswordError);
    expect(await fx.client('frank').recoverKey('two')).toEqual(k2);
  });

  it('deletes a record only with the password', async () => {
    await fx.client('gina').registerKey('pw', randomKey());
    await expectRejects(fx.client('gina').deleteKey('not it'), WrongPasswordError);
    expect((await fx.member.peek('gina'))).toBeDefined();
    await fx.client('gina').deleteKey('pw');
    await expectRejects(fx.client('gina').recoverKey('pw'), NotRegisteredError);
  });

  it('keeps every committed record and counter across a restart', async () => {
    const k = randomKey();
    await fx.client('hank').registerKey('pw', k);
    await expectRejects(fx.client('hank').recoverKey('bad'), WrongPasswordError);
    await fx.restart();
    expect((await attemptsLeft(fx, 'hank'))).toBe(9);
    expect(await fx.client('hank').recoverKey('pw')).toEqual(k);
  });

  it('finishes a recovery that a restart interrupted between start and finish', async () => {
    const k = randomKey();
    await fx.client('ivy').registerKey('pw', k);
    let calls = 0;
    // Route through the fixture's current member, so the restart is seen by the next call.
    const c2 = fx.client('ivy', () => async (env) => {
      const out = await fx.member.core.handle('ivy', env);
      if (++calls === 1) await fx.restart();
      return out;
    });
    expect(await c2.recoverKey('pw')).toEqual(k);
    expect(calls).toBe(2);
  });

  it('rejects a request whose inner account differs from the authenticated one', async () => {
    await fx.client('jane').registerKey('pw', randomKey());
    // mallory's client talks through a gateway that authenticated mallory, but names jane inside.
    const c = fx.client('jane', () => (env) => fx.member.core.handle('mallory', env));
    try {
      await c.recoverKey('pw');
      throw new Error('should fail');
    } catch (e) {
      expect(isBkvError(e, 'TAMPERED', 'UNAUTHORIZED')).toBe(true);
    }
    expect((await attemptsLeft(fx, 'jane'))).toBe(10);
  });
});
