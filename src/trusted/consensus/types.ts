/**
 * Shared consensus types: log entries, node inputs and outputs, configuration, and the plain
 * shapes of the sealed member state (sealed-state.ts seals and opens them). Imports nothing.
 */

export type MemberId = number;

/** Marks "this member may not vote in its current term" (used after a rejoin). */
export const VOTE_ABSTAIN = -1;

export const enum EntryKind {
  /** Appended by every new leader so it can commit entries of its own term. */
  Noop = 0,
  /** Application data for the replicated state machine. */
  Data = 1,
}

export interface LogEntry {
  term: number;
  kind: EntryKind;
  /** Member that accepted the proposal, its boot incarnation and its request number. */
  origin: MemberId;
  incarnation: number;
  requestId: number;
  data: Uint8Array;
}

export type NodeInput =
  | { type: 'tick'; now: number }
  /** Moves the node's clock on without a tick's timed work (a host that ticks only when work is due sends one with every step). */
  | { type: 'clock'; now: number }
  | { type: 'receive'; bytes: Uint8Array }
  | { type: 'propose'; requestId: number; entry: Uint8Array }
  | { type: 'readIndex'; requestId: number }
  | { type: 'persisted'; token: number };

export type RejectReason = 'not-leader' | 'no-leader' | 'learner' | 'deposed' | 'too-large';

export type NodeOutput =
  /** Deliver these exact bytes to member `to`. Safe to send at once: the node withholds every
   * message until the state it depends on has been confirmed durable. */
  | { type: 'send'; to: MemberId; bytes: Uint8Array }
  /** Make `record` durable (snapshot, log appends, then the hard state), then input `persisted(token)`. */
  | { type: 'persist'; token: number; record: PersistRecord }
  /** A committed entry was applied on this member. `requestId` is set when this member accepted it. */
  | { type: 'committed'; index: number; entry: Uint8Array; result: Uint8Array; requestId?: number }
  /** A readIndex request may now be served from the local state machine. */
  | { type: 'readReady'; requestId: number; index: number }
  | { type: 'rejected'; requestId: number; reason: RejectReason; leaderHint?: MemberId }
  /** The state machine was replaced by a snapshot ending at `index`. */
  | { type: 'restored'; index: number };

export interface RaftConfig {
  electionTimeoutMin: number;
  electionTimeoutMax: number;
  heartbeatInterval: number;
  /** Max entries per AppendEntries message. */
  maxBatch: number;
  /** Compact the log once this many applied entries sit above the snapshot... */
  snapshotThreshold: number;
  /**
   * ...and their bytes are at least this multiple of the current snapshot's size. With a large
   * state (a million users: hundreds of MB) a compaction re-serialises, seals and writes all of
   * it, so it should happen only once the log has grown comparably; 0 compacts on entry count only.
   */
  snapshotLogRatio: number;
  /** Max proposals a follower buffers while it knows no leader. */
  maxPendingForwards: number;
  /**
   * The member this group would rather have lead, so that the leaders of several replication
   * groups on the same members sit on different members (docs/groups.md). It draws its election
   * timeouts from the lower half of [electionTimeoutMin, electionTimeoutMax), every other member from
   * the upper half, so it normally wins the first election and every election it is up for. A
   * preference only: safety does not depend on it and any member may still lead. Absent: none.
   */
  preferredLeader?: MemberId;
  /**
   * TEST ONLY. Overrides the commit quorum size (a deliberately broken variant used to show that
   * the simulator's checker catches unsafe commits). Never set in production.
   */
  unsafeCommitQuorum?: number;
  /** TEST ONLY. Accepts a hard state whose stamp is behind the monotonic counter (no rollback defence). */
  unsafeAcceptRollback?: boolean;
}

export const DEFAULT_CONFIG: RaftConfig = {
  electionTimeoutMin: 300,
  electionTimeoutMax: 600,
  heartbeatInterval: 60,
  maxBatch: 64,
  snapshotThreshold: 10_000,
  snapshotLogRatio: 1,
  maxPendingForwards: 256,
};

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

export interface NodeStatus {
  id: MemberId;
  role: Role;
  term: number;
  learner: boolean;
  leaderId: MemberId | null;
  commitIndex: number;
  /**
   * The highest commit index a leader has told this member (on the leader, its own commit index).
   * `leaderCommit - lastApplied` is how far behind it is: a member that lost its state, or came
   * back from an older copy of it, learns this from the first AppendEntries, even one it rejects.
   */
  leaderCommit: number;
  lastApplied: number;
  lastIndex: number;
  snapshotIndex: number;
  /** Why the member started as a learner, if it did. */
  bootNote: string;
}

/* The member state, as sealed-state.ts seals and opens it. */

export interface SnapshotMeta {
  index: number;
  term: number;
  data: Uint8Array;
}

/** What the hard state says about the snapshot it belongs with. index 0: no snapshot. */
export interface SnapshotRef {
  index: number;
  term: number;
  /** SHA-256 of the sealed snapshot bytes (32 zero bytes when index is 0). */
  digest: Uint8Array;
}

export interface HardState {
  term: number;
  /** null: no vote this term; VOTE_ABSTAIN: must not vote this term; else the member voted for. */
  votedFor: number | null;
  learner: boolean;
  /** Index and term of the last log entry (equal to the snapshot's when the log suffix is empty). */
  lastIndex: number;
  lastTerm: number;
  snapshot: SnapshotRef;
}

/**
 * One persist output: what changed since the previous one. The host applies it in this order:
 * store `snapshot` (if any) as a new file, record `truncateFrom` (if any), append `frames`, make
 * all of that durable, then atomically replace the hard state with `hardState`. Only then may it
 * confirm. Files the new hard state no longer refers to may be removed after that.
 */
export interface PersistRecord {
  /** Sealed snapshot (only after a compaction or an InstallSnapshot), else null. */
  snapshot: Uint8Array | null;
  /** Frames written earlier at this index or above are dead (a dropped conflicting suffix); null: none. */
  truncateFrom: number | null;
  /** Sealed log frames to append, in ascending index order (possibly none). */
  frames: Uint8Array[];
  /** The new sealed hard state, replacing the previous one. */
  hardState: Uint8Array;
}

/** What the host found on disk, handed to the node at boot. */
export interface BootState {
  /** The current sealed hard state, or null if there is none. */
  hardState: Uint8Array | null;
  /** Every readable log frame on disk, in any order; extra and dead frames are ignored. */
  logFrames: readonly Uint8Array[];
  /** The sealed snapshot the hard state refers to (see `snapshotRefOf`), or null. */
  snapshot: Uint8Array | null;
}
