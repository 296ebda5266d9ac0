/**
 * Pluggable simulator workloads. A workload supplies the replicated state machine, generates
 * client operations, and checks application-level invariants (here: guess limits and durable
 * registrations) from what clients observed plus the committed log. `EscrowWorkload` is a small
 * model of the vault's counters; `VaultWorkload` (vault-workload.ts, the default) runs the real vault
 * on record stores and has its own interface.
 */
import type { ReplicatedStateMachine } from '../trusted/core/replication.js';
import { EscrowOp, EscrowStateMachine, EscrowStatus, decodeCommand, encodeCommand } from './escrow-model.js';
import type { Prng } from './prng.js';
import { equalBytes } from '../shared/bytes.js';

export interface Observation {
  entry: Uint8Array;
  index: number;
  result: Uint8Array;
}

export interface SimWorkload {
  name: string;
  createStateMachine(): ReplicatedStateMachine;
  /** The next client operation; `now` is the simulated time in ms (for entry timestamps). */
  nextOperation(rng: Prng, now: number): Uint8Array;
  /** A client saw `entry` committed at `index` with `result`. Returns a violation or null. */
  observe(o: Observation, committed: ReadonlyMap<number, Uint8Array>): string | null;
  /** End-of-run checks over the committed log and the converged state-machine snapshot. */
  finalCheck(committed: ReadonlyMap<number, Uint8Array>, finalSnapshot: Uint8Array): string[];
}

export class EscrowWorkload implements SimWorkload {
  readonly name = 'escrow';
  private readonly grants = new Map<number, number[]>();
  private readonly ackedRegistrations: Array<{ user: number; index: number }> = [];

  constructor(private readonly users = 6) {}

  createStateMachine(): ReplicatedStateMachine {
    return new EscrowStateMachine();
  }

  nextOperation(rng: Prng, _now: number): Uint8Array {
    const user = rng.int(0, this.users - 1);
    const r = rng.float();
    const op = r < 0.15 ? EscrowOp.Register : r < 0.8 ? EscrowOp.Attempt : r < 0.95 ? EscrowOp.Reset : EscrowOp.Delete;
    return encodeCommand({ op, user, limit: rng.int(1, 4) });
  }

  observe(o: Observation, committed: ReadonlyMap<number, Uint8Array>): string | null {
    const c = decodeCommand(o.entry);
    if (!c) return null;
    if (c.op === EscrowOp.Attempt && o.result[0] === EscrowStatus.Granted) {
      const list = this.grants.get(c.user) ?? [];
      list.push(o.index);
      this.grants.set(c.user, list);
      const v = this.checkUser(c.user, committed, o.index);
      if (v) return v;
    }
    if (c.op === EscrowOp.Register) this.ackedRegistrations.push({ user: c.user, index: o.index });
    return null;
  }

  /**
   * Counts client-observed credential responses for `user` between arming points (register or
   * reset) of the committed log, up to index `upTo`, against the armed limit.
   */
  private checkUser(user: number, committed: ReadonlyMap<number, Uint8Array>, upTo: number): string | null {
    const granted = new Set(this.grants.get(user) ?? []);
    const indexes = [...committed.keys()].filter((i) => i <= upTo).sort((a, b) => a - b);
    let limit = 0;
    let used = 0;
    for (const i of indexes) {
      const c = decodeCommand(committed.get(i) as Uint8Array);
      if (!c || c.user !== user) continue;
      if (c.op === EscrowOp.Register) {
        limit = Math.max(1, c.limit);
        used = 0;
      } else if (c.op === EscrowOp.Reset) {
        used = 0;
      } else if (c.op === EscrowOp.Delete) {
        limit = 0;
        used = 0;
      } else if (c.op === EscrowOp.Attempt && granted.has(i)) {
        used += 1;
        if (used > limit) return `guess limit exceeded for user ${user}: ${used} credential responses with limit ${limit} (at index ${i})`;
      }
    }
    return null;
  }

  finalCheck(committed: ReadonlyMap<number, Uint8Array>, finalSnapshot: Uint8Array): string[] {
    const out: string[] = [];
    const max = Math.max(0, ...committed.keys());
    for (const u of this.grants.keys()) {
      const v = this.checkUser(u, committed, max);
      if (v) out.push(v);
    }
    // Replaying the committed log must give the converged state.
    const ref = new EscrowStateMachine();
    for (const i of [...committed.keys()].sort((a, b) => a - b)) ref.apply(i, committed.get(i) as Uint8Array);
    const refSnap = ref.snapshot();
    if (!equalBytes(refSnap, finalSnapshot)) out.push('converged state differs from a replay of the committed log');
    const final = new EscrowStateMachine();
    final.restore(finalSnapshot);
    for (const reg of this.ackedRegistrations) {
      if (final.records.has(reg.user)) continue;
      let removed = false;
      for (const [i, e] of committed) {
        const c = decodeCommand(e);
        if (i > reg.index && c && c.user === reg.user && (c.op === EscrowOp.Delete || c.op === EscrowOp.Attempt)) removed = true;
      }
      if (!removed) out.push(`acknowledged registration of user ${reg.user} (index ${reg.index}) is not recoverable`);
    }
    return out;
  }
}
