/**
 * What a group's leader core does in each phase of a range transfer (docs/groups.md). Every
 * decision is a committed control entry; this class only reads the host's store (checking every
 * proof against the committed root, as the batcher does), builds entries and messages, and refuses
 * what does not fit with typed errors before proposing anything. The host carries the messages
 * between groups and decides when to retry; it cannot make a group commit a step out of order.
 */
import { hexToBytes } from '@noble/hashes/utils.js';
import { BkvError, isBkvError } from '../../shared/errors.js';
import { equalBytes } from '../../shared/bytes.js';
import { RootBuilder, compareKeys, deleteBlocks, partialTree, valueHash, verifyProof } from '../../shared/record-tree/index.js';
import type { Replicator } from '../core/replication.js';
import { encodeBatch, MAX_BATCH_KEYS, type BatchItem } from '../records/batch.js';
import type { RecordReader, Leadership } from '../records/batcher.js';
import { notLeader } from '../records/batcher.js';
import { CONTROL_APPLIED, CONTROL_APPLIED_DROP, decodeAppliedOutcome, type RecordState } from '../records/record-state.js';
import { blockRoot, blockShape, digestKeys, rangeDigest } from './digest.js';
import { encodeMessage, type TransferMessage } from './messages.js';
import { SLOTS, SLOT_BITS, alignedBlocks, containsId, sameRange, slotFirstId, type KeyRange } from './range.js';
import { MAX_WITNESSES, encodeControl, replayed, wrongPhase, type ControlEntry, type GroupState, type RangeDrop } from './state.js';

const RETRIES = 3;
/** Ids listed per page when counting a block's records. */
const LIST_PAGE = 256;

/** The id after `k`, or null after the last one. */
function keyAfter(k: Uint8Array): Uint8Array | null {
  const x = k.slice();
  for (let i = x.length - 1; i >= 0; i--) {
    if (x[i] !== 0xff) {
      x[i]!++;
      return x;
    }
    x[i] = 0;
  }
  return null;
}

export class TransferCoordinator {
  constructor(
    private readonly state: RecordState,
    private readonly reader: RecordReader,
    private readonly replicator: Replicator,
    private readonly leadership: Leadership,
    /** Host timer: bounds the wait for a lagging store (as the batcher's). */
    private readonly wait?: (ms: number) => Promise<void>,
    private readonly storeWaitMs = 3000,
  ) {}

  private get group(): GroupState {
    const g = this.state.group;
    if (!g) throw new BkvError('USAGE', 'this member runs a fleet without replication groups');
    return g;
  }

  // ---- source side

  /** Commits TransferOut for `range` (a prefix, suffix or all of this group's range) to `dest`; returns the offer. */
  async start(range: KeyRange, dest: number): Promise<Uint8Array> {
    const g = this.group;
    for (let attempt = 0; ; attempt++) {
      const seq = g.nextSeq;
      const entry: ControlEntry = { kind: 'out', seq, range, dest, proofs: await this.proofs(range) };
      g.plan(entry, this.state.root); // refuses (typed) before anything is proposed
      try {
        await this.commit(entry);
        return this.offer();
      } catch (e) {
        // The root moved between the read and the commit (a batch went first): read again.
        if (attempt >= RETRIES || g.nextSeq !== seq) throw e;
      }
    }
  }

  /** The offer of the open outgoing transfer (any leader of the source can resend it). */
  offer(): Uint8Array {
    const out = this.group.outgoing;
    if (!out) throw wrongPhase(`group ${this.group.id} has no outgoing transfer`);
    return encodeMessage(this.group.config.keys, { phase: 'offer', source: this.group.id, dest: out.dest, seq: out.seq, range: out.range, digest: out.digest });
  }

  /** Asks the destination to refuse the open transfer (a timeout decided by the source). */
  cancel(): Uint8Array {
    const out = this.group.outgoing;
    if (!out) throw wrongPhase(`group ${this.group.id} has no outgoing transfer`);
    return encodeMessage(this.group.config.keys, { phase: 'cancel', source: this.group.id, dest: out.dest, seq: out.seq, range: out.range, digest: out.digest });
  }

