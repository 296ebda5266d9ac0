/**
 * The replicated state of a vault member: not the records themselves but the root of the record
 * tree over them, the number of records, and which log entry last changed them. This is all the
 * trusted memory the records cost, whatever their number. The records live in the host's store;
 * every member applies each committed batch by checking its proofs against this root, and checks
 * the host's store against the roots it computed. Snapshot layout: docs/formats/vault-records.md.
 */
import { bytesToHex } from '@noble/hashes/utils.js';
import { BkvError } from '../../shared/errors.js';
import { applyUpdates, decodeProof, emptyHash, valueHash } from '../../shared/record-tree/index.js';
import { equalBytes } from '../../shared/bytes.js';
import { Reader, Writer } from '../core/codec.js';
import type { ReplicatedStateMachine } from '../core/replication.js';
import { decodeBatch, encodeOutcome, isBatch, type BatchOutcome } from './batch.js';
import { GroupState, decodeControl, isControlEntry, type GroupConfig } from '../groups/state.js';
import { readRange, writeRange, type KeyRange } from '../groups/range.js';

export const SNAPSHOT_TAG = 0x53;
export const SNAPSHOT_VERSION = 1;
/** A group's snapshot: version 1's fields, then the group state (docs/formats/groups.md). */
export const SNAPSHOT_VERSION_GROUPS = 2;
/** Outcome of a control entry: applied, or refused (followed by the reason, UTF-8). */
export const CONTROL_APPLIED = 0x10;
export const CONTROL_REFUSED = 0x11;
/** Outcome of a control entry that also changed the record tree (a done that drops the moved range): see decodeControlDrop. */
export const CONTROL_APPLIED_DROP = 0x12;
/** Roots remembered per applied batch: bounds trusted memory (about 100 bytes each). */
export const ROOT_HISTORY = 8192;

/** The state after one applied batch. */
export interface BatchPoint {
  index: number;
  root: Uint8Array;
  count: number;
  /** True until the first command batch: records from an earlier release may still be imported. */
  importOpen: boolean;
  /** With groups: the group state at this point, encoded (control entries change it between batches). */
  group?: Uint8Array;
}

/** What the host's store is known to hold, as far as the core can tell. */
export type StoreHealth =
  | { state: 'ok' }
  | { state: 'behind'; storeIndex: number }
  | { state: 'corrupt'; reason: string };

export class RecordState implements ReplicatedStateMachine {
  private point: BatchPoint = { index: 0, root: emptyHash(), count: 0, importOpen: true };
  private appliedIndex = 0;
  /** Batch points since the last restore, oldest first (at most ROOT_HISTORY). */
  private history: BatchPoint[] = [];
  /** The last batch the host reported stored, and whether its root matched. */
  private stored = 0;
  private health: StoreHealth = { state: 'ok' };
  private waiters: Array<() => void> = [];
  /** Set by the host: called when a read from the store does not verify (the host should repair it). */
  onStoreCorrupt?: (reason: string) => void;
  /** Set by the host: called when something waits for the store to hold every applied batch (write it now). */
  onStoreWanted?: () => void;
  /** The replication group's committed state; null in a fleet without groups (one group, the whole space). */
  readonly group: GroupState | null;
  /** The group state at genesis (what a version 1 snapshot restores under a group). */
  private genesis: Uint8Array | null = null;
  /** The group state now, encoded (changed only by control entries and restores). */
  private groupNow: Uint8Array | null = null;

  constructor(group?: GroupConfig) {
    this.group = group ? new GroupState(group) : null;
    if (this.group) {
      this.genesis = this.group.bytes();
      this.groupNow = this.genesis;
      this.point = { ...this.point, group: this.genesis };
      this.base = this.point;
    }
  }

  get root(): Uint8Array {
    return this.point.root;
  }

  get count(): number {
    return this.point.count;
  }

  /** Log index of the last applied batch (0: none). The host's store is in step when it holds this one. */
  get lastBatchIndex(): number {
    return this.point.index;
  }

  get lastApplied(): number {
    return this.appliedIndex;
  }

  get storedIndex(): number {
    return this.stored;
  }

  storeHealth(): StoreHealth {
    if (this.health.state === 'corrupt') return this.health;
    return this.stored === this.point.index ? { state: 'ok' } : { state: 'behind', storeIndex: this.stored };
  }

