import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preallocate, preallocationAvailable } from '../../src/node/preallocate.js';

/** BKV_NATIVE=0 turns the addons off (machines without a C compiler): then nothing is reserved. */
const off = process.env.BKV_NATIVE === '0';

describe('output preallocation', () => {
  it('is built, and reserves the blocks of a file of known size', () => {
    expect(preallocationAvailable()).toBe(!off);
    const dir = mkdtempSync(join(tmpdir(), 'bkv-prealloc-'));
    try {
      const fd = openSync(join(dir, 'out'), 'w');
      try {
        const length = 3 * 1024 * 1024 + 5;
        const reserved = preallocate(fd, length);
        const st = fstatSync(fd);
        expect(st.size).toBe(off ? 0 : length);
        if (off) expect(reserved).toBe(false);
        // Where the file system can reserve blocks (ext4, xfs, tmpfs, btrfs), they are there now.
        if (reserved) expect(st.blocks * 512).toBeGreaterThanOrEqual(length);
        expect(preallocate(fd, 0)).toBe(false);
      } finally {
        closeSync(fd);
      }
      // Not a regular file: nothing to reserve, and not an error (the writes decide).
      const devNull = openSync('/dev/null', 'w');
      try {
        expect(preallocate(devNull, 1024)).toBe(false);
      } finally {
        closeSync(devNull);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails at once, with a code, when the file cannot be that large (file-size limit)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bkv-prealloc-'));
    try {
      const script = `
        import { openSync } from 'node:fs';
        import { preallocate } from ${JSON.stringify(join(process.cwd(), 'src/node/preallocate.ts'))};
        const fd = openSync(${JSON.stringify(join(dir, 'big'))}, 'w');
        try { console.log(preallocate(fd, 1024 * 1024) ? 'reserved' : 'not reserved'); } catch (e) { console.log(e.code); }
      `;
      writeFileSync(join(dir, 'p.mts'), script);
      const r = spawnSync('sh', ['-c', `ulimit -f 64 && exec "${process.execPath}" --import tsx "${join(dir, 'p.mts')}"`], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(off ? 'not reserved' : 'EFBIG');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses arguments that are not a descriptor and a length', async () => {
    if (off) return expect(preallocationAvailable()).toBe(false);
    const { createRequire } = await import('node:module');
    const addon = createRequire(import.meta.url)('../../native/build/Release/bkv_fallocate.node') as {
      preallocate(fd: unknown, length: unknown): number;
    };
    expect(() => addon.preallocate('3', 10)).toThrow(TypeError);
    expect(() => (addon.preallocate as (fd: unknown) => number)(3)).toThrow(TypeError);
    expect(() => addon.preallocate(-1, 10)).toThrow(RangeError);
    expect(addon.preallocate(987654, 10)).toBe(9); // EBADF: reported as a value, never a crash
  });
});
