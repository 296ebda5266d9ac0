/**
 * The digest of the records in a range, from proofs against a root. The range is cut into its
 * aligned blocks; for each, the proof of the block's first id gives the block's subtree, which,
 * lifted to depth 0 over empty siblings, is the root of a tree holding only the block's records
 * (what a `RootBuilder` over them gives). Two roots with equal range digests hold the same records,
 * with the same values, in the range. Layout: docs/formats/groups.md.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../../shared/errors.js';
import { commonPrefixBits, decodeProof, emptyHash, keyBit, leafHash, nodeHash, verifyProof } from '../../shared/record-tree/index.js';
import { proofPathHashes } from '../../shared/record-tree/proof.js';
import { Writer } from '../core/codec.js';
import { alignedBlocks, slotFirstId, writeRange, type KeyRange } from './range.js';

const DIGEST_TAG = 0x44;

/** The root of a tree holding only the records under `prefix`'s first `depth` bits, from a proof of `prefix` against `root`. */
export function blockRoot(root: Uint8Array, prefix: Uint8Array, depth: number, proofBytes: Uint8Array): Uint8Array {
  verifyProof(root, prefix, proofBytes);
  const proof = decodeProof(proofBytes);
  const d = proof.siblings.length;
  let h: Uint8Array;
  if (d > depth) {
    // The path goes deeper: the block's subtree is an internal node (two or more records).
    h = proofPathHashes(prefix, proof)[depth]!;
  } else {
    const t = proof.terminal;
    if (t.kind === 'leaf' && commonPrefixBits(t.key, prefix) >= depth) return leafHash(t.key, t.valueHash);
    return emptyHash();
  }
  for (let i = depth - 1; i >= 0; i--) h = keyBit(prefix, i) === 0 ? nodeHash(h, emptyHash()) : nodeHash(emptyHash(), h);
  return h;
}

/**
 * What a block holds according to a proof of its first id (which must verify against `root`):
 * nothing, one record (a leaf), or two or more (an internal node).
 */
export function blockShape(root: Uint8Array, prefix: Uint8Array, depth: number, proofBytes: Uint8Array): 'empty' | 'leaf' | 'node' {
  verifyProof(root, prefix, proofBytes);
  const proof = decodeProof(proofBytes);
  if (proof.siblings.length > depth) return 'node';
  const t = proof.terminal;
  return t.kind === 'leaf' && commonPrefixBits(t.key, prefix) >= depth ? 'leaf' : 'empty';
}

/**
 * The range digest from one proof per aligned block (in block order) against `root`.
 * Throws VERIFICATION_FAILED (reason 'digest') for a wrong number of proofs or a proof that does not verify.
 */
export function rangeDigest(root: Uint8Array, range: KeyRange, proofs: readonly Uint8Array[]): Uint8Array {
  const blocks = alignedBlocks(range);
  if (proofs.length !== blocks.length) {
    throw new BkvError('VERIFICATION_FAILED', `a range digest needs ${blocks.length} block proofs, got ${proofs.length}`, { reason: 'digest' });
  }
  const w = writeRange(new Writer(64 + 33 * blocks.length).u8(DIGEST_TAG), range);
  blocks.forEach((b, i) => {
    let h: Uint8Array;
    try {
      h = blockRoot(root, slotFirstId(b.slot), b.depth, proofs[i]!);
    } catch (e) {
      throw new BkvError('VERIFICATION_FAILED', `block proof ${i} of the range does not verify against the root`, { reason: 'digest', cause: String(e) });
    }
    w.u8(b.depth).raw(h);
  });
  return sha256(w.finish());
}

/** The ids whose proofs a range digest needs, in order. */
export function digestKeys(range: KeyRange): Uint8Array[] {
  return alignedBlocks(range).map((b) => slotFirstId(b.slot));
}
