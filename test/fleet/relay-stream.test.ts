import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createFleetRelay, type FleetRelay } from '../../src/host/fleet/gateway-relay.js';
import {
  FrameReader, MAX_RELAY_FRAME, RELAY_PATH, RELAY_PROTOCOL, RelayStreamClient, decodeRelayRequest, decodeRelayResponse,
  encodeRelayRequest, encodeRelayResponse, serveRelayStream,
} from '../../src/host/fleet/relay-stream.js';

let servers: Server[] = [];
let closers: Array<() => void> = [];
let relay: FleetRelay | null = null;
let clients: RelayStreamClient[] = [];

afterEach(async () => {
  relay?.close();
  relay = null;
  for (const c of clients) c.close();
  clients = [];
  for (const c of closers) c();
  closers = [];
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  servers = [];
});

/** A member API stand-in serving relay streams: answers each request after `delay(envelope)` ms with the envelope reversed. */
async function member(opts: { delay?: (e: Uint8Array) => number; upgrades?: { n: number }; http?: { n: number } } = {}): Promise<string> {
  const s = createServer((req, res) => {
    if (req.url === '/v1/status') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ role: 'leader', term: 1, leader: 1, learner: false }));
      return;
    }
    if (opts.http) opts.http.n++;
    req.resume();
    req.on('end', () => res.end('over http'));
  });
  s.on('upgrade', () => { if (opts.upgrades) opts.upgrades.n++; });
  closers.push(serveRelayStream(s, async (account, envelope) => {
    await new Promise((r) => setTimeout(r, opts.delay?.(envelope) ?? 0));
    if (account === 'not-leader') return { status: 503, leader: 3, body: new TextEncoder().encode('{"error":{"code":"UNAVAILABLE","message":"not the leader"}}') };
    return { status: 200, leader: null, body: Uint8Array.from(envelope).reverse() };
  }));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe('relay stream framing', () => {
  it('round-trips requests and responses, and reassembles frames split anywhere across chunks', () => {
    const req = encodeRelayRequest(7, 'alice@example', new Uint8Array([1, 2, 3]));
    const res = encodeRelayResponse(0xfffffffe, { status: 503, leader: 4, body: new Uint8Array([9]) });
    expect(req.readUInt32BE(0)).toBe(req.length - 4);
    const bytes = Buffer.concat([req, res, req]);
    for (let cut = 1; cut < bytes.length; cut += 3) {
      const r = new FrameReader();
      const frames = [...r.push(bytes.subarray(0, cut)), ...r.push(bytes.subarray(cut))];
      expect(frames).toHaveLength(3);
      expect(decodeRelayRequest(frames[0]!)).toEqual({ id: 7, group: null, account: 'alice@example', envelope: new Uint8Array([1, 2, 3]) });
      expect(decodeRelayResponse(frames[1]!)).toEqual({ id: 0xfffffffe, status: 503, leader: 4, body: new Uint8Array([9]) });
    }
    expect(decodeRelayResponse(encodeRelayResponse(1, { status: 200, leader: null, body: new Uint8Array(0) }).subarray(4)).leader).toBeNull();
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(MAX_RELAY_FRAME + 1);
    expect(() => new FrameReader().push(huge)).toThrow(RangeError);
    expect(() => decodeRelayRequest(Buffer.from([0, 0, 0, 1, 0, 9, 1]))).toThrow(RangeError);
  });

  it('version 2 carries a group byte in requests and responses (0xff: none), byte for byte', () => {
    const req = encodeRelayRequest(7, 'ab', new Uint8Array([1, 2]), 2, 3);
    expect([...req]).toEqual([0, 0, 0, 11, 0, 0, 0, 7, 3, 0, 2, 0x61, 0x62, 1, 2]);
    expect(decodeRelayRequest(req.subarray(4), 2)).toEqual({ id: 7, group: 3, account: 'ab', envelope: new Uint8Array([1, 2]) });
    expect(decodeRelayRequest(encodeRelayRequest(8, 'ab', new Uint8Array(0), 2, null).subarray(4), 2).group).toBeNull();
    const res = encodeRelayResponse(9, { status: 421, leader: null, group: 2, body: new Uint8Array([7]) }, 2);
    expect([...res]).toEqual([0, 0, 0, 10, 0, 0, 0, 9, 1, 165, 0, 0, 2, 7]);
    expect(decodeRelayResponse(res.subarray(4), 2)).toEqual({ id: 9, status: 421, leader: null, group: 2, body: new Uint8Array([7]) });
    expect(decodeRelayResponse(encodeRelayResponse(9, { status: 200, leader: 1, body: new Uint8Array(0) }, 2).subarray(4), 2).group).toBeNull();
    // A version 2 request frame too short for its group byte and account length is refused.
    expect(() => decodeRelayRequest(Buffer.from([0, 0, 0, 1, 3, 0]), 2)).toThrow(RangeError);
  });
});

