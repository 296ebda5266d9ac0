import { equalBytes } from '../../shared/bytes.js';
import { BkvError } from '../../shared/errors.js';
import { Reader, Writer } from '../../trusted/core/codec.js';
import {
  ATTEMPT_ID_BYTES,
  decodeEntry,
  type AttemptResult as CurrentAttemptResult,
  type Entry,
  type FinishResult,
  type Ksf,
  type RegisterResult,
} from '../../trusted/core/entries.js';
import type { ReplicatedStateMachine } from '../../trusted/core/replication.js';

/** An open attempt: a credential response was (or is about to be) released for it. */
interface OpenAttempt {
  id: Uint8Array;
  ts: number;
}

export interface VaultRecord {
  opaqueRecord: Uint8Array;
  wrappedKey: Uint8Array;
  ksf: Ksf;
  limit: number;
  attemptsRemaining: number;
  version: number;
  open: OpenAttempt[];
  /** The most recent attempt ids, to recognise a replayed or duplicated recovery start. */
  recent: Uint8Array[];
}

/** How long an unfinished attempt keeps a record at zero attempts from being destroyed. */
export const ATTEMPT_TTL_MS = 10 * 60 * 1000;
const RECENT_IDS = 8;

/**
 * The vault's replicated state: one record per user, with its guess counter. Deterministic:
 * time comes only from the `ts` the proposer wrote into each entry.
 */
export class VaultStateMachine implements ReplicatedStateMachine {
  private records = new Map<string, VaultRecord>();
  /** Users whose record was destroyed after exhausting its attempts (kept to report "locked"). */
  private destroyed = new Set<string>();
  private appliedIndex = 0;

  get lastApplied(): number {
    return this.appliedIndex;
  }

  get size(): number {
    return this.records.size;
  }

  /** Every live record, by user (migration: carried over to the record store). */
  *liveRecords(): IterableIterator<[string, Readonly<VaultRecord>]> {
    yield* this.records.entries();
  }

  /** Users whose record was destroyed after exhausting its attempts (migration: become tombstones). */
  destroyedUsers(): string[] {
    return [...this.destroyed];
  }

  /** Read-only view for tests and status pages; never leaves the core. */
  peek(user: string): Readonly<VaultRecord> | undefined {
    return this.records.get(user);
  }

  apply(index: number, entryBytes: Uint8Array): Uint8Array {
    this.appliedIndex = index;
    let entry: Entry;
    try {
      entry = decodeEntry(entryBytes);
    } catch {
      return encodeResult({ kind: 'invalid' });
    }
    switch (entry.type) {
      case 'register':
        return encodeResult({ kind: 'register', r: this.register(entry) });
      case 'attempt':
        return encodeResult({ kind: 'attempt', r: this.attempt(entry) });
      case 'finish':
        return encodeResult({ kind: 'finish', r: this.finish(entry) });
      default:
        return encodeResult({ kind: 'invalid' }); // release 0.1 knew no other entries
    }
  }

  private register(e: Extract<Entry, { type: 'register' }>): RegisterResult {
    const previous = this.records.get(e.user);
    const version = (previous?.version ?? 0) + 1;
    this.destroyed.delete(e.user);
    this.records.set(e.user, {
      opaqueRecord: e.opaqueRecord,
      wrappedKey: e.wrappedKey,
      ksf: e.ksf,
      limit: e.limit,
      attemptsRemaining: e.limit,
      version,
      open: [],
      recent: [],
    });
    return { status: 'registered', version, attemptsRemaining: e.limit };
  }

  private attempt(e: Extract<Entry, { type: 'attempt' }>): AttemptResult {
    const rec = this.records.get(e.user);
    if (!rec) {
      return { status: this.destroyed.has(e.user) ? 'locked' : 'unknown', attemptsRemaining: 0, limit: 0 };
    }
    if (rec.recent.some((id) => equalBytes(id, e.attemptId))) {
      return { status: 'duplicate', attemptsRemaining: rec.attemptsRemaining, limit: rec.limit };
    }
    rec.open = rec.open.filter((a) => e.ts - a.ts < ATTEMPT_TTL_MS);
    if (rec.attemptsRemaining === 0) {
      if (rec.open.length === 0) this.destroy(e.user);
      return { status: 'locked', attemptsRemaining: 0, limit: rec.limit };
    }
    rec.attemptsRemaining -= 1;
    rec.version += 1;
    rec.open.push({ id: e.attemptId, ts: e.ts });
    rec.recent.push(e.attemptId);
    if (rec.recent.length > RECENT_IDS) rec.recent.shift();
    return {
      status: 'granted',
      attemptsRemaining: rec.attemptsRemaining,
      limit: rec.limit,
      opaqueRecord: rec.opaqueRecord,
      ksf: rec.ksf,
    };
  }

