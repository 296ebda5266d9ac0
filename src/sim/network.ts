/**
 * The simulated host network: an adversary that loses, duplicates, delays (reorders), corrupts,
 * replays and misdirects messages, and partitions members.
 */
import type { EventQueue } from './events.js';
import type { Prng } from './prng.js';

export interface NetworkFaults {
  loss: number;
  duplicate: number;
  corrupt: number;
  replay: number;
  minDelay: number;
  maxDelay: number;
  /** Chance of an extra long delay (heavy reordering). */
  straggle: number;
}

export const CALM: NetworkFaults = { loss: 0, duplicate: 0, corrupt: 0, replay: 0, minDelay: 1, maxDelay: 5, straggle: 0 };

export class SimNetwork {
  faults: NetworkFaults;
  private blocked = new Set<string>();
  private readonly history: Array<{ to: number; bytes: Uint8Array }> = [];
  delivered = 0;
  dropped = 0;

  constructor(
    private readonly q: EventQueue,
    private readonly rng: Prng,
    private readonly deliver: (to: number, bytes: Uint8Array) => void,
    faults: NetworkFaults,
  ) {
    this.faults = faults;
  }

  send(from: number, to: number, bytes: Uint8Array): void {
    const f = this.faults;
    if (this.history.length < 256) this.history.push({ to, bytes });
    else this.history[this.rng.int(0, 255)] = { to, bytes };
    if (this.isBlocked(from, to) || this.rng.chance(f.loss)) {
      this.dropped++;
      return;
    }
    const copies = this.rng.chance(f.duplicate) ? 2 : 1;
    for (let k = 0; k < copies; k++) {
      let b = bytes;
      if (this.rng.chance(f.corrupt)) {
        b = bytes.slice();
        const i = this.rng.int(0, b.length - 1);
        b[i] = (b[i] as number) ^ (1 << this.rng.int(0, 7));
      }
      this.schedule(from, to, b);
    }
    if (this.rng.chance(f.replay) && this.history.length > 0) {
      // Replay an old message, sometimes to a member it was never addressed to.
      const old = this.rng.pick(this.history);
      const target = this.rng.chance(0.3) ? this.rng.int(0, 8) : old.to;
      this.schedule(-1, target, old.bytes);
    }
  }

  private schedule(from: number, to: number, bytes: Uint8Array): void {
    const f = this.faults;
    let delay = this.rng.int(f.minDelay, f.maxDelay);
    if (this.rng.chance(f.straggle)) delay += this.rng.int(50, 800);
    this.q.schedule(delay, () => {
      if (from >= 0 && this.isBlocked(from, to)) {
        this.dropped++;
        return;
      }
      this.delivered++;
      this.deliver(to, bytes);
    });
  }

  isBlocked(a: number, b: number): boolean {
    return this.blocked.has(`${a}>${b}`);
  }

  /** Cuts every link between the two groups (both directions). */
  partition(groupA: readonly number[], groupB: readonly number[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.blocked.add(`${a}>${b}`);
        this.blocked.add(`${b}>${a}`);
      }
    }
  }

  /** Cuts one direction only. */
  cutOneWay(from: number, to: number): void {
    this.blocked.add(`${from}>${to}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  get partitioned(): boolean {
    return this.blocked.size > 0;
  }
}
