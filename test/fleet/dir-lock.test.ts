import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDirectory } from '../../src/node/dir-lock.js';
import { MemberStorage } from '../../src/host/fleet/member-storage.js';
import { WitnessLog } from '../../src/witness/log.js';
import { isBkvError } from '../../src/shared/errors.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function stateDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'bkv-state-lock-'));
  dirs.push(d);
  const s = join(d, 'state');
  await mkdir(s, { recursive: true });
  return s;
}

/** Another live process (it only sleeps): the holder of a lock this process did not take. */
function otherProcess(): number {
  const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  children.push(c);
  return c.pid!;
}

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function conflictOf(fn: () => unknown): { code: string; pid?: unknown } {
  try {
    fn();
  } catch (e) {
    if (isBkvError(e)) return { code: e.code, pid: e.details.pid };
    throw e;
  }
  throw new Error('expected a conflict');
}

/** What `p` rejects with; null if it resolves. */
async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

/** `open` takes `dir`'s lock for this process, and closing gives it back. */
async function expectLockedWhileOpen(dir: string, open: () => Promise<{ close(): Promise<void> }>): Promise<void> {
  const opened = await open();
  expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
  await opened.close();
  expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
}

describe('lockDirectory', () => {
  it('writes this pid into LOCK and removes it on release, leaving no draft behind', async () => {
    const dir = await stateDir();
    const lock = lockDirectory(dir, 'member state directory');
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    expect(await readdir(dir)).toEqual([LOCK_FILE]);
    lock.release();
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it('refuses a directory another live process holds, and leaves its LOCK alone', async () => {
    const dir = await stateDir();
    const holder = otherProcess();
    await writeFile(join(dir, LOCK_FILE), `${holder}\n`);
    expect(conflictOf(() => lockDirectory(dir, 'member state directory'))).toEqual({ code: 'CONFLICT', pid: holder });
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(`${holder}\n`);
    expect(await readdir(dir)).toEqual([LOCK_FILE]);
  });

  it('takes over a LOCK whose process is gone, or that holds no pid', async () => {
    for (const stale of [`${deadPid()}\n`, 'garbage', '']) {
      const dir = await stateDir();
      await writeFile(join(dir, LOCK_FILE), stale);
      const lock = lockDirectory(dir, 'member state directory');
      expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
      expect(await readdir(dir)).toEqual([LOCK_FILE]);
      lock.release();
    }
  });

  it('does not remove a LOCK that another process took over in the meantime', async () => {
    const dir = await stateDir();
    const lock = lockDirectory(dir, 'member state directory');
    const other = otherProcess();
    await writeFile(join(dir, LOCK_FILE), `${other}\n`);
    lock.release();
    expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(`${other}\n`);
  });
});

describe('MemberStorage and the lock', () => {
  it('a second process on a running member directory touches nothing: no truncated tail, no removed temporary file', async () => {
    const dir = await stateDir();
    const first = await MemberStorage.open(dir);
    await first.close();
    // What a running member's directory can look like mid-write: an append in progress (bytes past
    // the last complete record) and a snapshot being written (a temporary file).
    const log = join(dir, 'log');
    await writeFile(log, Buffer.concat([await readFile(log), Buffer.from([0, 0, 0, 200, 1, 2, 3])]));
    const tmp = join(dir, 'snapshot-abc.tmp-1');
    await writeFile(tmp, 'half a snapshot');
    const sizeBefore = (await stat(log)).size;
    await writeFile(join(dir, LOCK_FILE), `${otherProcess()}\n`);

    const err = await rejectionOf(MemberStorage.open(dir));
    expect(isBkvError(err) && err.code).toBe('CONFLICT');
    expect((await stat(log)).size).toBe(sizeBefore);
    expect(await readFile(tmp, 'utf8')).toBe('half a snapshot');
  });

  it('holds the lock while open and gives it back on close, so the next process may open', async () => {
    const dir = await stateDir();
    await expectLockedWhileOpen(dir, () => MemberStorage.open(dir));
    // A storage that fails to open (an unreadable log) gives the lock back too.
    await rm(join(dir, 'log'), { force: true });
    await mkdir(join(dir, 'log'));
    await expect(MemberStorage.open(dir)).rejects.toThrow();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });
});

describe('WitnessLog and the lock', () => {
  it('a second witness process on a running witness directory is refused and touches nothing', async () => {
    const dir = await stateDir();
    await expectLockedWhileOpen(dir, () => WitnessLog.open(dir));
    // A running witness with an append in progress (a line not yet ended) and its journal.
    const path = join(dir, 'witness.log');
    await writeFile(path, 'an append in progress');
    await writeFile(join(dir, LOCK_FILE), `${otherProcess()}\n`);
    const before = await readdir(dir);
    const journal = await readFile(join(dir, 'cosigned', 'journal'));
    const config = await readFile(join(dir, 'config.json'), 'utf8');

    const err = await rejectionOf(WitnessLog.open(dir, { addOperatorKeys: ['AAAA'] }));
    expect(isBkvError(err) && err.code).toBe('CONFLICT');
    expect(await readFile(path, 'utf8')).toBe('an append in progress');
    expect((await readdir(dir)).sort()).toEqual(before.sort());
    expect(await readFile(join(dir, 'cosigned', 'journal'))).toEqual(journal);
    expect(await readFile(join(dir, 'config.json'), 'utf8')).toBe(config);
  });
});
