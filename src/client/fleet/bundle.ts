/**
 * The validation bundle: everything a client needs to accept a fleet epoch's keys, checked against
 * pinned witness keys only. Browser-safe. Format: docs/formats/validation-bundle.md.
 */
import { equalBytes } from '../../shared/bytes.js';
import { BkvError } from '../../shared/errors.js';
import { MerkleProofError, leafHash, verifyInclusion } from '../../shared/merkle/index.js';
import { artifactDigest, fleetPublicKeys, parseFleetArtifact, type FleetArtifact, type FleetPublicKeys } from '../../shared/fleet-formats/artifact.js';
import { verifyCheckpoint, type SignedCheckpoint } from './checkpoint.js';
import { checkCheckpointConsistency } from './consistency.js';
import { verifyCounterSignature } from '../../shared/fleet-formats/countersign.js';
import { checkNamespace, decodeBase64, decodeHex, encodeHex, fromUtf8 } from '../../shared/fleet-formats/encoding.js';
import { sameVerifier, type NoteVerifier } from '../../shared/fleet-formats/note.js';
import { CosignatureQuorumError } from './cosignature.js';
import { verifyCosignatureQuorum, type WitnessPolicy } from './policy.js';
import { parseStatement, verifyStatementSignature, type WitnessStatement } from '../../shared/fleet-formats/statement.js';

export const VALIDATION_BUNDLE_FORMAT = 'bkv-validation-bundle/v1';

export interface ValidationBundle {
  format: typeof VALIDATION_BUNDLE_FORMAT;
  namespace: string;
  epoch: number;
  /** base64 of the exact artifact bytes */
  artifact: string;
  /** lower-case hex SHA-256 of the artifact bytes */
  digest: string;
  /** base64 of the exact statement bytes (also the log entry) */
  statement: string;
  /** base64 of the witness's 64-byte Ed25519 signature over the statement */
  witnessSignature: string;
  /** base64 of the fleet's 64-byte Ed25519 counter-signature (see countersign.ts) */
  counterSignature: string;
  /** a C2SP tlog-checkpoint signed note from the witness */
  checkpoint: string;
  /** index of the statement in the witness log */
  leafIndex: number;
  /** base64 hashes: inclusion proof of the statement in the checkpoint's tree */
  inclusionProof: string[];
  /** optional: a consistency proof between the client's known tree size and the checkpoint's */
  consistency?: { size1: number; size2: number; proof: string[] };
}

export interface VerifiedBundle {
  readonly namespace: string;
  readonly epoch: number;
  readonly artifactBytes: Uint8Array;
  readonly artifact: FleetArtifact;
  readonly keys: FleetPublicKeys;
  readonly statement: WitnessStatement;
  readonly checkpoint: SignedCheckpoint;
  readonly witness: NoteVerifier;
}

export interface VerifyBundleOptions {
  /** Pinned witness keys (any one of them may have signed). */
  witnesses: readonly NoteVerifier[];
  /** The namespace the client expects. */
  namespace: string;
  /** The newest checkpoint the client has seen from each pinned witness (the bundle's witness is used). */
  previousCheckpoints?: readonly SignedCheckpoint[];
  /** The newest epoch the client has accepted in this namespace; an older epoch is a replay. */
  minEpoch?: number;
  /** Milliseconds since the Unix epoch; when given, the artifact's validity window is enforced. */
  now?: number;
  /**
   * Witness policy (k of n cosigners): when given, the checkpoint must also carry at least k valid
   * cosignatures from distinct listed cosigners (check "cosignatures").
   */
  witnessPolicy?: WitnessPolicy;
}

function fail(check: string, message: string, extra: Record<string, unknown> = {}): BkvError {
  return new BkvError('VERIFICATION_FAILED', `fleet key refused: ${message}`, { check, ...extra });
}

