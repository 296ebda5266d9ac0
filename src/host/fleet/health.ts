/**
 * A fleet member's health as `bkv fleet status`, the gateway's `/healthz` and the member's metrics
 * report it. A member is `ok` only when it answers, knows a leader, votes, and is in step: its log
 * within CATCH_UP_LAG entries of the leader's commit index and its record store holding what its
 * core committed. A member that lost its state or came back from an older copy of it (which the
 * software backend cannot always tell: README, "A fleet") is `catching up` until it is in step.
 */
import type { MemberStatus } from './member-status.js';

/** Entries a member may trail the leader's commit index (or its store its core) by and still be in step. */
export const CATCH_UP_LAG = 64;

export type MemberHealthWord = 'ok' | 'catching up' | 'store corrupt' | 'learner' | 'no leader' | 'down';

type StatusFacts = Pick<MemberStatus, 'role' | 'leaderCommit' | 'lastApplied'> & {
  store: Pick<MemberStatus['store'], 'state' | 'storeBatch' | 'coreBatch'>;
};

/**
 * Why the member is not in step yet, or null when it is: entries behind the highest commit index
 * it knows of (its own view, or `leaderCommit` seen elsewhere), or a record store with a gap, being
 * repaired, or more than CATCH_UP_LAG entries behind its core.
 */
export function catchUpReason(s: StatusFacts, leaderCommit = 0): string | null {
  // A status without some of these facts (another release, a stand-in) counts as in step on them.
  const behind = Math.max(s.leaderCommit ?? 0, leaderCommit) - (s.lastApplied ?? 0);
  if (s.role !== 'leader' && behind > CATCH_UP_LAG) return `${behind} entries behind the leader`;
  const store = s.store as Partial<StatusFacts['store']> | undefined;
  if (store?.state === 'gap' || store?.state === 'repairing') return `record store ${store.state}`;
  const storeBehind = (store?.coreBatch ?? 0) - (store?.storeBatch ?? 0);
  if (storeBehind > CATCH_UP_LAG) return `record store ${storeBehind} entries behind`;
  return null;
}

/** The one-word health of a member's status (null: it did not answer), given the leader's commit index. */
export function memberHealth(s: MemberStatus | null, leaderCommit = 0): MemberHealthWord {
  if (s === null) return 'down';
  if (s.learner) return 'learner';
  if (s.leader === null) return 'no leader';
  if ((s.store as Partial<MemberStatus['store']> | undefined)?.state === 'corrupt') return 'store corrupt';
  return catchUpReason(s, leaderCommit) === null ? 'ok' : 'catching up';
}
