/** A CheckpointStore kept in one JSON file, written atomically. Node only. */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BkvError } from '../shared/errors.js';
import type { CheckpointStore } from '../client/fleet/store.js';
import { writeFileDurable } from '../node/fs-durable.js';

export class FileCheckpointStore implements CheckpointStore {
  constructor(readonly path: string) {}

  private async load(): Promise<Record<string, string>> {
    try {
      const j = JSON.parse(await readFile(this.path, 'utf8')) as unknown;
      if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not an object');
      return j as Record<string, string>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new BkvError('IO', `checkpoint store ${this.path} is unreadable: ${(e as Error).message}`);
    }
  }

  async get(key: string): Promise<string | undefined> {
    const v = (await this.load())[key];
    return typeof v === 'string' ? v : undefined;
  }

  async set(key: string, value: string): Promise<void> {
    const all = await this.load();
    all[key] = value;
    await mkdir(dirname(this.path), { recursive: true });
    await writeFileDurable(this.path, JSON.stringify(all, null, 2) + '\n', 0o644);
  }
}
