/**
 * A single-member vault (`bkv vault start`): a one-member fleet in this process. The same code
 * and the same durability as a fleet member: a Raft node with one voter whose sealed state lives
 * in `state/` (docs/formats/member-state.md), a record store (SQLite in `records.sqlite` unless
 * `--store` names another), and the vault core over them. In the software backend,
 * `member-secrets.bin` and `member-identity.bin` stand in for the HSM's internal key store.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { equalBytes } from '../shared/bytes.js';
import { verifyRecord } from '../shared/record-tree/index.js';
import type { CoreEnv } from '../trusted/core/env.js';
import { decodeFleetSecrets, encodeFleetSecrets, generateFleetSecrets, type FleetSecrets } from '../trusted/core/fleet-secrets.js';
import { DEFAULT_POLICY, type VaultCore, type VaultPolicy } from '../trusted/core/vault-core.js';
import { createVaultMember } from '../trusted/member.js';
import { deriveRecordKeys, openRecord, passkeyRecordId, recordId } from '../trusted/records/record-keys.js';
import type { PasskeyRecord, VaultRecord } from '../trusted/records/record.js';
import { RecordState } from '../trusted/records/record-state.js';
import type { RaftNode } from '../trusted/consensus/node.js';
import type { RecordBatcher } from '../trusted/records/batcher.js';
import { MemberStorage } from './fleet/member-storage.js';
import { singleMemberKeys } from './member-state-install.js';
import { nativeHmacSha256, nativeSealCrypto, nodeCoreEnv } from './fleet/native-crypto.js';
import { MemberRecords } from './record-store/member-records.js';
import { displayStoreUrl, openRecordStore } from './record-store/index.js';
import { writeFileDurable } from '../node/fs-durable.js';
import { finishSingleMigration, prepareSingleMigration } from './migration/single.js';
import { importCarried, progressLine } from './migration/import.js';

export interface VaultMember {
  core: VaultCore;
  state: RecordState;
  records: MemberRecords;
  node: RaftNode;
  /** The leader's batcher (this member always leads); migrations import through it. */
  batcher: RecordBatcher;
  /** Where the records live (the store URL, without credentials). */
  storeUrl: string;
  /**
   * Software backend only: reads and opens one account's record with the secrets this process
   * holds (a real module never lets its host do this). For tests and the demo.
   */
  peek(account: string): Promise<VaultRecord | undefined>;
  /** The same for an account's passkey record. */
  peekPasskeys(account: string): Promise<PasskeyRecord | undefined>;
  /** Role, commit index and record store state, for the health page. */
  health(): { role: string; commitIndex: number; records: number; store: ReturnType<MemberRecords['status']> };
  close(): Promise<void>;
}

export interface VaultMemberOptions {
  env?: CoreEnv;
  policy?: VaultPolicy;
  /** Record store URL: `sqlite:<path>` (default: `records.sqlite` in the directory) or `postgres://…`. */
  store?: string;
  /** Compact the consensus log after this many applied entries (default 4096). */
  snapshotEvery?: number;
  onEvent?: (line: string) => void;
  /** Lines about a migration from release 0.1, progress included (default: standard error). */
  onMigration?: (line: string) => void;
  /** Records per import step of a migration (default 1024), and a hook after each step (tests). */
  migration?: { chunk?: number; onProgress?: (done: number, total: number) => void };
}

/**
 * The single-member vault's secrets (`member-secrets.bin`) and identity seed
 * (`member-identity.bin`) in `dir`, created if missing.
 */
export async function openMemberFiles(dir: string, env: CoreEnv = nodeCoreEnv): Promise<{ secrets: FleetSecrets; seed: Uint8Array }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const secretsPath = join(dir, 'member-secrets.bin');
  let secrets;
  if (existsSync(secretsPath)) {
    secrets = decodeFleetSecrets(new Uint8Array(await readFile(secretsPath)));
  } else {
    secrets = await generateFleetSecrets(env);
    await writeFileDurable(secretsPath, encodeFleetSecrets(secrets));
  }
  // The member's own identity: a seed from which its consensus storage key is derived.
  const identityPath = join(dir, 'member-identity.bin');
  let seed: Uint8Array;
  if (existsSync(identityPath)) {
    seed = new Uint8Array(await readFile(identityPath));
    if (seed.length !== 32) throw new BkvError('MALFORMED', `${identityPath} is not a 32-byte member identity`);
  } else {
    seed = env.random(32);
    await writeFileDurable(identityPath, seed);
  }
  return { secrets, seed };
}

