/**
 * A replication group's committed state: its id, the range it owns, its outgoing and incoming
 * transfer (at most one of each), the last transfer each source sent it, and hints about who owns
 * the rest of the space. Changed only by control entries applied in log order (every member the
 * same); each entry is checked in full before anything changes, so a refused entry changes nothing.
 * Design: docs/groups.md; bytes: docs/formats/groups.md.
 */
import { BkvError } from '../../shared/errors.js';
import { equalBytes } from '../../shared/bytes.js';
import { Reader, Writer } from '../core/codec.js';
import { rangeDigest } from './digest.js';
import { openMessage, type GroupKeys, type TransferMessage } from './messages.js';
import {
  EMPTY_RANGE, MAX_GROUPS, containsId, genesisRange, isEmpty, join, readRange, removeEnd, sameRange, writeRange, type KeyRange,
} from './range.js';

export const CONTROL_TAG = 0x47;
export const CONTROL_VERSION = 1;
const MAX_HINTS = 64;
const MAX_PROOF = 2 + 64 + 2 + 32 + 256 * 32 + 64;

export interface Outgoing { seq: number; range: KeyRange; dest: number; digest: Uint8Array }
export interface Incoming { source: number; seq: number; range: KeyRange; digest: Uint8Array }
export interface LastTransfer { seq: number; accepted: boolean; range: KeyRange; digest: Uint8Array }

export type ControlEntry =
  | { kind: 'out'; seq: number; range: KeyRange; dest: number; proofs: Uint8Array[] }
  | { kind: 'prepare'; offer: Uint8Array }
  | { kind: 'accept'; source: number; seq: number; proofs: Uint8Array[] }
  | { kind: 'refuse'; source: number; seq: number }
  | { kind: 'done'; reply: Uint8Array }
  | { kind: 'abort'; reply: Uint8Array };

const KIND = { out: 1, prepare: 2, accept: 3, refuse: 4, done: 5, abort: 6 } as const;

export interface GroupConfig {
  /** This group's id (0 … 63). */
  id: number;
  /** Groups at genesis: they split the space evenly; ids from here up start empty. */
  groups: number;
  /** Keys of the group-to-group messages (from the fleet storage key). */
  keys: GroupKeys;
  /** TEST ONLY: keep serving a range that is moving out (shows that the simulator's checker can fail). */
  unsafeServeMoving?: boolean;
}

export function isControlEntry(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === CONTROL_TAG;
}

export function encodeControl(e: ControlEntry): Uint8Array {
  const w = new Writer(256).u8(CONTROL_TAG).u8(CONTROL_VERSION).u8(KIND[e.kind]);
  if (e.kind === 'out') {
    writeRange(w.u64(e.seq), e.range).u8(e.dest).u8(e.proofs.length);
    for (const p of e.proofs) w.bytes(p);
  } else if (e.kind === 'prepare') w.bytes(e.offer);
  else if (e.kind === 'accept') {
    w.u8(e.source).u64(e.seq).u8(e.proofs.length);
    for (const p of e.proofs) w.bytes(p);
  } else if (e.kind === 'refuse') w.u8(e.source).u64(e.seq);
  else w.bytes(e.reply);
  return w.finish();
}

export function decodeControl(bytes: Uint8Array): ControlEntry {
  const r = new Reader(bytes, 'group control entry');
  if (r.u8() !== CONTROL_TAG) throw new BkvError('MALFORMED', 'not a group control entry');
  const v = r.u8();
  if (v !== CONTROL_VERSION) throw new BkvError('MALFORMED', `group control entry version ${v} is not supported`);
  const k = r.u8();
  const proofs = (): Uint8Array[] => Array.from({ length: r.u8() }, () => r.bytes(MAX_PROOF));
  let e: ControlEntry;
  if (k === KIND.out) e = { kind: 'out', seq: r.u64(), range: readRange(r), dest: r.u8(), proofs: proofs() };
  else if (k === KIND.prepare) e = { kind: 'prepare', offer: r.bytes(1 << 16) };
  else if (k === KIND.accept) e = { kind: 'accept', source: r.u8(), seq: r.u64(), proofs: proofs() };
  else if (k === KIND.refuse) e = { kind: 'refuse', source: r.u8(), seq: r.u64() };
  else if (k === KIND.done) e = { kind: 'done', reply: r.bytes(1 << 16) };
  else if (k === KIND.abort) e = { kind: 'abort', reply: r.bytes(1 << 16) };
  else throw new BkvError('MALFORMED', `unknown group control entry kind ${k}`);
  r.end();
  return e;
}

