import { describe, expect, it } from 'vitest';
import { EscrowOp, EscrowStatus, encodeCommand } from '../../src/sim/escrow-model.js';
import { PeerAuth } from '../../src/trusted/consensus/auth.js';
import { MsgType, decodeBody, encodeBody, type AppendMsg } from '../../src/trusted/consensus/messages.js';
import { TestCluster } from './harness.js';

const reg = (user: number, limit = 3) => encodeCommand({ op: EscrowOp.Register, user, limit });
const attempt = (user: number) => encodeCommand({ op: EscrowOp.Attempt, user, limit: 0 });

describe('leader election', () => {
  it('elects exactly one leader and keeps it while the network is healthy', () => {
    const c = new TestCluster(5, 7);
    c.startAll();
    expect(c.runUntil(() => c.leaders().length === 1)).toBe(true);
    const leader = c.leaders()[0] as number;
    const term = c.status(leader).term;
    c.run(3000);
    expect(c.leaders()).toEqual([leader]);
    expect(c.status(leader).term).toBe(term);
    for (const m of c.members) expect(c.status(m.id).leaderId).toBe(leader);
  });

  it('elects a new leader when the old one crashes, and the rejoining old leader does not disrupt it', () => {
    const c = new TestCluster(3, 3);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const old = c.leaders()[0] as number;
    c.crash(old);
    expect(c.runUntil(() => c.leaders().length === 1 && !c.leaders().includes(old))).toBe(true);
    const next = c.leaders()[0] as number;
    const term = c.status(next).term;
    c.start(old);
    c.run(2000);
    expect(c.leaders()).toEqual([next]);
    expect(c.status(next).term).toBe(term);
  });

  it('a preferred leader wins the first election, and the next one after a crash once it is back; without one, leaders vary', () => {
    const firstLeaders = new Set<number>();
    for (let seed = 1; seed <= 12; seed++) {
      const preferred = seed % 5;
      const c = new TestCluster(5, seed, { preferredLeader: preferred });
      c.startAll();
      expect(c.runUntil(() => c.leaders().length === 1)).toBe(true);
      expect(c.leaders()).toEqual([preferred]);
      // It leads only while it is up: a crash hands leadership to another member (safety never waits for it).
      c.crash(preferred);
      expect(c.runUntil(() => c.leaders().length === 1 && !c.leaders().includes(preferred))).toBe(true);
      const other = c.leaders()[0] as number;
      const term = c.status(other).term;
      c.start(preferred);
      // Back and caught up, it gets leadership handed over (TimeoutNow): one election, no pre-vote storm.
      expect(c.runUntil(() => c.leaders().length === 1 && c.leaders()[0] === preferred)).toBe(true);
      expect(c.status(preferred).term).toBe(term + 1);
      expect(c.member(other).node!.stats.handOvers).toBe(1);
      c.run(3000);
      expect(c.leaders()).toEqual([preferred]);
      expect(c.status(preferred).term).toBe(term + 1);

      const plain = new TestCluster(5, seed);
      plain.startAll();
      plain.runUntil(() => plain.leaders().length === 1);
      firstLeaders.add(plain.leaders()[0] as number);
    }
    expect(firstLeaders.size).toBeGreaterThan(1); // the preference, not the seeds, put the leaders above
  });

  it('a hand-over commits nothing twice and loses nothing: proposals before and after it all apply once, in order', () => {
    const c = new TestCluster(5, 21, { preferredLeader: 0 });
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    c.crash(0);
    c.runUntil(() => c.leaders().length === 1 && c.leaders()[0] !== 0);
    const first = c.leaders()[0] as number;
    for (let u = 1; u <= 5; u++) expect(c.propose(first, reg(u)).ok).toBe(true);
    c.start(0);
    expect(c.runUntil(() => c.leaders().length === 1 && c.leaders()[0] === 0)).toBe(true);
    for (let u = 6; u <= 10; u++) expect(c.propose(0, reg(u)).ok).toBe(true);
    c.run(1000);
    const applied = c.members.map((m) => Buffer.from(m.sm.snapshot()).toString('hex'));
    expect(new Set(applied).size).toBe(1);
  });

  it('TimeoutNow is obeyed only by the preferred leader, from its current leader, in that term', () => {
    const c = new TestCluster(5, 5, { preferredLeader: 2 });
    const isTimeoutNow = (bytes: Uint8Array) => {
      try {
        return decodeBody(bytes.subarray(3, bytes.length - 32)).t === MsgType.TimeoutNow;
      } catch {
        return false;
      }
    };
    c.filter = (_from, _to, bytes) => !isTimeoutNow(bytes); // the leaders' own hand-overs never arrive
    c.startAll();
    c.runUntil(() => c.leaders().length === 1 && c.leaders()[0] === 2);
    c.crash(2);
    c.runUntil(() => c.leaders().length === 1 && c.leaders()[0] !== 2);
    const leader = c.leaders()[0] as number;
    const other = [0, 1, 3, 4].find((m) => m !== leader)!;
    c.start(2);
    c.run(1500); // caught up; a hand-over would have been sent by now
    expect(c.leaders()).toEqual([leader]);
    const term = c.status(leader).term;
    const seal = (from: number, to: number, t: number) =>
      new PeerAuth(c.member(from).identity, c.publicKeys, c.clusterId).seal(to, encodeBody({ t: MsgType.TimeoutNow, term: t }));
    c.deliver(2, seal(other, 2, term)); // from a member that does not lead
    c.deliver(2, seal(leader, 2, term - 1)); // from the leader, but for an older term
    c.deliver(other, seal(leader, other, term)); // to a member that is not the preferred leader
    c.run(1000);
    expect(c.leaders()).toEqual([leader]);
    expect(c.status(leader).term).toBe(term);
    c.deliver(2, seal(leader, 2, term)); // the genuine one: it campaigns at once and wins
    expect(c.runUntil(() => c.leaders().length === 1 && c.leaders()[0] === 2, 1000)).toBe(true);
    expect(c.status(2).term).toBe(term + 1);
  });

  it('a partitioned member does not inflate terms (pre-vote) and rejoins quietly', () => {
    const c = new TestCluster(3, 11);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    const loner = c.members.find((m) => m.id !== leader)?.id as number;
    c.filter = (from, to) => from !== loner && to !== loner;
    c.run(3000);
    expect(c.status(loner).term).toBe(c.status(leader).term);
    c.filter = () => true;
    c.run(1000);
    expect(c.leaders()).toEqual([leader]);
  });
});

