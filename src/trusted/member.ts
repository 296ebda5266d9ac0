/**
 * The one place that assembles a vault member inside the trust boundary: the replicated state
 * machine, the consensus node, its driver and (on request) the vault core on top. The member
 * process (src/host/fleet/member-process.ts, through the measured build), the simulator and the
 * consensus test harness all build members here; the host only supplies what is injected
 * (identity, storage key, counter, boot state, clock, timers, transport, persistence).
 */
import { RaftDriver, type DriverEnv, type DriverOptions } from './consensus/driver.js';
import { RaftNode, type RaftNodeOptions } from './consensus/node.js';
import type { CoreEnv } from './core/env.js';
import type { FleetSecrets } from './core/fleet-secrets.js';
import type { ReplicatedStateMachine, Replicator } from './core/replication.js';
import { VaultCore, DEFAULT_POLICY, type VaultPolicy } from './core/vault-core.js';

export interface CreateVaultMemberOptions<SM extends ReplicatedStateMachine> {
  /** The state machine the log drives: `VaultStateMachine` for a vault, a test machine elsewhere. */
  stateMachine: SM;
  /** Everything the consensus node needs except the state machine. */
  node: Omit<RaftNodeOptions, 'stateMachine'>;
  /** The host side of the driver: clock, timers, transport, persistence. */
  env: DriverEnv;
  driver?: DriverOptions;
}

export interface VaultMemberParts<SM extends ReplicatedStateMachine> {
  stateMachine: SM;
  node: RaftNode;
  driver: RaftDriver;
  /** The driver as the core's replication seam. */
  replicator: Replicator;
  /**
   * Creates the vault core over this member's log. `wrap` may decorate the replicator (the
   * member process counts proposals and times commits) without changing what it does.
   */
  createCore(secrets: FleetSecrets, env: CoreEnv, policy?: VaultPolicy, wrap?: (r: Replicator) => Replicator): Promise<VaultCore>;
}

/** Builds node and driver over `stateMachine`. Nothing runs until `driver.start()`. */
export function createVaultMember<SM extends ReplicatedStateMachine>(o: CreateVaultMemberOptions<SM>): VaultMemberParts<SM> {
  const node = new RaftNode({ ...o.node, stateMachine: o.stateMachine });
  const driver = new RaftDriver(node, o.env, o.driver);
  const replicator: Replicator = {
    propose: (entry) => driver.propose(entry),
    readBarrier: () => driver.readBarrier(),
  };
  return {
    stateMachine: o.stateMachine,
    node,
    driver,
    replicator,
    createCore: (secrets, env, policy = DEFAULT_POLICY, wrap) => VaultCore.create(secrets, wrap ? wrap(replicator) : replicator, env, policy),
  };
}
