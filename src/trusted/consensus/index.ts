/** Majority-consensus replication inside the vault core: public surface. */
export { RaftNode } from './node.js';
export type { RaftNodeOptions, NodeStats } from './node.js';
export { RaftDriver } from './driver.js';
export type { DriverEnv, DriverOptions, SubmitResult, TimerHandle } from './driver.js';
export { PeerAuth, AuthError, identityFromSeed } from './auth.js';
export type { Identity } from './auth.js';
export { MemoryCounter } from './counter.js';
export type { MonotonicCounter } from './counter.js';
export {
  EMPTY_BOOT, SealedStateError, openFrame, openHardState, openSnapshot, peekFrame, peekHardState, selectSnapshot, snapshotDigest,
} from './sealed-state.js';
export type { BootState, FrameHeader, HardState, PersistRecord, SnapshotMeta, SnapshotRef } from './sealed-state.js';
export { ConsensusDecodeError } from './codec.js';
export { DEFAULT_CONFIG, VOTE_ABSTAIN } from './types.js';
export type { LogEntry, MemberId, NodeInput, NodeOutput, NodeStatus, RaftConfig, RejectReason, Role } from './types.js';
