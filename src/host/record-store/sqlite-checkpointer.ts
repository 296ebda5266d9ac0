/**
 * Moves SQLite's WAL checkpoints off the event loop. In WAL mode the connection that commits runs
 * the checkpoint when the log passes a threshold, synchronously: on a large store it copies pages
 * to random places of a big file and fsyncs it, and every request waits meanwhile. Instead a worker
 * thread with its own connection runs `PRAGMA wal_checkpoint(PASSIVE)` every `everyMs` (passive:
 * it never blocks the writer or readers; SQLite restarts the log once it has been copied in full).
 * The store's own connection keeps a high automatic threshold as a safety net should the worker
 * stop. Host code only: what it copies is what the store already committed.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { timeout: 0 });
const run = () => { try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {} };
const timer = setInterval(run, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  try { db.close(); } finally { parentPort.close(); }
});
`;

/**
 * How often the worker checkpoints. A page rewritten by several commits in that time is copied
 * once: at 2 s instead of 250 ms the record-scale benchmark spent about 1.5 ms less CPU per
 * recovery (BENCHMARKS.md, "Records at scale"), for a WAL of a few tens of MiB between checkpoints.
 */
export const CHECKPOINT_EVERY_MS = 2_000;

/** The WAL file is cut back to this size after a checkpoint that let SQLite restart it. */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/** The automatic threshold (pages) left on the store's own connection while a worker runs. */
export const FALLBACK_AUTOCHECKPOINT = 16_384;

export class SqliteCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(path: string, everyMs = CHECKPOINT_EVERY_MS) {
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER, { eval: true, workerData: { module, path, everyMs } });
    this.worker.unref();
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    // A worker that fails leaves the fallback threshold in charge; nothing to report to clients.
    this.worker.on('error', () => undefined);
  }

  /** Closes the worker's connection and waits for the thread to end. */
  async stop(): Promise<void> {
    this.worker.postMessage('stop');
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}
