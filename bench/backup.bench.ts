/**
 * Backup format throughput, file to file through the real CLI (`node bin/bkv.js backup ...`) and
 * through the library functions it calls (bench/backup-worker.mjs: as the CLI, and with the
 * library's defaults), against `openssl speed -evp aes-256-gcm` (one core, no I/O: the ceiling)
 * and `age` on the same file.
 * Every case runs once per round, in turn, so that the machine's drift meets all of them alike.
 * Options: --size-mb N (default 1024), --runs N rounds (default 3; the best run of each case
 * counts, and its worst peak RSS), --warmup N (default 1: untimed rounds first; on a VM, the first
 * runs after the input is made also pay for memory the host had not yet given the guest).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const sizeMiB = arg('size-mb', 1024);
const runs = arg('runs', 3);
const warmup = arg('warmup', 1);
const bytes = sizeMiB * 1024 * 1024;
const MB = (b: number, s: number) => b / 1e6 / s;
const hasTime = existsSync('/usr/bin/time');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bkv-bench-'));
const f = (n: string) => join(dir, n);

interface Run {
  seconds: number;
  maxRssKb: number | null;
}

/** One run of bench/backup-worker.mjs: the library code path with its own timing. */
function runLibrary(mode: 'create' | 'restore', input: string, output: string, key: string, how = ''): Run {
  rmSync(output, { force: true, recursive: true });
  execFileSync('sync');
  const out = execFileSync(process.execPath, [join(here, 'backup-worker.mjs'), mode, input, output, key, how], { encoding: 'utf8' });
  return JSON.parse(out) as Run;
}

/** One run of a command from a synced, output-free start: wall time and peak RSS. */
function runCommand(cmd: string, args: string[], output: string): Run {
  rmSync(output, { force: true, recursive: true });
  execFileSync('sync');
  const timeFile = f('time.txt');
  const t0 = performance.now();
  const r = hasTime
    ? spawnSync('/usr/bin/time', ['-f', '%M', '-o', timeFile, cmd, ...args], { stdio: ['ignore', 'ignore', 'inherit'] })
    : spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
  return { seconds, maxRssKb: hasTime ? Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop()) : null };
}

/**
 * Runs every case once per round, `warmup` untimed rounds then `runs` timed ones, in the given
 * order (a restore after the create that makes its input): each case meets the same drift of
 * this machine as the others. Best time and worst peak RSS per case.
 */
interface Case {
  name: string;
  once: () => Run;
  /** Checks the output (in the first round only). */
  check?: () => Promise<void>;
  /** Output to delete after each run (untimed), so that the page cache holds only what is read later. */
  scratch?: string;
}

