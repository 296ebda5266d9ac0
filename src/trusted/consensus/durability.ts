/**
 * A member's durability bookkeeping, as one record: which versions of its persistent state were
 * handed to the host and confirmed durable, which sealed frames the host holds, and the messages
 * held back until the state they promise is on disk.
 */
import type { Message } from './messages.js';
import { ZERO_DIGEST } from './sealed-state.js';
import type { MemberId, SnapshotRef } from './types.js';

/** The persist handed to the host and not yet confirmed. */
export interface InflightPersist {
  token: number;
  version: number;
  /** The monotonic-counter value the sealed hard state is stamped with. */
  stamp: number;
  lastIndex: number;
}

export interface Durability {
  /** Bumped on every change to persistent state. */
  stateVersion: number;
  /** The state version of the last persist handed to the host. */
  writtenVersion: number;
  /** The state version the host confirmed durable. */
  durableVersion: number;
  /** The last log index the confirmed persist covered. */
  durableLastIndex: number;
  inflight: InflightPersist | null;
  nextToken: number;
  /** Frames for indexes snapshot.index+1 .. diskIndex have been handed to the host and still match the log. */
  diskIndex: number;
  /** Frames at this index or above that were handed out earlier are dead (a dropped suffix). */
  truncateFrom: number | null;
  /** The snapshot changed and must be sealed with the next persist. */
  snapshotDirty: boolean;
  /** The snapshot reference the last sealed hard state carried. */
  snapRef: SnapshotRef;
  /**
   * Messages that may leave only once the state version they were sent at is durable, sealed when
   * they leave. Successful append answers to one leader that will leave with the same write are
   * merged into one (node.ts `send`).
   */
  outbox: Array<{ version: number; to: MemberId; msg: Message }>;
}

export function newDurability(): Durability {
  return {
    stateVersion: 0,
    writtenVersion: 0,
    durableVersion: 0,
    durableLastIndex: 0,
    inflight: null,
    nextToken: 1,
    diskIndex: 0,
    truncateFrom: null,
    snapshotDirty: false,
    snapRef: { index: 0, term: 0, digest: ZERO_DIGEST },
    outbox: [],
  };
}
