import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../src/cli/exit-codes.js';
import { generateBackupKey } from '../../src/client/keys/backup-key.js';
import { writeKeyFile } from '../../src/node/key-file.js';
import { encrypt } from './helpers.js';
import { craftTar, type RawEntry } from './tar-craft.js';

/**
 * Validly encrypted backups whose directory archive is hostile: whoever holds the key (or wrote
 * the archive with another tool) tries to write outside the output, through a link, or over an
 * entry already written. Each must be refused with exit 9 (BAD_ARCHIVE), however the archive was
 * built and in whatever order its entries come, and leave nothing beside the output.
 */
const BIN = join(process.cwd(), 'bin', 'bkv.js');

let root: string;
let outside: string;
let keyFile: string;
let key: Uint8Array;
let n = 0;

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist', 'cli', 'main.js'))) {
    spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  }
  root = mkdtempSync(join(tmpdir(), 'bkv-hostile-'));
  outside = join(root, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'untouched');
  keyFile = join(root, 'k');
  key = generateBackupKey();
  await writeKeyFile(keyFile, key, false);
});

afterAll(() => {
  if (!root) return;
  spawnSync('chmod', ['-R', 'u+rwx', root]); // a restored read-only directory
  rmSync(root, { recursive: true, force: true });
});

