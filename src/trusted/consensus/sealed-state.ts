/**
 * Persistent member state in three sealed parts (AES-256-GCM under the member's storage key,
 * random 96-bit nonces, every cleartext header authenticated as associated data):
 *
 * - the **hard state**: term, vote, learner flag, the log head (last index and term) and a
 *   reference to the current snapshot (index, term, SHA-256 of its sealed bytes), stamped with the
 *   monotonic-counter value it is bound to. Small; rewritten atomically on every persist.
 * - **log frames**: one sealed entry each, bound to (member, index, term, term of the previous
 *   entry). Appended; never rewritten by the node.
 * - the **snapshot**: the state-machine snapshot, bound to (member, index, term). Written only
 *   when the node compacts its log or installs a snapshot from the leader.
 *
 * See docs/formats/member-state.md for the byte layout and docs/consensus.md for the rollback
 * argument.
 */
import { gcm } from '@noble/ciphers/aes.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { ConsensusDecodeError, Reader, Writer } from './codec.js';
import { readEntry, writeEntry } from './messages.js';
import type { BootState, HardState, LogEntry, MemberId, SnapshotMeta, SnapshotRef } from './types.js';
import { equalBytes } from '../../shared/bytes.js';

export type { BootState, HardState, PersistRecord, SnapshotMeta, SnapshotRef } from './types.js';

export const EMPTY_BOOT: BootState = { hardState: null, logFrames: [], snapshot: null };

const VERSION = 2;
const HARD_MAGIC = [0x42, 0x4b, 0x56, 0x48]; // "BKVH"
const FRAME_MAGIC = [0x42, 0x4b, 0x56, 0x4c]; // "BKVL"
const SNAP_MAGIC = [0x42, 0x4b, 0x56, 0x50]; // "BKVP"
export const HARD_HEADER_LEN = 4 + 1 + 1 + 8 + 8 + 8 + 32 + 12;
export const FRAME_HEADER_LEN = 4 + 1 + 1 + 8 + 8 + 8 + 12;
export const SNAP_HEADER_LEN = 4 + 1 + 1 + 8 + 8 + 12;
const GCM_TAG = 16;
export const ZERO_DIGEST = new Uint8Array(32);

export class SealedStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealedStateError';
  }
}

/**
 * The primitives sealing uses: AES-256-GCM (ciphertext ‖ 16-byte tag; `open` throws on a bad tag)
 * and SHA-256. The default is @noble (pure JS, runs anywhere); a host may inject a native
 * implementation with the same results (the member process uses node:crypto).
 */
export interface SealCrypto {
  gcmSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  gcmOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array;
  sha256(data: Uint8Array): Uint8Array;
}

export const nobleSealCrypto: SealCrypto = {
  gcmSeal: (key, nonce, aad, pt) => gcm(key, nonce, aad).encrypt(pt),
  gcmOpen: (key, nonce, aad, ct) => gcm(key, nonce, aad).decrypt(ct),
  sha256: (data) => sha256(data),
};

function seal(key: Uint8Array, header: Uint8Array, nonce: Uint8Array, body: Uint8Array, c: SealCrypto): Uint8Array {
  if (nonce.length !== 12) throw new RangeError('nonce must be 12 bytes');
  const ct = c.gcmSeal(key, nonce, header, body);
  const out = new Uint8Array(header.length + ct.length);
  out.set(header);
  out.set(ct, header.length);
  return out;
}

function checkMagic(r: Reader, magic: readonly number[], what: string): void {
  for (const m of magic) if (r.u8() !== m) throw new SealedStateError(`not a sealed ${what}`);
  if (r.u8() !== VERSION) throw new SealedStateError(`unsupported sealed ${what} version`);
}

