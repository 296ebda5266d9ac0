/**
 * One process at a time in a directory that holds an append-only log: a vault member's state
 * directory, a witness's directory. Two processes on the same log would undo each other's work: the
 * second one's start-up truncates what it takes for a torn tail (the first one's append in
 * progress) and removes what it takes for leftover temporary files (the first one's snapshot being
 * written); both then append. For a witness's cosigner that could even mean two different trees
 * cosigned at one size. A second process must therefore stop before it touches anything.
 *
 * The lock is a file, LOCK, holding the pid of the process that owns the directory. It is created
 * atomically (a hard link of a complete file: the link exists whole or not at all) and removed on
 * release. A LOCK whose process no longer exists (it was killed, the machine restarted) is stale
 * and taken over. Within one process the lock is not checked (a test that reopens a directory it
 * abandoned is that process's own business).
 */
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';

export const LOCK_FILE = 'LOCK';

export interface DirLock {
  readonly path: string;
  /** Removes LOCK if this process still holds it. Idempotent. */
  release(): void;
}

/** The pid LOCK names, or null when the file is missing or is not a pid. */
function holderOf(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const m = /^(\d{1,10})\n?$/.exec(text);
  return m ? Number(m[1]) : null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of the live process, other than this one, that holds `dir`'s lock; null if none does. */
export function lockHolder(dir: string): number | null {
  const holder = holderOf(join(dir, LOCK_FILE));
  return holder !== null && holder !== process.pid && alive(holder) ? holder : null;
}

/**
 * Takes `dir`'s lock for this process, or throws BkvError('CONFLICT') naming the process that
 * holds it. `dir` must exist; `what` names it in messages ("member state directory").
 */
export function lockDirectory(dir: string, what: string): DirLock {
  const path = join(dir, LOCK_FILE);
  const draft = join(dir, `${LOCK_FILE}.${process.pid}.draft`);
  writeFileSync(draft, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(draft, path);
        return held(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(what, dir, e);
      }
      const holder = holderOf(path);
      if (holder === process.pid) return held(path);
      if (holder !== null && alive(holder)) {
        throw new BkvError(
          'CONFLICT',
          `the ${what} ${dir} is in use by process ${holder}; stop that process first (if it is not a bkv process, remove ${path})`,
          { dir, pid: holder },
        );
      }
      // Stale (its process is gone) or unreadable: take it over. Move it aside first and check that
      // what moved is what was read, since another process may have taken it over in between:
      // then its lock goes back, and the next round reports it.
      const aside = join(dir, `${LOCK_FILE}.${process.pid}.stale`);
      try {
        renameSync(path, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw ioError(what, dir, e);
      }
      if (holderOf(aside) !== holder) {
        try {
          linkSync(aside, path);
        } catch {
          // Someone holds it again already: the next round sees them.
        }
      }
      rmSync(aside, { force: true });
    }
    throw new BkvError('CONFLICT', `the ${what} ${dir} could not be locked: another process keeps taking its lock`, { dir });
  } finally {
    rmSync(draft, { force: true });
  }
}

/**
 * Opens something that lives in `dir` under `dir`'s lock: takes the lock, runs `open` with it (the
 * opened thing releases it when it closes), and gives the lock back if `open` fails.
 */
export async function openLocked<T>(dir: string, what: string, open: (lock: DirLock) => Promise<T>): Promise<T> {
  const lock = lockDirectory(dir, what);
  try {
    return await open(lock);
  } catch (e) {
    lock.release();
    throw e;
  }
}

function held(path: string): DirLock {
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      if (holderOf(path) === process.pid) rmSync(path, { force: true });
    },
  };
}

function ioError(what: string, dir: string, e: unknown): BkvError {
  return new BkvError('IO', `cannot lock the ${what} ${dir}: ${(e as Error).message}`, { dir });
}
