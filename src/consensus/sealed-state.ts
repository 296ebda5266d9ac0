/**
 * Persistent member state (term, vote, learner flag, snapshot, log suffix), sealed with AES-256-GCM
 * under the member's storage key and stamped with the monotonic-counter value it will be bound to.
 * The header (member id, stamp, nonce) is authenticated as associated data.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { ConsensusDecodeError, Reader, Writer } from './codec.js';
import { readEntry, writeEntry } from './messages.js';
import type { LogEntry, MemberId } from './types.js';

export interface SnapshotMeta {
  index: number;
  term: number;
  data: Uint8Array;
}

export interface PersistentState {
  term: number;
  /** null: no vote this term; VOTE_ABSTAIN: must not vote this term; else the member voted for. */
  votedFor: number | null;
  learner: boolean;
  snapshot: SnapshotMeta;
  /** Entries at indexes snapshot.index + 1, snapshot.index + 2, ... */
  entries: LogEntry[];
}

const MAGIC = [0x42, 0x4b, 0x56, 0x53]; // "BKVS"
const VERSION = 1;
const HEADER_LEN = 4 + 1 + 1 + 8 + 12;

export class SealedStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealedStateError';
  }
}

export function encodeState(s: PersistentState): Uint8Array {
  const w = new Writer(1024);
  w.u64(s.term);
  w.u8(s.votedFor === null ? 0 : s.votedFor < 0 ? 1 : 2);
  if (s.votedFor !== null && s.votedFor >= 0) w.u8(s.votedFor);
  w.bool(s.learner);
  w.u64(s.snapshot.index).u64(s.snapshot.term).bytes(s.snapshot.data);
  w.u32(s.entries.length);
  for (const e of s.entries) writeEntry(w, e);
  return w.finish();
}

export function decodeState(b: Uint8Array): PersistentState {
  const r = new Reader(b);
  const term = r.u64();
  const vk = r.u8();
  let votedFor: number | null;
  if (vk === 0) votedFor = null;
  else if (vk === 1) votedFor = -1;
  else if (vk === 2) votedFor = r.u8();
  else throw new ConsensusDecodeError('bad vote tag');
  const learner = r.bool();
  const snapshot = { index: r.u64(), term: r.u64(), data: r.bytes() };
  const n = r.count(22);
  const entries: LogEntry[] = [];
  for (let i = 0; i < n; i++) entries.push(readEntry(r));
  r.end();
  return { term, votedFor, learner, snapshot, entries };
}

export function sealState(
  key: Uint8Array,
  member: MemberId,
  stamp: number,
  nonce: Uint8Array,
  state: PersistentState,
): Uint8Array {
  if (nonce.length !== 12) throw new RangeError('nonce must be 12 bytes');
  const header = new Writer(HEADER_LEN).raw(new Uint8Array(MAGIC)).u8(VERSION).u8(member).u64(stamp).raw(nonce).finish();
  const ct = gcm(key, nonce, header).encrypt(encodeState(state));
  const out = new Uint8Array(header.length + ct.length);
  out.set(header);
  out.set(ct, header.length);
  return out;
}

/** Opens a sealed state; throws SealedStateError if it is not this member's or was altered. */
export function openState(key: Uint8Array, member: MemberId, sealed: Uint8Array): { stamp: number; state: PersistentState } {
  try {
    const r = new Reader(sealed.subarray(0, HEADER_LEN));
    for (const m of MAGIC) if (r.u8() !== m) throw new SealedStateError('not a sealed member state');
    if (r.u8() !== VERSION) throw new SealedStateError('unsupported sealed state version');
    if (r.u8() !== member) throw new SealedStateError('sealed state belongs to another member');
    const stamp = r.u64();
    const nonce = r.raw(12);
    const pt = gcm(key, nonce, sealed.subarray(0, HEADER_LEN)).decrypt(sealed.subarray(HEADER_LEN));
    return { stamp, state: decodeState(pt) };
  } catch (e) {
    if (e instanceof SealedStateError) throw e;
    throw new SealedStateError(`sealed state rejected: ${(e as Error).message}`);
  }
}
