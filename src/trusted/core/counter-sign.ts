import { BkvError } from '../../shared/errors.js';
import { artifactDigest, fleetPublicKeys, parseFleetArtifact, type FleetPublicKeys } from '../../shared/fleet-formats/artifact.js';
import { counterSignatureMessage } from '../../shared/fleet-formats/countersign.js';
import { parseVerifierKey } from '../../shared/fleet-formats/note.js';
import { parseStatement, verifyStatementSignature } from '../../shared/fleet-formats/statement.js';
import { equalBytes } from '../../shared/bytes.js';

export interface CounterSignRequest {
  /** The fleet artifact bytes the witness logged. */
  artifact: Uint8Array;
  /** The witness statement bytes and the witness's signature over them. */
  statement: Uint8Array;
  witnessSignature: Uint8Array;
}

/**
 * What the core checks before it counter-signs a witness statement with the fleet key: the
 * artifact names exactly this fleet's keys, the statement's digest is that artifact's, and the
 * signature is by a witness the fleet was configured to trust. A host or operator cannot get the
 * fleet to vouch for another key set.
 */
export function checkCounterSignRequest(
  req: CounterSignRequest,
  own: FleetPublicKeys,
  trustedWitnesses: readonly string[],
): Uint8Array {
  const keys = fleetPublicKeys(parseFleetArtifact(req.artifact));
  if (
    !equalBytes(keys.opaqueServerPublicKey, own.opaqueServerPublicKey) ||
    !equalBytes(keys.encryptionPublicKey, own.encryptionPublicKey) ||
    !equalBytes(keys.signingPublicKey, own.signingPublicKey)
  ) {
    throw new BkvError('VERIFICATION_FAILED', 'the artifact does not name this fleet\'s keys; refusing to counter-sign');
  }
  const st = parseStatement(req.statement);
  if (!equalBytes(st.digest, artifactDigest(req.artifact))) {
    throw new BkvError('VERIFICATION_FAILED', 'the statement does not cover this artifact; refusing to counter-sign');
  }
  const witness = trustedWitnesses.map(parseVerifierKey).find((w) => w.name === st.witness);
  if (!witness) throw new BkvError('VERIFICATION_FAILED', `witness "${st.witness}" is not trusted by this fleet`);
  verifyStatementSignature(req.statement, req.witnessSignature, witness.publicKey);
  return counterSignatureMessage(req.witnessSignature);
}
