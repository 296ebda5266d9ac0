import * as opaque from '@serenity-kit/opaque';
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BkvError, isBkvError } from '../../src/shared/errors.js';
import { LockedError, WrongPasswordError } from '../../src/client/sdk/errors.js';
import { openResponse, sealRequest } from '../../src/shared/protocol/channel.js';
import { decodeResponse, encodeRequest, type VaultResponse } from '../../src/shared/protocol/messages.js';
import { openVaultMember } from '../../src/host/vault-member.js';
import { makeFixture, randomKey, type Fixture, attemptsLeft } from './fixture.js';

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.close();
});

/** Sends a raw recovery start as a client would and returns the decrypted reply. */
async function rawStart(account: string, password: string) {
  await opaque.ready;
  const start = opaque.client.startLogin({ password });
  const body = encodeRequest({ op: 'recover-start', user: account, startLoginRequest: start.startLoginRequest });
  const { envelope, responseKey } = await sealRequest(fx.member.core.publicKeys().encryptionPublicKey, account, body);
  const sealed = await fx.member.core.handle(account, envelope);
  return { reply: decodeResponse(openResponse(responseKey, sealed)), sealed, envelope, responseKey };
}

function recordEnvelopes(log: Uint8Array[]) {
  return (inner: (e: Uint8Array) => Promise<Uint8Array>) => async (e: Uint8Array) => {
    log.push(e);
    return inner(e);
  };
}

describe('attacks on guess limits', () => {
  it('50 concurrent recovery starts against a limit of 10 release at most 10 credential responses', async () => {
    const k = randomKey();
    await fx.client('u1').registerKey('right', k);
    const replies = await Promise.all(Array.from({ length: 50 }, () => rawStart('u1', 'guess')));
    const granted = replies.filter((r) => r.reply.ok && r.reply.op === 'recover-start' && r.reply.status === 'granted');
    expect(granted.length).toBe(10);
    expect(fx.member.core.stats.credentialResponses).toBe(10);
    // The record now has no attempts left: even the right password gets no credential response.
    await expect(fx.client('u1').recoverKey('right')).rejects.toBeInstanceOf(LockedError);
    expect(fx.member.core.stats.credentialResponses).toBe(10);
  });

  it('a replayed recovery start neither grants an extra attempt nor costs one', async () => {
    await fx.client('u2').registerKey('right', randomKey());
    const first = await rawStart('u2', 'guess');
    expect(first.reply.ok && first.reply.op === 'recover-start' && first.reply.status).toBe('granted');
    const replayed = decodeResponse(openResponse(first.responseKey, await fx.member.core.handle('u2', first.envelope)));
    expect(replayed.ok && replayed.op === 'recover-start' && replayed.status).toBe('duplicate');
    expect((await attemptsLeft(fx, 'u2'))).toBe(9);
    expect(fx.member.core.stats.credentialResponses).toBe(1);
  });

  it('a replayed recovery finish never releases K twice', async () => {
    const k = randomKey();
    await fx.client('u3').registerKey('right', k);
    const sent: Uint8Array[] = [];
    expect(await fx.client('u3', recordEnvelopes(sent)).recoverKey('right')).toEqual(k);
    expect(fx.member.core.stats.recoveries).toBe(1);
    const finishEnvelope = sent[1]!;
    const again = await fx.member.core.handle('u3', finishEnvelope);
    expect(again.length).toBeGreaterThan(0);
    expect(fx.member.core.stats.recoveries).toBe(1); // the replay got "stale", no release
  });

  it('a host that duplicates every request cannot win attempts', async () => {
    await fx.client('u4').registerKey('right', randomKey());
    const c = fx.client('u4', (inner) => async (e) => {
      await inner(e); // the host delivers twice and returns the second reply
      return inner(e);
    });
    await expect(c.recoverKey('wrong')).rejects.toSatisfy((e) => isBkvError(e, 'CONFLICT'));
    // One start was committed (the duplicate was recognised): exactly one attempt spent.
    expect((await attemptsLeft(fx, 'u4'))).toBe(9);
  });
});

