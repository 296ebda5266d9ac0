/**
 * `bkv audit checkpoints`: given two (cosigned) checkpoints of one log, prove them consistent or
 * report the fork, with both checkpoints as the evidence. A fork is two log-signed trees that
 * cannot both be views of one append-only log: equal sizes with different roots, or sizes for
 * which the log cannot give a consistency proof that verifies.
 */
import { equalBytes } from '../shared/bytes.js';
import { BkvError } from '../shared/errors.js';
import { verifyCheckpoint, type SignedCheckpoint } from '../client/fleet/checkpoint.js';
import { checkCosignatures } from '../client/fleet/cosignature.js';
import { encodeBase64 } from '../shared/fleet-formats/encoding.js';
import type { NoteVerifier } from '../shared/fleet-formats/note.js';
import type { WitnessPolicy } from '../client/fleet/policy.js';
import { MerkleProofError, emptyRoot, verifyConsistency } from '../shared/merkle/index.js';

export interface CheckpointSummary {
  size: number;
  rootHash: string;
  /** Policy witnesses with a valid cosignature on this checkpoint (labels). */
  cosigners: string[];
  /** Whether the policy's quorum is met (undefined without a policy). */
  quorumMet?: boolean;
  note: string;
}

export interface CheckpointComparison {
  /** consistent: one is a prefix of the other; fork: evidence of a split view; unproven: no proof available. */
  verdict: 'consistent' | 'fork' | 'unproven';
  origin: string;
  first: CheckpointSummary;
  second: CheckpointSummary;
  reason: string;
  /** Policy witnesses that cosigned both sides of a fork: each of them misbehaved. */
  cosignedBoth: string[];
  quorum?: number;
}

export interface CompareOptions {
  /** The log's key (name = origin). */
  logKey: NoteVerifier;
  policy?: WitnessPolicy;
  /** Fetches a consistency proof from the log (or anyone) between two sizes. */
  consistencyProof?: (size1: number, size2: number) => Promise<Uint8Array[]>;
}

function summarize(cp: SignedCheckpoint, policy: WitnessPolicy | undefined): CheckpointSummary {
  const s: CheckpointSummary = { size: cp.size, rootHash: encodeBase64(cp.rootHash), cosigners: [], note: cp.note };
  if (policy) {
    const r = checkCosignatures(cp.note, policy.witnesses.map((w) => w.verifier));
    s.cosigners = r.valid.map((v) => policy.witnesses.find((w) => w.verifier === v)!.label);
    s.quorumMet = s.cosigners.length >= policy.quorum;
  }
  return s;
}

export async function compareCheckpoints(noteA: string, noteB: string, opts: CompareOptions): Promise<CheckpointComparison> {
  const open = (n: string, which: string): SignedCheckpoint => {
    try {
      return verifyCheckpoint(n, opts.logKey);
    } catch (e) {
      throw new BkvError('VERIFICATION_FAILED', `${which} checkpoint is not signed by the log ${opts.logKey.name}: ${(e as Error).message}`, {
        check: 'checkpoint-signature',
      });
    }
  };
  const a = open(noteA, 'the first');
  const b = open(noteB, 'the second');
  const first = summarize(a, opts.policy);
  const second = summarize(b, opts.policy);
  const base = { origin: a.origin, first, second, ...(opts.policy ? { quorum: opts.policy.quorum } : {}) };
  const fork = (reason: string): CheckpointComparison => ({
    verdict: 'fork',
    reason,
    cosignedBoth: first.cosigners.filter((c) => second.cosigners.includes(c)),
    ...base,
  });
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  if (small.size === large.size) {
    if (equalBytes(small.rootHash, large.rootHash)) {
      return { verdict: 'consistent', reason: `the same tree of size ${a.size}`, cosignedBoth: [], ...base };
    }
    return fork(`the log signed two different trees of size ${a.size}`);
  }
  if (small.size === 0) {
    if (!equalBytes(small.rootHash, emptyRoot())) {
      return fork('a tree of size 0 whose root is not the empty-tree hash');
    }
    return { verdict: 'consistent', reason: 'every tree extends the empty tree', cosignedBoth: [], ...base };
  }
  if (!opts.consistencyProof) {
    return { verdict: 'unproven', reason: `sizes ${small.size} and ${large.size} differ and no consistency proof source was given (--witness)`, cosignedBoth: [], ...base };
  }
  let proof: Uint8Array[];
  try {
    proof = await opts.consistencyProof(small.size, large.size);
  } catch (e) {
    return { verdict: 'unproven', reason: `no consistency proof from ${small.size} to ${large.size}: ${(e as Error).message}`, cosignedBoth: [], ...base };
  }
  try {
    verifyConsistency(small.size, large.size, proof, small.rootHash, large.rootHash);
  } catch (e) {
    if (!(e instanceof MerkleProofError)) throw e;
    return fork(`the log's consistency proof from tree ${small.size} to tree ${large.size} does not verify (${e.message}): the two trees are not one append-only history`);
  }
  return { verdict: 'consistent', reason: `tree ${large.size} extends tree ${small.size} (consistency proof verified)`, cosignedBoth: [], ...base };
}

export function formatComparison(r: CheckpointComparison): string[] {
  const side = (name: string, s: CheckpointSummary): string[] => [
    `${name}: size ${s.size}, root ${s.rootHash}` +
      (r.quorum !== undefined ? `, cosigned by ${s.cosigners.length ? s.cosigners.join(', ') : 'no policy witness'} (quorum ${r.quorum} ${s.quorumMet ? 'met' : 'NOT met'})` : ''),
  ];
  const lines = [`log ${r.origin}`, ...side('checkpoint 1', r.first), ...side('checkpoint 2', r.second)];
  if (r.verdict === 'consistent') {
    lines.push(`CONSISTENT: ${r.reason}`);
    return lines;
  }
  if (r.verdict === 'unproven') {
    lines.push(`UNPROVEN: ${r.reason}`);
    return lines;
  }
  lines.push(`FORK DETECTED: ${r.reason}`);
  if (r.cosignedBoth.length) lines.push(`witnesses that cosigned both views (misbehaving): ${r.cosignedBoth.join(', ')}`);
  lines.push('', 'evidence — checkpoint 1:', ...r.first.note.trimEnd().split('\n').map((l) => '  ' + l));
  lines.push('', 'evidence — checkpoint 2:', ...r.second.note.trimEnd().split('\n').map((l) => '  ' + l));
  return lines;
}