  apply(index: number, entry: Uint8Array): Uint8Array {
    this.appliedIndex = index;
    if (this.group && isControlEntry(entry)) return this.applyControl(index, entry);
    if (!isBatch(entry)) return encodeOutcome({ status: 'invalid' });
    let batch;
    try {
      batch = decodeBatch(entry);
    } catch {
      return encodeOutcome({ status: 'invalid' });
    }
    // Imports (records carried over from release 0.1) are accepted only before the first command
    // batch, and only as new records: afterwards nobody can write a record except through a command.
    if (batch.kind === 'import' && !this.point.importOpen) return encodeOutcome({ status: 'invalid' });
    const g = this.group;
    // Ownership (docs/groups.md): commands touch only ids the group serves at this index (else the
    // batch lost a race with a transfer: stale, the batcher retries and refuses WRONG_GROUP);
    // a transfer batch writes only into the incoming range.
    if (batch.kind === 'transfer' && (!g || !batch.items.every((it) => g.receiving(it.key) && it.value))) return encodeOutcome({ status: 'invalid' });
    if (batch.kind !== 'transfer' && g && !batch.items.every((it) => g.serves(it.key))) return encodeOutcome({ status: batch.kind === 'commands' ? 'stale' : 'invalid' });
    let root: Uint8Array;
    let added = 0;
    try {
      const seen = new Set<string>();
      const proofs = [];
      for (const it of batch.items) {
        const k = bytesToHex(it.key);
        if (seen.has(k)) return encodeOutcome({ status: 'invalid' });
        seen.add(k);
        // Decoded once; `applyUpdates` verifies every proof against the root before it uses it,
        // so what the terminal says (absent or present) counts only if the batch applies.
        const proof = decodeProof(it.proof);
        const t = proof.terminal;
        const absent = t.kind === 'empty' || !equalBytes(t.key, it.key);
        if (batch.kind === 'import' && (!absent || !it.value)) return encodeOutcome({ status: 'invalid' });
        if (absent && it.value) added++;
        proofs.push({ key: it.key, proof });
      }
      root = applyUpdates(
        this.point.root,
        proofs,
        batch.items.filter((it) => it.value).map((it) => ({ key: it.key, valueHash: valueHash(it.value as Uint8Array) })),
      );
    } catch {
      // The proofs were made against another root: the batch lost a race with a leader change.
      return encodeOutcome({ status: 'stale' });
    }
    const prev = this.point.index;
    this.point = { index, root, count: this.point.count + added, importOpen: this.point.importOpen && batch.kind === 'import' };
    if (g) this.point.group = this.groupNow as Uint8Array;
    this.history.push(this.point);
    if (this.history.length > ROOT_HISTORY) this.history.splice(0, this.history.length - ROOT_HISTORY);
    return encodeOutcomeWithPrev({ status: 'applied', root, count: this.point.count }, prev);
  }

  /** A group control entry: checked in full against the committed state and root, then applied. */
  private applyControl(index: number, entry: Uint8Array): Uint8Array {
    try {
      const change = (this.group as GroupState).plan(decodeControl(entry), this.point.root, this.point.count);
      change();
      this.groupNow = (this.group as GroupState).bytes();
      const drop = change.records;
      if (!drop) return new Uint8Array([CONTROL_APPLIED]);
      // The moved range's records left the tree: a new batch point, which the host's store follows
      // (it deletes the range's rows at this index, in log order with the batches).
      const prev = this.point.index;
      this.point = { index, root: drop.root, count: this.point.count - drop.removed, importOpen: this.point.importOpen, group: this.groupNow };
      this.history.push(this.point);
      if (this.history.length > ROOT_HISTORY) this.history.splice(0, this.history.length - ROOT_HISTORY);
      return writeRange(new Writer(81).u8(CONTROL_APPLIED_DROP).raw(drop.root).u64(this.point.count).u64(prev), drop.range).finish();
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      return new Writer(64).u8(CONTROL_REFUSED).raw(new TextEncoder().encode(why.slice(0, 200))).finish();
    }
  }

