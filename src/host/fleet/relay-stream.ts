/**
 * The gateway's relay stream to a member: one persistent connection per member carrying many
 * relayed vault requests, instead of an HTTP request each (docs/api.md, "Relay stream"). The
 * gateway opens it on the member API port with `GET /v1/relay` and `Upgrade: bkv-relay-v1`; after
 * `101 Switching Protocols` both sides send length-prefixed frames:
 *
 *   request  (gateway → member): u32 length ‖ u32 id ‖ u16 account length ‖ account (UTF-8) ‖ sealed request
 *   response (member → gateway): u32 length ‖ u32 id ‖ u16 HTTP status ‖ u16 leader hint (0: none) ‖ body
 *
 * `length` counts the bytes after it (big-endian, as every integer here). The body is what
 * `POST /v1/vault` would answer with that status: the sealed response, or the JSON error body.
 * Requests are answered as they complete, in any order, matched by id. The sealed request and
 * response are the client's end-to-end envelopes, opened and checked only by the vault core, as
 * over HTTP; the stream adds nothing to trust. A malformed frame closes the connection.
 */
import { request, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';

export const RELAY_PATH = '/v1/relay';
export const RELAY_PROTOCOL = 'bkv-relay-v1';
export const RELAY_PROTOCOL_V2 = 'bkv-relay-v2';
/** The group byte of a request or response that names none. */
export const NO_GROUP = 0xff;
/** Largest frame either side accepts (the member API's body limit). */
export const MAX_RELAY_FRAME = 64 * 1024 * 1024;

export interface RelayAnswer {
  status: number;
  /** The member this one believes leads (a `not-leader` answer), else null. */
  leader: number | null;
  /** Version 2: the group that answered, or whose leader `leader` names (null: none). */
  group?: number | null;
  body: Uint8Array;
}

export interface RelayRequest {
  id: number;
  /** Version 2: the group the gateway believes serves the account (null: none). */
  group: number | null;
  account: string;
  envelope: Uint8Array;
}

/** Splits a byte stream into frames (the bytes after each length prefix). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  /** Appends `chunk`; returns the complete frames, or throws on a frame over the limit. */
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len > MAX_RELAY_FRAME) throw new RangeError(`relay frame of ${len} bytes is over the limit`);
      if (this.buf.length < 4 + len) break;
      out.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
}

export function encodeRelayRequest(id: number, account: string, envelope: Uint8Array, version = 1, group: number | null = null): Buffer {
  const acc = Buffer.from(account, 'utf8');
  if (acc.length > 0xffff) throw new RangeError('account name too long');
  const g = version >= 2 ? 1 : 0;
  const out = Buffer.allocUnsafe(4 + 4 + g + 2 + acc.length + envelope.length);
  out.writeUInt32BE(out.length - 4, 0);
  out.writeUInt32BE(id >>> 0, 4);
  if (g) out[8] = group ?? NO_GROUP;
  out.writeUInt16BE(acc.length, 8 + g);
  acc.copy(out, 10 + g);
  out.set(envelope, 10 + g + acc.length);
  return out;
}

export function decodeRelayRequest(frame: Buffer, version = 1): RelayRequest {
  const g = version >= 2 ? 1 : 0;
  if (frame.length < 6 + g) throw new RangeError('relay request frame too short');
  const n = frame.readUInt16BE(4 + g);
  if (frame.length < 6 + g + n) throw new RangeError('relay request frame too short for its account');
  const envelope = frame.subarray(6 + g + n);
  const group = g && frame[4] !== NO_GROUP ? frame[4]! : null;
  return { id: frame.readUInt32BE(0), group, account: frame.subarray(6 + g, 6 + g + n).toString('utf8'), envelope: new Uint8Array(envelope.buffer, envelope.byteOffset, envelope.byteLength) };
}

export function encodeRelayResponse(id: number, a: RelayAnswer, version = 1): Buffer {
  const g = version >= 2 ? 1 : 0;
  const out = Buffer.allocUnsafe(4 + 4 + 2 + 2 + g + a.body.length);
  out.writeUInt32BE(out.length - 4, 0);
  out.writeUInt32BE(id >>> 0, 4);
  out.writeUInt16BE(a.status, 8);
  out.writeUInt16BE(a.leader !== null && a.leader > 0 && a.leader <= 0xffff ? a.leader : 0, 10);
  if (g) out[12] = a.group ?? NO_GROUP;
  out.set(a.body, 12 + g);
  return out;
}

export function decodeRelayResponse(frame: Buffer, version = 1): { id: number } & RelayAnswer {
  const g = version >= 2 ? 1 : 0;
  if (frame.length < 8 + g) throw new RangeError('relay response frame too short');
  const leader = frame.readUInt16BE(6);
  const body = frame.subarray(8 + g);
  const group = g && frame[8] !== NO_GROUP ? frame[8]! : null;
  return { id: frame.readUInt32BE(0), status: frame.readUInt16BE(4), leader: leader === 0 ? null : leader, ...(g ? { group } : {}), body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) };
}

