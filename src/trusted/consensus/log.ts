/** The in-memory Raft log: a snapshot prefix plus the entries after it. */
import type { SnapshotMeta } from './sealed-state.js';
import type { LogEntry } from './types.js';

export class RaftLog {
  constructor(
    public snapshot: SnapshotMeta,
    public entries: LogEntry[],
  ) {}

  static empty(): RaftLog {
    return new RaftLog({ index: 0, term: 0, data: new Uint8Array(0) }, []);
  }

  get firstIndex(): number {
    return this.snapshot.index + 1;
  }

  get lastIndex(): number {
    return this.snapshot.index + this.entries.length;
  }

  get lastTerm(): number {
    return this.termAt(this.lastIndex) ?? 0;
  }

  /** Term of the entry at `i`, or undefined if `i` is compacted away or beyond the end. */
  termAt(i: number): number | undefined {
    if (i === this.snapshot.index) return this.snapshot.term;
    if (i < this.snapshot.index || i > this.lastIndex) return undefined;
    return this.entries[i - this.snapshot.index - 1]?.term;
  }

  entry(i: number): LogEntry | undefined {
    if (i <= this.snapshot.index) return undefined;
    return this.entries[i - this.snapshot.index - 1];
  }

  /** Entries from `from` (>= firstIndex) up to `max` of them. */
  slice(from: number, max: number): LogEntry[] {
    const start = from - this.snapshot.index - 1;
    return this.entries.slice(start, start + max);
  }

  /** Raft §5.4.1: is (lastTerm, lastIndex) at least as up to date as this log? */
  isUpToDate(lastTerm: number, lastIndex: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  append(e: LogEntry): number {
    this.entries.push(e);
    return this.lastIndex;
  }

  /**
   * Merges entries that follow `prevIndex` (whose term the caller has checked). Existing entries
   * that agree are kept; the first conflicting entry and everything after it are replaced.
   * Returns the first index written (0 if the log did not change).
   */
  merge(prevIndex: number, incoming: LogEntry[]): number {
    let changed = 0;
    for (let k = 0; k < incoming.length; k++) {
      const idx = prevIndex + 1 + k;
      const e = incoming[k] as LogEntry;
      if (idx <= this.snapshot.index) continue;
      const have = this.termAt(idx);
      if (have === e.term) continue;
      if (have !== undefined) this.entries.length = idx - this.snapshot.index - 1;
      this.entries.push(e);
      if (changed === 0) changed = idx;
    }
    return changed;
  }

  /** Drops entries up to `index` (already applied) and records the snapshot taken there. */
  compact(index: number, data: Uint8Array): void {
    const term = this.termAt(index);
    if (term === undefined || index <= this.snapshot.index) return;
    this.entries = this.entries.slice(index - this.snapshot.index);
    this.snapshot = { index, term, data };
  }

  /**
   * Installs a snapshot from the leader, keeping a matching suffix if there is one.
   * Returns true if the suffix was kept.
   */
  install(snap: SnapshotMeta): boolean {
    let kept = false;
    if (this.termAt(snap.index) === snap.term && snap.index <= this.lastIndex) {
      this.entries = this.entries.slice(snap.index - this.snapshot.index);
      kept = true;
    } else {
      this.entries = [];
    }
    this.snapshot = snap;
    return kept;
  }
}
