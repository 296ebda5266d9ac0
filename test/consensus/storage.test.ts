import { describe, expect, it } from 'vitest';
import { PeerAuth, identityFromSeed } from '../../src/trusted/consensus/auth.js';
import { MemoryCounter } from '../../src/trusted/consensus/counter.js';
import { MsgType, encodeBody } from '../../src/trusted/consensus/messages.js';
import { RaftNode } from '../../src/trusted/consensus/node.js';
import { EMPTY_BOOT, peekFrame, peekHardState, sealFrame } from '../../src/trusted/consensus/sealed-state.js';
import type { PersistRecord } from '../../src/trusted/consensus/sealed-state.js';
import { EntryKind } from '../../src/trusted/consensus/types.js';
import type { LogEntry, NodeOutput } from '../../src/trusted/consensus/types.js';
import type { DiskImage, LogRecord } from '../../src/sim/disk.js';
import { EscrowOp, EscrowStateMachine, encodeCommand } from '../../src/sim/escrow-model.js';
import { Prng } from '../../src/sim/prng.js';
import { TestCluster } from './harness.js';

const reg = (user: number) => encodeCommand({ op: EscrowOp.Register, user, limit: 3 });

function persists(outputs: readonly NodeOutput[]): PersistRecord[] {
  return outputs.flatMap((o) => (o.type === 'persist' ? [o.record] : []));
}

describe('incremental persistence', () => {
  it('a persist carries only new frames and the small hard state; snapshots only on compaction', () => {
    const c = new TestCluster(3, 71, { snapshotThreshold: 16 });
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    for (let u = 0; u < 40; u++) expect(c.propose(leader, reg(u)).ok).toBe(true);
    c.run(200);
    for (const m of c.members) {
      const recs = persists(m.outputs);
      const frames = recs.flatMap((r) => r.frames.map((f) => peekFrame(f).index));
      // Every index is written once (no conflicts in a healthy run), in order.
      expect(frames).toEqual([...new Set(frames)].sort((a, b) => a - b));
      expect(Math.max(...recs.map((r) => r.hardState.length))).toBeLessThan(160);
      const snaps = recs.filter((r) => r.snapshot !== null);
      expect(snaps.length).toBeGreaterThanOrEqual(2);
      expect(snaps.length).toBeLessThanOrEqual(3);
      // The hard state names the latest snapshot, and the disk keeps only that one.
      const ref = peekHardState(m.disk.hardState as Uint8Array).snapshot;
      expect(ref.index).toBe(c.status(m.id).snapshotIndex);
      expect(m.disk.snapshots).toHaveLength(1);
      // Compacted frames are gone from the log file.
      for (const r of m.disk.log) if (r.kind === 'frame') expect(peekFrame(r.bytes).index).toBeGreaterThan(ref.index);
    }
  });

  it('a follower that drops a conflicting suffix records the truncation point', () => {
    const rng = new Prng(5);
    const ids = [0, 1, 2].map((id) => identityFromSeed(id, rng.bytes(32)));
    const members = new Map(ids.map((i) => [i.id, i.publicKey] as const));
    const clusterId = rng.bytes(16);
    const follower = ids[1] as ReturnType<typeof identityFromSeed>;
    const node = new RaftNode({
      identity: follower, members, clusterId, storageKey: rng.bytes(32), counter: new MemoryCounter(), rng: () => rng.u32(),
      stateMachine: new EscrowStateMachine(), boot: EMPTY_BOOT, now: 0,
    });
    const leaderAuth = new PeerAuth(ids[0] as ReturnType<typeof identityFromSeed>, members, clusterId);
    const entry = (term: number, user: number): LogEntry => ({ term, kind: EntryKind.Data, origin: 0, incarnation: 1, requestId: user, data: reg(user) });
    const append = (term: number, prevIndex: number, prevTerm: number, entries: LogEntry[]) => leaderAuth.seal(1, encodeBody({
      t: MsgType.Append, term, prevIndex, prevTerm, commit: 0, leaderLast: prevIndex + entries.length, readSeq: 0, entries,
    }));
    const confirm = (out: NodeOutput[]) => {
      const p = out.find((o) => o.type === 'persist');
      return p && p.type === 'persist' ? { rec: p.record, out: node.step({ type: 'persisted', token: p.token }) } : null;
    };
    const first = confirm(node.step({ type: 'receive', bytes: append(1, 0, 0, [entry(1, 1), entry(1, 2), entry(1, 3)]) }));
    expect(first?.rec.truncateFrom).toBeNull();
    expect(first?.rec.frames.map((f) => peekFrame(f))).toEqual([
      { member: 1, index: 1, term: 1, prevTerm: 0 }, { member: 1, index: 2, term: 1, prevTerm: 1 }, { member: 1, index: 3, term: 1, prevTerm: 1 },
    ]);
    // The acknowledgement was withheld until the write was confirmed.
    expect(first?.out.some((o) => o.type === 'send')).toBe(true);
    const second = confirm(node.step({ type: 'receive', bytes: append(2, 1, 1, [entry(2, 7)]) }));
    expect(second?.rec.truncateFrom).toBe(2);
    expect(second?.rec.frames.map((f) => peekFrame(f))).toEqual([{ member: 1, index: 2, term: 2, prevTerm: 1 }]);
    expect(node.status().lastIndex).toBe(2);
  });
});

