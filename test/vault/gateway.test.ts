import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { WrongPasswordError } from '../../src/client/sdk/errors.js';
import { httpTransport } from '../../src/client/sdk/transport.js';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { fromB64 } from '../../src/shared/protocol/messages.js';
import { startVaultServer, type RunningVault } from '../../src/host/vault-server.js';
import { TEST_KSF } from './fixture.js';

let vault: RunningVault;
let dir: string;
let logText = '';

async function devToken(account: string): Promise<string> {
  const res = await fetch(`${vault.url}/v1/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ account }),
  });
  return ((await res.json()) as { token: string }).token;
}

async function clientFor(account: string, token?: string) {
  const fleet = (await (await fetch(`${vault.url}/v1/fleet`)).json()) as { keys: Record<string, string> };
  const t = token ?? (await devToken(account));
  return new VaultClient({
    account,
    fleet: {
      opaqueServerPublicKey: fromB64(fleet.keys.opaqueServerPublicKey!, 'k'),
      encryptionPublicKey: fromB64(fleet.keys.encryptionPublicKey!, 'k'),
    },
    transport: httpTransport({ gatewayUrl: vault.url, token: () => t }),
    ksf: TEST_KSF,
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bkv-gw-test-'));
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logText += chunk.toString();
      cb();
    },
  });
  vault = await startVaultServer({
    dir,
    logger: pino({ level: 'info', redact: ['req.headers.authorization'] }, sink),
    rateLimit: { perAccountPerMinute: 12, perAddressPerMinute: 1000 },
  });
});

afterAll(async () => {
  await vault.close();
  await rm(dir, { recursive: true, force: true });
});

describe('gateway over HTTP on loopback', () => {
  it('relays the whole escrow flow and logs no secrets', async () => {
    const k = crypto.getRandomValues(new Uint8Array(32));
    const token = await devToken('alice');
    await (await clientFor('alice', token)).registerKey('hunter2-password', k);
    await expect((await clientFor('alice', token)).recoverKey('bad-password')).rejects.toBeInstanceOf(WrongPasswordError);
    expect(await (await clientFor('alice', token)).recoverKey('hunter2-password')).toEqual(k);
    expect(logText).toContain('"url":"/v1/vault"');
    for (const secret of ['hunter2-password', 'bad-password', token, Buffer.from(k).toString('base64url')]) {
      expect(logText.includes(secret)).toBe(false);
    }
  });

  it('rejects requests without a valid token', async () => {
    const res = await fetch(`${vault.url}/v1/vault`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(100) });
    expect(res.status).toBe(401);
    const forged = (await devToken('bob')).slice(0, -4) + 'AAAA';
    await expect((await clientFor('bob', forged)).recoverKey('x')).rejects.toSatisfy((e) => isBkvError(e, 'UNAUTHORIZED'));
  });

  it('answers a garbled envelope with 400 and a typed error', async () => {
    const res = await fetch(`${vault.url}/v1/vault`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${await devToken('carol')}` },
      body: new Uint8Array(100).fill(1),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toMatch(/MALFORMED|TAMPERED/);
  });

  it('rate-limits per account', async () => {
    const c = await clientFor('dave');
    let limited = false;
    for (let i = 0; i < 14 && !limited; i++) {
      try {
        await c.recoverKey('x');
      } catch (e) {
        if (isBkvError(e, 'RATE_LIMITED')) limited = true;
      }
    }
    expect(limited).toBe(true);
    // Another account is not affected.
    await expect((await clientFor('erin')).recoverKey('x')).rejects.toSatisfy((e) => isBkvError(e, 'NOT_REGISTERED'));
  });

  it('exposes health and Prometheus metrics', async () => {
    const health = (await (await fetch(`${vault.url}/healthz`)).json()) as Record<string, unknown>;
    expect(health.status).toBe('ok');
    expect(health.commitIndex).toBeGreaterThan(0);
    const metrics = await (await fetch(`${vault.url}/metrics`)).text();
    expect(metrics).toMatch(/bkv_gateway_requests_total\{route="\/v1\/vault",status="200"\} \d+/);
    expect(metrics).toMatch(/bkv_core_events\{event="credentialResponses"\} [1-9]/);
  });
});
