/**
 * The arithmetic of the replication-group benchmark (bench/groups.bench.ts) and of the capacity
 * model in BENCHMARKS.md ("Replication groups: 1 vs 3 groups, and capacity"), kept apart from the
 * measurement so that it can be tested: splitting each member's CPU into a leader and a follower
 * cost per recovery, the per-group idle cost, and the fleet size a target rate needs.
 */

/** One member process during a measured phase. */
export interface MemberSample {
  id: number;
  /** CPU milliseconds the process used during the phase, above its idle cost for that time. */
  busyMs: number;
  /** Recoveries served by the groups this member leads (their leaders' core counters). */
  led: number;
  /** Recoveries served by the groups this member follows. */
  followed: number;
}

export interface LeaderFollowerSplit {
  /** Follower CPU ms per recovery of a group it follows. */
  followerMs: number;
  /** How followerMs was found: from members that lead no group, or a least-squares fit over all. */
  followerFrom: 'pure-followers' | 'least-squares';
  /** Per leading member: its CPU ms per recovery of the group(s) it leads, its follower share removed. */
  leaders: Array<{ id: number; leaderMs: number; led: number }>;
  /** Leader CPU ms per recovery over all leaders (their led recoveries as weights). */
  leaderMs: number;
}

/**
 * Splits members' CPU into a leader cost L and a follower cost F per recovery, from the model
 * `busy_m = led_m·L + followed_m·F`. F comes from the members that lead no group (their busy CPU
 * over the recoveries they followed) when there are any; otherwise from a two-unknown least-squares
 * fit over all members. Each leader's L is then `(busy − followed·F) / led`.
 */
export function splitLeaderFollower(samples: MemberSample[]): LeaderFollowerSplit {
  const pure = samples.filter((s) => s.led === 0 && s.followed > 0);
  let followerMs: number;
  let followerFrom: LeaderFollowerSplit['followerFrom'];
  if (pure.length > 0) {
    followerMs = pure.reduce((a, s) => a + s.busyMs, 0) / pure.reduce((a, s) => a + s.followed, 0);
    followerFrom = 'pure-followers';
  } else {
    const { f } = leastSquares(samples);
    followerMs = f;
    followerFrom = 'least-squares';
  }
  const leaders = samples.filter((s) => s.led > 0).map((s) => ({ id: s.id, led: s.led, leaderMs: (s.busyMs - s.followed * followerMs) / s.led }));
  const totalLed = leaders.reduce((a, l) => a + l.led, 0);
  const leaderMs = totalLed > 0 ? leaders.reduce((a, l) => a + l.leaderMs * l.led, 0) / totalLed : NaN;
  return { followerMs, followerFrom, leaders, leaderMs };
}

/** Least squares for busy = led·l + followed·f (no intercept): the 2×2 normal equations. */
export function leastSquares(samples: MemberSample[]): { l: number; f: number } {
  let aa = 0, ab = 0, bb = 0, ay = 0, by = 0;
  for (const s of samples) {
    aa += s.led * s.led;
    ab += s.led * s.followed;
    bb += s.followed * s.followed;
    ay += s.led * s.busyMs;
    by += s.followed * s.busyMs;
  }
  const det = aa * bb - ab * ab;
  if (Math.abs(det) < 1e-9) return { l: NaN, f: NaN };
  return { l: (ay * bb - by * ab) / det, f: (aa * by - ab * ay) / det };
}

/**
 * An idle member's CPU (ms per second) as a fixed part plus a part per group it serves, from the
 * mean idle cost of a member measured with g1 and with g2 groups: the line through the two points.
 */
export function idlePerGroup(g1: number, idle1: number, g2: number, idle2: number): { baseMs: number; perGroupMs: number } {
  if (g1 === g2) throw new Error('two different group counts are needed');
  const perGroupMs = (idle2 - idle1) / (g2 - g1);
  return { baseMs: idle1 - perGroupMs * g1, perGroupMs };
}

