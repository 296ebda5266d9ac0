/**
 * Host side of the record store: writes each committed batch's sealed records into the member's
 * store, in log order, and tells the core what root the store computed, so the core can spot a
 * store that drifted (torn writes, edits, an old copy restored). When the store has a gap (it
 * missed batches: a snapshot was installed, or the database was rolled back or lost) or the core
 * finds it corrupt, the writer repairs it: it streams a peer's whole store, has it checked against
 * the root the core committed for that batch, swaps it in, and replays the batches since.
 *
 * With `group`, a member that is not leading writes several committed batches in one store
 * transaction: a batch waits at most `maxDelayMs` for others (at most `maxBatches` per
 * transaction), unless someone needs the store in step (the core asks through
 * `RecordState.onStoreWanted`, e.g. a member that became leader before its first batch): then the
 * queue is written at once. A transaction holds whole batches and is atomic, so after a crash the
 * store holds some committed prefix; the core checks the root of the last batch of each.
 *
 * Untrusted code: a writer that lies only hurts availability; the core checks every record it reads.
 * No `node:` imports (the deterministic simulator runs it too).
 */
import { equalBytes } from '../../shared/bytes.js';
import { isBkvError } from '../../shared/errors.js';
import { decodeBatch, isBatch } from '../../trusted/records/batch.js';
import { decodeAppliedOutcome, decodeControlDrop, type BatchPoint, type StoreHealth } from '../../trusted/records/record-state.js';
import { isControlEntry } from '../../trusted/groups/state.js';
import { SLOTS, slotFirstId } from '../../trusted/groups/range.js';
import type { RecordStore, StoreMeta, StoredRecord } from './types.js';

/** What the writer needs from the member's core. */
export interface StoreCoreView {
  storeApplied(index: number, root: Uint8Array): StoreHealth;
  storeHealth(): StoreHealth;
  pointAt(index: number): BatchPoint | undefined;
  readonly lastBatchIndex: number;
}

/** A peer's store, exported: where it is and its records in key order. */
export interface PeerExport {
  peer: string;
  meta: { index: number; root: Uint8Array; count: number };
  pages: AsyncIterable<StoredRecord[]>;
}

export interface StoreWriterOptions {
  /** Exports of peers' stores to repair from, in order of preference (none: this member cannot repair). */
  peerExports?: () => AsyncIterable<PeerExport> | Iterable<Promise<PeerExport>>;
  /** Host timer. */
  wait: (ms: number) => Promise<void>;
  /** Progress and events, one line each. */
  onEvent?: (line: string) => void;
  /** Batches kept after they are written, to replay after a repair (default 4096). */
  keep?: number;
  /** Write several committed batches in one store transaction (see above); default: one each. */
  group?: StoreGroupOptions;
}

export interface StoreGroupOptions {
  /** Longest a committed batch waits for later ones to share its transaction, in ms of `wait`. */
  maxDelayMs: number;
  /** Most batches in one transaction; a full group is written at once. */
  maxBatches: number;
  /** Whether to group now (a member host: while the member is not the leader). Default: always. */
  when?: () => boolean;
}

interface PendingBatch {
  index: number;
  prev: number;
  writes: StoredRecord[];
  /** A range whose records leave the store at this index (a done entry of a range transfer), written alone. */
  drop?: { from: Uint8Array; to: Uint8Array | null };
}

export type WriterState = 'in-step' | 'writing' | 'gap' | 'repairing' | 'corrupt';

export class StoreWriter {
  private meta: StoreMeta = { index: 0, root: new Uint8Array(32), count: 0 };
  private queue: PendingBatch[] = [];
  private recent: PendingBatch[] = [];
  private pumping = false;
  private repairing = false;
  private closed = false;
  private problem: string | null = null;
  /** Repairs since the store last verified. */
  private sinceOk = 0;
  /** Someone needs the store in step: write what is queued without waiting for a group. */
  private urgent = false;
  /** Ends a group's wait early (a flush, or a full group). */
  private wake: (() => void) | null = null;
  /** `written`: batches; `transactions`: store transactions that wrote them. */
  readonly stats = { written: 0, transactions: 0, repairs: 0, repairedRecords: 0, failedRepairs: 0 };

  constructor(
    private readonly store: RecordStore,
    private readonly core: StoreCoreView,
    private readonly opts: StoreWriterOptions,
  ) {}

  /** Reads the store's position and reports it to the core. */
  async open(): Promise<void> {
    this.meta = await this.store.meta();
    this.core.storeApplied(this.meta.index, this.meta.root);
    if (this.meta.index < this.core.lastBatchIndex && this.core.pointAt(this.meta.index) === undefined) {
      this.needRepair(`the store is at batch ${this.meta.index}, before this member's state (batch ${this.core.lastBatchIndex})`);
    }
  }

