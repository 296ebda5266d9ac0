/**
 * The gateway's relay in fleet mode: sends each sealed request to a member over one persistent
 * relay stream per member (relay-stream.ts; `POST /v1/vault` over keep-alive HTTP for a member that
 * refuses the stream), to the member it believes leads (only the leader runs vault commands: followers
 * answer 503 `not-leader` with the leader's id in `x-bkv-leader`), and fails over to the hinted
 * leader, then to other members round-robin, on a connection error, a timeout or a 503, within a
 * bounded retry budget. A background poll of `GET /v1/status` (the believed leader and members
 * believed down every second, every member every five) keeps the health view and the leader belief fresh.
 *
 * Resending a request to another member is safe: the host may replay any request anyway, and the
 * core recognises a replayed recovery start by its attempt id.
 *
 * In a fleet of several replication groups (docs/groups.md) each group has its own leader, and only
 * a core can tell which group serves an account (record ids are keyed hashes). The relay keeps a
 * bounded cache account → group, learned from the members' answers (the group that served a
 * request, or the owner a 421 `WRONG_GROUP` names), and a leader belief per group; an account it
 * has not seen goes to the leader of a serving group chosen by a hash of the account, whose member
 * hands it to its node of the owner group if that is another. The
 * cache is only a routing hint: a wrong entry costs one more hop, never a wrong answer.
 */
import { Agent, request } from 'node:http';
import { BkvError } from '../../shared/errors.js';
import type { VaultRelay } from '../gateway/server.js';
import { memberHealth } from './health.js';
import { ACCOUNT_HEADER, GROUP_HEADER, LEADER_HEADER } from './member-process.js';
import type { MemberStatus } from './member-status.js';
import { RelayStreamClient } from './relay-stream.js';

export interface RelayMember {
  id: number;
  url: string;
}

export interface FleetRelayOptions {
  /** Attempts per request over all members (default 2 × members). */
  maxAttempts?: number;
  /** Time budget per request over all attempts (default 12 s). */
  budgetMs?: number;
  /** Time limit of one attempt at one member (default 5 s: beyond the members' 3 s proposal timeout). */
  attemptTimeoutMs?: number;
  /**
   * Period of the status poll of the believed leader and of members believed down (default 1000 ms;
   * a `not-leader` answer redirects at once in between).
   */
  pollMs?: number;
  /** Every this many periods, and while no leader is believed, every member is polled (default 5). */
  fullPollEvery?: number;
  /** Relay over one persistent stream per member (default true); false: an HTTP request each. */
  stream?: boolean;
  /** Replication groups in the fleet, spare ones included (default 1: a fleet without groups). */
  groups?: number;
  /** Accounts whose group the relay remembers (default 100,000; the oldest is forgotten first). */
  accountCache?: number;
}

export interface MemberHealth {
  id: number;
  url: string;
  healthy: boolean;
  status: MemberStatus | null;
  error?: string;
  /** Consecutive failed polls or relays. */
  failures: number;
}

export interface FleetRelay {
  relay: VaultRelay;
  members(): MemberHealth[];
  /**
   * relayed: requests answered; attempts: member calls made for all requests (attempts ÷ (relayed +
   * exhausted) is the cost of a request: 1 when the leader belief is right); notLeader: 503
   * `not-leader` answers; hinted: attempts sent to a member named by such an answer; streamed:
   * attempts made over a relay stream (the rest went over HTTP).
   */
  stats: { relayed: number; attempts: number; failovers: number; exhausted: number; notLeader: number; hinted: number; streamed: number; wrongGroup: number; moving: number; cachedRoutes: number };
  /** The member the relay currently believes leads group `group` (default 0), if any. */
  leader(group?: number): number | null;
  /** The group the relay believes serves `account`, if it learned one. */
  groupOf(account: string): number | null;
  /** Requests answered, by the group that served them (index: group; one entry without groups). */
  servedByGroup: number[];
  /** Accounts in the account → group cache. */
  cachedAccounts(): number;
  /** Polls every member once now. */
  refresh(): Promise<void>;
  close(): void;
}

