import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../src/cli/exit-codes.js';
import { bytes } from './helpers.js';

const BIN = join(process.cwd(), 'bin', 'bkv.js');

function bkv(args: string[], input?: string, timeout = 60_000) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', input: input ?? '', timeout });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
const p = (name: string) => join(dir, name);
/** Files in the work dir, to prove no temporary or partial output was left. */
const leftovers = () => readdirSync(dir).filter((f) => f.includes('.bkv-tmp-'));

beforeAll(() => {
  if (!existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'))) {
    spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  }
  dir = mkdtempSync(join(tmpdir(), 'bkv-cli-test-'));
  writeFileSync(p('data.bin'), bytes(50_000, 3));
  mkdirSync(p('tree/sub'), { recursive: true });
  writeFileSync(p('tree/a.json'), '{"hello":"world"}');
  writeFileSync(p('tree/sub/b.txt'), bytes(10_000, 4));
  writeFileSync(p('tree/empty.txt'), '');
});

afterAll(() => {
  if (dir) {
    if (existsSync(p('ro'))) chmodSync(p('ro'), 0o700);
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('bkv CLI', () => {
  it('key new prints a recovery key, or writes a key file', () => {
    const r = bkv(['key', 'new']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^([0-9A-Z]{4}-){15}[0-9A-Z]{4}$/);
    expect(bkv(['key', 'new', '--key-file', p('k1')]).code).toBe(0);
    expect(bkv(['key', 'new', '--key-file', p('k1')]).code).toBe(EXIT.IO); // no overwrite without --force
    expect(bkv(['key', 'new', '--key-file', p('k1'), '--force']).code).toBe(0);
  });

  it('backs up and restores a file with --recovery-key and --recovery-key-stdin', () => {
    const c = bkv(['backup', 'create', p('data.bin'), '-o', p('data.bkv'), '--recovery-key', '--chunk-size', '4K', '--json']);
    expect(c.code).toBe(0);
    const { recoveryKey } = JSON.parse(c.stdout);
    const r = bkv(['backup', 'restore', p('data.bkv'), '-o', p('data.out'), '--recovery-key-stdin'], recoveryKey.toLowerCase());
    expect(r.code).toBe(0);
    expect(readFileSync(p('data.out')).equals(readFileSync(p('data.bin')))).toBe(true);
    expect(leftovers()).toEqual([]);
  });

  it('backs up and restores a directory with a key file', () => {
    expect(bkv(['backup', 'create', p('tree'), '-o', p('tree.bkv'), '--key-file', p('k2')]).code).toBe(0);
    expect(existsSync(p('k2'))).toBe(true);
    expect(bkv(['backup', 'restore', p('tree.bkv'), '-o', p('tree.out'), '--key-file', p('k2')]).code).toBe(0);
    expect(readFileSync(p('tree.out/a.json'), 'utf8')).toBe('{"hello":"world"}');
    expect(readFileSync(p('tree.out/sub/b.txt')).equals(readFileSync(p('tree/sub/b.txt')))).toBe(true);
    expect(readFileSync(p('tree.out/empty.txt')).length).toBe(0);
    // refuses to overwrite, then overwrites with --force
    expect(bkv(['backup', 'restore', p('tree.bkv'), '-o', p('tree.out'), '--key-file', p('k2')]).code).toBe(EXIT.IO);
    expect(bkv(['backup', 'restore', p('tree.bkv'), '-o', p('tree.out'), '--key-file', p('k2'), '--force']).code).toBe(0);
    expect(leftovers()).toEqual([]);
  });

  it('does not archive a backup written inside the directory it backs up', () => {
    expect(bkv(['backup', 'create', p('tree'), '-o', p('tree/self.bkv'), '--key-file', p('k2')]).code).toBe(0);
    expect(bkv(['backup', 'restore', p('tree/self.bkv'), '-o', p('self.out'), '--key-file', p('k2')]).code).toBe(0);
    expect(readdirSync(p('self.out')).sort()).toEqual(['a.json', 'empty.txt', 'sub']);
  });

  it('backs up and restores a large file on worker threads, and refuses it altered', () => {
    // 9 MiB: above the parallel path's threshold, so the compiled worker threads do the work.
    writeFileSync(p('large.bin'), bytes(9 * 1024 * 1024 + 5, 7));
    expect(bkv(['backup', 'create', p('large.bin'), '-o', p('large.bkv'), '--key-file', p('k4')]).code).toBe(0);
    expect(bkv(['backup', 'restore', p('large.bkv'), '-o', p('large.out'), '--key-file', p('k4')]).code).toBe(0);
    expect(readFileSync(p('large.out')).equals(readFileSync(p('large.bin')))).toBe(true);
    const backup = readFileSync(p('large.bkv'));
    const at = 64 + 5 * (1024 * 1024 + 16) + 100;
    backup[at] = backup[at]! ^ 1;
    writeFileSync(p('large-bad.bkv'), backup);
    const r = bkv(['backup', 'restore', p('large-bad.bkv'), '-o', p('large-bad.out'), '--key-file', p('k4'), '--json']);
    expect(r.code).toBe(EXIT.CORRUPT);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'TAMPERED', chunk: 5 });
    expect(existsSync(p('large-bad.out'))).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it('runs backup and key commands from the bundle, which agrees with the compiled modules', () => {
    // The build makes the bundle; bin/bkv.js uses it for these two groups (BKV_CLI_BUNDLE=0: not).
    expect(existsSync(join(process.cwd(), 'dist', 'bundle', 'backup-entry.js'))).toBe(true);
    const run = (args: string[], bundle: boolean) => {
      const env = { ...process.env, BKV_CLI_BUNDLE: bundle ? '1' : '0' };
      const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env, timeout: 60_000 });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    for (const args of [['backup', '--help'], ['backup', 'create', '--help'], ['key', 'new', '--help'], ['backup', 'restore']]) {
      const [a, b] = [run(args, true), run(args, false)];
      expect({ ...a }, args.join(' ')).toEqual({ ...b });
    }
    // Across the two, both ways, through the worker threads (9 MiB).
    writeFileSync(p('both.bin'), bytes(9 * 1024 * 1024 + 3, 9));
    expect(run(['key', 'new', '--key-file', p('k5')], true).code).toBe(0);
    for (const [first, second] of [[true, false], [false, true]] as const) {
      rmSync(p('both.bkv'), { force: true });
      rmSync(p('both.out'), { force: true });
      expect(run(['backup', 'create', p('both.bin'), '-o', p('both.bkv'), '--key-file', p('k5')], first).code).toBe(0);
      expect(run(['backup', 'restore', p('both.bkv'), '-o', p('both.out'), '--key-file', p('k5')], second).code).toBe(0);
      expect(readFileSync(p('both.out')).equals(readFileSync(p('both.bin')))).toBe(true);
    }
  });

  it('gives distinct exit codes and leaves no output on bad input', () => {
    bkv(['backup', 'create', p('data.bin'), '-o', p('d2.bkv'), '--key-file', p('k3'), '--chunk-size', '4K']);
    bkv(['key', 'new', '--key-file', p('other')]);
    const good = readFileSync(p('d2.bkv'));
    const cases: Array<[string, Buffer, string, number, string]> = [
      ['wrong key', good, p('other'), EXIT.WRONG_KEY, 'WRONG_KEY'],
      ['truncated', good.subarray(0, 64 + 4112 * 3), p('k3'), EXIT.CORRUPT, 'TRUNCATED'],
      ['flipped bit', Buffer.from(good.map((b, i) => (i === 9000 ? b ^ 1 : b))), p('k3'), EXIT.CORRUPT, 'TAMPERED'],
      ['appended', Buffer.concat([good, Buffer.from('xyz')]), p('k3'), EXIT.CORRUPT, 'TRAILING_DATA'],
      ['version', Buffer.from(good.map((b, i) => (i === 8 ? 9 : b))), p('k3'), EXIT.CORRUPT, 'UNSUPPORTED_VERSION'],
      ['not a backup', Buffer.from('plain text, not a backup'), p('k3'), EXIT.CORRUPT, 'NOT_A_BACKUP'],
    ];
    for (const [name, content, keyFile, exit, code] of cases) {
      writeFileSync(p('bad.bkv'), content);
      const r = bkv(['backup', 'restore', p('bad.bkv'), '-o', p('bad.out'), '--key-file', keyFile, '--json']);
      expect(r.code, name).toBe(exit);
      expect(JSON.parse(r.stdout).error.code, name).toBe(code);
      expect(existsSync(p('bad.out')), name).toBe(false);
      if (name === 'flipped bit') {
        const human = bkv(['backup', 'restore', p('bad.bkv'), '-o', p('bad.out'), '--key-file', keyFile]);
        expect(human.stderr.trim().split('\n'), name).toHaveLength(1);
      }
    }
    expect(leftovers()).toEqual([]);
  });

  it('reports usage errors, a directory in place of a file, and an unwritable output', () => {
    expect(bkv(['backup', 'create', p('data.bin'), '-o', p('x.bkv')]).code).toBe(EXIT.USAGE); // no key option
    expect(bkv(['backup', 'restore']).code).toBe(EXIT.USAGE);
    expect(bkv(['backup', 'create', p('data.bin'), '-o', p('x.bkv'), '--recovery-key', '--chunk-size', '1000']).code).toBe(EXIT.USAGE);
    expect(bkv(['backup', 'restore', p('data.bkv'), '-o', p('y')]).code).toBe(EXIT.USAGE); // no key, not a TTY
    const asDir = bkv(['backup', 'restore', p('tree'), '-o', p('y'), '--key-file', p('k2')]);
    expect(asDir.code).toBe(EXIT.IO);
    expect(asDir.stderr).toContain('is a directory');
    mkdirSync(p('ro'));
    chmodSync(p('ro'), 0o500);
    const ro = bkv(['backup', 'restore', p('d2.bkv'), '-o', p('ro/out'), '--key-file', p('k3')]);
    if (process.getuid?.() !== 0) expect(ro.code).toBe(EXIT.IO); // root can write anywhere
    const underFile = bkv(['backup', 'restore', p('d2.bkv'), '-o', p('data.bin/out'), '--key-file', p('k3')]);
    expect(underFile.code).toBe(EXIT.IO); // unwritable for everyone: the parent is a file
    expect(underFile.stderr.trim().split('\n')).toHaveLength(1);
    expect(bkv(['backup', 'create', p('missing'), '-o', p('m.bkv'), '--recovery-key']).code).toBe(EXIT.IO);
    expect(bkv(['backup', 'restore', p('d2.bkv'), '-o', p('nodir/out'), '--key-file', p('k3')]).code).toBe(EXIT.IO);
    const typo = bkv(['backup', 'restore', p('d2.bkv'), '-o', p('z'), '--recovery-key-stdin'], 'AAAA-BBBB');
    expect(typo.code).toBe(EXIT.WRONG_KEY);
  });

  it('has --help everywhere', () => {
    for (const args of [['--help'], ['backup', '--help'], ['backup', 'create', '--help'], ['backup', 'restore', '--help'], ['key', 'new', '--help'], ['demo', '--help']]) {
      const r = bkv(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).toContain('Usage');
    }
  });

  // The demo grows as features add steps; give it room on a busy machine.
  it('runs the demo', { timeout: 200_000 }, () => {
    const r = bkv(['demo'], '', 180_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Demo complete');
  });
});