export function wrongPhase(message: string): BkvError {
  return new BkvError('CONFLICT', message, { reason: 'wrong-phase' });
}

export function replayed(message: string): BkvError {
  return new BkvError('CONFLICT', message, { reason: 'replayed' });
}

export class GroupState {
  readonly id: number;
  owned: KeyRange;
  nextSeq = 1;
  outgoing: Outgoing | null = null;
  incoming: Incoming | null = null;
  readonly lastFrom = new Map<number, LastTransfer>();
  /** Newest first: who owns a range, as far as this group learned. */
  hints: Array<{ range: KeyRange; group: number }> = [];

  constructor(readonly config: GroupConfig) {
    this.id = config.id;
    this.owned = genesisRange(config.id, config.groups);
    for (let g = 0; g < config.groups; g++) if (g !== config.id) this.hints.push({ range: genesisRange(g, config.groups), group: g });
  }

  /** True when this group serves `id` now: in its range and not moving out. */
  serves(id: Uint8Array): boolean {
    return containsId(this.owned, id) && !(this.outgoing && !this.config.unsafeServeMoving && containsId(this.outgoing.range, id));
  }

  /** Who this group believes owns `id` (itself when it serves it), and whether the id is moving. */
  ownerOf(id: Uint8Array): { owner: number | null; moving: boolean } {
    if (this.outgoing && containsId(this.outgoing.range, id)) return { owner: this.outgoing.dest, moving: true };
    if (this.incoming && containsId(this.incoming.range, id)) return { owner: this.id, moving: true };
    if (containsId(this.owned, id)) return { owner: this.id, moving: false };
    const h = this.hints.find((x) => containsId(x.range, id));
    return { owner: h ? h.group : null, moving: false };
  }

  /** Keys of a `transfer` batch must lie in the incoming range. */
  receiving(id: Uint8Array): boolean {
    return this.incoming !== null && containsId(this.incoming.range, id);
  }

  /** Opens a message addressed to this group (MAC, groups). */
  open(bytes: Uint8Array): TransferMessage {
    return openMessage(this.config.keys, bytes, this.id);
  }

