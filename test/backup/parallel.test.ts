import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BkvError } from '../../src/shared/errors.js';
import { generateBackupKey, HEADER_BYTES, TAG_BYTES } from '../../src/client/index.js';
import { nodeAesGcm } from '../../src/node/aes-gcm.js';
import { createBackupFile, restoreBackupFile, type ParallelChoice } from '../../src/node/backup-files.js';
import { ACTIVE, CONTROL_BYTES, FINISHED, NEXT, STOP, runChunkJob, type ChunkJob } from '../../src/node/chunk-job.js';
import { chunkNonce, derivePayloadKeys } from '../../src/client/backup/subkeys.js';
import { CHUNK, bytes, decrypt, encrypt } from './helpers.js';

const key = generateBackupKey();
const PIECE = CHUNK + TAG_BYTES;
const STREAMING: ParallelChoice = { parallelMinBytes: Infinity };

let dir: string;
const p = (name: string) => join(dir, name);
const leftovers = () => readdirSync(dir).filter((f) => f.includes('.bkv-tmp-'));

/** The BkvError (code and message) a restore fails with, or 'OK'. */
async function restoreOutcome(input: string, output: string, choice: ParallelChoice, k = key): Promise<string> {
  try {
    await restoreBackupFile({ input, output, key: k, ...choice });
    return 'OK';
  } catch (err) {
    if (err instanceof BkvError) return `${err.code}: ${err.message}`;
    throw err;
  }
}

