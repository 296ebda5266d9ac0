/**
 * The tlog-witness role's durable state: one append-only journal, `cosigned/journal`, of the
 * checkpoints this witness cosigned (each record: the whole cosigned note). The latest record of a
 * log is its view. A record is appended and fdatasync'd before its request is answered; requests
 * that arrive while a sync runs share the next one (group commit), so many logs cost one sync
 * instead of one each. Records carry a length and a SHA-256, so a record torn by a crash (never
 * answered) is recognised at start and cut off; any other damage stops the start. When the journal
 * holds many superseded records it is rewritten with the latest view of each log (temp file, fsync,
 * rename, directory fsync). Format: docs/formats/cosignature.md, "What a cosigner keeps". Node only.
 */
import { createHash } from 'node:crypto';
import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { fsyncDir } from '../node/fs-durable.js';

const MAGIC = Buffer.from('BKVCJ1\n');
const HEADER = 4 + 32; // u32 length, SHA-256 of the note

export interface JournalRecord {
  /** The log's origin line. */
  origin: string;
  note: string;
}

function frame(note: string): Buffer {
  const body = Buffer.from(note, 'utf8');
  const head = Buffer.alloc(HEADER);
  head.writeUInt32BE(body.length, 0);
  createHash('sha256').update(body).digest().copy(head, 4);
  return Buffer.concat([head, body]);
}

/** Parses a journal's bytes: the records, and where the intact part ends (a torn tail is cut there). */
export function parseJournal(bytes: Buffer, path: string): { notes: string[]; intact: number } {
  if (bytes.length === 0) return { notes: [], intact: 0 };
  if (bytes.length < MAGIC.length || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new BkvError('IO', `cosigner state ${path} is corrupt: not a cosigner journal`);
  }
  const notes: string[] = [];
  let p = MAGIC.length;
  while (p < bytes.length) {
    if (p + HEADER > bytes.length) break; // torn header: the last append never completed
    const n = bytes.readUInt32BE(p);
    if (p + HEADER + n > bytes.length) break; // torn body
    const body = bytes.subarray(p + HEADER, p + HEADER + n);
    const sum = createHash('sha256').update(body).digest();
    if (!sum.equals(bytes.subarray(p + 4, p + HEADER))) {
      // A complete record that does not match its hash is damage, not a torn append, unless it is the last one.
      if (p + HEADER + n === bytes.length) break;
      throw new BkvError('IO', `cosigner state ${path} is corrupt: record at offset ${p} fails its check`);
    }
    notes.push(body.toString('utf8'));
    p += HEADER + n;
  }
  return { notes, intact: p };
}

export class CosignerJournal {
  private pending: Array<{ buf: Buffer; done: (err?: Error) => void }> = [];
  private flushing: Promise<void> | null = null;
  private records = 0;

  private constructor(
    private readonly dir: string,
    private handle: FileHandle,
    private latest: Map<string, string>,
    private readonly originOf: (note: string) => string,
  ) {
    this.records = latest.size;
  }

  get path(): string {
    return join(this.dir, 'journal');
  }

  /**
   * Opens `<dir>/journal`, replays it and cuts a torn tail. `originOf` extracts (and checks) a
   * note's origin; a record it refuses stops the start.
   */
  static async open(dir: string, originOf: (note: string) => string): Promise<{ journal: CosignerJournal; records: JournalRecord[] }> {
    const path = join(dir, 'journal');
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new BkvError('IO', `cannot read ${path}: ${(e as Error).message}`);
      bytes = Buffer.alloc(0);
    }
    const { notes, intact } = parseJournal(bytes, path);
    const latest = new Map<string, string>();
    for (const note of notes) {
      let origin: string;
      try {
        origin = originOf(note);
      } catch (e) {
        throw new BkvError('IO', `cosigner state ${path} is corrupt: ${(e as Error).message}`);
      }
      latest.set(origin, note);
    }
    const handle = await open(path, 'a+', 0o644);
    if (bytes.length === 0) {
      await handle.write(MAGIC);
      await handle.datasync();
      await fsyncDir(dir);
    } else if (intact < bytes.length) {
      await handle.truncate(intact);
      await handle.datasync();
    }
    const j = new CosignerJournal(dir, handle, latest, originOf);
    j.records = notes.length;
    return { journal: j, records: [...latest].map(([origin, note]) => ({ origin, note })) };
  }

  /** Appends a cosigned note; resolves once it is on disk (shared fdatasync). */
  append(origin: string, note: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ buf: frame(note), done: (err) => (err ? reject(err) : resolve()) });
      this.latest.set(origin, note);
      if (!this.flushing) this.flushing = this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.handle.writev(batch.map((b) => b.buf));
        await this.handle.datasync();
        this.records += batch.length;
        for (const b of batch) b.done();
      } catch (e) {
        const err = new Error(`cannot persist the cosigned checkpoint: ${(e as Error).message}`);
        for (const b of batch) b.done(err);
      }
      if (this.records > 1024 && this.records > 8 * this.latest.size) await this.compact().catch(() => undefined);
    }
    this.flushing = null;
  }

  /** Rewrites the journal with the latest note of each log only (atomically). */
  private async compact(): Promise<void> {
    const path = this.path;
    const tmp = `${path}.tmp-${process.pid}`;
    const h = await open(tmp, 'w', 0o644);
    try {
      await h.writev([MAGIC, ...[...this.latest.values()].map(frame)]);
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, path);
    await fsyncDir(this.dir);
    await this.handle.close();
    this.handle = await open(path, 'a+', 0o644);
    this.records = this.latest.size;
  }

  async close(): Promise<void> {
    if (this.flushing) await this.flushing;
    await this.handle.close();
  }
}
