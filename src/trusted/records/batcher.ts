/**
 * The leader's side of the record store: commands wait in a queue, and one batch at a time is
 * read (with proofs, from the host's store), checked against the committed root, run, sealed and
 * proposed. Only once the batch is committed on a majority and applied here do its commands'
 * results leave the core, so a guess is always paid for before a credential response exists.
 *
 * One batch in flight keeps every proof valid for the entry it travels in: the batch applies to
 * exactly the root it was read against. Commands that arrive meanwhile share the next batch (group
 * commit). A member that is not the leader refuses with UNAVAILABLE and a leader hint.
 */
import { bytesToHex } from '@noble/hashes/utils.js';
import { BkvError, isBkvError } from '../../shared/errors.js';
import { equalBytes } from '../../shared/bytes.js';
import { valueHash, verifyProof } from '../../shared/record-tree/index.js';
import type { Replicator } from '../core/replication.js';
import { SEAL_NONCE_BYTES, type SealAead } from '../core/sealing.js';
import { MAX_BATCH_KEYS, encodeBatch, type BatchItem } from './batch.js';
import { runCommand, type Command, type CommandResult } from './commands.js';
import { commandRecordId, openRecord, recordId, sealRecord, type RecordKeys } from './record-keys.js';
import type { VaultRecord } from './record.js';
import { decodeAppliedOutcome, type RecordState } from './record-state.js';
import { checkOwnership, wrongGroup } from '../groups/ownership.js';

/** What the host's store answers for a read: its own idea of where it is, and each key with a proof. */
export interface ProvenReads {
  meta: { index: number; root: Uint8Array };
  reads: Array<{ key: Uint8Array; value: Uint8Array | null; proof: Uint8Array }>;
}

/** The host's store, as the core reads it. Untrusted: everything it returns is checked. */
export interface RecordReader {
  read(keys: Uint8Array[]): Promise<ProvenReads>;
  /**
   * The ids the host's store holds in [from, to) (`to` null: to the end), increasing, at most
   * `limit`: untrusted, a hint of what to read (a range transfer's leader counts the records it
   * drops with it and checks the count against its root).
   */
  listKeys?(from: Uint8Array, to: Uint8Array | null, limit: number): Promise<Uint8Array[]>;
}

/** Who leads, from the consensus layer. */
export interface Leadership {
  isLeader(): boolean;
  leaderHint(): number | null;
  /** True when every entry in this member's log is applied (a new leader's first entry included). */
  caughtUp(): boolean;
}

export interface BatcherEnv {
  now(): number;
  random(n: number): Uint8Array;
  /** Resolves after `ms` of host time (used only to wait for a lagging store). */
  wait(ms: number): Promise<void>;
  aead?: SealAead;
}

export interface BatcherOptions {
  /** Commands per batch (default 64). */
  maxBatch?: number;
  /** How long to wait for the host's store to catch up before giving up (default 3000 ms). */
  storeWaitMs?: number;
  /** Rebuilds of a batch that lost a race (default 3). */
  retries?: number;
  /** Observer: called with each command batch just before it is proposed, and the commands it carries (the simulator's checker). */
  onPropose?: (entry: Uint8Array, commands: readonly Command[]) => void;
}

interface Job {
  cmd: Command;
  id: Uint8Array;
  resolve(r: CommandResult): void;
  reject(e: unknown): void;
}

interface ImportJob {
  records: Array<{ account: string; record: VaultRecord }>;
  resolve(imported: number): void;
  reject(e: unknown): void;
}

class Retry extends Error {}

export function notLeader(hint: number | null): BkvError {
  return new BkvError('UNAVAILABLE', 'this member is not the leader', { reason: 'not-leader', leaderHint: hint });
}

export function isNotLeader(e: unknown): boolean {
  return isBkvError(e, 'UNAVAILABLE') && (e as BkvError).details.reason === 'not-leader';
}

export class RecordBatcher {
  private queue: Array<Job | ImportJob> = [];
  private running = false;
  private readonly maxBatch: number;
  private readonly storeWaitMs: number;
  private readonly retries: number;
  private readonly onPropose: BatcherOptions['onPropose'];
  readonly stats = { batches: 0, commands: 0, stale: 0, storeWaits: 0, storeCorrupt: 0 };

