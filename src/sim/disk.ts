/**
 * A simulated member disk holding the sealed state file, plus the member's monotonic counter
 * (which lives inside the trusted member and survives crashes and disk rollbacks).
 *
 * A write lands after a delay and is confirmed to the member a little later: a crash in between
 * leaves the new state on disk unconfirmed; a crash before it lands loses it. The adversary can
 * also roll the file back to any older version.
 */
import { MemoryCounter } from '../consensus/counter.js';
import type { EventQueue } from './events.js';
import type { Prng } from './prng.js';

export class SimDisk {
  durable: Uint8Array | null = null;
  readonly counter = new MemoryCounter();
  private history: Uint8Array[] = [];
  private generation = 0;
  writes = 0;

  constructor(
    private readonly q: EventQueue,
    private readonly rng: Prng,
  ) {}

  persist(sealed: Uint8Array, done: (err?: unknown) => void): void {
    const gen = this.generation;
    this.q.schedule(this.rng.int(1, 12), () => {
      if (gen !== this.generation) return; // the member crashed before the write landed
      if (this.durable) {
        this.history.push(this.durable);
        if (this.history.length > 24) this.history.shift();
      }
      this.durable = sealed;
      this.writes++;
      this.q.schedule(this.rng.int(0, 2), () => {
        if (gen === this.generation) done();
      });
    });
  }

  /** The member crashed: writes in flight are lost or landed, confirmations never arrive. */
  crash(): void {
    this.generation++;
  }

  /** Restores an older version of the state file; returns false if there is none. */
  rollback(): boolean {
    if (this.history.length === 0) return false;
    const i = this.rng.int(0, this.history.length - 1);
    this.durable = this.history[i] as Uint8Array;
    this.history = this.history.slice(0, i);
    return true;
  }

  wipe(): void {
    this.durable = null;
  }
}