  private finish(e: Extract<Entry, { type: 'finish' }>): FinishResult {
    const rec = this.records.get(e.user);
    if (!rec) return this.destroyed.has(e.user) ? { status: 'destroyed' } : { status: 'stale' };
    const at = rec.open.findIndex((a) => equalBytes(a.id, e.attemptId));
    if (at < 0) return { status: 'stale' };
    rec.open.splice(at, 1);
    rec.version += 1;
    if (e.success) {
      if (e.erase) {
        this.records.delete(e.user);
        return { status: 'erased' };
      }
      // Other open attempts stay open: each already paid for its guess, and a concurrent recovery
      // from a second device must still be able to finish.
      rec.attemptsRemaining = rec.limit;
      return { status: 'recovered', wrappedKey: rec.wrappedKey, attemptsRemaining: rec.attemptsRemaining };
    }
    if (rec.attemptsRemaining === 0 && rec.open.length === 0) {
      this.destroy(e.user);
      return { status: 'destroyed' };
    }
    return { status: 'wrong-password', attemptsRemaining: rec.attemptsRemaining };
  }

  private destroy(user: string): void {
    this.records.delete(user);
    this.destroyed.add(user);
  }

  /**
   * The whole state as bytes (same layout as `Writer`/`Reader` would produce: u64 applied index,
   * u32 count, then per user in sorted order: string user, bytes record, bytes wrapped key, ksf,
   * limit, remaining, u64 version, open attempts, recent ids; then the destroyed users). Written
   * with one sizing pass and one buffer, so a million records take a fraction of a second more
   * than sorting their names.
   */
  snapshot(): Uint8Array {
    const users = [...this.records.keys()].sort();
    const gone = [...this.destroyed].sort();
    const userBytes = new Array<Uint8Array>(users.length);
    let size = 8 + 4 + 4;
    for (let i = 0; i < users.length; i++) {
      const user = users[i]!;
      const ub = te.encode(user);
      userBytes[i] = ub;
      const r = this.records.get(user)!;
      size += 4 + ub.length + 4 + r.opaqueRecord.length + 4 + r.wrappedKey.length + 12 + 8 + 8 + 4 + r.open.length * (ATTEMPT_ID_BYTES + 8) + 4 + r.recent.length * ATTEMPT_ID_BYTES;
    }
    const goneBytes = gone.map((u) => te.encode(u));
    for (const g of goneBytes) size += 4 + g.length;
    const out = new Uint8Array(size);
    const v = new DataView(out.buffer);
    let p = 0;
    const u32 = (x: number) => {
      v.setUint32(p, x);
      p += 4;
    };
    const u64 = (x: number) => {
      v.setUint32(p, Math.floor(x / 2 ** 32));
      v.setUint32(p + 4, x >>> 0);
      p += 8;
    };
    const bytes = (b: Uint8Array) => {
      u32(b.length);
      out.set(b, p);
      p += b.length;
    };
    u64(this.appliedIndex);
    u32(users.length);
    for (let i = 0; i < users.length; i++) {
      const r = this.records.get(users[i]!)!;
      bytes(userBytes[i]!);
      bytes(r.opaqueRecord);
      bytes(r.wrappedKey);
      u32(r.ksf.memory);
      u32(r.ksf.iterations);
      u32(r.ksf.parallelism);
      u32(r.limit);
      u32(r.attemptsRemaining);
      u64(r.version);
      u32(r.open.length);
      for (const a of r.open) {
        out.set(a.id, p);
        p += ATTEMPT_ID_BYTES;
        u64(a.ts);
      }
      u32(r.recent.length);
      for (const id of r.recent) {
        out.set(id, p);
        p += ATTEMPT_ID_BYTES;
      }
    }
    u32(goneBytes.length);
    for (const g of goneBytes) bytes(g);
    if (p !== size) throw new Error('vault snapshot size mismatch');
    return out;
  }

  /**
   * Replaces the state with a snapshot. Byte fields are views into `snapshot` (not copies): the
   * records share its one buffer, which the log keeps as its snapshot anyway.
   */
  restore(snapshot: Uint8Array): void {
    const r = new SnapshotReader(snapshot);
    const appliedIndex = r.u64();
    const n = r.u32();
    const records = new Map<string, VaultRecord>();
    for (let i = 0; i < n; i++) {
      const user = r.string(256);
      const opaqueRecord = r.bytes(1024);
      const wrappedKey = r.bytes(1024);
      const ksf = { memory: r.u32(), iterations: r.u32(), parallelism: r.u32() };
      const limit = r.u32();
      const attemptsRemaining = r.u32();
      const version = r.u64();
      const open: OpenAttempt[] = [];
      for (let k = r.u32(); k > 0; k--) open.push({ id: r.view(ATTEMPT_ID_BYTES), ts: r.u64() });
      const recent: Uint8Array[] = [];
      for (let k = r.u32(); k > 0; k--) recent.push(r.view(ATTEMPT_ID_BYTES));
      records.set(user, { opaqueRecord, wrappedKey, ksf, limit, attemptsRemaining, version, open, recent });
    }
    const destroyed = new Set<string>();
    for (let k = r.u32(); k > 0; k--) destroyed.add(r.string(256));
    r.end();
    this.records = records;
    this.destroyed = destroyed;
    this.appliedIndex = appliedIndex;
  }
}