function rewrap<T>(check: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof BkvError) {
      if (e.code === 'VERIFICATION_FAILED' && String(e.message).startsWith('fleet key refused')) throw e;
      throw fail((e.details.check as string | undefined) ?? check, `${what}: ${e.message}`);
    }
    if (e instanceof MerkleProofError) throw fail(check, `${what}: ${e.message}`);
    throw fail(check, `${what}: ${(e as Error)?.message ?? String(e)}`);
  }
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Strict structural parse of a bundle given as an object, JSON text or JSON bytes. */
export function parseValidationBundle(input: unknown): ValidationBundle {
  return rewrap('format', 'malformed validation bundle', () => {
    let x = input;
    if (x instanceof Uint8Array) x = fromUtf8(x, 'bundle');
    if (typeof x === 'string') x = JSON.parse(x);
    if (!isObj(x)) throw new Error('not a JSON object');
    const allowed = [
      'format', 'namespace', 'epoch', 'artifact', 'digest', 'statement', 'witnessSignature',
      'counterSignature', 'checkpoint', 'leafIndex', 'inclusionProof', 'consistency',
    ];
    for (const k of Object.keys(x)) if (!allowed.includes(k)) throw new Error(`unknown field "${k}"`);
    if (x.format !== VALIDATION_BUNDLE_FORMAT) throw new Error(`format must be "${VALIDATION_BUNDLE_FORMAT}"`);
    checkNamespace(x.namespace);
    for (const k of ['artifact', 'digest', 'statement', 'witnessSignature', 'counterSignature', 'checkpoint']) {
      if (typeof x[k] !== 'string') throw new Error(`"${k}" must be a string`);
    }
    for (const k of ['epoch', 'leafIndex']) {
      const v = x[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`"${k}" must be a non-negative integer`);
    }
    const proofList = (v: unknown, what: string): string[] => {
      if (!Array.isArray(v) || v.length > 64 || v.some((p) => typeof p !== 'string')) {
        throw new Error(`"${what}" must be a list of at most 64 base64 hashes`);
      }
      return v as string[];
    };
    proofList(x.inclusionProof, 'inclusionProof');
    if (x.consistency !== undefined) {
      const c = x.consistency;
      if (!isObj(c)) throw new Error('"consistency" must be an object');
      for (const k of Object.keys(c)) if (!['size1', 'size2', 'proof'].includes(k)) throw new Error(`unknown consistency field "${k}"`);
      for (const k of ['size1', 'size2']) {
        const v = c[k];
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`consistency "${k}" must be a non-negative integer`);
      }
      proofList(c.proof, 'consistency.proof');
    }
    return x as unknown as ValidationBundle;
  });
}

/**
 * Verifies a bundle completely. Each failing check throws VERIFICATION_FAILED whose message names
 * the check and whose `details.check` is one of: format, digest, statement, witness-signature,
 * artifact, counter-signature, checkpoint-signature, cosignatures, inclusion, consistency, rollback,
 * validity. A missed cosignature quorum is a CosignatureQuorumError naming the missing and invalid
 * cosigners.
 */
