/**
 * A simulated member disk with the same three files a real host keeps (see
 * docs/formats/member-state.md): the hard state, an append-only log of sealed frames and
 * truncation markers, and snapshot files. The monotonic counter lives inside the trusted member
 * and survives crashes, rollbacks and wipes.
 *
 * A persist lands in two steps: first the snapshot and the log appends, then the hard state (the
 * real host appends it as the last record of the same write and fdatasyncs once, so "frames
 * without the new hard state" is its torn last record); the confirmation reaches the member a
 * little later. A crash before the first step may still leave a prefix of the appends on disk (pages the
 * kernel wrote early); a crash between the steps leaves new frames next to the old hard state; a
 * crash after the second leaves a landed but unconfirmed write. The adversary can also restore an
 * older copy of every file, or of the log alone, or wipe the disk.
 */
import { MemoryCounter } from '../trusted/consensus/counter.js';
import { peekFrame, peekHardState, selectSnapshot } from '../trusted/consensus/sealed-state.js';
import type { BootState, PersistRecord } from '../trusted/consensus/sealed-state.js';
import type { EventQueue } from './events.js';
import type { Prng } from './prng.js';

export type LogRecord = { kind: 'frame'; bytes: Uint8Array } | { kind: 'truncate'; from: number };

/** An immutable picture of a member's state directory. */
export interface DiskImage {
  readonly hardState: Uint8Array | null;
  readonly log: readonly LogRecord[];
  readonly snapshots: readonly Uint8Array[];
}

export const EMPTY_IMAGE: DiskImage = { hardState: null, log: [], snapshots: [] };

/** Step 1 of a persist: the new snapshot file, the truncation marker and the frames (or a prefix of them). */
export function landAppends(img: DiskImage, rec: PersistRecord, frameCount = rec.frames.length): DiskImage {
  const log = img.log.slice();
  if (rec.truncateFrom !== null) log.push({ kind: 'truncate', from: rec.truncateFrom });
  for (const f of rec.frames.slice(0, frameCount)) log.push({ kind: 'frame', bytes: f });
  const snapshots = rec.snapshot ? [...img.snapshots, rec.snapshot] : img.snapshots;
  return { hardState: img.hardState, log, snapshots };
}

/**
 * Step 2: the hard state is replaced; then, as a real host does once the new hard state is
 * durable, snapshot files it no longer names are deleted and, after a new snapshot, the log is
 * rewritten without frames at or below the snapshot and without dead frames.
 */
export function landHardState(img: DiskImage, rec: PersistRecord): DiskImage {
  const keep = selectSnapshot(rec.hardState, img.snapshots);
  const snapshots = keep ? [keep] : [];
  let log = img.log;
  if (rec.snapshot !== null || rec.truncateFrom === 1) log = compactLog(log, peekHardState(rec.hardState).snapshot.index);
  return { hardState: rec.hardState, log, snapshots };
}

/** Drops frames at or below `snapIndex` and frames killed by a later truncation marker. */
export function compactLog(log: readonly LogRecord[], snapIndex: number): LogRecord[] {
  const out: LogRecord[] = [];
  let killFrom = Infinity;
  for (let k = log.length - 1; k >= 0; k--) {
    const r = log[k] as LogRecord;
    if (r.kind === 'truncate') {
      killFrom = Math.min(killFrom, r.from);
      continue;
    }
    const h = peekFrame(r.bytes);
    if (h.index <= snapIndex || h.index >= killFrom) continue;
    out.push(r);
  }
  return out.reverse();
}

export function bootStateOf(img: DiskImage): BootState {
  const logFrames = img.log.filter((r) => r.kind === 'frame').map((r) => (r as { bytes: Uint8Array }).bytes);
  return { hardState: img.hardState, logFrames, snapshot: selectSnapshot(img.hardState, img.snapshots) };
}

export class SimDisk {
  image: DiskImage = EMPTY_IMAGE;
  readonly counter = new MemoryCounter();
  private history: DiskImage[] = [];
  private generation = 0;
  private inflight: { gen: number; rec: PersistRecord; appended: boolean } | null = null;
  writes = 0;
  bytesWritten = 0;

  constructor(
    private readonly q: EventQueue,
    private readonly rng: Prng,
  ) {}

  bootState(): BootState {
    return bootStateOf(this.image);
  }

  persist(rec: PersistRecord, done: (err?: unknown) => void): void {
    const gen = this.generation;
    const w = { gen, rec, appended: false };
    this.inflight = w;
    this.q.schedule(this.rng.int(1, 8), () => {
      if (gen !== this.generation) return; // crashed before the appends were made durable
      this.image = landAppends(this.image, rec);
      w.appended = true;
      this.q.schedule(this.rng.int(0, 5), () => {
        if (gen !== this.generation) return; // crashed before the hard state was replaced
        this.history.push(this.image);
        if (this.history.length > 24) this.history.shift();
        this.image = landHardState(this.image, rec);
        this.inflight = null;
        this.writes++;
        this.bytesWritten += rec.hardState.length + (rec.snapshot?.length ?? 0) + rec.frames.reduce((a, f) => a + f.length, 0);
        this.q.schedule(this.rng.int(0, 2), () => {
          if (gen === this.generation) done();
        });
      });
    });
  }

  /** The member crashed: confirmations never arrive; appends not yet synced may partly survive. */
  crash(): void {
    const w = this.inflight;
    if (w && w.gen === this.generation && !w.appended && this.rng.chance(0.5)) {
      this.image = landAppends(this.image, w.rec, this.rng.int(0, w.rec.frames.length));
    }
    this.inflight = null;
    this.generation++;
  }

  /** Restores an older copy of every file (or, sometimes, of the log alone); false if there is none. */
  rollback(): boolean {
    if (this.history.length === 0) return false;
    const i = this.rng.int(0, this.history.length - 1);
    const old = this.history[i] as DiskImage;
    if (this.rng.chance(0.2)) this.image = { ...this.image, log: old.log };
    else this.image = old;
    this.history = this.history.slice(0, i);
    return true;
  }

  wipe(): void {
    this.image = EMPTY_IMAGE;
  }
}
