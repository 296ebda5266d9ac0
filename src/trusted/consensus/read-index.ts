/**
 * The state of linearizable reads (Raft's read index, §6.4; etcd's readOnly), as one record:
 * on the leader, the reads waiting for a majority to confirm its leadership; on any member, the
 * reads it forwarded to the leader and the confirmed reads waiting for the state machine to
 * catch up with their index.
 */
import type { MemberId } from './types.js';

/** A read the leader is confirming: `seq` must be acknowledged by a majority, then `index` is safe to read at. */
export interface PendingRead {
  seq: number;
  index: number;
  /** A read requested on this member. */
  local?: number;
  /** A read forwarded by a follower. */
  remote?: { to: MemberId; incarnation: number; requestId: number };
}

export interface ReadIndexState {
  /** The leader's read sequence in this term (sent in appends; peers acknowledge it). */
  seq: number;
  /** Reads waiting for a majority to acknowledge their `seq`. */
  pending: PendingRead[];
  /** Reads that arrived before an entry of the leader's term committed. */
  awaitingTermCommit: PendingRead[];
  /** Request ids of reads this member forwarded to the leader. */
  remote: Set<number>;
  /** Confirmed reads waiting until `lastApplied` reaches their index. */
  localWaiters: Array<{ requestId: number; index: number }>;
}

export function newReadIndexState(): ReadIndexState {
  return { seq: 0, pending: [], awaitingTermCommit: [], remote: new Set(), localWaiters: [] };
}
