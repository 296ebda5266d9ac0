/**
 * The simulator workload that drives the real vault state machine (`VaultStateMachine`,
 * src/trusted/core/state-machine.ts) with real log entries (`encodeEntry`, src/trusted/core/entries.ts):
 * registrations, recovery attempts with right and wrong passwords, concurrent recoveries of one
 * account (several attempts open at once), erasures and stale finishes. Entry timestamps come
 * from the simulated clock, sped up so that unfinished attempts expire during a run.
 *
 * Invariants, checked over the whole run:
 * - every result a client saw equals the result of replaying the committed log at that index;
 * - no user ever got more `granted` attempt results (credential responses, counted over every
 *   member's clients) than the armed limit between a registration or successful recovery and
 *   the next one;
 * - every acknowledged registration is present at the end unless a later committed entry
 *   destroyed it (guesses exhausted) or erased it;
 * - replaying the committed log gives the converged snapshot (the simulator separately checks
 *   that every member's `snapshot()` bytes are identical).
 */
import { ATTEMPT_ID_BYTES, decodeEntry, encodeEntry } from '../trusted/core/entries.js';
import type { Entry } from '../trusted/core/entries.js';
import type { ReplicatedStateMachine } from '../trusted/core/replication.js';
import { VaultStateMachine, decodeResult } from '../host/migration/legacy-state-machine.js';
import type { Prng } from './prng.js';
import type { Observation, SimWorkload } from './workload.js';
import { equalBytes } from '../shared/bytes.js';

/** Entry timestamps: a fixed epoch plus the simulated time, `CLOCK_SCALE` times faster. */
const EPOCH_MS = 1_780_000_000_000;
const CLOCK_SCALE = 200;
const KSF = { memory: 65536, iterations: 3, parallelism: 4 };

type Result = ReturnType<typeof decodeResult>;

export class VaultWorkload implements SimWorkload {
  readonly name = 'vault';
  private readonly observations: Array<{ index: number; entry: Uint8Array; result: Uint8Array }> = [];
  private readonly open: Array<{ user: string; attemptId: Uint8Array }> = [];
  private readonly ackedRegistrations: Array<{ user: string; index: number }> = [];
  /** Granted attempt results seen by clients, by log index. */
  private readonly grants = new Set<number>();

  constructor(private readonly users = 6) {}

  createStateMachine(): ReplicatedStateMachine {
    return new VaultStateMachine();
  }

  nextOperation(rng: Prng, now: number): Uint8Array {
    const ts = EPOCH_MS + Math.floor(now * CLOCK_SCALE);
    if (this.open.length > 0 && rng.chance(0.45)) {
      // A client finishes one of its open recoveries (several may be open for one user).
      const k = rng.int(0, this.open.length - 1);
      const a = this.open[k] as { user: string; attemptId: Uint8Array };
      this.open.splice(k, 1);
      const success = rng.chance(0.35);
      return encodeEntry({ type: 'finish', ts, user: a.user, attemptId: a.attemptId, success, erase: success && rng.chance(0.1) });
    }
    const user = `user-${rng.int(0, this.users - 1)}`;
    const r = rng.float();
    if (r < 0.15) {
      return encodeEntry({
        type: 'register', ts, user, opaqueRecord: rng.bytes(rng.int(16, 96)), wrappedKey: rng.bytes(60), ksf: KSF, limit: rng.int(1, 4),
      });
    }
    if (r < 0.95) return encodeEntry({ type: 'attempt', ts, user, attemptId: rng.bytes(ATTEMPT_ID_BYTES) });
    // A finish for an attempt that never existed (a confused or malicious client): must be stale.
    return encodeEntry({ type: 'finish', ts, user, attemptId: rng.bytes(ATTEMPT_ID_BYTES), success: true, erase: false });
  }

