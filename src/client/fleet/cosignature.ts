/**
 * C2SP tlog-cosignature v1 (Ed25519, signature type 0x04): witness cosignatures on checkpoints.
 * Browser-safe. Format: docs/formats/cosignature.md.
 *
 *   key ID          = SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[0:4]
 *   verifier key    = name "+" hex(key ID) "+" base64(0x04 ‖ public key)
 *   signed message  = "cosignature/v1\n" "time " <decimal seconds> "\n" ‖ checkpoint body
 *   signature line  = "— " name " " base64(key ID(4) ‖ timestamp (u64, big-endian) ‖ Ed25519 signature(64)) "\n"
 */
import { concatBytes } from '../../shared/bytes.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../../shared/errors.js';
import { decodeBase64, encodeBase64, malformed, utf8 } from '../../shared/fleet-formats/encoding.js';
import { isValidKeyName, parseNote, safeVerify, type NoteSignature } from '../../shared/fleet-formats/note.js';

export const ALG_COSIGNATURE_V1 = 0x04;
const MAX_TIMESTAMP = (1n << 63n) - 1n;

export interface CosignerVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly publicKey: Uint8Array;
}

export interface Cosigner extends CosignerVerifier {
  /** Ed25519 over the message; the seed stays inside the closure. */
  sign(message: Uint8Array): Uint8Array;
}

export interface Cosignature {
  readonly name: string;
  readonly keyId: number;
  /** POSIX seconds */
  readonly timestamp: number;
  readonly signature: Uint8Array;
}

export function cosignerKeyId(name: string, publicKey: Uint8Array): number {
  const h = sha256(concatBytes(utf8(name), new Uint8Array([0x0a, ALG_COSIGNATURE_V1]), publicKey));
  return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
}

const hex8 = (id: number): string => id.toString(16).padStart(8, '0');

export function formatCosignerVerifierKey(name: string, publicKey: Uint8Array): string {
  if (!isValidKeyName(name)) throw malformed('cosigner: invalid key name');
  if (publicKey.length !== 32) throw malformed('cosigner: public key must be 32 bytes');
  return `${name}+${hex8(cosignerKeyId(name, publicKey))}+${encodeBase64(concatBytes(new Uint8Array([ALG_COSIGNATURE_V1]), publicKey))}`;
}

/** Parses "name+keyid+base64(0x04 ‖ pubkey)" and checks the key ID. */
export function parseCosignerVerifierKey(s: string): CosignerVerifier {
  if (typeof s !== 'string') throw malformed('cosigner verifier key: not a string');
  const i = s.indexOf('+');
  const j = i < 0 ? -1 : s.indexOf('+', i + 1);
  if (i < 0 || j < 0) throw malformed('cosigner verifier key: expected name+keyid+key');
  const name = s.slice(0, i);
  const idHex = s.slice(i + 1, j);
  if (!isValidKeyName(name)) throw malformed('cosigner verifier key: invalid key name');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw malformed('cosigner verifier key: key ID must be 8 lower-case hex digits');
  const raw = decodeBase64(s.slice(j + 1), 'cosigner verifier key');
  if (raw.length !== 33 || raw[0] !== ALG_COSIGNATURE_V1) {
    throw malformed('cosigner verifier key: not an Ed25519 cosignature/v1 key (type 0x04)');
  }
  const publicKey = raw.slice(1);
  const keyId = parseInt(idHex, 16) >>> 0;
  if (cosignerKeyId(name, publicKey) !== keyId) throw malformed('cosigner verifier key: key ID does not match the key');
  return { name, keyId, publicKey };
}

function checkTimestamp(ts: number | bigint): bigint {
  const t = BigInt(ts);
  if (t < 0n || t > MAX_TIMESTAMP) throw malformed('cosignature: timestamp out of range');
  return t;
}

/** The signed message: "cosignature/v1\ntime <ts>\n" followed by the checkpoint body (ending "\n"). */
export function cosignatureMessage(checkpointBody: string, timestamp: number | bigint): Uint8Array {
  if (!checkpointBody.endsWith('\n')) throw malformed('cosignature: checkpoint body must end with a newline');
  return utf8(`cosignature/v1\ntime ${checkTimestamp(timestamp).toString()}\n${checkpointBody}`);
}

/** One note signature line ("— name base64(...)\n") cosigning `checkpointBody` at `timestamp` (seconds). */
export function cosignatureLine(checkpointBody: string, timestamp: number, cosigner: Cosigner): string {
  if (!Number.isSafeInteger(timestamp) || timestamp <= 0) throw malformed('cosignature: timestamp must be a positive integer');
  const sig = cosigner.sign(cosignatureMessage(checkpointBody, timestamp));
  if (sig.length !== 64) throw malformed('cosignature: Ed25519 signature must be 64 bytes');
  const blob = new Uint8Array(4 + 8 + 64);
  const dv = new DataView(blob.buffer);
  dv.setUint32(0, cosigner.keyId >>> 0);
  dv.setBigUint64(4, BigInt(timestamp));
  blob.set(sig, 12);
  return `— ${cosigner.name} ${encodeBase64(blob)}\n`;
}

