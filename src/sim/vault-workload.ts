/**
 * The simulator workload that runs the real vault: each member is assembled with
 * `createVaultMember` over a record store, and clients send vault commands (`register`, `attempt`,
 * `finish`; src/trusted/core/entries.ts) to a member's `RecordBatcher`. The mix: registrations,
 * recovery attempts with right and wrong passwords, concurrent recoveries of one account (several
 * attempts open at once), erasures and stale finishes. Command timestamps come from the simulated
 * clock, sped up so that unfinished attempts expire during a run.
 *
 * The checker learns which commands each proposed batch carries (the batcher's `onPropose`, keyed
 * by the batch's entry bytes), rebuilds the committed command sequence from the committed log
 * (batches whose outcome is `applied`), replays it through a plain model (a map of records run
 * through `runCommand`) and checks, over the whole run:
 * - every result a client saw equals the replay's result for that command, and no command is
 *   applied twice;
 * - no user ever got more `granted` attempt results (seen by clients, any member) than the armed
 *   limit between a registration or successful recovery and the next one;
 * - every acknowledged registration is live at the end unless a later command destroyed or erased it;
 * - every member's record store, opened with the record keys, holds exactly the replay's records.
 */
import { equalBytes } from '../shared/bytes.js';
import { ATTEMPT_ID_BYTES } from '../trusted/core/entries.js';
import { decodeBatch } from '../trusted/records/batch.js';
import { runCommand, type Command, type CommandResult } from '../trusted/records/commands.js';
import { deriveRecordKeys, openRecord, recordId, type RecordKeys } from '../trusted/records/record-keys.js';
import { encodeRecord, type VaultRecord } from '../trusted/records/record.js';
import { RecordState } from '../trusted/records/record-state.js';
import type { Prng } from './prng.js';

/** Command timestamps: a fixed epoch plus the simulated time, `CLOCK_SCALE` times faster. */
export const EPOCH_MS = 1_780_000_000_000;
export const CLOCK_SCALE = 200;
const KSF = { memory: 65536, iterations: 3, parallelism: 4 };
/** The fleet storage key every simulated member shares (record ids and sealing keys derive from it). */
export const SIM_STORAGE_KEY = new Uint8Array(32).fill(7);

/** A member's store content as the checker sees it: record id (hex) → stored value. */
export type StoreContent = Map<string, Uint8Array>;

export class VaultWorkload {
  readonly name = 'vault';
  readonly kind = 'records' as const;
  readonly keys: RecordKeys = deriveRecordKeys(SIM_STORAGE_KEY);
  private readonly open: Array<{ user: string; attemptId: Uint8Array }> = [];
  /** Commands each proposed batch carried, by the batch's entry bytes (hex). */
  private readonly proposals = new Map<string, readonly Command[]>();
  private readonly seen: Array<{ cmd: Command; result: CommandResult }> = [];
  /** Commands whose `granted` result a client saw. */
  private readonly grants = new Set<Command>();

  constructor(private readonly users = 6) {}

  /** The ids of every account the workload may touch (for store faults). */
  recordIds(): Uint8Array[] {
    return Array.from({ length: this.users }, (_, i) => recordId(this.keys, `user-${i}`));
  }

  nextCommand(rng: Prng, now: number): Command {
    const ts = EPOCH_MS + Math.floor(now * CLOCK_SCALE);
    if (this.open.length > 0 && rng.chance(0.45)) {
      // A client finishes one of its open recoveries (several may be open for one user).
      const k = rng.int(0, this.open.length - 1);
      const a = this.open[k] as { user: string; attemptId: Uint8Array };
      this.open.splice(k, 1);
      const success = rng.chance(0.35);
      return { type: 'finish', ts, user: a.user, attemptId: a.attemptId, success, erase: success && rng.chance(0.1) };
    }
    const user = `user-${rng.int(0, this.users - 1)}`;
    const r = rng.float();
    // Key ids (two of them, or none) come from the clock, not the PRNG, so seeds replay as before:
    // records of both formats, and attempts that name the record's key id, another one or none.
    if (r < 0.15) {
      const cmd: Command = { type: 'register', ts, user, opaqueRecord: rng.bytes(rng.int(16, 96)), wrappedKey: rng.bytes(60), ksf: KSF, limit: rng.int(1, 4) };
      return ts % 3 === 0 ? cmd : { ...cmd, keyId: simKeyId(ts) };
    }
    if (r < 0.95) {
      const cmd: Command = { type: 'attempt', ts, user, attemptId: rng.bytes(ATTEMPT_ID_BYTES) };
      return ts % 5 === 0 ? { ...cmd, keyId: simKeyId(ts >> 3) } : cmd;
    }
    // A finish for an attempt that never existed (a confused or malicious client): must be stale.
    return { type: 'finish', ts, user, attemptId: rng.bytes(ATTEMPT_ID_BYTES), success: true, erase: false };
  }

