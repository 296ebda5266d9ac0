import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeFleetSecrets, encodeFleetSecrets } from '../../src/trusted/core/fleet-secrets.js';
import { decodeMemberIdentity, memberPublicKeys, memberStorageKey, parseFleetConfig, readFleetConfig } from '../../src/host/fleet/config.js';
import { createFleet, fleetKeysFromSecrets } from '../../src/host/fleet/provision.js';
import { fromB64, toB64 } from '../../src/shared/protocol/messages.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const tmp = async () => {
  const d = await mkdtemp(join(tmpdir(), 'bkv-provision-'));
  dirs.push(d);
  return d;
};

describe('fleet provisioning (docs/formats/fleet-layout.md)', () => {
  it('writes fleet.json, fleet-keys.json and every member directory', async () => {
    const dir = await tmp();
    const f = await createFleet(dir, { members: 5, sites: ['east', 'west'] });
    const config = await readFleetConfig(join(dir, 'fleet.json'));
    expect(config.quorum).toBe(3);
    expect(config.members.map((m) => m.id)).toEqual([1, 2, 3, 4, 5]);
    expect(config.members.map((m) => m.site)).toEqual(['east', 'west', 'east', 'west', 'east']);
    expect(config.members[0]).toMatchObject({ raftPort: 7501, apiPort: 7601 });
    expect(config.gateway.port).toBe(7410);
    expect(fromB64(config.clusterId, 'clusterId').length).toBe(16);
    const secrets = [];
    for (const m of config.members) {
      const id = decodeMemberIdentity(new Uint8Array(await readFile(join(dir, `member-${m.id}`, 'member.bin'))));
      expect(id.id).toBe(m.id);
      const pk = memberPublicKeys(id);
      expect(toB64(pk.identityKey)).toBe(m.identityKey);
      expect(toB64(pk.signingKey)).toBe(m.signingKey);
      secrets.push(encodeFleetSecrets(decodeFleetSecrets(new Uint8Array(await readFile(join(dir, `member-${m.id}`, 'fleet-secrets.bin'))))));
    }
    for (const s of secrets) expect(Buffer.from(s).equals(Buffer.from(secrets[0]!))).toBe(true);
    const keys = JSON.parse(await readFile(f.fleetKeysPath, 'utf8'));
    expect(keys).toEqual(await fleetKeysFromSecrets(decodeFleetSecrets(secrets[0]!)));
    // Storage keys differ between members.
    const k1 = memberStorageKey(decodeMemberIdentity(new Uint8Array(await readFile(join(dir, 'member-1', 'member.bin')))), fromB64(config.clusterId, 'c'));
    const k2 = memberStorageKey(decodeMemberIdentity(new Uint8Array(await readFile(join(dir, 'member-2', 'member.bin')))), fromB64(config.clusterId, 'c'));
    expect(Buffer.from(k1).equals(Buffer.from(k2))).toBe(false);
  });

  it('refuses even or out-of-range sizes and non-empty directories', async () => {
    await expect(createFleet(await tmp(), { members: 4 })).rejects.toThrow(/odd/);
    await expect(createFleet(await tmp(), { members: 11 })).rejects.toThrow(/odd/);
    const d = await tmp();
    await writeFile(join(d, 'x'), 'x');
    await expect(createFleet(d, { members: 3 })).rejects.toThrow(/not empty/);
  });

  it('rejects a fleet.json with a wrong quorum', async () => {
    const dir = await tmp();
    const f = await createFleet(dir, { members: 3, basePort: 0 });
    const bad = { ...f.config, quorum: 3 };
    expect(() => parseFleetConfig(JSON.stringify(bad))).toThrow(/quorum/);
  });
});
