/**
 * Load and checks for a fleet that scripts/netem.sh runs in network namespaces: starts the fleet
 * gateway on this host against D/fleet-netem.json, registers users, runs recoveries (right and
 * wrong passwords) through the SDK over HTTP, and reports what came back.
 *
 *   sudo scripts/netem.sh run D --loss 1% -- npx tsx scripts/netem-check.ts
 *     [--fleet D/fleet-netem.json] [--users 50] [--recoveries 200] [--wrong 0.25]
 *     [--lockout-users 5] [--concurrency 8] [--kill-member ID|leader] [--kill-at 0.5]
 *     [--restart-after SECONDS] [--op-timeout 15] [--deadline 240] [--seed N] [--json]
 *
 * Without --fleet it uses $BKV_NETEM_DIR/fleet-netem.json (netem.sh sets BKV_NETEM_DIR for CMD).
 *
 * Phases: wait for a leader; register `users` accounts (limit 10) and `lockout-users` accounts
 * (limit 3), retrying a registration that got no answer; `recoveries` recoveries, a share `wrong`
 * of them with a wrong password, at most one operation in flight per account (so the answers of
 * one account come in order); optionally kill -9 one member (in its namespace) when `kill-at` of
 * the recoveries have started, and start it again after `restart-after` seconds; send wrong
 * passwords to each lockout account until it is locked, then its right password; finally recover
 * every registered key once more and compare it with the key that was registered.
 *
 * Checks (exit 1 if one fails):
 * - intact: every acknowledged registration gives back exactly its key; no wrong password ever
 *   releases a key, no right password is ever refused as wrong;
 * - guess limits: in every run of wrong passwords since the account's last success, the number of
 *   wrong-password answers is at most `limit − attemptsRemaining` of the latest answer (the vault
 *   charged at least one attempt per answer), and a lockout account gets at most limit − 1
 *   wrong-password answers before it is locked, and never recovers afterwards;
 * - the members' own count of credential responses from real records (bkv_core_events) is at most
 *   what the client can account for (answers that need one, plus operations that failed).
 *
 * Bounded: every request has a timeout, the load stops taking new operations at the deadline, and
 * the process exits by itself at the deadline plus 60 s at the latest. It does not start or stop
 * the members (netem.sh does), except the one it kills and restarts.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LIGHT_KSF, percentile } from '../bench/lib/load.js';
import { BkvError } from '../src/shared/errors.js';
import { LockedError, NotRegisteredError, WrongPasswordError } from '../src/client/sdk/errors.js';
import { httpTransport } from '../src/client/sdk/transport.js';
import { VaultClient, type TrustedFleetKeys } from '../src/client/sdk/vault-client.js';
import { readFleetKeys } from '../src/cli/vault-options.js';
import { memberApiUrl, readFleetConfig, type FleetConfig } from '../src/host/fleet/config.js';
import { startFleetGateway } from '../src/host/fleet/fleet-gateway.js';
import { nativeChannelPrimitives } from '../src/host/fleet/native-crypto.js';
import { fleetPaths } from '../src/host/fleet/provision.js';
import { BKV_BIN, fetchStatuses } from '../src/host/fleet/supervisor.js';

// ------------------------------------------------------------------------------ options

class UsageError extends Error {}

function strArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
function numArg(name: string, dflt: number): number {
  const v = strArg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`netem-check: --${name} ${v}: expected a number`);
    process.exit(2);
  }
  return n;
}

const USERS = Math.max(1, Math.floor(numArg('users', 50)));
const RECOVERIES = Math.floor(numArg('recoveries', 200));
const WRONG_SHARE = Math.min(1, numArg('wrong', 0.25));
const LOCKOUT_USERS = Math.floor(numArg('lockout-users', 5));
const CONCURRENCY = Math.max(1, Math.floor(numArg('concurrency', 8)));
const KILL = strArg('kill-member');
const KILL_AT = Math.min(1, numArg('kill-at', 0.5));
const RESTART_AFTER = numArg('restart-after', 0);
const OP_TIMEOUT_MS = numArg('op-timeout', 15) * 1000;
const DEADLINE_MS = numArg('deadline', 240) * 1000;
const JSON_OUT = process.argv.includes('--json');
const LIMIT = 10;
const LOCK_LIMIT = 3;

const netemDir = process.env.BKV_NETEM_DIR;
const FLEET_PATH = strArg('fleet') ?? (netemDir ? join(netemDir, 'fleet-netem.json') : undefined);

// ------------------------------------------------------------------------------ helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const t0 = Date.now();
const pastDeadline = () => Date.now() - t0 > DEADLINE_MS;
const log = (line: string) => {
  if (!JSON_OUT) console.log(line);
  else console.error(line);
};

let seed = (numArg('seed', Date.now()) >>> 0) || 1;
const rand = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 0x100000000;
};

/** Answers from a working fleet; anything else is a failed operation. */
const ANSWERS = new Set(['OK', 'WRONG_PASSWORD', 'LOCKED', 'NOT_REGISTERED']);