  /**
   * Chunk `index` of the outgoing transfer: the records under `keys` (ids the host lists from its
   * store, in increasing order, at most 256), each read with a proof and checked against the
   * committed root. Ids the root says are absent are left out; ids outside the range are refused.
   */
  async chunk(index: number, keys: Uint8Array[]): Promise<Uint8Array> {
    const g = this.group;
    const out = g.outgoing;
    if (!out) throw wrongPhase(`group ${g.id} has no outgoing transfer`);
    if (keys.length > MAX_BATCH_KEYS) throw new BkvError('USAGE', `a chunk carries at most ${MAX_BATCH_KEYS} records`);
    keys.forEach((k, i) => {
      if (!containsId(out.range, k)) throw new BkvError('USAGE', 'a chunk may only carry records of the range');
      if (i > 0 && compareKeys(keys[i - 1]!, k) >= 0) throw new BkvError('USAGE', 'chunk ids must increase');
    });
    await this.inStep();
    const root = this.state.root;
    const res = keys.length ? await this.reader.read(keys) : { reads: [] };
    const records: Array<{ key: Uint8Array; value: Uint8Array }> = [];
    for (const key of keys) {
      const r = res.reads.find((x) => equalBytes(x.key, key));
      let vh: Uint8Array | null = null;
      try {
        if (!r) throw new Error('missing');
        vh = verifyProof(root, key, r.proof);
        if (vh !== null && (r.value === null || !equalBytes(valueHash(r.value), vh))) throw new Error('value');
      } catch {
        throw this.storeFailed('the store did not prove a record of the transfer against the committed root');
      }
      if (vh !== null) records.push({ key, value: (r as { value: Uint8Array }).value });
    }
    return encodeMessage(g.config.keys, { phase: 'chunk', source: g.id, dest: out.dest, seq: out.seq, range: out.range, digest: out.digest, index, records });
  }

  /**
   * Ends the outgoing transfer on the destination's committed reply: 'done' (accepted) or 'aborted'
   * (refused). A done entry also drops the moved range's records from this group's tree: it carries
   * the proofs every member checks and the number of records dropped (see `drop`). If a batch
   * changed the root before the entry applied, it applies as refused, and this reads the proofs
   * again and retries.
   */
  async finish(reply: Uint8Array): Promise<'done' | 'aborted'> {
    const g = this.group;
    const m = g.open(reply);
    if (m.phase !== 'accepted' && m.phase !== 'refused') throw wrongPhase(`a ${m.phase} message is not a reply`);
    if (m.phase === 'refused') {
      const entry: ControlEntry = { kind: 'abort', reply };
      g.plan(entry, this.state.root);
      await this.commit(entry);
      return 'aborted';
    }
    for (let attempt = 0; ; attempt++) {
      g.plan({ kind: 'done', reply }, this.state.root); // the reply's checks (typed) before reading the store
      const out = g.outgoing as NonNullable<GroupState['outgoing']>;
      try {
        const entry: ControlEntry = { kind: 'done', reply, drop: await this.drop(out.range, true) };
        g.plan(entry, this.state.root, this.state.count);
        await this.commit(entry);
        return 'done';
      } catch (e) {
        // The root moved between the reads and the commit (a batch went first): read again.
        if (attempt >= RETRIES || g.outgoing !== out || !isBkvError(e, 'CONFLICT')) throw e;
      }
    }
  }

