import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { resolveFleetKeys } from '../../src/client/fleet/resolve.js';
import { MemoryCheckpointStore } from '../../src/client/fleet/store.js';
import { gatewayBundleFetcher, overTheAirFleet } from '../../src/client/sdk/fleet-source.js';
import { recoverWithRotation } from '../../src/client/sdk/rotation.js';
import { httpTransport } from '../../src/client/sdk/transport.js';
import { VaultClient, type TrustedFleetKeys } from '../../src/client/sdk/vault-client.js';
import { startVaultServer, type RunningVault } from '../../src/host/vault-server.js';
import { WitnessClient } from '../../src/witness/client.js';
import { operatorKeyFromSeed } from '../../src/witness/keys.js';
import { startWitness, type RunningWitness } from '../../src/witness/server.js';
import { TEST_KSF } from '../vault/fixture.js';
import { cleanup, tempDir } from './fixture.js';

const NS = 'rotation.backups';
const operator = operatorKeyFromSeed(new Uint8Array(32).fill(5));
let dir: string;
let witness: RunningWitness;
let witnessKey: string;
let fleet1: RunningVault;
let fleet2: RunningVault | undefined;

async function token(url: string, account: string) {
  const res = await fetch(`${url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
  return ((await res.json()) as { token: string }).token;
}

function client(vault: RunningVault, account: string, fleet: () => Promise<TrustedFleetKeys>) {
  return new VaultClient({ account, fleet, ksf: TEST_KSF, transport: httpTransport({ gatewayUrl: vault.url, token: () => token(vault.url, account) }) });
}

/** Keys of one epoch, verified from the witness's bundle (what a client validated for the old fleet). */
function epochKeys(epoch: number) {
  return () =>
    resolveFleetKeys({ mode: 'over-the-air', namespace: NS, witnesses: [witnessKey], store: new MemoryCheckpointStore() }, () =>
      new WitnessClient(witness.url).bundle(NS, { epoch }) as never,
    );
}

/** A phone with no local state, after the rotation: new fleet over the air, old fleet by its epoch. */
function device(account: string) {
  const store = new MemoryCheckpointStore();
  const current = overTheAirFleet({ mode: 'over-the-air', namespace: NS, witnesses: [witnessKey], store }, gatewayBundleFetcher(fleet2!.url));
  return { current, oldFleet: client(fleet1, account, epochKeys(1)), newFleet: client(fleet2!, account, current) };
}

beforeAll(async () => {
  dir = await tempDir('bkv-rotation-');
  witness = await startWitness(join(dir, 'witness'), { addOperatorKeys: [encodeBase64(operator.publicKey)] });
  witnessKey = (await new WitnessClient(witness.url).keyInfo()).verifierKey;
  fleet1 = await startVaultServer({ dir: join(dir, 'fleet1'), logger: false, publication: { witnessUrl: witness.url, namespace: NS, operator, witnessKey } });
});

afterAll(async () => {
  await fleet2?.close();
  await fleet1.close();
  await witness.close();
  await cleanup();
});

describe('fleet rotation: epochs 1 and 2 of one namespace', () => {
  const k = crypto.getRandomValues(new Uint8Array(32));
  const k2 = crypto.getRandomValues(new Uint8Array(32));

  it('users register with fleet 1 (epoch 1), then fleet 2 is published as epoch 2 while fleet 1 keeps serving', async () => {
    expect(fleet1.published?.epoch).toBe(1);
    const fleet = overTheAirFleet({ mode: 'over-the-air', namespace: NS, witnesses: [witnessKey], store: new MemoryCheckpointStore() }, gatewayBundleFetcher(fleet1.url));
    await client(fleet1, 'alice', fleet).registerKey('alice pw', k);
    await client(fleet1, 'bob', fleet).registerKey('bob pw', k2);
    fleet2 = await startVaultServer({ dir: join(dir, 'fleet2'), logger: false, publication: { witnessUrl: witness.url, namespace: NS, operator, witnessKey } });
    expect(fleet2.published?.epoch).toBe(2);
    // Clients pick up the new fleet over the air.
    const d = device('alice');
    const keys = await resolveFleetKeys({ mode: 'over-the-air', namespace: NS, witnesses: [witnessKey], store: new MemoryCheckpointStore() }, gatewayBundleFetcher(fleet2.url));
    expect(keys.epoch).toBe(2);
    expect(encodeBase64((await d.current()).encryptionPublicKey)).not.toBe(encodeBase64((await epochKeys(1)()).encryptionPublicKey));
  });

  it('the next recovery moves K to the new fleet; later recoveries use only the new fleet', async () => {
    const d = device('alice');
    const first = await recoverWithRotation('alice pw', { oldFleet: d.oldFleet, newFleet: d.newFleet });
    expect(first).toMatchObject({ source: 'old-fleet', migrated: true, oldErased: true });
    expect(first.key).toEqual(k);
    const d2 = device('alice');
    const again = await recoverWithRotation('alice pw', { oldFleet: d2.oldFleet, newFleet: d2.newFleet });
    expect(again).toMatchObject({ source: 'new-fleet', migrated: false });
    expect(again.key).toEqual(k);
    // The old fleet no longer holds alice's record.
    await expect(d2.oldFleet.recoverKey('alice pw')).rejects.toSatisfy((e) => isBkvError(e, 'NOT_REGISTERED'));
  });

  it('a wrong password is not migrated, and after the retirement window the old fleet is not asked', async () => {
    const d = device('bob');
    await expect(recoverWithRotation('not bob pw', { oldFleet: d.oldFleet, newFleet: d.newFleet })).rejects.toSatisfy((e) => isBkvError(e, 'WRONG_PASSWORD'));
    await expect(d.newFleet.recoverKey('bob pw')).rejects.toSatisfy((e) => isBkvError(e, 'NOT_REGISTERED'));
    await expect(
      recoverWithRotation('bob pw', { oldFleet: d.oldFleet, newFleet: d.newFleet, oldFleetRetiresAt: Date.now() - 1 }),
    ).rejects.toSatisfy((e) => isBkvError(e, 'NOT_REGISTERED'));
    // Within the window bob still moves.
    const r = await recoverWithRotation('bob pw', { oldFleet: d.oldFleet, newFleet: d.newFleet, oldFleetRetiresAt: Date.now() + 86_400_000 });
    expect(r.key).toEqual(k2);
  });
});