  constructor(
    private readonly keys: RecordKeys,
    private readonly state: RecordState,
    private readonly reader: RecordReader,
    private readonly replicator: Replicator,
    private readonly leadership: Leadership,
    private readonly env: BatcherEnv,
    opts: BatcherOptions = {},
  ) {
    this.maxBatch = Math.min(opts.maxBatch ?? 64, MAX_BATCH_KEYS);
    this.storeWaitMs = opts.storeWaitMs ?? 3000;
    this.retries = opts.retries ?? 3;
    this.onPropose = opts.onPropose;
  }

  /** Runs one command through the next batch; resolves with its result once the batch is committed. */
  execute(cmd: Command): Promise<CommandResult> {
    if (!this.leadership.isLeader()) return Promise.reject(notLeader(this.leadership.leaderHint()));
    const id = commandRecordId(this.keys, cmd);
    // A record of another replication group is refused before anything runs (docs/groups.md).
    try {
      checkOwnership(this.state.group, id);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ cmd, id, resolve, reject });
      this.kick();
    });
  }

  /**
   * Carries records of an earlier release over into the record store, through the log like any
   * change (at most MAX_BATCH_KEYS per batch). Only accepted before the first command batch and
   * only for ids not yet present: the replicated state refuses anything else.
   */
  importRecords(records: Array<{ account: string; record: VaultRecord }>): Promise<number> {
    if (!this.leadership.isLeader()) return Promise.reject(notLeader(this.leadership.leaderHint()));
    return new Promise((resolve, reject) => {
      this.queue.push({ records, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0]!;
        if ('records' in head) {
          this.queue.shift();
          await this.runImport(head);
          continue;
        }
        await this.run(this.takeBatch());
      }
    } finally {
      this.running = false;
      this.kick();
    }
  }

  /** Up to `maxBatch` commands touching at most MAX_BATCH_KEYS records. */
  private takeBatch(): Job[] {
    let n = 0;
    while (n < this.queue.length && n < this.maxBatch && !('records' in this.queue[n]!)) n++;
    return this.queue.splice(0, n) as Job[];
  }

  private async runImport(job: ImportJob): Promise<void> {
    try {
      let done = 0;
      for (let at = 0; at < job.records.length; at += MAX_BATCH_KEYS) {
        const part = job.records.slice(at, at + MAX_BATCH_KEYS);
        if (!this.leadership.isLeader()) throw notLeader(this.leadership.leaderHint());
        if (!this.leadership.caughtUp()) await this.replicator.readBarrier();
        await this.storeInStep();
        const root = this.state.root;
        const keys = part.map((p) => recordId(this.keys, p.account));
        const res = await this.reader.read(keys);
        const items: BatchItem[] = [];
        part.forEach((p, i) => {
          const key = keys[i]!;
          const r = res.reads.find((x) => equalBytes(x.key, key));
          if (!r) this.corrupt('the store did not answer for an imported record');
          let vh: Uint8Array | null;
          try {
            vh = verifyProof(root, key, r.proof);
          } catch {
            this.corrupt(`the store's proof for an imported record does not match the committed root`);
          }
          if (vh !== null) throw new BkvError('CONFLICT', `account ${p.account} already has a record: nothing is imported over an existing one`);
          items.push({ key, proof: r.proof, value: sealRecord(this.keys, key, p.record, this.env.random(SEAL_NONCE_BYTES), this.env.aead) });
        });
        const outcome = decodeAppliedOutcome(await this.replicator.propose(encodeBatch({ kind: 'import', ts: this.env.now(), items })));
        if (outcome.status !== 'applied') throw new BkvError('CONFLICT', 'the vault refused the import (imports are only accepted before the first request)');
        done += part.length;
      }
      job.resolve(done);
    } catch (e) {
      job.reject(e);
    }
  }

  private async run(jobs: Job[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      // A transfer that committed while these waited takes their records away: refuse those.
      const group = this.state.group;
      if (group) {
        jobs = jobs.filter((j) => {
          if (group.serves(j.id)) return true;
          j.reject(wrongGroup(group, j.id));
          return false;
        });
        if (jobs.length === 0) return;
      }
      try {
        const results = await this.once(jobs);
        this.stats.batches++;
        this.stats.commands += jobs.length;
        jobs.forEach((j, i) => j.resolve(results[i]!));
        return;
      } catch (e) {
        if (e instanceof Retry && attempt < this.retries) {
          this.stats.stale++;
          continue;
        }
        const err = e instanceof Retry ? new BkvError('UNAVAILABLE', `the vault could not complete the request: ${e.message}; try again`) : e;
        for (const j of jobs) j.reject(err);
        return;
      }
    }
  }

  private async once(jobs: Job[]): Promise<CommandResult[]> {
    if (!this.leadership.isLeader()) throw notLeader(this.leadership.leaderHint());
    // A new leader first applies everything in its log (its own first entry included).
    if (!this.leadership.caughtUp()) await this.replicator.readBarrier();
    if (!this.leadership.isLeader()) throw notLeader(this.leadership.leaderHint());
    await this.storeInStep();
    const root = this.state.root;
    const batchIndex = this.state.lastBatchIndex;

    const unique = new Map<string, Uint8Array>();
    for (const j of jobs) unique.set(bytesToHex(j.id), j.id);
    const keys = [...unique.values()];
    const res = await this.reader.read(keys);
    if (!equalBytes(this.state.root, root)) throw new Retry('the committed root moved during the read');

    const records = new Map<string, VaultRecord | undefined>();
    const proofs = new Map<string, Uint8Array>();
    for (const key of keys) {
      const k = bytesToHex(key);
      const r = res.reads.find((x) => equalBytes(x.key, key));
      if (!r) this.corrupt(`the store did not answer for record ${k.slice(0, 16)}…`);
      let vh: Uint8Array | null;
      try {
        vh = verifyProof(root, key, r.proof);
      } catch {
        if (res.meta.index < batchIndex) {
          // Behind: still writing (wait), or gone back to a batch before one it already reported stored.
          if (this.state.storedIndex >= batchIndex) this.corrupt(`the store went back to batch ${res.meta.index} after holding batch ${this.state.storedIndex}`);
          throw new Retry('the store is behind the committed state');
        }
        this.corrupt(`the store's proof for record ${k.slice(0, 16)}… does not match the committed root`);
      }
      if (vh === null) {
        if (r.value !== null) this.corrupt(`the store holds record ${k.slice(0, 16)}… that the committed root says does not exist`);
        records.set(k, undefined);
      } else {
        if (r.value === null || !equalBytes(valueHash(r.value), vh)) this.corrupt(`the store's record ${k.slice(0, 16)}… is not the committed one`);
        try {
          records.set(k, openRecord(this.keys, key, r.value, this.env.aead));
        } catch {
          this.corrupt(`record ${k.slice(0, 16)}… matches the root but does not open`);
        }
      }
      proofs.set(k, r.proof);
    }

    const results: CommandResult[] = [];
    const changed = new Set<string>();
    for (const j of jobs) {
      const k = bytesToHex(j.id);
      const { result, next } = runCommand(records.get(k), j.cmd);
      results.push(result);
      if (next) {
        records.set(k, next);
        changed.add(k);
      }
    }
    // Every batch goes through the log, even one that changes nothing (an attempt for an unknown
    // or locked account): each request costs a majority commit, so none answers faster than another,
    // and a member that no longer leads cannot answer from a stale view.
    const items: BatchItem[] = [];
    for (const key of keys) {
      const k = bytesToHex(key);
      const item: BatchItem = { key, proof: proofs.get(k)! };
      if (changed.has(k)) item.value = sealRecord(this.keys, key, records.get(k) as VaultRecord, this.env.random(SEAL_NONCE_BYTES), this.env.aead);
      items.push(item);
    }
    const entry = encodeBatch({ kind: 'commands', ts: this.env.now(), items });
    this.onPropose?.(entry, jobs.map((j) => j.cmd));
    const outcome = decodeAppliedOutcome(await this.replicator.propose(entry));
    if (outcome.status === 'stale') throw new Retry('the batch was overtaken by a leader change');
    if (outcome.status !== 'applied') throw new BkvError('INTERNAL', 'the vault rejected its own batch');
    return results;
  }

  private async storeInStep(): Promise<void> {
    if (this.state.storeHealth().state === 'ok') return;
    this.stats.storeWaits++;
    await Promise.race([this.state.whenStoreInStep(), this.env.wait(this.storeWaitMs)]);
    const h = this.state.storeHealth();
    if (h.state === 'corrupt') {
      this.stats.storeCorrupt++;
      throw new BkvError('UNAVAILABLE', `this member's record store is being repaired (${h.reason}); try again`, { reason: 'store-corrupt' });
    }
    if (h.state === 'behind') throw new BkvError('UNAVAILABLE', `this member's record store is behind (at batch ${h.storeIndex}); try again`, { reason: 'store-behind' });
  }

  private corrupt(reason: string): never {
    this.state.markStoreCorrupt(reason);
    this.stats.storeCorrupt++;
    throw new BkvError('UNAVAILABLE', `this member's record store failed verification (${reason}); it must be repaired from a peer`, { reason: 'store-corrupt' });
  }
}

