/**
 * Shapes shared by the witness server and its clients (docs/formats/witness-api.md).
 */
import { utf8 } from '../shared/fleet-formats/encoding.js';

/** What the operator signs to submit an epoch (Ed25519, key registered in the witness config). */
export function submissionMessage(namespace: string, epoch: number, digestHex: string): Uint8Array {
  return utf8(`bkv-witness-submission/v1\nnamespace ${namespace}\nepoch ${epoch}\ndigest ${digestHex}\n`);
}

export interface SubmissionBody {
  /** base64 of the exact artifact bytes */
  artifact: string;
  epoch: number;
  /** lower-case hex SHA-256 of the artifact */
  digest: string;
  /** base64 Ed25519 public key of the operator */
  operatorKey: string;
  /** base64 Ed25519 signature over submissionMessage(namespace, epoch, digest) */
  signature: string;
  /**
   * base64 of the exact deployment-evidence bytes (docs/formats/evidence.md). Required when the
   * witness has an evidence policy (allow lists); verified whenever present.
   */
  evidence?: string;
}

/** One logged epoch as the witness serves it. */
export interface EpochRecord {
  namespace: string;
  epoch: number;
  timestamp: number;
  digest: string;
  /** base64 of the exact statement bytes (the log entry) */
  statement: string;
  /** base64 Ed25519 signature by the witness over the statement bytes */
  witnessSignature: string;
  leafIndex: number;
  /** base64 fleet counter-signature, once uploaded */
  counterSignature?: string;
  /** true when deployment evidence was verified and logged with this epoch */
  evidence?: boolean;
}

export interface WitnessKeyInfo {
  origin: string;
  /** note verifier key: origin+keyid+base64(0x01‖pubkey) — what clients pin */
  verifierKey: string;
  publicKey: string;
  keyId: string;
  /** C2SP tlog-cosignature verifier key: origin+keyid+base64(0x04‖cosigner pubkey) — what witness policies list */
  cosignerVerifierKey: string;
}

export interface ProofResponse {
  size1?: number;
  size2?: number;
  leafIndex?: number;
  treeSize?: number;
  proof: string[];
}
