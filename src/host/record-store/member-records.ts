/**
 * The record store as a member's host runs it: the store itself (opened from `--store`), the
 * writer that follows the member's committed batches, and the reader the core's batcher reads
 * through. No `node:` imports: the simulator wires members the same way.
 */
import type { NodeOutput } from '../../trusted/consensus/types.js';
import type { ProvenReads, RecordReader } from '../../trusted/records/batcher.js';
import type { RecordState } from '../../trusted/records/record-state.js';
import type { RecordStore } from './types.js';
import { StoreWriter, type PeerExport, type StoreGroupOptions, type WriterState } from './store-writer.js';

export interface MemberRecordsOptions {
  peerExports?: () => AsyncIterable<PeerExport>;
  wait: (ms: number) => Promise<void>;
  onEvent?: (line: string) => void;
  /** Write several committed batches per store transaction while this member does not lead. */
  group?: StoreGroupOptions;
}

export interface MemberRecordsStatus {
  engine: RecordStore['engine'];
  /** in-step, writing, gap (missed batches), repairing or corrupt. */
  state: WriterState;
  problem: string | null;
  /** Last batch the store holds, and the last batch the core applied. */
  storeBatch: number;
  coreBatch: number;
  records: number;
  repairs: number;
  /** Batches this process wrote to the store, and the store transactions that wrote them (groups). */
  written: number;
  transactions: number;
}

export class MemberRecords {
  readonly writer: StoreWriter;
  readonly reader: RecordReader;

  constructor(
    readonly store: RecordStore,
    private readonly state: RecordState,
    opts: MemberRecordsOptions,
  ) {
    this.writer = new StoreWriter(store, state, {
      wait: opts.wait,
      ...(opts.peerExports ? { peerExports: opts.peerExports } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.group ? { group: opts.group } : {}),
    });
    this.reader = {
      read: (keys): Promise<ProvenReads> => store.read(keys),
      listKeys: (from, to, limit) => store.listKeys(from, to, limit),
    };
    state.onStoreCorrupt = (reason) => this.writer.corrupt(reason);
    state.onStoreWanted = () => this.writer.flush();
  }

  open(): Promise<void> {
    return this.writer.open();
  }

  /** Feed every consensus output through here (the driver's `onOutput`). */
  onOutput(o: NodeOutput): void {
    if (o.type === 'committed') this.writer.committed(o.index, o.entry, o.result);
    else if (o.type === 'restored') this.writer.restored();
  }

  status(): MemberRecordsStatus {
    const w = this.writer.state();
    return {
      engine: this.store.engine,
      state: w.state,
      problem: w.problem,
      storeBatch: w.storeIndex,
      coreBatch: this.state.lastBatchIndex,
      records: this.state.count,
      repairs: this.writer.stats.repairs,
      written: this.writer.stats.written,
      transactions: this.writer.stats.transactions,
    };
  }

  async close(): Promise<void> {
    this.writer.close();
    await this.store.close();
  }
}