/**
 * Member side: serves relay streams on `server` (its HTTP API), answering each request with
 * `handle`. Returns a function that closes every open stream (the HTTP server does not track them).
 */
export function serveRelayStream(server: Server, handle: (account: string, envelope: Uint8Array, group: number | null) => Promise<RelayAnswer>): () => void {
  const open = new Set<Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const asked = String(req.headers.upgrade ?? '').toLowerCase();
    if (req.url !== RELAY_PATH || (asked !== RELAY_PROTOCOL && asked !== RELAY_PROTOCOL_V2)) {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const version = asked === RELAY_PROTOCOL_V2 ? 2 : 1;
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${asked}\r\nconnection: Upgrade\r\n\r\n`);
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    const reader = new FrameReader();
    const onData = (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const f of frames) {
        let r: ReturnType<typeof decodeRelayRequest>;
        try {
          r = decodeRelayRequest(f, version);
        } catch {
          socket.destroy();
          return;
        }
        void handle(r.account, r.envelope, r.group).then((a) => {
          if (!socket.destroyed) socket.write(encodeRelayResponse(r.id, a, version));
        });
      }
    };
    socket.on('error', () => socket.destroy());
    socket.on('data', onData);
    if (head.length > 0) onData(head);
  });
  return () => {
    for (const s of open) s.destroy();
    open.clear();
  };
}

interface Pending {
  resolve: (a: RelayAnswer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Gateway side: one relay stream to one member, opened on first use and again after it closes.
 * `call` rejects on a timeout or when the connection fails; a member that refuses the upgrade
 * (an older release) makes `unsupported` true, and the caller uses HTTP from then on.
 */
export class RelayStreamClient {
  unsupported = false;
  private socket: Duplex | null = null;
  private opening: Promise<Duplex> | null = null;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  /** `version` 2 speaks `bkv-relay-v2` (requests and answers name a group). */
  constructor(private readonly url: URL, private readonly version = 1) {}

  private open(timeoutMs: number): Promise<Duplex> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.opening ??= new Promise<Duplex>((resolve, reject) => {
      const req = request({
        host: this.url.hostname, port: this.url.port, path: RELAY_PATH, method: 'GET',
        headers: { connection: 'Upgrade', upgrade: this.version >= 2 ? RELAY_PROTOCOL_V2 : RELAY_PROTOCOL }, agent: false,
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no relay stream within ${timeoutMs} ms`)));
      req.on('upgrade', (_res, socket: Duplex, head: Buffer) => {
        req.setTimeout(0);
        if (this.closed) {
          socket.destroy();
          reject(new Error('relay closed'));
          return;
        }
        const reader = new FrameReader();
        const fail = (e: Error) => {
          socket.destroy();
          if (this.socket === socket) this.socket = null;
          for (const p of this.pending.values()) {
            clearTimeout(p.timer);
            p.reject(e);
          }
          this.pending.clear();
        };
        const onData = (chunk: Buffer) => {
          let frames: Buffer[];
          try {
            frames = reader.push(chunk);
          } catch (e) {
            fail(e as Error);
            return;
          }
          for (const f of frames) {
            let r: ReturnType<typeof decodeRelayResponse>;
            try {
              r = decodeRelayResponse(f, this.version);
            } catch (e) {
              fail(e as Error);
              return;
            }
            const p = this.pending.get(r.id);
            if (!p) continue; // timed out meanwhile
            this.pending.delete(r.id);
            clearTimeout(p.timer);
            p.resolve({ status: r.status, leader: r.leader, ...(this.version >= 2 ? { group: r.group ?? null } : {}), body: r.body });
          }
        };
        socket.on('data', onData);
        socket.on('error', (e: Error) => fail(e));
        socket.on('close', () => fail(new Error('relay stream closed')));
        if (head.length > 0) onData(head);
        this.socket = socket;
        resolve(socket);
      });
      req.on('response', (res) => {
        // No upgrade: a member without relay streams (or a stand-in); HTTP from now on.
        res.resume();
        this.unsupported = true;
        reject(new Error(`member answered HTTP ${res.statusCode} to the relay stream upgrade`));
      });
      req.on('error', reject);
      req.end();
    }).finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  async call(account: string, envelope: Uint8Array, timeoutMs: number, group: number | null = null): Promise<RelayAnswer> {
    const t0 = performance.now();
    const socket = await this.open(timeoutMs);
    const left = Math.max(1, timeoutMs - (performance.now() - t0));
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffffffff) + 1;
    return new Promise<RelayAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, left);
      this.pending.set(id, { resolve, reject, timer });
      socket.write(encodeRelayRequest(id, account, envelope, this.version, group));
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.socket = null;
  }
}
