/**
 * What a group's leader core does in each phase of a range transfer (docs/groups.md). Every
 * decision is a committed control entry; this class only reads the host's store (checking every
 * proof against the committed root, as the batcher does), builds entries and messages, and refuses
 * what does not fit with typed errors before proposing anything. The host carries the messages
 * between groups and decides when to retry; it cannot make a group commit a step out of order.
 */
import { BkvError } from '../../shared/errors.js';
import { equalBytes } from '../../shared/bytes.js';
import { compareKeys, valueHash, verifyProof } from '../../shared/record-tree/index.js';
import type { Replicator } from '../core/replication.js';
import { encodeBatch, MAX_BATCH_KEYS, type BatchItem } from '../records/batch.js';
import type { RecordReader, Leadership } from '../records/batcher.js';
import { notLeader } from '../records/batcher.js';
import { CONTROL_APPLIED, decodeAppliedOutcome, type RecordState } from '../records/record-state.js';
import { digestKeys, rangeDigest } from './digest.js';
import { encodeMessage, type TransferMessage } from './messages.js';
import { containsId, sameRange, type KeyRange } from './range.js';
import { encodeControl, replayed, wrongPhase, type ControlEntry, type GroupState } from './state.js';

const RETRIES = 3;

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

  /** Ends the outgoing transfer on the destination's committed reply: 'done' (accepted) or 'aborted' (refused). */
  async finish(reply: Uint8Array): Promise<'done' | 'aborted'> {
    const m = this.group.open(reply);
    if (m.phase !== 'accepted' && m.phase !== 'refused') throw wrongPhase(`a ${m.phase} message is not a reply`);
    const entry: ControlEntry = m.phase === 'accepted' ? { kind: 'done', reply } : { kind: 'abort', reply };
    this.group.plan(entry, this.state.root);
    await this.commit(entry);
    return m.phase === 'accepted' ? 'done' : 'aborted';
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
    const last = this.group.lastFrom.get(source);
    if (last && last.seq === seq) return this.reply(source); // already decided: answer with the decision
    const entry: ControlEntry = { kind: 'refuse', source, seq };
    this.group.plan(entry, this.state.root);
    await this.commit(entry);
    return this.reply(source);
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
    if (out[0] !== CONTROL_APPLIED) {
      throw new BkvError('CONFLICT', `the group refused the ${entry.kind} entry at apply: ${new TextDecoder().decode(out.subarray(1))}`, { reason: 'refused-at-apply' });
    }
  }
}
