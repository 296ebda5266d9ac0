/**
 * Proofs of the record tree: for a key, the siblings from the root down to where the key's path
 * ends, and what was found there (an empty subtree or one leaf). Exact bytes:
 * docs/formats/record-tree.md. Browser-safe, pure.
 */
import { BkvError } from '../errors.js';
import {
  HASH_SIZE,
  KEY_SIZE,
  MAX_DEPTH,
  bytesEqual,
  checkHash,
  checkKey,
  commonPrefixBits,
  emptyHash,
  isZeroHash,
  keyBit,
  leafHash,
  nodeHash,
  toHex,
  valueHash as hashValue,
} from './hash.js';

export const PROOF_VERSION = 0x01;
const TERMINAL_EMPTY = 0x00;
const TERMINAL_LEAF = 0x01;

export type Terminal = { kind: 'empty' } | { kind: 'leaf'; key: Uint8Array; valueHash: Uint8Array };

export interface Proof {
  terminal: Terminal;
  /** One hash per level from the root down (length = depth); 32 zero bytes for an empty sibling. */
  siblings: Uint8Array[];
}

export type ProofInput = Proof | Uint8Array;

function malformed(message: string): BkvError {
  return new BkvError('MALFORMED', `record-tree proof: ${message}`);
}

export function encodeProof(proof: Proof): Uint8Array {
  const depth = proof.siblings.length;
  if (depth > MAX_DEPTH) throw new BkvError('USAGE', `record-tree proof deeper than ${MAX_DEPTH}`);
  const leaf = proof.terminal.kind === 'leaf';
  const bitmapLen = (depth + 7) >> 3;
  let nonEmpty = 0;
  for (const s of proof.siblings) {
    checkHash(s, 'sibling hash');
    if (!isZeroHash(s)) nonEmpty++;
  }
  const out = new Uint8Array(2 + (leaf ? KEY_SIZE + HASH_SIZE : 0) + 2 + bitmapLen + nonEmpty * HASH_SIZE);
  let o = 0;
  out[o++] = PROOF_VERSION;
  out[o++] = leaf ? TERMINAL_LEAF : TERMINAL_EMPTY;
  if (proof.terminal.kind === 'leaf') {
    checkKey(proof.terminal.key, 'terminal key');
    checkHash(proof.terminal.valueHash, 'terminal value hash');
    out.set(proof.terminal.key, o);
    o += KEY_SIZE;
    out.set(proof.terminal.valueHash, o);
    o += HASH_SIZE;
  }
  out[o++] = depth >> 8;
  out[o++] = depth & 0xff;
  const bitmapAt = o;
  o += bitmapLen;
  proof.siblings.forEach((s, i) => {
    if (isZeroHash(s)) return;
    out[bitmapAt + (i >> 3)]! |= 0x80 >> (i & 7);
    out.set(s, o);
    o += HASH_SIZE;
  });
  return out;
}

/** Strict decoding: known version and terminal kind, depth ≤ 256, canonical bitmap, no trailing bytes. */
export function decodeProof(bytes: Uint8Array): Proof {
  if (!(bytes instanceof Uint8Array)) throw malformed('not bytes');
  let o = 0;
  const need = (n: number, what: string): void => {
    if (o + n > bytes.length) throw malformed(`truncated in ${what}`);
  };
  need(2, 'header');
  const version = bytes[o++];
  if (version !== PROOF_VERSION) throw malformed(`unknown version ${version}`);
  const kind = bytes[o++];
  let terminal: Terminal;
  if (kind === TERMINAL_EMPTY) {
    terminal = { kind: 'empty' };
  } else if (kind === TERMINAL_LEAF) {
    need(KEY_SIZE + HASH_SIZE, 'terminal leaf');
    terminal = {
      kind: 'leaf',
      key: bytes.slice(o, o + KEY_SIZE),
      valueHash: bytes.slice(o + KEY_SIZE, o + KEY_SIZE + HASH_SIZE),
    };
    o += KEY_SIZE + HASH_SIZE;
  } else {
    throw malformed(`unknown terminal kind ${kind}`);
  }
  need(2, 'depth');
  const depth = ((bytes[o] as number) << 8) | (bytes[o + 1] as number);
  o += 2;
  if (depth > MAX_DEPTH) throw malformed(`depth ${depth} exceeds ${MAX_DEPTH}`);
  const bitmapLen = (depth + 7) >> 3;
  need(bitmapLen, 'bitmap');
  const bitmap = bytes.subarray(o, o + bitmapLen);
  o += bitmapLen;
  if (depth & 7) {
    const unused = 0xff >> (depth & 7);
    if (((bitmap[bitmapLen - 1] as number) & unused) !== 0) throw malformed('bitmap has bits set past the depth');
  }
  const siblings: Uint8Array[] = [];
  for (let i = 0; i < depth; i++) {
    if (((bitmap[i >> 3] as number) & (0x80 >> (i & 7))) === 0) {
      siblings.push(emptyHash());
      continue;
    }
    need(HASH_SIZE, `sibling ${i}`);
    const s = bytes.slice(o, o + HASH_SIZE);
    o += HASH_SIZE;
    if (isZeroHash(s)) throw malformed(`sibling ${i} is the empty hash but marked non-empty`);
    siblings.push(s);
  }
  if (o !== bytes.length) throw malformed(`${bytes.length - o} trailing bytes`);
  return { terminal, siblings };
}