interface HttpResult {
  status: number;
  body: Buffer;
  leaderHint: number | null;
  /** The group the answer names (x-bkv-group, or the relay stream's group byte). */
  group: number | null;
  retryAfter: number | null;
}


function post(agent: Agent, url: URL, headers: Record<string, string>, body: Uint8Array | null, timeoutMs: number, method = 'POST'): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host: url.hostname, port: url.port, path: url.pathname, method, headers: body ? { ...headers, 'content-length': String(body.length) } : headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const hint = Number(res.headers[LEADER_HEADER]);
        const g = res.headers[GROUP_HEADER] === undefined ? NaN : Number(res.headers[GROUP_HEADER]);
        const ra = Number(res.headers['retry-after']);
        res.on('end', () => resolve({
          status: res.statusCode ?? 0, body: Buffer.concat(chunks), leaderHint: Number.isInteger(hint) && hint > 0 ? hint : null,
          group: Number.isInteger(g) && g >= 0 ? g : null, retryAfter: Number.isFinite(ra) && ra >= 0 ? ra : null,
        }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : undefined);
  });
}

export function createFleetRelay(list: RelayMember[], opts: FleetRelayOptions = {}): FleetRelay {
  const agent = new Agent({ keepAlive: true, maxSockets: 64, keepAliveMsecs: 1000 });
  const pollAgent = new Agent({ keepAlive: true, maxSockets: 2 });
  const maxAttempts = opts.maxAttempts ?? list.length * 2;
  const budgetMs = opts.budgetMs ?? 12_000;
  const attemptTimeoutMs = opts.attemptTimeoutMs ?? 5_000;
  const health = new Map<number, MemberHealth>(list.map((m) => [m.id, { id: m.id, url: m.url, healthy: true, status: null, failures: 0 }]));
  const stats = { relayed: 0, attempts: 0, failovers: 0, exhausted: 0, notLeader: 0, hinted: 0, streamed: 0, wrongGroup: 0, moving: 0, cachedRoutes: 0 };
  const groupCount = opts.groups ?? 1;
  const multi = groupCount > 1;
  const servedByGroup = new Array<number>(groupCount).fill(0);
  const streams = new Map<number, RelayStreamClient>(
    opts.stream === false ? [] : list.map((m) => [m.id, new RelayStreamClient(new URL(m.url), multi ? 2 : 1)] as const),
  );
  /** One attempt at member `h` for `group`: over its relay stream, or HTTP if it has none. */
  async function send(h: MemberHealth, account: string, envelope: Uint8Array, timeoutMs: number, group: number | null): Promise<HttpResult> {
    const s = streams.get(h.id);
    if (s && !s.unsupported) {
      try {
        const a = await s.call(account, envelope, timeoutMs, group);
        stats.streamed++;
        return { status: a.status, body: Buffer.from(a.body.buffer, a.body.byteOffset, a.body.byteLength), leaderHint: a.leader, group: a.group ?? null, retryAfter: null };
      } catch (e) {
        if (!s.unsupported) throw e; // the member refused the upgrade: fall through to HTTP
      }
    }
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', [ACCOUNT_HEADER]: account };
    if (multi && group !== null) headers[GROUP_HEADER] = String(group);
    return post(agent, new URL('/v1/vault', h.url), headers, envelope, timeoutMs);
  }
  let rr = 0;
  /** Per group: the member believed to lead it, and the term in which it was seen leading (hints carry none: 0). */
  const leaders = new Map<number, { id: number; term: number }>();
  const believe = (g: number, id: number | null, term: number) => {
    if (id === null || !health.has(id) || g < 0 || g >= groupCount) return;
    const leader = leaders.get(g);
    if (!leader || leader.id === id || term >= leader.term) leaders.set(g, { id, term: Math.max(term, leader?.id === id ? leader.term : 0) });
  };
  /** Forgets member `id` as the leader of every group (it failed), or of `g` only. */
  const forget = (id: number, g?: number) => {
    for (const [k, l] of leaders) if (l.id === id && (g === undefined || g === k)) leaders.delete(k);
  };
  /** Per group, whether its leader last said it serves a range (an empty spare group does not). */
  const serving = new Array<boolean>(groupCount).fill(true);
  /**
   * The first group to ask for an account the relay has not seen: one of the serving groups, by a
   * hash of the account, so first contacts spread over the groups' leaders instead of all landing
   * on one (a wrong guess costs one hop: the member hands the request to the owner group).
   */
  const guess = (account: string): number => {
    const candidates = serving.flatMap((on, g) => (on ? [g] : []));
    if (candidates.length === 0) return 0;
    let h = 0x811c9dc5;
    for (let i = 0; i < account.length; i++) h = Math.imul(h ^ account.charCodeAt(i), 0x01000193);
    return candidates[(h >>> 0) % candidates.length]!;
  };
  /** account → group, oldest first (a Map keeps insertion order: a hit moves the account to the end). */
  const accounts = new Map<string, number>();
  const accountCache = opts.accountCache ?? 100_000;
  const learn = (account: string, g: number | null) => {
    if (!multi || g === null || g < 0 || g >= groupCount) return;
    accounts.delete(account);
    accounts.set(account, g);
    if (accounts.size > accountCache) accounts.delete(accounts.keys().next().value as string);
  };
  let closed = false;

  const markDown = (h: MemberHealth, error: string) => {
    h.healthy = false;
    h.failures++;
    h.error = error;
  };

  async function poll(h: MemberHealth): Promise<void> {
    try {
      const r = await post(pollAgent, new URL('/v1/status', h.url), {}, null, 400, 'GET');
      if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
      const s = JSON.parse(r.body.toString('utf8')) as MemberStatus;
      h.status = s;
      const word = memberHealth(s);
      h.healthy = word === 'ok';
      h.error = h.healthy ? undefined : word === 'catching up' && s.catchingUp ? `catching up: ${s.catchingUp}` : word;
      if (h.healthy) h.failures = 0;
      const views = s.groups ? s.groups.map((gs) => ({ g: gs.group, role: gs.role, term: gs.term, serving: gs.serving })) : [{ g: 0, role: s.role, term: s.term, serving: true }];
      for (const v of views) {
        const leader = leaders.get(v.g);
        if (v.role === 'leader' && v.g < groupCount) serving[v.g] = v.serving;
        if (v.role === 'leader') believe(v.g, h.id, v.term);
        else if (leader?.id === h.id && v.term >= leader.term) leaders.delete(v.g); // it stepped down
      }
    } catch (e) {
      forget(h.id);
      h.status = null;
      markDown(h, (e as Error).message);
    }
  }
  const refresh = async () => {
    await Promise.all([...health.values()].map(poll));
  };
  let polling = false;
  let round = 0;
  const fullEvery = opts.fullPollEvery ?? 5;
  const timer = setInterval(() => {
    if (polling || closed) return;
    polling = true;
    // Every period: the believed leader and every member believed down; every fullEvery periods
    // (or while no leader is believed) all of them. A healthy follower's status changes nothing
    // the relay does until a request fails there, and each poll is an HTTP round trip on both sides.
    const all = round++ % fullEvery === 0 || leaders.size < groupCount;
    const leading = new Set([...leaders.values()].map((l) => l.id));
    const due = [...health.values()].filter((h) => all || leading.has(h.id) || !h.healthy);
    Promise.all(due.map(poll)).finally(() => (polling = false));
  }, opts.pollMs ?? 1000);
  timer.unref();

  /** The next member to try for group `g`: its believed leader, then healthy ones round-robin, then any not yet tried. */
  function pick(tried: Set<number>, g: number): MemberHealth | null {
    const leader = leaders.get(g);
    const lead = leader ? health.get(leader.id) : undefined;
    if (lead && !tried.has(lead.id)) return lead;
    const all = [...health.values()];
    for (const healthyOnly of [true, false]) {
      for (let k = 0; k < all.length; k++) {
        const h = all[(rr + k) % all.length]!;
        if (tried.has(h.id) || (healthyOnly && !h.healthy)) continue;
        rr = (rr + k + 1) % all.length;
        return h;
      }
    }
    return null;
  }

  const relay: VaultRelay = async (account, envelope) => {
    const deadline = performance.now() + budgetMs;
    let tried = new Set<number>();
    let last = 'no member tried';
    // The group to ask: the one learned for this account, else a guess among the serving groups.
    const known = multi ? (accounts.get(account) ?? null) : null;
    if (known !== null) stats.cachedRoutes++;
    let target: number | null = multi ? (known ?? guess(account)) : null;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const g = target ?? 0;
      let h = pick(tried, g);
      if (!h) {
        // Every member was tried once: wait a moment (an election, a restart) and go round again.
        tried = new Set();
        await new Promise((r) => setTimeout(r, Math.min(250, left)));
        h = pick(tried, g);
        if (!h) break;
      }
      tried.add(h.id);
      stats.attempts++;
      if (attempt > 0) stats.failovers++;
      let r: HttpResult;
      try {
        r = await send(h, account, envelope, Math.min(attemptTimeoutMs, left), target);
      } catch (e) {
        forget(h.id);
        markDown(h, (e as Error).message);
        last = `member ${h.id}: ${(e as Error).message}`;
        continue;
      }
      if (r.status === 200) {
        stats.relayed++;
        servedByGroup[r.group !== null && r.group < groupCount ? r.group : 0]!++;
        learn(account, r.group);
        if (r.group !== null) believe(r.group, h.id, 0);
        return new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.byteLength);
      }
      let code = 'INTERNAL';
      let message = `member ${h.id} answered HTTP ${r.status}`;
      let reason: string | undefined;
      try {
        const b = JSON.parse(r.body.toString('utf8')) as { error?: { code?: string; message?: string; reason?: string } };
        code = b.error?.code ?? code;
        message = b.error?.message ?? message;
        reason = b.error?.reason;
      } catch {
        /* not JSON */
      }
      const answered = r.group ?? g;
      if (r.status === 421 && code === 'WRONG_GROUP' && r.group !== null && r.group !== target) {
        // The group asked does not serve the account and names the one that does: ask that one next.
        stats.wrongGroup++;
        learn(account, r.group);
        target = r.group;
        tried = new Set();
        last = `member ${h.id}: ${message}`;
        continue;
      }
      if (r.status === 503 && reason === 'moving') {
        // The account's range is moving between groups: nobody serves it until the transfer ends.
        stats.moving++;
        if (r.group !== null) target = r.group;
        tried = new Set();
        last = `member ${h.id}: ${message}`;
        await new Promise((res) => setTimeout(res, Math.min(250, Math.max(0, deadline - performance.now()))));
        continue;
      }
      if (r.status === 503 && code === 'UNAVAILABLE' && r.leaderHint !== null && r.leaderHint !== h.id) {
        // A follower naming the leader of the group it answered for: go there next (it is healthy, just not the leader).
        stats.notLeader++;
        forget(h.id, answered);
        leaders.set(answered, { id: r.leaderHint, term: 0 });
        if (multi && r.group !== null) target = r.group;
        if (!tried.has(r.leaderHint)) stats.hinted++;
        last = `member ${h.id}: ${message}`;
        continue;
      }
      if (r.status === 503) {
        forget(h.id, answered);
        markDown(h, message);
        last = `member ${h.id}: ${message}`;
        continue;
      }
      if (r.status === 400) throw new BkvError(code === 'TAMPERED' ? 'TAMPERED' : 'MALFORMED', message);
      throw new BkvError('INTERNAL', message);
    }
    stats.exhausted++;
    throw new BkvError('UNAVAILABLE', `no vault member could take the request (${last})`);
  };

  void refresh();
  return {
    relay,
    members: () => [...health.values()].map((h) => ({ ...h })),
    stats,
    leader: (g = 0) => leaders.get(g)?.id ?? null,
    groupOf: (account) => accounts.get(account) ?? null,
    servedByGroup,
    cachedAccounts: () => accounts.size,
    refresh,
    close() {
      closed = true;
      clearInterval(timer);
      for (const s of streams.values()) s.close();
      agent.destroy();
      pollAgent.destroy();
    },
  };
}