/** A strict reader for snapshots that returns views instead of copies (see `restore`). */
class SnapshotReader {
  private pos = 0;
  private readonly dv: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new BkvError('MALFORMED', `vault snapshot is truncated (needs ${n} more bytes at offset ${this.pos})`);
  }

  u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const v = this.dv.getUint32(this.pos) * 2 ** 32 + this.dv.getUint32(this.pos + 4);
    this.pos += 8;
    if (!Number.isSafeInteger(v)) throw new BkvError('MALFORMED', 'vault snapshot has an integer out of range');
    return v;
  }

  view(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  bytes(max: number): Uint8Array {
    const n = this.u32();
    if (n > max) throw new BkvError('MALFORMED', `vault snapshot has a field of ${n} bytes (limit ${max})`);
    return this.view(n);
  }

  string(max: number): string {
    const b = this.bytes(max);
    try {
      return td.decode(b);
    } catch {
      throw new BkvError('MALFORMED', 'vault snapshot has a string that is not UTF-8');
    }
  }

  end(): void {
    if (this.pos !== this.buf.length) throw new BkvError('MALFORMED', 'vault snapshot has trailing bytes');
  }
}

/** Release 0.1 had no key ids, so never a key mismatch. */
type AttemptResult = Exclude<CurrentAttemptResult, { status: 'key-mismatch' }>;

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

type AnyResult =
  | { kind: 'invalid' }
  | { kind: 'register'; r: RegisterResult }
  | { kind: 'attempt'; r: AttemptResult }
  | { kind: 'finish'; r: FinishResult };

const ATTEMPT_STATUS = ['granted', 'unknown', 'locked', 'duplicate'] as const;
const FINISH_STATUS = ['recovered', 'erased', 'wrong-password', 'destroyed', 'stale'] as const;

export function encodeResult(res: AnyResult): Uint8Array {
  const w = new Writer(64);
  switch (res.kind) {
    case 'invalid':
      return w.u8(0).finish();
    case 'register':
      return w.u8(1).u64(res.r.version).u32(res.r.attemptsRemaining).finish();
    case 'attempt': {
      const a = res.r;
      w.u8(2).u8(ATTEMPT_STATUS.indexOf(a.status)).u32(a.attemptsRemaining).u32(a.limit);
      if (a.status === 'granted') w.bytes(a.opaqueRecord).u32(a.ksf.memory).u32(a.ksf.iterations).u32(a.ksf.parallelism);
      return w.finish();
    }
    case 'finish': {
      const f = res.r;
      w.u8(3).u8(FINISH_STATUS.indexOf(f.status));
      if (f.status === 'recovered') w.bytes(f.wrappedKey).u32(f.attemptsRemaining);
      if (f.status === 'wrong-password') w.u32(f.attemptsRemaining);
      return w.finish();
    }
  }
}

export function decodeResult(bytes: Uint8Array): AnyResult {
  const r = new Reader(bytes, 'entry result');
  const kind = r.u8();
  let out: AnyResult;
  if (kind === 0) out = { kind: 'invalid' };
  else if (kind === 1) out = { kind: 'register', r: { status: 'registered', version: r.u64(), attemptsRemaining: r.u32() } };
  else if (kind === 2) {
    const status = ATTEMPT_STATUS[r.u8()];
    const attemptsRemaining = r.u32();
    const limit = r.u32();
    if (status === 'granted') {
      const opaqueRecord = r.bytes(1024);
      const ksf = { memory: r.u32(), iterations: r.u32(), parallelism: r.u32() };
      out = { kind: 'attempt', r: { status, attemptsRemaining, limit, opaqueRecord, ksf } };
    } else if (status) out = { kind: 'attempt', r: { status, attemptsRemaining, limit } };
    else throw new BkvError('MALFORMED', 'bad attempt result');
  } else if (kind === 3) {
    const status = FINISH_STATUS[r.u8()];
    if (status === 'recovered') out = { kind: 'finish', r: { status, wrappedKey: r.bytes(1024), attemptsRemaining: r.u32() } };
    else if (status === 'wrong-password') out = { kind: 'finish', r: { status, attemptsRemaining: r.u32() } };
    else if (status) out = { kind: 'finish', r: { status } };
    else throw new BkvError('MALFORMED', 'bad finish result');
  } else throw new BkvError('MALFORMED', `bad result kind ${kind}`);
  r.end();
  return out;
}
