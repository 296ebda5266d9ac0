import Database from 'better-sqlite3';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WrongPasswordError } from '../../src/client/sdk/errors.js';
import { isBkvError } from '../../src/shared/errors.js';
import { startUp, waitFor, type UpFleet } from './fleet-store.js';

// One real `bkv up --members 3` fleet on SQLite (member processes from bin/bkv.js: `npm run build`
// first), compacting every 8 entries so a member that restarts comes back from a snapshot (the
// root only) and must take its records from a peer. The hostile host edits a member's
// records.sqlite with better-sqlite3 while the member runs, or replaces the file while it is stopped.
let root: string;
let f: UpFleet;
const keys = new Map<string, Uint8Array>();
const PW = 'pw';

async function register(n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const k = crypto.getRandomValues(new Uint8Array(32));
    await f.client(`${prefix}${i}`).registerKey(PW, k);
    keys.set(`${prefix}${i}`, k);
  }
}

const storeFiles = async (id: number) => (await readdir(join(f.dir, `member-${id}`))).filter((n) => n.startsWith('records.sqlite'));
const memberLog = (id: number) => readFile(join(f.dir, 'logs', `member-${id}.log`), 'utf8');
const dbPath = (id: number) => join(f.dir, `member-${id}`, 'records.sqlite');

/**
 * Waits until member `id`'s store has been repaired (`repairs` > `before`) and is in step again,
 * holding `records` records (a follower's core learns the last commit with the next append or
 * heartbeat, so it may reach the count a little after its store is in step).
 */
async function repaired(id: number, before: number, records: number, seen?: Set<string>) {
  return diagnosed(id, waitFor(`member ${id}'s store repaired`, async () => {
    const s = (await f.statuses()).get(id)?.store;
    if (s) seen?.add(s.state);
    return s && s.repairs > before && s.state === 'in-step' && s.storeBatch === s.coreBatch && s.records === records ? s : null;
  }, 30_000, 20));
}

/** On failure, the member's status and the end of its log. */
async function diagnosed<T>(id: number, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    const st = JSON.stringify((await f.statuses()).get(id) ?? null);
    const log = (await memberLog(id).catch(() => '')).split('\n').slice(-25).join('\n');
    throw new Error(`${(e as Error).message}\nmember ${id} status: ${st}\nlog:\n${log}`);
  }
}

/** Makes `id` the leader: restarts whichever member leads until `id` wins an election. */
async function makeLeader(id: number): Promise<void> {
  for (let i = 0; i < 8; i++) {
    const l = await f.leader();
    if (l === id) return;
    // Leadership moves to a member that is up to date: give the others a head start by restarting the leader.
    await f.restart(l);
  }
  throw new Error(`member ${id} never became leader`);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'bkv-fleet-store-'));
  f = await startUp(join(root, 'fleet'), ['--snapshot-every', '8']);
  await register(10, 'u');
}, 90_000);

afterAll(async () => {
  await f?.close();
  await rm(root, { recursive: true, force: true });
});

