import { describe, expect, it } from 'vitest';
import { capacityPlan, idlePerGroup, leastSquares, memberLoad, perEntryFit, splitLeaderFollower, type CapacityInputs, type MemberSample } from '../../bench/lib/group-costs.js';

/** Members' busy CPU made from known costs: member i leads the groups in `leads[i]`, follows the others. */
function synthetic(L: number, F: number, perGroup: number[], leads: number[][], noise: number[] = []): MemberSample[] {
  const total = perGroup.reduce((a, b) => a + b, 0);
  return leads.map((gs, i) => {
    const led = gs.reduce((a, g) => a + perGroup[g]!, 0);
    const followed = total - led;
    return { id: i + 1, led, followed, busyMs: led * L + followed * F + (noise[i] ?? 0) };
  });
}

describe('splitLeaderFollower', () => {
  it('one group: the leader alone carries L, the four followers give F', () => {
    const s = splitLeaderFollower(synthetic(9, 2.5, [900], [[0], [], [], [], []]));
    expect(s.followerFrom).toBe('pure-followers');
    expect(s.followerMs).toBeCloseTo(2.5, 9);
    expect(s.leaders).toEqual([{ id: 1, led: 900, leaderMs: expect.closeTo(9, 9) }]);
    expect(s.leaderMs).toBeCloseTo(9, 9);
  });

  it('three groups on five members: F from the two members that lead none, each leader its follower share removed', () => {
    const s = splitLeaderFollower(synthetic(8, 3, [310, 280, 310], [[0], [1], [2], [], []]));
    expect(s.followerFrom).toBe('pure-followers');
    expect(s.followerMs).toBeCloseTo(3, 9);
    expect(s.leaders.map((l) => [l.id, l.led])).toEqual([[1, 310], [2, 280], [3, 310]]);
    for (const l of s.leaders) expect(l.leaderMs).toBeCloseTo(8, 9);
    expect(s.leaderMs).toBeCloseTo(8, 9);
  });

  it('a member leading two groups is one leader with both groups’ recoveries', () => {
    const s = splitLeaderFollower(synthetic(8, 3, [300, 300, 300], [[0, 1], [], [2], [], []]));
    expect(s.leaders.find((l) => l.id === 1)).toMatchObject({ led: 600, leaderMs: expect.closeTo(8, 9) });
  });

  it('every member leads a group: F and L from the least-squares fit', () => {
    const s = splitLeaderFollower(synthetic(7, 2, [100, 200, 300, 400, 500], [[0], [1], [2], [3], [4]]));
    expect(s.followerFrom).toBe('least-squares');
    expect(s.followerMs).toBeCloseTo(2, 6);
    expect(s.leaderMs).toBeCloseTo(7, 6);
  });

  it('noise on one follower moves F by its share only', () => {
    const s = splitLeaderFollower(synthetic(8, 3, [300, 300, 300], [[0], [1], [2], [], []], [0, 0, 0, 90, 0]));
    // 90 ms over 1800 followed recoveries (two pure followers, 900 each).
    expect(s.followerMs).toBeCloseTo(3 + 90 / 1800, 9);
  });
});

describe('leastSquares', () => {
  it('recovers exact coefficients and reports a singular system as NaN', () => {
    expect(leastSquares(synthetic(5, 1, [10, 20], [[0], [1], []]))).toEqual({ l: expect.closeTo(5, 9), f: expect.closeTo(1, 9) });
    // Every member led and followed in the same proportion: L and F cannot be told apart.
    const same = [1, 2, 3].map((id) => ({ id, led: 10, followed: 20, busyMs: 50 }));
    expect(leastSquares(same).l).toBeNaN();
  });
});

describe('idlePerGroup', () => {
  it('is the line through the two measurements', () => {
    expect(idlePerGroup(1, 20, 3, 30)).toEqual({ baseMs: 15, perGroupMs: 5 });
    expect(() => idlePerGroup(3, 1, 3, 2)).toThrow();
  });
});