describe('log replication and commit', () => {
  it('commits a proposal on the leader and applies it on every member', () => {
    const c = new TestCluster(3, 5);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    const r = c.propose(leader, reg(1));
    expect(r.ok).toBe(true);
    c.run(300);
    for (const m of c.members) expect(m.sm.records.get(1)).toEqual({ limit: 3, remaining: 3 });
  });

  it('any member accepts a proposal: followers forward it to the leader and get the result', () => {
    const c = new TestCluster(5, 9);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const follower = c.members.find((m) => !c.leaders().includes(m.id))?.id as number;
    expect(c.propose(follower, reg(2, 2)).ok).toBe(true);
    const a = c.propose(follower, attempt(2));
    expect(a.ok).toBe(true);
    expect(a.result?.[0]).toBe(EscrowStatus.Granted);
  });

  it('does not commit without a majority and rejects with UNAVAILABLE on timeout', () => {
    const c = new TestCluster(3, 13);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    const before = c.status(leader).commitIndex;
    c.filter = (from, to) => from !== leader && to !== leader;
    const r = c.propose(leader, reg(3));
    expect(r.ok).toBe(false);
    expect((r.error as { code?: string }).code).toBe('UNAVAILABLE');
    // the isolated leader never committed its entry (it may have stepped down by check-quorum)
    expect(c.status(leader).commitIndex).toBe(before);
    expect(c.member(leader).sm.records.has(3)).toBe(false);
  });

  it('a new leader commits earlier-term entries only through an entry of its own term (Raft 5.4.2)', () => {
    const c = new TestCluster(3, 17);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const l1 = c.leaders()[0] as number;
    const [a, b] = c.members.filter((m) => m.id !== l1).map((m) => m.id) as [number, number];
    const t1 = c.status(l1).term;
    // Only l1 -> a gets through: `a` stores the entry, l1 never hears the acknowledgement.
    c.filter = (from, to) => from === l1 && to === a;
    c.member(l1).driver?.submit(reg(4), () => undefined);
    c.run(30);
    const eIndex = c.status(a).lastIndex;
    expect(c.status(a).commitIndex).toBeLessThan(eIndex);
    expect(c.status(l1).commitIndex).toBeLessThan(eIndex);
    c.filter = (from, to) => from !== l1 && to !== l1;
    expect(c.runUntil(() => c.leaders().some((x) => x !== l1), 5000)).toBe(true);
    // b lacks the entry, so only a can win; it commits the old entry together with its own no-op.
    expect(c.leaders().filter((x) => x !== l1)).toEqual([a]);
    c.run(300);
    const s = c.status(a);
    expect(s.term).toBeGreaterThan(t1);
    expect(s.commitIndex).toBeGreaterThanOrEqual(eIndex + 1);
    expect(c.member(b).sm.records.has(4)).toBe(true);
  });

  it('a commit gets no AppendEntries round of its own: it rides on the next append, or on a heartbeat at the next tick', () => {
    // Heartbeats far apart, so every AppendEntries in the window is one the commit path sent.
    const c = new TestCluster(5, 21, { heartbeatInterval: 5000, electionTimeoutMin: 20_000, electionTimeoutMax: 30_000 });
    c.startAll();
    expect(c.runUntil(() => c.leaders().length === 1, 60_000)).toBe(true);
    c.run(200);
    const leader = c.leaders()[0] as number;
    const peers = c.members.filter((m) => m.id !== leader).map((m) => m.id);
    const opener = new Map(peers.map((p) => [p, new PeerAuth(c.member(p).identity, c.publicKeys, c.clusterId)] as const));
    const appendsFromLeader = (from: number) =>
      c.wire.slice(from).filter((w) => w.from === leader).map((w) => decodeBody(opener.get(w.to)!.open(w.bytes).body))
        .filter((m): m is AppendMsg => m.t === MsgType.Append);

    // Ten proposals, each submitted on the leader as soon as the previous one has committed there.
    const start = c.wire.length;
    const committed: number[] = [];
    const next = (k: number): void => {
      if (k === 10) return;
      c.member(leader).driver?.submit(reg(100 + k), (err, v) => {
        expect(err).toBeNull();
        committed.push(v?.index as number);
        next(k + 1);
      });
    };
    next(0);
    expect(c.runUntil(() => committed.length === 10, 5000)).toBe(true);
    const appends = appendsFromLeader(start);
    // One AppendEntries per peer per proposal, each carrying the commit of the one before; a
    // separate commit round would double this.
    expect(appends.length).toBe(10 * peers.length);
    for (const a of appends) expect(a.entries.length).toBe(1);
    for (let k = 1; k < 10; k++) {
      const carrying = appends.filter((a) => a.entries[0] !== undefined && a.prevIndex === (committed[k] as number) - 1);
      expect(carrying.map((a) => a.commit)).toEqual(peers.map(() => committed[k - 1]));
    }
    // The last commit has not been sent yet: the followers have not applied the last entry.
    const last = committed[9] as number;
    expect(c.status(leader).commitIndex).toBe(last);
    for (const p of peers) expect(c.status(p).commitIndex).toBe(committed[8]);
    // Within one tick (10 ms here) the leader sends it in an empty append; followers apply it.
    const mark = c.wire.length;
    c.run(10 + 2 + 1);
    for (const p of peers) {
      expect(c.status(p).commitIndex).toBe(last);
      expect(c.member(p).sm.records.has(109)).toBe(true);
    }
    const notify = appendsFromLeader(mark);
    expect(notify.length).toBe(peers.length);
    for (const a of notify) expect({ entries: a.entries.length, commit: a.commit }).toEqual({ entries: 0, commit: last });
    // Nothing more until the next heartbeat.
    const quiet = c.wire.length;
    c.run(1000);
    expect(appendsFromLeader(quiet).length).toBe(0);
  });
});

describe('read index', () => {
  it('a read barrier resolves on the leader and on followers once the read index is applied', () => {
    const c = new TestCluster(3, 19);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    expect(c.propose(leader, reg(5)).ok).toBe(true);
    for (const m of c.members) {
      let idx = -1;
      m.driver?.requestRead((err, i) => { idx = err ? -2 : (i as number); });
      c.runUntil(() => idx !== -1, 2000);
      expect(idx).toBeGreaterThanOrEqual(c.status(leader).commitIndex - 0);
      expect(m.sm.records.has(5)).toBe(true);
    }
  });

  it('a deposed leader cut off from the majority never serves a read', () => {
    const c = new TestCluster(3, 23);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    c.filter = (from, to) => from !== leader && to !== leader;
    let outcome = 'pending';
    c.member(leader).driver?.requestRead((err) => { outcome = err ? 'rejected' : 'served'; });
    c.run(5000);
    expect(outcome).toBe('rejected');
  });
});
