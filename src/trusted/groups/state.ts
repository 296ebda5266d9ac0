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
import { deleteBlocks, partialTree } from '../../shared/record-tree/index.js';
import { blockShape, rangeDigest } from './digest.js';
import { openMessage, type GroupKeys, type TransferMessage } from './messages.js';
import {
  EMPTY_RANGE, MAX_GROUPS, alignedBlocks, containsId, genesisRange, isEmpty, join, readRange, removeEnd, sameRange, slotFirstId, writeRange, type KeyRange,
} from './range.js';

export const CONTROL_TAG = 0x47;
export const CONTROL_VERSION = 1;
/** Version 2: kinds 4 (refuse) and 5 (done) with the deletion of the range's records (docs/formats/groups.md). */
export const CONTROL_VERSION_DROP = 2;
const MAX_HINTS = 64;
/** Most witness proofs in a done entry (a handful are needed: see TransferCoordinator.finish). */
export const MAX_WITNESSES = 512;
const MAX_PROOF = 2 + 64 + 2 + 32 + 256 * 32 + 64;

export interface Outgoing { seq: number; range: KeyRange; dest: number; digest: Uint8Array }
export interface Incoming { source: number; seq: number; range: KeyRange; digest: Uint8Array }
export interface LastTransfer { seq: number; accepted: boolean; range: KeyRange; digest: Uint8Array }

export type ControlEntry =
  | { kind: 'out'; seq: number; range: KeyRange; dest: number; proofs: Uint8Array[] }
  | { kind: 'prepare'; offer: Uint8Array }
  | { kind: 'accept'; source: number; seq: number; proofs: Uint8Array[] }
  | { kind: 'refuse'; source: number; seq: number; drop?: RangeDrop }
  | { kind: 'done'; reply: Uint8Array; drop?: RangeDrop }
  | { kind: 'abort'; reply: Uint8Array };

/**
 * What a done entry carries to drop the moved range's records from the source's tree: per aligned
 * block of the range, the proof of its first id and its number of records (against the root when
 * the leader proposed it), and proofs of further ids (witnesses) that show the nodes the deletion
 * must tell from leaves.
 */
export interface RangeDrop {
  blocks: Array<{ proof: Uint8Array; count: number }>;
  witnesses: Array<{ key: Uint8Array; proof: Uint8Array }>;
}

/** The change a planned entry makes; `records` when it also changes the record tree (a done with a drop). */
export type PlannedChange = (() => void) & { records?: { root: Uint8Array; removed: number; range: KeyRange } };

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
  const drop = e.kind === 'done' || e.kind === 'refuse' ? e.drop : undefined;
  const w = new Writer(256).u8(CONTROL_TAG).u8(drop ? CONTROL_VERSION_DROP : CONTROL_VERSION).u8(KIND[e.kind]);
  if (drop) {
    if (e.kind === 'refuse') w.u8(e.source).u64(e.seq);
    else w.bytes((e as { reply: Uint8Array }).reply);
    w.u8(drop.blocks.length);
    for (const b of drop.blocks) w.bytes(b.proof).u64(b.count);
    w.u32(drop.witnesses.length);
    for (const x of drop.witnesses) w.raw(x.key).bytes(x.proof);
    return w.finish();
  }
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
  if (v !== CONTROL_VERSION && v !== CONTROL_VERSION_DROP) throw new BkvError('MALFORMED', `group control entry version ${v} is not supported`);
  const k = r.u8();
  const proofs = (): Uint8Array[] => Array.from({ length: r.u8() }, () => r.bytes(MAX_PROOF));
  if (v === CONTROL_VERSION_DROP) {
    if (k !== KIND.done && k !== KIND.refuse) throw new BkvError('MALFORMED', `group control entry version ${v} is only for kinds ${KIND.refuse} and ${KIND.done}`);
    const reply = k === KIND.done ? r.bytes(1 << 16) : null;
    const head = reply ? null : { source: r.u8(), seq: r.u64() };
    const blocks = Array.from({ length: r.u8() }, () => ({ proof: r.bytes(MAX_PROOF), count: r.u64() }));
    const n = r.u32();
    if (n > MAX_WITNESSES) throw new BkvError('MALFORMED', `a drop carries at most ${MAX_WITNESSES} witness proofs`);
    const witnesses = Array.from({ length: n }, () => ({ key: r.raw(32), proof: r.bytes(MAX_PROOF) }));
    r.end();
    const drop = { blocks, witnesses };
    return reply ? { kind: 'done', reply, drop } : { kind: 'refuse', source: head!.source, seq: head!.seq, drop };
  }
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

