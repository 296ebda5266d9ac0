import { existsSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogStorage, MonotonicCounter } from './legacy-storage.js';
import { fsyncDir, writeFileDurable } from '../../node/fs-durable.js';

/**
 * The untrusted host's disk for a single vault member (docs/formats/vault-storage.md):
 * `snapshot.bin` (sealed; its first 8 bytes are the index it covers) and `log.bin` (an 8-byte base
 * index, then frames of u32 length ‖ sealed bytes). Appends are batched into one write + fsync.
 */
export class FileLogStorage implements LogStorage {
  private handle: FileHandle | null = null;

  constructor(private readonly dir: string) {}

  private get logPath() {
    return join(this.dir, 'log.bin');
  }
  private get snapshotPath() {
    return join(this.dir, 'snapshot.bin');
  }

  async load(): Promise<{ snapshot: Uint8Array | null; frames: Uint8Array[] }> {
    const snapshot = existsSync(this.snapshotPath) ? new Uint8Array(await readFile(this.snapshotPath)) : null;
    const snapIndex = snapshot && snapshot.length >= 8 ? Number(new DataView(snapshot.buffer, snapshot.byteOffset).getBigUint64(0)) : 0;
    const frames: Uint8Array[] = [];
    if (existsSync(this.logPath)) {
      const log = new Uint8Array(await readFile(this.logPath));
      if (log.length >= 8) {
        const view = new DataView(log.buffer, log.byteOffset, log.byteLength);
        let index = Number(view.getBigUint64(0));
        let pos = 8;
        while (pos + 4 <= log.length) {
          const n = view.getUint32(pos);
          if (pos + 4 + n > log.length) break; // a torn final write that was never acknowledged
          index++;
          if (index > snapIndex) frames.push(log.slice(pos + 4, pos + 4 + n));
          pos += 4 + n;
        }
      }
    }
    return { snapshot, frames };
  }

  private async logHandle(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    const fresh = !existsSync(this.logPath);
    this.handle = await open(this.logPath, 'a', 0o600);
    if (fresh) {
      await this.handle.write(new Uint8Array(8));
      await this.handle.sync();
      await fsyncDir(this.dir);
    }
    return this.handle;
  }

  async append(frames: Uint8Array[]): Promise<void> {
    let total = 0;
    for (const f of frames) total += 4 + f.length;
    const buf = new Uint8Array(total);
    const view = new DataView(buf.buffer);
    let pos = 0;
    for (const f of frames) {
      view.setUint32(pos, f.length);
      buf.set(f, pos + 4);
      pos += 4 + f.length;
    }
    const h = await this.logHandle();
    await h.write(buf);
    await h.datasync();
  }

  async replaceWithSnapshot(snapshot: Uint8Array): Promise<void> {
    await writeFileDurable(this.snapshotPath, snapshot);
    // Start a new log whose base index is the snapshot's; frames it covers are skipped on load
    // if a crash happens before this point.
    const base = new Uint8Array(8);
    new DataView(base.buffer).setBigUint64(0, new DataView(snapshot.buffer, snapshot.byteOffset).getBigUint64(0));
    await this.close();
    await writeFileDurable(this.logPath, base);
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}

/**
 * The software backend's monotonic counter: an 8-byte file overwritten in place and fsynced.
 * It models the NVRAM counter of a hardware module; a host that rewrites this file too can roll a
 * software member back, which is why production members keep it in hardware (docs/vault.md).
 */
export class FileMonotonicCounter implements MonotonicCounter {
  private value = -1;
  private handle: FileHandle | null = null;

  constructor(private readonly path: string) {}

  async read(): Promise<number> {
    if (this.value >= 0) return this.value;
    this.value = existsSync(this.path) ? Number(new DataView((await readFile(this.path)).buffer).getBigUint64(0)) : 0;
    return this.value;
  }

  async advanceTo(value: number): Promise<void> {
    if (value <= (await this.read())) return;
    if (!this.handle) {
      const fresh = !existsSync(this.path);
      this.handle = await open(this.path, fresh ? 'w+' : 'r+', 0o600);
    }
    const buf = new Uint8Array(8);
    new DataView(buf.buffer).setBigUint64(0, BigInt(value));
    await this.handle.write(buf, 0, 8, 0);
    await this.handle.datasync();
    this.value = value;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}