async function runRounds(cases: Case[]): Promise<Map<string, Run>> {
  const result = new Map<string, Run>();
  for (let round = -warmup; round < runs; round++) {
    process.stdout.write(round < 0 ? 'warm-up round\n' : `round ${round + 1} of ${runs}\n`);
    for (const { name, once, check, scratch } of cases) {
      const r = once();
      if (round === -warmup) await check?.();
      if (scratch) rmSync(scratch, { force: true, recursive: true });
      if (round < 0) continue;
      const prev = result.get(name);
      result.set(name, {
        seconds: Math.min(prev?.seconds ?? Infinity, r.seconds),
        maxRssKb: r.maxRssKb === null ? (prev?.maxRssKb ?? null) : Math.max(prev?.maxRssKb ?? 0, r.maxRssKb),
      });
    }
  }
  return result;
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

function opensslMBps(): number | null {
  if (!has('openssl')) return null;
  const out = execFileSync('openssl', ['speed', '-evp', 'aes-256-gcm', '-bytes', '16384', '-seconds', '3'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const m = /aes-256-gcm\s+([\d.]+)k\s*$/im.exec(out.trim());
  return m ? (Number(m[1]) * 1000) / 1e6 : null;
}

/**
 * AES-256-GCM in memory on one core, 256 KiB messages (the parallel path's slices): in place
 * through the addon, and through node:crypto's update (a fresh output per call). MB/s, or null
 * for the addon when it is not built.
 */
async function aesInMemory(): Promise<{ addon: number | null; node: number }> {
  const { inPlaceGcm } = await import('../dist/node/native-aes-gcm.js');
  const { createCipheriv } = await import('node:crypto');
  const slice = 256 * 1024;
  const total = 1024 * 1024 * 1024;
  const data = randomFillSync(Buffer.allocUnsafe(slice + 16));
  const key = randomFillSync(Buffer.alloc(32));
  const nonce = Buffer.alloc(12);
  const aad = Buffer.alloc(64);
  const time = (once: () => void) => {
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      for (let done = 0; done < total; done += slice) once();
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    return MB(total, best);
  };
  const status = inPlaceGcm();
  let addon: number | null = null;
  if (status.available) {
    const g = status.create();
    addon = time(() => {
      g.start(true, key, nonce, aad);
      g.update(data.subarray(0, slice));
      g.finishSeal(data.subarray(slice));
    });
  }
  const node = time(() => {
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    for (let off = 0; off < slice; off += 64 * 1024) c.update(data.subarray(off, off + 64 * 1024));
    c.final();
    c.getAuthTag();
  });
  return { addon, node };
}

async function main() {
  console.log(`input: ${sizeMiB} MiB of random bytes in ${tmpdir()}; ${warmup} untimed round(s), then ${runs} rounds of every case; best time per case`);
  const fd = openSync(f('input'), 'w');
  const block = Buffer.allocUnsafe(16 << 20);
  for (let left = bytes; left > 0; left -= block.length) writeSync(fd, randomFillSync(block).subarray(0, Math.min(left, block.length)));
  closeSync(fd);
  const inputHash = await sha256(f('input'));

  const bkv = [join(process.cwd(), 'bin', 'bkv.js')];
  execFileSync(process.execPath, [...bkv, 'key', 'new', '--key-file', f('key')]);
  // A directory of the same size (8 files of 1/8 each): tar, then the streaming path.
  mkdirSync(f('dir'));
  const part = bytes / 8;
  for (let i = 0; i < 8; i++) {
    const fdIn = openSync(f('input'), 'r');
    const fdOut = openSync(f(`dir/part-${i}.bin`), 'w');
    const buf = Buffer.allocUnsafe(16 << 20);
    for (let done = 0; done < part; done += buf.length) {
      const n = readSync(fdIn, buf, 0, Math.min(buf.length, part - done), i * part + done);
      writeSync(fdOut, buf.subarray(0, n));
    }
    closeSync(fdIn);
    closeSync(fdOut);
  }
  // A 16 MiB file (parallel path): what a mid-sized backup costs beyond start-up.
  const fd16 = openSync(f('small'), 'w');
  writeSync(fd16, randomFillSync(Buffer.allocUnsafe(16 << 20)));
  closeSync(fd16);
  const withAge = has('age') && has('age-keygen');
  let recipient = '';
  if (withAge) {
    execFileSync('age-keygen', ['-o', f('age-key')], { stdio: 'ignore' });
    recipient = /public key: (age1\S+)/.exec(readFileSync(f('age-key'), 'utf8'))![1]!;
  } else {
    console.log('age not installed (apt-get install age): age columns left empty');
  }

  const backup = (args: string[], output: string) => () => runCommand(process.execPath, [...bkv, 'backup', ...args, '--json'], output);
  const key = ['--key-file', f('key')];
  const same = (out: string) => async () => {
    if ((await sha256(out)) !== inputHash) throw new Error(`${out} differs from the input`);
  };
  // Restores read the CLI's backup of the input; other outputs go to scratch files, deleted after
  // each run. So the page cache holds the inputs, not a dozen gigabytes of earlier outputs.
  const S = f('scratch');
  const cases: Case[] = [
    { name: 'enc', once: backup(['create', f('input'), '-o', f('input.bkv'), ...key], f('input.bkv')) },
    { name: 'dec', once: backup(['restore', f('input.bkv'), '-o', S, ...key], S), check: same(S), scratch: S },
    { name: 'libEnc', once: () => runLibrary('create', f('input'), S, f('key')), scratch: S },
    { name: 'libDec', once: () => runLibrary('restore', f('input.bkv'), S, f('key')), check: same(S), scratch: S },
    { name: 'libEncThreads', once: () => runLibrary('create', f('input'), S, f('key'), 'threads-only'), scratch: S },
    { name: 'libDecThreads', once: () => runLibrary('restore', f('input.bkv'), S, f('key'), 'threads-only'), check: same(S), scratch: S },
    // The same library path with node:crypto instead of the in-place addon.
    { name: 'libEncNode', once: () => runLibrary('create', f('input'), S, f('key'), 'node-aes'), scratch: S },
    { name: 'libDecNode', once: () => runLibrary('restore', f('input.bkv'), S, f('key'), 'node-aes'), check: same(S), scratch: S },
    { name: 'dirEnc', once: backup(['create', f('dir'), '-o', f('dir.bkv'), ...key], f('dir.bkv')) },
    {
      name: 'dirDec',
      once: backup(['restore', f('dir.bkv'), '-o', S, ...key], S),
      check: async () => {
        for (let i = 0; i < 8; i++) {
          if ((await sha256(join(S, `part-${i}.bin`))) !== (await sha256(f(`dir/part-${i}.bin`)))) throw new Error('directory restore differs');
        }
      },
      scratch: S,
    },
    { name: 'small', once: backup(['create', f('small'), '-o', S, ...key], S), scratch: S },
    { name: 'startup', once: () => runCommand(process.execPath, [...bkv, 'backup', 'create', '--help'], f('none')) },
  ];
  // The I/O alone: the same bytes read and written to a new file, no encryption, one thread.
  if (has('dd')) cases.push({ name: 'copy', once: () => runCommand('dd', [`if=${f('input')}`, `of=${S}`, 'bs=256K', 'status=none'], S), scratch: S });
  if (withAge) {
    cases.push({ name: 'ageEnc', once: () => runCommand('age', ['-e', '-r', recipient, '-o', f('input.age'), f('input')], f('input.age')) });
    cases.push({ name: 'ageDec', once: () => runCommand('age', ['-d', '-i', f('age-key'), '-o', S, f('input.age')], S), check: same(S), scratch: S });
  }
  const results = await runRounds(cases);
  const get = (name: string): Run | null => results.get(name) ?? null;
  const must = (name: string): Run => results.get(name)!;
  const [enc, dec, libEnc, libDec] = [must('enc'), must('dec'), must('libEnc'), must('libDec')];
  const [libEncThreads, libDecThreads, libEncNode, libDecNode] = [must('libEncThreads'), must('libDecThreads'), must('libEncNode'), must('libDecNode')];
  const [dirEnc, dirDec, small, startup] = [must('dirEnc'), must('dirDec'), must('small'), must('startup')];
  const [copy, ageEnc, ageDec] = [get('copy'), get('ageEnc'), get('ageDec')];
  const aes = await aesInMemory();
  const openssl = opensslMBps();

  const rows: Array<[string, Run | null]> = [
    ['bkv backup create (encrypt)', enc],
    ['bkv backup restore (decrypt)', dec],
    ['library create, no CLI start-up (encrypt)', libEnc],
    ['library restore, no CLI start-up (decrypt)', libDec],
    ['library default: worker threads only, caller not blocked (encrypt)', libEncThreads],
    ['library default: worker threads only, caller not blocked (decrypt)', libDecThreads],
    ['library create with node:crypto instead of the in-place addon (encrypt)', libEncNode],
    ['library restore with node:crypto instead of the in-place addon (decrypt)', libDecNode],
    ['dd bs=256K: the same read and write, no encryption, one thread (I/O floor)', copy],
    ['bkv backup create of a directory of 8 files, same bytes (tar, streaming path; encrypt)', dirEnc],
    ['bkv backup restore of that directory (decrypt)', dirDec],
    ['age -e (X25519 recipient)', ageEnc],
    ['age -d', ageDec],
  ];
  const fmt = (x: number | null, d = 0) => (x === null ? '—' : x.toFixed(d));
  const lines = [
    '| operation | MB/s | × openssl | × age (same direction) | peak RSS (MB) |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const [name, r] of rows) {
    if (!r) continue;
    const speed = MB(bytes, r.seconds);
    const ageRun = name.startsWith('age') || name.startsWith('dd') ? null : name.includes('encrypt') ? ageEnc : ageDec;
    const vsAge = ageRun ? speed / MB(bytes, ageRun.seconds) : null;
    lines.push(
      `| ${name} | ${fmt(speed)} | ${fmt(openssl ? speed / openssl : null, 2)} | ${fmt(vsAge, 2)} | ${fmt(r.maxRssKb === null ? null : r.maxRssKb / 1024, 0)} |`,
    );
  }
  lines.push(`| bkv backup create --help (this command's CLI start-up alone: ${startup.seconds.toFixed(2)} s) | | | | ${fmt(startup.maxRssKb === null ? null : startup.maxRssKb / 1024, 0)} |`);
  lines.push(`| bkv backup create of a 16 MiB file: ${small.seconds.toFixed(2)} s in all | | | | ${fmt(small.maxRssKb === null ? null : small.maxRssKb / 1024, 0)} |`);
  lines.push(`| openssl speed -evp aes-256-gcm -bytes 16384 (1 core, memory only) | ${fmt(openssl)} | 1.00 | | |`);
  const vsOpenssl = (x: number | null) => fmt(openssl && x ? x / openssl : null, 2);
  lines.push(`| AES-256-GCM in memory, 1 core, 256 KiB messages, in-place addon | ${fmt(aes.addon)} | ${vsOpenssl(aes.addon)} | | |`);
  lines.push(`| AES-256-GCM in memory, 1 core, 256 KiB messages, node:crypto update | ${fmt(aes.node)} | ${vsOpenssl(aes.node)} | | |`);
  console.log('\n' + lines.join('\n') + '\n');

  const checks: Array<[string, boolean | null]> = [];
  for (const [name, r] of [['CLI directory encrypt', dirEnc], ['CLI directory decrypt', dirDec]] as const) {
    checks.push([`${name} peak RSS < 100 MB`, r.maxRssKb === null ? null : r.maxRssKb / 1024 < 100]);
  }
  for (const [name, r, a] of [['CLI encrypt', enc, ageEnc], ['CLI decrypt', dec, ageDec], ['library encrypt', libEnc, ageEnc], ['library decrypt', libDec, ageDec], ['library default encrypt', libEncThreads, ageEnc], ['library default decrypt', libDecThreads, ageDec]] as const) {
    const s = MB(bytes, r.seconds);
    checks.push([`${name} >= 0.5x openssl`, openssl ? s >= 0.5 * openssl : null]);
    checks.push([`${name} >= 2x age`, a ? s >= 2 * MB(bytes, a.seconds) : null]);
    checks.push([`${name} peak RSS < 100 MB`, r.maxRssKb === null ? null : r.maxRssKb / 1024 < 100]);
  }
  for (const [name, ok] of checks) console.log(`${ok === null ? 'n/a ' : ok ? 'met ' : 'MISS'}  ${name}`);
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  rmSync(dir, { recursive: true, force: true });
  console.error(err);
  process.exit(1);
});
