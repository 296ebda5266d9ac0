/**
 * The host's record store (docs/record-store.md): sealed vault records and the record tree's
 * nodes, in memory, SQLite or PostgreSQL, behind one interface.
 */
import { BkvError } from '../../shared/errors.js';
import { MemoryRecordStore } from './memory.js';
import { PostgresRecordStore } from './postgres.js';
import { SqliteRecordStore } from './sqlite.js';
import type { OpenRecordStoreOptions, RecordStore } from './types.js';

export type { OpenRecordStoreOptions, ProvenRead, RecordStore, RecordStoreEngine, StoreMeta, StoredRecord } from './types.js';
export { MemoryRecordStore, type MemorySnapshot } from './memory.js';
export { SqliteRecordStore } from './sqlite.js';
export { PostgresRecordStore } from './postgres.js';
export { nodeId, encodeChild, decodeChild } from './common.js';

/** Opens a store: `memory:`, `sqlite:<path>`, or `postgres://user@host:port/db?schema=<name>`. */
export async function openRecordStore(url: string, opts: OpenRecordStoreOptions = {}): Promise<RecordStore> {
  if (url === 'memory:') return new MemoryRecordStore();
  if (url.startsWith('sqlite:')) return SqliteRecordStore.open(url.slice('sqlite:'.length), opts);
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return PostgresRecordStore.open(url, opts);
  throw new BkvError('USAGE', 'record store URL must be memory:, sqlite:<path> or postgres://…');
}