/** Encrypts `tar` as a directory backup in a directory of its own and restores it there. */
async function restore(tar: Uint8Array, json = true) {
  const dir = join(root, `case-${++n}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'in.bkv'), await encrypt(tar, key, { kind: 'tar', chunkSize: 4096 }));
  const args = ['backup', 'restore', join(dir, 'in.bkv'), '-o', join(dir, 'restored'), '--key-file', keyFile, ...(json ? ['--json'] : [])];
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { dir, code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const secretStillAlone = () => {
  expect(readdirSync(outside)).toEqual(['secret']);
  expect(readFileSync(join(outside, 'secret'), 'utf8')).toBe('untouched');
};

const file = (name: string, via?: RawEntry['via']): RawEntry => ({ name, type: '0', data: 'pwned', ...(via ? { via } : {}) });
const symlink = (name: string, target: string, via?: RawEntry['via']): RawEntry => ({ name, type: '2', linkname: target, ...(via ? { via } : {}) });
const hardlink = (name: string, target: string): RawEntry => ({ name, type: '1', linkname: target });
const dir = (name: string): RawEntry => ({ name, type: '5' });

describe('restoring a hostile directory archive', () => {
  const cases: Array<[string, () => RawEntry[]]> = [
    ['an absolute path, then a symlink', () => [file(join(outside, 'abs.txt')), symlink('lnk', outside)]],
    ['a symlink, then an absolute path', () => [symlink('lnk', outside), file(join(outside, 'abs.txt'))]],
    ['an absolute path in a pax header', () => [file('ok.txt'), file(join(outside, 'abs.txt'), 'pax')]],
    ['an absolute path in the ustar prefix', () => [file(join(outside, 'abs.txt'), 'prefix')]],
    ['a .. path', () => [file('../escape.txt')]],
    ['a .. path inside a directory', () => [dir('a/'), file('a/../../escape.txt')]],
    ['a .. path in a GNU long name', () => [file('ok.txt'), file(`${'d/'.repeat(60)}../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../escape.txt`, 'gnu')]],
    ['a symlink, then a file through it', () => [symlink('lnk', outside), file('lnk/evil.txt')]],
    ['a symlink, then a file through it, named in pax and GNU headers', () => [symlink('lnk', outside, 'pax'), file('lnk/evil.txt', 'gnu')]],
    ['a symlink, then a directory and a file through it', () => [symlink('lnk', outside), dir('lnk/sub/'), file('lnk/sub/evil.txt')]],
    ['a relative symlink out, then a file through it', () => [dir('a/'), symlink('a/up', '../../outside'), file('a/up/evil.txt')]],
    ['a symlink, then a file of the same name', () => [symlink('lnk', join(outside, 'secret')), file('lnk')]],
    ['a file, then a symlink of the same name', () => [file('f.txt'), symlink('f.txt', join(outside, 'secret'))]],
    ['the same file twice', () => [file('a.txt'), file('a.txt')]],
    ['a file, then a directory of the same name', () => [file('a'), dir('a/')]],
    ['a file, then a file under it', () => [file('a'), file('a/b')]],
    ['a hard link to an absolute path, then a file of its name', () => [hardlink('h', join(outside, 'secret')), file('h')]],
    ['a hard link climbing out with ..', () => [hardlink('h', '../outside/secret')]],
    ['a hard link to a file that comes later', () => [hardlink('h', 'later.txt'), file('later.txt')]],
    ['a hard link to a symlink', () => [symlink('lnk', join(outside, 'secret')), hardlink('h', 'lnk')]],
    ['a hard link to a directory', () => [dir('d/'), hardlink('h', 'd')]],
    ['a FIFO', () => [file('ok.txt'), { name: 'fifo', type: '6' }]],
    ['a device', () => [{ name: 'dev', type: '3' }]],
    ['a name too long for the file system', () => [file('x'.repeat(300), 'pax')]],
  ];

  for (const [name, entries] of cases) {
    it(`refuses ${name} with exit 9 and leaves nothing`, async () => {
      const r = await restore(craftTar(entries()));
      expect(r.code, r.stderr).toBe(EXIT.BAD_ARCHIVE);
      expect(JSON.parse(r.stdout).error.code).toBe('BAD_ARCHIVE');
      expect(readdirSync(r.dir)).toEqual(['in.bkv']); // no output, no .restored.bkv-tmp-*
      expect(readdirSync(root).sort()).toEqual([...Array(n).keys()].map((i) => `case-${i + 1}`).concat(['k', 'outside']).sort());
      secretStillAlone();
    });
  }

  it('refuses the same archive the same way every time, in one line', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await restore(craftTar([file(join(outside, 'abs.txt')), symlink('lnk', outside)]), false);
      expect(r.code).toBe(EXIT.BAD_ARCHIVE);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^bkv: error: unsafe archive: the path ".*abs\.txt" is absolute$/)]);
      expect(readdirSync(r.dir)).toEqual(['in.bkv']);
    }
    secretStillAlone();
  });

  it('refuses an archive cut short inside an entry, or with a bad header checksum', async () => {
    const whole = craftTar([file('a.txt'), file('b.txt')]);
    const broken = whole.slice();
    broken[0] = broken[0]! ^ 1;
    for (const tar of [whole.subarray(0, 512 + 100), whole.subarray(0, 512 * 4), broken]) {
      const r = await restore(tar);
      expect(r.code, r.stdout).toBe(EXIT.BAD_ARCHIVE);
      expect(readdirSync(r.dir)).toEqual(['in.bkv']);
    }
  });

  it('restores links, modes and a root entry that stay inside, and ignores bytes after the end', async () => {
    const tar = craftTar(
      [
        dir('./'),
        dir('d/'),
        { name: 'd/run.sh', type: '0', data: '#!/bin/sh\n', mode: 0o755 },
        symlink('d/rel', 'run.sh'),
        symlink('abs', join(outside, 'secret')),
        hardlink('hard', 'd/run.sh'),
        dir('empty/'),
        file(`${'long/'.repeat(30)}name.txt`, 'pax'),
        { name: 'ro/', type: '5', mode: 0o555 },
        file('ro/inside.txt'),
      ],
      { after: new TextEncoder().encode('junk after the end-of-archive blocks') },
    );
    const r = await restore(tar);
    expect(r.code, r.stdout).toBe(0);
    const out = join(r.dir, 'restored');
    expect(readdirSync(out).sort()).toEqual(['abs', 'd', 'empty', 'hard', 'long', 'ro']);
    expect(lstatSync(join(out, 'ro')).mode & 0o777).toBe(0o555); // applied after its contents
    expect(readFileSync(join(out, 'ro/inside.txt'), 'utf8')).toBe('pwned');
    expect(readFileSync(join(out, 'd/run.sh'), 'utf8')).toBe('#!/bin/sh\n');
    expect(lstatSync(join(out, 'd/run.sh')).mode & 0o100).toBe(0o100);
    expect(readlinkSync(join(out, 'd/rel'))).toBe('run.sh');
    expect(readlinkSync(join(out, 'abs'))).toBe(join(outside, 'secret'));
    expect(lstatSync(join(out, 'hard')).ino).toBe(lstatSync(join(out, 'd/run.sh')).ino);
    expect(readFileSync(join(out, `${'long/'.repeat(30)}name.txt`), 'utf8')).toBe('pwned');
    expect(readdirSync(r.dir).sort()).toEqual(['in.bkv', 'restored']);
    secretStillAlone();
  });
});
