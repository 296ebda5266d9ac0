import { BkvError } from '../../shared/errors.js';
import { Reader, Writer } from '../../trusted/core/codec.js';
import type { CoreEnv } from '../../trusted/core/env.js';
import type { Replicator, ReplicatedStateMachine } from '../../trusted/core/replication.js';
import { SEAL_NONCE_BYTES, seal, sealTag, sealingAad, unseal } from '../../trusted/core/sealing.js';
import type { LogStorage, MonotonicCounter } from './legacy-storage.js';

interface Pending {
  entry: Uint8Array;
  resolve: (result: Uint8Array) => void;
  reject: (err: unknown) => void;
}

export interface SingleMemberLogOptions {
  /** Take a snapshot (and drop the log) after this many entries. */
  snapshotEvery?: number;
}

/**
 * The replication seam for a one-member vault: a sealed, hash-chained, append-only local log with
 * group commit. Every proposal is durable (fsync) and the monotonic counter advanced before the
 * entry is applied and its result released. Replaced by majority consensus for a fleet.
 */
export class SingleMemberLog implements Replicator {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private lastIndex = 0;
  private lastLink: Uint8Array = new Uint8Array(0);
  private sinceSnapshot = 0;
  private failed: unknown = null;
  private readonly snapshotEvery: number;

  private constructor(
    private readonly sm: ReplicatedStateMachine,
    private readonly storage: LogStorage,
    private readonly counter: MonotonicCounter,
    private readonly key: Uint8Array,
    private readonly env: CoreEnv,
    opts: SingleMemberLogOptions,
  ) {
    this.snapshotEvery = opts.snapshotEvery ?? 10_000;
  }

  /** Loads, authenticates and replays the stored state; refuses a rolled-back disk. */
  static async open(
    sm: ReplicatedStateMachine,
    storage: LogStorage,
    counter: MonotonicCounter,
    key: Uint8Array,
    env: CoreEnv,
    opts: SingleMemberLogOptions = {},
  ): Promise<SingleMemberLog> {
    const log = new SingleMemberLog(sm, storage, counter, key, env, opts);
    await log.replay();
    return log;
  }

  get index(): number {
    return this.lastIndex;
  }

  private async replay(): Promise<void> {
    const { snapshot, frames } = await this.storage.load();
    if (snapshot) {
      const body = this.openSnapshot(snapshot);
      this.sm.restore(body.state);
      this.lastIndex = body.index;
      this.lastLink = sealTag(snapshot);
    }
    for (const frame of frames) {
      const index = this.lastIndex + 1;
      const entry = unseal(this.key, sealingAad('bkv log v1', index, this.lastLink), frame, `log entry ${index}`);
      this.sm.apply(index, entry);
      this.lastIndex = index;
      this.lastLink = sealTag(frame);
      this.sinceSnapshot++;
    }
    const durable = await this.counter.read();
    if (this.lastIndex < durable) {
      throw new BkvError(
        'TAMPERED',
        `vault storage was rolled back: it ends at entry ${this.lastIndex} but entry ${durable} was committed; refusing to serve stale counters`,
      );
    }
    if (this.lastIndex > durable) await this.counter.advanceTo(this.lastIndex);
  }

  private openSnapshot(sealed: Uint8Array): { index: number; state: Uint8Array } {
    // The snapshot's index is stored in clear in front so the AAD can be rebuilt; it is authenticated.
    const r = new Reader(sealed, 'snapshot');
    const index = r.u64();
    const body = sealed.subarray(8);
    const state = unseal(this.key, sealingAad('bkv snapshot v1', index), body, 'snapshot');
    return { index, state };
  }

  propose(entry: Uint8Array): Promise<Uint8Array> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  async readBarrier(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flushLoop(): Promise<void> {
    // Let every proposal made in this turn join the batch (group commit).
    await Promise.resolve();
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        await this.commitBatch(batch);
      }
    } finally {
      this.flushing = null;
    }
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    const frames: Uint8Array[] = [];
    let index = this.lastIndex;
    let link = this.lastLink;
    for (const p of batch) {
      index++;
      const frame = seal(this.key, this.env.random(SEAL_NONCE_BYTES), sealingAad('bkv log v1', index, link), p.entry);
      frames.push(frame);
      link = sealTag(frame);
    }
    try {
      await this.storage.append(frames);
      await this.counter.advanceTo(index);
    } catch (err) {
      // The disk state is now unknown: stop serving rather than risk answering from uncommitted state.
      this.failed = new BkvError('UNAVAILABLE', `vault storage failed: ${(err as Error).message}`);
      for (const p of batch) p.reject(this.failed);
      for (const p of this.queue) p.reject(this.failed);
      this.queue = [];
      return;
    }
    for (const p of batch) {
      this.lastIndex++;
      p.resolve(this.sm.apply(this.lastIndex, p.entry));
    }
    this.lastLink = link;
    this.sinceSnapshot += batch.length;
    if (this.sinceSnapshot >= this.snapshotEvery) await this.takeSnapshot();
  }

  private async takeSnapshot(): Promise<void> {
    const sealed = seal(
      this.key,
      this.env.random(SEAL_NONCE_BYTES),
      sealingAad('bkv snapshot v1', this.lastIndex),
      this.sm.snapshot(),
    );
    const blob = new Writer(sealed.length + 8).u64(this.lastIndex).raw(sealed).finish();
    await this.storage.replaceWithSnapshot(blob);
    this.lastLink = sealTag(blob);
    this.sinceSnapshot = 0;
  }
}
