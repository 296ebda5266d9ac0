/**
 * Vault throughput through the real gateway: registrations/s and recoveries/s with p50/p99
 * latency, next to the bare @serenity-kit/opaque server calls measured in the same run, and the
 * client's Argon2id cost reported apart. The vault runs as a separate `bkv vault start` process
 * on loopback; this process is the load generator.
 *
 *   npx tsx bench/vault.bench.ts [--users 200] [--recoveries 1500] [--concurrency 16]
 */
import * as opaque from '@serenity-kit/opaque';
import { LIGHT_KSF, bareOpaqueRates, numberArg, runPool } from './lib/load.js';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { httpTransport } from '../src/client/sdk/transport.js';
import { DEFAULT_CLIENT_KSF, VaultClient } from '../src/client/sdk/vault-client.js';
import { readFleetKeys } from '../src/cli/vault-options.js';
import { nativeChannelPrimitives } from '../src/host/fleet/native-crypto.js';

const USERS = numberArg('users', 200);
const RECOVERIES = numberArg('recoveries', 1500);
const CONCURRENCY = numberArg('concurrency', 16);

async function startVault(dir: string) {
  const child = spawn(process.execPath, ['bin/bkv.js', 'vault', 'start', '--dir', dir, '--port', '0', '--json', '--rate-account', '100000000', '--rate-address', '100000000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (c) => reject(new Error(`vault exited with ${c}`)));
  });
  const info = JSON.parse(line) as { url: string; fleetKeys: string };
  return { child, ...info };
}

export async function main(): Promise<Record<string, number>> {
  await opaque.ready;
  const dir = await mkdtemp(join(tmpdir(), 'bkv-bench-vault-'));
  const vault = await startVault(dir);
  try {
    const fleet = await readFleetKeys(vault.fleetKeys);
    const tokens = new Map<string, string>();
    const tokenFor = async (account: string) => {
      let t = tokens.get(account);
      if (!t) {
        const res = await fetch(`${vault.url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
        t = ((await res.json()) as { token: string }).token;
        tokens.set(account, t);
      }
      return t;
    };
    const client = (account: string) =>
      new VaultClient({ account, fleet, ksf: LIGHT_KSF, channelPrimitives: nativeChannelPrimitives, transport: httpTransport({ gatewayUrl: vault.url, token: () => tokenFor(account) }) });
    const keys = Array.from({ length: USERS }, () => crypto.getRandomValues(new Uint8Array(32)));
    for (let i = 0; i < USERS; i++) await tokenFor(`user${i}`);

    const reg = await runPool(USERS, CONCURRENCY, async (i) => {
      await client(`user${i}`).registerKey(`password ${i}`, keys[i]!);
    });
    // The client's round-trip-free work (OPAQUE KE1 and its HPKE sealing) is prepared before the
    // clock starts, as an app does while the user types: the timed part is what the server does.
    const clients = Array.from({ length: RECOVERIES }, (_, i) => client(`user${i % USERS}`));
    const prepared = await Promise.all(clients.map((c, i) => c.prepareRecovery(`password ${i % USERS}`)));
    const rec = await runPool(RECOVERIES, CONCURRENCY, async (i) => {
      const u = i % USERS;
      const k = await clients[i]!.recoverKey(`password ${u}`, prepared[i]);
      if (k[0] !== keys[u]![0]) throw new Error('recovered the wrong key');
    });
    const b = await bareOpaqueRates(3);

    // The client's key stretching, measured apart (default profile: 64 MiB, t=3, p=4).
    const c = opaque.client.startRegistration({ password: 'pw' });
    const setup = opaque.server.createSetup();
    const r = opaque.server.createRegistrationResponse({ serverSetup: setup, userIdentifier: 'x', registrationRequest: c.registrationRequest });
    const t0 = performance.now();
    opaque.client.finishRegistration({ clientRegistrationState: c.clientRegistrationState, registrationResponse: r.registrationResponse, password: 'pw', keyStretching: { 'argon2id-custom': DEFAULT_CLIENT_KSF } });
    const argonMs = performance.now() - t0;

    const rows = [
      ['registrations through gateway', reg.rate, reg.p50, reg.p99, b.regRate],
      ['recoveries through gateway', rec.rate, rec.p50, rec.p99, b.recRate],
    ] as const;
    console.log(`\nVault (1 member, ${USERS} users, ${RECOVERIES} recoveries, concurrency ${CONCURRENCY}; load generator and vault share the machine)`);
    console.log('| operation | ops/s | p50 ms | p99 ms | bare OPAQUE server ops/s | ratio |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const [name, rate, p50, p99, bareRate] of rows) {
      console.log(`| ${name} | ${rate.toFixed(0)} | ${p50.toFixed(1)} | ${p99.toFixed(1)} | ${bareRate.toFixed(0)} | ${(rate / bareRate).toFixed(2)}x |`);
    }
    console.log(`| client Argon2id (64 MiB, t=3, p=4), one registration or recovery | | ${argonMs.toFixed(0)} | | | |`);
    return { regRate: reg.rate, recRate: rec.rate, bareReg: b.regRate, bareRec: b.recRate, argonMs };
  } finally {
    vault.child.kill('SIGTERM');
    await new Promise((r) => vault.child.once('exit', r));
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
