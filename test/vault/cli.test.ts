import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'bkv.js');
let dir: string;
let vault: ChildProcess;
let env: NodeJS.ProcessEnv;

function bkv(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bkv-vault-cli-'));
  vault = spawn(process.execPath, [BIN, 'vault', 'start', '--dir', join(dir, 'vault'), '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: vault.stdout! }).once('line', resolve);
    vault.once('exit', (c) => reject(new Error(`vault exited ${c}`)));
  });
  const info = JSON.parse(line) as { url: string; fleetKeys: string };
  env = { ...process.env, BKV_VAULT_URL: info.url, BKV_FLEET_KEYS: info.fleetKeys, BKV_ACCOUNT: 'cli-user', BKV_KSF_MEMORY: '256' };
  await mkdir(join(dir, 'chats'));
  await writeFile(join(dir, 'chats', 'a.json'), JSON.stringify({ hello: 'world' }));
  await writeFile(join(dir, 'pw'), 'the right password\n');
  await writeFile(join(dir, 'bad'), 'not the password\n');
});

afterAll(async () => {
  vault.kill('SIGTERM');
  await new Promise((r) => vault.once('exit', r));
  await rm(dir, { recursive: true, force: true });
});

describe('bkv backup with a password escrowed in the vault', () => {
  it('backs up, then restores on a device with no state, reporting attempts after a wrong password', () => {
    const c = bkv(['backup', 'create', 'chats', '-o', 'chats.bkv', '--password-file', 'pw', '--json']);
    expect(c.code).toBe(0);
    expect(JSON.parse(c.stdout).escrow).toMatchObject({ account: 'cli-user', key: 'registered', attemptsRemaining: 10 });

    const wrong = bkv(['backup', 'restore', 'chats.bkv', '-o', 'out-bad', '--password-file', 'bad']);
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toMatch(/wrong password: 9 attempts remaining/);

    const viaStdin = bkv(['backup', 'restore', 'chats.bkv', '-o', 'out', '--password'], 'the right password\n');
    expect(viaStdin.code).toBe(0);
  });

  it('leaves no output after a wrong password and locks after ten', async () => {
    const c = bkv(['backup', 'create', 'chats', '-o', 'lock.bkv', '--password-file', 'pw', '--account', 'locker']);
    expect(c.code).toBe(0);
    for (let i = 9; i >= 1; i--) {
      const r = bkv(['backup', 'restore', 'lock.bkv', '-o', 'never', '--password-file', 'bad', '--account', 'locker', '--json']);
      expect(r.code).toBe(3);
      expect(JSON.parse(r.stdout).error.attemptsRemaining).toBe(i);
    }
    const last = bkv(['backup', 'restore', 'lock.bkv', '-o', 'never', '--password-file', 'bad', '--account', 'locker']);
    expect(last.code).toBe(6);
    const right = bkv(['backup', 'restore', 'lock.bkv', '-o', 'never', '--password-file', 'pw', '--account', 'locker']);
    expect(right.code).toBe(6);
    expect(right.stderr).toMatch(/destroyed/);
    expect((await readdir(dir)).filter((f) => f.startsWith('never'))).toEqual([]);
  });

  it('refuses to mix --password with another key option', () => {
    const r = bkv(['backup', 'create', 'chats', '-o', 'x.bkv', '--password-file', 'pw', '--recovery-key']);
    expect(r.code).toBe(2);
  });

  it('reports an unreachable vault with its own exit code and writes nothing', async () => {
    const r = spawnSync(process.execPath, [BIN, 'backup', 'create', 'chats', '-o', 'y.bkv', '--password-file', 'pw'], {
      cwd: dir,
      env: { ...env, BKV_VAULT_URL: 'http://127.0.0.1:9' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(7);
    await expect(readFile(join(dir, 'y.bkv'))).rejects.toThrow();
  });
});
