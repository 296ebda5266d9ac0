/**
 * Replication groups without consensus: each group is an instant log with one member (the real
 * RecordState with a group config, MemberRecords over a MemoryRecordStore, the batcher and the
 * transfer coordinator). For unit and adversarial tests of the ownership check and transfers.
 */
import { MemoryRecordStore } from '../../src/host/record-store/memory.js';
import { MemberRecords } from '../../src/host/record-store/member-records.js';
import { GroupKeys } from '../../src/trusted/groups/messages.js';
import { containsId, type KeyRange } from '../../src/trusted/groups/range.js';
import { TransferCoordinator } from '../../src/trusted/groups/transfer.js';
import type { Command } from '../../src/trusted/records/commands.js';
import { RecordBatcher } from '../../src/trusted/records/batcher.js';
import { recordId } from '../../src/trusted/records/record-keys.js';
import { RecordState } from '../../src/trusted/records/record-state.js';
import { InstantLog, KEYS, wait } from '../records/harness.js';

export const STORAGE_KEY = new Uint8Array(32).fill(42); // the key KEYS derive from
export const GROUP_KEYS = new GroupKeys(STORAGE_KEY);

export interface TestGroup {
  id: number;
  log: InstantLog;
  state: RecordState;
  store: MemoryRecordStore;
  records: MemberRecords;
  batcher: RecordBatcher;
  transfers: TransferCoordinator;
}

export function makeGroup(id: number, groups: number, keys = GROUP_KEYS): TestGroup {
  const log = new InstantLog();
  const state = new RecordState({ id, groups, keys });
  const store = new MemoryRecordStore();
  const records = new MemberRecords(store, state, { wait });
  log.members.push({ events: [], state, store, records });
  const leadership = { isLeader: () => true, leaderHint: () => null, caughtUp: () => true };
  const batcher = new RecordBatcher(KEYS, state, records.reader, log, leadership,
    { now: () => 1_700_000_000_000, random: (n) => crypto.getRandomValues(new Uint8Array(n)), wait }, { storeWaitMs: 200 });
  return { id, log, state, store, records, batcher, transfers: new TransferCoordinator(state, records.reader, log, leadership) };
}

/** `n` account names whose record ids fall in `range`. */
export function usersIn(range: KeyRange, n: number, prefix = 'u'): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (containsId(range, recordId(KEYS, `${prefix}${i}`))) out.push(`${prefix}${i}`);
  return out;
}

export function register(user: string, limit = 3): Command {
  return { type: 'register', ts: 1_700_000_000_000, user, opaqueRecord: new Uint8Array(32).fill(1), wrappedKey: new Uint8Array(60).fill(2), ksf: { memory: 65536, iterations: 3, parallelism: 4 }, limit };
}

export function attempt(user: string): Command {
  return { type: 'attempt', ts: 1_700_000_000_000, user, attemptId: crypto.getRandomValues(new Uint8Array(16)) };
}

/** The ids (sorted) of every record of `range` in a group's store: what the host lists for chunks. */
export async function storeKeys(g: TestGroup, range: KeyRange): Promise<Uint8Array[]> {
  const e = await g.store.export(64);
  const out: Uint8Array[] = [];
  for await (const page of e.pages) for (const r of page) if (containsId(range, r.key)) out.push(r.key);
  return out;
}

/** Everything that identifies a group's committed state (for "nothing changed" checks). */
export function fingerprint(g: TestGroup): string {
  return Buffer.from(g.state.snapshot()).toString('hex') + `/${g.log.index}`;
}
