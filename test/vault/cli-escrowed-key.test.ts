import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Issue: a second `bkv backup create --password` escrowed a new K over the old one, so older backups
// no longer restored, and restoring one with its old password spent a guess.
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'bkv.js');
let dir: string;
let vault: ChildProcess;
let env: NodeJS.ProcessEnv;

function bkv(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args, '--json'], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
  let out: Record<string, any> = {};
  try {
    out = JSON.parse(r.stdout);
  } catch {
    // not JSON: the assertions on `code` say what happened
  }
  return { code: r.status, out, stderr: r.stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bkv-escrowed-key-'));
  vault = spawn(process.execPath, [BIN, 'vault', 'start', '--dir', join(dir, 'vault'), '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: vault.stdout! }).once('line', resolve);
    vault.once('exit', (c) => reject(new Error(`vault exited ${c}`)));
  });
  const info = JSON.parse(line) as { url: string; fleetKeys: string };
  env = { ...process.env, BKV_VAULT_URL: info.url, BKV_FLEET_KEYS: info.fleetKeys, BKV_ACCOUNT: 'two-backups', BKV_KSF_MEMORY: '256' };
  await writeFile(join(dir, 'monday.txt'), 'monday');
  await writeFile(join(dir, 'tuesday.txt'), 'tuesday');
  await writeFile(join(dir, 'pw'), 'the password\n');
  await writeFile(join(dir, 'other'), 'another password\n');
});

afterAll(async () => {
  vault.kill('SIGTERM');
  await new Promise((r) => vault.once('exit', r));
  await rm(dir, { recursive: true, force: true });
});

