import { describe, expect, it } from 'vitest';
import { PeerAuth } from '../../src/trusted/consensus/auth.js';
import { MsgType, decodeBody, encodeBody } from '../../src/trusted/consensus/messages.js';
import { openHardState } from '../../src/trusted/consensus/sealed-state.js';
import { EscrowOp, encodeCommand } from '../../src/sim/escrow-model.js';
import { TestCluster } from './harness.js';

const reg = (user: number) => encodeCommand({ op: EscrowOp.Register, user, limit: 3 });

function setup(seed: number) {
  const c = new TestCluster(3, seed);
  c.startAll();
  c.runUntil(() => c.leaders().length === 1);
  const leader = c.leaders()[0] as number;
  const victim = c.members.find((m) => m.id !== leader)?.id as number;
  const candidate = c.members.find((m) => m.id !== leader && m.id !== victim)?.id as number;
  return { c, leader, victim, candidate };
}

describe('rollback defence', () => {
  it('a member booted from a rolled-back state is a learner that refuses to vote', () => {
    const { c, leader, victim, candidate } = setup(41);
    expect(c.propose(leader, reg(1)).ok).toBe(true);
    const old = c.member(victim).disk;
    for (let u = 2; u < 6; u++) expect(c.propose(leader, reg(u)).ok).toBe(true);
    c.run(200);
    c.crash(victim);
    c.member(victim).disk = old; // the host restores an older, genuinely sealed file
    c.filter = () => false; // keep it isolated so it cannot catch up yet
    c.start(victim);
    const s = c.status(victim);
    expect(s.learner).toBe(true);
    expect(s.bootNote).toMatch(/rollback detected/);
    // A genuine candidate asks for its vote in a fresh term: refused.
    const auth = new PeerAuth(c.member(candidate).identity, c.publicKeys, c.clusterId);
    c.filter = (from, to) => from === victim && to === candidate;
    c.deliver(victim, auth.seal(victim, encodeBody({ t: MsgType.Vote, term: 50, lastIndex: 100, lastTerm: 49, pre: false, transfer: false })));
    c.deliver(victim, auth.seal(victim, encodeBody({ t: MsgType.Vote, term: 50, lastIndex: 100, lastTerm: 49, pre: true, transfer: false })));
    c.run(20);
    const replies = c.wire.filter((w) => w.from === victim && w.to === candidate).map((w) => decodeBody(auth.open(w.bytes).body));
    const votes = replies.filter((m) => m.t === MsgType.VoteResp);
    expect(votes.length).toBeGreaterThanOrEqual(2);
    for (const v of votes) expect(v.t === MsgType.VoteResp && v.granted).toBe(false);
    // It never campaigns on its own either.
    c.run(2000);
    expect(c.status(victim).role).toBe('follower');
  });

  it('the learner catches up from the majority, then votes again (but never in a term it may have used)', () => {
    const { c, leader, victim } = setup(43);
    const old = c.member(victim).disk;
    for (let u = 1; u < 30; u++) expect(c.propose(leader, reg(u)).ok).toBe(true);
    c.crash(victim);
    c.member(victim).disk = old;
    c.start(victim);
    expect(c.status(victim).learner).toBe(true);
    expect(c.runUntil(() => !c.status(victim).learner, 5000)).toBe(true);
    expect(c.status(victim).bootNote).toMatch(/rejoined as voter/);
    c.run(300);
    expect(c.member(victim).sm.snapshot()).toEqual(c.member(leader).sm.snapshot());
    expect(c.member(victim).sm.records.size).toBe(29);
  });

  it('a host that confirms a write it did not keep is caught on the next boot', () => {
    const { c, leader, victim } = setup(47);
    expect(c.propose(leader, reg(1)).ok).toBe(true);
    const before = c.member(victim).disk;
    expect(c.propose(leader, reg(2)).ok).toBe(true);
    c.run(100);
    // Pretend the latest write never reached the disk although it was confirmed.
    c.crash(victim);
    c.member(victim).disk = before;
    c.start(victim);
    expect(c.status(victim).learner).toBe(true);
  });

  it('tampered or foreign sealed state is refused', () => {
    const { c, victim, leader } = setup(53);
    c.run(100);
    const good = c.member(victim).disk.hardState as Uint8Array;
    expect(openHardState(c.member(victim).storageKey, victim, good).stamp).toBe(c.member(victim).counter.read());
    const bad = good.slice();
    bad[bad.length - 3] = (bad[bad.length - 3] as number) ^ 1;
    expect(() => openHardState(c.member(victim).storageKey, victim, bad)).toThrow(/sealed hard state rejected/);
    expect(() => openHardState(c.member(victim).storageKey, leader, good)).toThrow(/another member/);
    c.crash(victim);
    c.member(victim).disk = { ...c.member(victim).disk, hardState: bad };
    c.start(victim);
    expect(c.status(victim).learner).toBe(true);
  });
});

describe('snapshots', () => {
  it('an empty member catches up by InstallSnapshot after the log was compacted', () => {
    const c = new TestCluster(3, 59);
    c.start(0);
    c.start(1);
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    for (let u = 0; u < 40; u++) expect(c.propose(leader, reg(u)).ok).toBe(true);
    expect(c.status(leader).snapshotIndex).toBeGreaterThan(0);
    c.start(2); // never ran: empty disk, counter 0
    expect(c.status(2).learner).toBe(false);
    expect(c.runUntil(() => c.status(2).lastApplied === c.status(leader).commitIndex, 3000)).toBe(true);
    expect(c.member(2).node?.stats.snapshotsInstalled).toBeGreaterThan(0);
    expect(c.member(2).sm.snapshot()).toEqual(c.member(leader).sm.snapshot());
    // and it keeps up afterwards
    expect(c.propose(2, reg(99)).ok).toBe(true);
    c.run(200);
    expect(c.member(2).sm.records.has(99)).toBe(true);
  });

  it('a member restarts from its own sealed snapshot and log', () => {
    const c = new TestCluster(3, 61);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    for (let u = 0; u < 25; u++) expect(c.propose(leader, reg(u)).ok).toBe(true);
    c.run(200);
    const id = c.members.find((m) => m.id !== leader)?.id as number;
    c.crash(id);
    c.start(id);
    expect(c.status(id).learner).toBe(false);
    expect(c.status(id).bootNote).toBe('resumed');
    c.run(500);
    expect(c.member(id).sm.records.size).toBe(25);
  });
});