const base: CapacityInputs = {
  leaderMs: 10,
  followerMs: 2,
  idlePerReplicaMs: 5,
  idlePerMemberMs: 10,
  gatewayMs: 2,
  replicas: 5,
  cores: 8,
  utilisation: 0.5,
  layout: 'process-per-group',
  maxGroups: 4096,
};

describe('memberLoad', () => {
  it('one group on five members: the leader holds one replica and carries every recovery', () => {
    const l = memberLoad(base, 40, 5, 1);
    expect(l).toMatchObject({ leads: 1, holds: 1, budgetMs: 500 });
    expect(l.memberMs).toBeCloseTo(10 + 5 + 40 * 10, 9);
    expect(l.replicaMs).toBeCloseTo(10 + 5 + 40 * 10, 9);
  });

  it('five groups on five members: each member leads one and follows four', () => {
    const l = memberLoad(base, 500, 5, 5);
    expect(l).toMatchObject({ leads: 1, holds: 5, budgetMs: 2500 });
    // 100/s per group: 100·10 as leader + 4·100·2 as follower + idle of five processes, one per replica.
    expect(l.memberMs).toBeCloseTo(5 * 10 + 25 + 1000 + 800, 9);
  });

  it('one process: the budget is one core whatever the machine, and the fixed idle cost is paid once', () => {
    const l = memberLoad({ ...base, layout: 'one-process' }, 500, 5, 5);
    expect(l.budgetMs).toBe(500);
    expect(l.memberMs).toBeCloseTo(10 + 25 + 1000 + 800, 9);
    expect(l.replicaMs).toBe(l.memberMs);
  });
});

describe('capacityPlan', () => {
  it('finds the smallest fleet whose busiest member and busiest replica fit the budget', () => {
    const rate = 1000;
    const p = capacityPlan(base, rate)!;
    expect(p).not.toBeNull();
    const check = memberLoad(base, rate, p.members, p.groups);
    expect(check.memberMs).toBeLessThanOrEqual(check.budgetMs);
    expect(check.replicaMs).toBeLessThanOrEqual(500);
    // No fleet with fewer members fits, whatever its groups.
    for (let m = base.replicas; m < p.members; m++) {
      for (let g = 1; g <= 200; g++) {
        const l = memberLoad(base, rate, m, g);
        expect(l.memberMs <= l.budgetMs && l.replicaMs <= 500).toBe(false);
      }
    }
    // Nor one with as many members and fewer groups.
    for (let g = 1; g < p.groups; g++) {
      const l = memberLoad(base, rate, p.members, g);
      expect(l.memberMs <= l.budgetMs && l.replicaMs <= 500).toBe(false);
    }
    expect(p.gatewayCores).toBeCloseTo((1000 * 2) / 500, 9);
  });

  it('needs at least as many members for ten times the rate, and more cores per machine never need more members', () => {
    const p1 = capacityPlan(base, 1000)!;
    const p10 = capacityPlan(base, 10_000)!;
    expect(p10.members).toBeGreaterThanOrEqual(p1.members);
    const big = capacityPlan({ ...base, cores: 32 }, 10_000)!;
    expect(big.members).toBeLessThanOrEqual(p10.members);
  });

  it('returns null when no fleet within the limits serves the rate', () => {
    expect(capacityPlan({ ...base, maxGroups: 1 }, 1000, 50)).toBeNull();
  });
});

describe('perEntryFit', () => {
  it('separates the per-recovery and the per-batch cost and predicts another batch size', () => {
    // 3 ms per recovery plus 4 ms per log entry: 5 commands per batch (0.4 entries per recovery) and 2 (1.0).
    const fit = perEntryFit(0.4, 3 + 4 * 0.4, 1.0, 3 + 4 * 1.0);
    expect(fit.perRecovery).toBeCloseTo(3, 9);
    expect(fit.perEntry).toBeCloseTo(4, 9);
    expect(fit.at(2)).toBeCloseTo(11, 9);
    expect(() => perEntryFit(1, 2, 1, 3)).toThrow();
  });
});
