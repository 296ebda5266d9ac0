/**
 * C2SP tlog-checkpoint bodies and their signed notes. Browser-safe.
 *
 *   <origin>\n<tree size, decimal>\n<root hash, base64>\n[<extension line>\n]*
 *
 * A checkpoint is valid only when signed by a key whose name equals the origin.
 */
import { BkvError } from '../../shared/errors.js';
import { decodeBase64, encodeBase64, malformed, parseDecimal } from '../../shared/fleet-formats/encoding.js';
import { openNote, signNote, type NoteSigner, type NoteVerifier, type ParsedNote } from '../../shared/fleet-formats/note.js';

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  readonly extensions: readonly string[];
}

export interface SignedCheckpoint extends Checkpoint {
  /** The full signed note, as received. */
  readonly note: string;
}

export function formatCheckpointBody(cp: Checkpoint): string {
  if (!/^[^\s+]+$/u.test(cp.origin)) throw malformed('checkpoint origin must be a non-empty name without spaces or "+"');
  let s = `${cp.origin}\n${cp.size}\n${encodeBase64(cp.rootHash)}\n`;
  for (const e of cp.extensions) {
    if (e === '' || e.includes('\n')) throw malformed('checkpoint extension lines must be non-empty single lines');
    s += e + '\n';
  }
  return s;
}

export function parseCheckpointBody(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw malformed('checkpoint: body must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw malformed('checkpoint: needs origin, size and root hash lines');
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin === '' || /[\s+]/u.test(origin)) throw malformed('checkpoint: invalid origin line');
  const size = parseDecimal(sizeLine, 'checkpoint tree size');
  const rootHash = decodeBase64(rootLine, 'checkpoint root hash', 32);
  for (const e of extensions) if (e === '') throw malformed('checkpoint: empty extension line');
  return { origin, size, rootHash, extensions };
}

export function signCheckpoint(cp: Checkpoint, signer: NoteSigner): string {
  if (signer.name !== cp.origin) throw malformed('checkpoint: the signing key name must equal the origin');
  return signNote(formatCheckpointBody(cp), [signer]);
}

/** Verifies a checkpoint note: strict parse, a valid signature by `verifier`, origin = key name. */
export function verifyCheckpoint(note: string, verifier: NoteVerifier): SignedCheckpoint {
  let opened: ParsedNote;
  try {
    opened = openNote(note, verifier);
  } catch (e) {
    if (e instanceof BkvError && e.code === 'VERIFICATION_FAILED') {
      throw new BkvError('VERIFICATION_FAILED', `checkpoint signature check failed: ${e.message}`, {
        check: 'checkpoint-signature',
      });
    }
    throw e;
  }
  const cp = parseCheckpointBody(opened.text);
  if (cp.origin !== verifier.name) {
    throw new BkvError('VERIFICATION_FAILED', `checkpoint origin "${cp.origin}" is not the witness "${verifier.name}"`, {
      check: 'checkpoint-signature',
    });
  }
  return { ...cp, note };
}