/** The measured costs and the deployment a capacity plan assumes. */
export interface CapacityInputs {
  /** Leader CPU ms per recovery of its group. */
  leaderMs: number;
  /** Follower CPU ms per recovery of a group it follows. */
  followerMs: number;
  /** Idle CPU ms per second of each group replica a member serves (heartbeats, ticks). */
  idlePerReplicaMs: number;
  /** Idle CPU ms per second of a member process whatever its groups (paid once per process). */
  idlePerMemberMs: number;
  /** Gateway CPU ms per recovery (the gateways run on machines of their own). */
  gatewayMs: number;
  /** Replicas of each group (members per group), e.g. 5. */
  replicas: number;
  /** Cores of each member's machine. */
  cores: number;
  /** Share of each core a plan may use (headroom for bursts and failover), e.g. 0.5. */
  utilisation: number;
  /**
   * 'process-per-group': a member runs one process (event loop) per group replica it serves, so
   * it can use min(cores, replicas on it) cores and no replica more than one core.
   * 'one-process': a member is one event loop for all its groups (today's member process), about
   * one core whatever the machine has.
   */
  layout: 'process-per-group' | 'one-process';
  /** Most groups a fleet may run (64 in the fleet format today); the search stops there. */
  maxGroups: number;
}

export interface CapacityPlan {
  members: number;
  groups: number;
  /** Groups the busiest member leads and replicas it holds. */
  leads: number;
  holds: number;
  /** CPU ms per second of the busiest member, and the most it may use. */
  memberMs: number;
  budgetMs: number;
  /** CPU ms per second of the busiest replica (a leader), and its limit (one core at the utilisation). */
  replicaMs: number;
  /** Cores the gateways need at the utilisation. */
  gatewayCores: number;
}

/** The load of the busiest member of a fleet of `members` members and `groups` groups at `rate` recoveries/s. */
export function memberLoad(inp: CapacityInputs, rate: number, members: number, groups: number): Omit<CapacityPlan, 'gatewayCores'> {
  const r = Math.min(inp.replicas, members);
  // Replicas spread evenly: the busiest member leads ⌈G/M⌉ groups and holds ⌈R·G/M⌉ replicas.
  const leads = Math.ceil(groups / members);
  const holds = Math.max(leads, Math.ceil((r * groups) / members));
  const perGroup = rate / groups;
  // Idle: one process's fixed cost, plus each replica's; with a process per replica, each pays the fixed cost too.
  const processes = inp.layout === 'one-process' ? 1 : holds;
  const idleMs = processes * inp.idlePerMemberMs + holds * inp.idlePerReplicaMs;
  const memberMs = idleMs + perGroup * (leads * inp.leaderMs + (holds - leads) * inp.followerMs);
  const usable = inp.layout === 'one-process' ? 1 : Math.min(inp.cores, holds);
  const budgetMs = inp.utilisation * 1000 * usable;
  // One event loop: a leader replica alone may use one core; in one process, all the member's replicas share it.
  const replicaMs = inp.layout === 'one-process' ? memberMs : inp.idlePerMemberMs + inp.idlePerReplicaMs + perGroup * inp.leaderMs;
  return { members, groups, leads, holds, memberMs, budgetMs, replicaMs };
}

/**
 * The smallest fleet (fewest members, then fewest groups) that serves `rate` recoveries/s within
 * the budget: every member within `utilisation` of the cores it can use, every replica within
 * `utilisation` of one core. Null when none up to `maxMembers` and `maxGroups` does.
 */
export function capacityPlan(inp: CapacityInputs, rate: number, maxMembers = 10_000): CapacityPlan | null {
  const replicaLimit = inp.utilisation * 1000;
  for (let m = inp.replicas; m <= maxMembers; m++) {
    for (let g = 1; g <= inp.maxGroups; g++) {
      const l = memberLoad(inp, rate, m, g);
      if (l.memberMs <= l.budgetMs && l.replicaMs <= replicaLimit) {
        return { ...l, gatewayCores: (rate * inp.gatewayMs) / (inp.utilisation * 1000) };
      }
    }
  }
  return null;
}

/**
 * A cost per recovery as a part per recovery plus a part per log entry (command batch), from two
 * measurements at different batch sizes: `y = perRecovery + perEntry·e`, with `e` the log entries
 * committed per recovery (2 / commands per batch: a recovery is two commands). The line through
 * the two points; `at(e)` gives the cost at another batch size.
 */
export function perEntryFit(e1: number, y1: number, e2: number, y2: number): { perRecovery: number; perEntry: number; at(e: number): number } {
  if (Math.abs(e1 - e2) < 1e-9) throw new Error('two different batch sizes are needed');
  const perEntry = (y1 - y2) / (e1 - e2);
  const perRecovery = y1 - perEntry * e1;
  return { perRecovery, perEntry, at: (e) => perRecovery + perEntry * e };
}