/** Interprets a note signature as a cosignature/v1 body (key ID already split off by parseNote). */
export function decodeCosignature(s: NoteSignature): Cosignature | undefined {
  if (s.signature.length !== 8 + 64) return undefined;
  const dv = new DataView(s.signature.buffer, s.signature.byteOffset, s.signature.byteLength);
  const ts = dv.getBigUint64(0);
  if (ts > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { name: s.name, keyId: s.keyId, timestamp: Number(ts), signature: s.signature.slice(8) };
}

export interface CosignatureCheck {
  /** Listed cosigners with at least one valid cosignature on the note. */
  readonly valid: readonly CosignerVerifier[];
  /** Listed cosigners whose signature line(s) on the note failed to verify. */
  readonly invalid: readonly { cosigner: CosignerVerifier; reason: string }[];
  /** Listed cosigners with no signature line on the note. */
  readonly missing: readonly CosignerVerifier[];
  /** Timestamp of each valid cosignature, by cosigner name. */
  readonly timestamps: ReadonlyMap<string, number>;
}

export interface CheckCosignaturesOptions {
  /** POSIX seconds; with it, cosignatures dated more than `maxFutureSeconds` ahead are invalid. */
  nowSeconds?: number;
  maxFutureSeconds?: number;
}

/**
 * Checks a signed checkpoint note's cosignatures against `cosigners` (lines by other keys are
 * ignored). Never throws on a bad cosignature: it is reported as invalid. Throws only for a
 * note that does not parse.
 */
export function checkCosignatures(
  note: string,
  cosigners: readonly CosignerVerifier[],
  opts: CheckCosignaturesOptions = {},
): CosignatureCheck {
  const parsed = parseNote(note);
  const valid: CosignerVerifier[] = [];
  const invalid: { cosigner: CosignerVerifier; reason: string }[] = [];
  const missing: CosignerVerifier[] = [];
  const timestamps = new Map<string, number>();
  for (const c of cosigners) {
    const lines = parsed.signatures.filter((s) => s.name === c.name && s.keyId === c.keyId);
    if (lines.length === 0) {
      missing.push(c);
      continue;
    }
    let ok: number | undefined;
    let reason = '';
    for (const line of lines) {
      const cs = decodeCosignature(line);
      if (!cs) {
        reason = 'not a cosignature/v1 signature (wrong length or timestamp)';
        continue;
      }
      if (cs.timestamp === 0) {
        reason = 'timestamp is zero';
        continue;
      }
      if (opts.nowSeconds !== undefined && cs.timestamp > opts.nowSeconds + (opts.maxFutureSeconds ?? 600)) {
        reason = `timestamp ${cs.timestamp} is in the future`;
        continue;
      }
      if (!safeVerify(cs.signature, cosignatureMessage(parsed.text, cs.timestamp), c.publicKey)) {
        reason = 'Ed25519 signature does not verify';
        continue;
      }
      ok = cs.timestamp;
      break;
    }
    if (ok !== undefined) {
      valid.push(c);
      timestamps.set(c.name, ok);
    } else invalid.push({ cosigner: c, reason });
  }
  return { valid, invalid, missing, timestamps };
}

/**
 * Adds signature lines to a signed note (the log's note plus cosignatures), dropping lines it
 * already has. The result is one signed note with several signature lines.
 */
export function addSignatureLines(note: string, lines: readonly string[]): string {
  const parsed = parseNote(note); // strict: the note must already be a signed note
  let out = note;
  const have = new Set(note.slice(parsed.text.length + 1).split('\n').filter((l) => l !== ''));
  for (const raw of lines) {
    const l = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    if (l === '' || l.includes('\n')) throw malformed('signature line must be a single line');
    if (have.has(l)) continue;
    have.add(l);
    out += l + '\n';
  }
  parseNote(out); // still within the limits
  return out;
}

/** Splits a response body of note signature lines ("— …\n" each) into lines. */
export function parseSignatureLines(body: string): string[] {
  if (body === '' || !body.endsWith('\n')) throw malformed('cosignature response: must be signature lines ending in a newline');
  const lines = body.slice(0, -1).split('\n');
  for (const l of lines) if (!l.startsWith('— ')) throw malformed('cosignature response: a line does not start with "— "');
  return lines;
}

export class CosignatureQuorumError extends BkvError {
  constructor(
    message: string,
    readonly required: number,
    readonly validCosigners: readonly string[],
    readonly missingCosigners: readonly string[],
    readonly invalidCosigners: readonly { name: string; reason: string }[],
  ) {
    super('VERIFICATION_FAILED', message, {
      check: 'cosignatures',
      required,
      valid: validCosigners,
      missing: missingCosigners,
      invalid: invalidCosigners,
    });
    this.name = 'CosignatureQuorumError';
  }
}