  get storeMeta(): StoreMeta {
    return this.meta;
  }

  state(): { state: WriterState; problem: string | null; storeIndex: number; queued: number } {
    const s: WriterState = this.repairing ? 'repairing' : this.problem ? (this.core.storeHealth().state === 'corrupt' ? 'corrupt' : 'gap') : this.queue.length > 0 ? 'writing' : 'in-step';
    return { state: s, problem: this.problem, storeIndex: this.meta.index, queued: this.queue.length };
  }

  /** Hands over one committed log entry and its result (every member, every entry). */
  committed(index: number, entry: Uint8Array, result: Uint8Array): void {
    if (isControlEntry(entry)) {
      // A done entry that dropped the moved range from the tree: the store deletes the range's rows
      // at this index, in log order with the batches (gap checks and repairs as for a batch).
      let d;
      try {
        d = decodeControlDrop(result);
      } catch {
        return;
      }
      if (!d) return;
      const drop = { from: slotFirstId(d.range.start), to: d.range.end >= SLOTS ? null : slotFirstId(d.range.end) };
      this.queue.push({ index, prev: d.prev, writes: [], drop });
      if (this.opts.group && this.queue.length >= this.opts.group.maxBatches) this.wake?.();
      void this.pump();
      return;
    }
    if (!isBatch(entry)) return;
    let outcome;
    try {
      outcome = decodeAppliedOutcome(result);
    } catch {
      return;
    }
    if (outcome.status !== 'applied') return;
    const writes = decodeBatch(entry).items.filter((it) => it.value).map((it) => ({ key: it.key, value: it.value as Uint8Array }));
    this.queue.push({ index, prev: outcome.prev ?? 0, writes });
    if (this.opts.group && this.queue.length >= this.opts.group.maxBatches) this.wake?.();
    void this.pump();
  }

  /** Writes every queued batch now, without waiting for a group (the member must lead or serve a read). */
  flush(): void {
    if (this.queue.length === 0) return;
    this.urgent = true;
    this.wake?.();
    void this.pump();
  }

  /** The core installed a snapshot from the leader: the store will have a gap unless it is at that batch. */
  restored(): void {
    void this.pump();
    if (this.queue.length > 0) return;
    if (this.meta.index !== this.core.lastBatchIndex) {
      this.needRepair(`a snapshot at batch ${this.core.lastBatchIndex} was installed; the store is at batch ${this.meta.index}`);
    } else if (!this.repairing) {
      // The store is already at the snapshot's batch: tell the core (a restore forgets what the
      // store holds), or a group that gets no further batch would wait for its store forever.
      this.report(this.core.storeApplied(this.meta.index, this.meta.root));
    }
  }

