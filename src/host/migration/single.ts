/**
 * The offline part of migrating a release-0.1 single-member vault directory (docs/vault.md,
 * "Migration from release 0.1"). Each step is idempotent, so a start that dies anywhere is
 * finished by the next one:
 *
 *   1. move `log.bin`, `snapshot.bin`, `counter.bin` into `release-0.1/` (renames, then fsync);
 *   2. unless `release-0.1/pending-import.bin` exists: replay the old state from there and write
 *      the carried-over records, sealed, to that file;
 *   3. (online, `openVaultMember`) import what the new store lacks, check the count;
 *   4. write `release-0.1/MIGRATED`, then remove the pending file.
 *
 * The old files are never deleted.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../../shared/errors.js';
import { fsyncDir, writeFileDurable } from '../../node/fs-durable.js';
import { carryOver, readPending, writePending, type CarriedRecord } from './carry-over.js';
import { LEGACY_SINGLE_FILES, loadLegacySingle } from './legacy-load.js';

export const ASIDE_DIR = 'release-0.1';
export const PENDING_FILE = 'pending-import.bin';
export const DONE_FILE = 'MIGRATED';

export interface PendingMigration {
  aside: string;
  pendingPath: string;
  records: CarriedRecord[];
}

/** True when `dir` holds a release-0.1 single-member vault not yet fully migrated. */
export function singleNeedsMigration(dir: string): boolean {
  const aside = join(dir, ASIDE_DIR);
  return LEGACY_SINGLE_FILES.some((f) => existsSync(join(dir, f))) || (existsSync(aside) && !existsSync(join(aside, DONE_FILE)));
}

/** Steps 1 and 2; null when there is nothing to migrate. */
export async function prepareSingleMigration(
  dir: string,
  storageKey: Uint8Array,
  random: (n: number) => Uint8Array,
  say: (line: string) => void,
): Promise<PendingMigration | null> {
  if (!singleNeedsMigration(dir)) return null;
  const aside = join(dir, ASIDE_DIR);
  const top = LEGACY_SINGLE_FILES.filter((f) => existsSync(join(dir, f)));
  if (top.length > 0 && existsSync(join(aside, DONE_FILE))) {
    throw new BkvError('USAGE', `${dir} holds release-0.1 files and a finished migration in ${ASIDE_DIR}/: move one of them away`);
  }
  if (top.length > 0) {
    await mkdir(aside, { recursive: true, mode: 0o700 });
    for (const f of top) {
      if (existsSync(join(aside, f))) throw new BkvError('USAGE', `${join(aside, f)} and ${join(dir, f)} both exist: keep one`);
      await rename(join(dir, f), join(aside, f));
    }
    await fsyncDir(aside);
    await fsyncDir(dir);
    say(`release 0.1 vault found: its files are kept in ${aside}`);
  }
  const pendingPath = join(aside, PENDING_FILE);
  let records = await readPending(pendingPath, storageKey);
  if (!records) {
    records = carryOver(await loadLegacySingle(aside, storageKey));
    await writePending(pendingPath, storageKey, records, random);
    say(`release 0.1 vault: ${records.length} records to import`);
  }
  return { aside, pendingPath, records };
}

/** Step 4, once the import is confirmed. */
export async function finishSingleMigration(m: PendingMigration): Promise<void> {
  await writeFileDurable(join(m.aside, DONE_FILE), `${JSON.stringify({ migrated: 'release-0.1', records: m.records.length, at: new Date().toISOString() })}\n`);
  await rm(m.pendingPath, { force: true });
  await fsyncDir(m.aside);
}
