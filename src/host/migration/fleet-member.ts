/**
 * The online part of a fleet's migration from release 0.1, in each member process (see
 * fleet.ts): while the member directory holds `pending-import.bin`, the member refuses vault
 * requests; when it leads, its host imports the records the store lacks; when its committed record
 * count covers the file, it writes `release-0.1-imported` and removes the pending file.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { RaftNode } from '../../trusted/consensus/node.js';
import type { RecordBatcher, RecordReader } from '../../trusted/records/batcher.js';
import { deriveRecordKeys } from '../../trusted/records/record-keys.js';
import type { RecordState } from '../../trusted/records/record-state.js';
import { fsyncDir, writeFileDurable } from '../../node/fs-durable.js';
import { readPending, type CarriedRecord } from './carry-over.js';
import { MEMBER_DONE_FILE, MEMBER_PENDING_FILE } from './fleet.js';
import { importCarried, progressLine } from './import.js';

import type { MigrationStatus } from '../fleet/member-status.js';

export interface MemberMigrationContext {
  node: RaftNode;
  state: RecordState;
  reader: RecordReader;
  batcher: RecordBatcher;
  storageKey: Uint8Array;
  wait: (ms: number) => Promise<void>;
  say: (line: string) => void;
  warn: (line: string) => void;
}

export class MemberMigration {
  private progress: MigrationStatus;
  private stopped = false;

  private constructor(
    private readonly dir: string,
    private readonly records: CarriedRecord[],
  ) {
    this.progress = { state: 'importing', done: 0, total: records.length };
  }

  /** The member directory's pending migration, or null when there is none. */
  static async open(dir: string, storageKey: Uint8Array): Promise<MemberMigration | null> {
    const records = await readPending(join(dir, MEMBER_PENDING_FILE), storageKey);
    return records ? new MemberMigration(dir, records) : null;
  }

  get active(): boolean {
    return this.progress.state === 'importing';
  }

  status(): MigrationStatus {
    return { ...this.progress };
  }

  stop(): void {
    this.stopped = true;
  }

  /** Runs until the import is confirmed on this member (or `stop`). */
  async run(ctx: MemberMigrationContext): Promise<void> {
    const keys = deriveRecordKeys(ctx.storageKey);
    const total = this.records.length;
    while (!this.stopped && this.active) {
      try {
        const s = ctx.node.status();
        this.progress.done = Math.min(ctx.state.count, total);
        if (ctx.state.count >= total && s.lastApplied >= s.commitIndex) {
          if (ctx.state.count !== total) throw new Error(`the vault holds ${ctx.state.count} records, expected ${total}`);
          await writeFileDurable(join(this.dir, MEMBER_DONE_FILE), `${JSON.stringify({ migrated: 'release-0.1', records: total, at: new Date().toISOString() })}\n`);
          if (existsSync(join(this.dir, MEMBER_PENDING_FILE))) await rm(join(this.dir, MEMBER_PENDING_FILE));
          await fsyncDir(this.dir);
          this.progress = { state: 'done', done: total, total };
          ctx.say(`release 0.1 migration complete on this member: ${total} records`);
          return;
        }
        if (s.role === 'leader' && !s.learner) {
          await importCarried(this.records, {
            state: ctx.state,
            reader: ctx.reader,
            batcher: ctx.batcher,
            keys,
            wait: ctx.wait,
            onProgress: (done) => {
              this.progress.done = done;
              ctx.say(progressLine(done, total));
            },
          });
          continue;
        }
      } catch (e) {
        ctx.warn(`release 0.1 migration: ${(e as Error).message}; retrying`);
        await ctx.wait(500);
      }
      await ctx.wait(100);
    }
  }
}
