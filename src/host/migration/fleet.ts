/**
 * Migrating a release-0.1 fleet directory (`bkv up` on one machine; docs/vault.md, "Migration from
 * release 0.1"). The offline part runs once for the fleet, before any member starts, and is
 * idempotent (a run that dies anywhere is finished by the next one):
 *
 *   1. every member's release-0.1 `state/` is renamed `state.release-0.1/` (kept, never deleted);
 *   2. unless every member holds one already: rebuild each member's old state, take the member
 *      whose log is most up to date (Raft's election rule: it holds every committed entry), and
 *      write its records, sealed with the fleet storage key, to `pending-import.bin` in each
 *      member directory.
 *
 * The online part runs in the member processes (`FleetMigration`, member-process.ts): members
 * start on empty state and empty record stores, the elected leader's host imports the records
 * through its batcher, and each member, once its committed record count covers the file, writes
 * `release-0.1-imported` and removes its pending file. Until then members refuse vault requests.
 */
import { existsSync } from 'node:fs';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../../shared/errors.js';
import { fromB64 } from '../../shared/protocol/messages.js';
import { decodeFleetSecrets } from '../../trusted/core/fleet-secrets.js';
import { fsyncDir } from '../../node/fs-durable.js';
import { decodeMemberIdentity, readFleetConfig, type FleetConfig, type MemberIdentity } from '../fleet/config.js';
import { fetchStatuses } from '../fleet/supervisor.js';
import { progressLine } from './import.js';
import { fleetPaths } from '../fleet/provision.js';
import { carryOver, writePending } from './carry-over.js';
import { isLegacyMemberState, loadLegacyFleetMember, mostUpToDate, type LegacyMemberState } from './legacy-load.js';

export const MEMBER_ASIDE_DIR = 'state.release-0.1';
export const MEMBER_PENDING_FILE = 'pending-import.bin';
export const MEMBER_DONE_FILE = 'release-0.1-imported';

/** Runs the offline part; returns the number of records pending import, or null if none are. */
export async function prepareFleetMigration(dir: string, say: (line: string) => void): Promise<number | null> {
  const paths = fleetPaths(dir);
  const config = await readFleetConfig(paths.fleet);
  const clusterId = fromB64(config.clusterId, 'clusterId');
  const members = await Promise.all(
    config.members.map(async (m) => {
      const mdir = paths.member(m.id);
      return { id: m.id, mdir, identity: decodeMemberIdentity(new Uint8Array(await readFile(join(mdir, 'member.bin')))) };
    }),
  );
  const has = (m: { mdir: string }, f: string) => existsSync(join(m.mdir, f));
  // 1. Move release-0.1 states aside. A state that does not open is this release's business (the
  //    member boots as a learner) unless the fleet is of release 0.1: then it is moved aside too,
  //    kept but not used, so that the member starts on an empty state like the others.
  const kinds = await Promise.all(members.map((m) => classify(join(m.mdir, 'state'), m.identity, clusterId)));
  const legacyFleet = kinds.includes('legacy') || members.some((m) => has(m, MEMBER_ASIDE_DIR) && !has(m, MEMBER_DONE_FILE));
  for (const [i, m] of members.entries()) {
    const kind = kinds[i]!;
    if (!legacyFleet || (kind !== 'legacy' && kind !== 'unreadable')) continue;
    const state = join(m.mdir, 'state');
    const aside = join(m.mdir, MEMBER_ASIDE_DIR);
    if (existsSync(aside)) {
      if (kind === 'unreadable') continue;
      throw new BkvError('USAGE', `${state} holds release-0.1 state and ${aside} exists too: keep one`);
    }
    await rename(state, aside);
    await fsyncDir(m.mdir);
    say(`member ${m.id}: release 0.1 state${kind === 'unreadable' ? ' (unreadable: not used)' : ''} kept in ${aside}`);
  }
  if (!members.some((m) => has(m, MEMBER_ASIDE_DIR))) return null;
  if (members.some((m) => has(m, MEMBER_DONE_FILE))) {
    // The import finished on some member: the others confirm it themselves when they start.
    const holder = members.find((m) => has(m, MEMBER_PENDING_FILE));
    return holder ? pendingCount(join(holder.mdir, MEMBER_PENDING_FILE)) : null;
  }
  const missing = members.filter((m) => !has(m, MEMBER_PENDING_FILE));
  if (missing.length === 0) return pendingCount(join(members[0]!.mdir, MEMBER_PENDING_FILE));
  // 2. The records, from the most up-to-date old log.
  const states: LegacyMemberState[] = [];
  for (const m of members) {
    if (!has(m, MEMBER_ASIDE_DIR)) continue;
    try {
      const s = await loadLegacyFleetMember(join(m.mdir, MEMBER_ASIDE_DIR), m.identity, clusterId);
      if (s) states.push(s);
    } catch (e) {
      say(`member ${m.id}: release 0.1 state unreadable, not used (${(e as Error).message})`);
    }
  }
  const best = mostUpToDate(states);
  if (!best) throw new BkvError('TAMPERED', 'no member of the release-0.1 fleet has a readable state: restore the member directories from a backup');
  const records = carryOver(best.sm);
  const secrets = decodeFleetSecrets(new Uint8Array(await readFile(join(members[0]!.mdir, 'fleet-secrets.bin'))));
  for (const m of missing) await writePending(join(m.mdir, MEMBER_PENDING_FILE), secrets.storageKey, records, (n) => crypto.getRandomValues(new Uint8Array(n)));
  say(`release 0.1 fleet: ${records.length} records to import, from member ${best.member} (log ends at term ${best.lastTerm}, index ${best.lastIndex})`);
  return records.length;
}

/** What a member's `state/` holds. */
async function classify(state: string, identity: MemberIdentity, clusterId: Uint8Array): Promise<'none' | 'legacy' | 'current' | 'unreadable'> {
  if (!existsSync(join(state, 'log'))) return 'none';
  try {
    return (await isLegacyMemberState(state, identity, clusterId)) ? 'legacy' : 'current';
  } catch {
    return 'unreadable';
  }
}

/** The record count a pending-import file announces (its clear, authenticated prefix). */
async function pendingCount(path: string): Promise<number> {
  const b = await readFile(path);
  if (b.length < 4) throw new BkvError('TAMPERED', `${path} is truncated`);
  return b.readUInt32BE(0);
}

/**
 * Waits until the fleet's import is confirmed (a quorum of members report it done), printing the
 * progress line whenever it moves.
 */
export async function waitForFleetImport(config: FleetConfig, total: number, say: (line: string) => void, timeoutMs = 600_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = -1;
  while (performance.now() < deadline) {
    const statuses = [...(await fetchStatuses(config, 1000)).values()];
    const done = statuses.filter((s) => s?.migration?.state === 'done' || (s && s.migration === null)).length;
    const progress = Math.max(0, ...statuses.map((s) => s?.migration?.done ?? 0));
    if (progress !== last) {
      say(progressLine(progress, total));
      last = progress;
    }
    if (done >= config.quorum) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new BkvError('UNAVAILABLE', `the release 0.1 import did not finish within ${timeoutMs / 1000} s (it resumes at the next start)`);
}
