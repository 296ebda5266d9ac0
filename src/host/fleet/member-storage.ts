/**
 * File-backed storage for one vault member's consensus state (untrusted host code: it only moves
 * sealed bytes). Layout under the member's `state/` directory, byte formats in
 * docs/formats/member-state.md:
 *
 *   hard-state                 sealed hard state, replaced atomically (temp, fsync, rename, dir fsync)
 *   log                        append-only records: sealed log frames and truncation markers (fdatasync)
 *   snapshot-<sha256 hex>      sealed snapshots, each written atomically; only the referenced one is kept
 *   counter                    the monotonic counter (software build: a file, replaced atomically)
 *
 * A persist is applied in the order the node requires: snapshot file, log appends + fdatasync,
 * hard state. Only then is the node told (`done()`). Afterwards unreferenced snapshots are
 * deleted and, after a new snapshot, the log is rewritten without compacted or dead frames.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import type { MonotonicCounter } from '../../consensus/counter.js';
import type { DriverEnv } from '../../consensus/driver.js';
import { peekFrame, peekHardState } from '../../consensus/sealed-state.js';
import type { BootState, PersistRecord } from '../../consensus/sealed-state.js';
import { fsyncDir, writeFileDurable } from '../fs-durable.js';

const HARD_STATE = 'hard-state';
const LOG = 'log';
const COUNTER = 'counter';
const SNAP_PREFIX = 'snapshot-';
const REC_FRAME = 1;
const REC_TRUNCATE = 2;
/** Record header: u32 payload length, u8 kind, 4-byte check (SHA-256 of kind ‖ payload, truncated). */
const REC_HEADER = 9;
const MAX_RECORD = 64 * 1024 * 1024;

export class MemberStorageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MemberStorageError';
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function check(kind: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(1 + payload.length);
  b[0] = kind;
  b.set(payload, 1);
  return sha256(b).subarray(0, 4);
}

function encodeRecord(kind: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(REC_HEADER + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, payload.length);
  out[4] = kind;
  out.set(check(kind, payload), 5);
  out.set(payload, REC_HEADER);
  return out;
}

function truncationPayload(from: number): Uint8Array {
  const p = new Uint8Array(8);
  const v = new DataView(p.buffer);
  v.setUint32(0, Math.floor(from / 0x100000000));
  v.setUint32(4, from >>> 0);
  return p;
}

type LogRecord = { kind: 'frame'; bytes: Uint8Array } | { kind: 'truncate'; from: number };

/** Parses the log file; stops at the first incomplete or damaged record (a torn tail). */
export function parseLog(buf: Uint8Array): { records: LogRecord[]; validLength: number } {
  const records: LogRecord[] = [];
  let off = 0;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  while (off + REC_HEADER <= buf.length) {
    const len = v.getUint32(off);
    const kind = buf[off + 4] as number;
    if (len > MAX_RECORD || off + REC_HEADER + len > buf.length) break;
    const payload = buf.subarray(off + REC_HEADER, off + REC_HEADER + len);
    const want = check(kind, payload);
    const got = buf.subarray(off + 5, off + 9);
    if (!want.every((x, i) => x === got[i])) break;
    if (kind === REC_FRAME) records.push({ kind: 'frame', bytes: payload.slice() });
    else if (kind === REC_TRUNCATE && len === 8) records.push({ kind: 'truncate', from: v.getUint32(off + REC_HEADER) * 0x100000000 + v.getUint32(off + REC_HEADER + 4) });
    else break;
    off += REC_HEADER + len;
  }
  return { records, validLength: off };
}

/** Frames that are still useful: above the snapshot and not killed by a later truncation marker. */
function liveFrames(records: readonly LogRecord[], snapIndex: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let killFrom = Infinity;
  for (let k = records.length - 1; k >= 0; k--) {
    const r = records[k] as LogRecord;
    if (r.kind === 'truncate') {
      killFrom = Math.min(killFrom, r.from);
      continue;
    }
    let index: number;
    try {
      index = peekFrame(r.bytes).index;
    } catch {
      continue;
    }
    if (index > snapIndex && index < killFrom) out.push(r.bytes);
  }
  return out.reverse();
}

function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The member's monotonic counter as a file, replaced atomically and fsynced on every increment.
 * (In an HSM this is NVRAM the host cannot touch; in the software build it trusts the host.)
 */
export class FileCounter implements MonotonicCounter {
  private value: number;

  constructor(private readonly path: string) {
    this.value = 0;
    if (existsSync(path)) {
      const m = /^bkv-counter v1 (\d+)\n$/.exec(readFileSync(path, 'utf8'));
      if (!m) throw new MemberStorageError(`${path}: not a member counter file`);
      this.value = Number(m[1]);
      if (!Number.isSafeInteger(this.value)) throw new MemberStorageError(`${path}: counter out of range`);
    }
  }

  read(): number {
    return this.value;
  }

