/**
 * Real-process fault test of a vault fleet: five member processes and the gateway on loopback, load
 * from a separate process (registrations, right- and wrong-password recoveries through the SDK over
 * HTTP), while members are killed with SIGKILL (a random minority, then restarted), the leader is
 * frozen with SIGSTOP and resumed with SIGCONT, and finally a majority is killed and restarted.
 *
 * Checks afterwards:
 * - lost = 0: every acknowledged registration recovers with its password (the right key);
 * - excess = 0: no account ever got more password checks than its guess limit (wrong-password
 *   results before destruction ≤ limit − 1, and a destroyed key never comes back);
 * - recovery time: from a majority being up again to the first successful operation, printed.
 *
 * With `--groups G` the fleet runs G replication groups and a spare (docs/groups.md), and ranges
 * move between groups all along (splits into the spare group, moves between adjacent groups, each
 * through the same driver as `bkv fleet move`, resumed after a timeout): the same checks hold across
 * the transfers, and at the end no transfer is left open.
 *
 *   npm run fault-test -- [--rounds 12] [--members 5] [--groups 3] [--max-users 400] [--seed N]
 *
 * Everything runs on 127.0.0.1; every loop is bounded; every process started here is killed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BkvError } from '../src/shared/errors.js';
import { LockedError, NotRegisteredError, WrongPasswordError } from '../src/client/sdk/errors.js';
import { httpTransport } from '../src/client/sdk/transport.js';
import { VaultClient, type TrustedFleetKeys } from '../src/client/sdk/vault-client.js';
import { readFleetKeys } from '../src/cli/vault-options.js';
import { memberApiUrl } from '../src/host/fleet/config.js';
import { startFleetGateway } from '../src/host/fleet/fleet-gateway.js';
import { createFleet } from '../src/host/fleet/provision.js';
import { FleetSupervisor, fetchStatuses, groupLeader } from '../src/host/fleet/supervisor.js';
import { groupViews, runTransfer } from '../src/host/fleet/transfer-driver.js';

const LIGHT_KSF = { memory: 8, iterations: 1, parallelism: 1 };
const LOCK_LIMIT = 3;
const SELF = fileURLToPath(import.meta.url);

export interface FaultOptions {
  members?: number;
  /** Fault rounds (each: a minority kill and restart, or a leader stop and resume). */
  rounds?: number;
  /** Registrations the load makes before it only recovers. */
  maxUsers?: number;
  /** Replication groups (default 1); with more, one spare group and ranges moving all along. */
  groups?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface FaultReport {
  kills: number;
  stops: number;
  majorityKills: number;
  acknowledged: number;
  lost: number;
  excess: number;
  lockoutUsers: number;
  operations: { ok: number; failed: number };
  /** Seconds from a majority being up again (or a leader freeze) to the first successful operation. */
  recoverySeconds: { afterMajorityRestart: number; afterLeaderStop: number[]; afterMinorityKill: number[] };
  credentialResponses: number;
  /** With groups: range transfers started, completed, aborted, and driver runs that timed out or failed (then resumed). */
  transfers: { started: number; done: number; aborted: number; interrupted: number };
  elapsedSeconds: number;
}

// ------------------------------------------------------------------------------ load process

interface LoadEvent {
  t: 'ack' | 'op' | 'lock' | 'bad' | 'done';
  user?: string;
  pw?: string;
  key?: string;
  ok?: boolean;
  start?: number;
  end?: number;
  wrong?: number;
  locked?: boolean;
  revived?: boolean;
  what?: string;
}

