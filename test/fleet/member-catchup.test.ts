import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WrongPasswordError } from '../../src/client/sdk/errors.js';
import { BIN, startUp, waitFor, type UpFleet } from './fleet-store.js';

// One real `bkv up --members 3` fleet (member processes from bin/bkv.js: `npm run build` first),
// compacting every 8 entries. The host restores a follower's whole directory from an older copy
// (consensus state, counter file and record store together: the software backend cannot tell) or
// deletes its state/. The member boots as a voter, behind; it must catch up from the current
// leader, without a leader change, and be reported as catching up (not healthy) until it has.
let root: string;
let f: UpFleet;
const PW = 'pw';
const keys = new Map<string, Uint8Array>();
const proxies: Server[] = [];

async function register(n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const k = crypto.getRandomValues(new Uint8Array(32));
    await f.client(`${prefix}${i}`).registerKey(PW, k);
    keys.set(`${prefix}${i}`, k);
  }
}

interface FleetStatusJson {
  healthy: number;
  catchingUp: number;
  serving: boolean;
  members: Array<{ id: number; health: string; catchingUp: string | null; lag: number; store: { state: string } }>;
}

async function fleetStatus(json: boolean): Promise<{ stdout: string; parsed: FleetStatusJson | null }> {
  const args = [BIN, 'fleet', 'status', '--fleet', join(f.dir, 'fleet.json'), ...(json ? ['--json'] : [])];
  const r = await promisify(execFile)(process.execPath, args).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return { stdout: r.stdout, parsed: json ? (JSON.parse(r.stdout) as FleetStatusJson) : null };
}

/** The leader's id and term, once a quorum follows it. */
async function leadership(): Promise<{ id: number; term: number }> {
  const id = await f.leader();
  return { id, term: (await f.statuses()).get(id)!.term };
}

/**
 * An HTTP proxy in front of a member's API that holds every `GET /v1/store/export` (a slow or
 * congested network between members) until `release()`; everything else passes at once.
 */
async function holdingProxy(port: number): Promise<{ port: number; release(): void }> {
  let held: Array<() => void> | null = [];
  const server = createServer((req, res) => {
    const forward = () => {
      const up = request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (held && req.url?.startsWith('/v1/store/export')) held.push(forward);
    else forward();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxies.push(server);
  return {
    port: (server.address() as AddressInfo).port,
    release() {
      const waiting = held ?? [];
      held = null;
      for (const go of waiting) go();
    },
  };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'bkv-fleet-catchup-'));
  f = await startUp(join(root, 'fleet'), ['--snapshot-every', '8']);
  await register(3, 'early-');
}, 90_000);

afterAll(async () => {
  await f?.close();
  for (const p of proxies) p.closeAllConnections();
  await Promise.all(proxies.map((p) => new Promise((r) => p.close(r))));
  await rm(root, { recursive: true, force: true });
});

