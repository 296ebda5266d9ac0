/**
 * What a member process reports of itself (`GET /v1/status`, docs/api.md): plain types, imported by
 * the member process, the supervisor, the gateway and the health rules without importing each other.
 */
import type { NodeStatus } from '../../trusted/consensus/types.js';
import type { MemberRecordsStatus } from '../record-store/member-records.js';

/** A migration from release 0.1 run by a member process. */
export interface MigrationStatus {
  state: 'importing' | 'done';
  done: number;
  total: number;
}

/** One replication group as a member of a fleet of several runs it (`groups` in `GET /v1/status`). */
export interface GroupStatus extends Omit<NodeStatus, 'leaderId' | 'id' | 'bootNote'> {
  group: number;
  /** The group's committed range of slots, `[start, end)` (2^32 slots; empty: start = end = 0), and as text. */
  range: { start: number; end: number; text: string };
  /** True when it serves its range now (not empty, not all of it moving out). */
  serving: boolean;
  leader: number | null;
  lag: number;
  catchingUp: string | null;
  records: number;
  store: MemberRecordsStatus & { location: string };
  /** The group's transfers, as committed: the open outgoing and incoming one, and the next transfer number. */
  transfer: {
    nextSeq: number;
    outgoing: { seq: number; dest: number; start: number; end: number } | null;
    incoming: { source: number; seq: number; start: number; end: number } | null;
    /** The last transfer decided from each source group. */
    decided: Array<{ source: number; seq: number; accepted: boolean }>;
  };
  trusted: { root: string; batch: number };
}

export interface MemberStatus extends Omit<NodeStatus, 'leaderId'> {
  fleetId: string;
  site: string;
  leader: number | null;
  /** Entries this member is behind the highest commit index a leader told it (`leaderCommit − lastApplied`). */
  lag: number;
  /** Why this member is not in step yet (its log behind the leader's, its record store with a gap or being repaired), or null. */
  catchingUp: string | null;
  records: number;
  /** The member's record store: engine, where it is (no credentials), whether it is in step with the core, repairs. */
  store: MemberRecordsStatus & { location: string };
  /** What the core holds of the records: the record tree's root (hex) and the size of its whole state snapshot. */
  trusted: { root: string; batch: number; snapshotBytes: number };
  /** The core's counters since this process started (requests, rejected, credentialResponses, recoveries). */
  core: Record<string, number>;
  /** A migration from release 0.1 in progress or finished by this process (null: none). */
  migration: MigrationStatus | null;
  pid: number;
  uptimeSeconds: number;
  /**
   * A fleet of several replication groups: each group this member serves in (the fields above are
   * then group 0's). Absent in a fleet without groups.
   */
  groups?: GroupStatus[];
}
