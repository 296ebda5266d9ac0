/**
 * Rebuilds the state of release 0.1 (every record in the sealed consensus state) from its files,
 * with the keys the software backend holds: the single-member sealed log (`log.bin`,
 * `snapshot.bin`, `counter.bin`) or one fleet member's `state/` directory
 * (docs/formats/member-state.md, unchanged since 0.1 apart from what the entries hold).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BkvError } from '../../shared/errors.js';
import { openHardState, openSnapshot, rebuildLog } from '../../trusted/consensus/sealed-state.js';
import { BATCH_TAG } from '../../trusted/records/batch.js';
import { SNAPSHOT_TAG } from '../../trusted/records/record-state.js';
import { memberStorageKey, type MemberIdentity } from '../fleet/config.js';
import { MemberStorage } from '../fleet/member-storage.js';
import { nodeCoreEnv } from '../fleet/native-crypto.js';
import { FileLogStorage, FileMonotonicCounter } from './legacy-file-log-storage.js';
import { SingleMemberLog } from './legacy-single-member-log.js';
import { VaultStateMachine } from './legacy-state-machine.js';

/** The files of a release-0.1 single-member vault, in its directory. */
export const LEGACY_SINGLE_FILES = ['log.bin', 'snapshot.bin', 'counter.bin'] as const;

const DATA = 1; // EntryKind.Data

/** Replays a release-0.1 single-member vault in `dir` (sealed with the vault's storage key). */
export async function loadLegacySingle(dir: string, storageKey: Uint8Array): Promise<VaultStateMachine> {
  const sm = new VaultStateMachine();
  const storage = new FileLogStorage(dir);
  const counter = new FileMonotonicCounter(join(dir, 'counter.bin'));
  try {
    await SingleMemberLog.open(sm, storage, counter, storageKey, nodeCoreEnv);
  } finally {
    await storage.close();
    await counter.close();
  }
  return sm;
}

export interface LegacyMemberState {
  member: number;
  /** Position of the member's last log entry (Raft's election rule compares these). */
  lastTerm: number;
  lastIndex: number;
  /** The release-0.1 state machine after every data entry of the member's log. */
  sm: VaultStateMachine;
}

interface OpenedLog {
  member: number;
  lastTerm: number;
  lastIndex: number;
  snapshotIndex: number;
  snapshot: Uint8Array | null;
  data: Uint8Array[];
}

async function openMemberLog(stateDir: string, identity: MemberIdentity, clusterId: Uint8Array): Promise<OpenedLog | null> {
  if (!existsSync(join(stateDir, 'log'))) return null;
  const storage = await MemberStorage.open(stateDir);
  try {
    const boot = storage.bootState();
    if (boot.hardState === null) return null;
    const key = memberStorageKey(identity, clusterId);
    const { state: hs } = openHardState(key, identity.id, boot.hardState);
    let snapshot: Uint8Array | null = null;
    if (hs.snapshot.index > 0) {
      if (boot.snapshot === null) throw new BkvError('TAMPERED', `${stateDir}: the snapshot the hard state names is missing`);
      snapshot = openSnapshot(key, identity.id, boot.snapshot, hs.snapshot).data;
    }
    const entries = rebuildLog(key, identity.id, hs, boot.logFrames);
    return {
      member: identity.id,
      lastTerm: hs.lastTerm,
      lastIndex: hs.lastIndex,
      snapshotIndex: hs.snapshot.index,
      snapshot,
      data: entries.filter((e) => (e.kind as number) === DATA).map((e) => e.data),
    };
  } catch (e) {
    if (e instanceof BkvError) throw e;
    throw new BkvError('TAMPERED', `${stateDir}: the member state does not open (${(e as Error).message})`);
  } finally {
    await storage.close();
  }
}

/**
 * True when a member's `state/` holds release-0.1 content: a snapshot of the old state machine or
 * a data entry that is not a record batch. An empty state, or one of this release, is not.
 */
export async function isLegacyMemberState(stateDir: string, identity: MemberIdentity, clusterId: Uint8Array): Promise<boolean> {
  const log = await openMemberLog(stateDir, identity, clusterId);
  if (!log) return false;
  if (log.snapshot && log.snapshot[0] !== SNAPSHOT_TAG) return true;
  return log.data.some((d) => d[0] !== BATCH_TAG);
}

/**
 * Rebuilds one release-0.1 fleet member's state: its snapshot, then every data entry of its log,
 * committed or not (see docs/vault.md, "Migration from release 0.1", for why that is conservative).
 */
export async function loadLegacyFleetMember(stateDir: string, identity: MemberIdentity, clusterId: Uint8Array): Promise<LegacyMemberState | null> {
  const log = await openMemberLog(stateDir, identity, clusterId);
  if (!log) return null;
  const sm = new VaultStateMachine();
  if (log.snapshot) sm.restore(log.snapshot);
  let index = log.snapshotIndex;
  for (const d of log.data) sm.apply(++index, d);
  return { member: log.member, lastTerm: log.lastTerm, lastIndex: log.lastIndex, sm };
}

/** Raft's election rule: the log with the higher last term, then the higher last index, is more up to date. */
export function mostUpToDate<T extends { lastTerm: number; lastIndex: number; member: number }>(states: T[]): T | null {
  let best: T | null = null;
  for (const s of states) {
    if (!best || s.lastTerm > best.lastTerm || (s.lastTerm === best.lastTerm && (s.lastIndex > best.lastIndex || (s.lastIndex === best.lastIndex && s.member < best.member)))) best = s;
  }
  return best;
}