  /**
   * Checks `entry` against the committed state and the record root `root` and returns the change
   * it makes, without making it. Throws a typed BkvError for an entry that must not apply.
   */
  plan(entry: ControlEntry, root: Uint8Array): () => void {
    switch (entry.kind) {
      case 'out': {
        if (entry.seq < this.nextSeq) throw replayed(`transfer ${entry.seq} of group ${this.id} was already started`);
        // One transfer at a time per group, in either direction: a range that grows while a part of it
        // is moving out could leave the rest non-contiguous.
        if (entry.seq !== this.nextSeq || this.outgoing || this.incoming) throw wrongPhase(`group ${this.id} cannot start transfer ${entry.seq} now (next ${this.nextSeq}, ${this.outgoing ? `transfer ${this.outgoing.seq} open` : 'none open'})`);
        if (entry.dest === this.id || entry.dest >= MAX_GROUPS) throw new BkvError('USAGE', `group ${entry.dest} cannot receive from group ${this.id}`);
        const rest = removeEnd(this.owned, entry.range);
        if (!rest) throw new BkvError('CONFLICT', `group ${this.id} can only move a prefix, a suffix or all of its range`, { reason: 'not-owned' });
        const digest = rangeDigest(root, entry.range, entry.proofs);
        const out: Outgoing = { seq: entry.seq, range: entry.range, dest: entry.dest, digest };
        return () => {
          this.outgoing = out;
          this.nextSeq = entry.seq + 1;
        };
      }
      case 'prepare': {
        const m = this.open(entry.offer);
        if (m.phase !== 'offer') throw wrongPhase(`a ${m.phase} message cannot prepare a transfer`);
        this.checkNew(m.source, m.seq);
        if (this.incoming && this.incoming.source === m.source && this.incoming.seq === m.seq) throw replayed(`transfer ${m.source}/${m.seq} is already prepared`);
        if (this.incoming) throw wrongPhase(`group ${this.id} is already receiving transfer ${this.incoming.source}/${this.incoming.seq}`);
        if (this.outgoing) throw wrongPhase(`group ${this.id} is sending transfer ${this.id}/${this.outgoing.seq}: one transfer at a time`);
        if (!join(this.owned, m.range)) throw new BkvError('CONFLICT', `the range does not touch group ${this.id}'s range`, { reason: 'not-adjacent' });
        const inc: Incoming = { source: m.source, seq: m.seq, range: m.range, digest: m.digest };
        return () => { this.incoming = inc; };
      }
      case 'accept': {
        const inc = this.incoming;
        if (!inc || inc.source !== entry.source || inc.seq !== entry.seq) {
          this.checkNew(entry.source, entry.seq);
          throw wrongPhase(`group ${this.id} has no incoming transfer ${entry.source}/${entry.seq} to accept`);
        }
        const digest = rangeDigest(root, inc.range, entry.proofs);
        if (!equalBytes(digest, inc.digest)) {
          throw new BkvError('VERIFICATION_FAILED', `the records of transfer ${inc.source}/${inc.seq} differ from the source's`, { reason: 'digest' });
        }
        const owned = join(this.owned, inc.range) as KeyRange;
        return () => {
          this.owned = owned;
          this.lastFrom.set(inc.source, { seq: inc.seq, accepted: true, range: inc.range, digest: inc.digest });
          this.incoming = null;
          this.forget(inc.range);
        };
      }
      case 'refuse': {
        const inc = this.incoming;
        const open = inc !== null && inc.source === entry.source && inc.seq === entry.seq;
        if (!open) this.checkNew(entry.source, entry.seq);
        return () => {
          this.lastFrom.set(entry.source, open ? { seq: entry.seq, accepted: false, range: inc.range, digest: inc.digest } : { seq: entry.seq, accepted: false, range: EMPTY_RANGE, digest: new Uint8Array(32) });
          if (open) this.incoming = null;
        };
      }
      case 'done':
      case 'abort': {
        const m = this.open(entry.reply);
        const want = entry.kind === 'done' ? 'accepted' : 'refused';
        if (m.phase !== want) throw wrongPhase(`a ${m.phase} reply cannot ${entry.kind === 'done' ? 'finish' : 'abort'} a transfer`);
        const out = this.outgoing;
        if (m.source !== this.id) throw new BkvError('VERIFICATION_FAILED', 'reply for another source group', { reason: 'wrong-group' });
        if (!out || out.seq !== m.seq) {
          if (m.seq < this.nextSeq && (!out || m.seq < out.seq)) throw replayed(`transfer ${this.id}/${m.seq} is already over`);
          throw wrongPhase(`group ${this.id} has no outgoing transfer ${m.seq}`);
        }
        // A refusal need only name the transfer (the dest may refuse one it never prepared); an acceptance names everything.
        if (out.dest !== m.dest || (entry.kind === 'done' && (!sameRange(out.range, m.range) || !equalBytes(out.digest, m.digest)))) {
          throw wrongPhase(`the reply does not match outgoing transfer ${this.id}/${out.seq}`);
        }
        if (entry.kind === 'abort') return () => { this.outgoing = null; };
        const owned = removeEnd(this.owned, out.range) as KeyRange;
        return () => {
          this.owned = owned;
          this.outgoing = null;
          this.forget(out.range);
          this.hints.unshift({ range: out.range, group: out.dest });
          if (this.hints.length > MAX_HINTS) this.hints.length = MAX_HINTS;
        };
      }
    }
  }

