/**
 * One replication group as a member process runs it (docs/groups.md): the group's sealed consensus
 * state (`MemberStorage`), its record store, and the trusted parts built by `createVaultMember`
 * (record state, node, driver, batcher, core and, with groups, the transfer coordinator). A member
 * of a fleet without groups runs one of these over its own directory; a member of a fleet of
 * several runs one per group, under `group-<g>/`, all sharing the member's identity, its peer
 * transport and its API.
 */
import { join } from 'node:path';
import type { DriverEnv, RaftDriver } from '../../trusted/consensus/driver.js';
import type { RaftNode, RaftNodeOptions } from '../../trusted/consensus/node.js';
import type { FleetSecrets } from '../../trusted/core/fleet-secrets.js';
import type { Replicator } from '../../trusted/core/replication.js';
import type { VaultCore, VaultPolicy } from '../../trusted/core/vault-core.js';
import type { TransferCoordinator } from '../../trusted/groups/transfer.js';
import type { RecordBatcher } from '../../trusted/records/batcher.js';
import type { RecordState } from '../../trusted/records/record-state.js';
import { nodeCoreEnv } from './native-crypto.js';
import { displayStoreUrl, openRecordStore } from '../record-store/index.js';
import type { RecordStore } from '../record-store/types.js';
import { MemberRecords } from '../record-store/member-records.js';
import type { PeerExport } from '../record-store/store-writer.js';
import type { VaultCode } from '../vault-code.js';
import { MemberStorage } from './member-storage.js';
import { groupDir } from './provision.js';

/**
 * The record store URL of group `g` from the member's: unchanged in a fleet without groups; with
 * groups, `sqlite:<path>` becomes `sqlite:<path without .sqlite>-group-<g>.sqlite` and a PostgreSQL
 * URL's schema gets `_g<g>` appended.
 */
export function groupStoreUrl(url: string, g: number, multi: boolean): string {
  if (!multi) return url;
  if (/^postgres(ql)?:\/\//.test(url)) {
    const u = new URL(url);
    u.searchParams.set('schema', `${u.searchParams.get('schema') ?? 'bkv_member'}_g${g}`);
    return u.toString();
  }
  if (url.startsWith('sqlite:')) return `${url.replace(/\.sqlite$/, '')}-group-${g}.sqlite`;
  return url;
}

export interface GroupReplicaOptions {
  code: VaultCode;
  /** The member directory. */
  dir: string;
  group: number;
  /** Groups at genesis and in all; `multi` false: a fleet without groups. */
  groups: { genesis: number; total: number; multi: boolean };
  /** The member's record store URL (per group: `groupStoreUrl`), or undefined for the default file. */
  store: string | undefined;
  secrets: FleetSecrets;
  /** Node options without the per-group parts (storage, counter, boot state). */
  node: Omit<RaftNodeOptions, 'stateMachine' | 'counter' | 'boot'>;
  /** Host environment without persistence (the replica's own storage supplies it). */
  env: Omit<DriverEnv, 'persist'>;
  policy: VaultPolicy;
  requestTimeoutMs: number;
  tickMs: number;
  /** Tick only when the consensus node has timed work due (DriverOptions.sparseTicks). */
  sparseTicks?: boolean;
  storeGroup: { maxDelayMs: number; maxBatches: number };
  /** Peers' exports of this group's store, leader first. */
  peerExports: () => AsyncGenerator<PeerExport>;
  /** Every committed entry applied (metrics). */
  onApplied?: () => void;
  /** Wraps the replicator (metrics). */
  wrap?: (r: Replicator) => Replicator;
  onEvent?: (line: string) => void;
}

export interface GroupReplica {
  group: number;
  storeLocation: string;
  store: RecordStore;
  storage: MemberStorage;
  stateMachine: RecordState;
  node: RaftNode;
  driver: RaftDriver;
  records: MemberRecords;
  core: VaultCore;
  batcher: RecordBatcher;
  /** Null in a fleet without groups. */
  transfers: TransferCoordinator | null;
  close(): Promise<void>;
}

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function openGroupReplica(o: GroupReplicaOptions): Promise<GroupReplica> {
  const dir = join(o.dir, groupDir(o.groups.multi, o.group));
  const storage = await MemberStorage.open(join(dir, 'state'));
  const storeUrl = o.store !== undefined ? groupStoreUrl(o.store, o.group, o.groups.multi) : `sqlite:${join(dir, 'records.sqlite')}`;
  let store: RecordStore;
  try {
    store = await openRecordStore(storeUrl);
  } catch (e) {
    await storage.close();
    throw e;
  }
  let records: MemberRecords | null = null;
  const member = o.code.createVaultMember({
    node: {
      ...o.node,
      counter: storage.counter,
      boot: storage.bootState(),
      // Each group prefers its own member as leader (g → the g-th member, round-robin), so the
      // leaders of different groups sit on different members.
      ...(o.groups.multi ? { config: { ...o.node.config, preferredLeader: [...o.node.members.keys()].sort((a, b) => a - b)[o.group % o.node.members.size]! } } : {}),
    },
    env: { ...o.env, persist: storage.persist },
    ...(o.groups.multi ? { group: { id: o.group, groups: o.groups.genesis, storageKey: o.secrets.storageKey } } : {}),
    driver: {
      requestTimeoutMs: o.requestTimeoutMs,
      tickMs: o.tickMs,
      ...(o.sparseTicks ? { sparseTicks: true } : {}),
      onOutput(out) {
        if (out.type === 'committed') o.onApplied?.();
        records?.onOutput(out);
      },
    },
  });
  const node = member.node;
  records = new MemberRecords(store, member.stateMachine, {
    wait,
    group: { ...o.storeGroup, when: () => node.status().role !== 'leader' },
    peerExports: o.peerExports,
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
  });
  await records.open();
  const { core, batcher, transfers } = await member.createCore({
    secrets: o.secrets,
    env: nodeCoreEnv,
    policy: o.policy,
    reader: records.reader,
    wait,
    ...(o.wrap ? { wrap: o.wrap } : {}),
  });
  const rec = records;
  return {
    group: o.group,
    storeLocation: displayStoreUrl(storeUrl),
    store,
    storage,
    stateMachine: member.stateMachine,
    node,
    driver: member.driver,
    records: rec,
    core,
    batcher,
    transfers,
    async close() {
      member.driver.stop();
      await rec.close();
      await storage.close();
    },
  };
}