  /** The state after the batch at `index`, if it is still remembered. */
  pointAt(index: number): BatchPoint | undefined {
    if (index === this.point.index) return this.point;
    if (index === this.base.index) return this.base;
    let lo = 0;
    let hi = this.history.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const p = this.history[mid]!;
      if (p.index === index) return p;
      if (p.index < index) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** The state restored last (snapshot or migration), below every remembered batch. */
  private base: BatchPoint = this.point;

  /**
   * The host reports that its store now holds every batch up to `index` and computed `root` for
   * it. A root that differs from the one the core computed means the store is corrupt (or lying).
   */
  storeApplied(index: number, root: Uint8Array): StoreHealth {
    const p = this.pointAt(index);
    // Unknown: ahead of this member's replay (it reports again once the replay gets there) or too old.
    if (p === undefined) return this.storeHealth();
    if (!equalBytes(p.root, root)) {
      this.health = { state: 'corrupt', reason: `the store's root after batch ${index} differs from the committed one` };
      return this.health;
    }
    // The store verifiably holds a committed state again (a repair landed, or the writes were
    // fine): what remains is at most a lag. Reads are checked anyway, so a lie here costs only time.
    this.stored = index;
    if (this.health.state === 'corrupt') this.health = { state: 'ok' };
    this.wake();
    return this.storeHealth();
  }

  /** The core found a record that does not match its root: the store must be repaired from a peer. */
  markStoreCorrupt(reason: string): void {
    this.health = { state: 'corrupt', reason };
    this.onStoreCorrupt?.(reason);
    this.wake();
  }

  /** Resolves once the store holds every applied batch (or is known to be corrupt). */
  whenStoreInStep(): Promise<void> {
    if (this.stored === this.point.index || this.health.state === 'corrupt') return Promise.resolve();
    const p = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.onStoreWanted?.();
    return p;
  }

  private wake(): void {
    if (this.stored !== this.point.index && this.health.state !== 'corrupt') return;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** A log index at which the log may be compacted: the last batch the store holds. */
  compactionPoint(): { index: number; snapshot: Uint8Array } | null {
    const p = this.pointAt(this.stored);
    if (!p || this.health.state === 'corrupt') return null;
    // The snapshot at a batch index describes every entry up to the next batch; use the batch itself.
    // With groups, the group state as it was at that batch (control entries after it are replayed from the log).
    return { index: p.index, snapshot: encodeSnapshot(p, p.index, p.group ?? null) };
  }

  snapshot(): Uint8Array {
    return encodeSnapshot(this.point, this.appliedIndex, this.groupNow);
  }

  restore(bytes: Uint8Array): void {
    const s = decodeSnapshot(bytes, this.group);
    // A version 1 snapshot under a group (a fleet that had no groups yet) starts from genesis.
    if (this.group && s.group === null) this.group.restoreBytes(this.genesis as Uint8Array);
    this.point = { index: s.batchIndex, root: s.root, count: s.count, importOpen: s.importOpen };
    if (this.group) this.point.group = this.groupNow = this.group.bytes();
    this.base = this.point;
    this.appliedIndex = s.appliedIndex;
    this.history = [];
    // A restored state says nothing about the host's store until the host reports on it.
    this.stored = 0;
    if (this.health.state === 'corrupt') this.health = { state: 'ok' };
  }
}


/** The outcome of an applied batch also names the previous batch, so the host can spot a gap in its store. */
function encodeOutcomeWithPrev(o: BatchOutcome, prev: number): Uint8Array {
  const body = encodeOutcome(o);
  return new Writer(body.length + 8).raw(body).u64(prev).finish();
}

export function decodeAppliedOutcome(bytes: Uint8Array): (BatchOutcome & { prev?: number }) {
  const r = new Reader(bytes, 'batch outcome');
  const s = r.u8();
  if (s === 1) {
    const root = r.raw(32);
    const count = r.u64();
    const prev = r.u64();
    r.end();
    return { status: 'applied', root, count, prev };
  }
  r.end();
  if (s === 2) return { status: 'stale' };
  if (s === 0) return { status: 'invalid' };
  throw new BkvError('MALFORMED', `unknown batch outcome ${s}`);
}

/**
 * The outcome of a control entry that dropped a moved range's records: the new root and count,
 * the previous batch point (for the store's gap check, as with batches) and the range dropped.
 * Null for any other outcome.
 */
export function decodeControlDrop(bytes: Uint8Array): { root: Uint8Array; count: number; prev: number; range: KeyRange } | null {
  if (bytes.length === 0 || bytes[0] !== CONTROL_APPLIED_DROP) return null;
  const r = new Reader(bytes, 'control outcome');
  r.u8();
  const out = { root: r.raw(32), count: r.u64(), prev: r.u64(), range: readRange(r) };
  r.end();
  return out;
}

/** Version 1 without a group (59 bytes, as before groups); version 2 with the group state after it. */
export function encodeSnapshot(p: BatchPoint, appliedIndex: number, group: Uint8Array | null = null): Uint8Array {
  const w = new Writer(64).u8(SNAPSHOT_TAG).u8(group ? SNAPSHOT_VERSION_GROUPS : SNAPSHOT_VERSION).u64(appliedIndex).u64(p.index).raw(p.root).u64(p.count).u8(p.importOpen ? 1 : 0);
  if (group) w.raw(group);
  return w.finish();
}

/** Decodes a snapshot; with `group`, a version 2 snapshot restores it (and a version 1 one leaves it at genesis). */
export function decodeSnapshot(bytes: Uint8Array, group: GroupState | null = null): { appliedIndex: number; batchIndex: number; root: Uint8Array; count: number; importOpen: boolean; group: Uint8Array | null } {
  if (bytes.length > 0 && bytes[0] === 0) {
    throw new BkvError('UNSUPPORTED_VERSION', 'this vault state was written by release 0.1 (records inside the snapshot): migrate it first (bkv vault migrate)');
  }
  const r = new Reader(bytes, 'vault state snapshot');
  if (r.u8() !== SNAPSHOT_TAG) throw new BkvError('MALFORMED', 'not a vault state snapshot');
  const v = r.u8();
  if (v !== SNAPSHOT_VERSION && !(v === SNAPSHOT_VERSION_GROUPS && group)) throw new BkvError('UNSUPPORTED_VERSION', `vault state snapshot version ${v} is not supported`);
  const out = { appliedIndex: r.u64(), batchIndex: r.u64(), root: r.raw(32), count: r.u64(), importOpen: r.bool(), group: null as Uint8Array | null };
  if (v !== SNAPSHOT_VERSION_GROUPS) r.end();
  if (out.batchIndex > out.appliedIndex) throw new BkvError('MALFORMED', 'vault state snapshot names a batch after its applied index');
  if (v === SNAPSHOT_VERSION_GROUPS) {
    out.group = bytes.subarray(59);
    (group as GroupState).restoreBytes(out.group); // all of it or nothing (trailing bytes refused)
  }
  return out;
}