  observe(o: Observation): string | null {
    this.observations.push({ index: o.index, entry: o.entry, result: o.result });
    let e: Entry;
    let res: Result;
    try {
      e = decodeEntry(o.entry);
      res = decodeResult(o.result);
    } catch (err) {
      return `client got an undecodable entry or result at index ${o.index}: ${(err as Error).message}`;
    }
    if (e.type === 'attempt' && res.kind === 'attempt' && res.r.status === 'granted') {
      this.grants.add(o.index);
      this.open.push({ user: e.user, attemptId: e.attemptId });
    }
    if (e.type === 'register' && res.kind === 'register') this.ackedRegistrations.push({ user: e.user, index: o.index });
    return null;
  }

  /** What clients saw, by result status (for tests and reports). */
  summary(): { granted: number; recovered: number; wrongPassword: number; locked: number; destroyed: number; erased: number; stale: number } {
    const s = { granted: 0, recovered: 0, wrongPassword: 0, locked: 0, destroyed: 0, erased: 0, stale: 0 };
    for (const o of this.observations) {
      const res = decodeResult(o.result);
      if (res.kind === 'attempt' && res.r.status === 'granted') s.granted++;
      else if (res.kind === 'attempt' && res.r.status === 'locked') s.locked++;
      else if (res.kind === 'finish') {
        if (res.r.status === 'recovered') s.recovered++;
        else if (res.r.status === 'wrong-password') s.wrongPassword++;
        else if (res.r.status === 'destroyed') s.destroyed++;
        else if (res.r.status === 'erased') s.erased++;
        else s.stale++;
      }
    }
    return s;
  }

  finalCheck(committed: ReadonlyMap<number, Uint8Array>, finalSnapshot: Uint8Array): string[] {
    const out: string[] = [];
    const indexes = [...committed.keys()].sort((a, b) => a - b);
    // Replay the committed log through a fresh state machine.
    const ref = new VaultStateMachine();
    const results = new Map<number, Uint8Array>();
    for (const i of indexes) results.set(i, ref.apply(i, committed.get(i) as Uint8Array));
    if (!equalBytes(ref.snapshot(), finalSnapshot)) out.push('converged state differs from a replay of the committed log');

    for (const o of this.observations) {
      const want = results.get(o.index);
      if (want === undefined) out.push(`a client saw index ${o.index} committed, but no member applied it`);
      else if (!equalBytes(want, o.result)) out.push(`a client's result at index ${o.index} differs from the replay of the committed log`);
    }

    // Guess limits: count client-seen grants between arming points of the committed log.
    const armed = new Map<string, { limit: number; used: number }>();
    for (const i of indexes) {
      let e: Entry;
      try {
        e = decodeEntry(committed.get(i) as Uint8Array);
      } catch {
        continue;
      }
      const res = decodeResult(results.get(i) as Uint8Array);
      const a = armed.get(e.user) ?? { limit: 0, used: 0 };
      armed.set(e.user, a);
      if (e.type === 'register') {
        a.limit = e.limit;
        a.used = 0;
      } else if (e.type === 'finish' && res.kind === 'finish') {
        if (res.r.status === 'recovered') a.used = 0;
        else if (res.r.status === 'erased' || res.r.status === 'destroyed') a.limit = a.used = 0;
      } else if (e.type === 'attempt' && this.grants.has(i)) {
        a.used += 1;
        if (a.used > a.limit) out.push(`guess limit exceeded for ${e.user}: ${a.used} credential responses with limit ${a.limit} (at index ${i})`);
      }
    }

    // Acknowledged registrations survive unless destroyed or erased later.
    const final = new VaultStateMachine();
    final.restore(finalSnapshot);
    for (const reg of this.ackedRegistrations) {
      if (final.peek(reg.user)) continue;
      const removed = indexes.some((i) => {
        if (i <= reg.index) return false;
        const e = decodeEntry(committed.get(i) as Uint8Array);
        if (e.user !== reg.user) return false;
        const res = decodeResult(results.get(i) as Uint8Array);
        return (res.kind === 'finish' && (res.r.status === 'erased' || res.r.status === 'destroyed'))
          || (res.kind === 'attempt' && res.r.status === 'locked');
      });
      if (!removed) out.push(`acknowledged registration of ${reg.user} (index ${reg.index}) is not recoverable`);
    }
    return out;
  }
}