/** Opens (or creates) a single-member vault in `dir`. */
export async function openVaultMember(dir: string, opts: VaultMemberOptions = {}): Promise<VaultMember> {
  const env = opts.env ?? nodeCoreEnv;
  const { secrets, seed } = await openMemberFiles(dir, env);
  // A directory written by release 0.1: its old state is moved aside and its records are imported
  // once the new member runs (docs/vault.md, "Migration from release 0.1").
  const say = opts.onMigration ?? ((line: string) => process.stderr.write(`${line}\n`));
  const migration = await prepareSingleMigration(dir, secrets.storageKey, env.random, say);
  const { identity, clusterId, storageKey } = singleMemberKeys(seed);

  const storeUrl = opts.store ?? `sqlite:${join(dir, 'records.sqlite')}`;
  const store = await openRecordStore(storeUrl);
  const storage = await MemberStorage.open(join(dir, 'state'));
  const state = new RecordState();
  const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  let records: MemberRecords | null = null;
  const member = createVaultMember({
    stateMachine: state,
    node: {
      identity,
      members: new Map([[1, identity.publicKey]]),
      clusterId,
      storageKey,
      counter: storage.counter,
      rng: () => crypto.getRandomValues(new Uint32Array(1))[0]!,
      boot: storage.bootState(),
      now: performance.now(),
      hmacSha256: nativeHmacSha256,
      sealCrypto: nativeSealCrypto,
      config: { electionTimeoutMin: 10, electionTimeoutMax: 20, heartbeatInterval: 5, snapshotThreshold: opts.snapshotEvery ?? 4096 },
    },
    env: {
      now: () => performance.now(),
      setTimer(delayMs, fn) {
        const t = setTimeout(fn, delayMs);
        return { cancel: () => clearTimeout(t) };
      },
      send: () => {},
      persist: storage.persist,
      defer: (fn) => setImmediate(fn),
    },
    driver: { requestTimeoutMs: 10_000, onOutput: (o) => records?.onOutput(o) },
  });
  if (member.node.status().learner) {
    await storage.close();
    await store.close();
    throw new BkvError('TAMPERED', `the vault state in ${join(dir, 'state')} failed its checks (${member.node.bootNote}); a single-member vault has no peer to recover from: restore the whole directory from a backup`);
  }
  records = new MemberRecords(store, state, { wait, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
  member.driver.start();
  await records.open();
  // A one-member fleet elects itself within one short election timeout; wait for it, bounded.
  for (let waited = 0; member.node.status().role !== 'leader'; waited += 5) {
    if (waited > 10_000) throw new BkvError('UNAVAILABLE', `the vault member did not become leader (${member.node.bootNote})`);
    await wait(5);
  }
  await member.replicator.readBarrier();
  const { core, batcher } = await member.createCore({ secrets, env, policy: opts.policy ?? DEFAULT_POLICY, reader: records.reader, wait });
  const keys = deriveRecordKeys(secrets.storageKey);
  const r = records;
  /** Reads one record and checks it against the committed root, as the core's batcher does. */
  const peekId = async (id: Uint8Array): Promise<VaultRecord | undefined> => {
    await member.replicator.readBarrier();
    await Promise.race([state.whenStoreInStep(), wait(2000)]);
    if (state.storeHealth().state !== 'ok') throw new BkvError('UNAVAILABLE', `the record store is not in step (${r.status().problem ?? r.status().state})`);
    const res = await store.read([id]);
    const got = res.reads.find((x: { key: Uint8Array }) => equalBytes(x.key, id));
    if (!got) throw new BkvError('INTERNAL', 'the store did not answer');
    verifyRecord(state.root, id, got.value, got.proof);
    return got.value ? openRecord(keys, id, got.value) : undefined;
  };
  const vm: VaultMember = {
    core,
    state,
    records: r,
    node: member.node,
    batcher,
    storeUrl: displayStoreUrl(storeUrl),
    health() {
      const st = member.node.status();
      return { role: 'single-member', commitIndex: st.commitIndex, records: state.count, store: r.status() };
    },
    async peek(account) {
      return peekId(recordId(keys, account));
    },
    async peekPasskeys(account) {
      const rec = await peekId(passkeyRecordId(keys, account));
      return rec?.status === 'passkeys' ? rec : undefined;
    },
    async close() {
      await member.replicator.readBarrier().catch(() => {});
      // Let the store take the last batches (bounded: a store with a gap never catches up here).
      await Promise.race([state.whenStoreInStep(), wait(2000)]);
      member.driver.stop();
      await r.close();
      await storage.close();
    },
  };
  if (migration) {
    try {
      const n = await importCarried(migration.records, {
        state,
        reader: r.reader,
        batcher,
        keys,
        wait,
        ...(opts.migration?.chunk ? { chunk: opts.migration.chunk } : {}),
        onProgress(done, total) {
          say(progressLine(done, total));
          opts.migration?.onProgress?.(done, total);
        },
      });
      await finishSingleMigration(migration);
      say(`release 0.1 migration complete: ${migration.records.length} records (${n} imported by this start); the old files stay in ${migration.aside}`);
    } catch (e) {
      await vm.close().catch(() => {});
      throw e;
    }
  }
  return vm;
}