function refusedDrop(message: string): BkvError {
  return new BkvError('CONFLICT', message, { reason: 'refused-at-apply' });
}

/**
 * The record root and count once the records of `range` are dropped, from the drop's proofs
 * against `root` (the root at this index). For a done (`digest` given) the block proofs must give
 * the range digest of the TransferOut (the range is frozen: the same records are there); a refusal
 * drops whatever chunks put in the incoming range (the group never owned it). The counts must fit what each
 * proof shows (0 for an empty block, 1 for one record, 2 or more for an internal node; at most
 * `count` in all), and the proofs must show every node the deletion needs. Otherwise CONFLICT
 * (`refused-at-apply`: the root moved since the leader read them, or the entry is bad).
 */
function dropRange(
  out: { seq: number; range: KeyRange; digest: Uint8Array | null },
  drop: RangeDrop,
  root: Uint8Array,
  count: number,
): { root: Uint8Array; removed: number } {
  const blocks = alignedBlocks(out.range);
  if (drop.blocks.length !== blocks.length) throw refusedDrop(`a drop of transfer ${out.seq} needs ${blocks.length} block proofs, got ${drop.blocks.length}`);
  let digest: Uint8Array;
  try {
    digest = rangeDigest(root, out.range, drop.blocks.map((b) => b.proof));
  } catch {
    throw refusedDrop(`the block proofs of transfer ${out.seq} do not match the record root`);
  }
  if (out.digest && !equalBytes(digest, out.digest)) throw refusedDrop(`the records of transfer ${out.seq} differ from those it moved`);
  let removed = 0;
  blocks.forEach((b, i) => {
    const n = drop.blocks[i]!.count;
    const shape = blockShape(root, slotFirstId(b.slot), b.depth, drop.blocks[i]!.proof);
    if (shape === 'empty' ? n !== 0 : shape === 'leaf' ? n !== 1 : n < 2) throw refusedDrop(`block ${i} of transfer ${out.seq} cannot hold ${n} records`);
    removed += n;
  });
  if (removed > count) throw refusedDrop(`transfer ${out.seq} cannot drop ${removed} of ${count} records`);
  const keyed = blocks.map((b, i) => ({ key: slotFirstId(b.slot), proof: drop.blocks[i]!.proof }));
  try {
    const p = partialTree(root, [...keyed, ...drop.witnesses]);
    const r = deleteBlocks(p.root, p.read, blocks.map((b) => ({ key: slotFirstId(b.slot), depth: b.depth })));
    return { root: r.rootHash, removed };
  } catch {
    throw refusedDrop(`the proofs of transfer ${out.seq} do not show every node its deletion needs`);
  }
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
  plan(entry: ControlEntry, root: Uint8Array, count = Number.MAX_SAFE_INTEGER): PlannedChange {
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
        // Version 2: the records the chunks put into the incoming range leave the tree (only an open transfer has any).
        if (entry.drop && !open) throw wrongPhase(`group ${this.id} has no incoming transfer ${entry.source}/${entry.seq} to drop`);
        const change: PlannedChange = () => {
          this.lastFrom.set(entry.source, open ? { seq: entry.seq, accepted: false, range: inc.range, digest: inc.digest } : { seq: entry.seq, accepted: false, range: EMPTY_RANGE, digest: new Uint8Array(32) });
          if (open) this.incoming = null;
        };
        if (entry.drop && inc) change.records = { ...dropRange({ seq: inc.seq, range: inc.range, digest: null }, entry.drop, root, count), range: inc.range };
        return change;
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
        const change: PlannedChange = () => {
          this.owned = owned;
          this.outgoing = null;
          this.forget(out.range);
          this.hints.unshift({ range: out.range, group: out.dest });
          if (this.hints.length > MAX_HINTS) this.hints.length = MAX_HINTS;
        };
        // Version 1 (no drop): the records stay as dead leaves. Version 2: they leave the tree.
        if (entry.kind === 'done' && entry.drop) change.records = { ...dropRange(out, entry.drop, root, count), range: out.range };
        return change;
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
