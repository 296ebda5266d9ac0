/**
 * A vault's record path without consensus: a log that commits instantly (every member applies each
 * entry at once), the real RecordState, RecordBatcher, StoreWriter and a MemoryRecordStore per
 * member. For unit tests of the record path; the simulator runs it under real consensus and faults.
 */
import { MemoryRecordStore } from '../../src/host/record-store/memory.js';
import { MemberRecords } from '../../src/host/record-store/member-records.js';
import type { PeerExport, StoreGroupOptions } from '../../src/host/record-store/store-writer.js';
import type { Replicator } from '../../src/trusted/core/replication.js';
import { RecordBatcher } from '../../src/trusted/records/batcher.js';
import { deriveRecordKeys } from '../../src/trusted/records/record-keys.js';
import { RecordState } from '../../src/trusted/records/record-state.js';

export const KEYS = deriveRecordKeys(new Uint8Array(32).fill(42));
export const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.min(ms, 20)));

export interface TestMember {
  events: string[];
  state: RecordState;
  store: MemoryRecordStore;
  records: MemberRecords;
}

export class InstantLog implements Replicator {
  index = 0;
  readonly entries: Uint8Array[] = [];
  readonly members: TestMember[] = [];

  async propose(entry: Uint8Array): Promise<Uint8Array> {
    const index = ++this.index;
    this.entries.push(entry);
    let mine: Uint8Array | null = null;
    for (const m of this.members) {
      const result = m.state.apply(index, entry);
      m.records.onOutput({ type: 'committed', index, entry, result });
      mine ??= result;
    }
    return mine!;
  }

  async readBarrier(): Promise<void> {}

  /** `slowExport`: a peer's export pauses this long between pages (to commit batches meanwhile). */
  /** `group`: the member writes several batches per store transaction; `memberWait`: its writer's timer. */
  addMember(peers = true, slowExport = 0, group?: StoreGroupOptions, memberWait = wait): TestMember {
    const state = new RecordState();
    const store = new MemoryRecordStore();
    const others = () => this.members.filter((m) => m.state !== state);
    const slow = async function* (pages: AsyncIterable<Array<{ key: Uint8Array; value: Uint8Array }>>) {
      for await (const p of pages) {
        await new Promise((r) => setTimeout(r, slowExport));
        yield p;
      }
    };
    const peerExports = async function* (): AsyncGenerator<PeerExport> {
      for (const o of others()) {
        const exp = await o.store.export(1);
        yield { peer: 'peer', meta: exp.meta, pages: slowExport > 0 ? slow(exp.pages) : exp.pages };
      }
    };
    const events: string[] = [];
    const records = new MemberRecords(store, state, {
      wait: memberWait, onEvent: (l) => events.push(l), ...(peers ? { peerExports } : {}), ...(group ? { group } : {}),
    });
    const m = { events, state, store, records };
    this.members.push(m);
    return m;
  }

  batcher(m: TestMember): RecordBatcher {
    return new RecordBatcher(
      KEYS,
      m.state,
      m.records.reader,
      this,
      { isLeader: () => true, leaderHint: () => null, caughtUp: () => true },
      { now: () => 1_700_000_000_000, random: (n) => crypto.getRandomValues(new Uint8Array(n)), wait },
      { storeWaitMs: 200 },
    );
  }
}

/** Waits until every member's store holds every applied batch. */
export async function settle(log: InstantLog): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (log.members.every((m) => m.records.status().state === 'in-step' && m.state.storeHealth().state === 'ok')) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}
