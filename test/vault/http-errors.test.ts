/**
 * Every bkv HTTP server answers alike (docs/api.md, "Errors"): unknown routes are a 404 in the
 * JSON error shape, every 429 carries Retry-After, and a rate-limited CLI or SDK says that it was
 * rate limited and when to retry (not that the gateway "issues no development tokens").
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { vaultClientFromOptions } from '../../src/cli/vault-options.js';
import { parseRetryAfter } from '../../src/client/sdk/http-error.js';
import { httpTransport } from '../../src/client/sdk/transport.js';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { createFleet } from '../../src/host/fleet/provision.js';
import { startMember } from '../../src/host/fleet/member-process.js';
import { startVaultServer, type RunningVault } from '../../src/host/vault-server.js';
import { defaultWebRoot, startWebServer } from '../../src/host/web/server.js';
import { DEFAULT_RETRY_AFTER_SECONDS, installHttpConventions } from '../../src/node/http-errors.js';
import { BkvError, isBkvError } from '../../src/shared/errors.js';
import { fromB64 } from '../../src/shared/protocol/messages.js';
import { startWitness } from '../../src/witness/server.js';
import { TEST_KSF } from './fixture.js';

const dirs: string[] = [];
const closers: Array<() => Promise<void>> = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'bkv-http-errors-'));
  dirs.push(d);
  return d;
}

afterAll(async () => {
  for (const c of closers.reverse()) await c();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A 404 in the shape of every other error: JSON `{"error":{"code","message"}}` naming the route. */
async function expectJson404(url: string, method = 'GET', naming = new URL(url).pathname): Promise<void> {
  const res = await fetch(url, { method });
  expect(res.status).toBe(404);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe('USAGE');
  expect(body.error.message).toContain(naming);
}

function expectRetryAfter(res: Response): number {
  const s = Number(res.headers.get('retry-after'));
  expect(Number.isInteger(s) && s >= 1 && s <= 60).toBe(true);
  return s;
}

async function devToken(url: string, account: string): Promise<string> {
  const res = await fetch(`${url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
  return ((await res.json()) as { token: string }).token;
}

describe('the gateway', () => {
  let vault: RunningVault;
  beforeAll(async () => {
    vault = await startVaultServer({ dir: await tempDir(), logger: false, rateLimit: { perAccountPerMinute: 3, perAddressPerMinute: 12 } });
    closers.push(() => vault.close());
  });

  it('answers an unknown route with a JSON 404, and an over-limit account with 429 and Retry-After', async () => {
    await expectJson404(`${vault.url}/v1/no-such-route?token=secret`);
    await expectJson404(`${vault.url}/nope`, 'POST');
    const token = await devToken(vault.url, 'frank');
    const post = () =>
      fetch(`${vault.url}/v1/vault`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${token}` }, body: new Uint8Array(100).fill(1) });
    for (let i = 0; i < 3; i++) expect((await post()).status).toBe(400);
    const limited = await post();
    expect(limited.status).toBe(429);
    expectRetryAfter(limited);
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');

    // The SDK says it was rate limited, and when to retry.
    const keys = (await (await fetch(`${vault.url}/v1/fleet`)).json()) as { keys: Record<string, string> };
    const client = new VaultClient({
      account: 'frank',
      fleet: { opaqueServerPublicKey: fromB64(keys.keys.opaqueServerPublicKey!, 'k'), encryptionPublicKey: fromB64(keys.keys.encryptionPublicKey!, 'k') },
      transport: httpTransport({ gatewayUrl: vault.url, token: () => token }),
      ksf: TEST_KSF,
    });
    const err = await client.recoverKey('pw').catch((e: unknown) => e);
    expect(isBkvError(err, 'RATE_LIMITED')).toBe(true);
    expect((err as BkvError).message).toMatch(/^rate limited by the vault gateway at .*: too many vault requests for this account .*; try again in \d+ s$/);
    expect((err as BkvError).details.retryAfterSeconds).toBeGreaterThan(0);
  });

  it('answers an over-limit address with 429 and Retry-After, unknown routes included; the CLI says it was rate limited', async () => {
    let res: Response;
    do res = await fetch(`${vault.url}/no-such-route`);
    while (res.status === 404);
    expect(res.status).toBe(429);
    expectRetryAfter(res);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');
    const healthz = await fetch(`${vault.url}/healthz`);
    expect(healthz.status).toBe(429);
    expectRetryAfter(healthz);

    // No --token: the CLI asks the development issuer, which is rate limited too.
    const client = await vaultClientFromOptions({ vault: vault.url, fleetKeys: vault.fleetKeysPath, account: 'grace' });
    const err = await client.recoverKey('pw').catch((e: unknown) => e);
    expect(err, String(err)).toSatisfy((e) => isBkvError(e, 'RATE_LIMITED'));
    expect((err as Error).message).not.toContain('development tokens');
    expect((err as Error).message).toMatch(/rate limited by the vault gateway .*too many requests from this address.*; try again in \d+ s$/);
  });

  it('the web app server relays the 429 with its Retry-After, and answers its own errors as JSON', async () => {
    const web = await startWebServer({ root: defaultWebRoot(), gatewayUrl: vault.url, config: {} });
    closers.push(() => web.close());
    const base = `http://127.0.0.1:${web.port}`;
    await expectJson404(`${base}/no-such-file.js`);
    const post = await fetch(`${base}/`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(((await post.json()) as { error: { code: string } }).error.code).toBe('USAGE');
    const relayed = await fetch(`${base}/v1/fleet`);
    expect(relayed.status).toBe(429);
    expectRetryAfter(relayed);
  });
});