describe('a fleet member whose disk was rolled back or wiped whole', () => {
  it('restored from an older copy of its whole directory: catches up from the current leader, shown as catching up until it has', async () => {
    const before = await leadership();
    const victim = f.config.members.find((m) => m.id !== before.id)!.id;
    const dir = join(f.dir, `member-${victim}`);
    const saved = join(root, 'old-copy');
    // The host copies the whole directory (a crash-consistent image: the member is stopped).
    const pid = await f.pid(victim);
    process.kill(pid, 'SIGSTOP');
    await cp(dir, saved, { recursive: true });
    process.kill(pid, 'SIGCONT');
    await register(10, 'later-'); // more than --snapshot-every: the leader compacts past the copy
    const target = (await f.statuses()).get(before.id)!.commitIndex;

    // The member's store repair is held at the network until we have looked at the status.
    const fleetPath = join(f.dir, 'fleet.json');
    const fleetJson = await readFile(fleetPath, 'utf8');
    const config = JSON.parse(fleetJson) as { members: Array<{ id: number; apiPort: number }> };
    const held = [];
    for (const m of config.members.filter((m) => m.id !== victim)) {
      const p = await holdingProxy(m.apiPort);
      held.push(p);
      m.apiPort = p.port;
    }
    const t0 = performance.now();
    await f.restart(victim, async () => {
      await rm(dir, { recursive: true, force: true });
      await cp(saved, dir, { recursive: true });
      await writeFile(fleetPath, JSON.stringify(config)); // read by the restarted member only
    });
    await writeFile(fleetPath, fleetJson);
    const t1 = performance.now();
    const booted = (await f.statuses()).get(victim)!;
    expect(booted.learner).toBe(false); // undetectable in the software backend: it boots as a voter
    expect(booted.bootNote).toBe('resumed');

    // Its consensus state catches up from the current leader, promptly.
    await waitFor('the member to catch up with the leader', async () => (await f.statuses()).get(victim)!.lastApplied >= target, 15_000, 20);
    console.info(`member ${victim}: whole directory rolled back; consensus caught up ${(performance.now() - t0).toFixed(0)} ms after the kill, ${(performance.now() - t1).toFixed(0)} ms after it answered`);

    // Its records are still coming (the export is held): catching up, not healthy.
    const s = await waitFor('the store repair to start', async () => {
      const st = (await f.statuses()).get(victim)!;
      return st.store.state === 'repairing' ? st : null;
    }, 10_000, 20);
    expect(s.catchingUp).toBe('record store repairing');
    const json = (await fleetStatus(true)).parsed!;
    const row = json.members.find((m) => m.id === victim)!;
    expect(row.health).toBe('catching up');
    expect(row.catchingUp).toBe('record store repairing');
    expect(json.healthy).toBe(2);
    expect(json.catchingUp).toBe(1);
    expect(json.serving).toBe(true);
    const text = (await fleetStatus(false)).stdout;
    expect(text).toMatch(/: 2\/3 members healthy, 1 catching up, quorum 2: serving/);
    expect(text).toMatch(new RegExp(`member ${victim} catching up: record store repairing`));
    const m = f.config.members.find((x) => x.id === victim)!;
    expect(await fetch(`http://${m.host}:${m.apiPort}/metrics`).then((r) => r.text())).toMatch(/bkv_member_raft\{field="catching_up",group="0"\} 1/);
    // The gateway polls every 500 ms.
    const hz = await waitFor('the gateway to see it', async () => {
      const h = (await (await fetch(`${f.url}/healthz`)).json()) as { membersUp: number; members: Array<{ id: number; healthy: boolean; error?: string }> };
      return h.members.find((x) => x.id === victim)?.error ? h : null;
    }, 5_000, 50);
    expect(hz.members.find((x) => x.id === victim)).toMatchObject({ healthy: false, error: 'catching up: record store repairing' });
    expect(hz.membersUp).toBe(2);

    // Released: the store is repaired, the member is healthy.
    for (const p of held) p.release();
    await waitFor('the member healthy', async () => (await fleetStatus(true)).parsed!.members.find((x) => x.id === victim)!.health === 'ok', 30_000, 200);
    const after = (await f.statuses()).get(victim)!;
    expect(after.records).toBe(keys.size);
    expect(after.catchingUp).toBeNull();
    expect(await leadership()).toEqual(before); // no leader change was needed
    await expect(f.client('later-0').recoverKey('wrong')).rejects.toSatisfy((e) => e instanceof WrongPasswordError && e.attemptsRemaining === 9);
    expect(await f.client('later-0').recoverKey(PW)).toEqual(keys.get('later-0'));
  }, 150_000);

  it('with its state/ deleted (counter included): catches up from the current leader', async () => {
    const before = await leadership();
    const victim = f.config.members.find((m) => m.id !== before.id)!.id;
    await register(2, 'more-');
    const target = (await f.statuses()).get(before.id)!.commitIndex;
    const t0 = performance.now();
    await f.restart(victim, () => rm(join(f.dir, `member-${victim}`, 'state'), { recursive: true, force: true }));
    const t1 = performance.now();
    expect((await f.statuses()).get(victim)!.bootNote).toBe('fresh member');
    await waitFor('the member to catch up with the leader', async () => {
      const s = (await f.statuses()).get(victim)!;
      return s.lastApplied >= target && s.catchingUp === null;
    }, 15_000, 20);
    console.info(`member ${victim}: state deleted; caught up ${(performance.now() - t0).toFixed(0)} ms after the kill, ${(performance.now() - t1).toFixed(0)} ms after it answered`);
    expect(await leadership()).toEqual(before);
    expect((await f.statuses()).get(victim)!.records).toBe(keys.size);
  }, 90_000);
});
