import { createCipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * In-place AES-256-GCM: the OpenSSL inside this Node process, bound by a small addon
 * (native/aes_gcm.c, built by `npm run build`). node:crypto's `update` allocates, zero-fills and
 * copies twice for every call; encrypting where the bytes already are halves the CPU time of the
 * cipher on large files (measured in docs/dependencies.md). Used by the parallel file path
 * (src/node/chunk-job.ts) when available; everything else, and every platform without the addon,
 * uses node:crypto, which produces the same bytes.
 */
export interface InPlaceGcm {
  /** Starts a message: key 32 bytes, nonce 12 bytes, `aad` authenticated but not encrypted. */
  start(encrypt: boolean, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): void;
  /** Encrypts or decrypts `data` where it is; call in order over the message's bytes. */
  update(data: Uint8Array): void;
  /** Ends an encryption: writes the 16-byte tag into `tag`. */
  finishSeal(tag: Uint8Array): void;
  /** Ends a decryption: true only if `tag` authenticates everything since `start`. */
  finishOpen(tag: Uint8Array): boolean;
}

interface Addon {
  create(): unknown;
  start(h: unknown, encrypt: boolean, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): void;
  update(h: unknown, data: Uint8Array): void;
  finishSeal(h: unknown, tag: Uint8Array): void;
  finishOpen(h: unknown, tag: Uint8Array): boolean;
}

/** Path of the built addon, from src/node or dist/node alike. */
const ADDON = '../../native/build/Release/bkv_aes_gcm.node';

export type InPlaceGcmStatus = { available: true; create(): InPlaceGcm } | { available: false; reason: string };

let status: InPlaceGcmStatus | undefined;

function wrap(addon: Addon): () => InPlaceGcm {
  return () => {
    const h = addon.create();
    return {
      start: (encrypt, key, nonce, aad) => addon.start(h, encrypt, key, nonce, aad),
      update: (data) => addon.update(h, data),
      finishSeal: (tag) => addon.finishSeal(h, tag),
      finishOpen: (tag) => addon.finishOpen(h, tag),
    };
  };
}

/**
 * Known-answer check against node:crypto before first use (random key, nonce, associated data
 * and lengths, uneven updates, both directions, a forged tag): a broken or mismatched build is
 * never used. Returns why it failed, or null.
 */
export function selfTest(create: () => InPlaceGcm): string | null {
  const g = create();
  for (const size of [0, 1, 15, 16, 17, 4096 + 3, 70_000]) {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const aad = randomBytes(size % 97);
    const plain = randomBytes(size);
    const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
    c.setAAD(aad);
    const want = Buffer.concat([c.update(plain), c.final()]);
    const wantTag = c.getAuthTag();
    const data = Buffer.from(plain);
    const tag = Buffer.alloc(16);
    g.start(true, key, nonce, aad);
    for (let off = 0; off < size; off += 4099) g.update(data.subarray(off, Math.min(off + 4099, size)));
    g.finishSeal(tag);
    if (!data.equals(want) || !tag.equals(wantTag)) return `ciphertext differs from node:crypto at ${size} bytes`;
    g.start(false, key, nonce, aad);
    g.update(data);
    if (!g.finishOpen(tag) || !data.equals(plain)) return `does not open its own ${size}-byte message`;
    tag[size % 16]! ^= 1;
    g.start(false, key, nonce, aad);
    g.update(Buffer.from(want));
    if (g.finishOpen(tag)) return `accepted a forged tag at ${size} bytes`;
  }
  return null;
}

/**
 * Loads and checks the addon once per thread. Unavailable when it was not built, fails to load or
 * fails its self-test, or when BKV_NATIVE=0 turns the addons off.
 */
export function inPlaceGcm(): InPlaceGcmStatus {
  if (status) return status;
  if (process.env.BKV_NATIVE === '0') return (status = { available: false, reason: 'BKV_NATIVE=0' });
  try {
    const create = wrap(createRequire(import.meta.url)(ADDON) as Addon);
    const failed = selfTest(create);
    status = failed ? { available: false, reason: `self-test failed: ${failed}` } : { available: true, create };
  } catch (err) {
    status = { available: false, reason: `not loaded: ${(err as Error)?.message ?? err}` };
  }
  return status;
}
