/** A small deterministic cluster for unit tests: real nodes and drivers on an event queue. */
import { identityFromSeed } from '../../src/trusted/consensus/auth.js';
import type { Identity } from '../../src/trusted/consensus/auth.js';
import { MemoryCounter } from '../../src/trusted/consensus/counter.js';
import type { RaftDriver } from '../../src/trusted/consensus/driver.js';
import type { RaftNode } from '../../src/trusted/consensus/node.js';
import { createConsensusMember } from '../../src/trusted/member.js';
import type { NodeOutput, NodeStatus, RaftConfig } from '../../src/trusted/consensus/types.js';
import { EscrowStateMachine } from '../../src/sim/escrow-model.js';
import { EMPTY_IMAGE, bootStateOf, landAppends, landHardState } from '../../src/sim/disk.js';
import type { DiskImage } from '../../src/sim/disk.js';
import { EventQueue } from '../../src/sim/events.js';
import { Prng } from '../../src/sim/prng.js';

export interface TestMember {
  id: number;
  identity: Identity;
  storageKey: Uint8Array;
  counter: MemoryCounter;
  disk: DiskImage;
  diskHistory: DiskImage[];
  up: boolean;
  epoch: number;
  sm: EscrowStateMachine;
  node: RaftNode | null;
  driver: RaftDriver | null;
  outputs: NodeOutput[];
}

export class TestCluster {
  readonly q = new EventQueue();
  readonly rng: Prng;
  readonly members: TestMember[] = [];
  readonly clusterId: Uint8Array;
  readonly publicKeys: Map<number, Uint8Array>;
  /** Return false to drop a message. */
  filter: (from: number, to: number, bytes: Uint8Array) => boolean = () => true;
  /** How long a persist takes (ms). */
  persistMs = 1;
  /** Driver options on top of the defaults (a 10 ms tick), for members started from now on. */
  driverOptions: { sparseTicks?: boolean; maxTickMs?: number } = {};
  /** Timers each member's driver set (ticks, request timeouts, persist retries), by member id. */
  readonly timersSet = new Map<number, number>();
  /** Every message sent, for tests that tamper with or replay them. */
  readonly wire: Array<{ from: number; to: number; bytes: Uint8Array }> = [];

  constructor(n: number, seed = 1, readonly config: Partial<RaftConfig> = {}) {
    this.rng = new Prng(seed);
    this.clusterId = this.rng.bytes(16);
    for (let id = 0; id < n; id++) {
      this.members.push({
        id, identity: identityFromSeed(id, this.rng.bytes(32)), storageKey: this.rng.bytes(32), counter: new MemoryCounter(),
        disk: EMPTY_IMAGE, diskHistory: [], up: false, epoch: 0, sm: new EscrowStateMachine(), node: null, driver: null, outputs: [],
      });
    }
    this.publicKeys = new Map(this.members.map((m) => [m.id, m.identity.publicKey] as const));
  }

  member(id: number): TestMember {
    return this.members[id] as TestMember;
  }

  start(id: number): void {
    const m = this.member(id);
    m.epoch++;
    const epoch = m.epoch;
    m.sm = new EscrowStateMachine();
    const rng = this.rng.fork();
    m.outputs = [];
    const parts = createConsensusMember({
      stateMachine: m.sm,
      node: {
        identity: m.identity, members: this.publicKeys, clusterId: this.clusterId, storageKey: m.storageKey,
        counter: m.counter, rng: () => rng.u32(), boot: bootStateOf(m.disk), now: this.q.now,
        config: { electionTimeoutMin: 150, electionTimeoutMax: 300, heartbeatInterval: 40, snapshotThreshold: 16, snapshotLogRatio: 0, ...this.config },
      },
      env: {
        now: () => this.q.now,
        setTimer: (d, fn) => {
          this.timersSet.set(m.id, (this.timersSet.get(m.id) ?? 0) + 1);
          let cancelled = false;
          this.q.schedule(d, () => { if (!cancelled && m.up && m.epoch === epoch) fn(); });
          return { cancel: () => { cancelled = true; } };
        },
        send: (to, bytes) => {
          if (!m.up || m.epoch !== epoch) return;
          this.wire.push({ from: m.id, to, bytes });
          if (!this.filter(m.id, to, bytes)) return;
          this.q.schedule(2, () => this.deliver(to, bytes));
        },
        persist: (record, done) => this.q.schedule(this.persistMs, () => {
          if (!m.up || m.epoch !== epoch) return;
          m.diskHistory.push(m.disk);
          m.disk = landHardState(landAppends(m.disk, record), record);
          done();
        }),
      },
      driver: { tickMs: 10, requestTimeoutMs: 2000, ...this.driverOptions, onOutput: (o) => m.outputs.push(o) },
    });
    m.node = parts.node;
    m.driver = parts.driver;
    m.up = true;
    m.driver.start();
  }

  startAll(): void {
    for (const m of this.members) this.start(m.id);
  }

  crash(id: number): void {
    const m = this.member(id);
    m.up = false;
    m.driver?.stop();
    m.node = null;
    m.driver = null;
  }

  deliver(to: number, bytes: Uint8Array): void {
    const m = this.members[to];
    if (m && m.up) m.driver?.receive(bytes);
  }

  run(ms: number): void {
    const end = this.q.now + ms;
    while (this.q.peekTime() <= end) this.q.runNext();
    this.q.now = end;
  }

  runUntil(pred: () => boolean, maxMs = 10_000): boolean {
    const end = this.q.now + maxMs;
    while (!pred() && this.q.peekTime() <= end) this.q.runNext();
    return pred();
  }

  status(id: number): NodeStatus {
    return (this.member(id).node as RaftNode).status();
  }

  leaders(): number[] {
    return this.members.filter((m) => m.up && m.node?.status().role === 'leader').map((m) => m.id);
  }

  /** Proposes through `id` and runs until the proposal settles. */
  propose(id: number, entry: Uint8Array, maxMs = 5000): { ok: boolean; index?: number; result?: Uint8Array; error?: unknown } {
    let settled: { ok: boolean; index?: number; result?: Uint8Array; error?: unknown } | null = null;
    this.member(id).driver?.submit(entry, (err, v) => {
      settled = err ? { ok: false, error: err } : { ok: true, index: v?.index, result: v?.result };
    });
    this.runUntil(() => settled !== null, maxMs);
    return settled ?? { ok: false, error: 'timeout' };
  }
}