describe('an untrusted gateway', () => {
  it('flipping bits in a relayed request gets a clear error and costs no attempt', async () => {
    await fx.client('v1').registerKey('right', randomKey());
    for (const pos of [0, 5, 40, 100]) {
      const c = fx.client('v1', (inner) => (e) => {
        const bad = e.slice();
        bad[Math.min(pos, bad.length - 1)]! ^= 0x01;
        return inner(bad);
      });
      await expect(c.recoverKey('right')).rejects.toSatisfy((e) => isBkvError(e, 'TAMPERED', 'MALFORMED'));
    }
    expect((await attemptsLeft(fx, 'v1'))).toBe(10);
  });

  it('flipping bits in a relayed recovery finish (ticket or body) releases nothing and keeps K', async () => {
    const k = randomKey();
    await fx.client('v3').registerKey('right', k);
    for (const pos of [1, 3, 20, -5]) {
      let n = 0;
      const c = fx.client('v3', (inner) => (e) => {
        if (++n === 1) return inner(e);
        const bad = e.slice();
        bad[pos < 0 ? bad.length + pos : pos]! ^= 0x04;
        return inner(bad);
      });
      await expect(c.recoverKey('right')).rejects.toSatisfy((e) => isBkvError(e, 'TAMPERED', 'MALFORMED'));
    }
    expect(fx.member.core.stats.recoveries).toBe(0);
    expect(await fx.client('v3').recoverKey('right')).toEqual(k);
  });

  it('flipping bits in a relayed reply is detected by the client and loses no data', async () => {
    const k = randomKey();
    await fx.client('v2').registerKey('right', k);
    const c = fx.client('v2', (inner) => async (e) => {
      const out = (await inner(e)).slice();
      out[out.length - 3]! ^= 0x80;
      return out;
    });
    await expect(c.recoverKey('right')).rejects.toSatisfy((e) => isBkvError(e, 'TAMPERED'));
    expect(await fx.client('v2').recoverKey('right')).toEqual(k);
  });

  it('cannot tell an unknown account from a real one by the relayed bytes', async () => {
    await fx.client('real').registerKey('pw', randomKey());
    const before = fx.member.state.lastBatchIndex;
    const real = await rawStart('real', 'pw');
    const ghost = await rawStart('ghost', 'pw');
    expect(ghost.sealed.length).toBe(real.sealed.length);
    const r = real.reply as Extract<VaultResponse, { op: 'recover-start' }>;
    const g = ghost.reply as Extract<VaultResponse, { op: 'recover-start' }>;
    // OPAQUE's fake-record path: a credential response of identical size and form.
    expect(g.loginResponse.length).toBe(r.loginResponse.length);
    expect(g.loginState.length).toBe(r.loginState.length);
    expect(Object.keys(g).sort()).toEqual(Object.keys(r).sort());
    // Both paths committed a batch through the log (same timing class).
    expect(fx.member.node.status().commitIndex - before).toBe(2);
  });
});

