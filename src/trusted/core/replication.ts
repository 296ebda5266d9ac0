/**
 * The replication seam between the vault core's request logic and whatever makes its state
 * durable and agreed. With one member it is a local durable log; with a fleet it is majority
 * consensus. The request logic never knows which.
 *
 * Contract:
 * - `propose(entry)` resolves only once `entry` is durable on a strict majority of members (one,
 *   for the single-member log) and has been applied, in log order, to the replicated state
 *   machine on this member. It resolves to the state machine's result for that entry.
 * - `readBarrier()` resolves once this member has applied every entry that was committed before
 *   the call started (a linearizable read point: read index or lease). A deposed leader must
 *   reject rather than resolve.
 * - Both reject with `BkvError('UNAVAILABLE', ...)` when no quorum can be reached in time.
 */
export interface Replicator {
  propose(entry: Uint8Array): Promise<Uint8Array>;
  readBarrier(): Promise<void>;
}

/**
 * The deterministic state machine that the replicated log drives. Every member applies the same
 * entries in the same order and must reach the same state and results: no clock, no randomness,
 * no I/O inside `apply`.
 */
export interface ReplicatedStateMachine {
  /** Applies the committed entry at `index` and returns its result bytes. */
  apply(index: number, entry: Uint8Array): Uint8Array;
  /** Serialises the whole state (for snapshots). Deterministic for a given state. */
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot taken by `snapshot()`. */
  restore(snapshot: Uint8Array): void;
  /**
   * Optional: the log index up to which the log may be compacted, with the snapshot for it. A
   * state machine whose data lives outside (the record store) allows compaction only up to what
   * its host confirmed stored; null forbids compaction for now. Without it: `lastApplied`.
   */
  compactionPoint?(): { index: number; snapshot: Uint8Array } | null;
}
