/**
 * File-backed storage for one vault member's consensus state (untrusted host code: it only moves
 * sealed bytes). Layout under the member's `state/` directory, byte formats in
 * docs/formats/member-state.md:
 *
 *   log                        append-only records: sealed log frames, truncation markers and sealed
 *                              hard states; one fdatasync per persist
 *   snapshot-<sha256 hex>      sealed snapshots, each written atomically; only the referenced one is kept
 *   counter                    the monotonic counter (software build: a fixed-width file rewritten in place)
 *   LOCK                       the pid of the process that has the directory open (src/node/dir-lock.ts)
 *
 * A persist is applied in the order the node requires: snapshot file, then one append of the
 * truncation marker, the frames and the new hard state followed by one fdatasync, then the
 * counter is advanced to the new hard state's stamp (one fdatasync). Only then is the node told
 * (`done()`). Afterwards unreferenced snapshots are deleted and, after a new snapshot or a learner
 * reset, the log is rewritten without compacted or dead frames and with only the current hard state.
 */
import { closeSync, existsSync, fdatasyncSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { fdatasync, write as writeFs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { MonotonicCounter } from '../../trusted/consensus/counter.js';
import type { DriverEnv } from '../../trusted/consensus/driver.js';
import { peekFrame, peekHardState } from '../../trusted/consensus/sealed-state.js';
import { EMPTY_BOOT } from '../../trusted/consensus/sealed-state.js';
import type { BootState, PersistRecord } from '../../trusted/consensus/sealed-state.js';
import { fsyncDir, writeFileDurable } from '../../node/fs-durable.js';
import { equalBytes } from '../../shared/bytes.js';
import { openLocked, type DirLock } from '../../node/dir-lock.js';

/** Version 2 kept the hard state in a file of its own; it is moved into the log at open. */
const LEGACY_HARD_STATE = 'hard-state';
const LOG = 'log';
const COUNTER = 'counter';
const SNAP_PREFIX = 'snapshot-';
const REC_FRAME = 1;
const REC_TRUNCATE = 2;
const REC_HARD_STATE = 3;
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
  return createHash('sha256').update(Uint8Array.of(kind)).update(payload).digest().subarray(0, 4);
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

type LogRecord = { kind: 'frame'; bytes: Uint8Array } | { kind: 'truncate'; from: number } | { kind: 'hard'; bytes: Uint8Array };

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
    if (!equalBytes(want, got)) break;
    if (kind === REC_FRAME) records.push({ kind: 'frame', bytes: payload.slice() });
    else if (kind === REC_HARD_STATE) records.push({ kind: 'hard', bytes: payload.slice() });
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
    if (r.kind !== 'frame') continue;
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

const COUNTER_RE = /^bkv-counter v1 (\d+)\n$/;
/** Fixed width, so that every update rewrites the same bytes in place (one sector, one fdatasync). */
const counterText = (v: number) => `bkv-counter v1 ${String(v).padStart(20, '0')}\n`;

/**
 * The member's monotonic counter as a file (in an HSM this is NVRAM the host cannot touch; in the
 * software build it trusts the host). The file has a fixed width and is rewritten in place with
 * one fdatasync. `MemberStorage` advances it to the stamp of each hard state right after that hard
 * state is durable (`advanceTo`, asynchronous), so the node's `increment()` then finds the value
 * already durable and does no I/O; a caller without the storage gets a synchronous write.
 */
export class FileCounter implements MonotonicCounter {
  /** The value the node has confirmed (what `read()` returns). */
  private value: number;
  /** The value durable in the file (>= value). */
  private durable: number;
  private fd: number | null = null;

  constructor(private readonly path: string) {
    this.value = 0;
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8');
      const m = COUNTER_RE.exec(text);
      if (!m) throw new MemberStorageError(`${path}: not a member counter file`);
      this.value = Number(m[1]);
      if (!Number.isSafeInteger(this.value)) throw new MemberStorageError(`${path}: counter out of range`);
      if (text !== counterText(this.value)) this.replace(this.value); // an older variable-width file
    } else {
      this.replace(0);
    }
    this.durable = this.value;
  }

  /** Atomic replace (temp, fsync, rename, directory fsync): only at creation or format upgrade. */
  private replace(v: number): void {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, counterText(v));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    fsyncDirSync(join(this.path, '..'));
  }

  private handle(): number {
    if (this.fd === null) this.fd = openSync(this.path, 'r+');
    return this.fd;
  }

  read(): number {
    return this.value;
  }

  increment(): number {
    const next = this.value + 1;
    if (this.durable < next) {
      const fd = this.handle();
      writeSync(fd, counterText(next), 0, 'utf8');
      fdatasyncSync(fd);
      this.durable = next;
    }
    this.value = next;
    return next;
  }

  /**
   * Makes `v` durable ahead of the node's `increment()` (which then returns it without I/O). Only
   * for the value the next increment will produce, after the hard state stamped `v` is durable.
   */
  async advanceTo(v: number): Promise<void> {
    if (v !== this.value + 1 || this.durable >= v) return;
    const fd = this.handle();
    await new Promise<void>((resolve, reject) => {
      writeFs(fd, counterText(v), 0, 'utf8', (err) => (err ? reject(err) : fdatasync(fd, (e) => (e ? reject(e) : resolve()))));
    });
    this.durable = Math.max(this.durable, v);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export class MemberStorage {
  private log: FileHandle | null;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** Length of the log file up to its last complete record. */
  private logLength: number;
  /** Counts for tests and the benchmark. */
  readonly stats = { persists: 0, syncs: 0, bytes: 0, compactions: 0 };

  private constructor(
    private readonly dir: string,
    private boot: BootState,
    readonly counter: FileCounter,
    log: FileHandle,
    logLength: number,
    private readonly lock: DirLock,
  ) {
    this.log = log;
    this.logLength = logLength;
  }

  static async open(stateDir: string): Promise<MemberStorage> {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    // Before anything is read or cleaned up: another process may be running on this directory.
    return openLocked(stateDir, 'member state directory', (lock) => MemberStorage.openLocked(stateDir, lock));
  }

  private static async openLocked(stateDir: string, lock: DirLock): Promise<MemberStorage> {
    for (const name of await readdir(stateDir)) if (name.includes('.tmp')) await rm(join(stateDir, name), { force: true });
    const counter = new FileCounter(join(stateDir, COUNTER));

    const logPath = join(stateDir, LOG);
    const raw = existsSync(logPath) ? new Uint8Array(await readFile(logPath)) : new Uint8Array(0);
    const { records, validLength } = parseLog(raw);
    const handle = await open(logPath, 'a+', 0o600);
    let logLength = validLength;
    if (validLength < raw.length) {
      await handle.truncate(validLength); // a torn tail from a crash during an append
      await handle.sync();
    }
    const hardStates = records.filter((r) => r.kind === 'hard').map((r) => (r as { bytes: Uint8Array }).bytes);
    // Version 2 kept the hard state in its own file: move it into the log once.
    const legacy = join(stateDir, LEGACY_HARD_STATE);
    if (hardStates.length === 0 && existsSync(legacy)) {
      const hs = new Uint8Array(await readFile(legacy));
      const rec = encodeRecord(REC_HARD_STATE, hs);
      await handle.appendFile(rec);
      await handle.datasync();
      logLength += rec.length;
      hardStates.push(hs);
      await rm(legacy, { force: true });
    }
    await fsyncDir(stateDir);
    await fsyncDir(join(stateDir, '..'));

    const hardState = pickHardState(hardStates, counter.read());
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
    // Every frame goes to the node (dead ones are ignored there); only compaction uses markers.
    const logFrames = records.filter((r) => r.kind === 'frame').map((r) => (r as { bytes: Uint8Array }).bytes);
    return new MemberStorage(stateDir, { hardState, logFrames, snapshot }, counter, handle, logLength, lock);
  }

  /**
   * Installs a state that was built elsewhere into a member that is not running, through the same
   * persist path (and counter) a running member uses: `make(stamp)` returns the sealed snapshot and
   * the sealed hard state naming it, stamped `stamp` (the counter's next value). Used to give a
   * benchmark fleet a large preloaded state without replaying millions of entries.
   */
  static async install(stateDir: string, make: (stamp: number) => { snapshot: Uint8Array; hardState: Uint8Array }): Promise<void> {
    const s = await MemberStorage.open(stateDir);
    try {
      const stamp = s.counter.read() + 1;
      const { snapshot, hardState } = make(stamp);
      await new Promise<void>((resolve, reject) => {
        s.persist({ snapshot, truncateFrom: 1, frames: [], hardState }, (err) => (err ? reject(err) : resolve()));
      });
      if (s.counter.increment() !== stamp) throw new MemberStorageError('counter moved during install');
    } finally {
      await s.close();
    }
  }

  /**
   * What RaftNode needs to boot from disk (pass as `RaftNodeOptions.boot`). Handed over once: the
   * storage drops its reference, so a large snapshot is not kept twice for the member's lifetime.
   */
  bootState(): BootState {
    const b = this.boot;
    this.boot = EMPTY_BOOT;
    return b;
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
    this.stats.persists++;
    if (rec.snapshot !== null) {
      await writeFileDurable(join(this.dir, SNAP_PREFIX + createHash('sha256').update(rec.snapshot).digest('hex')), rec.snapshot);
      this.stats.syncs += 2;
    }
    const parts: Uint8Array[] = [];
    if (rec.truncateFrom !== null) parts.push(encodeRecord(REC_TRUNCATE, truncationPayload(rec.truncateFrom)));
    for (const f of rec.frames) parts.push(encodeRecord(REC_FRAME, f));
    // The hard state goes last: if it is on disk after a crash, so is everything before it.
    parts.push(encodeRecord(REC_HARD_STATE, rec.hardState));
    const buf = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
    try {
      await this.log.appendFile(buf);
      await this.log.datasync();
    } catch (err) {
      // Never leave a partial record in front of the retry's appends.
      await this.log.truncate(this.logLength).catch(() => undefined);
      throw err;
    }
    this.logLength += buf.length;
    this.stats.syncs++;
    this.stats.bytes += buf.length + (rec.snapshot?.length ?? 0);
    // The hard state is durable: the counter may now reach its stamp (the node confirms it next).
    await this.counter.advanceTo(peekHardState(rec.hardState).stamp);
    this.stats.syncs++;
    if (rec.snapshot !== null || rec.truncateFrom === 1) await this.compact(rec.hardState);
  }

  /** After a durable hard state: drop unreferenced snapshots and rewrite the log without dead frames. */
  private async compact(hardState: Uint8Array): Promise<void> {
    this.stats.compactions++;
    const ref = peekHardState(hardState).snapshot;
    const keep = ref.index > 0 ? SNAP_PREFIX + hex(ref.digest) : null;
    for (const name of await readdir(this.dir)) {
      if (name.startsWith(SNAP_PREFIX) && name !== keep && !name.includes('.tmp')) await rm(join(this.dir, name), { force: true });
    }
    const logPath = join(this.dir, LOG);
    const { records } = parseLog(new Uint8Array(await readFile(logPath)));
    const live = liveFrames(records, ref.index);
    const buf = Buffer.concat([...live.map((f) => encodeRecord(REC_FRAME, f)), encodeRecord(REC_HARD_STATE, hardState)]);
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
    this.counter.close();
    this.lock.release();
  }
}

/**
 * The hard state to boot from: the newest one whose stamp equals the counter (the last one the
 * member confirmed), else the newest. Any other choice the host could make (an older record, a
 * log from an older copy of the directory) is refused by the member's stamp check.
 */
function pickHardState(hardStates: readonly Uint8Array[], counter: number): Uint8Array | null {
  for (let k = hardStates.length - 1; k >= 0; k--) {
    const hs = hardStates[k] as Uint8Array;
    try {
      if (peekHardState(hs).stamp === counter) return hs;
    } catch {
      // not readable: the node judges the newest one below
    }
  }
  return hardStates.at(-1) ?? null;
}