describe('sealed storage held by the host', () => {
  const names = () => ['state/log', 'records.sqlite', 'records.sqlite-wal'].map((f) => join(fx.dir, f)).filter((f) => existsSync(f));

  it('stores no plaintext: neither user names nor records appear in the log or the record store', async () => {
    await fx.client('secretive-user').registerKey('pw', randomKey());
    await fx.member.close();
    for (const f of names()) expect((await readFile(f)).includes(Buffer.from('secretive-user')), f).toBe(false);
    fx.member = await openVaultMember(fx.dir);
  });

  it('refuses consensus state with a flipped bit or rolled back, and opens again once it is restored', async () => {
    await fx.client('w1').registerKey('pw', randomKey());
    const before = await readFile(join(fx.dir, 'state', 'log'));
    const counterBefore = await readFile(join(fx.dir, 'state', 'counter'));
    await expect(fx.client('w1').recoverKey('bad')).rejects.toBeInstanceOf(WrongPasswordError);
    await fx.member.close();
    const path = join(fx.dir, 'state', 'log');
    const original = await readFile(path);

    const flipped = Buffer.from(original);
    flipped[flipped.length - 20]! ^= 1;
    await writeFile(path, flipped);
    await expect(openVaultMember(fx.dir)).rejects.toSatisfy((e) => isBkvError(e, 'TAMPERED'));

    // Roll back the state (not the counter) to before the wrong guess, to win it back.
    await writeFile(path, before);
    const err = await openVaultMember(fx.dir).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(BkvError);
    expect((err as BkvError).code).toBe('TAMPERED');
    expect((err as BkvError).message).toMatch(/rollback/);
    expect(counterBefore.equals(await readFile(join(fx.dir, 'state', 'counter')))).toBe(false);

    await writeFile(path, original);
    fx.member = await openVaultMember(fx.dir);
    expect(await attemptsLeft(fx, 'w1')).toBe(9);
  });

  it('refuses records the database swapped or deleted, and never grants a guess from them', async () => {
    const kA = randomKey();
    await fx.client('swap-a').registerKey('pw', kA);
    await fx.client('swap-b').registerKey('pw', randomKey(), );
    await expect(fx.client('swap-a').recoverKey('bad')).rejects.toBeInstanceOf(WrongPasswordError);
    // The hostile database swaps two users' rows (b's record still has all its attempts).
    const db = new Database(join(fx.dir, 'records.sqlite'));
    const rows = db.prepare('SELECT key, value FROM records').all() as Array<{ key: Buffer; value: Buffer }>;
    expect(rows.length).toBe(2);
    const upd = db.prepare('UPDATE records SET value = ? WHERE key = ?');
    db.transaction(() => {
      upd.run(rows[1]!.value, rows[0]!.key);
      upd.run(rows[0]!.value, rows[1]!.key);
    })();
    db.close();
    await expect(fx.client('swap-a').recoverKey('pw')).rejects.toSatisfy((e) => isBkvError(e, 'UNAVAILABLE'));
    await expect(fx.client('swap-b').recoverKey('pw')).rejects.toSatisfy((e) => isBkvError(e, 'UNAVAILABLE'));
    expect(fx.member.records.status().state).toBe('corrupt');
    // Deleting the row instead does not pass for "no such account" either.
    const db2 = new Database(join(fx.dir, 'records.sqlite'));
    db2.prepare('DELETE FROM records WHERE key = ?').run(rows[0]!.key);
    db2.close();
    await expect(fx.client('swap-a').recoverKey('pw')).rejects.toSatisfy((e) => isBkvError(e, 'UNAVAILABLE'));
    expect(fx.member.core.stats.credentialResponses).toBe(1);
  });

  it('refuses an older copy of the record store once the log that could rebuild it is compacted', async () => {
    await fx.member.close();
    const { rm } = await import('node:fs/promises');
    await rm(fx.dir, { recursive: true, force: true });
    fx = await makeFixture({ snapshotEvery: 2 });
    const k = randomKey();
    await fx.client('old').registerKey('pw', k);
    await fx.member.close();
    const oldCopy = await readFile(join(fx.dir, 'records.sqlite'));
    fx.member = await openVaultMember(fx.dir, { snapshotEvery: 2 });
    for (let i = 0; i < 3; i++) await expect(fx.client('old').recoverKey('bad')).rejects.toBeInstanceOf(WrongPasswordError);
    await fx.member.close();
    // The host puts back the copy from when 'old' had all ten attempts.
    await writeFile(join(fx.dir, 'records.sqlite'), oldCopy);
    await rm(join(fx.dir, 'records.sqlite-wal'), { force: true });
    await rm(join(fx.dir, 'records.sqlite-shm'), { force: true });
    fx.member = await openVaultMember(fx.dir, { snapshotEvery: 2 });
    await expect(fx.client('old').recoverKey('pw')).rejects.toSatisfy((e) => isBkvError(e, 'UNAVAILABLE'));
    expect(fx.member.records.status().state).not.toBe('in-step');
    expect(fx.member.core.stats.credentialResponses).toBe(0);
  });

  it('survives snapshots and restarts with every record intact', async () => {
    await fx.member.close();
    const { rm } = await import('node:fs/promises');
    await rm(fx.dir, { recursive: true, force: true });
    fx = await makeFixture({ snapshotEvery: 3 });
    const keys = new Map<string, Uint8Array>();
    for (let i = 0; i < 5; i++) {
      const k = randomKey();
      keys.set(`s${i}`, k);
      await fx.client(`s${i}`).registerKey('pw', k);
    }
    await expect(fx.client('s0').recoverKey('bad')).rejects.toBeInstanceOf(WrongPasswordError);
    await fx.restart();
    expect(fx.member.state.count).toBe(5);
    expect(await attemptsLeft(fx, 's0')).toBe(9);
    for (const [user, k] of keys) expect(await fx.client(user).recoverKey('pw')).toEqual(k);
  });
});
