/**
 * A record batch: the one kind of replicated log entry the vault writes. The leader reads the
 * records a group of commands needs (each with a proof against the committed root), runs the
 * commands, seals the changed records and proposes the batch. Every member applies it by checking
 * the proofs against its own root and computing the new root; the host then stores the sealed
 * values. Byte layout: docs/formats/vault-records.md.
 */
import { BkvError } from '../../shared/errors.js';
import { Reader, Writer } from '../core/codec.js';
import { RECORD_ID_BYTES } from './record-keys.js';

export const BATCH_TAG = 0x42;
export const BATCH_VERSION = 1;
/** Most keys one batch may touch (bounds the work of applying it). */
export const MAX_BATCH_KEYS = 256;
const MAX_PROOF = 2 + 64 + 2 + 32 + 256 * 32 + 64;
const MAX_VALUE = 4096;

export interface BatchItem {
  key: Uint8Array;
  /** Proof of the key's value (or absence) against the root the batch applies to. */
  proof: Uint8Array;
  /** The new sealed value, if the batch changes this record. */
  value?: Uint8Array;
}

/**
 * `commands`: the leader ran vault commands; `import`: records carried over from an earlier release;
 * `transfer`: records of a range another replication group is handing over (docs/groups.md).
 */
export type BatchKind = 'commands' | 'import' | 'transfer';

export interface Batch {
  kind: BatchKind;
  ts: number;
  items: BatchItem[];
}

const KIND = { commands: 0, import: 1, transfer: 2 } as const;
const KINDS: BatchKind[] = ['commands', 'import', 'transfer'];

export function encodeBatch(b: Batch): Uint8Array {
  const w = new Writer(256 + b.items.length * 1024).u8(BATCH_TAG).u8(BATCH_VERSION).u8(KIND[b.kind]).u64(b.ts).u32(b.items.length);
  for (const it of b.items) {
    w.raw(it.key).bytes(it.proof);
    if (it.value) w.u8(1).bytes(it.value);
    else w.u8(0);
  }
  return w.finish();
}

export function isBatch(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === BATCH_TAG;
}

export function decodeBatch(bytes: Uint8Array): Batch {
  const r = new Reader(bytes, 'record batch');
  if (r.u8() !== BATCH_TAG) throw new BkvError('MALFORMED', 'not a record batch');
  const version = r.u8();
  if (version !== BATCH_VERSION) throw new BkvError('MALFORMED', `record batch version ${version} is not supported`);
  const kindByte = r.u8();
  const kind = KINDS[kindByte];
  if (!kind) throw new BkvError('MALFORMED', `record batch has an unknown kind ${kindByte}`);
  const ts = r.u64();
  const n = r.count(RECORD_ID_BYTES + 5);
  if (n === 0 || n > MAX_BATCH_KEYS) throw new BkvError('MALFORMED', `record batch has ${n} items (1 to ${MAX_BATCH_KEYS})`);
  const items: BatchItem[] = [];
  for (let i = 0; i < n; i++) {
    const key = r.raw(RECORD_ID_BYTES);
    const proof = r.bytes(MAX_PROOF);
    const has = r.u8();
    if (has > 1) throw new BkvError('MALFORMED', 'record batch has a bad flag');
    items.push(has === 1 ? { key, proof, value: r.bytes(MAX_VALUE) } : { key, proof });
  }
  r.end();
  return { kind, ts, items };
}

/** What applying a batch gave: applied (new root and record count), stale (proofs no longer match) or invalid. */
export type BatchOutcome =
  | { status: 'applied'; root: Uint8Array; count: number }
  | { status: 'stale' | 'invalid' };

const OUTCOME = { invalid: 0, applied: 1, stale: 2 } as const;

export function encodeOutcome(o: BatchOutcome): Uint8Array {
  const w = new Writer(48).u8(OUTCOME[o.status]);
  if (o.status === 'applied') w.raw(o.root).u64(o.count);
  return w.finish();
}

export function decodeOutcome(bytes: Uint8Array): BatchOutcome {
  const r = new Reader(bytes, 'batch outcome');
  const s = r.u8();
  let out: BatchOutcome;
  if (s === OUTCOME.applied) out = { status: 'applied', root: r.raw(32), count: r.u64() };
  else if (s === OUTCOME.stale) out = { status: 'stale' };
  else if (s === OUTCOME.invalid) out = { status: 'invalid' };
  else throw new BkvError('MALFORMED', `unknown batch outcome ${s}`);
  r.end();
  return out;
}