  /** The batcher's hook: `entry` carries `commands`. */
  onPropose(entry: Uint8Array, commands: readonly Command[]): void {
    const k = hex(entry);
    if (!this.proposals.has(k)) this.proposals.set(k, commands);
  }

  /** A client got `result` for `cmd` (a `key-mismatch` attempt is not a grant: it spent no guess). */
  observe(cmd: Command, result: CommandResult): void {
    this.seen.push({ cmd, result });
    if (cmd.type === 'attempt' && result.kind === 'attempt' && result.r.status === 'granted') {
      this.grants.add(cmd);
      this.open.push({ user: cmd.user, attemptId: cmd.attemptId });
    }
  }

  /** What clients saw, by result status (for tests and reports). */
  summary(): { granted: number; keyMismatch: number; recovered: number; wrongPassword: number; locked: number; destroyed: number; erased: number; stale: number } {
    const s = { granted: 0, keyMismatch: 0, recovered: 0, wrongPassword: 0, locked: 0, destroyed: 0, erased: 0, stale: 0 };
    for (const { result: res } of this.seen) {
      if (res.kind === 'attempt' && res.r.status === 'granted') s.granted++;
      else if (res.kind === 'attempt' && res.r.status === 'key-mismatch') s.keyMismatch++;
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

  /**
   * End-of-run checks: `committed` is the committed log (index → entry), `stores` each member's
   * store content after heal and repair.
   */
  finalCheck(committed: ReadonlyMap<number, Uint8Array>, stores: Array<{ who: string; content: StoreContent }>): string[] {
    const out: string[] = [];
    const sequence = this.commandSequence(committed, new RecordState(), out);
    return [...out, ...this.checkSequence(sequence, stores)];
  }

  /**
   * The committed command sequence of one log: the commands of every applied command batch, in log
   * order. `state` replays the log (a group's state for a group's log); problems go to `out`.
   */
  commandSequence(committed: ReadonlyMap<number, Uint8Array>, state: RecordState, out: string[]): Array<{ index: number; cmd: Command }> {
    const indexes = [...committed.keys()].sort((a, b) => a - b);
    const sequence: Array<{ index: number; cmd: Command }> = [];
    for (const i of indexes) {
      const entry = committed.get(i) as Uint8Array;
      const result = state.apply(i, entry);
      if (result[0] !== 1 || decodeBatch(entry).kind !== 'commands') continue;
      const cmds = this.proposals.get(hex(entry));
      if (!cmds) {
        out.push(`committed batch at index ${i} was never proposed by a batcher`);
        continue;
      }
      for (const cmd of cmds) sequence.push({ index: i, cmd });
    }
    return sequence;
  }

  /**
   * Checks a committed command sequence (one log's, or several groups' merged in commit order)
   * against what clients saw and what the stores hold. `owns`, when given, limits a store's check
   * to the records of the range its group serves (a source keeps moved records as dead leaves).
   */
  checkSequence(sequence: Array<{ index: number; cmd: Command }>, stores: Array<{ who: string; content: StoreContent; owns?: (keyHex: string) => boolean }>): string[] {
    const out: string[] = [];
    // Replay through the plain model.
    const model = new Map<string, VaultRecord>();
    // `pos`: the place in the sequence (indexes of different groups' logs do not compare).
    const results = new Map<Command, { index: number; pos: number; result: CommandResult }>();
    sequence.forEach(({ index, cmd }, pos) => {
      if (results.has(cmd)) out.push(`a command of ${cmd.user} was applied twice (again at index ${index})`);
      const { result, next } = runCommand(model.get(cmd.user), cmd);
      if (next) model.set(cmd.user, next);
      results.set(cmd, { index, pos, result });
    });

    for (const s of this.seen) {
      const want = results.get(s.cmd);
      if (!want) out.push(`a client saw a ${s.cmd.type} of ${s.cmd.user} answered, but no committed batch carries it`);
      else if (!sameResult(want.result, s.result)) out.push(`a client's ${s.cmd.type} result for ${s.cmd.user} (index ${want.index}) differs from the replay of the committed log`);
    }

    // Guess limits: client-seen grants between arming points of the committed command sequence.
    const armed = new Map<string, { limit: number; used: number }>();
    for (const { index, cmd } of sequence) {
      const res = (results.get(cmd) as { result: CommandResult }).result;
      const a = armed.get(cmd.user) ?? { limit: 0, used: 0 };
      armed.set(cmd.user, a);
      if (cmd.type === 'register') {
        a.limit = cmd.limit;
        a.used = 0;
      } else if (res.kind === 'finish') {
        if (res.r.status === 'recovered') a.used = 0;
        else if (res.r.status === 'erased' || res.r.status === 'destroyed') a.limit = a.used = 0;
      } else if (res.kind === 'attempt' && this.grants.has(cmd)) {
        a.used += 1;
        if (a.used > a.limit) out.push(`guess limit exceeded for ${cmd.user}: ${a.used} credential responses with limit ${a.limit} (at index ${index})`);
      }
    }

    // Acknowledged registrations survive unless destroyed or erased later.
    for (const s of this.seen) {
      if (s.cmd.type !== 'register') continue;
      const at = results.get(s.cmd);
      if (!at || model.get(s.cmd.user)?.status === 'live') continue;
      const removed = sequence.some(({ cmd }, pos) => {
        if (pos <= at.pos || cmd.user !== s.cmd.user) return false;
        const r = (results.get(cmd) as { result: CommandResult }).result;
        return (r.kind === 'finish' && (r.r.status === 'erased' || r.r.status === 'destroyed')) || (r.kind === 'attempt' && r.r.status === 'locked');
      });
      if (!removed) out.push(`acknowledged registration of ${s.cmd.user} (index ${at.index}) is not recoverable`);
    }

    // Every member's store holds exactly the model's records.
    const want = new Map<string, Uint8Array>();
    for (const [user, rec] of model) want.set(hex(recordId(this.keys, user)), encodeRecord(rec));
    for (const { who, content: all, owns } of stores) {
      const content = owns ? new Map([...all].filter(([k]) => owns(k))) : all;
      const wanted = owns ? new Map([...want].filter(([k]) => owns(k))) : want;
      let bad = content.size !== wanted.size ? `${content.size} records, the replay has ${wanted.size}` : null;
      for (const [k, value] of content) {
        if (bad) break;
        const w = wanted.get(k);
        let got: Uint8Array | null = null;
        try {
          got = encodeRecord(openRecord(this.keys, unhex(k), value));
        } catch {
          bad = `record ${k.slice(0, 16)}… does not open`;
        }
        if (!bad && (!w || !got || !equalBytes(w, got))) bad = `record ${k.slice(0, 16)}… differs from the replay`;
      }
      if (bad) out.push(`${who}'s record store differs from the replay of the committed log: ${bad}`);
    }
    return out;
  }
}

function sameResult(a: CommandResult, b: CommandResult): boolean {
  return stable(a) === stable(b);
}

function stable(v: unknown): string {
  if (v instanceof Uint8Array) return `b:${hex(v)}`;
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${k}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

function unhex(s: string): Uint8Array {
  const b = new Uint8Array(s.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return b;
}

/** One of two 16-byte key ids, picked by `n`. */
function simKeyId(n: number): Uint8Array {
  return new Uint8Array(16).fill(n % 2 === 0 ? 0xa1 : 0xb2);
}