interface Outcome<T> {
  code: string;
  ms: number;
  value?: T;
  remaining?: number;
  message?: string;
}

async function timed<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  const s = performance.now();
  try {
    const value = await fn();
    return { code: 'OK', ms: performance.now() - s, value };
  } catch (e) {
    const ms = performance.now() - s;
    if (e instanceof WrongPasswordError) return { code: 'WRONG_PASSWORD', ms, remaining: e.attemptsRemaining };
    if (e instanceof LockedError) return { code: 'LOCKED', ms };
    if (e instanceof NotRegisteredError) return { code: 'NOT_REGISTERED', ms };
    if (e instanceof BkvError) return { code: e.code, ms, message: e.message };
    return { code: 'ERROR', ms, message: (e as Error).message };
  }
}

/** Counts by code, with the first message seen for each failure code. */
class Tally {
  readonly counts = new Map<string, number>();
  readonly examples = new Map<string, string>();
  readonly latencies: number[] = [];
  add(o: Outcome<unknown>): void {
    this.counts.set(o.code, (this.counts.get(o.code) ?? 0) + 1);
    if (o.message && !this.examples.has(o.code)) this.examples.set(o.code, o.message);
    this.latencies.push(o.ms);
  }
  get total(): number {
    return this.latencies.length;
  }
  get failed(): number {
    let n = 0;
    for (const [c, k] of this.counts) if (!ANSWERS.has(c)) n += k;
    return n;
  }
  get(code: string): number {
    return this.counts.get(code) ?? 0;
  }
  lat(): { p50: number; p99: number } {
    const s = [...this.latencies].sort((a, b) => a - b);
    return { p50: percentile(s, 50), p99: percentile(s, 99) };
  }
  codes(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort((a, b) => b[1] - a[1]));
  }
  failures(): string {
    const f = [...this.counts].filter(([c]) => !ANSWERS.has(c));
    return f.length ? f.map(([c, n]) => `${c} ${n}`).join(', ') : 'none';
  }
}

/** Runs `op(i)` for i in 0..total-1 with `concurrency` in flight, stopping at the deadline. */
async function pool(total: number, concurrency: number, op: (i: number) => Promise<void>): Promise<{ ran: number; seconds: number }> {
  let next = 0;
  const s = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next < total && !pastDeadline()) await op(next++);
    }),
  );
  return { ran: next, seconds: (performance.now() - s) / 1000 };
}

async function waitForLeader(config: FleetConfig, timeoutMs: number): Promise<number> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const st = await fetchStatuses(config, 1000);
    const votes = new Map<number, number>();
    for (const s of st.values()) if (s && s.leader !== null && !s.learner) votes.set(s.leader, (votes.get(s.leader) ?? 0) + 1);
    for (const [leader, n] of votes) if (n >= config.quorum && st.get(leader)?.role === 'leader') return leader;
    await sleep(200);
  }
  throw new Error(`no leader within ${timeoutMs / 1000} s (member logs: ${dirname(FLEET_PATH!)}/logs)`);
}

