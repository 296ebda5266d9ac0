import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createFleetRelay, type FleetRelay } from '../../src/host/fleet/gateway-relay.js';
import { displayStoreUrl } from '../../src/host/record-store/index.js';
import { memberStoreUrl, profilingArgs } from '../../src/host/fleet/supervisor.js';
import { checkStoreUrl } from '../../src/cli/commands/store-option.js';
import { isBkvError } from '../../src/shared/errors.js';

// Three stand-in members over real HTTP: the one named `leader` answers vault requests, the others
// answer as followers do (503 not-leader with x-bkv-leader), and every one reports its role.
let servers: Server[] = [];
let relay: FleetRelay | null = null;
const world = { leader: 2, term: 3, hits: [0, 0, 0, 0], polls: [0, 0, 0, 0] };

async function members(): Promise<Array<{ id: number; url: string }>> {
  const out = [];
  for (const id of [1, 2, 3]) {
    const s = createServer((req, res) => {
      if (req.url === '/v1/relay') {
        // A member without relay streams: the upgrade is an ordinary request, refused (the relay uses HTTP).
        res.statusCode = 404;
        res.end();
        return;
      }
      if (req.url === '/v1/status') {
        world.polls[id]!++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ role: id === world.leader ? 'leader' : 'follower', term: world.term, leader: world.leader, learner: false }));
        return;
      }
      req.resume();
      req.on('end', () => {
        world.hits[id]!++;
        if (id === world.leader) {
          res.setHeader('content-type', 'application/octet-stream');
          res.end(Buffer.from([id]));
        } else {
          res.statusCode = 503;
          res.setHeader('x-bkv-leader', String(world.leader));
          res.end(JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'this member is not the leader', reason: 'not-leader', leader: world.leader } }));
        }
      });
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
    out.push({ id, url: `http://127.0.0.1:${(s.address() as AddressInfo).port}` });
  }
  return out;
}

afterEach(async () => {
  relay?.close();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  servers = [];
  world.leader = 2;
  world.term = 3;
  world.hits = [0, 0, 0, 0];
  world.polls = [0, 0, 0, 0];
});

describe('the gateway relay routes to the leader', () => {
  it('costs one attempt per request once it has polled, and follows a hint when the leader moves', async () => {
    relay = createFleetRelay(await members(), { pollMs: 60_000 });
    await relay.refresh();
    expect(relay.leader()).toBe(2);
    for (let i = 0; i < 20; i++) expect((await relay.relay('a', new Uint8Array([1])))[0]).toBe(2);
    expect(relay.stats).toMatchObject({ relayed: 20, attempts: 20, failovers: 0, notLeader: 0 });
    // A new leader the relay has not polled yet: the old leader now answers not-leader, naming 3.
    world.leader = 3;
    expect((await relay.relay('a', new Uint8Array([1])))[0]).toBe(3);
    expect(relay.stats).toMatchObject({ relayed: 21, attempts: 22, notLeader: 1, hinted: 1 });
    expect(relay.leader()).toBe(3);
    expect((await relay.relay('a', new Uint8Array([1])))[0]).toBe(3);
    expect(relay.stats.attempts).toBe(23);
  });

  it('before any poll, a follower\'s hint gets a request to the leader in two attempts at most', async () => {
    relay = createFleetRelay(await members(), { pollMs: 60_000 });
    expect((await relay.relay('a', new Uint8Array([1])))[0]).toBe(2);
    expect(relay.stats.attempts).toBeLessThanOrEqual(2);
  });
});

describe('store URLs', () => {
  it('never show credentials, and give each member its own schema', () => {
    const url = 'postgres://bkv:s3cret@db.example:5432/vault?schema=prod&sslmode=require';
    for (const id of [1, 2]) {
      const m = memberStoreUrl(url, id);
      expect(new URL(m).searchParams.get('schema')).toBe(`prod_${id}`);
      expect(displayStoreUrl(m)).not.toMatch(/s3cret|bkv:/);
      expect(displayStoreUrl(m)).toContain('db.example:5432/vault');
    }
    expect(new URL(memberStoreUrl('postgres://u@h/d', 4)).searchParams.get('schema')).toBe('bkv_member_4');
    expect(displayStoreUrl('postgres://u@h/d?password=x')).not.toContain('password');
    expect(memberStoreUrl('sqlite:/srv/stores/', 2)).toBe('sqlite:/srv/stores/member-2.sqlite');
    let err: unknown;
    try {
      checkStoreUrl('mysql://root:hunter2@h/d');
    } catch (e) {
      err = e;
    }
    expect(isBkvError(err, 'USAGE')).toBe(true);
    expect((err as Error).message).not.toContain('hunter2');
  });
  it('polls the believed leader every period and the healthy followers only every fifth (each poll is an HTTP round trip on both sides)', async () => {
    relay = createFleetRelay(await members(), { pollMs: 20, fullPollEvery: 5 });
    await relay.refresh();
    const start = [...world.polls];
    const deadline = Date.now() + 5000;
    while (world.polls[2]! - start[2]! < 15 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const leaderPolls = world.polls[2]! - start[2]!;
    expect(leaderPolls).toBeGreaterThanOrEqual(15);
    for (const follower of [1, 3]) expect(world.polls[follower]! - start[follower]!).toBeLessThanOrEqual(Math.ceil(leaderPolls / 5) + 1);
    // A leader that stops answering as leader: the next period polls everyone again and finds the new one.
    world.leader = 3;
    world.term = 4;
    const until = Date.now() + 5000;
    while (relay.leader() !== 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(relay.leader()).toBe(3);
  });
  it("passes Node's profiling flags on to the members it starts, and no other flag", () => {
    expect(profilingArgs(['--cpu-prof', '--cpu-prof-dir=/p', '--inspect=9229', '--max-old-space-size=512', '--heap-prof-interval=1024', '--prof', '--perf-basic-prof-only-functions', '--interpreted-frames-native-stack'])).toEqual([
      '--cpu-prof',
      '--cpu-prof-dir=/p',
      '--heap-prof-interval=1024',
      '--prof',
      '--perf-basic-prof-only-functions',
      '--interpreted-frames-native-stack',
    ]);
    expect(profilingArgs(['--profx', '--cpu-profile', '--perf', '--perf-basic-profx'])).toEqual([]);
  });
});
