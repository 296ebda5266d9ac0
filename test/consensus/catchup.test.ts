import { describe, expect, it } from 'vitest';
import { MemoryCounter } from '../../src/trusted/consensus/counter.js';
import { EMPTY_IMAGE } from '../../src/sim/disk.js';
import { EscrowOp, encodeCommand } from '../../src/sim/escrow-model.js';
import { TestCluster } from './harness.js';

// A host that rolls back a member's whole directory, monotonic counter included (the software
// backend keeps the counter in a file beside the state), or deletes it: the member cannot tell and
// boots as a voter with an older log (or none). The leader still believes the member holds what it
// acknowledged before, so it must learn from the member's rejections where its log really ends.
const reg = (user: number) => encodeCommand({ op: EscrowOp.Register, user, limit: 3 });

function fleet(seed: number) {
  const c = new TestCluster(3, seed);
  c.startAll();
  c.runUntil(() => c.leaders().length === 1);
  const leader = c.leaders()[0] as number;
  const victim = c.members.find((m) => m.id !== leader)!.id;
  return { c, leader, victim };
}

describe('a member whose whole state was rolled back or deleted, counter included', () => {
  for (const how of ['rolled back', 'deleted'] as const) {
    it(`catches up from the current leader without a leader change (state ${how})`, () => {
      const { c, leader, victim } = fleet(how === 'deleted' ? 71 : 73);
      for (let u = 0; u < 5; u++) expect(c.propose(leader, reg(u)).ok).toBe(true);
      c.run(200);
      const old = { disk: c.member(victim).disk, counter: c.member(victim).counter.read() };
      for (let u = 5; u < 40; u++) expect(c.propose(leader, reg(u)).ok).toBe(true);
      c.run(200);
      const term = c.status(leader).term;
      expect(c.status(leader).snapshotIndex).toBeGreaterThan(5); // compacted past the old copy: a snapshot is needed
      c.crash(victim);
      if (how === 'deleted') {
        c.member(victim).disk = EMPTY_IMAGE;
        c.member(victim).counter = new MemoryCounter();
      } else {
        c.member(victim).disk = old.disk;
        c.member(victim).counter = new MemoryCounter(old.counter);
      }
      c.start(victim);
      // Undetectable here: it boots as a voter, behind.
      expect(c.status(victim).learner).toBe(false);
      expect(c.status(victim).commitIndex).toBeLessThan(c.status(leader).commitIndex);
      const target = c.status(leader).commitIndex;
      // The first AppendEntries (which it rejects) tells it how far behind it is.
      expect(c.runUntil(() => c.status(victim).leaderCommit > 0, 1000)).toBe(true);
      expect(c.status(victim).leaderCommit).toBeGreaterThanOrEqual(target);
      expect(c.status(victim).lastApplied).toBeLessThan(target);
      // The leader backs off to where the member's log really ends and sends it the snapshot.
      expect(c.runUntil(() => c.status(victim).lastApplied >= target, 1000)).toBe(true);
      expect(c.member(victim).node!.stats.snapshotsInstalled).toBe(1);
      expect(c.leaders()).toEqual([leader]);
      expect(c.status(leader).term).toBe(term);
      expect(c.member(victim).sm.snapshot()).toEqual(c.member(leader).sm.snapshot());
      // And it keeps up afterwards.
      expect(c.propose(leader, reg(99)).ok).toBe(true);
      c.run(200);
      expect(c.member(victim).sm.records.has(99)).toBe(true);
    });
  }
});