export function verifyValidationBundle(input: unknown, opts: VerifyBundleOptions): VerifiedBundle {
  const b = parseValidationBundle(input);
  const namespace = opts.namespace;
  if (b.namespace !== namespace) throw fail('statement', `bundle is for namespace "${b.namespace}", expected "${namespace}"`);

  // 1. digest of the artifact bytes
  const artifactBytes = rewrap('format', 'artifact encoding', () => decodeBase64(b.artifact, 'artifact'));
  const digest = rewrap('format', 'digest encoding', () => decodeHex(b.digest, 'digest', 32));
  const actual = artifactDigest(artifactBytes);
  if (!equalBytes(actual, digest)) {
    throw fail('digest', `artifact SHA-256 ${encodeHex(actual)} does not match the digest ${b.digest}`);
  }

  // 2. statement: well-formed, about this namespace, epoch and digest
  const statementBytes = rewrap('format', 'statement encoding', () => decodeBase64(b.statement, 'statement'));
  const statement = rewrap('statement', 'witness statement', () => parseStatement(statementBytes));
  if (statement.namespace !== namespace) throw fail('statement', `statement is for namespace "${statement.namespace}"`);
  if (statement.epoch !== b.epoch) throw fail('statement', `statement epoch ${statement.epoch} differs from bundle epoch ${b.epoch}`);
  if (!equalBytes(statement.digest, digest)) throw fail('digest', 'the witness statement names a different artifact digest');

  // 3. witness signature by a pinned witness
  const witness = opts.witnesses.find((w) => w.name === statement.witness);
  if (!witness) throw fail('witness-signature', `statement is from witness "${statement.witness}", which is not pinned`);
  const witnessSig = rewrap('format', 'witness signature encoding', () => decodeBase64(b.witnessSignature, 'witnessSignature', 64));
  rewrap('witness-signature', 'witness signature', () => verifyStatementSignature(statementBytes, witnessSig, witness.publicKey));

  // 4. artifact: strict parse, same namespace
  const artifact = rewrap('artifact', 'fleet artifact', () => parseFleetArtifact(artifactBytes));
  if (artifact.namespace !== namespace) throw fail('artifact', `artifact is for namespace "${artifact.namespace}"`);
  const keys = fleetPublicKeys(artifact);

  // 5. counter-signature by the artifact's signing key over the witness signature bytes
  const counterSig = rewrap('format', 'counter-signature encoding', () => decodeBase64(b.counterSignature, 'counterSignature', 64));
  rewrap('counter-signature', 'counter-signature', () => verifyCounterSignature(witnessSig, counterSig, keys.signingPublicKey));

  // 6. checkpoint signed by the same witness, origin = key name
  const checkpoint = rewrap('checkpoint-signature', 'checkpoint', () => verifyCheckpoint(b.checkpoint, witness));

  // 6b. cosigned by a quorum of the policy's witnesses
  if (opts.witnessPolicy) checkQuorum(b.checkpoint, witness, opts.witnessPolicy, opts.now);

  // 7. the statement is in that tree
  const proof = rewrap('format', 'inclusion proof encoding', () => b.inclusionProof.map((p) => decodeBase64(p, 'proof hash', 32)));
  rewrap('inclusion', 'inclusion proof', () =>
    verifyInclusion(b.leafIndex, checkpoint.size, leafHash(statementBytes), proof, checkpoint.rootHash),
  );

  // 8. consistent with the newest checkpoint this client saw before
  const prev = opts.previousCheckpoints?.find((p) => p.origin === checkpoint.origin);
  if (prev && prev.size > 0) {
    let cproof: Uint8Array[] = [];
    if (prev.size !== checkpoint.size) {
      const c = b.consistency;
      const want = [Math.min(prev.size, checkpoint.size), Math.max(prev.size, checkpoint.size)];
      if (!c || c.size1 !== want[0] || c.size2 !== want[1]) {
        throw fail('consistency', `no consistency proof between tree ${want[0]} seen before and tree ${want[1]}`);
      }
      cproof = rewrap('format', 'consistency proof encoding', () => c.proof.map((p) => decodeBase64(p, 'proof hash', 32)));
    }
    rewrap('consistency', 'log consistency', () => checkCheckpointConsistency(prev, checkpoint, cproof));
  }

  // 9. no rollback to an older epoch
  if (opts.minEpoch !== undefined && b.epoch < opts.minEpoch) {
    throw fail('rollback', `epoch ${b.epoch} is older than epoch ${opts.minEpoch} accepted before (replay)`);
  }

  // 10. validity window
  if (opts.now !== undefined) {
    if (opts.now < Date.parse(artifact.notBefore)) throw fail('validity', `fleet keys are not valid before ${artifact.notBefore}`);
    if (opts.now >= Date.parse(artifact.notAfter)) throw fail('validity', `fleet keys expired at ${artifact.notAfter}`);
  }

  // Every value returned comes from signed bytes (the statement, the artifact it names, the checkpoint).
  return { namespace: statement.namespace, epoch: statement.epoch, artifactBytes, artifact, keys, statement, checkpoint, witness };
}

function checkQuorum(note: string, log: NoteVerifier, policy: WitnessPolicy, nowMs: number | undefined): void {
  if (policy.logs.length > 0 && !policy.logs.some((l) => sameVerifier(l, log))) {
    throw fail('cosignatures', `the witness policy does not list the log key of ${log.name}`);
  }
  try {
    verifyCosignatureQuorum(note, policy, nowMs !== undefined ? { nowSeconds: Math.floor(nowMs / 1000) } : {});
  } catch (e) {
    if (e instanceof CosignatureQuorumError) {
      throw new CosignatureQuorumError(`fleet key refused: ${e.message}`, e.required, e.validCosigners, e.missingCosigners, e.invalidCosigners);
    }
    throw fail('format', `checkpoint: ${(e as Error).message}`);
  }
}
