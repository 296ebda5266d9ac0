import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BkvError } from '../../src/shared/errors.js';
import { generateBackupKey, webCryptoAesGcm, HEADER_BYTES, TAG_BYTES, decodeHeader } from '../../src/client/index.js';
import { nodeAesGcm } from '../../src/node/aes-gcm.js';
import { CHUNK, bytes, concat, decrypt, encrypt, failureCode } from './helpers.js';

const key = generateBackupKey();
const PIECE = CHUNK + TAG_BYTES;

/** Splits a backup into its header and sealed chunks. */
function split(backup: Uint8Array): { header: Uint8Array; chunks: Uint8Array[] } {
  const chunks: Uint8Array[] = [];
  for (let off = HEADER_BYTES; off < backup.length; off += PIECE) chunks.push(backup.subarray(off, off + PIECE));
  return { header: backup.subarray(0, HEADER_BYTES), chunks };
}

describe('backup format v1 round trips', () => {
  const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 7 * CHUNK + 123];
  for (const size of sizes) {
    it(`round-trips ${size} bytes with both ciphers in every combination`, async () => {
      const data = bytes(size, size + 1);
      for (const enc of [webCryptoAesGcm, nodeAesGcm]) {
        const backup = await encrypt(data, key, { cipher: enc, sizes: [1000, 5000, 1] });
        const chunks = Math.max(1, Math.ceil(size / CHUNK));
        expect(backup.length).toBe(HEADER_BYTES + size + chunks * TAG_BYTES);
        for (const dec of [webCryptoAesGcm, nodeAesGcm]) {
          const out = await decrypt(backup, key, { cipher: dec, sizes: [777, 4112, 3] });
          expect(out.kind).toBe('file');
          expect(Buffer.from(out.data).equals(Buffer.from(data))).toBe(true);
        }
      }
    });
  }

  it('records the payload kind and chunk size in the header', async () => {
    const backup = await encrypt(bytes(10), key, { kind: 'tar', chunkSize: 8192 });
    const h = decodeHeader(backup.subarray(0, HEADER_BYTES));
    expect(h.kind).toBe('tar');
    expect(h.chunkSize).toBe(8192);
    expect((await decrypt(backup, key)).kind).toBe('tar');
  });

  it('rejects chunk sizes that are not powers of two in range', async () => {
    for (const chunkSize of [0, 1000, 2048, 5000, 32 * 1024 * 1024]) {
      await expect(encrypt(bytes(10), key, { chunkSize })).rejects.toMatchObject({ code: 'USAGE' });
    }
  });

  it('property: any data, any source piece sizes, round-trips', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 5 * CHUNK }),
        fc.array(fc.integer({ min: 1, max: 3 * CHUNK }), { minLength: 1, maxLength: 5 }),
        async (data, cuts) => {
          const backup = await encrypt(data, key, { cipher: nodeAesGcm, sizes: cuts });
          const out = await decrypt(backup, key, { cipher: nodeAesGcm, sizes: cuts });
          expect(Buffer.from(out.data).equals(Buffer.from(data))).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('backup format v1 rejects bad input with a specific code', () => {
  const sample = async (n = 4 * CHUNK + 100) => encrypt(bytes(n, 9), key, { cipher: nodeAesGcm });
  const code = (b: Uint8Array, k = key) => failureCode(b, k, nodeAesGcm);

  it('wrong key', async () => {
    expect(await code(await sample(), generateBackupKey())).toBe('WRONG_KEY');
  });

  it('altered fingerprint with the right key is tampering, not a wrong key', async () => {
    const b = await sample();
    b[20]! ^= 1;
    expect(await code(b)).toBe('TAMPERED');
  });

  it('not a backup, unknown version, empty input', async () => {
    const b = await sample();
    expect(await code(new TextEncoder().encode('hello, this is not a backup at all, not even close, really not.'))).toBe('NOT_A_BACKUP');
    expect(await code(new Uint8Array(0))).toBe('NOT_A_BACKUP');
    const v2 = b.slice();
    v2[8] = 2;
    expect(await code(v2)).toBe('UNSUPPORTED_VERSION');
  });

  it('property: truncation at any point', async () => {
    const b = await sample();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: b.length - 1 }), async (cut) => {
        const expected =
          cut === 0 ? 'NOT_A_BACKUP'
          : cut <= HEADER_BYTES || (cut - HEADER_BYTES) % PIECE === 0 || (cut - HEADER_BYTES) % PIECE < TAG_BYTES ? 'TRUNCATED'
          : 'TAMPERED';
        expect(await code(b.subarray(0, cut))).toBe(expected);
      }),
      { numRuns: 80 },
    );
    // every chunk boundary explicitly: the final chunk is missing
    for (let cut = HEADER_BYTES; cut < b.length; cut += PIECE) expect(await code(b.subarray(0, cut))).toBe('TRUNCATED');
  });

  it('property: a flipped bit anywhere', async () => {
    const b = await sample();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: b.length - 1 }), fc.integer({ min: 0, max: 7 }), async (pos, bit) => {
        const t = b.slice();
        t[pos]! ^= 1 << bit;
        const expected = pos < 8 ? 'NOT_A_BACKUP' : pos === 8 ? 'UNSUPPORTED_VERSION' : 'TAMPERED';
        expect(await code(t)).toBe(expected);
      }),
      { numRuns: 120 },
    );
  });

  it('property: reordered chunks, naming where the chunk belongs', async () => {
    const b = await sample(6 * CHUNK);
    const { header, chunks } = split(b);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 }), async (i, j) => {
        fc.pre(i !== j);
        const c = chunks.slice();
        [c[i], c[j]] = [c[j]!, c[i]!];
        const err = await decrypt(concat([header, ...c]), key, { cipher: nodeAesGcm }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BkvError);
        expect((err as BkvError).code).toBe('TAMPERED');
        expect((err as BkvError).message).toContain(`chunk ${Math.min(i, j)} is chunk ${Math.max(i, j)}`);
      }),
      { numRuns: 20 },
    );
  });

  it('property: duplicated chunks', async () => {
    const b = await sample(6 * CHUNK);
    const { header, chunks } = split(b);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 5 }), async (i, at) => {
        const c = chunks.slice();
        c.splice(at, 0, chunks[i]!);
        // A copy of the final chunk appended at the end is trailing data; anything else is tampering.
        expect(await code(concat([header, ...c]))).toBe('TAMPERED');
      }),
      { numRuns: 20 },
    );
    expect(await code(concat([header, ...chunks, chunks[chunks.length - 1]!]))).toBe('TRAILING_DATA');
  });

  it('property: appended bytes', async () => {
    for (const n of [3 * CHUNK, 3 * CHUNK + 50, 0]) {
      const b = await sample(n);
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 200 }), async (extra) => {
          expect(await code(concat([b, extra]))).toBe('TRAILING_DATA');
        }),
        { numRuns: 15 },
      );
    }
  });

  it('property: chunks spliced from another backup under the same key', async () => {
    const a = split(await sample(5 * CHUNK));
    const other = split(await sample(5 * CHUNK));
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 4 }), async (i) => {
        const c = a.chunks.slice();
        c[i] = other.chunks[i]!;
        expect(await code(concat([a.header, ...c]))).toBe('TAMPERED');
      }),
      { numRuns: 10 },
    );
    // another backup's header on these chunks
    expect(await code(concat([other.header, ...a.chunks]))).toBe('TAMPERED');
  });

  it('the WebCrypto path reports the same codes', async () => {
    const b = await sample();
    const t = b.slice();
    t[HEADER_BYTES + PIECE + 5]! ^= 4;
    expect(await failureCode(t, key, webCryptoAesGcm)).toBe('TAMPERED');
    expect(await failureCode(b.subarray(0, HEADER_BYTES + PIECE), key, webCryptoAesGcm)).toBe('TRUNCATED');
    expect(await failureCode(concat([b, new Uint8Array([1])]), key, webCryptoAesGcm)).toBe('TRAILING_DATA');
    expect(await failureCode(b, generateBackupKey(), webCryptoAesGcm)).toBe('WRONG_KEY');
  });
});