function wrap<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof SealedStateError) throw e;
    throw new SealedStateError(`sealed ${what} rejected: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------- hard state

export function sealHardState(key: Uint8Array, member: MemberId, stamp: number, nonce: Uint8Array, s: HardState, c: SealCrypto = nobleSealCrypto): Uint8Array {
  if (s.snapshot.digest.length !== 32) throw new RangeError('snapshot digest must be 32 bytes');
  const header = new Writer(HARD_HEADER_LEN).raw(new Uint8Array(HARD_MAGIC)).u8(VERSION).u8(member).u64(stamp)
    .u64(s.snapshot.index).u64(s.snapshot.term).raw(s.snapshot.digest).raw(nonce).finish();
  const w = new Writer(40);
  w.u64(s.term);
  w.u8(s.votedFor === null ? 0 : s.votedFor < 0 ? 1 : 2);
  if (s.votedFor !== null && s.votedFor >= 0) w.u8(s.votedFor);
  w.bool(s.learner).u64(s.lastIndex).u64(s.lastTerm);
  return seal(key, header, nonce, w.finish(), c);
}

/** The cleartext (authenticated) header of a hard state, for hosts: no key needed, nothing verified. */
export function peekHardState(sealed: Uint8Array): { member: MemberId; stamp: number; snapshot: SnapshotRef } {
  return wrap('hard state', () => {
    if (sealed.length < HARD_HEADER_LEN + GCM_TAG) throw new SealedStateError('sealed hard state is too short');
    const r = new Reader(sealed.subarray(0, HARD_HEADER_LEN));
    checkMagic(r, HARD_MAGIC, 'hard state');
    const member = r.u8();
    const stamp = r.u64();
    const snapshot = { index: r.u64(), term: r.u64(), digest: r.raw(32).slice() };
    return { member, stamp, snapshot };
  });
}

/** Opens a sealed hard state; throws SealedStateError if it is not this member's or was altered. */
export function openHardState(key: Uint8Array, member: MemberId, sealed: Uint8Array, c: SealCrypto = nobleSealCrypto): { stamp: number; state: HardState } {
  return wrap('hard state', () => {
    const h = peekHardState(sealed);
    if (h.member !== member) throw new SealedStateError('sealed hard state belongs to another member');
    const nonce = sealed.subarray(HARD_HEADER_LEN - 12, HARD_HEADER_LEN);
    const pt = c.gcmOpen(key, nonce, sealed.subarray(0, HARD_HEADER_LEN), sealed.subarray(HARD_HEADER_LEN));
    const r = new Reader(pt);
    const term = r.u64();
    const vk = r.u8();
    let votedFor: number | null;
    if (vk === 0) votedFor = null;
    else if (vk === 1) votedFor = -1;
    else if (vk === 2) votedFor = r.u8();
    else throw new ConsensusDecodeError('bad vote tag');
    const learner = r.bool();
    const lastIndex = r.u64();
    const lastTerm = r.u64();
    r.end();
    if (lastIndex < h.snapshot.index) throw new SealedStateError('log head below the snapshot');
    return { stamp: h.stamp, state: { term, votedFor, learner, lastIndex, lastTerm, snapshot: h.snapshot } };
  });
}

// ---------------------------------------------------------------- log frames

export interface FrameHeader {
  member: MemberId;
  index: number;
  term: number;
  prevTerm: number;
}

export function sealFrame(key: Uint8Array, member: MemberId, index: number, prevTerm: number, nonce: Uint8Array, e: LogEntry, c: SealCrypto = nobleSealCrypto): Uint8Array {
  const header = new Writer(FRAME_HEADER_LEN).raw(new Uint8Array(FRAME_MAGIC)).u8(VERSION).u8(member)
    .u64(index).u64(e.term).u64(prevTerm).raw(nonce).finish();
  const w = new Writer(64 + e.data.length);
  writeEntry(w, e);
  return seal(key, header, nonce, w.finish(), c);
}

/** The cleartext (authenticated) header of a log frame, for hosts: nothing verified. */
export function peekFrame(sealed: Uint8Array): FrameHeader {
  return wrap('log frame', () => {
    if (sealed.length < FRAME_HEADER_LEN + GCM_TAG) throw new SealedStateError('sealed log frame is too short');
    const r = new Reader(sealed.subarray(0, FRAME_HEADER_LEN));
    checkMagic(r, FRAME_MAGIC, 'log frame');
    return { member: r.u8(), index: r.u64(), term: r.u64(), prevTerm: r.u64() };
  });
}

/** Opens a log frame; throws SealedStateError if it is not this member's or was altered. */
export function openFrame(key: Uint8Array, member: MemberId, sealed: Uint8Array, c: SealCrypto = nobleSealCrypto): FrameHeader & { entry: LogEntry } {
  return wrap('log frame', () => {
    const h = peekFrame(sealed);
    if (h.member !== member) throw new SealedStateError('sealed log frame belongs to another member');
    const nonce = sealed.subarray(FRAME_HEADER_LEN - 12, FRAME_HEADER_LEN);
    const pt = c.gcmOpen(key, nonce, sealed.subarray(0, FRAME_HEADER_LEN), sealed.subarray(FRAME_HEADER_LEN));
    const r = new Reader(pt);
    const entry = readEntry(r);
    r.end();
    if (entry.term !== h.term) throw new SealedStateError('log frame term mismatch');
    return { ...h, entry };
  });
}

// ---------------------------------------------------------------- snapshot

export function sealSnapshot(key: Uint8Array, member: MemberId, nonce: Uint8Array, s: SnapshotMeta, c: SealCrypto = nobleSealCrypto): Uint8Array {
  const header = new Writer(SNAP_HEADER_LEN).raw(new Uint8Array(SNAP_MAGIC)).u8(VERSION).u8(member)
    .u64(s.index).u64(s.term).raw(nonce).finish();
  return seal(key, header, nonce, s.data, c);
}

export function snapshotDigest(sealed: Uint8Array, c: SealCrypto = nobleSealCrypto): Uint8Array {
  return c.sha256(sealed);
}

/** Opens a sealed snapshot and checks it is the one `ref` names (digest, index, term). */
export function openSnapshot(key: Uint8Array, member: MemberId, sealed: Uint8Array, ref: SnapshotRef, c: SealCrypto = nobleSealCrypto): SnapshotMeta {
  return wrap('snapshot', () => {
    if (!equalBytes(snapshotDigest(sealed, c), ref.digest)) throw new SealedStateError('snapshot does not match the digest in the hard state');
    if (sealed.length < SNAP_HEADER_LEN + GCM_TAG) throw new SealedStateError('sealed snapshot is too short');
    const r = new Reader(sealed.subarray(0, SNAP_HEADER_LEN));
    checkMagic(r, SNAP_MAGIC, 'snapshot');
    if (r.u8() !== member) throw new SealedStateError('sealed snapshot belongs to another member');
    const index = r.u64();
    const term = r.u64();
    if (index !== ref.index || term !== ref.term) throw new SealedStateError('snapshot position differs from the hard state');
    const nonce = sealed.subarray(SNAP_HEADER_LEN - 12, SNAP_HEADER_LEN);
    const data = c.gcmOpen(key, nonce, sealed.subarray(0, SNAP_HEADER_LEN), sealed.subarray(SNAP_HEADER_LEN));
    return { index, term, data };
  });
}

/** Picks, among candidate snapshot files, the one the hard state refers to (by digest), or null. */
export function selectSnapshot(hardState: Uint8Array | null, candidates: readonly Uint8Array[]): Uint8Array | null {
  if (hardState === null) return null;
  let ref: SnapshotRef;
  try {
    ref = peekHardState(hardState).snapshot;
  } catch {
    return null;
  }
  if (ref.index === 0) return null;
  for (const c of candidates) if (equalBytes(snapshotDigest(c), ref.digest)) return c;
  return null;
}

// ---------------------------------------------------------------- boot-time log reconstruction

/**
 * Rebuilds the log suffix named by the hard state from frames found on disk (any order, extra
 * frames allowed). Walks down from (lastIndex, lastTerm) following each frame's previous-term
 * binding until the snapshot. Throws SealedStateError if a needed frame is missing or altered.
 */
export function rebuildLog(key: Uint8Array, member: MemberId, hs: HardState, frames: readonly Uint8Array[], c: SealCrypto = nobleSealCrypto): LogEntry[] {
  const byPos = new Map<string, Uint8Array[]>();
  for (const f of frames) {
    let h: FrameHeader;
    try {
      h = peekFrame(f);
    } catch {
      continue;
    }
    if (h.index <= hs.snapshot.index || h.index > hs.lastIndex) continue;
    const k = `${h.index}:${h.term}`;
    const list = byPos.get(k);
    if (list) list.push(f);
    else byPos.set(k, [f]);
  }
  const n = hs.lastIndex - hs.snapshot.index;
  const out = new Array<LogEntry>(n);
  let term = hs.lastTerm;
  for (let i = hs.lastIndex; i > hs.snapshot.index; i--) {
    const cands = byPos.get(`${i}:${term}`);
    let found: (FrameHeader & { entry: LogEntry }) | null = null;
    let why = `log frame ${i} (term ${term}) is missing`;
    for (const cand of cands ?? []) {
      try {
        found = openFrame(key, member, cand, c);
        break;
      } catch (e) {
        why = (e as Error).message;
      }
    }
    if (found === null) throw new SealedStateError(why);
    out[i - hs.snapshot.index - 1] = found.entry;
    term = found.prevTerm;
  }
  if (term !== hs.snapshot.term) throw new SealedStateError('log does not join the snapshot');
  return out;
}
