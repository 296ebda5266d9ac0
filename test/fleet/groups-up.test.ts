import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WrongPasswordError } from '../../src/client/sdk/errors.js';
import { memberApiUrl } from '../../src/host/fleet/config.js';
import { groupLeader } from '../../src/host/fleet/supervisor.js';
import { groupViews, runTransfer } from '../../src/host/fleet/transfer-driver.js';
import { BIN, startUp, waitFor, type UpFleet } from './fleet-store.js';

// A real `bkv up --members 5 --groups 3` fleet (3 groups splitting the record-id space, 1 spare
// group; member processes from bin/bkv.js: `npm run build` first). Users are spread over the
// groups by their record ids, which only the cores can compute: the gateway learns each account's
// group from the members' answers. Ranges move between groups with `bkv fleet split` / `move`
// while users keep recovering, and the hostile host replays and forges transfer messages.
let root: string;
let f: UpFleet;
const keys = new Map<string, Uint8Array>();
const PW = 'pw';
const USERS = 24;

const cli = (...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> =>
  promisify(execFile)(process.execPath, [BIN, ...args], { timeout: 120_000 }).then(
    (r) => ({ stdout: r.stdout, stderr: r.stderr, code: 0 }),
    (e: { stdout?: string; stderr?: string; code?: number }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: e.code ?? -1 }),
  );
const fleetFile = () => join(f.dir, 'fleet.json');
type GroupRow = { group: number; range: { start: number; end: number } | null; leader: number | null; records: number | null; serving: boolean; transfer: string | null };
const groupRows = async (): Promise<GroupRow[]> => {
  const r = await cli('fleet', 'status', '--fleet', fleetFile(), '--json');
  return (JSON.parse(r.stdout) as { groups: GroupRow[] }).groups;
};
const health = async () =>
  ((await (await fetch(`${f.url}/healthz`)).json()) as { relay: { relayed: number; attempts: number; wrongGroup: number; notLeader: number; cachedRoutes: number; groupLeaders: Array<number | null> } }).relay;