describe('the witness and a fleet member', () => {
  it('the witness answers unknown routes and unparsable bodies in the JSON error shape', async () => {
    const w = await startWitness(await tempDir());
    closers.push(() => w.close());
    await expectJson404(`${w.url}/v1/no-such-route`);
    await expectJson404(`${w.url}/v1/namespaces/none/epochs/1`, 'GET', 'no epoch 1');
    const bad = await fetch(`${w.url}/v1/namespaces/ns/epochs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('MALFORMED');
    // The tlog-witness route keeps its text answers (docs/formats/witness-api.md).
    const big = await fetch(`${w.url}/add-checkpoint`, { method: 'POST', body: 'x'.repeat(70_000) });
    expect(big.status).toBe(413);
    expect(big.headers.get('content-type')).toMatch(/^text\/plain/);
  });

  it('a member answers unknown routes with a JSON 404', async () => {
    const dir = await tempDir();
    const fleet = await createFleet(join(dir, 'fleet'), { members: 3, basePort: 0 });
    const m = await startMember({ dir: fleet.memberDirs.get(1)!, fleetPath: fleet.fleetPath });
    closers.push(() => m.close());
    await expectJson404(`${m.url}/v1/no-such-route`);
  });
});

describe('Retry-After', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('is added to a 429 that a route sent without one', async () => {
    const server = Fastify({ logger: false }) as unknown as FastifyInstance;
    app = server;
    installHttpConventions(server);
    server.get('/busy', async (_req, reply) => reply.code(429).send({ error: { code: 'RATE_LIMITED', message: 'busy' } }));
    server.get('/own', async (_req, reply) => reply.code(429).header('retry-after', '7').send({ error: { code: 'RATE_LIMITED', message: 'busy' } }));
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    expect((await fetch(`${url}/busy`)).headers.get('retry-after')).toBe(String(DEFAULT_RETRY_AFTER_SECONDS));
    expect((await fetch(`${url}/own`)).headers.get('retry-after')).toBe('7');
  });

  it('is read as seconds or as an HTTP date', () => {
    expect(parseRetryAfter('42')).toBe(42);
    expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 1, 0)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(60);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