describe('log frames on disk', () => {
  function setup(seed: number) {
    const c = new TestCluster(3, seed);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    for (let u = 0; u < 8; u++) expect(c.propose(leader, reg(u)).ok).toBe(true);
    c.run(200);
    const victim = c.members.find((m) => m.id !== leader)?.id as number;
    return { c, victim };
  }

  function reboot(c: TestCluster, id: number, disk: DiskImage): { learner: boolean; note: string } {
    c.crash(id);
    c.member(id).disk = disk;
    c.start(id);
    const s = c.status(id);
    return { learner: s.learner, note: s.bootNote };
  }

  const frames = (d: DiskImage) => d.log.filter((r): r is Extract<LogRecord, { kind: 'frame' }> => r.kind === 'frame');

  it('frame order and extra genuine frames do not matter', () => {
    const { c, victim } = setup(73);
    const d = c.member(victim).disk;
    const old = c.member(victim).diskHistory[2] as DiskImage;
    const shuffled: DiskImage = { ...d, log: [...frames(d)].reverse().concat(frames(old)) };
    expect(reboot(c, victim, shuffled)).toEqual({ learner: false, note: 'resumed' });
  });

  it('a missing frame, a frame relabelled to another index, or another member\'s frame makes a learner', () => {
    const { c, victim } = setup(79);
    const d = c.member(victim).disk;
    const fs = frames(d);
    const dropped: DiskImage = { ...d, log: fs.filter((_, i) => i !== 3) };
    expect(reboot(c, victim, dropped)).toMatchObject({ learner: true, note: expect.stringMatching(/missing/) });

    const { c: c2, victim: v2 } = setup(79);
    const d2 = c2.member(v2).disk;
    const fs2 = frames(d2);
    const moved = (fs2[fs2.length - 2] as { bytes: Uint8Array }).bytes.slice();
    // Relabel the second-to-last frame as the last one (index + 1): the header is authenticated.
    const h = peekFrame(moved);
    new DataView(moved.buffer).setUint32(10, h.index + 1);
    const last = peekFrame((fs2[fs2.length - 1] as { bytes: Uint8Array }).bytes);
    new DataView(moved.buffer).setUint32(18, last.term);
    const relabelled: DiskImage = { ...d2, log: [...fs2.slice(0, -1), { kind: 'frame', bytes: moved }] };
    expect(reboot(c2, v2, relabelled)).toMatchObject({ learner: true, note: expect.stringMatching(/log frame rejected/) });

    const { c: c3, victim: v3 } = setup(83);
    const other = c3.members.find((m) => m.id !== v3) as (typeof c3.members)[number];
    expect(reboot(c3, v3, { ...c3.member(v3).disk, log: other.disk.log })).toMatchObject({
      learner: true, note: expect.stringMatching(/another member/),
    });
  });

  it('frames beyond the head (appends that landed without their hard state) are ignored', () => {
    const { c, victim } = setup(89);
    const m = c.member(victim);
    const s = c.status(victim);
    const extra = sealFrame(m.storageKey, victim, s.lastIndex + 1, 1, new Uint8Array(12).fill(9), {
      term: 1, kind: EntryKind.Data, origin: victim, incarnation: 1, requestId: 1, data: reg(99),
    });
    const disk: DiskImage = { ...m.disk, log: [...m.disk.log, { kind: 'frame', bytes: extra }] };
    expect(reboot(c, victim, disk)).toEqual({ learner: false, note: 'resumed' });
    expect(c.status(victim).lastIndex).toBe(s.lastIndex);
  });
});
