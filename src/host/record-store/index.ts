/**
 * The host's record store (docs/record-store.md): sealed vault records and the record tree's
 * nodes, in memory, SQLite or PostgreSQL, behind one interface.
 */
import * as nodeCrypto from 'node:crypto';
import { BkvError } from '../../shared/errors.js';
import { useRecordTreeSha256 } from '../../shared/record-tree/index.js';
import { MemoryRecordStore } from './memory.js';
import { PostgresRecordStore } from './postgres.js';
import { SqliteRecordStore } from './sqlite.js';
import type { OpenRecordStoreOptions, RecordStore } from './types.js';

export type { OpenRecordStoreOptions, ProvenRead, RecordStore, RecordStoreEngine, StoreMeta, StoredRecord } from './types.js';
export { MemoryRecordStore, type MemorySnapshot } from './memory.js';
export { SqliteRecordStore } from './sqlite.js';
export { PostgresRecordStore } from './postgres.js';
export { nodeId, encodeChild, decodeChild } from './common.js';

let nativeHash = false;

/**
 * Makes the record tree hash with Node's one-shot SHA-256 (OpenSSL; several times faster than
 * @noble/hashes on these 65-byte inputs). Same function, checked against @noble before use.
 */
export function installNativeRecordTreeSha256(): void {
  if (nativeHash) return;
  const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;
  // Plain Uint8Arrays, not Buffers: callers compare, slice and keep these like @noble's results
  // (a Buffer's slice is a view). A 32-byte copy costs less than a view over the Buffer's memory.
  const view = (b: Buffer): Uint8Array => new Uint8Array(b);
  useRecordTreeSha256(
    oneShot
      ? (data) => view(oneShot('sha256', data, 'buffer'))
      : (data) => view(nodeCrypto.createHash('sha256').update(data).digest()),
  );
  nativeHash = true;
}

/**
 * A store URL fit to print or log: no user name, password or `password=` option (credentials
 * never leave the process through a log line, a status page or the CLI).
 */
export function displayStoreUrl(url: string): string {
  if (!/^postgres(ql)?:\/\//.test(url)) return url;
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    for (const k of [...u.searchParams.keys()]) if (/pass|secret|key|token/i.test(k)) u.searchParams.delete(k);
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** Opens a store: `memory:`, `sqlite:<path>`, or `postgres://user@host:port/db?schema=<name>`. */
export async function openRecordStore(url: string, opts: OpenRecordStoreOptions = {}): Promise<RecordStore> {
  installNativeRecordTreeSha256();
  if (url === 'memory:') return new MemoryRecordStore();
  if (url.startsWith('sqlite:')) return SqliteRecordStore.open(url.slice('sqlite:'.length), opts);
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return PostgresRecordStore.open(url, opts);
  throw new BkvError('USAGE', 'record store URL must be memory:, sqlite:<path> or postgres://…');
}
