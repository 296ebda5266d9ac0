/**
 * Witness statements: what the witness signs for each fleet epoch. Browser-safe.
 *
 * The statement is these exact UTF-8 bytes (every line ends with "\n"), signed with the witness's
 * Ed25519 key as-is and appended as-is to the witness's Merkle log:
 *
 *   bkv-witness-statement/v1
 *   witness <witness origin>
 *   namespace <namespace>
 *   epoch <decimal, from 1>
 *   timestamp <decimal milliseconds since the Unix epoch>
 *   digest <lower-case hex SHA-256 of the fleet artifact bytes>
 */
import { BkvError } from '../errors.js';
import { checkNamespace, decodeHex, encodeHex, fromUtf8, malformed, parseDecimal, utf8 } from './encoding.js';
import { safeVerify } from './note.js';

export const STATEMENT_HEADER = 'bkv-witness-statement/v1';

export interface WitnessStatement {
  readonly witness: string;
  readonly namespace: string;
  readonly epoch: number;
  readonly timestamp: number;
  readonly digest: Uint8Array;
}

export function encodeStatement(s: WitnessStatement): Uint8Array {
  checkNamespace(s.namespace);
  if (!/^[^\s+]+$/u.test(s.witness)) throw malformed('statement: invalid witness name');
  if (!Number.isSafeInteger(s.epoch) || s.epoch < 1) throw malformed('statement: epoch must be a positive integer');
  if (!Number.isSafeInteger(s.timestamp) || s.timestamp < 0) throw malformed('statement: bad timestamp');
  if (s.digest.length !== 32) throw malformed('statement: digest must be 32 bytes');
  return utf8(
    `${STATEMENT_HEADER}\nwitness ${s.witness}\nnamespace ${s.namespace}\nepoch ${s.epoch}\ntimestamp ${s.timestamp}\ndigest ${encodeHex(s.digest)}\n`,
  );
}

export function parseStatement(bytes: Uint8Array): WitnessStatement {
  if (bytes.length > 4096) throw malformed('statement: too large');
  const text = fromUtf8(bytes, 'statement');
  if (!text.endsWith('\n')) throw malformed('statement: must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  const keys = ['witness', 'namespace', 'epoch', 'timestamp', 'digest'];
  if (lines.length !== keys.length + 1 || lines[0] !== STATEMENT_HEADER) {
    throw malformed('statement: not a bkv-witness-statement/v1');
  }
  const v: string[] = [];
  keys.forEach((k, i) => {
    const line = lines[i + 1]!;
    if (!line.startsWith(k + ' ')) throw malformed(`statement: expected "${k}" on line ${i + 2}`);
    v.push(line.slice(k.length + 1));
  });
  const st: WitnessStatement = {
    witness: v[0]!,
    namespace: checkNamespace(v[1], 'statement namespace'),
    epoch: parseDecimal(v[2]!, 'statement epoch'),
    timestamp: parseDecimal(v[3]!, 'statement timestamp'),
    digest: decodeHex(v[4], 'statement digest', 32),
  };
  if (st.epoch < 1) throw malformed('statement: epoch must be at least 1');
  // Canonical: re-encoding must give the same bytes.
  const again = encodeStatement(st);
  if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) throw malformed('statement: not canonical');
  return st;
}

export function verifyStatementSignature(statement: Uint8Array, signature: Uint8Array, witnessKey: Uint8Array): void {
  if (signature.length !== 64 || !safeVerify(signature, statement, witnessKey)) {
    throw new BkvError('VERIFICATION_FAILED', 'witness signature on the statement is invalid', {
      check: 'witness-signature',
    });
  }
}