  increment(): number {
    const next = this.value + 1;
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `bkv-counter v1 ${next}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    fsyncDirSync(join(this.path, '..'));
    this.value = next;
    return next;
  }
}

export class MemberStorage {
  private log: FileHandle | null;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** Length of the log file up to its last complete record. */
  private logLength: number;

  private constructor(
    private readonly dir: string,
    private readonly boot: BootState,
    readonly counter: MonotonicCounter,
    log: FileHandle,
    logLength: number,
  ) {
    this.log = log;
    this.logLength = logLength;
  }

  static async open(stateDir: string): Promise<MemberStorage> {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(stateDir)) if (name.includes('.tmp')) await rm(join(stateDir, name), { force: true });
    const hsPath = join(stateDir, HARD_STATE);
    const hardState = existsSync(hsPath) ? new Uint8Array(await readFile(hsPath)) : null;

    let snapshot: Uint8Array | null = null;
    if (hardState !== null) {
      try {
        const ref = peekHardState(hardState).snapshot;
        const p = join(stateDir, SNAP_PREFIX + hex(ref.digest));
        if (ref.index > 0 && existsSync(p)) snapshot = new Uint8Array(await readFile(p));
      } catch {
        // An unreadable hard state is the node's to judge (it boots as a learner).
      }
    }

    const logPath = join(stateDir, LOG);
    const raw = existsSync(logPath) ? new Uint8Array(await readFile(logPath)) : new Uint8Array(0);
    const { records, validLength } = parseLog(raw);
    const handle = await open(logPath, 'a+', 0o600);
    if (validLength < raw.length) {
      await handle.truncate(validLength); // a torn tail from a crash during an append
      await handle.sync();
    }
    await fsyncDir(stateDir);
    await fsyncDir(join(stateDir, '..'));
    // Every frame goes to the node (dead ones are ignored there); only compaction uses markers.
    const logFrames = records.filter((r) => r.kind === 'frame').map((r) => (r as { bytes: Uint8Array }).bytes);
    const counter = new FileCounter(join(stateDir, COUNTER));
    return new MemberStorage(stateDir, { hardState, logFrames, snapshot }, counter, handle, validLength);
  }

  /** What RaftNode needs to boot from disk (pass as `RaftNodeOptions.boot`). */
  bootState(): BootState {
    return this.boot;
  }

  /** The DriverEnv.persist implementation: make the output durable, then call done(). */
  persist: DriverEnv['persist'] = (record, done) => {
    this.queue = this.queue
      .then(() => this.write(record))
      // done() runs outside the chain: an exception in the node must surface, not be swallowed.
      .then(() => queueMicrotask(() => done()), (err: unknown) => queueMicrotask(() => done(err ?? new MemberStorageError('persist failed'))));
  };

  private async write(rec: PersistRecord): Promise<void> {
    if (this.closed || this.log === null) throw new MemberStorageError('member storage is closed');
    if (rec.snapshot !== null) {
      await writeFileDurable(join(this.dir, SNAP_PREFIX + hex(sha256(rec.snapshot))), rec.snapshot);
    }
    const parts: Uint8Array[] = [];
    if (rec.truncateFrom !== null) parts.push(encodeRecord(REC_TRUNCATE, truncationPayload(rec.truncateFrom)));
    for (const f of rec.frames) parts.push(encodeRecord(REC_FRAME, f));
    if (parts.length > 0) {
      const buf = Buffer.concat(parts);
      try {
        await this.log.appendFile(buf);
        await this.log.datasync();
      } catch (err) {
        // Never leave a partial record in front of the retry's appends.
        await this.log.truncate(this.logLength).catch(() => undefined);
        throw err;
      }
      this.logLength += buf.length;
    }
    await writeFileDurable(join(this.dir, HARD_STATE), rec.hardState);
    if (rec.snapshot !== null || rec.truncateFrom === 1) await this.compact(rec.hardState);
  }

  /** After a durable hard state: drop unreferenced snapshots and rewrite the log without dead frames. */
  private async compact(hardState: Uint8Array): Promise<void> {
    const ref = peekHardState(hardState).snapshot;
    const keep = ref.index > 0 ? SNAP_PREFIX + hex(ref.digest) : null;
    for (const name of await readdir(this.dir)) {
      if (name.startsWith(SNAP_PREFIX) && name !== keep && !name.includes('.tmp')) await rm(join(this.dir, name), { force: true });
    }
    const logPath = join(this.dir, LOG);
    const { records } = parseLog(new Uint8Array(await readFile(logPath)));
    const live = liveFrames(records, ref.index);
    const buf = Buffer.concat(live.map((f) => encodeRecord(REC_FRAME, f)));
    const tmp = `${logPath}.tmp`;
    const h = await open(tmp, 'w', 0o600);
    try {
      await h.writeFile(buf);
      await h.sync();
    } finally {
      await h.close();
    }
    await this.log?.close();
    this.log = null;
    await rename(tmp, logPath);
    await fsyncDir(this.dir);
    this.log = await open(logPath, 'a+', 0o600);
    this.logLength = buf.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue.catch(() => undefined);
    await this.log?.close();
    this.log = null;
  }
}