/** Sum of every reachable member's bkv_core_events{event="credentialResponses"}; members that did not answer. */
async function credentialResponses(config: FleetConfig): Promise<{ sum: number; perMember: Map<number, number>; missing: number[] }> {
  const perMember = new Map<number, number>();
  const missing: number[] = [];
  await Promise.all(
    config.members.map(async (m) => {
      try {
        const text = await (await fetch(`${memberApiUrl(m)}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
        const hit = /bkv_core_events\{event="credentialResponses"\} (\d+)/.exec(text);
        perMember.set(m.id, hit ? Number(hit[1]) : 0);
      } catch {
        missing.push(m.id);
      }
    }),
  );
  return { sum: [...perMember.values()].reduce((a, b) => a + b, 0), perMember, missing };
}

// ------------------------------------------------------------------------------ the run

interface Account {
  user: string;
  pw: string;
  key: Uint8Array;
  limit: number;
  acked: boolean;
  /** Wrong-password answers since the last success. */
  wrongs: number;
  /** Serialises this account's operations. */
  chain: Promise<void>;
}

async function main(): Promise<number> {
  if (!FLEET_PATH) throw new UsageError('no fleet: pass --fleet D/fleet-netem.json, or run under scripts/netem.sh run D ... -- CMD');
  const config = await readFleetConfig(FLEET_PATH);
  const dir = dirname(FLEET_PATH);
  const hardStop = setTimeout(() => {
    console.error(`netem-check: still running ${(DEADLINE_MS + 60_000) / 1000} s after the start: giving up`);
    process.exit(3);
  }, DEADLINE_MS + 60_000);
  hardStop.unref();

  const leader = await waitForLeader(config, Math.min(60_000, DEADLINE_MS));
  const gateway = await startFleetGateway({
    fleetPath: FLEET_PATH,
    host: '127.0.0.1',
    port: 0,
    rateLimit: { perAccountPerMinute: 1_000_000_000, perAddressPerMinute: 1_000_000_000 },
  });
  const violations: string[] = [];
  let excess = 0;
  try {
    log(`fleet ${config.fleetId}: ${config.members.length} members (${config.members.map((m) => m.host).join(', ')}), leader ${leader}; gateway ${gateway.url}`);
    log(`load: ${USERS} users (limit ${LIMIT}) + ${LOCKOUT_USERS} lockout users (limit ${LOCK_LIMIT}), ${RECOVERIES} recoveries (${(WRONG_SHARE * 100).toFixed(0)}% wrong passwords), concurrency ${CONCURRENCY}, Argon2id ${LIGHT_KSF.memory} KiB/${LIGHT_KSF.iterations} pass, request timeout ${OP_TIMEOUT_MS / 1000} s, deadline ${DEADLINE_MS / 1000} s`);
    const fleetKeys: TrustedFleetKeys = await readFleetKeys(gateway.fleetKeysPath);
    const cr0 = await credentialResponses(config);
    const maxTerm = (st: Map<number, { term: number } | null>) => Math.max(0, ...[...st.values()].map((x) => x?.term ?? 0));
    const term0 = maxTerm(await fetchStatuses(config, 1000));

    const tokens = new Map<string, Promise<string>>();
    const token = (account: string) => {
      let t = tokens.get(account);
      if (!t) {
        t = (async () => {
          const res = await fetch(`${gateway.url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }), signal: AbortSignal.timeout(5000) });
          if (!res.ok) throw new BkvError('UNAUTHORIZED', `dev token: HTTP ${res.status}`);
          return ((await res.json()) as { token: string }).token;
        })();
        t.catch(() => tokens.delete(account));
        tokens.set(account, t);
      }
      return t;
    };
    const client = (a: Account) =>
      new VaultClient({
        account: a.user,
        fleet: fleetKeys,
        ksf: LIGHT_KSF,
        attemptLimit: a.limit,
        channelPrimitives: nativeChannelPrimitives,
        transport: httpTransport({ gatewayUrl: gateway.url, token: () => token(a.user), timeoutMs: OP_TIMEOUT_MS }),
      });
    const run = `${Date.now().toString(36)}${Math.floor(rand() * 1e6).toString(36)}`;
    const mk = (user: string, limit: number): Account => ({
      user, pw: `pw ${user} ${rand()}`, key: crypto.getRandomValues(new Uint8Array(32)), limit, acked: false, wrongs: 0, chain: Promise.resolve(),
    });
    const users = Array.from({ length: USERS }, (_, i) => mk(`nc-${run}-${i}`, LIMIT));
    const lockouts = Array.from({ length: LOCKOUT_USERS }, (_, i) => mk(`nl-${run}-${i}`, LOCK_LIMIT));
    /** Failed operations of each kind that may still have spent an attempt (upper bound for the members' count). */
    let mayHaveSpent = 0;
    let credentialAnswers = 0; // answers that needed a credential response from the real record
    let lockedAnswers = 0; // LOCKED: from the finish that destroyed the key (one) or from a start (none)

    // ---- registrations (a registration replaces the account's record, so retrying is safe)
    const reg = new Tally();
    let regRetries = 0;
    const all = [...users, ...lockouts];
    const regRun = await pool(all.length, CONCURRENCY, async (i) => {
      const a = all[i]!;
      for (let attempt = 0; attempt < 3 && !a.acked && !pastDeadline(); attempt++) {
        if (attempt > 0) regRetries++;
        const o = await timed(() => client(a).registerKey(a.pw, a.key));
        reg.add(o);
        if (o.code === 'OK') a.acked = true;
        else if (o.code !== 'UNAVAILABLE' && o.code !== 'NETWORK') break;
      }
    });
    const acked = users.filter((a) => a.acked);
    const regLat = reg.lat();
    log(`registrations: ${acked.length + lockouts.filter((a) => a.acked).length}/${all.length} acknowledged, ${regRetries} retries; failed tries: ${reg.failures()}; ${(reg.total / regRun.seconds).toFixed(1)} tries/s, p50 ${regLat.p50.toFixed(0)} ms, p99 ${regLat.p99.toFixed(0)} ms`);
    if (acked.length === 0) throw new Error('no registration was acknowledged');

    // ---- recoveries, with an optional kill -9 of one member on the way
    const rec = new Tally();
    const kill: { done?: { id: number; at: number; pid: number; restartedPid?: number }; started: boolean } = { started: false };
    let firstOkAfterKill = NaN;
    const killNow = async () => {
      const st = await fetchStatuses(config, 1000);
      let id = KILL === 'leader' ? [...st].find(([, s]) => s?.role === 'leader')?.[0] : Number(KILL);
      if (id === undefined || !Number.isInteger(id) || !st.get(id)) {
        log(`kill: member ${KILL} not found or not answering; nothing killed`);
        return;
      }
      const pid = st.get(id)!.pid;
      process.kill(pid, 'SIGKILL');
      const killed = { id, at: Date.now(), pid } as NonNullable<typeof kill.done>;
      kill.done = killed;
      log(`kill -9 member ${id} (pid ${pid}, ${st.get(id)!.role}) after ${Math.round(KILL_AT * RECOVERIES)} recoveries started`);
      if (RESTART_AFTER > 0) {
        setTimeout(() => {
          if (pastDeadline()) return;
          const fd = openSync(join(dir, 'logs', `member-${id}.log`), 'a');
          const child = spawn('ip', ['netns', 'exec', `bkv-m${killed.id}`, process.execPath, BKV_BIN, 'member', 'start', '--dir', fleetPaths(dir).member(killed.id), '--fleet', FLEET_PATH!], {
            stdio: ['ignore', fd, fd],
            detached: true,
          });
          closeSync(fd);
          child.unref();
          // netem.sh down stops what is listed here (and anything left in the namespace).
          if (child.pid) appendFileSync(join(dir, 'netem.pids'), `${child.pid}\n`);
          killed.restartedPid = child.pid;
          log(`restarted member ${id} in bkv-m${id} (pid ${child.pid}) ${RESTART_AFTER} s after the kill`);
        }, RESTART_AFTER * 1000);
      }
    };
    let rightOps = 0;
    let wrongOps = 0;
    const recRun = await pool(RECOVERIES, CONCURRENCY, async (i) => {
      if (KILL !== undefined && !kill.started && i >= Math.round(KILL_AT * RECOVERIES)) {
        kill.started = true;
        await killNow();
      }
      const a = acked[i % acked.length]!;
      const wrong = rand() < WRONG_SHARE;
      if (wrong) wrongOps++;
      else rightOps++;
      const prev = a.chain;
      let done!: () => void;
      a.chain = new Promise<void>((r) => (done = r));
      await prev;
      try {
        const started = Date.now();
        const o = await timed(() => client(a).recoverKey(wrong ? `not ${a.pw}` : a.pw));
        rec.add(o);
        if (kill.done && started >= kill.done.at && ANSWERS.has(o.code) && Number.isNaN(firstOkAfterKill)) firstOkAfterKill = (Date.now() - kill.done.at) / 1000;
        check(a, wrong, o);
      } finally {
        done();
      }
    });

    function check(a: Account, wrong: boolean, o: Outcome<Uint8Array>): void {
      switch (o.code) {
        case 'OK':
          credentialAnswers++;
          if (wrong) violations.push(`${a.user}: a wrong password released a key`);
          else if (hex(o.value!) !== hex(a.key)) violations.push(`${a.user}: recovered a different key`);
          a.wrongs = 0;
          break;
        case 'WRONG_PASSWORD':
          credentialAnswers++;
          a.wrongs++;
          if (!wrong) violations.push(`${a.user}: the right password was answered as wrong`);
          if (a.wrongs > a.limit - o.remaining!) {
            excess++;
            violations.push(`${a.user}: ${a.wrongs} wrong-password answers since the last success, but ${o.remaining} of ${a.limit} attempts remain`);
          }
          break;
        case 'LOCKED':
          lockedAnswers++;
          break;
        case 'NOT_REGISTERED':
          violations.push(`${a.user}: acknowledged registration answered as not registered`);
          break;
        default:
          mayHaveSpent++;
      }
    }

    const recLat = rec.lat();
    const answered = rec.total - rec.failed;
    log(`recoveries: ${recRun.ran}/${RECOVERIES} run in ${recRun.seconds.toFixed(1)} s (${rightOps} right, ${wrongOps} wrong password): ${answered} answered, ${rec.failed} failed`);
    log(`  answers: recovered ${rec.get('OK')}, wrong password ${rec.get('WRONG_PASSWORD')}, locked ${rec.get('LOCKED')}; failures by code: ${rec.failures()}`);
    for (const [c, m] of rec.examples) log(`    ${c}: ${m}`);
    log(`  ${(recRun.ran / recRun.seconds).toFixed(1)} recoveries/s, latency p50 ${recLat.p50.toFixed(0)} ms, p99 ${recLat.p99.toFixed(0)} ms (client Argon2id and OPAQUE included)`);
    if (kill.done) log(`  after the kill: first answer to an operation started after it came ${Number.isNaN(firstOkAfterKill) ? 'never' : `${firstOkAfterKill.toFixed(2)} s`} later`);

    // ---- lockout accounts: wrong passwords until locked, then the right one
    const lock = new Tally();
    let revived = 0;
    let maxWrongBeforeLock = 0;
    let notLocked = 0;
    let lockChecked = 0;
    const lockAccounts = lockouts.filter((a) => a.acked);
    await pool(lockAccounts.length, CONCURRENCY, async (i) => {
      const a = lockAccounts[i]!;
      let wrongs = 0;
      let locked = false;
      let overcharged = false;
      for (let n = 0; n < 4 * LOCK_LIMIT && !locked && !pastDeadline(); n++) {
        const o = await timed(() => client(a).recoverKey(`wrong ${n} ${a.pw}`));
        lock.add(o);
        if (o.code === 'WRONG_PASSWORD') {
          credentialAnswers++;
          wrongs++;
          if (wrongs > a.limit - o.remaining!) overcharged = true;
        } else if (o.code === 'LOCKED') {
          lockedAnswers++;
          locked = true;
        } else if (o.code === 'OK') {
          credentialAnswers++;
          violations.push(`${a.user}: a wrong password released a key`);
        } else mayHaveSpent++;
      }
      lockChecked++;
      maxWrongBeforeLock = Math.max(maxWrongBeforeLock, wrongs);
      if (wrongs > LOCK_LIMIT - 1 || overcharged) {
        excess += Math.max(1, wrongs - (LOCK_LIMIT - 1));
        violations.push(`${a.user}: ${wrongs} wrong-password answers with a limit of ${LOCK_LIMIT}${overcharged ? ', more than the attempts it was charged' : ''}`);
      }
      if (!locked) {
        notLocked++;
        return;
      }
      for (let n = 0; n < 3 && !pastDeadline(); n++) {
        const o = await timed(() => client(a).recoverKey(a.pw));
        lock.add(o);
        if (o.code === 'OK') {
          credentialAnswers++;
          revived++;
          violations.push(`${a.user}: a destroyed key came back`);
        }
        if (o.code === 'LOCKED') lockedAnswers++;
        if (ANSWERS.has(o.code)) break;
        mayHaveSpent++;
      }
    });
    if (LOCKOUT_USERS > 0) {
      log(`lockout accounts: ${lockChecked}/${lockAccounts.length} run (limit ${LOCK_LIMIT}): at most ${maxWrongBeforeLock} wrong-password answers before the lock (allowed ${LOCK_LIMIT - 1}), ${notLocked} not locked by the end, ${revived} revived; failures: ${lock.failures()}`);
    }

    // ---- every acknowledged key, once more
    const verify = new Tally();
    let intact = 0;
    const lost: string[] = [];
    await pool(acked.length, CONCURRENCY, async (i) => {
      const a = acked[i]!;
      let ok = false;
      for (let n = 0; n < 4 && !ok && !pastDeadline(); n++) {
        if (n > 0) await sleep(300);
        const o = await timed(() => client(a).recoverKey(a.pw));
        verify.add(o);
        if (o.code === 'OK') {
          credentialAnswers++;
          if (hex(o.value!) === hex(a.key)) ok = true;
          else violations.push(`${a.user}: recovered a different key`);
          break;
        }
        if (ANSWERS.has(o.code)) {
          if (o.code === 'WRONG_PASSWORD') credentialAnswers++;
          if (o.code === 'LOCKED') lockedAnswers++;
          break;
        }
        mayHaveSpent++;
      }
      if (ok) intact++;
      else lost.push(a.user);
    });
    const unchecked = acked.length - intact - lost.length;
    log(`keys: ${intact}/${acked.length} acknowledged keys recovered intact at the end${unchecked ? ` (${unchecked} not checked: deadline)` : ''}${lost.length ? `; NOT recovered: ${lost.slice(0, 5).join(', ')}${lost.length > 5 ? ' …' : ''}` : ''}; failed tries: ${verify.failures()}`);
    if (pastDeadline()) violations.push(`stopped at the deadline (${DEADLINE_MS / 1000} s) before the run was complete`);

    // ---- the members: caught up, and their own count of credential responses
    const live = config.members.filter((m) => m.id !== kill.done?.id || kill.done.restartedPid !== undefined);
    let converged = false;
    for (let n = 0; n < 75 && !converged; n++) {
      const st = await fetchStatuses(config, 1000);
      const s = live.map((m) => st.get(m.id));
      converged = s.every((x) => x && !x.learner && x.lag === 0) && new Set(s.map((x) => x!.lastApplied)).size === 1;
      if (!converged) await sleep(200);
    }
    const st = await fetchStatuses(config, 1000);
    const term1 = maxTerm(st);
    log(`members: ${[...st].map(([id, s]) => (s ? `${id} ${s.role} applied ${s.lastApplied}` : `${id} down`)).join(', ')}; ${converged ? 'all caught up' : 'NOT caught up within 15 s'}; term ${term0}${term1 !== term0 ? ` → ${term1} (leader elections during the run)` : ' throughout (no election)'}`);
    const cr1 = await credentialResponses(config);
    const served = cr1.sum - [...cr0.perMember].filter(([id]) => cr1.perMember.has(id)).reduce((a, [, n]) => a + n, 0);
    const lower = credentialAnswers;
    const upper = credentialAnswers + lockedAnswers + mayHaveSpent;
    const countsComplete = !kill.done && cr1.missing.length === 0 && cr0.missing.length === 0;
    log(`credential responses from real records, counted by the members: ${served}${countsComplete ? '' : ' (a member restarted or did not answer: its count is partial)'}; the client accounts for ${lower}–${upper}`);
    if (served > upper) violations.push(`the members computed ${served} credential responses, more than the ${upper} the client can account for`);
    if (countsComplete && served < lower) violations.push(`the members counted ${served} credential responses, fewer than the ${lower} answers that needed one`);

    log(`guess-limit excess: ${excess}; lost: ${lost.length}; violations: ${violations.length}`);
    for (const v of violations.slice(0, 20)) log(`  VIOLATION ${v}`);
    if (JSON_OUT) {
      console.log(JSON.stringify({
        registrations: { accounts: all.length, acknowledged: all.filter((a) => a.acked).length, retries: regRetries, codes: reg.codes(), ...regLat },
        recoveries: { planned: RECOVERIES, ran: recRun.ran, seconds: recRun.seconds, perSecond: recRun.ran / recRun.seconds, answered, failed: rec.failed, codes: rec.codes(), ...recLat },
        killed: kill.done ? { ...kill.done, firstAnswerAfterSeconds: firstOkAfterKill } : null,
        lockout: { accounts: lockAccounts.length, run: lockChecked, maxWrongBeforeLock, notLocked, revived, codes: lock.codes() },
        keys: { acknowledged: acked.length, intact, lost: lost.length },
        credentialResponses: { served, lower, upper, complete: countsComplete },
        converged, terms: [term0, term1], excess, violations,
      }));
    }
    return violations.length === 0 && lost.length === 0 && excess === 0 ? 0 : 1;
  } finally {
    await gateway.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`netem-check: ${e instanceof UsageError ? e.message : ((e as Error).stack ?? e)}`);
    process.exit(1);
  },
);
