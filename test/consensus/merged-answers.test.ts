import { describe, expect, it } from 'vitest';
import { TestCluster } from './harness.js';

const entry = (i: number) => new TextEncoder().encode(JSON.stringify({ op: 'set', key: `k${i}`, value: i }));

describe('append answers held back for one write are merged', () => {
  it('a follower whose disk is slower than the leader\'s appends sends one answer per write, and every entry commits everywhere', () => {
    const c = new TestCluster(3, 7);
    c.startAll();
    expect(c.runUntil(() => c.leaders().length === 1)).toBe(true);
    const leader = c.leaders()[0]!;
    c.persistMs = 15; // each write takes longer than the leader takes to send the next append
    let done = 0;
    const n = 60;
    for (let i = 0; i < n; i++) {
      c.member(leader).driver!.submit(entry(i), (err) => {
        if (!err) done++;
      });
      c.run(2);
    }
    expect(c.runUntil(() => done === n, 20_000)).toBe(true);
    const followers = c.members.filter((m) => m.id !== leader);
    const merged = followers.reduce((a, m) => a + m.node!.stats.mergedAnswers, 0);
    expect(merged).toBeGreaterThan(0);
    // Nothing lost: every member applies the same log.
    expect(c.runUntil(() => c.members.every((m) => m.node!.status().lastApplied === c.status(leader).commitIndex), 5000)).toBe(true);
    const applied = (m: (typeof c.members)[number]) => m.outputs.filter((o) => o.type === 'committed').map((o) => (o as { index: number }).index);
    for (const m of followers) expect(applied(m)).toEqual(applied(c.member(leader)));
  });
});
