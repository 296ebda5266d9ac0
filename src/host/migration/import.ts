/**
 * The online part of a migration from release 0.1: hands the carried-over records that the record
 * store does not hold yet to the leader's batcher (`importRecords`, `import` batches through the
 * log) and confirms that the core's record count covers them all. Restartable: the records already
 * imported (each batch is atomic) are found by proven reads against the committed root and skipped.
 */
import { BkvError } from '../../shared/errors.js';
import { equalBytes } from '../../shared/bytes.js';
import { verifyProof } from '../../shared/record-tree/index.js';
import type { RecordBatcher, RecordReader } from '../../trusted/records/batcher.js';
import { recordId, type RecordKeys } from '../../trusted/records/record-keys.js';
import type { RecordState } from '../../trusted/records/record-state.js';
import type { CarriedRecord } from './carry-over.js';

export interface ImportContext {
  state: RecordState;
  reader: RecordReader;
  batcher: RecordBatcher;
  keys: RecordKeys;
  /** Called before the first batch and after each chunk: records in the store / total. */
  onProgress?: (done: number, total: number) => void;
  /** Records per `importRecords` call (default 1024; each call writes batches of up to 256). */
  chunk?: number;
  wait: (ms: number) => Promise<void>;
}

/** The progress line printed during an import. */
export const progressLine = (done: number, total: number): string => `release 0.1 migration: ${done} / ${total} records imported`;

async function inStep(state: RecordState, wait: (ms: number) => Promise<void>): Promise<void> {
  await Promise.race([state.whenStoreInStep(), wait(10_000)]);
  const h = state.storeHealth();
  if (h.state !== 'ok') throw new BkvError('UNAVAILABLE', `the record store is not in step with the vault (${h.state}); the migration will resume at the next start`);
}

/** The records whose ids the committed root does not hold (proofs checked against the root). */
export async function absentRecords(records: CarriedRecord[], ctx: Pick<ImportContext, 'state' | 'reader' | 'keys' | 'wait'>): Promise<CarriedRecord[]> {
  await inStep(ctx.state, ctx.wait);
  const root = ctx.state.root;
  const out: CarriedRecord[] = [];
  for (let at = 0; at < records.length; at += 256) {
    const part = records.slice(at, at + 256);
    const ids = part.map((r) => recordId(ctx.keys, r.account));
    const res = await ctx.reader.read(ids);
    part.forEach((r, i) => {
      const got = res.reads.find((x) => equalBytes(x.key, ids[i]!));
      if (!got) throw new BkvError('UNAVAILABLE', 'the record store did not answer for an imported record');
      let vh: Uint8Array | null;
      try {
        vh = verifyProof(root, ids[i]!, got.proof);
      } catch {
        throw new BkvError('UNAVAILABLE', "the record store's proof does not match the committed root");
      }
      if (vh === null) out.push(r);
    });
  }
  return out;
}

/** Imports what is missing; resolves with the number imported now once the count is confirmed. */
export async function importCarried(records: CarriedRecord[], ctx: ImportContext): Promise<number> {
  const total = records.length;
  const todo = await absentRecords(records, ctx);
  let done = total - todo.length;
  if (ctx.state.count !== done) {
    throw new BkvError('CONFLICT', `the record store holds ${ctx.state.count} records but ${done} of the ${total} to import: it was not started empty for this migration`);
  }
  ctx.onProgress?.(done, total);
  const chunk = Math.max(1, ctx.chunk ?? 1024);
  for (let at = 0; at < todo.length; at += chunk) {
    done += await ctx.batcher.importRecords(todo.slice(at, at + chunk));
    ctx.onProgress?.(done, total);
  }
  await inStep(ctx.state, ctx.wait);
  if (ctx.state.count !== total) throw new BkvError('INTERNAL', `after the import the vault holds ${ctx.state.count} records, expected ${total}`);
  return todo.length;
}
