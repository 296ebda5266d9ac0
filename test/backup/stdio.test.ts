import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../src/cli/exit-codes.js';
import { readTar } from '../../src/client/backup/tar.js';
import { bytes } from './helpers.js';

/** `bkv backup create -` and `-o -`: real processes, real pipes. */
const BIN = join(process.cwd(), 'bin', 'bkv.js');
const C = 4096;

let dir: string;
const p = (name: string) => join(dir, name);

beforeAll(() => {
  if (!existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'))) {
    spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  }
  dir = mkdtempSync(join(tmpdir(), 'bkv-stdio-'));
  spawnSync(process.execPath, [BIN, 'key', 'new', '--key-file', p('k')]);
  mkdirSync(p('tree/sub'), { recursive: true });
  writeFileSync(p('tree/a.txt'), 'hello');
  writeFileSync(p('tree/sub/b.bin'), bytes(20_000, 5));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function start(args: string[]): ChildProcess & { result: Promise<{ code: number | null; stdout: Buffer; stderr: string }>; out: Buffer[] } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => (stderr += b));
  child.stdin!.on('error', () => {}); // a child that refused before reading closes its end
  const result = new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr })),
  );
  return Object.assign(child, { result, out });
}

function run(args: string[], input: Uint8Array = new Uint8Array(0)) {
  const child = start(args);
  child.stdin!.end(input);
  return child.result;
}

