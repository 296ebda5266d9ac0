import * as opaque from '@serenity-kit/opaque';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BkvError, isBkvError } from '../../src/shared/errors.js';
import { LockedError, WrongPasswordError } from '../../src/client/sdk/errors.js';
import { openResponse, sealRequest } from '../../src/shared/protocol/channel.js';
import { decodeResponse, encodeRequest, type VaultResponse } from '../../src/shared/protocol/messages.js';
import { openVaultMember } from '../../src/host/vault-member.js';
import { makeFixture, randomKey, type Fixture } from './fixture.js';

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
    expect(fx.member.state.peek('u2')?.attemptsRemaining).toBe(9);
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
    expect(fx.member.state.peek('u4')?.attemptsRemaining).toBe(9);
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
    expect(fx.member.state.peek('v1')?.attemptsRemaining).toBe(10);
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
    const real = await rawStart('real', 'pw');
    const ghost = await rawStart('ghost', 'pw');
    expect(ghost.sealed.length).toBe(real.sealed.length);
    const r = real.reply as Extract<VaultResponse, { op: 'recover-start' }>;
    const g = ghost.reply as Extract<VaultResponse, { op: 'recover-start' }>;
    // OPAQUE's fake-record path: a credential response of identical size and form.
    expect(g.loginResponse.length).toBe(r.loginResponse.length);
    expect(g.loginState.length).toBe(r.loginState.length);
    expect(Object.keys(g).sort()).toEqual(Object.keys(r).sort());
    // Both paths committed an attempt entry through the log (same timing class).
    expect(fx.member.log.index).toBe(3);
  });
});

describe('sealed storage held by the host', () => {
  it('stores no plaintext: neither K-wrapping bytes nor user names appear on disk', async () => {
    await fx.client('secretive-user').registerKey('pw', randomKey());
    const log = await readFile(join(fx.dir, 'log.bin'));
    expect(log.includes(Buffer.from('secretive-user'))).toBe(false);
  });

  it('refuses a log with a flipped bit, with swapped frames, or rolled back', async () => {
    await fx.client('w1').registerKey('pw', randomKey());
    await fx.client('w2').registerKey('pw', randomKey());
    await expect(fx.client('w1').recoverKey('bad')).rejects.toBeInstanceOf(WrongPasswordError);
    await fx.member.close();
    const path = join(fx.dir, 'log.bin');
    const original = await readFile(path);

    const flipped = Buffer.from(original);
    flipped[flipped.length - 20]! ^= 1;
    await writeFile(path, flipped);
    await expect(openVaultMember(fx.dir)).rejects.toSatisfy((e) => isBkvError(e, 'TAMPERED'));

    // Swap the two registration frames (frames 1 and 2 have equal length).
    const frames: Buffer[] = [];
    for (let pos = 8; pos < original.length; ) {
      const n = original.readUInt32BE(pos);
      frames.push(original.subarray(pos, pos + 4 + n));
      pos += 4 + n;
    }
    await writeFile(path, Buffer.concat([original.subarray(0, 8), frames[1]!, frames[0]!, ...frames.slice(2)]));
    await expect(openVaultMember(fx.dir)).rejects.toSatisfy((e) => isBkvError(e, 'TAMPERED'));

    // Roll back: drop the attempt entry to win a guess back.
    await writeFile(path, Buffer.concat([original.subarray(0, 8), ...frames.slice(0, 2)]));
    const err = await openVaultMember(fx.dir).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BkvError);
    expect((err as BkvError).message).toMatch(/rolled back/);

    await writeFile(path, original);
    fx.member = await openVaultMember(fx.dir);
    expect(fx.member.state.peek('w1')?.attemptsRemaining).toBe(9);
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
    expect(fx.member.state.size).toBe(5);
    expect(fx.member.state.peek('s0')?.attemptsRemaining).toBe(9);
    for (const [user, k] of keys) expect(await fx.client(user).recoverKey('pw')).toEqual(k);
  });
});
