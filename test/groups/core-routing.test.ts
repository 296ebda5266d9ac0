import { describe, expect, it } from 'vitest';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { MemoryRecordStore } from '../../src/host/record-store/memory.js';
import { MemberRecords } from '../../src/host/record-store/member-records.js';
import { isBkvError } from '../../src/shared/errors.js';
import { systemEnv } from '../../src/trusted/core/env.js';
import { generateFleetSecrets } from '../../src/trusted/core/fleet-secrets.js';
import { VaultCore } from '../../src/trusted/core/vault-core.js';
import { GroupKeys } from '../../src/trusted/groups/messages.js';
import { containsId, genesisRange } from '../../src/trusted/groups/range.js';
import { RecordBatcher } from '../../src/trusted/records/batcher.js';
import { deriveRecordKeys, recordId } from '../../src/trusted/records/record-keys.js';
import { RecordState } from '../../src/trusted/records/record-state.js';
import { InstantLog, wait } from '../records/harness.js';
import { TEST_KSF } from '../vault/fixture.js';

describe('the vault core of one replication group', () => {
  it('answers requests for its own range and refuses others unsealed with WRONG_GROUP (the host re-routes)', async () => {
    const secrets = await generateFleetSecrets(systemEnv);
    const keys = deriveRecordKeys(secrets.storageKey);
    const log = new InstantLog();
    const state = new RecordState({ id: 0, groups: 2, keys: new GroupKeys(secrets.storageKey) });
    const store = new MemoryRecordStore();
    const records = new MemberRecords(store, state, { wait });
    log.members.push({ events: [], state, store, records });
    const leadership = { isLeader: () => true, leaderHint: () => null, caughtUp: () => true };
    const batcher = new RecordBatcher(keys, state, records.reader, log, leadership, { now: () => Date.now(), random: systemEnv.random, wait });
    const core = await VaultCore.create(secrets, batcher, systemEnv);
    const name = (g: number): string => {
      for (let i = 0; ; i++) if (containsId(genesisRange(g, 2), recordId(keys, `acct-${i}`))) return `acct-${i}`;
    };
    const client = (account: string): VaultClient =>
      new VaultClient({
        account,
        fleet: async () => ({ opaqueServerPublicKey: core.publicKeys().opaqueServerPublicKey, encryptionPublicKey: core.publicKeys().encryptionPublicKey }),
        transport: (envelope) => core.handle(account, envelope),
        ksf: TEST_KSF,
        attemptLimit: 5,
      });
    const k = crypto.getRandomValues(new Uint8Array(32));
    await client(name(0)).registerKey('pw', k);
    expect(await client(name(0)).recoverKey('pw')).toEqual(k);
    const before = log.index;
    const err = await client(name(1)).registerKey('pw', k).then(() => null, (e: unknown) => e);
    expect(isBkvError(err, 'WRONG_GROUP')).toBe(true);
    expect((err as { details: Record<string, unknown> }).details).toMatchObject({ group: 0, owner: 1 });
    expect(log.index).toBe(before);
  });
});
