/**
 * Authenticated group-to-group messages of a range transfer. Each names its phase, the source and
 * destination groups, the transfer number, the range and the range digest, and ends with an
 * HMAC-SHA256 under the key of the ordered pair (sender group, receiver group), derived from the
 * fleet storage key that only cores hold. Bytes: docs/formats/groups.md.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../../shared/errors.js';
import { equalBytes } from '../../shared/bytes.js';
import { Reader, Writer } from '../core/codec.js';
import { MAX_BATCH_KEYS } from '../records/batch.js';
import { RECORD_ID_BYTES } from '../records/record-keys.js';
import { MAX_GROUPS, readRange, writeRange, type KeyRange } from './range.js';

export const MESSAGE_TAG = 0x54;
export const MESSAGE_VERSION = 1;
const MAC_BYTES = 32;
const MAX_VALUE = 4096;
const te = new TextEncoder();

export type Phase = 'offer' | 'chunk' | 'accepted' | 'refused' | 'cancel';
const PHASE: Record<Phase, number> = { offer: 1, chunk: 2, accepted: 3, refused: 4, cancel: 5 };
const PHASES: Phase[] = ['offer', 'chunk', 'accepted', 'refused', 'cancel'];

export interface TransferHeader {
  source: number;
  dest: number;
  seq: number;
  range: KeyRange;
  digest: Uint8Array;
}

export interface ChunkBody {
  index: number;
  records: Array<{ key: Uint8Array; value: Uint8Array }>;
}

export type TransferMessage = TransferHeader & ({ phase: Exclude<Phase, 'chunk'> } | ({ phase: 'chunk' } & ChunkBody));

/** Sender → receiver keys for every ordered pair of groups, derived once from the storage key. */
export class GroupKeys {
  private readonly cache = new Map<number, Uint8Array>();
  constructor(private readonly storageKey: Uint8Array) {}

  key(from: number, to: number): Uint8Array {
    const k = from * 256 + to;
    let v = this.cache.get(k);
    if (!v) {
      v = hkdf(sha256, this.storageKey, new Uint8Array(0), new Uint8Array([...te.encode('bkv group transfer v1'), from, to]), 32);
      this.cache.set(k, v);
    }
    return v;
  }
}

/** Offer, chunk and cancel go from source to dest; the replies back. */
export function senderOf(m: { phase: Phase; source: number; dest: number }): { from: number; to: number } {
  return m.phase === 'accepted' || m.phase === 'refused' ? { from: m.dest, to: m.source } : { from: m.source, to: m.dest };
}

export function encodeMessage(keys: GroupKeys, m: TransferMessage): Uint8Array {
  const w = new Writer(128).u8(MESSAGE_TAG).u8(MESSAGE_VERSION).u8(PHASE[m.phase]).u8(m.source).u8(m.dest).u64(m.seq);
  writeRange(w, m.range).raw(m.digest);
  if (m.phase === 'chunk') {
    w.u32(m.index).u32(m.records.length);
    for (const r of m.records) w.raw(r.key).bytes(r.value);
  }
  const body = w.finish();
  const { from, to } = senderOf(m);
  return new Writer(body.length + MAC_BYTES).raw(body).raw(hmac(sha256, keys.key(from, to), body)).finish();
}

/**
 * Opens a message addressed to group `self`. Throws MALFORMED for bytes that do not parse,
 * VERIFICATION_FAILED with `reason: 'wrong-group'` for a message to another group, `'bad-mac'` for
 * a MAC that does not verify.
 */
export function openMessage(keys: GroupKeys, bytes: Uint8Array, self: number): TransferMessage {
  if (bytes.length < MAC_BYTES + 2) throw new BkvError('MALFORMED', 'transfer message too short');
  const body = bytes.subarray(0, bytes.length - MAC_BYTES);
  const r = new Reader(body, 'transfer message');
  if (r.u8() !== MESSAGE_TAG) throw new BkvError('MALFORMED', 'not a transfer message');
  const v = r.u8();
  if (v !== MESSAGE_VERSION) throw new BkvError('MALFORMED', `transfer message version ${v} is not supported`);
  const p = r.u8();
  const phase = PHASES[p - 1];
  if (!phase) throw new BkvError('MALFORMED', `unknown transfer phase ${p}`);
  const source = r.u8();
  const dest = r.u8();
  if (source >= MAX_GROUPS || dest >= MAX_GROUPS || source === dest) throw new BkvError('MALFORMED', 'transfer message names bad groups');
  const seq = r.u64();
  const range = readRange(r);
  const digest = r.raw(32);
  let chunk: ChunkBody | null = null;
  if (phase === 'chunk') {
    const index = r.u32();
    const n = r.u32();
    if (n > MAX_BATCH_KEYS) throw new BkvError('MALFORMED', `a chunk carries at most ${MAX_BATCH_KEYS} records`);
    const records = [];
    for (let i = 0; i < n; i++) records.push({ key: r.raw(RECORD_ID_BYTES), value: r.bytes(MAX_VALUE) });
    chunk = { index, records };
  }
  r.end();
  const { from, to } = senderOf({ phase, source, dest });
  if (to !== self) throw new BkvError('VERIFICATION_FAILED', `transfer message for group ${to}, this is group ${self}`, { reason: 'wrong-group' });
  if (!equalBytes(hmac(sha256, keys.key(from, to), body), bytes.subarray(bytes.length - MAC_BYTES))) {
    throw new BkvError('VERIFICATION_FAILED', `transfer message from group ${from} has a bad MAC`, { reason: 'bad-mac' });
  }
  const head = { source, dest, seq, range, digest };
  return chunk ? { ...head, phase: 'chunk', ...chunk } : { ...head, phase: phase as Exclude<Phase, 'chunk'> };
}