  /** A transfer from `source` numbered `seq` must be newer than the last one it sent here. */
  private checkNew(source: number, seq: number): void {
    const last = this.lastFrom.get(source);
    if (last && seq <= last.seq) throw replayed(`transfer ${source}/${seq} is already over at group ${this.id}`);
  }

  /** Drops hints about a range this group now knows better. */
  private forget(r: KeyRange): void {
    this.hints = this.hints.filter((h) => !(h.range.start >= r.start && h.range.end <= r.end));
  }

  encode(w: Writer): void {
    w.u8(this.id).u8(this.config.groups);
    writeRange(w, this.owned).u64(this.nextSeq);
    if (this.outgoing) writeRange(w.u8(1).u64(this.outgoing.seq), this.outgoing.range).u8(this.outgoing.dest).raw(this.outgoing.digest);
    else w.u8(0);
    if (this.incoming) writeRange(w.u8(1).u8(this.incoming.source).u64(this.incoming.seq), this.incoming.range).raw(this.incoming.digest);
    else w.u8(0);
    w.u8(this.lastFrom.size);
    for (const [src, l] of [...this.lastFrom].sort((a, b) => a[0] - b[0])) writeRange(w.u8(src).u64(l.seq).bool(l.accepted), l.range).raw(l.digest);
    w.u8(this.hints.length);
    for (const h of this.hints) writeRange(w, h.range).u8(h.group);
  }

  /** The encoded state (the group part of a snapshot). */
  bytes(): Uint8Array {
    const w = new Writer(256);
    this.encode(w);
    return w.finish();
  }

  /** Restores from `bytes()`. */
  restoreBytes(bytes: Uint8Array): void {
    const r = new Reader(bytes, 'group state');
    const before = this.bytes();
    try {
      this.decode(r);
      r.end();
    } catch (e) {
      this.decode(new Reader(before, 'group state'));
      throw e;
    }
  }

  /** Restores from a snapshot; the id and genesis count must be this group's. Nothing changes unless all of it decodes. */
  decode(r: Reader): void {
    const id = r.u8();
    const groups = r.u8();
    if (id !== this.id || groups !== this.config.groups) throw new BkvError('MALFORMED', `snapshot of group ${id} of ${groups}, this is group ${this.id} of ${this.config.groups}`);
    const owned = readRange(r, true);
    const nextSeq = r.u64();
    const outgoing = r.bool() ? { seq: r.u64(), range: readRange(r), dest: r.u8(), digest: r.raw(32) } : null;
    const incoming = r.bool() ? { source: r.u8(), seq: r.u64(), range: readRange(r), digest: r.raw(32) } : null;
    const lastFrom = new Map<number, LastTransfer>();
    const n = r.u8();
    for (let i = 0; i < n; i++) lastFrom.set(r.u8(), { seq: r.u64(), accepted: r.bool(), range: readRange(r, true), digest: r.raw(32) });
    const h = r.u8();
    if (h > MAX_HINTS) throw new BkvError('MALFORMED', `a group state holds at most ${MAX_HINTS} hints`);
    const hints: Array<{ range: KeyRange; group: number }> = [];
    for (let i = 0; i < h; i++) hints.push({ range: readRange(r), group: r.u8() });
    this.owned = owned;
    this.nextSeq = nextSeq;
    this.outgoing = outgoing;
    this.incoming = incoming;
    this.lastFrom.clear();
    for (const [k, v] of lastFrom) this.lastFrom.set(k, v);
    this.hints = hints;
  }

  /** Not empty and not moving: used by tests and the simulator. */
  get servedRange(): KeyRange {
    if (isEmpty(this.owned)) return EMPTY_RANGE;
    if (!this.outgoing || this.config.unsafeServeMoving) return this.owned;
    return removeEnd(this.owned, this.outgoing.range) ?? EMPTY_RANGE;
  }
}