export function toProof(p: ProofInput): Proof {
  return p instanceof Uint8Array ? decodeProof(p) : p;
}

export function terminalHash(t: Terminal): Uint8Array {
  return t.kind === 'empty' ? emptyHash() : leafHash(t.key, t.valueHash);
}

function short(key: Uint8Array): string {
  return toHex(key.subarray(0, 8));
}

/**
 * Checks the shape of a proof for `key` and returns the hashes along the path: `path[d]` is the
 * hash of the subtree at depth d on the key's path (`path[0]` the root, `path[depth]` the
 * terminal's). Throws VERIFICATION_FAILED for a proof that cannot be the canonical one for `key`.
 * Does not compare with a root.
 */
export function proofPathHashes(key: Uint8Array, proof: Proof): Uint8Array[] {
  checkKey(key);
  const depth = proof.siblings.length;
  if (depth > MAX_DEPTH) throw new BkvError('VERIFICATION_FAILED', `record-tree proof deeper than ${MAX_DEPTH}`);
  const t = proof.terminal;
  if (t.kind === 'leaf') {
    checkKey(t.key, 'terminal key');
    checkHash(t.valueHash, 'terminal value hash');
    if (commonPrefixBits(t.key, key) < depth) {
      throw new BkvError(
        'VERIFICATION_FAILED',
        `record-tree proof for key ${short(key)}… ends in a leaf of key ${short(t.key)}… that is not on that key's path`,
      );
    }
  }
  if (depth > 0 && isZeroHash(proof.siblings[depth - 1]!)) {
    // A leaf or an empty subtree whose sibling is empty would have been compacted one level up.
    throw new BkvError('VERIFICATION_FAILED', `record-tree proof for key ${short(key)}… is not canonical (empty last sibling)`);
  }
  if (t.kind === 'empty' && depth === MAX_DEPTH) {
    throw new BkvError('VERIFICATION_FAILED', `record-tree proof for key ${short(key)}… is not canonical (empty at full depth)`);
  }
  const path: Uint8Array[] = new Array(depth + 1);
  let h = terminalHash(t);
  path[depth] = h;
  for (let i = depth - 1; i >= 0; i--) {
    const s = proof.siblings[i]!;
    checkHash(s, 'sibling hash');
    h = keyBit(key, i) === 0 ? nodeHash(h, s) : nodeHash(s, h);
    path[i] = h;
  }
  return path;
}

/**
 * Verifies a proof for `key` against `root`. Returns the value hash stored under `key`, or null
 * when the proof shows that `key` is absent. Throws BkvError('VERIFICATION_FAILED') when the proof
 * does not hash to `root` or is not canonical, BkvError('MALFORMED') for undecodable bytes.
 */
export function verifyProof(root: Uint8Array, key: Uint8Array, proof: ProofInput): Uint8Array | null {
  checkHash(root, 'root');
  const p = toProof(proof);
  const path = proofPathHashes(key, p);
  if (!bytesEqual(path[0]!, root)) {
    throw new BkvError(
      'VERIFICATION_FAILED',
      `record-tree proof for key ${short(key)}… does not match the root (it hashes to ${short(path[0]!)}…, root is ${short(root)}…)`,
      { key: toHex(key) },
    );
  }
  const t = p.terminal;
  return t.kind === 'leaf' && bytesEqual(t.key, key) ? t.valueHash.slice() : null;
}

/**
 * Verifies a record as read from the untrusted store: the proof against `root`, and the value
 * (null: the store says there is none) against the value hash the proof shows. Throws
 * BkvError('VERIFICATION_FAILED') on any mismatch.
 */
export function verifyRecord(root: Uint8Array, key: Uint8Array, value: Uint8Array | null, proof: ProofInput): void {
  const vh = verifyProof(root, key, proof);
  if (vh === null) {
    if (value !== null) {
      throw new BkvError('VERIFICATION_FAILED', `record ${short(key)}… is absent under the root but a value was returned`);
    }
    return;
  }
  if (value === null) {
    throw new BkvError('VERIFICATION_FAILED', `record ${short(key)}… is present under the root but no value was returned`);
  }
  if (!bytesEqual(hashValue(value), vh)) {
    throw new BkvError('VERIFICATION_FAILED', `record ${short(key)}…: the value does not match its hash under the root`);
  }
}
