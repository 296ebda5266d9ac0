import { encryptBackup, openBackup, type ChunkCipherFactory, type PayloadKind } from '../../src/client/index.js';
import { BkvError } from '../../src/shared/errors.js';

export const CHUNK = 4096;

/** Yields `data` cut into pieces of the given sizes (cycled), to exercise reassembly. */
export async function* pieces(data: Uint8Array, sizes: number[] = [data.length || 1]): AsyncGenerator<Uint8Array> {
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]!);
    yield data.subarray(off, off + n);
    off += n;
  }
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export async function encrypt(
  data: Uint8Array,
  key: Uint8Array,
  o: { chunkSize?: number; cipher?: ChunkCipherFactory; kind?: PayloadKind; sizes?: number[] } = {},
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const opts = { key, chunkSize: o.chunkSize ?? CHUNK, ...(o.cipher ? { cipher: o.cipher } : {}), ...(o.kind ? { kind: o.kind } : {}) };
  for await (const p of encryptBackup(pieces(data, o.sizes), opts)) parts.push(p.slice());
  return concat(parts);
}

export async function decrypt(
  backup: Uint8Array,
  key: Uint8Array,
  o: { cipher?: ChunkCipherFactory; sizes?: number[] } = {},
): Promise<{ kind: PayloadKind; data: Uint8Array }> {
  const { header, plaintext } = await openBackup(pieces(backup, o.sizes), { key, ...(o.cipher ? { cipher: o.cipher } : {}) });
  const parts: Uint8Array[] = [];
  for await (const p of plaintext) parts.push(p.slice());
  return { kind: header.kind, data: concat(parts) };
}

/** The BkvError code decrypting `backup` fails with, or 'OK'. */
export async function failureCode(backup: Uint8Array, key: Uint8Array, cipher?: ChunkCipherFactory): Promise<string> {
  try {
    await decrypt(backup, key, cipher ? { cipher } : {});
    return 'OK';
  } catch (err) {
    if (err instanceof BkvError) return err.code;
    throw err;
  }
}

/** Pseudo-random bytes (deterministic, fast) of length n. */
export function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}
