/**
 * Reading an epoch record as the witness serves it. Only `statement` and `witnessSignature` are
 * signed; `namespace`, `epoch`, `timestamp` and `digest` beside them are unsigned copies of the
 * statement's fields, which anyone between the witness and the reader can rewrite. Readers take
 * every value from the signed statement and refuse a record whose copies disagree with it
 * (docs/formats/witness-api.md, "Epoch records").
 */
import { BkvError } from '../shared/errors.js';
import { decodeBase64, encodeHex } from '../shared/fleet-formats/encoding.js';
import type { NoteVerifier } from '../shared/fleet-formats/note.js';
import { parseStatement, verifyStatementSignature, type WitnessStatement } from '../shared/fleet-formats/statement.js';
import type { EpochRecord } from './protocol.js';

export interface SignedEpoch {
  /** The exact statement bytes (the log entry). */
  readonly statementBytes: Uint8Array;
  /** The statement, parsed from the signed bytes. */
  readonly statement: WitnessStatement;
  readonly witnessSignature: Uint8Array;
}

/**
 * The record's statement, checked: well formed, by the pinned witness, about `namespace` and
 * `epoch`, and signed. VERIFICATION_FAILED (details.check "statement" or "witness-signature") or
 * MALFORMED otherwise. Does not look at the unsigned copies: see assertRecordMatchesStatement.
 */
export function openEpochRecord(rec: EpochRecord, verifier: NoteVerifier, namespace: string, epoch: number): SignedEpoch {
  const statementBytes = decodeBase64(rec.statement, 'statement');
  const statement = parseStatement(statementBytes);
  if (statement.namespace !== namespace || statement.epoch !== epoch) {
    throw new BkvError('VERIFICATION_FAILED', `the statement is for ${statement.namespace} epoch ${statement.epoch}, not ${namespace} epoch ${epoch}`, {
      check: 'statement',
    });
  }
  if (statement.witness !== verifier.name) {
    throw new BkvError('VERIFICATION_FAILED', `the statement names witness ${statement.witness}, not ${verifier.name}`, { check: 'statement' });
  }
  const witnessSignature = decodeBase64(rec.witnessSignature, 'witness signature', 64);
  verifyStatementSignature(statementBytes, witnessSignature, verifier.publicKey);
  return { statementBytes, statement, witnessSignature };
}

/**
 * Throws when an unsigned field of the record differs from (or lacks) the signed value: the
 * answer was altered on the way or the witness contradicts its own signature. The message names
 * the field and the signed value, never the altered one.
 */
export function assertRecordMatchesStatement(rec: EpochRecord, st: WitnessStatement): void {
  const signed: [keyof EpochRecord, string | number][] = [
    ['namespace', st.namespace],
    ['epoch', st.epoch],
    ['timestamp', st.timestamp],
    ['digest', encodeHex(st.digest)],
  ];
  for (const [field, value] of signed) {
    if (rec[field] !== value) {
      throw new BkvError(
        'VERIFICATION_FAILED',
        `the witness's record of ${st.namespace} epoch ${st.epoch} was altered: its unsigned "${field}" field differs from the signed statement, which says ${value}`,
        { check: 'record', field, namespace: st.namespace, epoch: st.epoch },
      );
    }
  }
}

/** True for the error assertRecordMatchesStatement throws (an audit stops on it). */
export function isAlteredRecord(e: unknown): e is BkvError {
  return e instanceof BkvError && e.details.check === 'record';
}