// Every case runs with AES-GCM in place (the addon; test/backup/native-aes-gcm.test.ts checks it
// is built) and with node:crypto.
for (const aes of ['auto', 'node'] as const) {
  describe(`parallel file path (aes: ${aes})`, () => {
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), `bkv-parallel-${aes}-`));
    });

    afterAll(() => {
      if (existsSync(p('ro'))) chmodSync(p('ro'), 0o700);
      rmSync(dir, { recursive: true, force: true });
    });

    /** Forces the worker pool whatever the size; the other extreme forces the streaming path. */
    const PARALLEL: ParallelChoice = { parallelMinBytes: 0, workers: 2, aes };
    const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK - 1, 3 * CHUNK + 1, 8 * CHUNK, 37 * CHUNK + 5];

    it('writes backups the streaming reader opens, at sizes around chunk boundaries', async () => {
      for (const [n, size] of sizes.entries()) {
        const data = bytes(size, size + 7);
        const workers = 1 + (n % 3);
        writeFileSync(p('in'), data);
        rmSync(p('in.bkv'), { force: true });
        await createBackupFile({ input: p('in'), output: p('in.bkv'), key, chunkSize: CHUNK, parallelMinBytes: 0, aes, workers });
        const backup = readFileSync(p('in.bkv'));
        expect(backup.length, `${size}`).toBe(HEADER_BYTES + size + Math.max(1, Math.ceil(size / CHUNK)) * TAG_BYTES);
        const out = await decrypt(backup, key, { cipher: nodeAesGcm, sizes: [1000, PIECE, 3] });
        expect(Buffer.from(out.data).equals(Buffer.from(data)), `${size} bytes, ${workers} workers`).toBe(true);
      }
      expect(leftovers()).toEqual([]);
    });

    it('restores backups the streaming writer made, at sizes around chunk boundaries', async () => {
      for (const [n, size] of sizes.entries()) {
        const data = bytes(size, size + 11);
        const workers = 3 - (n % 3);
        writeFileSync(p('s.bkv'), await encrypt(data, key, { cipher: nodeAesGcm, sizes: [999] }));
        rmSync(p('s.out'), { force: true });
        const r = await restoreBackupFile({ input: p('s.bkv'), output: p('s.out'), key, parallelMinBytes: 0, aes, workers });
        expect(r).toEqual({ kind: 'file', bytes: size });
        expect(readFileSync(p('s.out')).equals(Buffer.from(data)), `${size} bytes, ${workers} workers`).toBe(true);
      }
      expect(leftovers()).toEqual([]);
    });

    it('round-trips with the calling thread computing too, alone or with a worker thread', async () => {
      const data = bytes(30 * CHUNK + 77, 31);
      writeFileSync(p('main'), data);
      for (const workers of [1, 2]) {
        const choice = { parallelMinBytes: 0, aes, workers, mainThreadWorks: true };
        rmSync(p('main.bkv'), { force: true });
        rmSync(p('main.out'), { force: true });
        await createBackupFile({ input: p('main'), output: p('main.bkv'), key, chunkSize: CHUNK, ...choice });
        const out = await decrypt(readFileSync(p('main.bkv')), key, { cipher: nodeAesGcm });
        expect(Buffer.from(out.data).equals(Buffer.from(data)), `${workers}`).toBe(true);
        expect(await restoreBackupFile({ input: p('main.bkv'), output: p('main.out'), key, ...choice })).toEqual({ kind: 'file', bytes: data.length });
        expect(readFileSync(p('main.out')).equals(Buffer.from(data)), `${workers}`).toBe(true);
      }
    });

    it('round-trips 1 MiB chunks read in several slices, and finds a flipped bit inside one', async () => {
      const data = bytes(3 * 1024 * 1024 + 300 * 1024 + 7, 41);
      writeFileSync(p('slices'), data);
      for (const mainThreadWorks of [false, true]) {
        const choice = { ...PARALLEL, mainThreadWorks };
        rmSync(p('slices.bkv'), { force: true });
        rmSync(p('slices.out'), { force: true });
        await createBackupFile({ input: p('slices'), output: p('slices.bkv'), key, ...choice });
        const backup = readFileSync(p('slices.bkv'));
        const out = await decrypt(backup, key, { cipher: nodeAesGcm });
        expect(Buffer.from(out.data).equals(Buffer.from(data))).toBe(true);
        await restoreBackupFile({ input: p('slices.bkv'), output: p('slices.out'), key, ...choice });
        expect(readFileSync(p('slices.out')).equals(Buffer.from(data))).toBe(true);
        // A bit flipped in the third slice of chunk 1: found, named as the streaming reader names it.
        backup[HEADER_BYTES + (1024 * 1024 + TAG_BYTES) + 600 * 1024]! ^= 1;
        writeFileSync(p('slices.bad'), backup);
        const streaming = await restoreOutcome(p('slices.bad'), p('slices.bad.out'), STREAMING);
        expect(streaming).toMatch(/^TAMPERED: .*chunk 1 failed authentication/);
        expect(await restoreOutcome(p('slices.bad'), p('slices.bad.out'), choice)).toBe(streaming);
        expect(existsSync(p('slices.bad.out'))).toBe(false);
      }
      expect(leftovers()).toEqual([]);
    });

    it('reports progress over the whole input in both directions', async () => {
      writeFileSync(p('prog'), bytes(50 * CHUNK + 3, 5));
      for (const mainThreadWorks of [false, true]) {
        const choice = { ...PARALLEL, mainThreadWorks };
        let created = 0;
        rmSync(p('prog.bkv'), { force: true });
        rmSync(p('prog.out'), { force: true });
        await createBackupFile({ input: p('prog'), output: p('prog.bkv'), key, chunkSize: CHUNK, onProgress: (n) => (created += n), ...choice });
        expect(created).toBe(50 * CHUNK + 3);
        let restored = 0;
        await restoreBackupFile({ input: p('prog.bkv'), output: p('prog.out'), key, onProgress: (n) => (restored += n), ...choice });
        expect(restored).toBe(statSync(p('prog.bkv')).size);
        expect(readFileSync(p('prog.out')).equals(readFileSync(p('prog')))).toBe(true);
      }
    });

    it('refuses what the streaming reader refuses, with the same error, and leaves nothing behind', async () => {
      const good = await encrypt(bytes(6 * CHUNK + 100, 21), key, { cipher: nodeAesGcm });
      const chunk = (i: number) => good.subarray(HEADER_BYTES + i * PIECE, HEADER_BYTES + (i + 1) * PIECE);
      const header = good.subarray(0, HEADER_BYTES);
      const flip = (at: number) => Buffer.from(good.map((b, i) => (i === at ? b ^ 1 : b)));
      const other = generateBackupKey();
      const cases: Array<[string, Uint8Array, string, Uint8Array?]> = [
        ['wrong key', good, 'WRONG_KEY', other],
        ['flipped bit in chunk 3', flip(HEADER_BYTES + 3 * PIECE + 10), 'TAMPERED'],
        ['flipped bit in the header salt', flip(40), 'TAMPERED'],
        ['flipped fingerprint bit', flip(20), 'TAMPERED'],
        ['flipped tag of the last chunk', flip(good.length - 1), 'TAMPERED'],
        ['flipped bits in chunks 2 and 5', Buffer.from(good.map((b, i) => (i === HEADER_BYTES + 2 * PIECE + 1 || i === HEADER_BYTES + 5 * PIECE + 1 ? b ^ 1 : b))), 'TAMPERED'],
        ['truncated at a chunk boundary', good.subarray(0, HEADER_BYTES + 3 * PIECE), 'TRUNCATED'],
        ['truncated inside a chunk', good.subarray(0, HEADER_BYTES + 3 * PIECE + 100), 'TAMPERED'],
        ['truncated inside a tag', good.subarray(0, HEADER_BYTES + 3 * PIECE + 10), 'TRUNCATED'],
        ['header only', good.subarray(0, HEADER_BYTES), 'TRUNCATED'],
        ['appended bytes', Buffer.concat([good, Buffer.from('xyz')]), 'TRAILING_DATA'],
        ['appended chunk', Buffer.concat([good, chunk(1)]), 'TAMPERED'], // lands inside the short final piece
        ['reordered chunks', Buffer.concat([header, chunk(0), chunk(2), chunk(1), good.subarray(HEADER_BYTES + 3 * PIECE)]), 'TAMPERED'],
        ['duplicated chunk', Buffer.concat([header, chunk(0), chunk(1), chunk(1), good.subarray(HEADER_BYTES + 2 * PIECE)]), 'TAMPERED'],
        ['deleted chunk', Buffer.concat([header, chunk(0), good.subarray(HEADER_BYTES + 2 * PIECE)]), 'TAMPERED'],
        ['unknown version', Buffer.from(good.map((b, i) => (i === 8 ? 9 : b))), 'UNSUPPORTED_VERSION'],
        ['not a backup', Buffer.from('plain text, not a backup'), 'NOT_A_BACKUP'],
        ['empty', new Uint8Array(0), 'NOT_A_BACKUP'],
      ];
      for (const [name, content, code, k] of cases) {
        writeFileSync(p('bad.bkv'), content);
        const streaming = await restoreOutcome(p('bad.bkv'), p('bad.out'), STREAMING, k);
        expect(streaming.split(':')[0], name).toBe(code);
        const choices: ParallelChoice[] = name.includes('chunks 2 and 5')
          ? [1, 2, 3].flatMap((workers) => [{ workers }, { workers, mainThreadWorks: true }])
          : [{ workers: 1 }];
        for (const choice of choices) {
          const parallel = await restoreOutcome(p('bad.bkv'), p('bad.out'), { parallelMinBytes: 0, aes, ...choice }, k);
          expect(parallel, `${name}, ${JSON.stringify(choice)}`).toBe(streaming);
          expect(existsSync(p('bad.out')), name).toBe(false);
        }
      }
      // An empty final chunk after data: made by hand (no writer produces it).
      const two = await encrypt(bytes(2 * CHUNK, 2), key, { cipher: nodeAesGcm });
      const twoHeader = two.subarray(0, HEADER_BYTES);
      const { payloadKey, noncePrefix } = derivePayloadKeys(key, twoHeader.subarray(32));
      const cipher = await nodeAesGcm(payloadKey);
      const seal = async (i: number, last: boolean, data: Uint8Array) => Buffer.concat(await cipher.seal(chunkNonce(noncePrefix, i, last), data, twoHeader));
      writeFileSync(p('bad.bkv'), Buffer.concat([two.subarray(0, HEADER_BYTES + PIECE), await seal(1, false, bytes(CHUNK, 3)), await seal(2, true, new Uint8Array(0))]));
      const streaming = await restoreOutcome(p('bad.bkv'), p('bad.out'), STREAMING);
      expect(streaming).toMatch(/^TAMPERED: chunk 2 is an empty final chunk/);
      expect(await restoreOutcome(p('bad.bkv'), p('bad.out'), PARALLEL)).toBe(streaming);
      expect(existsSync(p('bad.out'))).toBe(false);
      expect(leftovers()).toEqual([]);
    });

    it('restores a directory backup through the streaming path whatever the threshold', async () => {
      mkdirSync(p('tree/sub'), { recursive: true });
      writeFileSync(p('tree/a.bin'), bytes(3 * CHUNK + 5, 8));
      writeFileSync(p('tree/sub/b.txt'), 'hello');
      await createBackupFile({ input: p('tree'), output: p('tree.bkv'), key, chunkSize: CHUNK, ...PARALLEL });
      const r = await restoreBackupFile({ input: p('tree.bkv'), output: p('tree.out'), key, ...PARALLEL });
      expect(r.kind).toBe('tar');
      expect(readFileSync(p('tree.out/a.bin')).equals(readFileSync(p('tree/a.bin')))).toBe(true);
      expect(readFileSync(p('tree.out/sub/b.txt'), 'utf8')).toBe('hello');
    });

    it('fails with a typed error when the backup changes size while it is restored', async () => {
      writeFileSync(p('grow'), bytes(20 * CHUNK, 4));
      await createBackupFile({ input: p('grow'), output: p('grow.bkv'), key, chunkSize: CHUNK, ...PARALLEL });
      // The header is checked first, then progress starts: change the file right there.
      for (const change of ['shrink', 'grow'] as const) {
        const original = readFileSync(p('grow.bkv'));
        let changed = false;
        const onProgress = () => {
          if (changed) return;
          changed = true;
          if (change === 'shrink') writeFileSync(p('grow.bkv'), original.subarray(0, original.length - PIECE));
          else writeFileSync(p('grow.bkv'), Buffer.concat([original, Buffer.alloc(PIECE)]));
        };
        const err = await restoreBackupFile({ input: p('grow.bkv'), output: p('grow.out'), key, onProgress, ...PARALLEL }).catch((e) => e);
        expect(err, change).toBeInstanceOf(BkvError);
        expect(err.code, change).toBe('IO');
        expect(err.message, change).toMatch(/changed size while it was being read/);
        expect(existsSync(p('grow.out'))).toBe(false);
        writeFileSync(p('grow.bkv'), original);
      }
      expect(leftovers()).toEqual([]);
    });

    it('chunk jobs detect an input that is not the size the job was planned for', () => {
      writeFileSync(p('sized'), bytes(5 * CHUNK + 10, 6));
      const inFd = openSync(p('sized'), 'r');
      const outFd = openSync(p('sized.out'), 'w');
      try {
        const job = (inputSize: number): ChunkJob => {
          const control = new SharedArrayBuffer(CONTROL_BYTES);
          const chunks = Math.max(1, Math.ceil(inputSize / CHUNK));
          new BigInt64Array(control)[STOP] = BigInt(chunks);
          return { mode: 'seal', inFd, outFd, key, prefix: new Uint8Array(7), aad: new Uint8Array(64), chunkSize: CHUNK, inputSize, chunks, control, gcEveryBytes: 1 << 20, aes };
        };
        expect(runChunkJob(job(5 * CHUNK + 10))).toBeNull();
        expect(runChunkJob(job(5 * CHUNK + 9))).toEqual({ index: 5, kind: 'changed' }); // the file grew by a byte
        expect(runChunkJob(job(7 * CHUNK))).toEqual({ index: 5, kind: 'changed' }); // it shrank under chunk 5
        expect(runChunkJob(job(5 * CHUNK))).toEqual({ index: 4, kind: 'changed' }); // ... or grew past a boundary
      } finally {
        closeSync(inFd);
        closeSync(outFd);
      }
    });

    it('a thread that starts once every chunk is claimed does no I/O (so the pool need not wait for it)', () => {
      const control = new SharedArrayBuffer(CONTROL_BYTES);
      const ctl = new BigInt64Array(control);
      ctl[STOP] = 4n;
      ctl[NEXT] = 4n; // every chunk already claimed by the threads that started first
      ctl[FINISHED] = 4n;
      // Descriptors that do not exist: any read or write would fail with EBADF.
      const late: ChunkJob = { mode: 'seal', inFd: 987_654, outFd: 987_655, key, prefix: new Uint8Array(7), aad: new Uint8Array(64), chunkSize: CHUNK, inputSize: 4 * CHUNK, chunks: 4, control, gcEveryBytes: 1 << 20, aes };
      expect(runChunkJob(late)).toBeNull();
      expect(runChunkJob({ ...late, mode: 'open' })).toBeNull();
      expect(ctl[ACTIVE]).toBe(0n);
      expect(ctl[FINISHED]).toBe(4n);
    });

    it('chunk jobs leave the count of active threads at zero however they end', () => {
      writeFileSync(p('act'), bytes(3 * CHUNK, 2));
      const inFd = openSync(p('act'), 'r');
      try {
        for (const outFd of [inFd /* not writable: an I/O failure */, openSync(p('act.out'), 'w')]) {
          const control = new SharedArrayBuffer(CONTROL_BYTES);
          new BigInt64Array(control)[STOP] = 3n;
          runChunkJob({ mode: 'seal', inFd, outFd, key, prefix: new Uint8Array(7), aad: new Uint8Array(64), chunkSize: CHUNK, inputSize: 3 * CHUNK, chunks: 3, control, gcEveryBytes: 1 << 20, aes });
          expect(new BigInt64Array(control)[ACTIVE]).toBe(0n);
          if (outFd !== inFd) closeSync(outFd);
        }
        // Even when it throws (a job whose key the cipher refuses).
        const control = new SharedArrayBuffer(CONTROL_BYTES);
        new BigInt64Array(control)[STOP] = 3n;
        const bad = { mode: 'seal', inFd, outFd: inFd, key: new Uint8Array(5), prefix: new Uint8Array(7), aad: new Uint8Array(64), chunkSize: CHUNK, inputSize: 3 * CHUNK, chunks: 3, control, gcEveryBytes: 1 << 20, aes } as ChunkJob;
        expect(() => runChunkJob(bad)).toThrow();
        expect(new BigInt64Array(control)[ACTIVE]).toBe(0n);
      } finally {
        closeSync(inFd);
      }
    });

    it('chunk jobs report a failed write as an I/O failure', () => {
      writeFileSync(p('w'), bytes(3 * CHUNK, 6));
      const inFd = openSync(p('w'), 'r');
      const outFd = openSync(p('w'), 'r'); // not writable
      try {
        const control = new SharedArrayBuffer(CONTROL_BYTES);
        new BigInt64Array(control)[STOP] = 3n;
        const f = runChunkJob({ mode: 'seal', inFd, outFd, key, prefix: new Uint8Array(7), aad: new Uint8Array(64), chunkSize: CHUNK, inputSize: 3 * CHUNK, chunks: 3, control, gcEveryBytes: 1 << 20, aes });
        expect(f).toMatchObject({ index: 0, kind: 'io', op: 'write', code: 'EBADF' });
      } finally {
        closeSync(inFd);
        closeSync(outFd);
      }
    });

    it('handles unwritable outputs like the streaming path', async () => {
      writeFileSync(p('src'), bytes(4 * CHUNK, 12));
      writeFileSync(p('src.bkv'), await encrypt(bytes(4 * CHUNK, 12), key, { cipher: nodeAesGcm }));
      mkdirSync(p('ro'));
      chmodSync(p('ro'), 0o500);
      const targets = [p('src/out'), p('nodir/out'), ...(process.getuid?.() !== 0 ? [p('ro/out')] : [])];
      for (const target of targets) {
        const outcomes: string[] = [];
        for (const choice of [STREAMING, PARALLEL]) {
          const err = await createBackupFile({ input: p('src'), output: target, key, chunkSize: CHUNK, ...choice }).catch((e) => e);
          const err2 = await restoreBackupFile({ input: p('src.bkv'), output: target, key, ...choice }).catch((e) => e);
          expect(err).toBeInstanceOf(BkvError);
          expect(err2).toBeInstanceOf(BkvError);
          outcomes.push(`${err.code}: ${err.message} / ${err2.code}: ${err2.message}`);
        }
        expect(outcomes[0]).toMatch(/^IO: /);
        expect(outcomes[1], target).toBe(outcomes[0]);
      }
      expect(leftovers()).toEqual([]);
    });

    it('removes the temporary file when a write fails part-way (file size limit)', () => {
      // A child process limited to 64 KiB files: writes past that fail with EFBIG in the threads.
      writeFileSync(p('big'), bytes(64 * CHUNK, 13));
      const script = `
        import { createBackupFile } from ${JSON.stringify(join(process.cwd(), 'src/node/backup-files.ts'))};
        const o = { input: ${JSON.stringify(p('big'))}, output: ${JSON.stringify(p('big.bkv'))}, key: new Uint8Array(32).fill(1) };
        try {
          await createBackupFile({ ...o, chunkSize: 4096, parallelMinBytes: 0, aes: ${JSON.stringify(aes)}, workers: 2 });
          console.log('OK');
        } catch (e) {
          console.log(e.code + ': ' + e.message);
        }
      `;
      writeFileSync(p('limit.mts'), script);
      const r = spawnSync('sh', ['-c', `ulimit -f 128 && exec "${process.execPath}" --import tsx "${p('limit.mts')}"`], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim().split('\n').pop()).toMatch(/^IO: cannot write .*big\.bkv: /);
      expect(existsSync(p('big.bkv'))).toBe(false);
      expect(leftovers()).toEqual([]);
    });
  });
}