  /**
   * What a done entry needs to drop `range`'s records, read from this member's store and checked
   * against a root this member committed: the proof of each aligned block's first id; the number of
   * records in each block (an internal block is listed from the store in pages, each record read
   * with a proof, and the records' RootBuilder root must be the block's subtree: so the count is
   * exact, and a store that leaves records out is caught); and a witness proof for each node the
   * deletion must tell from a leaf (asked for by the deletion itself; a few at most).
   */
  private async drop(range: KeyRange, frozen: boolean): Promise<RangeDrop> {
    await this.inStep();
    const blocks = alignedBlocks(range);
    const keys = blocks.map((b) => slotFirstId(b.slot));
    const first = await this.provenRead(keys);
    const root = first.root;
    const out: RangeDrop = { blocks: [], witnesses: [] };
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      const proof = first.proofs[i]!;
      const shape = blockShape(root, keys[i]!, b.depth, proof);
      const count = shape === 'empty' ? 0 : shape === 'leaf' ? 1 : await this.countBlock(b, blockRoot(root, keys[i]!, b.depth, proof), frozen ? { after: first.index } : { root });
      out.blocks.push({ proof, count });
    }
    const keyed = keys.map((key, i) => ({ key, proof: first.proofs[i]! }));
    const kb = blocks.map((b, i) => ({ key: keys[i]!, depth: b.depth }));
    for (;;) {
      let want: Uint8Array;
      try {
        const p = partialTree(root, [...keyed, ...out.witnesses]);
        deleteBlocks(p.root, p.read, kb);
        return out;
      } catch (e) {
        const key = (e as { details?: { key?: unknown } }).details?.key;
        if (!isBkvError(e, 'VERIFICATION_FAILED') || typeof key !== 'string' || out.witnesses.length >= MAX_WITNESSES) throw e;
        want = hexToBytes(key);
      }
      if (out.witnesses.some((w) => equalBytes(w.key, want))) throw this.storeFailed('the store proved a node the range deletion still cannot read');
      const w = await this.provenRead([want], { root });
      out.witnesses.push({ key: want, proof: w.proofs[0]! });
    }
  }

  /**
   * Reads `keys` with proofs from this member's store and checks them against the root of the
   * committed batch the store says it is at (`at`: that root must be this one), returning the root.
   */
  private async provenRead(
    keys: Uint8Array[],
    at?: { root: Uint8Array } | { after: number },
  ): Promise<{ index: number; root: Uint8Array; proofs: Uint8Array[]; values: Array<Uint8Array | null>; hashes: Array<Uint8Array | null> }> {
    const res = await this.reader.read(keys);
    const p = this.state.pointAt(res.meta.index);
    const fits = !at || ('root' in at ? equalBytes(at.root, res.meta.root) : res.meta.index >= at.after);
    if (!p || !equalBytes(p.root, res.meta.root) || !fits) {
      throw new BkvError('CONFLICT', "this member's store moved while the range was read; try again", { reason: 'refused-at-apply' });
    }
    const proofs: Uint8Array[] = [];
    const values: Array<Uint8Array | null> = [];
    const hashes: Array<Uint8Array | null> = [];
    for (const key of keys) {
      const r = res.reads.find((x) => equalBytes(x.key, key));
      try {
        if (!r) throw new Error('missing');
        const vh = verifyProof(p.root, key, r.proof);
        if (vh !== null && (r.value === null || !equalBytes(valueHash(r.value), vh))) throw new Error('value');
        proofs.push(r.proof);
        values.push(r.value);
        hashes.push(vh);
      } catch {
        throw this.storeFailed('the store did not prove a record of the range against its committed root');
      }
    }
    return { index: p.index, root: p.root, proofs, values, hashes };
  }

  /**
   * The number of records in block `b`, listed from the store and checked against the block's
   * subtree `expected`. Every page is read against `at`: the same root as the block's proof, or,
   * for a frozen range (the source's, since its TransferOut), any committed root from the first
   * read on (the range holds the same records in all of them).
   */
  private async countBlock(b: { slot: number; depth: number }, expected: Uint8Array, at: { root: Uint8Array } | { after: number }): Promise<number> {
    const list = this.reader.listKeys?.bind(this.reader);
    if (!list) throw new BkvError('USAGE', "this member's record reader cannot list a range");
    const endSlot = b.slot + 2 ** (SLOT_BITS - b.depth);
    const to = endSlot >= SLOTS ? null : slotFirstId(endSlot);
    const builder = new RootBuilder();
    let from: Uint8Array | null = slotFirstId(b.slot);
    while (from) {
      const ids = await list(from, to, LIST_PAGE);
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        if (compareKeys(id, from) < 0 || (to && compareKeys(id, to) >= 0) || (i > 0 && compareKeys(ids[i - 1]!, id) >= 0)) {
          throw this.storeFailed('the store listed ids outside the range or out of order');
        }
      }
      if (ids.length) {
        const r = await this.provenRead(ids, at);
        ids.forEach((id, i) => {
          const vh = r.hashes[i];
          if (vh) builder.add(id, vh);
        });
      }
      if (ids.length < LIST_PAGE) break;
      from = keyAfter(ids[ids.length - 1]!);
    }
    if (!equalBytes(builder.finish(), expected)) throw this.storeFailed('the store did not list every record of the range');
    return builder.count;
  }

  // ---- destination side

  /** Commits TransferPrepare for an offer; the range becomes incoming. */
  async prepare(offer: Uint8Array): Promise<void> {
    const m = this.group.open(offer);
    if (m.phase !== 'offer') throw wrongPhase(`a ${m.phase} message is not an offer`);
    const entry: ControlEntry = { kind: 'prepare', offer };
    this.group.plan(entry, this.state.root);
    await this.commit(entry);
  }

  /** Writes a chunk of the incoming transfer into this group's records; returns how many it carried. */
  async receive(chunk: Uint8Array): Promise<number> {
    const m = this.group.open(chunk);
    if (m.phase !== 'chunk') throw wrongPhase(`a ${m.phase} message is not a chunk`);
    this.checkIncoming(m);
    m.records.forEach((r, i) => {
      if (!containsId(m.range, r.key) || (i > 0 && compareKeys(m.records[i - 1]!.key, r.key) >= 0)) {
        throw new BkvError('MALFORMED', 'a chunk carries records outside its range or out of order');
      }
    });
    if (m.records.length === 0) return 0;
    for (let attempt = 0; ; attempt++) {
      await this.inStep();
      const root = this.state.root;
      const res = await this.reader.read(m.records.map((r) => r.key));
      const items: BatchItem[] = m.records.map((rec) => {
        const r = res.reads.find((x) => equalBytes(x.key, rec.key));
        try {
          if (!r) throw new Error('missing');
          verifyProof(root, rec.key, r.proof);
        } catch {
          throw this.storeFailed("this group's store did not prove a record against the committed root");
        }
        return { key: rec.key, proof: r.proof, value: rec.value };
      });
      this.checkIncoming(m);
      const outcome = decodeAppliedOutcome(await this.replicator.propose(encodeBatch({ kind: 'transfer', ts: 0, items })));
      if (outcome.status === 'applied') return items.length;
      if (outcome.status === 'invalid' || attempt >= RETRIES) throw new BkvError('CONFLICT', `the chunk was not applied (${outcome.status})`, { reason: 'wrong-phase' });
    }
  }

  /**
   * Commits TransferAccept once this group's records of the range have exactly the source's digest;
   * returns the `accepted` reply. A digest that differs (chunks missing, or a store rolled back)
   * is refused with VERIFICATION_FAILED, reason 'digest': resend the chunks and try again.
   */
  async accept(): Promise<Uint8Array> {
    const g = this.group;
    const inc = g.incoming;
    if (!inc) throw wrongPhase(`group ${g.id} has no incoming transfer`);
    for (let attempt = 0; ; attempt++) {
      const entry: ControlEntry = { kind: 'accept', source: inc.source, seq: inc.seq, proofs: await this.proofs(inc.range) };
      g.plan(entry, this.state.root);
      try {
        await this.commit(entry);
        return this.reply(inc.source);
      } catch (e) {
        if (attempt >= RETRIES || g.incoming !== inc) throw e;
      }
    }
  }

  /** Commits TransferRefuse (before acceptance only); `cancel`, if given, is the source's request. Returns the reply. */
  async refuse(source: number, seq: number, cancel?: Uint8Array): Promise<Uint8Array> {
    if (cancel) {
      const m = this.group.open(cancel);
      if (m.phase !== 'cancel' || m.source !== source || m.seq !== seq) throw wrongPhase('not the cancel of this transfer');
    }
    const g = this.group;
    const last = g.lastFrom.get(source);
    if (last && last.seq === seq) return this.reply(source); // already decided: answer with the decision
    const inc = g.incoming;
    if (!inc || inc.source !== source || inc.seq !== seq) {
      const entry: ControlEntry = { kind: 'refuse', source, seq };
      g.plan(entry, this.state.root);
      await this.commit(entry);
      return this.reply(source);
    }
    // An open transfer: the records its chunks brought leave the tree with the refusal (as a done drops them at the source).
    for (let attempt = 0; ; attempt++) {
      g.plan({ kind: 'refuse', source, seq }, this.state.root);
      try {
        const entry: ControlEntry = { kind: 'refuse', source, seq, drop: await this.drop(inc.range, false) };
        g.plan(entry, this.state.root, this.state.count);
        await this.commit(entry);
        return this.reply(source);
      } catch (e) {
        if (attempt >= RETRIES || g.incoming !== inc || !isBkvError(e, 'CONFLICT')) throw e;
      }
    }
  }

  /** The committed outcome of the last transfer from `source`, as a reply message (resendable). */
  reply(source: number): Uint8Array {
    const g = this.group;
    const last = g.lastFrom.get(source);
    if (!last) throw wrongPhase(`group ${g.id} decided no transfer from group ${source}`);
    const m: TransferMessage = { phase: last.accepted ? 'accepted' : 'refused', source, dest: g.id, seq: last.seq, range: last.range, digest: last.digest };
    if (!last.accepted && last.range.end === 0) m.range = { start: 0, end: 1 };
    return encodeMessage(g.config.keys, m);
  }

  // ---- shared

  private checkIncoming(m: TransferMessage): void {
    const inc = this.group.incoming;
    const last = this.group.lastFrom.get(m.source);
    if (last && m.seq <= last.seq) throw replayed(`transfer ${m.source}/${m.seq} is already over`);
    if (!inc || inc.source !== m.source || inc.seq !== m.seq || !sameRange(inc.range, m.range) || !equalBytes(inc.digest, m.digest)) {
      throw wrongPhase(`group ${this.group.id} is not receiving transfer ${m.source}/${m.seq}`);
    }
  }

  /** Proofs of the range's blocks against the committed root (checked here: a bad store is found before proposing). */
  private async proofs(range: KeyRange): Promise<Uint8Array[]> {
    await this.inStep();
    const keys = digestKeys(range);
    const res = await this.reader.read(keys);
    const proofs = keys.map((k) => res.reads.find((x) => equalBytes(x.key, k))?.proof ?? new Uint8Array(0));
    try {
      rangeDigest(this.state.root, range, proofs);
    } catch {
      throw this.storeFailed("the store's proofs of the range do not match the committed root");
    }
    return proofs;
  }

  /** A store that is in step yet proves something else than the committed root is corrupt: have it repaired. */
  private storeFailed(reason: string): BkvError {
    if (this.state.storeHealth().state === 'ok') this.state.markStoreCorrupt(reason);
    return new BkvError('UNAVAILABLE', `${reason}; try again`, { reason: 'store-corrupt' });
  }

  private async inStep(): Promise<void> {
    if (!this.leadership.isLeader()) throw notLeader(this.leadership.leaderHint());
    if (!this.leadership.caughtUp()) await this.replicator.readBarrier();
    if (this.state.storeHealth().state === 'ok') return;
    await (this.wait ? Promise.race([this.state.whenStoreInStep(), this.wait(this.storeWaitMs)]) : this.state.whenStoreInStep());
    const h = this.state.storeHealth();
    if (h.state !== 'ok') throw new BkvError('UNAVAILABLE', `this member's record store is ${h.state === 'corrupt' ? 'being repaired' : 'behind'}; try again`, { reason: `store-${h.state}` });
  }

  private async commit(entry: ControlEntry): Promise<void> {
    if (!this.leadership.isLeader()) throw notLeader(this.leadership.leaderHint());
    const out = await this.replicator.propose(encodeControl(entry));
    if (out[0] !== CONTROL_APPLIED && out[0] !== CONTROL_APPLIED_DROP) {
      throw new BkvError('CONFLICT', `the group refused the ${entry.kind} entry at apply: ${new TextDecoder().decode(out.subarray(1))}`, { reason: 'refused-at-apply' });
    }
  }
}
