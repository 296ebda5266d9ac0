import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vendorInit } from '../../src/attestation/software-hsm.js';
import { runCeremony } from '../../src/ceremony/ceremony.js';
import { encodeEvidence } from '../../src/shared/evidence/evidence.js';
import { publishDeployment } from '../../src/ceremony/publish.js';
import { isBkvError } from '../../src/shared/errors.js';
import { encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { MemoryCheckpointStore } from '../../src/client/fleet/store.js';
import { WrongPasswordError } from '../../src/client/sdk/errors.js';
import { gatewayBundleFetcher, overTheAirFleet } from '../../src/client/sdk/fleet-source.js';
import { httpTransport } from '../../src/client/sdk/transport.js';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { freePorts } from '../../src/host/fleet/provision.js';
import { codeMeasurement } from '../../src/host/measurement.js';
import { WitnessClient } from '../../src/witness/client.js';
import { operatorKeyFromSeed } from '../../src/witness/keys.js';
import { startWitness, type RunningWitness } from '../../src/witness/server.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'bkv.js');
const NS = 'up.ota';
let dir: string;
let witness: RunningWitness;
let up: ChildProcess;
let url: string;
let witnessKey: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bkv-up-ota-'));
  const vendor = await vendorInit(join(dir, 'vendor'), 'test-vendor');
  const measurement = await codeMeasurement();
  const ports = await freePorts(7);
  const r = await runCeremony({
    dir: join(dir, 'fleet'),
    members: 3,
    sites: ['a', 'b', 'c'],
    namespace: NS,
    vendorDir: join(dir, 'vendor'),
    measurement,
    ports: { raft: ports.slice(0, 3), api: ports.slice(3, 6), gateway: ports[6]! },
  });
  const operator = operatorKeyFromSeed(new Uint8Array(32).fill(3));
  witness = await startWitness(join(dir, 'witness'), {
    addOperatorKeys: [encodeBase64(operator.publicKey)],
    addAllowedVendors: [vendor.publicKey],
    addAllowedMeasurements: [measurement],
  });
  witnessKey = (await new WitnessClient(witness.url).keyInfo()).verifierKey;
  await publishDeployment({ witnessUrl: witness.url, namespace: NS, artifact: r.artifact, evidence: encodeEvidence(r.evidence), operator, counterSign: r.counterSign });
  up = spawn(process.execPath, [BIN, 'up', '--dir', join(dir, 'fleet'), '--witness', witness.url, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: up.stdout! }).once('line', resolve);
    up.once('exit', (c) => reject(new Error(`bkv up exited ${c}`)));
  });
  url = (JSON.parse(line) as { url: string }).url;
}, 90_000);

afterAll(async () => {
  if (up && up.exitCode === null) {
    up.kill('SIGTERM');
    await new Promise((r) => up.once('exit', r));
  }
  await witness?.close();
  await rm(dir, { recursive: true, force: true });
});

function phone(account: string, witnesses: string[]) {
  const fleet = overTheAirFleet({ mode: 'over-the-air', namespace: NS, witnesses, store: new MemoryCheckpointStore() }, gatewayBundleFetcher(url));
  const token = async () =>
    ((await (await fetch(`${url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) })).json()) as { token: string }).token;
  return new VaultClient({ account, fleet, ksf: { memory: 256, iterations: 1, parallelism: 1 }, transport: httpTransport({ gatewayUrl: url, token }) });
}

describe('a ceremony-deployed fleet run by `bkv up --witness`', () => {
  it('serves bundles a phone pinning only the witness key accepts, and escrows through the members', async () => {
    const k = crypto.getRandomValues(new Uint8Array(32));
    await phone('ota', [witnessKey]).registerKey('pw', k);
    await expect(phone('ota', [witnessKey]).recoverKey('nope')).rejects.toBeInstanceOf(WrongPasswordError);
    expect(await phone('ota', [witnessKey]).recoverKey('pw')).toEqual(k);
  });

  it('is refused by a phone that pins another witness', async () => {
    const other = await startWitness(join(dir, 'other-witness'), {});
    try {
      const otherKey = (await new WitnessClient(other.url).keyInfo()).verifierKey;
      await expect(phone('ota2', [otherKey]).recoverKey('pw')).rejects.toSatisfy((e) => isBkvError(e, 'VERIFICATION_FAILED'));
    } finally {
      await other.close();
    }
  });
});
