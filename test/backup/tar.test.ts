import { describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar';
import { readTar, writeTar, type TarFileInput } from '../../src/client/backup/tar.js';
import { ArchiveGuard } from '../../src/client/backup/tar-guard.js';
import { craftTar, type RawEntry } from './tar-craft.js';

async function bytesOf(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

const files: Record<string, Buffer> = {
  'a.txt': Buffer.from('hello'),
  'sub/b.bin': Buffer.alloc(70_000, 7),
  'sub/deeper/empty': Buffer.alloc(0),
  [`long/${'x'.repeat(120)}/name-é.txt`]: Buffer.from('long and not ascii'),
};

describe('browser tar', () => {
  it('writes archives node-tar extracts, and reads archives node-tar writes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bkv-tar-'));
    try {
      const inputs: TarFileInput[] = Object.entries(files).map(([path, data]) => ({
        path,
        size: data.length,
        mtimeMs: 1_700_000_000_000,
        async *open() {
          for (let i = 0; i < data.length; i += 4096) yield new Uint8Array(data.subarray(i, i + 4096));
        },
      }));
      const archive = await bytesOf(writeTar(inputs));
      const out = join(dir, 'out');
      await mkdir(out);
      await new Promise<void>((resolve, reject) => {
        Readable.from([archive]).pipe(tar.x({ cwd: out, strict: true })).on('finish', resolve).on('error', reject);
      });
      for (const [path, data] of Object.entries(files)) expect(await readFile(join(out, path))).toEqual(data);

      // node-tar's own archive of the same tree, read back entry by entry.
      const theirs = await bytesOf(tar.c({ cwd: out, portable: true }, await readdir(out)) as unknown as AsyncIterable<Uint8Array>);
      const seen: Record<string, Buffer> = {};
      for await (const e of readTar((async function* () { yield new Uint8Array(theirs); })())) if (e.type === 'file') seen[e.path] = await bytesOf(e.body);
      expect(seen).toEqual(files);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses paths that climb out', async () => {
    const evil: TarFileInput = { path: '../evil', size: 0, open: async function* () {} };
    await expect(bytesOf(writeTar([evil]))).rejects.toThrow(/unsafe path/);
  });

  it('reads links and refuses what it cannot read exactly, as BAD_ARCHIVE', async () => {
    const read = async (entries: RawEntry[]) => {
      const out: string[] = [];
      const guard = new ArchiveGuard();
      for await (const e of readTar((async function* () { yield craftTar(entries); })())) {
        guard.admit(e);
        out.push(`${e.type} ${e.path}${e.linkpath ? ` -> ${e.linkpath}` : ''}`);
      }
      return out;
    };
    expect(await read([{ name: 'f', type: '0', data: 'x' }, { name: 'l', type: '2', linkname: '/etc' }, { name: 'h', type: '1', linkname: './f' }])).toEqual([
      'file f',
      'symlink l -> /etc',
      'hardlink h -> f',
    ]);
    for (const entries of [
      [{ name: '/abs', type: '0' }],
      [{ name: 'a/../../b', type: '0', via: 'pax' as const }],
      [{ name: 'l', type: '2', linkname: '/etc' }, { name: 'l/passwd', type: '0' }],
      [{ name: 'f', type: '0' }, { name: 'f', type: '0' }],
      [{ name: 'p', type: '6' }],
      [{ name: 'd', type: '5', data: 'data in a directory entry' }],
    ]) {
      await expect(read(entries), JSON.stringify(entries)).rejects.toMatchObject({ code: 'BAD_ARCHIVE' });
    }
  });
});
