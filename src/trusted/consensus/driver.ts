/**
 * RaftDriver runs a RaftNode for a host loop and adapts it to the `Replicator` seam.
 * Everything environmental is injected, so the deterministic simulator and a real member
 * process share this code.
 */
import { BkvError } from '../../shared/errors.js';
import type { Replicator } from '../core/replication.js';
import type { RaftNode } from './node.js';
import type { PersistRecord } from './sealed-state.js';
import type { MemberId, NodeInput, NodeOutput } from './types.js';

export interface TimerHandle {
  cancel(): void;
}

export interface DriverEnv {
  /** Local clock in milliseconds (any origin; only differences matter). */
  now(): number;
  /** Calls `fn` once after `delayMs` of local time. */
  setTimer(delayMs: number, fn: () => void): TimerHandle;
  /** Best-effort delivery of `bytes` to member `to` (the host transport; may drop or reorder). */
  send(to: MemberId, bytes: Uint8Array): void;
  /**
   * Makes `record` durable, in this order: store `record.snapshot` (if any) atomically as a new
   * file; note `record.truncateFrom` (if any); append `record.frames` to the log and fdatasync;
   * atomically replace the hard state with `record.hardState` (temporary file, fsync, rename,
   * fsync the directory). Then calls `done()`; `done(err)` on failure (the driver retries the same
   * record). At most one call is outstanding. See docs/formats/member-state.md.
   */
  persist(record: PersistRecord, done: (err?: unknown) => void): void;
  /**
   * Optional: runs `fn` soon, after the I/O events already queued (setImmediate in Node). When
   * given, inputs that arrive in the same turn of the event loop (frames from several peers,
   * proposals, persist confirmations) are handed to the node in one `step`, so they share one
   * persist and one round of AppendEntries. Without it every input is stepped at once.
   */
  defer?(fn: () => void): void;
}

export interface DriverOptions {
  /** Tick period in ms (default 10); with `sparseTicks`, the shortest gap between ticks. */
  tickMs?: number;
  /**
   * Tick only when the node has timed work due (`RaftNode.nextTickDue`: a heartbeat, an election
   * deadline, a commit to tell), at most every `tickMs` and at least every `maxTickMs`, and move the
   * node's clock on with every step (a `clock` input). An idle follower then wakes for its election
   * deadline instead of every tick. Default false: a tick every `tickMs`.
   */
  sparseTicks?: boolean;
  /** With `sparseTicks`, the longest gap between ticks in ms (default 1000). */
  maxTickMs?: number;
  /** A proposal or read that has not finished by then rejects with UNAVAILABLE (default 5000). */
  requestTimeoutMs?: number;
  /** Observes every node output (metrics, simulator checks). */
  onOutput?: (o: NodeOutput) => void;
}

export interface SubmitResult {
  index: number;
  result: Uint8Array;
}

type Callback<T> = (err: BkvError | null, value?: T) => void;

interface Pending<T> {
  cb: Callback<T>;
  timer: TimerHandle;
}

export class RaftDriver implements Replicator {
  private readonly tickMs: number;
  private readonly timeoutMs: number;
  private nextRequestId = 1;
  private readonly proposals = new Map<number, Pending<SubmitResult>>();
  private readonly reads = new Map<number, Pending<number>>();
  private tickTimer: TimerHandle | null = null;
  /** When the armed tick timer fires (env clock). */
  private tickAt = Infinity;
  private readonly sparse: boolean;
  private readonly maxTickMs: number;
  private stopped = false;
  private queued: NodeInput[] = [];

  constructor(
    readonly node: RaftNode,
    private readonly env: DriverEnv,
    private readonly opts: DriverOptions = {},
  ) {
    this.tickMs = opts.tickMs ?? 10;
    this.sparse = opts.sparseTicks ?? false;
    this.maxTickMs = Math.max(this.tickMs, opts.maxTickMs ?? 1000);
    this.timeoutMs = opts.requestTimeoutMs ?? 5000;
  }

  /** Starts ticking; call once after construction. */
  start(): void {
    this.stopped = false;
    this.run([{ type: 'tick', now: this.env.now() }]);
    if (!this.sparse) this.scheduleTick();
  }

  /** Stops timers and fails every pending request (process shutdown). */
  stop(): void {
    this.stopped = true;
    this.tickTimer?.cancel();
    this.tickTimer = null;
    this.tickAt = Infinity;
    for (const id of [...this.proposals.keys()]) this.finish(this.proposals, id, unavailable('member stopped'));
    for (const id of [...this.reads.keys()]) this.finish(this.reads, id, unavailable('member stopped'));
  }

  /** Hands bytes that arrived from the transport to the node. */
  receive(bytes: Uint8Array): void {
    if (!this.stopped) this.run([{ type: 'receive', bytes }]);
  }

