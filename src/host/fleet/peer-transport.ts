/**
 * The host transport between members: one persistent TCP connection per peer carrying
 * length-prefixed frames (u32 big-endian length ‖ envelope). Best effort, as Raft expects: while a
 * peer is unreachable, frames are dropped; a connection whose send buffer backs up (a stopped peer)
 * drops frames too. The frames are consensus envelopes, already authenticated end to end by the
 * members (src/trusted/consensus/auth.ts), so this layer adds no security of its own.
 *
 * In a fleet of several replication groups each frame carries the group it is for in one byte
 * after the length (u32 length of the rest ‖ u8 group ‖ envelope); the receiving member hands it
 * to its node of that group, whose cluster id the envelope's MAC is keyed with (a frame handed to
 * the wrong group's node fails authentication there).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface PeerAddress {
  host: string;
  port: number;
}

const MAX_FRAME = 512 * 1024 * 1024;
/** Frames are dropped once this much is queued for one peer. */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;
const RECONNECT_MS = 100;

interface Conn {
  socket: Socket;
  connected: boolean;
  pending: Buffer[];
  /** Frames written in this turn of the event loop, flushed together in one write. */
  batch: Buffer[];
  batchBytes: number;
}

export class PeerTransport {
  private server: Server | null = null;
  private readonly conns = new Map<number, Conn>();
  private readonly lastAttempt = new Map<number, number>();
  private readonly inbound = new Set<Socket>();
  private closed = false;
  readonly stats = { sent: 0, dropped: 0, received: 0, connects: 0 };

  constructor(
    private readonly peers: ReadonlyMap<number, PeerAddress>,
    private readonly onFrame: (bytes: Uint8Array, group: number) => void,
    /** Frames carry a group byte (a fleet of several replication groups). */
    private readonly tagged = false,
  ) {}

  listen(addr: PeerAddress): Promise<void> {
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(addr.port, addr.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  private accept(socket: Socket): void {
    this.inbound.add(socket);
    socket.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (len > MAX_FRAME) {
          socket.destroy();
          return;
        }
        if (buf.length < 4 + len) break;
        const skip = this.tagged ? 1 : 0;
        if (len < skip) {
          socket.destroy();
          return;
        }
        const group = this.tagged ? buf[4]! : 0;
        const frame = new Uint8Array(buf.buffer, buf.byteOffset + 4 + skip, len - skip).slice();
        buf = buf.subarray(4 + len);
        this.stats.received++;
        if (!this.closed) this.onFrame(frame, group);
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.inbound.delete(socket));
  }

  /** Sends one frame to `to` (for `group`'s node there, in a tagged transport), or drops it when the peer cannot take it now. */
  send(to: number, bytes: Uint8Array, group = 0): void {
    if (this.closed) return;
    const conn = this.conns.get(to) ?? this.connect(to);
    if (!conn) {
      this.stats.dropped++;
      return;
    }
    const skip = this.tagged ? 1 : 0;
    const frame = Buffer.allocUnsafe(4 + skip + bytes.length);
    frame.writeUInt32BE(skip + bytes.length, 0);
    if (this.tagged) frame[4] = group;
    frame.set(bytes, 4 + skip);
    if (!conn.connected) {
      const queued = conn.pending.reduce((a, b) => a + b.length, 0);
      if (queued + frame.length > MAX_QUEUED_BYTES) this.stats.dropped++;
      else conn.pending.push(frame);
      return;
    }
    if (conn.socket.writableLength > MAX_QUEUED_BYTES) {
      this.stats.dropped++;
      return;
    }
    // One write (one syscall) per peer per turn of the event loop: a step of the node often
    // emits several frames for the same peer, and a syscall per frame costs more than the frame.
    if (conn.batch.length === 0) process.nextTick(() => this.flushBatch(conn));
    conn.batch.push(frame);
    conn.batchBytes += frame.length;
    this.stats.sent++;
  }

  private flushBatch(conn: Conn): void {
    const frames = conn.batch;
    conn.batch = [];
    const bytes = conn.batchBytes;
    conn.batchBytes = 0;
    if (frames.length === 0 || conn.socket.destroyed) return;
    conn.socket.write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames, bytes));
  }

  private connect(to: number): Conn | null {
    const addr = this.peers.get(to);
    if (!addr) return null;
    const now = Date.now();
    if (now - (this.lastAttempt.get(to) ?? 0) < RECONNECT_MS) return null;
    this.lastAttempt.set(to, now);
    this.stats.connects++;
    const socket = connect({ host: addr.host, port: addr.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    const conn: Conn = { socket, connected: false, pending: [], batch: [], batchBytes: 0 };
    this.conns.set(to, conn);
    socket.on('connect', () => {
      conn.connected = true;
      for (const f of conn.pending) socket.write(f);
      this.stats.sent += conn.pending.length;
      conn.pending = [];
    });
    socket.on('data', () => {});
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.conns.get(to) === conn) this.conns.delete(to);
    });
    return conn;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.conns.values()) c.socket.destroy();
    this.conns.clear();
    for (const s of this.inbound) s.destroy();
    const server = this.server;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
