import { sha256 } from '@noble/hashes/sha2.js';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { encodeFleetArtifact, makeFleetArtifact } from '../../src/shared/fleet-formats/artifact.js';
import { encodeHex } from '../../src/shared/fleet-formats/encoding.js';
import { vaultBuildPath } from '../../src/host/measurement.js';
import { loadVaultCode } from '../../src/host/vault-code.js';

let dir: string;
const saved = process.env.BKV_VAULT_BUILD;

async function writeArtifact(measurement: string) {
  const k = new Uint8Array(32).fill(1);
  const artifact = makeFleetArtifact({
    namespace: 'test.ns',
    fleetId: 'f1',
    keys: { opaqueServerPublicKey: k, encryptionPublicKey: k, signingPublicKey: k },
    members: [{ id: 'member-1', identityKey: k, site: 'a' }],
    measurement,
    notBefore: '2026-01-01T00:00:00Z',
    notAfter: '2036-01-01T00:00:00Z',
  });
  await writeFile(join(dir, 'fleet-artifact.json'), encodeFleetArtifact(artifact));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bkv-measured-'));
  await copyFile(vaultBuildPath(), join(dir, 'vault-core.js'));
  process.env.BKV_VAULT_BUILD = join(dir, 'vault-core.js');
});

afterAll(async () => {
  if (saved === undefined) delete process.env.BKV_VAULT_BUILD;
  else process.env.BKV_VAULT_BUILD = saved;
  await rm(dir, { recursive: true, force: true });
});

describe('a member runs only the code its fleet attested', () => {
  it('loads the measured build when it matches the artifact', async () => {
    const bytes = await readFile(join(dir, 'vault-core.js'));
    await writeArtifact(encodeHex(sha256(bytes)));
    const loaded = await loadVaultCode(join(dir, 'fleet.json'));
    expect(loaded.measurement).toBe(encodeHex(sha256(bytes)));
    expect(typeof loaded.code.VaultCore.create).toBe('function');
    expect(typeof loaded.code.consensus.RaftNode).toBe('function');
  });

  it('refuses to start on a build with one changed byte', async () => {
    const path = join(dir, 'vault-core.js');
    const bytes = await readFile(path);
    await writeArtifact(encodeHex(sha256(bytes)));
    const evil = Buffer.from(bytes);
    const at = evil.indexOf('attempts');
    evil[at] = 'A'.charCodeAt(0);
    await writeFile(path, evil);
    await expect(loadVaultCode(join(dir, 'fleet.json'))).rejects.toSatisfy(
      (e) => isBkvError(e, 'VERIFICATION_FAILED') && /refusing to start/.test((e as Error).message),
    );
    await writeFile(path, bytes);
  });

  it('refuses to start when the build is missing', async () => {
    await writeArtifact('00'.repeat(32));
    process.env.BKV_VAULT_BUILD = join(dir, 'nope.js');
    await expect(loadVaultCode(join(dir, 'fleet.json'))).rejects.toSatisfy((e) => isBkvError(e, 'VERIFICATION_FAILED'));
    process.env.BKV_VAULT_BUILD = join(dir, 'vault-core.js');
  });
});
