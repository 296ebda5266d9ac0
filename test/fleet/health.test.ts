import { describe, expect, it } from 'vitest';
import { CATCH_UP_LAG, catchUpReason, memberHealth } from '../../src/host/fleet/health.js';
import type { MemberStatus } from '../../src/host/fleet/member-status.js';

const inStep = {
  id: 2, role: 'follower', term: 3, learner: false, leader: 1, commitIndex: 500, leaderCommit: 500, lastApplied: 500,
  store: { engine: 'sqlite', location: 'sqlite:x', state: 'in-step', problem: null, storeBatch: 500, coreBatch: 500, records: 10, repairs: 0 },
} as unknown as MemberStatus;
const st = (over: Partial<MemberStatus>, store: Partial<MemberStatus['store']> = {}) => ({ ...inStep, ...over, store: { ...inStep.store, ...store } }) as MemberStatus;

describe('fleet member health', () => {
  it('is ok only for a voter with a leader whose log and store are in step', () => {
    expect(memberHealth(inStep)).toBe('ok');
    expect(memberHealth(null)).toBe('down');
    expect(memberHealth(st({ learner: true }))).toBe('learner');
    expect(memberHealth(st({ leader: null }))).toBe('no leader');
    expect(memberHealth(st({}, { state: 'corrupt' }))).toBe('store corrupt');
    expect(memberHealth(st({}, { state: 'writing', storeBatch: 499 }))).toBe('ok');
  });

  it('a member far behind the leader (a disk rolled back whole, or wiped) is catching up, by its own view or the leader\'s', () => {
    // Commit 0 with a leader at 3,327: what a member restored from an old copy looked like while reported "ok".
    const behind = st({ commitIndex: 0, lastApplied: 0, leaderCommit: 3327 });
    expect(memberHealth(behind)).toBe('catching up');
    expect(catchUpReason(behind)).toBe('3327 entries behind the leader');
    // It has not heard from the leader yet: the leader's commit index from the fleet's statuses tells.
    const unaware = st({ commitIndex: 0, lastApplied: 0, leaderCommit: 0 });
    expect(memberHealth(unaware)).toBe('ok');
    expect(memberHealth(unaware, 3327)).toBe('catching up');
    // A few entries behind is normal under load.
    expect(memberHealth(st({ lastApplied: 500 - CATCH_UP_LAG }), 500)).toBe('ok');
    expect(memberHealth(st({ lastApplied: 499 - CATCH_UP_LAG }), 500)).toBe('catching up');
    // The leader's own view is the commit index.
    expect(memberHealth(st({ role: 'leader', leader: 2, lastApplied: 0 }), 3327)).toBe('ok');
  });

  it('a member whose record store has a gap, is being repaired, or lags its core is catching up', () => {
    expect(catchUpReason(st({}, { state: 'gap' }))).toBe('record store gap');
    expect(catchUpReason(st({}, { state: 'repairing' }))).toBe('record store repairing');
    expect(catchUpReason(st({}, { state: 'writing', storeBatch: 100 }))).toBe('record store 400 entries behind');
    expect(memberHealth(st({}, { state: 'repairing' }))).toBe('catching up');
  });
});
