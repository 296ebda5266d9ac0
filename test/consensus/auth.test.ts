import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuthError, PeerAuth, identityFromSeed } from '../../src/trusted/consensus/auth.js';
import { ConsensusDecodeError } from '../../src/trusted/consensus/codec.js';
import { MsgType, decodeBody, encodeBody } from '../../src/trusted/consensus/messages.js';
import { TestCluster } from './harness.js';

describe('authenticated envelopes', () => {
  it('rejects flipped bits, forged votes, reflected and misdirected messages without effect', () => {
    const c = new TestCluster(3, 31);
    c.startAll();
    c.runUntil(() => c.leaders().length === 1);
    const leader = c.leaders()[0] as number;
    const victim = c.members.find((m) => m.id !== leader)?.id as number;
    const other = c.members.find((m) => m.id !== leader && m.id !== victim)?.id as number;
    const before = c.status(victim);
    const node = c.member(victim).node;
    const dropped0 = node?.stats.droppedAuth ?? 0;

    // 1. An attacker forges a vote request with a made-up key claiming to be `other`.
    const mallory = identityFromSeed(other, new Uint8Array(32).fill(7));
    const forged = new PeerAuth(mallory, c.publicKeys, c.clusterId).seal(victim, encodeBody({ t: MsgType.Vote, term: 99, lastIndex: 999, lastTerm: 99, pre: false, transfer: false }));
    c.deliver(victim, forged);
    // 2. Flip one bit of a genuine message addressed to the victim.
    const genuine = c.wire.filter((w) => w.to === victim).at(-1)?.bytes as Uint8Array;
    for (let bit = 0; bit < 8; bit++) {
      const t = genuine.slice();
      const at = Math.floor(t.length / 2);
      t[at] = (t[at] as number) ^ (1 << bit);
      c.deliver(victim, t);
    }
    // 3. Reflect a message the victim sent back to it, and misdirect one to another member.
    const sent = c.wire.filter((w) => w.from === victim).at(-1)?.bytes as Uint8Array;
    c.deliver(victim, sent);
    const toLeader = c.wire.filter((w) => w.from === other && w.to === leader).at(-1)?.bytes as Uint8Array;
    c.deliver(victim, toLeader);
    c.run(5);
    const after = c.status(victim);
    expect(after.term).toBe(before.term);
    expect(after.leaderId).toBe(leader);
    expect((node?.stats.droppedAuth ?? 0) - dropped0).toBe(1 + 8 + 2);
    c.run(1000);
    expect(c.leaders()).toEqual([leader]);
  });

  it('a correctly authenticated but malformed body is dropped as malformed', () => {
    const c = new TestCluster(3, 37);
    c.startAll();
    c.run(50);
    const from = c.member(0);
    const auth = new PeerAuth(from.identity, c.publicKeys, c.clusterId);
    c.deliver(1, auth.seal(1, new Uint8Array([MsgType.Append, 1, 2, 3])));
    c.deliver(1, auth.seal(1, new Uint8Array([200])));
    expect(c.member(1).node?.stats.droppedMalformed).toBe(2);
  });

  it('opening throws only typed errors on arbitrary input', () => {
    const a = identityFromSeed(0, new Uint8Array(32).fill(1));
    const b = identityFromSeed(1, new Uint8Array(32).fill(2));
    const keys = new Map([[0, a.publicKey], [1, b.publicKey]]);
    const auth = new PeerAuth(b, keys, new Uint8Array(16));
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        auth.open(bytes);
      } catch (e) {
        expect(e instanceof AuthError || e instanceof ConsensusDecodeError).toBe(true);
      }
    }), { numRuns: 500 });
  });
});

describe('message codec', () => {
  it('decodes arbitrary bytes to a message or a ConsensusDecodeError, never a crash', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        decodeBody(bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(ConsensusDecodeError);
      }
    }), { numRuns: 2000 });
  });

  it('round-trips every message type and rejects trailing bytes', () => {
    const msgs = [
      { t: MsgType.Vote, term: 5, lastIndex: 9, lastTerm: 4, pre: true, transfer: false },
      { t: MsgType.Vote, term: 6, lastIndex: 9, lastTerm: 4, pre: false, transfer: true },
      { t: MsgType.TimeoutNow, term: 2 ** 33 + 1 },
      { t: MsgType.Append, term: 3, prevIndex: 2, prevTerm: 1, commit: 2, leaderLast: 4, readSeq: 7,
        entries: [{ term: 3, kind: 1, origin: 2, incarnation: 77, requestId: 8, data: new Uint8Array([1, 2]) }] },
      { t: MsgType.RejoinInfo, nonce: 2 ** 40 + 3, term: 8, voter: true },
      { t: MsgType.Forward, term: 1, incarnation: 5, items: [{ requestId: 1, data: new Uint8Array([9]) }] },
    ] as const;
    for (const m of msgs) {
      const b = encodeBody(m as never);
      expect(decodeBody(b)).toEqual(m);
      const longer = new Uint8Array(b.length + 1);
      longer.set(b);
      expect(() => decodeBody(longer)).toThrow(ConsensusDecodeError);
    }
  });
});
