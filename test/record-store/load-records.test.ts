/**
 * The bulk loader (scripts/load-records.ts): a vault it fills opens with every user counted, its
 * known users recover their secrets through the vault core, and its synthetic records open under
 * the vault's own keys and verify against the root the vault holds.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as opaque from '@serenity-kit/opaque';
import { afterAll, expect, it } from 'vitest';
import { openVaultMember } from '../../src/host/vault-member.js';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { nativeChannelPrimitives } from '../../src/host/fleet/native-crypto.js';
import { knownAccount, knownPassword, knownSecret, LOADER_KSF } from '../../scripts/load-records.js';

const dir = mkdtempSync(join(tmpdir(), 'bkv-load-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('fills a vault that opens with every user, recovers the known users and verifies the synthetic ones', async () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/load-records.ts', '--dir', dir, '--users', '500', '--real', '3', '--json'], { encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  const summary = JSON.parse(readFileSync(join(dir, 'load.json'), 'utf8')) as { users: number; real: number };
  expect(summary).toMatchObject({ users: 500, real: 3 });
  await opaque.ready;
  const m = await openVaultMember(dir);
  try {
    expect(m.state.count).toBe(500);
    const { opaqueServerPublicKey, encryptionPublicKey } = m.core.publicKeys();
    for (let i = 0; i < 3; i++) {
      const account = knownAccount(i);
      const c = new VaultClient({ account, fleet: { opaqueServerPublicKey, encryptionPublicKey }, ksf: LOADER_KSF, channelPrimitives: nativeChannelPrimitives, transport: (e) => m.core.handle(account, e) });
      expect(await c.recoverKey(knownPassword(i))).toEqual(knownSecret(i));
    }
    // peek reads through the store, verifies the proof against the vault's root and opens the record.
    expect((await m.peek('synthetic-0'))?.status).toBe('live');
    expect((await m.peek('synthetic-496'))?.status).toBe('live');
    expect(await m.peek('synthetic-497')).toBeUndefined();
  } finally {
    await m.close();
  }
}, 180_000);