describe('password backups of one account share the escrowed key', () => {
  let firstKeyId: string;

  it('a second password backup reuses the escrowed key, and both restore', async () => {
    const a = bkv(['backup', 'create', 'monday.txt', '-o', 'monday.bkv', '--password-file', 'pw']);
    expect(a.code).toBe(0);
    expect(a.out.escrow).toMatchObject({ account: 'two-backups', key: 'registered', replaced: false, attemptsRemaining: 10 });
    firstKeyId = a.out.escrow.keyId;
    expect(firstKeyId).toMatch(/^[0-9a-f]{32}$/);

    const b = bkv(['backup', 'create', 'tuesday.txt', '-o', 'tuesday.bkv', '--password-file', 'pw']);
    expect(b.code).toBe(0);
    expect(b.out.escrow).toMatchObject({ key: 'reused', keyId: firstKeyId, replaced: false });
    expect(bkv(['backup', 'inspect', 'monday.bkv']).out.keyId).toBe(firstKeyId);
    expect(bkv(['backup', 'inspect', 'tuesday.bkv']).out.keyId).toBe(firstKeyId);

    for (const day of ['monday', 'tuesday']) {
      expect(bkv(['backup', 'restore', `${day}.bkv`, '-o', `${day}.out`, '--password-file', 'pw']).code).toBe(0);
      expect(await readFile(join(dir, `${day}.out`), 'utf8')).toBe(day);
    }
    expect(bkv(['backup', 'verify', 'monday.bkv', '--password-file', 'pw']).out).toMatchObject({ ok: true, verified: true, keyId: firstKeyId });
  });

  it('a second backup with another password fails with the attempts left and registers nothing', async () => {
    const c = bkv(['backup', 'create', 'tuesday.txt', '-o', 'wrong.bkv', '--password-file', 'other']);
    expect(c.code).toBe(3);
    expect(c.out.error).toMatchObject({ code: 'WRONG_PASSWORD', attemptsRemaining: 9 });
    expect(c.out.error.message).toMatch(/wrong password: 9 attempts remaining.*Nothing was registered.*--replace-escrowed-key/);
    expect((await readdir(dir)).filter((f) => f.startsWith('wrong'))).toEqual([]);
    // The escrowed key is unchanged: the first backup still restores with its password.
    expect(bkv(['backup', 'restore', 'monday.bkv', '-o', 'monday.again', '--password-file', 'pw']).code).toBe(0);
  });

  it('--replace-escrowed-key escrows a new key; an older backup is then refused without spending a guess, even with its old password', async () => {
    expect(bkv(['backup', 'create', 'tuesday.txt', '-o', 'x.bkv', '--key-file', 'k', '--replace-escrowed-key']).code).toBe(2);

    const d = bkv(['backup', 'create', 'tuesday.txt', '-o', 'new.bkv', '--password-file', 'other', '--replace-escrowed-key']);
    expect(d.code).toBe(0);
    expect(d.out.escrow).toMatchObject({ key: 'registered', replaced: true, attemptsRemaining: 10 });
    const newKeyId = d.out.escrow.keyId as string;
    expect(newKeyId).not.toBe(firstKeyId);

    // The old backup with its old password (now a wrong password for the vault's record): refused
    // by key id, before any attempt, for restore and for verify alike.
    for (const cmd of [['restore', 'monday.bkv', '-o', 'monday.lost'], ['verify', 'monday.bkv']]) {
      const r = bkv(['backup', ...cmd, '--password-file', 'pw']);
      expect(r.code).toBe(3);
      expect(r.out.error).toMatchObject({ code: 'WRONG_KEY', keyId: firstKeyId, vaultKeyId: newKeyId, attemptSpent: false });
      expect(r.out.error.message).toMatch(/no attempt was spent/);
    }
    expect((await readdir(dir)).filter((f) => f.startsWith('monday.lost'))).toEqual([]);
    // No guess was spent: the first wrong password after all that still leaves 9.
    const wrong = bkv(['backup', 'restore', 'new.bkv', '-o', 'never', '--password-file', 'pw']);
    expect(wrong.code).toBe(3);
    expect(wrong.out.error).toMatchObject({ code: 'WRONG_PASSWORD', attemptsRemaining: 9 });

    expect(bkv(['backup', 'restore', 'new.bkv', '-o', 'new.out', '--password-file', 'other']).code).toBe(0);
    expect(await readFile(join(dir, 'new.out'), 'utf8')).toBe('tuesday');
  });

  it('a backup piped in on standard input is checked by key id too: no guess spent on another key', async () => {
    const piped = async (file: string, pw: string, out: string) => {
      const r = spawnSync(process.execPath, [BIN, 'backup', 'restore', '-', '-o', out, '--password-file', pw, '--json'], {
        cwd: dir, env, encoding: 'utf8', timeout: 60_000, input: await readFile(join(dir, file)),
      });
      return { code: r.status, out: JSON.parse(r.stdout || '{}') as Record<string, any> };
    };
    const old = await piped('monday.bkv', 'pw', 'monday.piped');
    expect(old.code).toBe(3);
    expect(old.out.error).toMatchObject({ code: 'WRONG_KEY', keyId: firstKeyId, attemptSpent: false });
    expect((await readdir(dir)).filter((f) => f.startsWith('monday.piped'))).toEqual([]);
    const ok = await piped('new.bkv', 'other', 'new.piped');
    expect(ok.code).toBe(0);
    expect(await readFile(join(dir, 'new.piped'), 'utf8')).toBe('tuesday');
  });

  it('reads the header before asking the vault: a file that is not a backup spends no guess', async () => {
    const r = bkv(['backup', 'restore', 'monday.txt', '-o', 'nothing', '--password-file', 'pw']);
    expect(r.code).toBe(4);
    expect(r.out.error.code).toBe('NOT_A_BACKUP');
    // The restore of new.bkv above reset the counter to 10; the refused file spent nothing.
    const wrong = bkv(['backup', 'restore', 'new.bkv', '-o', 'never', '--password-file', 'pw']);
    expect(wrong.out.error).toMatchObject({ code: 'WRONG_PASSWORD', attemptsRemaining: 9 });
  });
});
