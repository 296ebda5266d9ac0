/**
 * Checkpoint-to-checkpoint consistency: the heart of split-view detection. Browser-safe.
 */
import { BkvError } from '../../shared/errors.js';
import { MerkleProofError, verifyConsistency } from '../../shared/merkle/index.js';
import type { Checkpoint } from './checkpoint.js';
import { equalBytes } from '../../shared/bytes.js';

/**
 * Throws VERIFICATION_FAILED (check "consistency") unless `older` and `newer` (same origin) are
 * views of one append-only log: equal sizes need equal roots, otherwise `proof` must be an
 * RFC 9162 consistency proof from the smaller to the larger.
 */
export function checkCheckpointConsistency(a: Checkpoint, b: Checkpoint, proof: readonly Uint8Array[]): void {
  if (a.origin !== b.origin) {
    throw new BkvError('VERIFICATION_FAILED', 'checkpoints come from different logs', { check: 'consistency' });
  }
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  if (small.size === large.size) {
    if (!equalBytes(small.rootHash, large.rootHash)) {
      throw new BkvError(
        'VERIFICATION_FAILED',
        `split view: the witness signed two different trees of size ${small.size}`,
        { check: 'consistency', size: small.size },
      );
    }
    return;
  }
  if (small.size === 0) return; // every tree extends the empty tree
  try {
    verifyConsistency(small.size, large.size, proof, small.rootHash, large.rootHash);
  } catch (e) {
    if (e instanceof MerkleProofError) {
      throw new BkvError(
        'VERIFICATION_FAILED',
        `split view or rewritten log: tree ${large.size} is not consistent with tree ${small.size} (${e.message})`,
        { check: 'consistency', size1: small.size, size2: large.size },
      );
    }
    throw e;
  }
}