  /** Callback form of `propose`, usable from synchronous hosts. */
  submit(entry: Uint8Array, cb: Callback<SubmitResult>): void {
    const requestId = this.allocate();
    this.proposals.set(requestId, { cb, timer: this.timeout(this.proposals, requestId) });
    this.run([{ type: 'propose', requestId, entry }]);
  }

  /** Callback form of `readBarrier`: resolves with the read index once it is applied locally. */
  requestRead(cb: Callback<number>): void {
    const requestId = this.allocate();
    this.reads.set(requestId, { cb, timer: this.timeout(this.reads, requestId) });
    this.run([{ type: 'readIndex', requestId }]);
  }

  propose(entry: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.submit(entry, (err, v) => (err ? reject(err) : resolve((v as SubmitResult).result)));
    });
  }

  readBarrier(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.requestRead((err) => (err ? reject(err) : resolve()));
    });
  }

  private allocate(): number {
    const id = this.nextRequestId;
    this.nextRequestId = id >= 0xfffffffe ? 1 : id + 1;
    return id;
  }

  private timeout<T>(map: Map<number, Pending<T>>, id: number): TimerHandle {
    return this.env.setTimer(this.timeoutMs, () => {
      this.finish(map, id, unavailable('no quorum reached in time; the outcome is unknown', { outcome: 'unknown' }));
    });
  }

  private finish<T>(map: Map<number, Pending<T>>, id: number, err: BkvError | null, value?: T): void {
    const p = map.get(id);
    if (!p) return;
    map.delete(id);
    p.timer.cancel();
    p.cb(err, value);
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    this.tickTimer = this.env.setTimer(this.tickMs, () => {
      this.run([{ type: 'tick', now: this.env.now() }]);
      this.scheduleTick();
    });
  }

  /** Sparse ticks: when the next tick should come, from what the node has due. */
  private nextTickAt(now: number): number {
    return Math.min(Math.max(this.node.nextTickDue(), now + this.tickMs), now + this.maxTickMs);
  }

  /** Sparse ticks: (re)arms the one tick timer to fire at `at`. */
  private armTick(now: number, at: number): void {
    this.tickTimer?.cancel();
    this.tickAt = at;
    this.tickTimer = this.env.setTimer(at - now, () => {
      this.tickTimer = null;
      this.tickAt = Infinity;
      // The step that runs this tick arms the next one (runNow).
      this.run([{ type: 'tick', now: this.env.now() }]);
    });
  }

  private run(inputs: NodeInput[]): void {
    const defer = this.env.defer;
    if (defer === undefined) {
      this.runNow(inputs);
      return;
    }
    if (this.queued.length === 0) {
      defer(() => {
        const batch = this.queued;
        this.queued = [];
        if (!this.stopped) this.runNow(batch);
      });
    }
    for (const i of inputs) this.queued.push(i);
  }

  private runNow(inputs: NodeInput[]): void {
    if (!this.sparse) {
      for (const o of this.node.step(inputs)) this.handle(o);
      return;
    }
    const outputs = this.node.step([{ type: 'clock', now: this.env.now() }, ...inputs]);
    for (const o of outputs) this.handle(o);
    if (this.stopped) return;
    // Work this step made due earlier than the armed tick (a commit to tell, a new role's
    // deadlines), or no tick armed yet: arm it. At most one re-arm per `tickMs` under load.
    const now = this.env.now();
    const at = this.nextTickAt(now);
    if (this.tickTimer === null || at < this.tickAt) this.armTick(now, at);
  }

  private handle(o: NodeOutput): void {
    this.opts.onOutput?.(o);
    switch (o.type) {
      case 'send':
        this.env.send(o.to, o.bytes);
        return;
      case 'persist':
        this.writeState(o.token, o.record);
        return;
      case 'committed':
        if (o.requestId !== undefined) this.finish(this.proposals, o.requestId, null, { index: o.index, result: o.result });
        return;
      case 'readReady':
        this.finish(this.reads, o.requestId, null, o.index);
        return;
      case 'rejected': {
        const err = unavailable(`request rejected: ${o.reason}`, { reason: o.reason, leaderHint: o.leaderHint, outcome: 'not-applied' });
        this.finish(this.proposals, o.requestId, err);
        this.finish(this.reads, o.requestId, err);
        return;
      }
      case 'restored':
        return;
    }
  }

  private writeState(token: number, record: PersistRecord): void {
    this.env.persist(record, (err) => {
      if (this.stopped) return;
      if (err !== undefined && err !== null) {
        this.env.setTimer(this.tickMs, () => this.writeState(token, record));
        return;
      }
      this.run([{ type: 'persisted', token }]);
    });
  }
}

function unavailable(message: string, details: Record<string, unknown> = {}): BkvError {
  return new BkvError('UNAVAILABLE', message, details);
}
