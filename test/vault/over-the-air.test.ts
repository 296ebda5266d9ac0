import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { MemoryCheckpointStore } from '../../src/client/fleet/store.js';
import { gatewayBundleFetcher, overTheAirFleet } from '../../src/client/sdk/fleet-source.js';
import { httpTransport } from '../../src/client/sdk/transport.js';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { startVaultServer, type RunningVault } from '../../src/host/vault-server.js';
import { WitnessClient } from '../../src/witness/client.js';
import { makeDemoFleet } from '../../src/witness/demo-support.js';
import { operatorKeyFromSeed } from '../../src/witness/keys.js';
import { startWitness, type RunningWitness } from '../../src/witness/server.js';
import { TEST_KSF } from './fixture.js';

let dir: string;
let witness: RunningWitness;
let vault: RunningVault;
let witnessKey: string;
const NS = 'test.backups';
const operator = operatorKeyFromSeed(new Uint8Array(32).fill(9));

async function token(account: string) {
  const res = await fetch(`${vault.url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
  return ((await res.json()) as { token: string }).token;
}

function client(account: string, fleet: () => Promise<{ opaqueServerPublicKey: Uint8Array; encryptionPublicKey: Uint8Array }>) {
  return new VaultClient({ account, fleet, ksf: TEST_KSF, transport: httpTransport({ gatewayUrl: vault.url, token: () => token(account) }) });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bkv-ota-test-'));
  witness = await startWitness(join(dir, 'witness'), { addOperatorKeys: [encodeBase64(operator.publicKey)] });
  witnessKey = (await new WitnessClient(witness.url).keyInfo()).verifierKey;
  vault = await startVaultServer({
    dir: join(dir, 'vault'),
    logger: false,
    publication: { witnessUrl: witness.url, namespace: NS, operator, witnessKey },
  });
});

afterAll(async () => {
  await vault.close();
  await witness.close();
  await rm(dir, { recursive: true, force: true });
});

describe('fleet keys over the air', () => {
  it('publishes the fleet at the witness with the core counter-signature, idempotently', async () => {
    expect(vault.published?.epoch).toBe(1);
    expect(vault.published?.counterSignature).toBeTruthy();
    // A restart finds its artifact already logged: no new epoch.
    await vault.close();
    vault = await startVaultServer({ dir: join(dir, 'vault'), logger: false, publication: { witnessUrl: witness.url, namespace: NS, operator, witnessKey } });
    expect(vault.published?.epoch).toBe(1);
  });

  it('a client that pins only the witness key escrows and recovers K', async () => {
    const store = new MemoryCheckpointStore();
    const fleet = overTheAirFleet({ mode: 'over-the-air', namespace: NS, witnesses: [witnessKey], store }, gatewayBundleFetcher(vault.url));
    const k = crypto.getRandomValues(new Uint8Array(32));
    await client('ota-user', fleet).registerKey('pw', k);
    const fresh = overTheAirFleet({ mode: 'over-the-air', namespace: NS, witnesses: [witnessKey], store: new MemoryCheckpointStore() }, gatewayBundleFetcher(vault.url));
    expect(await client('ota-user', fresh).recoverKey('pw')).toEqual(k);
  });

  it('refuses a gateway bundle signed by a witness the client does not pin', async () => {
    const other = await startWitness(join(dir, 'other-witness'), {});
    try {
      const otherKey = (await new WitnessClient(other.url).keyInfo()).verifierKey;
      const fleet = overTheAirFleet(
        { mode: 'over-the-air', namespace: NS, witnesses: [otherKey], store: new MemoryCheckpointStore() },
        gatewayBundleFetcher(vault.url),
      );
      await expect(client('ota-2', fleet).recoverKey('pw')).rejects.toSatisfy((e) => isBkvError(e, 'VERIFICATION_FAILED'));
    } finally {
      await other.close();
    }
  });

  it('the core refuses to counter-sign a statement about another key set', async () => {
    const fake = makeDemoFleet(NS, 'impostor');
    const rec = await new WitnessClient(witness.url).submit(NS, 2, fake.bytes, operator);
    expect(() =>
      vault.member.core.counterSign({
        artifact: fake.bytes,
        statement: Buffer.from(rec.statement, 'base64'),
        witnessSignature: Buffer.from(rec.witnessSignature, 'base64'),
      }),
    ).toThrow(/does not name this fleet/);
    // Our own artifact, but a statement about the impostor's digest.
    const { readFile } = await import('node:fs/promises');
    const own = new Uint8Array(await readFile(join(dir, 'vault', 'fleet-artifact.json')));
    expect(() =>
      vault.member.core.counterSign({
        artifact: own,
        statement: Buffer.from(rec.statement, 'base64'),
        witnessSignature: Buffer.from(rec.witnessSignature, 'base64'),
      }),
    ).toThrow(/does not cover this artifact/);
    // The right statement, but the signature forged (flipped).
    const good = await new WitnessClient(witness.url).epochRecord(NS, 1);
    const sig = Buffer.from(good.witnessSignature, 'base64');
    sig[3]! ^= 1;
    expect(() =>
      vault.member.core.counterSign({ artifact: own, statement: Buffer.from(good.statement, 'base64'), witnessSignature: sig }),
    ).toThrow(/witness signature/);
  });
});
