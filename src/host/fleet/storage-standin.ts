/**
 * A minimal file-backed stand-in for `MemberStorage` (src/host/fleet/member-storage.ts), with the
 * same API, used until that module is available. Hard state: one file replaced atomically;
 * log frames: one append-only file of length-prefixed frames (rewritten on truncation and
 * compaction); snapshot: one file per snapshot; counter: a file rewritten and fsynced on increment.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { DriverEnv } from '../../consensus/driver.js';
import type { MonotonicCounter } from '../../consensus/counter.js';
import { peekFrame, peekHardState, selectSnapshot, type BootState, type PersistRecord } from '../../consensus/sealed-state.js';
import { fsyncDir, writeFileDurable } from '../fs-durable.js';

class FileCounter implements MonotonicCounter {
  private value: number;
  constructor(private readonly path: string) {
    this.value = existsSync(path) ? Number(readFileSync(path, 'utf8').trim() || '0') : 0;
  }
  read(): number {
    return this.value;
  }
  increment(): number {
    const next = this.value + 1;
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, String(next));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.value = next;
    return next;
  }
}

function frameIndex(f: Uint8Array): number {
  try {
    return peekFrame(f).index;
  } catch {
    return -1;
  }
}

export class StandInMemberStorage {
  private frames: Uint8Array[] = [];
  private log: FileHandle | null = null;

  private constructor(
    private readonly dir: string,
    private readonly boot: BootState,
    readonly counter: MonotonicCounter,
  ) {
    this.frames = [...boot.logFrames];
  }

  static async open(stateDir: string): Promise<StandInMemberStorage> {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const hardPath = join(stateDir, 'hard.bin');
    const hardState = existsSync(hardPath) ? new Uint8Array(await readFile(hardPath)) : null;
    const frames: Uint8Array[] = [];
    const logPath = join(stateDir, 'log.bin');
    if (existsSync(logPath)) {
      const b = await readFile(logPath);
      let at = 0;
      while (at + 4 <= b.length) {
        const len = b.readUInt32BE(at);
        if (at + 4 + len > b.length) break; // a torn final append
        frames.push(new Uint8Array(b.subarray(at + 4, at + 4 + len)));
        at += 4 + len;
      }
    }
    const snaps: Uint8Array[] = [];
    for (const f of await readdir(stateDir)) if (/^snapshot-\d+\.bin$/.test(f)) snaps.push(new Uint8Array(await readFile(join(stateDir, f))));
    const boot: BootState = { hardState, logFrames: frames, snapshot: selectSnapshot(hardState, snaps) };
    const s = new StandInMemberStorage(stateDir, boot, new FileCounter(join(stateDir, 'counter')));
    s.log = await open(logPath, 'a', 0o600);
    return s;
  }

  bootState(): BootState {
    return this.boot;
  }

  private async rewriteLog(keep: (index: number) => boolean): Promise<void> {
    this.frames = this.frames.filter((f) => keep(frameIndex(f)));
    await this.log?.close();
    const logPath = join(this.dir, 'log.bin');
    await writeFileDurable(logPath, encodeFrames(this.frames));
    this.log = await open(logPath, 'a', 0o600);
  }

  private async apply(r: PersistRecord): Promise<void> {
    let snapIndex = 0;
    if (r.snapshot) {
      snapIndex = peekHardState(r.hardState).snapshot.index;
      await writeFileDurable(join(this.dir, `snapshot-${snapIndex}.bin`), r.snapshot);
    }
    if (r.truncateFrom !== null) {
      const from = r.truncateFrom;
      await this.rewriteLog((i) => i < from);
    }
    if (r.frames.length > 0) {
      await this.log!.write(encodeFrames(r.frames));
      await this.log!.datasync();
      this.frames.push(...r.frames);
    }
    await writeFileDurable(join(this.dir, 'hard.bin'), r.hardState);
    if (r.snapshot) {
      await this.rewriteLog((i) => i > snapIndex);
      for (const f of await readdir(this.dir)) {
        if (/^snapshot-\d+\.bin$/.test(f) && f !== `snapshot-${snapIndex}.bin`) await rm(join(this.dir, f), { force: true });
      }
      await fsyncDir(this.dir);
    }
  }

  persist: DriverEnv['persist'] = (record, done) => {
    this.apply(record).then(() => done(), (err) => done(err));
  };

  async close(): Promise<void> {
    await this.log?.close();
    this.log = null;
  }
}

function encodeFrames(frames: readonly Uint8Array[]): Buffer {
  const total = frames.reduce((a, f) => a + 4 + f.length, 0);
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const f of frames) {
    out.writeUInt32BE(f.length, at);
    out.set(f, at + 4);
    at += 4 + f.length;
  }
  return out;
}