const stdoutSize = (c: { out: Buffer[] }) => c.out.reduce((n, b) => n + b.length, 0);

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('backups through standard input and output', () => {
  it('pipes create - -o - into restore - -o -, byte for byte, and writes no file named -', async () => {
    const data = bytes(3 * 1024 * 1024 + 17, 11);
    const create = start(['backup', 'create', '-', '-o', '-', '--key-file', p('k'), '--chunk-size', '64K']);
    const restore = start(['backup', 'restore', '-', '-o', '-', '--key-file', p('k')]);
    create.stdout!.pipe(restore.stdin!);
    create.stdin!.end(data);
    const [c, r] = await Promise.all([create.result, restore.result]);
    expect([c.code, r.code], c.stderr + r.stderr).toEqual([0, 0]);
    expect(Buffer.compare(r.stdout, Buffer.from(data))).toBe(0);
    expect(c.stderr).toContain('Backed up file standard input to standard output.');
    expect(existsSync(p('-'))).toBe(false);
  });

  it('streams a directory backup out and in: into a directory, or to standard output as its tar archive', async () => {
    const backup = (await run(['backup', 'create', p('tree'), '-o', '-', '--key-file', p('k')])).stdout;
    const intoDir = await run(['backup', 'restore', '-', '-o', p('tree.out'), '--key-file', p('k')], backup);
    expect(intoDir.code, intoDir.stderr).toBe(0);
    expect(readFileSync(p('tree.out/a.txt'), 'utf8')).toBe('hello');
    expect(readFileSync(p('tree.out/sub/b.bin')).equals(readFileSync(p('tree/sub/b.bin')))).toBe(true);
    writeFileSync(p('tree.bkv'), backup);
    const asTar = await run(['backup', 'restore', p('tree.bkv'), '-o', '-', '--key-file', p('k')]);
    expect(asTar.code, asTar.stderr).toBe(0);
    const names: string[] = [];
    for await (const e of readTar((async function* () { yield new Uint8Array(asTar.stdout); })())) names.push(`${e.type} ${e.path}`);
    expect(names.sort()).toEqual(['directory sub', 'file a.txt', 'file sub/b.bin']);
  });

  it('backs up an empty standard input as an 80-byte backup, and restores it', async () => {
    const c = await run(['backup', 'create', '-', '-o', p('empty.bkv'), '--key-file', p('k')]);
    expect(c.code, c.stderr).toBe(0);
    expect(readFileSync(p('empty.bkv')).length).toBe(80);
    const r = await run(['backup', 'restore', '-', '-o', '-', '--key-file', p('k')], readFileSync(p('empty.bkv')));
    expect([r.code, r.stdout.length]).toEqual([0, 0]);
  });

  describe('releases a chunk only once it authenticated', () => {
    const plain = bytes(4 * C + 100, 13);
    let backup: Buffer;
    const piece = (i: number) => 64 + i * (C + 16);

    beforeAll(async () => {
      backup = (await run(['backup', 'create', '-', '-o', '-', '--key-file', p('k'), '--chunk-size', '4K'], plain)).stdout;
      expect(backup.length).toBe(64 + 5 * 16 + plain.length);
    });

    it('holds back a chunk that has not fully arrived, and fails a stream cut there with exit 4', async () => {
      const restore = start(['backup', 'restore', '-', '-o', '-', '--key-file', p('k')]);
      restore.stdin!.write(backup.subarray(0, piece(1) + 2000)); // chunk 0, and half of chunk 1
      await until(() => stdoutSize(restore) >= C);
      await new Promise((r) => setTimeout(r, 300));
      expect(stdoutSize(restore)).toBe(C); // chunk 0 out; nothing of the unauthenticated half
      restore.stdin!.end();
      const r = await restore.result;
      expect(r.code).toBe(EXIT.CORRUPT);
      expect(r.stdout.equals(Buffer.from(plain.subarray(0, C)))).toBe(true);
      // A cut inside a chunk is named TAMPERED on that chunk (docs/formats/backup.md, step 4).
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^bkv: error: .*chunk 1 .*cut short.*; the 4096 bytes written to standard output before this are authenticated but incomplete: discard them$/)]);
    });

    it('fails a stream cut at a chunk boundary (no final chunk) with exit 4, after the chunks before it', async () => {
      const r = await run(['backup', 'restore', '-', '-o', '-', '--key-file', p('k')], backup.subarray(0, piece(3)));
      expect(r.code).toBe(EXIT.CORRUPT);
      expect(r.stderr).toContain('truncated');
      expect(r.stdout.equals(Buffer.from(plain.subarray(0, 2 * C)))).toBe(true); // chunk 2 opens only as final: held back
    });

    it('stops at an altered chunk with exit 4, having written only the chunks before it', async () => {
      const altered = Buffer.from(backup);
      altered[piece(2) + 10] = altered[piece(2) + 10]! ^ 1;
      const r = await run(['backup', 'restore', '-', '-o', '-', '--key-file', p('k')], altered);
      expect(r.code).toBe(EXIT.CORRUPT);
      expect(r.stderr).toContain('chunk 2');
      expect(r.stdout.equals(Buffer.from(plain.subarray(0, 2 * C)))).toBe(true);
    });

    it('refuses bytes appended after the final chunk', async () => {
      const r = await run(['backup', 'restore', '-', '-o', p('appended.out'), '--key-file', p('k')], Buffer.concat([backup, Buffer.from('more')]));
      expect(r.code).toBe(EXIT.CORRUPT);
      expect(existsSync(p('appended.out'))).toBe(false);
    });
  });

  it('reports a reader that went away as an I/O error (exit 5), not a crash', async () => {
    writeFileSync(p('big.bin'), bytes(16 * 1024 * 1024, 17));
    expect((await run(['backup', 'create', p('big.bin'), '-o', p('big.bkv'), '--key-file', p('k')])).code).toBe(0);
    const restore = start(['backup', 'restore', p('big.bkv'), '-o', '-', '--key-file', p('k')]);
    restore.stdin!.end();
    await until(() => stdoutSize(restore) > 0);
    restore.stdout!.destroy();
    const r = await restore.result;
    expect(r.code, r.stderr).toBe(EXIT.IO);
    expect(r.stderr).toMatch(/^bkv: error: cannot write standard output: the reading end was closed/);
  });

  it('refuses keys and passwords on a standard input that carries data, and --json or a printed key on a standard output that does', async () => {
    writeFileSync(p('small.bin'), 'small');
    const cases: Array<[string[], RegExp]> = [
      [['backup', 'create', '-', '-o', p('s1.bkv'), '--password'], /--password-file F/],
      [['backup', 'create', '-', '-o', p('s2.bkv'), '--recovery-key-stdin'], /cannot also carry the recovery key: use --key-file F/],
      [['backup', 'restore', '-', '-o', p('s3.out')], /give the key with --key-file F, or the vault password with --password-file F/],
      [['backup', 'restore', '-', '-o', p('s4.out'), '--password'], /--password-file F/],
      [['backup', 'create', p('small.bin'), '-o', '-', '--key-file', p('k'), '--json'], /--json cannot print there/],
      [['backup', 'create', p('small.bin'), '-o', '-', '--recovery-key'], /use --key-file F/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args, Buffer.from('data on standard input\n'));
      expect(r.code, args.join(' ')).toBe(EXIT.USAGE);
      if (args.includes('--json')) expect(JSON.parse(r.stdout.toString()).error.message).toMatch(message); // refused before any data
      else expect([r.stderr, r.stdout.length], args.join(' ')).toEqual([expect.stringMatching(message), 0]);
    }
    expect(readdirSync(dir).filter((f) => /^s\d|-$|bkv-tmp/.test(f))).toEqual([]);
  });
});