describe('relay stream between gateway and member', () => {
  it('carries many concurrent requests over one connection, answered out of order and matched by id', async () => {
    const upgrades = { n: 0 };
    const url = await member({ upgrades, delay: (e) => 40 - 4 * (e[0] ?? 0) });
    const c = new RelayStreamClient(new URL(url));
    clients.push(c);
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => c.call(`u${i}`, new Uint8Array([i, 100 + i]), 2000)));
    answers.forEach((a, i) => expect(a).toEqual({ status: 200, leader: null, body: new Uint8Array([100 + i, i]) }));
    expect(await c.call('not-leader', new Uint8Array([1]), 2000)).toMatchObject({ status: 503, leader: 3 });
    expect(upgrades.n).toBe(1);
  });

  it('a malformed frame closes that connection only; the member goes on serving, and the client reopens', async () => {
    const url = new URL(await member());
    const raw = connect(Number(url.port), url.hostname);
    await new Promise((r) => raw.once('connect', r));
    raw.resume();
    raw.write(`GET ${RELAY_PATH} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: ${RELAY_PROTOCOL}\r\n\r\n`);
    const huge = Buffer.alloc(8);
    huge.writeUInt32BE(MAX_RELAY_FRAME + 1);
    raw.write(huge);
    await new Promise((r) => raw.once('close', r));
    const c = new RelayStreamClient(url);
    clients.push(c);
    expect((await c.call('u', new Uint8Array([1, 2]), 2000)).body).toEqual(new Uint8Array([2, 1]));
    // The member restarts its side: calls in flight fail, the next call opens a new stream.
    for (const close of closers) close();
    await new Promise((r) => setTimeout(r, 20));
    expect((await c.call('u', new Uint8Array([3, 4]), 2000)).body).toEqual(new Uint8Array([4, 3]));
  });

  it('the fleet relay uses the stream, and falls back to HTTP for a member that refuses the upgrade', async () => {
    const http = { n: 0 };
    relay = createFleetRelay([{ id: 1, url: await member({ http }) }], { pollMs: 60_000 });
    await relay.refresh();
    for (let i = 0; i < 5; i++) expect(await relay.relay('a', new Uint8Array([i, 9]))).toEqual(new Uint8Array([9, i]));
    expect(relay.stats).toMatchObject({ relayed: 5, attempts: 5, streamed: 5 });
    expect(http.n).toBe(0);
    relay.close();

    // A member of an older release: no relay streams, so the upgrade is an ordinary request.
    const old = createServer((req, res) => {
      if (req.url === '/v1/status') {
        res.end(JSON.stringify({ role: 'leader', term: 1, leader: 1, learner: false }));
        return;
      }
      req.resume();
      if (req.url === RELAY_PATH) {
        res.statusCode = 404;
        res.end();
        return;
      }
      req.on('end', () => res.end('over http'));
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    servers.push(old);
    relay = createFleetRelay([{ id: 1, url: `http://127.0.0.1:${(old.address() as AddressInfo).port}` }], { pollMs: 60_000 });
    await relay.refresh();
    for (let i = 0; i < 3; i++) expect(new TextDecoder().decode(await relay.relay('a', new Uint8Array([i])))).toBe('over http');
    expect(relay.stats).toMatchObject({ relayed: 3, attempts: 3, streamed: 0, failovers: 0 });
  });
});
