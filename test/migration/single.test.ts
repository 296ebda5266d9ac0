import { existsSync } from 'node:fs';
import { readFile, readdir, rename, mkdir, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { isBkvError } from '../../src/shared/errors.js';
import { openVaultMember, type VaultMember } from '../../src/host/vault-member.js';
import { checkAccount, copyFixture, manifest } from './helpers.js';

const accounts = Object.entries(manifest.single);
const total = accounts.length;

function client(m: VaultMember, account: string, limit: number): VaultClient {
  const pub = m.core.publicKeys();
  return new VaultClient({
    account,
    fleet: async () => ({ opaqueServerPublicKey: pub.opaqueServerPublicKey, encryptionPublicKey: pub.encryptionPublicKey }),
    transport: (env) => m.core.handle(account, env),
    ksf: manifest.ksf,
    attemptLimit: limit,
  });
}

async function open(dir: string, opts: Parameters<typeof openVaultMember>[1] = {}) {
  const lines: string[] = [];
  const m = await openVaultMember(dir, { onMigration: (l) => lines.push(l), ...opts });
  return { m, lines };
}

const OLD_FILES = ['counter.bin', 'log.bin', 'snapshot.bin'];

describe('a release-0.1 single-member vault opens with this release', () => {
  it('imports every record once: keys recover, attempts carry over, destroyed stays locked, old files kept', async () => {
    const dir = await copyFixture('single');
    const { m, lines } = await open(dir);
    try {
      expect(lines).toContain(`release 0.1 migration: ${total} / ${total} records imported`);
      expect(m.state.count).toBe(total);
      expect(m.health().records).toBe(total);
      for (const [name, a] of accounts) {
        const rec = await m.peek(name);
        expect(rec?.status).toBe(a.destroyed ? 'destroyed' : 'live');
        if (rec?.status === 'live') expect(rec.attemptsRemaining).toBe(a.attemptsRemaining);
      }
      for (const [name, a] of accounts) await checkAccount(() => client(m, name, a.limit), a);
    } finally {
      await m.close();
    }
    // The old state is kept, untouched in content, beside the new one.
    for (const f of OLD_FILES) {
      expect(existsSync(join(dir, f))).toBe(false);
      expect(existsSync(join(dir, 'release-0.1', f))).toBe(true);
    }
    expect(existsSync(join(dir, 'release-0.1', 'MIGRATED'))).toBe(true);
    expect(existsSync(join(dir, 'release-0.1', 'pending-import.bin'))).toBe(false);

    // A restart does not import again, and keeps what happened after the migration.
    const again = await open(dir);
    try {
      expect(again.lines).toEqual([]);
      expect(again.m.state.count).toBe(total);
      const bob = await again.m.peek('bob');
      expect(bob?.status === 'live' && bob.attemptsRemaining).toBe(manifest.single.bob!.limit);
    } finally {
      await again.m.close();
    }
  }, 120_000);

  it('an import interrupted after some batches resumes at the next start: nothing lost, nothing twice', async () => {
    const dir = await copyFixture('single');
    const boom = new Error('killed mid-migration');
    await expect(
      open(dir, { migration: { chunk: 1, onProgress: (done) => { if (done === 2) throw boom; } } }),
    ).rejects.toBe(boom);
    expect(existsSync(join(dir, 'release-0.1', 'pending-import.bin'))).toBe(true);
    expect(existsSync(join(dir, 'release-0.1', 'MIGRATED'))).toBe(false);

    const { m, lines } = await open(dir, { migration: { chunk: 1 } });
    try {
      // It found the two imported records and imported only the others.
      expect(lines).toContain(`release 0.1 migration: 2 / ${total} records imported`);
      expect(lines).toContain(`release 0.1 migration: ${total} / ${total} records imported`);
      expect(lines.some((l) => l.includes(`(${total - 2} imported by this start)`))).toBe(true);
      expect(m.state.count).toBe(total);
      for (const [name, a] of accounts) await checkAccount(() => client(m, name, a.limit), a);
    } finally {
      await m.close();
    }
  }, 120_000);

  it('a start that died after moving the old files aside (before the pending file) redoes the rest', async () => {
    const dir = await copyFixture('single');
    await mkdir(join(dir, 'release-0.1'));
    await rename(join(dir, 'log.bin'), join(dir, 'release-0.1', 'log.bin')); // one of three moved
    const { m } = await open(dir);
    try {
      expect(m.state.count).toBe(total);
      expect((await readdir(join(dir, 'release-0.1'))).sort()).toEqual(['MIGRATED', ...OLD_FILES]);
      const a = manifest.single.alice!;
      await checkAccount(() => client(m, 'alice', a.limit), a);
    } finally {
      await m.close();
    }
  }, 120_000);

  it('after the migration and a first request, an import batch is refused by the core', async () => {
    const dir = await copyFixture('single');
    const { m } = await open(dir);
    try {
      const a = manifest.single.alice!;
      await checkAccount(() => client(m, 'alice', a.limit), a); // command batches: the window closes
      // The attacker's move: import a record (a copy of alice's, fresh attempts) for a new account.
      const alice = await m.peek('alice');
      const forged = { ...alice!, attemptsRemaining: 100, limit: 100 } as typeof alice & object;
      const err = await m.batcher.importRecords([{ account: 'mallory', record: forged }]).then(() => null, (e: unknown) => e);
      expect(isBkvError(err, 'CONFLICT')).toBe(true);
      expect(String((err as Error).message)).toMatch(/refused the import/);
      expect(await m.peek('mallory')).toBeUndefined();
      expect(m.state.count).toBe(total);
    } finally {
      await m.close();
    }
  }, 120_000);

  it('a pending-import file altered by the host is refused: nothing is imported', async () => {
    const dir = await copyFixture('single');
    const stop = new Error('stopped before the first batch');
    await expect(open(dir, { migration: { onProgress: () => { throw stop; } } })).rejects.toBe(stop);
    const pending = join(dir, 'release-0.1', 'pending-import.bin');
    // The attacker's move: change one byte of the sealed records (say, to raise a counter).
    const bytes = await readFile(pending);
    bytes[bytes.length - 20]! ^= 1;
    await writeFile(pending, bytes);
    const err = await open(dir).then(({ m }) => m.close().then(() => null), (e: unknown) => e);
    expect(isBkvError(err, 'TAMPERED')).toBe(true);
    expect(existsSync(join(dir, 'release-0.1', 'MIGRATED'))).toBe(false);
    // The honest file back: the migration completes, with the records as they were.
    bytes[bytes.length - 20]! ^= 1;
    await writeFile(pending, bytes);
    const { m } = await open(dir);
    try {
      expect(m.state.count).toBe(total);
      const bob = await m.peek('bob');
      expect(bob?.status === 'live' && bob.attemptsRemaining).toBe(manifest.single.bob!.attemptsRemaining);
    } finally {
      await m.close();
    }
  }, 120_000);

  it('`bkv vault migrate --dir D` migrates and exits', async () => {
    const dir = await copyFixture('single');
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'bkv.js');
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, 'vault', 'migrate', '--dir', dir, '--json']);
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, records: total });
    expect(stderr).toContain(`release 0.1 migration: ${total} / ${total} records imported`);
    expect(existsSync(join(dir, 'release-0.1', 'MIGRATED'))).toBe(true);
  }, 120_000);
});