/** POST /v1/groups/<g>/transfer on member `m`: status and JSON body. */
async function transferApi(m: number, g: number, body: unknown): Promise<{ status: number; json: { error?: { code: string; reason?: string } } & Record<string, unknown> }> {
  const member = f.config.members.find((x) => x.id === m)!;
  const res = await fetch(`${memberApiUrl(member)}/v1/groups/${g}/transfer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as { error?: { code: string; reason?: string } } & Record<string, unknown> };
}
const leaderOf = async (g: number): Promise<number> => waitFor(`a leader of group ${g}`, async () => groupLeader(await f.statuses(), g, f.config.quorum));

async function recoverAll(): Promise<void> {
  for (const [account, k] of keys) expect(await f.client(account).recoverKey(PW)).toEqual(k);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'bkv-groups-up-'));
  f = await startUp(join(root, 'fleet'), ['--members', '5', '--groups', '3', '--rate-address', '100000', '--rate-account', '100000']);
  for (let i = 0; i < USERS; i++) {
    const k = crypto.getRandomValues(new Uint8Array(32));
    await f.client(`g${i}`).registerKey(PW, k);
    keys.set(`g${i}`, k);
  }
}, 120_000);

afterAll(async () => {
  await f?.close();
  await rm(root, { recursive: true, force: true });
});

describe('bkv up --members 5 --groups 3', () => {
  it('runs 3 groups splitting the space and one empty spare, their leaders on different members', async () => {
    // Each group prefers member g mod 5 + 1 and hands leadership over to it once it is caught up.
    const leaders = await waitFor('leaders on their preferred members', async () => {
      const l = await Promise.all([0, 1, 2, 3].map(leaderOf));
      return new Set(l).size === 4 ? l : null;
    }, 30_000, 200);
    expect(leaders).toEqual([1, 2, 3, 4]);
    const rows = await groupRows();
    expect(rows.map((r) => [r.range?.start, r.range?.end])).toEqual([[0, 1431655765], [1431655765, 2863311530], [2863311530, 2 ** 32], [0, 0]]);
    expect(rows[3]!.serving).toBe(false);
  });

  it('spreads users over the groups by record id; every record lives in exactly one group', async () => {
    const rows = await waitFor('records in every group', async () => {
      const r = await groupRows();
      return r.reduce((a, x) => a + (x.records ?? 0), 0) === USERS ? r : null;
    });
    for (const g of [0, 1, 2]) expect(rows[g]!.records).toBeGreaterThan(0);
    expect(rows[3]!.records).toBe(0);
  });

  it('routes by the account-to-group cache the gateway learned: one attempt per request once learned', async () => {
    const before = await health();
    await recoverAll();
    const after = await health();
    const requests = after.relayed - before.relayed;
    expect(requests).toBeGreaterThanOrEqual(USERS * 2);
    expect(after.cachedRoutes - before.cachedRoutes).toBe(requests);
    expect((after.attempts - before.attempts) / requests).toBeLessThan(1.1);
    expect(after.groupLeaders).toEqual([1, 2, 3, 4]);
  });

  it('a request sent to a group that does not serve the account is never served there: the member hands it to the owner group', async () => {
    // The member metrics count requests a group refused as not its own (WRONG_GROUP) and rerouted.
    const scrape = async () => {
      let n = 0;
      for (const m of f.config.members) {
        const text = await (await fetch(`${memberApiUrl(m)}/metrics`)).text();
        n += Number(/bkv_member_wrong_group_total\{outcome="rerouted"\} (\d+)/.exec(text)?.[1] ?? 0);
      }
      return n;
    };
    // A first contact goes to a group picked by a hash of the account: for about two in three
    // accounts a group that does not serve it, which refused it and the member rerouted.
    expect(await scrape()).toBeGreaterThan(0);
  });

  it('per-group Prometheus metrics', async () => {
    const text = await (await fetch(`${memberApiUrl(f.config.members[0]!)}/metrics`)).text();
    for (const g of [0, 1, 2, 3]) expect(text).toMatch(new RegExp(`bkv_member_raft\\{field="role",group="${g}"\\} \\d`));
    expect(text).toMatch(/bkv_member_raft\{field="range_end",group="2"\} 4294967296/);
    expect(text).toMatch(/bkv_member_record_store\{field="records",engine="sqlite",state="",group="1"\} \d+/);
    // The gateway: requests served per group, and the leader it believes for each.
    const gw = await (await fetch(`${f.url}/metrics`)).text();
    const served = [0, 1, 2, 3].map((g) => Number(new RegExp(`bkv_gateway_group\\{field="served",group="${g}"\\} (\\d+)`).exec(gw)?.[1]));
    expect(served[0]! + served[1]! + served[2]!).toBeGreaterThan(USERS * 2);
    expect(served[3]).toBe(0);
    expect(gw).toMatch(/bkv_gateway_group\{field="leader",group="2"\} 3/);
    expect(gw).toMatch(/bkv_gateway_relay\{field="cached_accounts"\} 24/);
  });

  it('bkv fleet split moves the upper half of group 0 to the spare group, both groups committing the hand-over; every user still recovers', async () => {
    const before = await groupRows();
    const r = await cli('fleet', 'split', '--fleet', fleetFile(), '--group', '0', '--json');
    const res = JSON.parse(r.stdout) as { outcome: string; dest: number; records: number; range: { start: number; end: number } };
    expect(res.outcome).toBe('done');
    expect(res.dest).toBe(3);
    expect(res.range).toEqual({ start: 1431655765 - Math.floor(1431655765 / 2), end: 1431655765 });
    const rows = await waitFor('the split in every status', async () => {
      const x = await groupRows();
      return x[3]!.range?.start === res.range.start && x[3]!.serving ? x : null;
    });
    expect(rows[0]!.range).toMatchObject({ start: 0, end: res.range.start });
    expect(rows[3]!.records).toBe(res.records);
    // The moved records left group 0 (its TransferDone drops them from its tree and its stores): none lost, none counted twice.
    expect(rows[0]!.records! + rows[3]!.records!).toBe(before[0]!.records);
    expect(rows.reduce((a, x) => a + (x.records ?? 0), 0)).toBe(USERS);
    // The gateway still routes the moved accounts to group 0: refused there as not its own, rerouted to group 3.
    const h0 = await health();
    await recoverAll();
    const h1 = await health();
    if (res.records > 0) expect(h1.notLeader + h1.wrongGroup - h0.notLeader - h0.wrongGroup).toBeGreaterThan(0);
    // Relearned: one attempt per request again.
    await recoverAll();
    const h2 = await health();
    expect((h2.attempts - h1.attempts) / (h2.relayed - h1.relayed)).toBeLessThan(1.1);
  }, 120_000);

  it('bkv fleet move hands a prefix of group 2 to group 1 (adjacent), while users recover', async () => {
    const recovering = recoverAll();
    const r = await cli('fleet', 'move', '--fleet', fleetFile(), '--from', '2', '--to', '1', '--fraction', '0.25', '--json');
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'done', source: 2, dest: 1 });
    await recovering;
    const rows = await groupRows();
    expect(rows[1]!.range!.end).toBe(rows[2]!.range!.start);
    expect(rows[1]!.range!.end).toBe(2863311530 + Math.floor((2 ** 32 - 2863311530) * 0.25));
    await recoverAll();
  }, 120_000);

  it('refuses replayed and forged transfer messages with typed errors; a wrong password still counts a guess after the moves', async () => {
    // Replay: the offer of group 2's finished transfer, fetched earlier, cannot reopen it.
    const l1 = await leaderOf(1);
    const reply = await transferApi(l1, 1, { op: 'reply', source: 2 });
    expect(reply.status).toBe(200);
    const l2 = await leaderOf(2);
    const again = await transferApi(l2, 2, { op: 'finish', reply: reply.json.reply });
    expect(again.status).toBe(409);
    expect(again.json.error?.code).toBe('CONFLICT');
    expect(['replayed', 'wrong-phase']).toContain(again.json.error?.reason);
    // Forged: one bit of the reply flipped (its MAC fails).
    const bytes = Buffer.from(String(reply.json.reply), 'base64url');
    bytes[bytes.length - 1]! ^= 1;
    const forged = await transferApi(l2, 2, { op: 'finish', reply: bytes.toString('base64url') });
    expect(forged.status).toBe(422);
    expect(forged.json.error).toMatchObject({ code: 'VERIFICATION_FAILED', reason: 'bad-mac' });
    // A message for another group (group 1's reply to group 2, handed back to group 1 as a chunk).
    const misaddressed = await transferApi(l1, 1, { op: 'receive', chunk: reply.json.reply });
    expect(misaddressed.status).toBe(422);
    expect(misaddressed.json.error).toMatchObject({ code: 'VERIFICATION_FAILED', reason: 'wrong-group' });
    // The source of the finished split has no open transfer: there is no offer to resend.
    const l3 = await leaderOf(3);
    const offerAgain = await transferApi(l3, 3, { op: 'offer' });
    expect(offerAgain.status).toBe(409);
    // Ranges unchanged by all of it.
    const rows = await groupRows();
    expect(rows.filter((r) => r.transfer !== null)).toEqual([]);
    // Guess limits hold across the transfers: a wrong password is counted by the group that serves the user now.
    const [account, k] = [...keys.entries()][0]!;
    await expect(f.client(account).recoverKey('wrong')).rejects.toBeInstanceOf(WrongPasswordError);
    expect(await f.client(account).recoverKey(PW)).toEqual(k);
  }, 60_000);

  it('a transfer survives the crash of the source leader: the driver resumes from the committed state', async () => {
    const views = await groupViews(f.config);
    const src = views[3]!.status.range;
    const srcLeader = views[3]!.leader;
    // Group 3 gives its upper half back to group 1? Not adjacent: it gives its lower half to group 0.
    const range = { start: src.start, end: src.start + Math.floor((src.end - src.start) / 2) };
    const run = runTransfer(f.config, 3, 0, range, { timeoutMs: 90_000 });
    await new Promise((r) => setTimeout(r, 150));
    await f.restart(srcLeader);
    const res = await run;
    expect(res.outcome).toBe('done');
    const rows = await groupRows();
    expect(rows[0]!.range).toMatchObject({ start: 0, end: range.end });
    expect(rows[3]!.range).toMatchObject({ start: range.end });
    await recoverAll();
  }, 120_000);

  it('an interrupted transfer rolls back cleanly: bkv fleet move --resume --cancel has the destination refuse it, and the source serves the range again', async () => {
    const before = await groupRows();
    const l1 = await leaderOf(1);
    const r1 = before[1]!.range!;
    // The host commits TransferOut of group 1's upper quarter to group 2 and then "crashes": nothing else happens.
    const cut = r1.end - Math.floor((r1.end - r1.start) / 4);
    const start = await transferApi(l1, 1, { op: 'start', dest: 2, start: cut, end: r1.end });
    expect(start.status).toBe(200);
    const open = await groupRows();
    expect(open[1]!.transfer).toBe('out 1 to 2');
    const r = await cli('fleet', 'move', '--fleet', fleetFile(), '--from', '1', '--resume', '--cancel', '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'aborted', source: 1, dest: 2, seq: 1 });
    const after = await groupRows();
    expect(after.map((x) => x.range)).toEqual(before.map((x) => x.range));
    expect(after.every((x) => x.transfer === null)).toBe(true);
    // A new transfer of group 1 gets the next number: the refused one is used up.
    const again = await transferApi(await leaderOf(2), 2, { op: 'prepare', offer: start.json.offer });
    expect(again.status).toBe(409);
    expect(again.json.error).toMatchObject({ code: 'CONFLICT', reason: 'replayed' });
    await recoverAll();
  }, 90_000);
});
