import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Worker threads for the parallel file path (src/node/parallel-backup.ts). A thread takes tens of
 * milliseconds of CPU to start, so `bkv backup` starts them while the CLI loads when its command
 * line names a large file (`prestartFor`). Idle threads do not keep the process alive. Each thread
 * runs one job (src/node/chunk-worker.ts) and exits. Small module on purpose: the CLI imports it
 * before anything else.
 */

/** Inputs at least this large take the parallel path; below it, thread start-up is not worth it. */
export const PARALLEL_MIN_BYTES = 8 * 1024 * 1024;

/**
 * Most threads a pool uses. Each costs ~12 MB (its V8 isolate and buffers): with the CLI's own
 * ~55 MB, two keep a backup under 100 MB peak; and writes to one file are serialised by the
 * kernel, so more threads would gain less than they cost.
 */
export const MAX_WORKERS = 2;

/** Threads that compute for the parallel path on this machine: one per core, at most MAX_WORKERS; 0 on one core. */
export function defaultWorkers(): number {
  const cores = availableParallelism();
  return cores < 2 ? 0 : Math.min(cores, MAX_WORKERS);
}

/** Worker threads to start for `threads` computing threads, one of which may be the calling thread. */
export function workerThreadsFor(threads: number, mainThreadWorks: boolean): number {
  return Math.max(0, threads - (mainThreadWorks ? 1 : 0));
}

const idle: Worker[] = [];
/** Prestarted threads no job took within this time are stopped (their memory is returned). */
const IDLE_MS = 10_000;
let idleTimer: ReturnType<typeof setTimeout> | null = null;

function startWorker(): Worker {
  const here = import.meta.url;
  let w: Worker;
  if (here.endsWith('.ts')) {
    // Running from the TypeScript sources (tests): load the entry through tsx inside the thread.
    const entry = JSON.stringify(new URL('./chunk-worker.ts', here).href);
    w = new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${entry}); })`, { eval: true });
  } else {
    w = new Worker(new URL('./chunk-worker.js', here));
  }
  w.unref(); // an idle thread never holds the process open
  return w;
}

/** Starts up to `count` threads now, to be taken by the next job (if any). */
export function prestartWorkers(count: number): void {
  while (idle.length < count) {
    const w = startWorker();
    w.on('error', () => {}); // reported to the job that takes it, if any
    w.once('exit', () => {
      const i = idle.indexOf(w);
      if (i >= 0) idle.splice(i, 1);
    });
    idle.push(w);
  }
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    for (const w of idle.splice(0)) void w.terminate();
  }, IDLE_MS);
  idleTimer.unref();
}

/**
 * Starts the threads early when one of `args` (a command line) names a regular file large enough
 * for the parallel path. A guess, not a decision: the command still chooses its path itself.
 */
export function prestartFor(args: readonly string[], o: { mainThreadWorks: boolean }): void {
  const large = (a: string) => {
    try {
      const st = statSync(a, { throwIfNoEntry: false });
      return !!st && st.isFile() && st.size >= PARALLEL_MIN_BYTES;
    } catch {
      return false;
    }
  };
  const threads = workerThreadsFor(defaultWorkers(), o.mainThreadWorks);
  if (threads > 0 && args.some((a) => !a.startsWith('-') && large(a))) prestartWorkers(threads);
}

/** `count` threads for a job: prestarted ones first, then new ones. The caller refs them. */
export function takeWorkers(count: number): Worker[] {
  const taken = idle.splice(0, count);
  while (taken.length < count) taken.push(startWorker());
  return taken;
}
