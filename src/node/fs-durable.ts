/**
 * Durable file writes for every Node-side component (host, witness, ceremony, CLI, build): the one
 * place that writes a file so that after a crash either the old or the new contents are there.
 */
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Flushes a directory entry (after a rename or create) so the change survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

const dirSyncs = new Map<string, { running: Promise<void> | null; next: Promise<void> | null }>();

/**
 * fsync of a directory shared by concurrent callers: the promise settles after an fsync that
 * started after this call (so it covers every rename the caller finished before calling). Many
 * renames in one directory then cost one or two directory fsyncs instead of one each.
 */
export function fsyncDirShared(dir: string): Promise<void> {
  let st = dirSyncs.get(dir);
  if (!st) dirSyncs.set(dir, (st = { running: null, next: null }));
  const s = st;
  const start = (): Promise<void> => {
    const p = fsyncDir(dir).finally(() => {
      if (s.running === p) s.running = null;
      if (!s.running && !s.next) dirSyncs.delete(dir);
    });
    s.running = p;
    return p;
  };
  if (s.next) return s.next; // queued, starts after this call
  if (!s.running) return start();
  const next = s.running.catch(() => undefined).then(() => {
    s.next = null;
    return start();
  });
  s.next = next;
  return next;
}

let tmpCounter = 0;

/** Writes `data` to `path` atomically: temp file, fsync, rename, fsync of the directory. */
export async function writeFileDurable(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}-${++tmpCounter}`;
  const h = await open(tmp, 'w', mode);
  try {
    await h.writeFile(data);
    await h.sync();
  } catch (err) {
    await h.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await h.close();
  await rename(tmp, path);
  await fsyncDirShared(dirname(path));
}