describe('a bkv up fleet on SQLite record stores', () => {
  it('relays each request to the leader: one attempt per request', async () => {
    const h = (await (await fetch(`${f.url}/healthz`)).json()) as { relay: { relayed: number; attempts: number; exhausted: number; leader: number | null } };
    expect(h.relay.leader).toBe(await f.leader());
    console.info(`relay: ${h.relay.attempts} attempts for ${h.relay.relayed + h.relay.exhausted} requests (${JSON.stringify(h.relay)})`);
    // Each registration is two requests; a request costs one attempt, give or take the first ones.
    expect(h.relay.attempts / (h.relay.relayed + h.relay.exhausted)).toBeLessThan(1.1);
    const m0 = f.config.members[0]!;
    // A follower writes its store in groups and learns the last commit a tick late: wait for it.
    const inStep = /bkv_member_record_store\{field="state",engine="sqlite",state="in-step",group="0"\} 1/;
    const ten = /bkv_member_record_store\{field="records",engine="sqlite",state="",group="0"\} 10/;
    const m = await waitFor('member 0 in step', async () => {
      const text = await fetch(`http://${m0.host}:${m0.apiPort}/metrics`).then((r) => r.text());
      return inStep.test(text) && ten.test(text) ? text : null;
    });
    expect(m).toMatch(inStep);
    expect(m).toMatch(ten);
    // Batches written and the store transactions that wrote them (a follower groups them).
    const written = Number(/bkv_member_record_store\{field="written",engine="sqlite",state="",group="0"\} (\d+)/.exec(m)?.[1]);
    const transactions = Number(/bkv_member_record_store\{field="transactions",engine="sqlite",state="",group="0"\} (\d+)/.exec(m)?.[1]);
    expect(transactions).toBeGreaterThan(0);
    expect(transactions).toBeLessThanOrEqual(written);
  });

  it('a member whose store was deleted repairs it from a peer, then serves as leader', async () => {
    const leader = await f.leader();
    const victim = f.config.members.find((m) => m.id !== leader)!.id;
    const before = (await f.statuses()).get(victim)!.store.repairs;
    const t0 = performance.now();
    await f.restart(victim, async () => {
      for (const n of await storeFiles(victim)) await rm(join(f.dir, `member-${victim}`, n));
    });
    const s = await repaired(victim, before, 10);
    console.info(`member ${victim}: store deleted, repaired from a peer ${(performance.now() - t0).toFixed(0)} ms after the kill`);
    expect(s.records).toBe(10);
    expect(await memberLog(victim)).toMatch(/record store repaired from member \d: 10 records/);
    await makeLeader(victim);
    console.info(`member ${victim} leads ${(performance.now() - t0).toFixed(0)} ms after the kill`);
    await expect(f.client('u0').recoverKey('wrong')).rejects.toSatisfy((e) => e instanceof WrongPasswordError && e.attemptsRemaining === 9);
    expect(await f.client('u0').recoverKey(PW)).toEqual(keys.get('u0'));
    await register(1, 'after-loss-');
  }, 150_000);

  for (const edit of ['swap two records', 'delete a record'] as const) {
    it(`the leader's core catches a hostile database that ${edit === 'swap two records' ? 'swaps two records' : 'deletes a record'}, gives no credential response from it, and repairs`, async () => {
      const leader = await f.leader();
      // Spend one attempt on every user first: the right attempts left must survive the edit.
      // Every registered user takes part, so whichever rows the edit hits are read below.
      const users = [...keys.keys()];
      const left = new Map<string, number>();
      for (const u of users) {
        const e = await f.client(u).recoverKey('wrong').catch((x: unknown) => x);
        expect(e).toBeInstanceOf(WrongPasswordError);
        left.set(u, (e as WrongPasswordError).attemptsRemaining);
      }
      const before = (await f.statuses()).get(leader)!.store.repairs;
      const db = new Database(dbPath(leader));
      db.pragma('busy_timeout = 5000');
      const rows = db.prepare('SELECT key, value FROM records ORDER BY key').all() as Array<{ key: Buffer; value: Buffer }>;
      expect(rows.length).toBe(keys.size);
      if (edit === 'swap two records') {
        const up = db.prepare('UPDATE records SET value = ? WHERE key = ?');
        db.transaction(() => {
          up.run(rows[1]!.value, rows[0]!.key);
          up.run(rows[0]!.value, rows[1]!.key);
        })();
      } else {
        db.prepare('DELETE FROM records WHERE key = ?').run(rows[2]!.key);
      }
      db.close();
      const core0 = await f.coreTotals();
      // Every user guesses wrong once more, then recovers: the edited records are read (and caught)
      // along the way, and each answer is the one the committed record gives.
      // The request that reads an edited record is refused (UNAVAILABLE, retry later) while the
      // member repairs; the client's retry gets the committed answer.
      let refused = 0;
      const retrying = async <T>(op: () => Promise<T>): Promise<T> => {
        for (;;) {
          try {
            return await op();
          } catch (e) {
            if (!isBkvError(e, 'UNAVAILABLE') || !/record store failed verification/.test((e as Error).message)) throw e;
            refused++;
            await repaired(leader, before, keys.size);
          }
        }
      };
      for (const u of users) {
        await expect(retrying(() => f.client(u).recoverKey('wrong')), u).rejects.toSatisfy((e) => e instanceof WrongPasswordError && e.attemptsRemaining === left.get(u)! - 1);
        expect(await retrying(() => f.client(u).recoverKey(PW)), u).toEqual(keys.get(u));
      }
      expect(refused).toBeGreaterThan(0);
      const core1 = await f.coreTotals();
      // One credential response per recovery start: none came from an edited record.
      expect(core1.credentialResponses! - core0.credentialResponses!).toBe(2 * users.length);
      expect(core1.rejected! - core0.rejected!).toBeGreaterThanOrEqual(refused);
      expect(core1.recoveries! - core0.recoveries!).toBe(users.length);
      const s = await repaired(leader, before, keys.size);
      expect(s.records).toBe(keys.size);
      const st = await f.fleetStatus();
      expect(st.members.find((m) => m.id === leader)!.store!.repairs).toBeGreaterThan(before);
      // The attempts a wrong guess leaves are the ones the committed records say (reset by the recovery).
      const e = await f.client(users[0]!).recoverKey('wrong').catch((x: unknown) => x);
      expect((e as WrongPasswordError).attemptsRemaining).toBe(9);
    }, 90_000);
  }

  it('an older copy of a stopped member\'s store is found as a gap and repaired; fleet status shows it', async () => {
    const leader = await f.leader();
    const victim = f.config.members.find((m) => m.id !== leader)!.id;
    const saved = join(root, 'old-store');
    const pid = await f.pid(victim);
    process.kill(pid, 'SIGSTOP');
    const names = await storeFiles(victim);
    await rm(saved, { recursive: true, force: true });
    await mkdir(saved);
    for (const n of names) await copyFile(join(f.dir, `member-${victim}`, n), join(saved, n));
    process.kill(pid, 'SIGCONT');
    const oldBatch = (await f.statuses()).get(victim)!.store.storeBatch;
    await register(10, 'later-');
    await waitFor('victim caught up', async () => {
      const st = await f.statuses();
      const s = st.get(victim)?.store;
      return s && s.storeBatch > oldBatch && s.storeBatch === st.get(leader)?.store.coreBatch && s.state === 'in-step';
    });
    // The repair count is the member process's own: the restarted process starts again at 0.
    const before = 0;
    const seen = new Set<string>();
    const logBefore = (await memberLog(victim)).length;
    await f.restart(victim, async () => {
      for (const n of await storeFiles(victim)) await rm(join(f.dir, `member-${victim}`, n));
      for (const n of names) await copyFile(join(saved, n), join(f.dir, `member-${victim}`, n));
    });
    const s = await repaired(victim, before, keys.size, seen);
    expect(s.records).toBe(keys.size);
    // Found as a gap: the old copy's batch is behind the member's state.
    expect((await memberLog(victim)).slice(logBefore)).toMatch(/record store needs repair: .*the store is at batch \d+/);
    const st = await f.fleetStatus();
    expect(st.members.find((m) => m.id === victim)!.store!.repairs).toBeGreaterThan(before);
    expect(f.output.join('\n')).not.toMatch(/password/i);
    // The repaired member serves as leader.
    await makeLeader(victim);
    expect(await f.client('later-3').recoverKey(PW)).toEqual(keys.get('later-3'));
  }, 120_000);
});