async function loadMain(cfg: { url: string; fleetKeys: string; maxUsers: number; seed: number }): Promise<void> {
  const fleet = await readFleetKeys(cfg.fleetKeys);
  const emit = (e: LoadEvent) => process.stdout.write(JSON.stringify(e) + '\n');
  let stopped = false;
  createInterface({ input: process.stdin }).on('line', (l) => {
    if (l.trim() === 'stop') stopped = true;
  });
  process.stdin.on('end', () => (stopped = true));
  const tokens = new Map<string, Promise<string>>();
  const token = (account: string) => {
    let t = tokens.get(account);
    if (!t) {
      t = (async () => {
        for (let i = 0; i < 50; i++) {
          try {
            const res = await fetch(`${cfg.url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
            if (res.ok) return ((await res.json()) as { token: string }).token;
          } catch {
            /* retry */
          }
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error('no token');
      })();
      tokens.set(account, t);
    }
    return t;
  };
  const client = (account: string, limit = 10) =>
    new VaultClient({ account, fleet, ksf: LIGHT_KSF, attemptLimit: limit, transport: httpTransport({ gatewayUrl: cfg.url, token: () => token(account), timeoutMs: 20_000 }) });
  const timed = async <T>(fn: () => Promise<T>): Promise<{ ok: true; v: T } | { ok: false; e: unknown }> => {
    const start = Date.now();
    try {
      const v = await fn();
      emit({ t: 'op', ok: true, start, end: Date.now() });
      return { ok: true, v };
    } catch (e) {
      // Wrong-password and locked results are answers from a working fleet.
      const answered = e instanceof WrongPasswordError || e instanceof LockedError || e instanceof NotRegisteredError;
      emit({ t: 'op', ok: answered, start, end: Date.now(), ...(answered ? {} : { what: (e as Error).message }) });
      return { ok: false, e };
    }
  };
  let rnd = cfg.seed >>> 0 || 1;
  const rand = () => {
    rnd ^= rnd << 13;
    rnd ^= rnd >>> 17;
    rnd ^= rnd << 5;
    return (rnd >>> 0) / 0x100000000;
  };
  const acked: { user: string; pw: string; key: Uint8Array }[] = [];
  let registered = 0;
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

  const durable = async (w: number) => {
    for (let n = 0; n < 100_000 && !stopped; n++) {
      if (registered < cfg.maxUsers || acked.length === 0) {
        registered++;
        const user = `d${w}-${n}`;
        const pw = `pw ${user} ${rand()}`;
        const key = crypto.getRandomValues(new Uint8Array(32));
        const r = await timed(() => client(user).registerKey(pw, key));
        if (r.ok) {
          acked.push({ user, pw, key });
          emit({ t: 'ack', user, pw, key: hex(key) });
        }
        continue;
      }
      const a = acked[Math.floor(rand() * acked.length)]!;
      if (rand() < 0.3) await timed(() => client(a.user).recoverKey(`not ${a.pw}`));
      const r = await timed(() => client(a.user).recoverKey(a.pw));
      if (r.ok && hex(r.v) !== hex(a.key)) emit({ t: 'bad', user: a.user, what: 'recovered a different key' });
    }
  };

  const lockout = async (w: number) => {
    for (let n = 0; n < 10_000 && !stopped; n++) {
      const user = `l${w}-${n}`;
      const pw = `pw ${user}`;
      let ok = false;
      for (let i = 0; i < 20 && !ok && !stopped; i++) ok = (await timed(() => client(user, LOCK_LIMIT).registerKey(pw, crypto.getRandomValues(new Uint8Array(32))))).ok;
      if (!ok) continue;
      let wrong = 0;
      let locked = false;
      for (let i = 0; i < 40 && !locked; i++) {
        const r = await timed(() => client(user, LOCK_LIMIT).recoverKey(`wrong ${i}`));
        if (r.ok) {
          emit({ t: 'bad', user, what: 'a wrong password recovered the key' });
          break;
        }
        if (r.e instanceof WrongPasswordError) wrong++;
        else if (r.e instanceof LockedError || r.e instanceof NotRegisteredError) locked = true;
        else if (stopped) break;
      }
      // A destroyed key must stay destroyed, even for the right password.
      let revived = false;
      if (locked) {
        for (let i = 0; i < 10; i++) {
          const r = await timed(() => client(user, LOCK_LIMIT).recoverKey(pw));
          if (r.ok) revived = true;
          if (r.ok || r.e instanceof LockedError || r.e instanceof NotRegisteredError) break;
        }
      }
      emit({ t: 'lock', user, wrong, locked, revived });
    }
  };

  await Promise.all([durable(0), durable(1), durable(2), lockout(0)]);
  emit({ t: 'done' });
}

// ------------------------------------------------------------------------------ orchestrator

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runFaultTest(opts: FaultOptions = {}): Promise<FaultReport> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const n = opts.members ?? 5;
  const rounds = opts.rounds ?? 12;
  let seed = (opts.seed ?? Date.now()) >>> 0 || 1;
  const rand = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const t0 = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'bkv-fault-'));
  const groups = opts.groups ?? 1;
  const fleet = await createFleet(dir, { members: n, basePort: 0, ...(groups > 1 ? { groups, spareGroups: 1 } : {}) });
  const sup = new FleetSupervisor(dir, fleet.config, { memberArgs: ['--log-level', 'warn'] });
  let gateway: Awaited<ReturnType<typeof startFleetGateway>> | null = null;
  let load: ChildProcess | null = null;
  const events: LoadEvent[] = [];
  const report: FaultReport = {
    kills: 0, stops: 0, majorityKills: 0, acknowledged: 0, lost: 0, excess: 0, lockoutUsers: 0,
    operations: { ok: 0, failed: 0 },
    recoverySeconds: { afterMajorityRestart: NaN, afterLeaderStop: [], afterMinorityKill: [] },
    credentialResponses: 0, transfers: { started: 0, done: 0, aborted: 0, interrupted: 0 }, elapsedSeconds: 0,
  };
  let moving = groups > 1;
  /** Moves ranges between groups until told to stop: a split into an empty group, or a quarter to an adjacent one. */
  const transferLoop = async (): Promise<void> => {
    while (moving) {
      await sleep(300 + rand() * 700);
      if (!moving) break;
      try {
        const v = await groupViews(fleet.config);
        const open = v.findIndex((x) => x?.status.transfer.outgoing);
        if (open >= 0) {
          const r = await runTransfer(fleet.config, open, null, null, { timeoutMs: 15_000 });
          report.transfers[r.outcome === 'done' ? 'done' : 'aborted']++;
          log(`  transfer ${open}/${r.seq} resumed: ${r.outcome}`);
          continue;
        }
        const ranges = v.map((x) => x?.status.range ?? null);
        if (ranges.some((r) => r === null) || v.some((x) => x?.status.transfer.incoming)) continue;
        const empty = ranges.findIndex((r) => r!.end <= r!.start);
        let source: number;
        let dest: number;
        let range: { start: number; end: number };
        if (empty >= 0) {
          source = ranges.reduce((best, r, g) => (r!.end - r!.start > ranges[best]!.end - ranges[best]!.start ? g : best), 0);
          dest = empty;
          const r = ranges[source]!;
          range = { start: r.end - Math.floor((r.end - r.start) / 2), end: r.end };
        } else {
          // Two groups whose ranges touch: the lower one gives the upper quarter of its range to the upper one, or the other way round.
          const pairs: Array<[number, number]> = [];
          ranges.forEach((a, i) => ranges.forEach((b, j) => { if (a!.end === b!.start) pairs.push([i, j]); }));
          if (pairs.length === 0) continue;
          const [lo, hi] = pairs[Math.floor(rand() * pairs.length)]!;
          const up = rand() < 0.5;
          source = up ? lo : hi;
          dest = up ? hi : lo;
          const r = ranges[source]!;
          const part = Math.max(1, Math.floor((r.end - r.start) / 4));
          range = up ? { start: r.end - part, end: r.end } : { start: r.start, end: r.start + part };
          if (range.end - range.start >= r.end - r.start) continue; // never empty a group here
        }
        report.transfers.started++;
        const r = await runTransfer(fleet.config, source, dest, range, { timeoutMs: 15_000 });
        report.transfers[r.outcome === 'done' ? 'done' : 'aborted']++;
        log(`  transfer ${source}/${r.seq} → group ${dest} (${r.records} records): ${r.outcome}`);
      } catch (e) {
        report.transfers.interrupted++;
        log(`  transfer interrupted: ${(e as Error).message.slice(0, 160)}`);
      }
    }
  };
  let transfers: Promise<void> = Promise.resolve();
  /** Seconds from `at` (Date.now()) to the end of the first successful operation started after it. */
  const firstSuccessAfter = async (at: number, waitMs = 15_000): Promise<number> => {
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      const ends = events.filter((e) => e.t === 'op' && e.ok && e.start! >= at).map((e) => e.end!);
      if (ends.length > 0) return (Math.min(...ends) - at) / 1000;
      await sleep(50);
    }
    return Infinity;
  };
  try {
    sup.startAll();
    await sup.waitForLeaders(30_000);
    gateway = await startFleetGateway({
      fleetPath: fleet.fleetPath,
      port: 0,
      rateLimit: { perAccountPerMinute: 1_000_000, perAddressPerMinute: 1_000_000 },
      relay: { pollMs: 200 },
    });
    log(`fleet ${fleet.config.fleetId}: ${n} member processes${groups > 1 ? `, ${groups} replication groups and a spare, ranges moving` : ''}, gateway ${gateway.url}`);
    const fleetKeys: TrustedFleetKeys = await readFleetKeys(fleet.fleetKeysPath);
    void fleetKeys;
    load = spawn(process.execPath, ['--import', 'tsx', SELF, '--load', JSON.stringify({ url: gateway.url, fleetKeys: fleet.fleetKeysPath, maxUsers: opts.maxUsers ?? 400, seed: seed })], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const loadDone = new Promise<void>((resolve) => load!.once('exit', () => resolve()));
    createInterface({ input: load.stdout! }).on('line', (l) => {
      try {
        events.push(JSON.parse(l) as LoadEvent);
      } catch {
        /* ignore */
      }
    });
    await sleep(3000);
    if (moving) transfers = transferLoop();

    // The leader to freeze: of a random group.
    const leaderNow = async (): Promise<number | null> => {
      const st = await fetchStatuses(fleet.config, 300);
      return groupLeader(st, Math.floor(rand() * (groups > 1 ? groups + 1 : 1)), fleet.config.quorum);
    };
    for (let r = 0; r < rounds; r++) {
      if (r % 3 === 2) {
        let leader: number | null = null;
        for (let i = 0; i < 30 && leader === null; i++) {
          leader = await leaderNow();
          if (leader === null) await sleep(100);
        }
        if (leader === null) continue;
        const at = Date.now();
        sup.signal(leader, 'SIGSTOP');
        report.stops++;
        log(`round ${r + 1}: SIGSTOP leader ${leader}`);
        const back = await firstSuccessAfter(at, 8000);
        report.recoverySeconds.afterLeaderStop.push(back);
        log(`  service back after ${back.toFixed(2)} s without the leader`);
        await sleep(1000 + rand() * 1000);
        sup.signal(leader, 'SIGCONT');
        log(`  SIGCONT ${leader}`);
        await sleep(1500);
      } else {
        const count = 1 + Math.floor(rand() * Math.floor((n - 1) / 2));
        const ids = fleet.config.members.map((m) => m.id).sort(() => rand() - 0.5).slice(0, count);
        const at = Date.now();
        for (const id of ids) await sup.kill(id);
        report.kills += ids.length;
        log(`round ${r + 1}: kill -9 members ${ids.join(', ')}`);
        const back = await firstSuccessAfter(at, 8000);
        report.recoverySeconds.afterMinorityKill.push(back);
        log(`  service after ${back.toFixed(2)} s`);
        await sleep(500 + rand() * 1500);
        for (const id of ids) sup.start(id);
        log(`  restarted ${ids.join(', ')}`);
        await sleep(1500);
      }
    }
    // A majority down: the fleet must stop serving, then come back once a majority is up.
    const majority = fleet.config.members.map((m) => m.id).sort(() => rand() - 0.5).slice(0, fleet.config.quorum);
    for (const id of majority) await sup.kill(id);
    report.kills += majority.length;
    report.majorityKills++;
    log(`kill -9 a majority: members ${majority.join(', ')}`);
    await sleep(2000);
    const upAt = Date.now();
    for (const id of majority) sup.start(id);
    const back = await firstSuccessAfter(upAt, 30_000);
    report.recoverySeconds.afterMajorityRestart = back;
    log(`majority restarted: service back ${back.toFixed(2)} s after the restart`);
    await sleep(1500);

    load.stdin!.write('stop\n');
    load.stdin!.end();
    await Promise.race([loadDone, sleep(40_000).then(() => load?.kill('SIGKILL'))]);
    // No transfer left open: finish (or have refused) whatever the loop left.
    moving = false;
    await transfers;
    if (groups > 1) {
      for (let i = 0; i < 5; i++) {
        const open = (await groupViews(fleet.config)).findIndex((x) => x?.status.transfer.outgoing);
        if (open < 0) break;
        try {
          const r = await runTransfer(fleet.config, open, null, null, { timeoutMs: 30_000 });
          report.transfers[r.outcome === 'done' ? 'done' : 'aborted']++;
          log(`transfer ${open}/${r.seq} finished at the end: ${r.outcome}`);
        } catch (e) {
          log(`transfer of group ${open} still open: ${(e as Error).message}`);
        }
      }
    }

    // Let every member catch up, then check.
    for (let i = 0; i < 100; i++) {
      const st = [...(await fetchStatuses(fleet.config, 500)).values()];
      if (st.every((s) => s && !s.learner && s.lag === 0 && (s.groups ?? []).every((g) => g.lag === 0)) && new Set(st.map((s) => s!.lastApplied)).size === 1) break;
      await sleep(200);
    }
    const tokens = async (account: string) => {
      const res = await fetch(`${gateway!.url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
      return ((await res.json()) as { token: string }).token;
    };
    const acks = events.filter((e) => e.t === 'ack');
    report.acknowledged = acks.length;
    const lost: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        while (next < acks.length) {
          const a = acks[next++]!;
          const c = new VaultClient({ account: a.user!, fleet: fleetKeys, ksf: LIGHT_KSF, transport: httpTransport({ gatewayUrl: gateway!.url, token: () => tokens(a.user!) }) });
          let ok = false;
          for (let i = 0; i < 5 && !ok; i++) {
            try {
              ok = Buffer.from(await c.recoverKey(a.pw!)).toString('hex') === a.key;
              if (!ok) break;
            } catch (e) {
              if (!(e instanceof BkvError) || e.code !== 'UNAVAILABLE') break;
              await sleep(300);
            }
          }
          if (!ok) lost.push(a.user!);
        }
      }),
    );
    report.lost = lost.length + events.filter((e) => e.t === 'bad').length;
    if (lost.length) log(`LOST: ${lost.slice(0, 10).join(', ')}${lost.length > 10 ? ' …' : ''}`);
    for (const e of events.filter((x) => x.t === 'bad')) log(`BAD: ${e.user}: ${e.what}`);
    const locks = events.filter((e) => e.t === 'lock');
    report.lockoutUsers = locks.length;
    for (const l of locks) report.excess += Math.max(0, l.wrong! - (LOCK_LIMIT - 1)) + (l.revived ? 1 : 0);
    const ops = events.filter((e) => e.t === 'op');
    report.operations = { ok: ops.filter((e) => e.ok).length, failed: ops.filter((e) => !e.ok).length };
    // The cores' count of credential responses from real records (since each process started).
    for (const m of fleet.config.members) {
      try {
        const text = await (await fetch(`${memberApiUrl(m)}/metrics`, { signal: AbortSignal.timeout(1000) })).text();
        for (const hit of text.matchAll(/bkv_core_events\{event="credentialResponses"[^}]*\} (\d+)/g)) report.credentialResponses += Number(hit[1]);
      } catch {
        /* member down */
      }
    }
    report.elapsedSeconds = (performance.now() - t0) / 1000;
    return report;
  } finally {
    moving = false;
    await transfers.catch(() => {});
    load?.kill('SIGKILL');
    await gateway?.close();
    await sup.stop(2000);
    await rm(dir, { recursive: true, force: true });
  }
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

if (process.argv[1] === SELF) {
  const li = process.argv.indexOf('--load');
  if (li > 0) {
    loadMain(JSON.parse(process.argv[li + 1]!)).then(
      () => process.exit(0),
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  } else {
    runFaultTest({ rounds: arg('rounds', 12), members: arg('members', 5), groups: arg('groups', 1), maxUsers: arg('max-users', 400), seed: arg('seed', Date.now()) }).then(
      (r) => {
        console.log('\nFault test summary');
        console.log(`  kills (SIGKILL): ${r.kills} (one majority kill), leader SIGSTOPs: ${r.stops}`);
        console.log(`  operations: ${r.operations.ok} answered, ${r.operations.failed} failed (unavailable or outcome unknown)`);
        console.log(`  acknowledged registrations: ${r.acknowledged}, lost: ${r.lost}`);
        console.log(`  lockout accounts: ${r.lockoutUsers}, guess-limit excess: ${r.excess}`);
        if (r.transfers.started > 0) console.log(`  range transfers: ${r.transfers.started} started, ${r.transfers.done} done, ${r.transfers.aborted} aborted, ${r.transfers.interrupted} driver runs interrupted (resumed)`);
        const f = (xs: number[]) => (xs.length ? `max ${Math.max(...xs).toFixed(2)} s, median ${xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(2)} s` : '-');
        console.log(`  service after a minority kill: ${f(r.recoverySeconds.afterMinorityKill)}; after a leader SIGSTOP: ${f(r.recoverySeconds.afterLeaderStop)}`);
        console.log(`  service back ${r.recoverySeconds.afterMajorityRestart.toFixed(2)} s after a killed majority was restarted`);
        console.log(`  credential responses from real records (cores, since last start): ${r.credentialResponses}`);
        console.log(`  elapsed ${r.elapsedSeconds.toFixed(0)} s`);
        process.exit(r.lost === 0 && r.excess === 0 && Number.isFinite(r.recoverySeconds.afterMajorityRestart) ? 0 : 1);
      },
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  }
}