  /** The core reported the store corrupt (a read did not verify). */
  corrupt(reason: string): void {
    this.needRepair(reason);
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /** Waits up to the group delay for more batches, unless grouping is off or a flush is asked. */
  private async gather(): Promise<void> {
    const g = this.opts.group;
    if (!g || this.urgent || this.queue.length >= g.maxBatches || (g.when && !g.when())) return;
    await Promise.race([
      this.opts.wait(g.maxDelayMs),
      new Promise<void>((resolve) => { this.wake = resolve; }),
    ]);
    this.wake = null;
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.repairing || this.closed) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.repairing && !this.closed) {
        const b = this.queue[0]!;
        if (b.index <= this.meta.index) {
          this.queue.shift();
          // A replay of a batch the store already holds (or claims to: a torn write can move its
          // meta on): the core checks the store's root for it. Kept, so that a repair that lands
          // before it replays it.
          if (b.index === this.meta.index) {
            this.keep(b);
            this.report(this.core.storeApplied(b.index, this.meta.root));
          }
          continue;
        }
        if (b.prev !== this.meta.index) {
          this.needRepair(`the store is at batch ${this.meta.index} but the next batch follows batch ${b.prev}`);
          return;
        }
        if (this.opts.group) {
          await this.gather();
          if (this.repairing || this.closed) break;
          if (this.queue[0] !== b) continue; // a repair replaced the queue meanwhile
        }
        // The batches that follow this one without a gap, up to the group size, in one transaction.
        // A range deletion goes alone, in its own transaction.
        const group = [b];
        const max = b.drop ? 1 : this.opts.group?.maxBatches ?? 1;
        for (let k = 1; k < this.queue.length && group.length < max; k++) {
          const nb = this.queue[k]!;
          if (nb.prev !== group[group.length - 1]!.index || nb.drop) break;
          group.push(nb);
        }
        const last = group[group.length - 1]!;
        try {
          if (b.drop) this.meta = await this.store.deleteRange(b.index, b.drop.from, b.drop.to);
          else this.meta = await this.store.apply(last.index, group.length === 1 ? b.writes : group.flatMap((g) => g.writes));
        } catch (e) {
          if (isBkvError(e, 'CONFLICT')) {
            this.meta = await this.store.meta();
            continue;
          }
          this.opts.onEvent?.(`record store write failed at batch ${b.index}: ${(e as Error).message}; retrying`);
          await this.opts.wait(100);
          continue;
        }
        this.queue.splice(0, group.length);
        for (const g of group) this.keep(g);
        this.stats.written += group.length;
        this.stats.transactions++;
        this.report(this.core.storeApplied(last.index, this.meta.root));
      }
      if (this.queue.length === 0) this.urgent = false;
    } finally {
      this.pumping = false;
    }
  }

  private report(h: StoreHealth): void {
    if (h.state === 'corrupt') this.needRepair(h.reason);
    else if (h.state === 'ok') {
      this.problem = null;
      this.sinceOk = 0;
    }
  }

  private keep(b: PendingBatch): void {
    const last = this.recent[this.recent.length - 1];
    if (last && last.index >= b.index) return;
    this.recent.push(b);
    const max = this.opts.keep ?? 4096;
    if (this.recent.length > max) this.recent.splice(0, this.recent.length - max);
  }

  private needRepair(reason: string): void {
    this.problem = reason;
    if (this.repairing || this.closed) return;
    if (!this.opts.peerExports) {
      this.opts.onEvent?.(`record store needs repair (${reason}) and this member has no peers to repair from`);
      return;
    }
    this.repairing = true;
    this.opts.onEvent?.(`record store needs repair: ${reason}`);
    void this.repair().finally(() => {
      this.repairing = false;
      void this.pump();
    });
  }

  /** Replaces the store with a peer's copy checked against a root this member committed, then replays. */
  private async repair(): Promise<void> {
    // Back off when repairs follow each other without the store ever verifying in between (a
    // repair whose replay lands on a wrong root again would otherwise spin).
    if (this.sinceOk > 0) await this.opts.wait(Math.min(2000, 100 * this.sinceOk));
    this.sinceOk++;
    for (let round = 0; round < 50 && !this.closed; round++) {
      const peers = this.opts.peerExports!();
      for await (const got of peers as AsyncIterable<PeerExport>) {
        let exp: PeerExport;
        try {
          exp = await got;
        } catch (e) {
          this.opts.onEvent?.(`record store repair: a peer could not export (${(e as Error).message})`);
          continue;
        }
        const point = this.core.pointAt(exp.meta.index);
        if (!point) {
          this.opts.onEvent?.(`record store repair: ${exp.peer} is at batch ${exp.meta.index}, which this member has not applied or no longer remembers`);
          continue;
        }
        if (!equalBytes(point.root, exp.meta.root)) {
          this.opts.onEvent?.(`record store repair: ${exp.peer}'s store does not match the committed root at batch ${exp.meta.index}`);
          continue;
        }
        const replay = batchesAfter(exp.meta.index, [...this.recent, ...this.queue]);
        const first = replay[0];
        if (first && first.prev !== exp.meta.index) {
          this.opts.onEvent?.(`record store repair: ${exp.peer}'s copy (batch ${exp.meta.index}) is too old to replay from here`);
          continue;
        }
        try {
          this.meta = await this.store.replace({ index: exp.meta.index, root: point.root }, exp.pages, (n: number) => {
            if (n % 100_000 === 0) this.opts.onEvent?.(`record store repair: ${n} records from ${exp.peer}`);
          });
        } catch (e) {
          this.stats.failedRepairs++;
          this.opts.onEvent?.(`record store repair from ${exp.peer} failed: ${(e as Error).message}`);
          continue;
        }
        this.stats.repairs++;
        this.stats.repairedRecords += this.meta.count;
        // Batches committed while the copy streamed in joined the queue: replay those too, each once, in order.
        this.queue = batchesAfter(exp.meta.index, [...this.recent, ...this.queue]);
        this.recent = this.recent.filter((b) => b.index <= exp.meta.index);
        this.problem = null;
        this.report(this.core.storeApplied(this.meta.index, this.meta.root));
        this.opts.onEvent?.(`record store repaired from ${exp.peer}: ${this.meta.count} records at batch ${this.meta.index}; replaying ${this.queue.length} batches`);
        return;
      }
      await this.opts.wait(Math.min(2000, 100 * (round + 1)));
    }
  }
}

/** The batches after `index`, each once (the kept and the queued lists may share one), in log order. */
function batchesAfter(index: number, batches: PendingBatch[]): PendingBatch[] {
  const byIndex = new Map<number, PendingBatch>();
  for (const b of batches) if (b.index > index && !byIndex.has(b.index)) byIndex.set(b.index, b);
  return [...byIndex.values()].sort((a, b) => a.index - b.index);
}
