/**
 * The one place that assembles a vault member inside the trust boundary: the replicated record
 * state, the consensus node, its driver, the leader's record batcher and the vault core on top.
 * The member process (through the measured build), the single-member vault, the simulator and the
 * test harnesses build members here; the host only supplies what is injected (identity, storage
 * key, counter, boot state, clock, timers, transport, persistence, and its record store).
 */
import { RaftDriver, type DriverEnv, type DriverOptions } from './consensus/driver.js';
import { RaftNode, type RaftNodeOptions } from './consensus/node.js';
import type { CoreEnv } from './core/env.js';
import type { FleetSecrets } from './core/fleet-secrets.js';
import type { ReplicatedStateMachine, Replicator } from './core/replication.js';
import { VaultCore, DEFAULT_POLICY, type VaultPolicy } from './core/vault-core.js';
import { RecordBatcher, type BatcherOptions, type Leadership, type RecordReader } from './records/batcher.js';
import { deriveRecordKeys } from './records/record-keys.js';
import { RecordState } from './records/record-state.js';
import { groupClusterId } from './groups/cluster-id.js';
import { GroupKeys } from './groups/messages.js';
import { TransferCoordinator } from './groups/transfer.js';

export interface ConsensusMemberOptions<SM extends ReplicatedStateMachine> {
  /** The state machine the log drives: `RecordState` for a vault, a test machine elsewhere. */
  stateMachine: SM;
  /** Everything the consensus node needs except the state machine. */
  node: Omit<RaftNodeOptions, 'stateMachine'>;
  /** The host side of the driver: clock, timers, transport, persistence. */
  env: DriverEnv;
  driver?: DriverOptions;
}

export interface ConsensusMember<SM extends ReplicatedStateMachine> {
  stateMachine: SM;
  node: RaftNode;
  driver: RaftDriver;
  /** The driver as the replication seam. */
  replicator: Replicator;
  /** Who leads, for the batcher. */
  leadership: Leadership;
}

/** Builds node and driver over `stateMachine`. Nothing runs until `driver.start()`. */
export function createConsensusMember<SM extends ReplicatedStateMachine>(o: ConsensusMemberOptions<SM>): ConsensusMember<SM> {
  const node = new RaftNode({ ...o.node, stateMachine: o.stateMachine });
  const driver = new RaftDriver(node, o.env, o.driver);
  const replicator: Replicator = {
    propose: (entry) => driver.propose(entry),
    readBarrier: () => driver.readBarrier(),
  };
  const leadership: Leadership = {
    isLeader: () => node.status().role === 'leader',
    leaderHint: () => node.status().leaderId,
    caughtUp() {
      const s = node.status();
      return s.role === 'leader' && s.lastApplied === s.lastIndex;
    },
  };
  return { stateMachine: o.stateMachine, node, driver, replicator, leadership };
}

export interface VaultCoreOptions {
  secrets: FleetSecrets;
  env: CoreEnv;
  policy?: VaultPolicy;
  /** The host's record store, as the batcher reads it (every answer is checked). */
  reader: RecordReader;
  /** Host timer for the batcher's bounded waits. */
  wait: (ms: number) => Promise<void>;
  batcher?: BatcherOptions;
  /** May decorate the replicator (the member process counts proposals and times commits). */
  wrap?: (r: Replicator) => Replicator;
}

export interface VaultMemberParts extends ConsensusMember<RecordState> {
  /**
   * Creates the leader's batcher and the vault core over this member's log and record store, and
   * in a fleet of replication groups the group's transfer coordinator (null without groups).
   */
  createCore(o: VaultCoreOptions): Promise<{ core: VaultCore; batcher: RecordBatcher; transfers: TransferCoordinator | null }>;
}

/**
 * One replication group of a fleet of several (docs/groups.md): the group's id, how many groups
 * split the space at genesis, and the fleet storage key its group-to-group message keys come from.
 */
export interface MemberGroupOptions {
  id: number;
  groups: number;
  storageKey: Uint8Array;
}

/** A vault member: `RecordState` under consensus, then (once the host's store is open) the core. */
export function createVaultMember(
  o: Omit<ConsensusMemberOptions<RecordState>, 'stateMachine'> & { stateMachine?: RecordState; group?: MemberGroupOptions },
): VaultMemberParts {
  const stateMachine = o.stateMachine ?? new RecordState(o.group ? { id: o.group.id, groups: o.group.groups, keys: new GroupKeys(o.group.storageKey) } : undefined);
  // A group's node is keyed for that group alone (docs/groups.md); one group without a group config keeps the fleet's id.
  const group = stateMachine.group;
  const node = group ? { ...o.node, clusterId: groupClusterId(o.node.clusterId, group.id) } : o.node;
  const parts = createConsensusMember({ ...o, node, stateMachine });
  return {
    ...parts,
    async createCore(c) {
      const replicator = c.wrap ? c.wrap(parts.replicator) : parts.replicator;
      const batcher = new RecordBatcher(
        deriveRecordKeys(c.secrets.storageKey),
        parts.stateMachine,
        c.reader,
        replicator,
        parts.leadership,
        { now: c.env.now, random: c.env.random, wait: c.wait, ...(c.env.channelPrimitives ? { aead: c.env.channelPrimitives } : {}) },
        c.batcher,
      );
      const core = await VaultCore.create(c.secrets, batcher, c.env, c.policy ?? DEFAULT_POLICY);
      const transfers = parts.stateMachine.group ? new TransferCoordinator(parts.stateMachine, c.reader, replicator, parts.leadership, c.wait) : null;
      return { core, batcher, transfers };
    },
  };
}
