/**
 * A guess-limited escrow state machine for the simulator: the shape of the vault's attempt
 * counters without the cryptography. register(user, limit) arms `limit` attempts; each attempt
 * uses one and may release one credential response; reset re-arms; delete destroys; the record
 * is destroyed when its attempts reach zero.
 */
import type { ReplicatedStateMachine } from '../trusted/core/replication.js';

export const enum EscrowOp {
  Register = 1,
  Attempt = 2,
  Reset = 3,
  Delete = 4,
}

export const enum EscrowStatus {
  Granted = 0,
  NotRegistered = 1,
  Ok = 2,
}

export interface EscrowCommand {
  op: EscrowOp;
  user: number;
  limit: number;
}

export function encodeCommand(c: EscrowCommand): Uint8Array {
  return new Uint8Array([c.op, c.user >> 8, c.user & 0xff, c.limit]);
}

export function decodeCommand(b: Uint8Array): EscrowCommand | null {
  if (b.length !== 4) return null;
  const op = b[0] as number;
  if (op < 1 || op > 4) return null;
  return { op: op as EscrowOp, user: ((b[1] as number) << 8) | (b[2] as number), limit: b[3] as number };
}

export interface EscrowRecord {
  limit: number;
  remaining: number;
}

export class EscrowStateMachine implements ReplicatedStateMachine {
  records = new Map<number, EscrowRecord>();

  apply(_index: number, entry: Uint8Array): Uint8Array {
    const c = decodeCommand(entry);
    if (!c) return new Uint8Array([EscrowStatus.NotRegistered, 0]);
    const r = this.records.get(c.user);
    switch (c.op) {
      case EscrowOp.Register: {
        const limit = Math.max(1, c.limit);
        this.records.set(c.user, { limit, remaining: limit });
        return new Uint8Array([EscrowStatus.Ok, limit]);
      }
      case EscrowOp.Attempt: {
        if (!r) return new Uint8Array([EscrowStatus.NotRegistered, 0]);
        r.remaining -= 1;
        if (r.remaining <= 0) this.records.delete(c.user);
        return new Uint8Array([EscrowStatus.Granted, Math.max(0, r.remaining)]);
      }
      case EscrowOp.Reset: {
        if (!r) return new Uint8Array([EscrowStatus.NotRegistered, 0]);
        r.remaining = r.limit;
        return new Uint8Array([EscrowStatus.Ok, r.remaining]);
      }
      case EscrowOp.Delete:
        this.records.delete(c.user);
        return new Uint8Array([EscrowStatus.Ok, 0]);
    }
  }

  snapshot(): Uint8Array {
    const users = [...this.records.keys()].sort((a, b) => a - b);
    const out = new Uint8Array(users.length * 4);
    users.forEach((u, i) => {
      const r = this.records.get(u) as EscrowRecord;
      out.set([u >> 8, u & 0xff, r.limit, r.remaining], i * 4);
    });
    return out;
  }

  restore(snapshot: Uint8Array): void {
    this.records = new Map();
    for (let i = 0; i + 4 <= snapshot.length; i += 4) {
      const u = ((snapshot[i] as number) << 8) | (snapshot[i + 1] as number);
      this.records.set(u, { limit: snapshot[i + 2] as number, remaining: snapshot[i + 3] as number });
    }
  }
}
