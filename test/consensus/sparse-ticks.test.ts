import { describe, expect, it } from 'vitest';
import { EscrowOp, encodeCommand } from '../../src/sim/escrow-model.js';
import { TestCluster } from './harness.js';

const reg = (user: number, limit = 3) => encodeCommand({ op: EscrowOp.Register, user, limit });

function sparseCluster(n: number, seed: number, config = {}): TestCluster {
  const c = new TestCluster(n, seed, config);
  c.driverOptions = { sparseTicks: true, maxTickMs: 1000 };
  return c;
}

/** A started sparse cluster once it has one leader, and that leader. */
function withLeader(n: number, seed: number): { c: TestCluster; leader: number } {
  const c = sparseCluster(n, seed);
  c.startAll();
  expect(c.runUntil(() => c.leaders().length === 1)).toBe(true);
  return { c, leader: c.leaders()[0] as number };
}

/** Timers set by each member over `ms` of a steady cluster. */
function timersOver(c: TestCluster, ms: number): Map<number, number> {
  const before = new Map(c.timersSet);
  c.run(ms);
  return new Map(c.members.map((m) => [m.id, (c.timersSet.get(m.id) ?? 0) - (before.get(m.id) ?? 0)]));
}

describe('sparse ticks (the driver ticks only when the node has timed work due)', () => {
  it('an idle follower wakes for its election deadline, not every tick; the leader for its heartbeats; nobody starts an election', () => {
    const sparse = sparseCluster(5, 3);
    sparse.startAll();
    expect(sparse.runUntil(() => sparse.leaders().length === 1)).toBe(true);
    const leader = sparse.leaders()[0] as number;
    const term = sparse.status(leader).term;
    const dense = new TestCluster(5, 3);
    dense.startAll();
    expect(dense.runUntil(() => dense.leaders().length === 1)).toBe(true);

    const s = timersOver(sparse, 4000);
    const d = timersOver(dense, 4000);
    // Dense: a tick every 10 ms, 400 in 4 s, on every member.
    for (const m of dense.members) expect(d.get(m.id)).toBeGreaterThanOrEqual(400);
    for (const m of sparse.members) {
      // Heartbeats every 40 ms move a follower's deadline (150-300 ms on): it wakes about once per
      // deadline (and re-arms when a new deadline falls before the armed one): a tenth of dense.
      if (m.id !== leader) expect(s.get(m.id)).toBeLessThanOrEqual(40);
      // The leader ticks for its heartbeats (every 40 ms) and the check-quorum: far fewer than every 10 ms.
      else expect(s.get(m.id)).toBeLessThanOrEqual(4000 / 40 + 4000 / 300 + 4);
    }
    expect(sparse.leaders()).toEqual([leader]);
    expect(sparse.status(leader).term).toBe(term);
    for (const m of sparse.members) expect(sparse.status(m.id).leaderId).toBe(leader);
  });

  it('commits proposals and every follower applies them (the commit index reaches a follower within a tick)', () => {
    const { c, leader } = withLeader(5, 5);
    for (let u = 1; u <= 20; u++) expect(c.propose(leader, reg(u)).ok).toBe(true);
    const commit = c.status(leader).commitIndex;
    // Nothing else is proposed: only the leader's commit notice (one tick later) tells the followers.
    c.run(15);
    for (const m of c.members) expect(c.status(m.id).commitIndex).toBe(commit);
  });

  it('elects a new leader when the leader crashes, with no periodic ticks on the followers', () => {
    for (const seed of [1, 2, 3, 4]) {
      const c = sparseCluster(5, seed);
      c.startAll();
      c.runUntil(() => c.leaders().length === 1);
      const old = c.leaders()[0] as number;
      expect(c.propose(old, reg(1)).ok).toBe(true);
      c.crash(old);
      expect(c.runUntil(() => c.leaders().length === 1 && !c.leaders().includes(old), 3000)).toBe(true);
      const next = c.leaders()[0] as number;
      expect(c.propose(next, reg(2)).ok).toBe(true);
    }
  });

  it("tells the follower's clock at every step: a heartbeat after a long quiet spell does not arm an election in the past", () => {
    const { c, leader } = withLeader(3, 9);
    const term = c.status(leader).term;
    // Quiet for 20 s of heartbeats only: followers tick about once per election timeout, and every
    // heartbeat moves their deadline from the time it arrived, so no election starts.
    c.run(20_000);
    expect(c.leaders()).toEqual([leader]);
    for (const m of c.members) expect(c.status(m.id).term).toBe(term);
  });

  it('nextTickDue: a follower is due at its election deadline, a leader at its next heartbeat, and at once with a commit to tell', () => {
    const { c, leader } = withLeader(3, 11);
    const follower = c.members.find((m) => m.id !== leader)!.id;
    const now = c.q.now;
    const ld = c.member(leader).node!.nextTickDue();
    expect(ld).toBeGreaterThan(now - 1);
    expect(ld).toBeLessThanOrEqual(now + 40); // heartbeat interval
    const fd = c.member(follower).node!.nextTickDue();
    expect(fd).toBeGreaterThan(now);
    expect(fd).toBeLessThanOrEqual(now + 300); // election timeout max
    // A commit sets a notice for the followers: due at the next tick.
    c.member(leader).driver!.submit(reg(7), () => undefined);
    c.runUntil(() => c.member(leader).outputs.some((o) => o.type === 'committed' && o.requestId !== undefined), 1000);
    expect(c.member(leader).node!.nextTickDue()).toBeLessThanOrEqual(c.q.now);
  });
});
