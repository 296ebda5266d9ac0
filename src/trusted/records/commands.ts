/**
 * What each vault command does to one record: registration, a recovery attempt (which costs a
 * guess before any credential response exists) and the end of an attempt. Pure and deterministic:
 * time comes from the `ts` the leader wrote into the command. The leader runs these when it builds
 * a batch; the batch carries only the resulting sealed records.
 */
import { ATTEMPT_ID_BYTES, type AttemptResult, type Entry, type FinishResult, type RegisterResult } from '../core/entries.js';
import { equalBytes } from '../../shared/bytes.js';
import type { PasskeyRegisterResult, PasskeyUseResult } from '../core/passkey-state.js';
import { passkeyRegister, passkeyUse } from './passkeys.js';
import { RECENT_IDS, type LiveRecord, type VaultRecord } from './record.js';

type RegisterEntry = Extract<Entry, { type: 'register' }>;
type AttemptEntry = Extract<Entry, { type: 'attempt' }>;

/**
 * A vault command: the shape of the log entries of the previous release, where `register` and
 * `attempt` may also carry a key id (16 bytes; never in a release-0.1 entry): the one registered
 * is stored in the record, and an attempt naming another one than the record's spends no guess.
 */
export type Command =
  | (RegisterEntry & { keyId?: Uint8Array })
  | (AttemptEntry & { keyId?: Uint8Array })
  | Exclude<Entry, RegisterEntry | AttemptEntry>;

export type CommandResult =
  | { kind: 'register'; r: RegisterResult }
  | { kind: 'attempt'; r: AttemptResult }
  | { kind: 'finish'; r: FinishResult }
  | { kind: 'passkey'; r: PasskeyRegisterResult | PasskeyUseResult };

/** How long an unfinished attempt keeps a record at zero attempts from being destroyed. */
export const ATTEMPT_TTL_MS = 10 * 60 * 1000;

/**
 * Runs `cmd` against the record (`undefined`: none yet). Returns the result and the record to
 * store, or `next: undefined` when nothing changes. Never mutates its input.
 */
export function runCommand(current: VaultRecord | undefined, cmd: Command): { result: CommandResult; next?: VaultRecord } {
  if (current?.status === 'passkeys' && cmd.type !== 'passkey-register' && cmd.type !== 'passkey-use') {
    throw new Error('a password command met a passkey record: record ids are derived apart, so this is a bug');
  }
  switch (cmd.type) {
    case 'passkey-register':
    case 'passkey-use': {
      if (current !== undefined && current.status !== 'passkeys') throw new Error('a passkey command met a password record');
      const out = cmd.type === 'passkey-register' ? passkeyRegister(current, cmd) : passkeyUse(current, cmd);
      return { result: { kind: 'passkey', r: out.result }, ...(out.next ? { next: out.next } : {}) };
    }
    case 'register': {
      const version = (current?.version ?? 0) + 1;
      const next: LiveRecord = {
        status: 'live', version, opaqueRecord: cmd.opaqueRecord, wrappedKey: cmd.wrappedKey, ksf: cmd.ksf,
        limit: cmd.limit, attemptsRemaining: cmd.limit, open: [], recent: [],
        ...(cmd.keyId ? { keyId: cmd.keyId.slice() } : {}),
      };
      return { result: { kind: 'register', r: { status: 'registered', version, attemptsRemaining: cmd.limit } }, next };
    }
    case 'attempt':
      return attempt(current as PasswordRecord | undefined, cmd);
    case 'finish':
      return finish(current as PasswordRecord | undefined, cmd);
  }
}

type PasswordRecord = Exclude<VaultRecord, { status: 'passkeys' }>;

function attempt(current: PasswordRecord | undefined, e: AttemptEntry & { keyId?: Uint8Array }): { result: CommandResult; next?: VaultRecord } {
  const out = (r: AttemptResult, next?: VaultRecord) => ({ result: { kind: 'attempt' as const, r }, ...(next ? { next } : {}) });
  if (!current || current.status === 'erased') return out({ status: 'unknown', attemptsRemaining: 0, limit: 0 });
  if (current.status !== 'live') return out({ status: 'locked', attemptsRemaining: 0, limit: 0 });
  if (e.keyId && current.keyId && !equalBytes(e.keyId, current.keyId)) {
    // The client asks for a key this record does not hold: nothing changes, no guess is spent.
    return out({ status: 'key-mismatch', attemptsRemaining: current.attemptsRemaining, limit: current.limit, keyId: current.keyId });
  }
  if (current.recent.some((id) => equalBytes(id, e.attemptId))) {
    return out({ status: 'duplicate', attemptsRemaining: current.attemptsRemaining, limit: current.limit });
  }
  const open = current.open.filter((a) => e.ts - a.ts < ATTEMPT_TTL_MS);
  if (current.attemptsRemaining === 0) {
    if (open.length === 0) return out({ status: 'locked', attemptsRemaining: 0, limit: current.limit }, { status: 'destroyed', version: current.version + 1 });
    return out({ status: 'locked', attemptsRemaining: 0, limit: current.limit });
  }
  const recent = [...current.recent, e.attemptId.slice(0, ATTEMPT_ID_BYTES)].slice(-RECENT_IDS);
  const next: LiveRecord = {
    ...current,
    attemptsRemaining: current.attemptsRemaining - 1,
    version: current.version + 1,
    open: [...open, { id: e.attemptId, ts: e.ts }],
    recent,
  };
  return out({ status: 'granted', attemptsRemaining: next.attemptsRemaining, limit: next.limit, opaqueRecord: next.opaqueRecord, ksf: next.ksf }, next);
}

function finish(current: PasswordRecord | undefined, e: Extract<Command, { type: 'finish' }>): { result: CommandResult; next?: VaultRecord } {
  const out = (r: FinishResult, next?: VaultRecord) => ({ result: { kind: 'finish' as const, r }, ...(next ? { next } : {}) });
  if (!current || current.status === 'erased') return out({ status: 'stale' });
  if (current.status !== 'live') return out({ status: 'destroyed' });
  const at = current.open.findIndex((a) => equalBytes(a.id, e.attemptId));
  if (at < 0) return out({ status: 'stale' });
  const open = current.open.filter((_, i) => i !== at);
  const version = current.version + 1;
  if (e.success) {
    if (e.erase) return out({ status: 'erased' }, { status: 'erased', version });
    // Other open attempts stay open: each already paid for its guess, and a concurrent recovery
    // from a second device must still be able to finish.
    const next: LiveRecord = { ...current, open, version, attemptsRemaining: current.limit };
    return out({ status: 'recovered', wrappedKey: current.wrappedKey, attemptsRemaining: next.attemptsRemaining }, next);
  }
  if (current.attemptsRemaining === 0 && open.length === 0) return out({ status: 'destroyed' }, { status: 'destroyed', version });
  return out({ status: 'wrong-password', attemptsRemaining: current.attemptsRemaining }, { ...current, open, version });
}
