import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../src/cli/exit-codes.js';
import { backupLayout } from '../../src/client/backup/layout.js';
import { bytes } from './helpers.js';

const BIN = join(process.cwd(), 'bin', 'bkv.js');

function bkv(args: string[], input = '') {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', input, timeout: 60_000, cwd: dir });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// The worked example of docs/formats/backup.md: K = 00 01 … 1f, C = 4096, payload "hello, backup".
const HELLO =
  '424b564241434b0a0100000000001000843a09137b38732f5343ec5d93a14b9d404142434445464748494a4b4c4d4e4f' +
  '505152535455565758595a5b5c5d5e5fb268783cefd7ca9ab43a8cf6a82aa91a2bcf59c36e68a74e654723ac27';
const HELLO_KEY = '000G-40R4-0M30-E209-185G-R38E-1W81-24GK-2GAH-C5RR-34D1-P70X-3RFG-J4PS-SCD1-Y5JT';

let dir: string;
const p = (name: string) => join(dir, name);
const listing = () => readdirSync(dir).sort();
function variant(name: string, edit: (b: Buffer) => Buffer): string {
  writeFileSync(p(name), edit(Buffer.from(readFileSync(p('data.bkv')))));
  return name;
}

beforeAll(() => {
  if (!existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'))) spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  dir = mkdtempSync(join(tmpdir(), 'bkv-inspect-test-'));
  writeFileSync(p('hello.bkv'), Buffer.from(HELLO, 'hex'));
  writeFileSync(p('data.bin'), bytes(20_000, 5));
  const c = bkv(['backup', 'create', 'data.bin', '-o', 'data.bkv', '--key-file', 'k.key', '--chunk-size', '4K']);
  expect(c.code).toBe(0);
  expect(bkv(['key', 'new', '--key-file', 'other.key']).code).toBe(0);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('backup layout from a size', () => {
  it('follows 64 + payload + 16 × chunks, and rejects sizes no backup has', () => {
    expect(backupLayout(93, 4096)).toEqual({ chunks: 1, payloadBytes: 13 });
    expect(backupLayout(80, 4096)).toEqual({ chunks: 1, payloadBytes: 0 }); // empty payload
    expect(backupLayout(64 + 4112, 4096)).toEqual({ chunks: 1, payloadBytes: 4096 });
    expect(backupLayout(64 + 4112 + 17, 4096)).toEqual({ chunks: 2, payloadBytes: 4097 });
    expect(backupLayout(64 + 4112 + 16, 4096)).toBeNull(); // an empty final chunk after data
    expect(backupLayout(64 + 4112 + 5, 4096)).toBeNull(); // cut inside a tag
    expect(backupLayout(70, 4096)).toBeNull();
    expect(backupLayout(0, 4096)).toBeNull();
  });
});

describe('bkv backup inspect', () => {
  it("shows the worked example's version, kind, chunk size, key id and size, with no key", () => {
    const r = bkv(['backup', 'inspect', 'hello.bkv', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: true, file: 'hello.bkv', version: 1, kind: 'file', chunkSize: 4096,
      keyId: '843a09137b38732f5343ec5d93a14b9d', size: 93, chunks: 1, payloadBytes: 13, verified: false,
    });
    const text = bkv(['backup', 'inspect', 'hello.bkv']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/version 1/);
    expect(text.stdout).toMatch(/Chunk size +4 KiB \(4096 bytes\)/);
    expect(text.stdout).toMatch(/Key id +843a09137b38732f5343ec5d93a14b9d/);
    expect(text.stdout).toMatch(/93 bytes: 64-byte header, 1 chunk, 13 bytes of payload/);
    expect(text.stdout).toMatch(/Not verified/);
  });

  it('counts the chunks of a larger backup and says when its size fits no backup', () => {
    const r = JSON.parse(bkv(['backup', 'inspect', 'data.bkv', '--json']).stdout);
    expect(r).toMatchObject({ chunks: 5, payloadBytes: 20_000, size: 64 + 20_000 + 5 * 16 });
    // Cut inside a chunk's tag: no backup is 64 + 3 × 4112 + 5 bytes long. (A cut elsewhere can
    // give a size that fits; only verify tells.)
    const cut = variant('cut.bkv', (b) => b.subarray(0, 64 + 3 * 4112 + 5));
    const c = bkv(['backup', 'inspect', cut, '--json']);
    expect(c.code).toBe(0);
    expect(JSON.parse(c.stdout)).toMatchObject({ chunks: null, payloadBytes: null, verified: false });
  });

  it('handles header versions explicitly: version 1 is read, any other is refused as unsupported', () => {
    for (const v of [0, 2, 255]) {
      const f = variant(`v${v}.bkv`, (b) => {
        b[8] = v;
        return b;
      });
      for (const cmd of [['inspect', f], ['verify', f, '--key-file', 'k.key']]) {
        const r = bkv(['backup', ...cmd, '--json']);
        expect(r.code).toBe(EXIT.CORRUPT);
        expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'UNSUPPORTED_VERSION', version: v });
      }
    }
  });

  it('refuses what is not a backup, and a missing file', () => {
    expect(bkv(['backup', 'inspect', 'data.bin']).code).toBe(EXIT.CORRUPT);
    expect(bkv(['backup', 'inspect', 'missing.bkv']).code).toBe(EXIT.IO);
  });
});

describe('bkv backup verify', () => {
  it('authenticates every chunk and writes nothing', () => {
    const before = listing();
    const r = bkv(['backup', 'verify', 'data.bkv', '--key-file', 'k.key', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, verified: true, chunks: 5, payloadBytes: 20_000, chunkSize: 4096 });
    const hello = bkv(['backup', 'verify', 'hello.bkv', '--recovery-key-stdin'], HELLO_KEY);
    expect(hello.code).toBe(0);
    expect(hello.stderr).toMatch(/every chunk authenticated \(1 chunk, 13 bytes of payload, key id 843a09137b38732f5343ec5d93a14b9d\)/);
    expect(listing()).toEqual(before);
  });

  it('rejects a tampered, truncated, reordered or extended backup with exit code 4, writing nothing', () => {
    const piece = 4096 + 16;
    const files = {
      flipped: variant('flipped.bkv', (b) => {
        b[64 + 2 * piece + 100]! ^= 1; // one bit of chunk 2
        return b;
      }),
      truncated: variant('truncated.bkv', (b) => b.subarray(0, 64 + 3 * piece)),
      swapped: variant('swapped.bkv', (b) => {
        const c = Buffer.from(b);
        b.copy(c, 64 + piece, 64 + 2 * piece, 64 + 3 * piece);
        b.copy(c, 64 + 2 * piece, 64 + piece, 64 + 2 * piece);
        return c;
      }),
      extended: variant('extended.bkv', (b) => Buffer.concat([b, Buffer.from('more')])),
    };
    const expected = { flipped: 'TAMPERED', truncated: 'TRUNCATED', swapped: 'TAMPERED', extended: 'TRAILING_DATA' };
    const before = listing();
    for (const [name, f] of Object.entries(files)) {
      const r = bkv(['backup', 'verify', f, '--key-file', 'k.key', '--json']);
      expect(r.code, name).toBe(EXIT.CORRUPT);
      expect(JSON.parse(r.stdout).error.code, name).toBe(expected[name as keyof typeof expected]);
    }
    const text = bkv(['backup', 'verify', files.flipped, '--key-file', 'k.key']);
    expect(text.stderr).toMatch(/chunk 2 failed authentication/);
    expect(text.stdout).toBe('');
    expect(listing()).toEqual(before);
  });

  it('names both key ids for a wrong key (exit 3), and needs a key', () => {
    const r = bkv(['backup', 'verify', 'hello.bkv', '--key-file', 'other.key', '--json']);
    expect(r.code).toBe(EXIT.WRONG_KEY);
    const err = JSON.parse(r.stdout).error;
    expect(err).toMatchObject({ code: 'WRONG_KEY', keyId: '843a09137b38732f5343ec5d93a14b9d' });
    expect(err.givenKeyId).toMatch(/^[0-9a-f]{32}$/);
    expect(err.message).toContain('843a09137b38732f5343ec5d93a14b9d');
    expect(bkv(['backup', 'verify', 'hello.bkv']).code).toBe(EXIT.USAGE);
    expect(bkv(['backup', 'verify', 'hello.bkv', '--key-file', 'k.key', '--password']).code).toBe(EXIT.USAGE);
  });
});

describe('the key id, as docs/formats/backup.md spells it out', () => {
  it('is HMAC-SHA256(HMAC-SHA256(32 zero bytes, K), info ‖ 0x01) cut to 16 bytes, the header bytes 16–31', async () => {
    const { createHmac } = await import('node:crypto');
    const { formatKeyId, keyFingerprint } = await import('../../src/client/keys/backup-key.js');
    const k = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const prk = createHmac('sha256', Buffer.alloc(32)).update(k).digest();
    const okm = createHmac('sha256', prk).update(Buffer.concat([Buffer.from('bkv key fingerprint v1', 'ascii'), Buffer.of(1)])).digest();
    expect(okm.subarray(0, 16).toString('hex')).toBe(HELLO.slice(32, 64));
    expect(formatKeyId(keyFingerprint(k))).toBe('843a09137b38732f5343ec5d93a14b9d');
  });
});
