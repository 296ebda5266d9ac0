/**
 * C2SP signed-note (the format of golang.org/x/mod/sumdb/note) with Ed25519 keys. Browser-safe.
 *
 *   note      = text "\n" signature-lines      (text ends with "\n"; a blank line separates)
 *   signature = "— " name " " base64(keyID(4) ‖ ed25519-signature(64)) "\n"
 *   keyID     = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[0:4]
 *   verifier key string = name "+" hex(keyID) "+" base64(0x01 ‖ public key)
 *   signer key string   = "PRIVATE+KEY+" name "+" hex(keyID) "+" base64(0x01 ‖ seed)
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../errors.js';
import { decodeBase64, encodeBase64, fromUtf8, malformed, utf8 } from './encoding.js';
import { concatBytes, equalBytes } from '../bytes.js';

export const ALG_ED25519 = 0x01;
export const MAX_NOTE_SIGNATURES = 100;
export const MAX_NOTE_BYTES = 1 << 20;

const SIG_PREFIX = '— ';

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly publicKey: Uint8Array;
}

export interface NoteSigner extends NoteVerifier {
  /** Signs the message; the 32-byte Ed25519 seed stays inside the closure. */
  sign(message: Uint8Array): Uint8Array;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** The raw signature, without the key ID. */
  readonly signature: Uint8Array;
}

export interface ParsedNote {
  /** The signed text, ending with "\n". */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** Key names: non-empty, valid UTF-8, no Unicode spaces, no "+". */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name) && !/[\u0000-\u001f\u007f]/.test(name);
}

export function noteKeyId(name: string, publicKey: Uint8Array): number {
  const h = sha256(concatBytes(utf8(name), new Uint8Array([0x0a, ALG_ED25519]), publicKey));
  return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
}

function keyIdHex(id: number): string {
  return id.toString(16).padStart(8, '0');
}

export function formatVerifierKey(name: string, publicKey: Uint8Array): string {
  return `${name}+${keyIdHex(noteKeyId(name, publicKey))}+${encodeBase64(concatBytes(new Uint8Array([ALG_ED25519]), publicKey))}`;
}

function splitKey(s: string, what: string): [string, number, Uint8Array] {
  // The base64 key may itself contain "+": split at the first two only.
  const i = s.indexOf('+');
  const j = i < 0 ? -1 : s.indexOf('+', i + 1);
  if (i < 0 || j < 0) throw malformed(`${what}: expected name+keyid+key`);
  const name = s.slice(0, i);
  const idHex = s.slice(i + 1, j);
  const keyB64 = s.slice(j + 1);
  if (!isValidKeyName(name)) throw malformed(`${what}: invalid key name`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw malformed(`${what}: key ID must be 8 lower-case hex digits`);
  const raw = decodeBase64(keyB64, what);
  if (raw.length !== 33 || raw[0] !== ALG_ED25519) throw malformed(`${what}: not an Ed25519 key`);
  return [name, parseInt(idHex, 16) >>> 0, raw.subarray(1)];
}

export function parseVerifierKey(s: string): NoteVerifier {
  const [name, keyId, publicKey] = splitKey(s, 'verifier key');
  if (noteKeyId(name, publicKey) !== keyId) throw malformed('verifier key: key ID does not match the key');
  return { name, keyId, publicKey: publicKey.slice() };
}

export function formatSignerKey(name: string, seed: Uint8Array): string {
  const pub = ed25519.getPublicKey(seed);
  return `PRIVATE+KEY+${name}+${keyIdHex(noteKeyId(name, pub))}+${encodeBase64(concatBytes(new Uint8Array([ALG_ED25519]), seed))}`;
}

/** A signer from a seed, optionally with a faster signing function (same key) supplied by the host. */
export function noteSignerFromSeed(
  name: string,
  seed: Uint8Array,
  signFn?: (message: Uint8Array) => Uint8Array,
): NoteSigner {
  if (!isValidKeyName(name)) throw malformed('signer: invalid key name');
  if (seed.length !== 32) throw malformed('signer: seed must be 32 bytes');
  const s = seed.slice();
  const publicKey = ed25519.getPublicKey(s);
  return {
    name,
    keyId: noteKeyId(name, publicKey),
    publicKey,
    sign: signFn ?? ((m) => ed25519.sign(m, s)),
  };
}

export function parseSignerKey(s: string): NoteSigner {
  if (!s.startsWith('PRIVATE+KEY+')) throw malformed('signer key: missing PRIVATE+KEY+ prefix');
  const [name, keyId, seed] = splitKey(s.slice('PRIVATE+KEY+'.length), 'signer key');
  const signer = noteSignerFromSeed(name, seed);
  if (signer.keyId !== keyId) throw malformed('signer key: key ID does not match the key');
  return signer;
}

function checkText(text: string, what: string): void {
  if (!text.endsWith('\n')) throw malformed(`${what}: text must end with a newline`);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x0a) || c === 0x7f) throw malformed(`${what}: control character in text`);
  }
}

/** Produces the signed note bytes: text, a blank line, one signature line per signer. */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  checkText(text, 'note text');
  if (signers.length === 0 || signers.length > MAX_NOTE_SIGNATURES) throw malformed('note: bad signer count');
  const msg = utf8(text);
  let out = text + '\n';
  for (const s of signers) {
    const sig = s.sign(msg);
    const id = new Uint8Array([s.keyId >>> 24, (s.keyId >>> 16) & 255, (s.keyId >>> 8) & 255, s.keyId & 255]);
    out += `${SIG_PREFIX}${s.name} ${encodeBase64(concatBytes(id, sig))}\n`;
  }
  return out;
}

/** Strict parse of a signed note (no verification). */
export function parseNote(note: string | Uint8Array): ParsedNote {
  const raw = typeof note === 'string' ? note : fromUtf8(note, 'note');
  if (raw.length > MAX_NOTE_BYTES) throw malformed('note: too large');
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if ((c < 0x20 && c !== 0x0a) || c === 0x7f) throw malformed('note: control character');
    if (c >= 0xd800 && c <= 0xdfff) {
      // lone surrogates cannot come from valid UTF-8
      const next = raw.charCodeAt(i + 1);
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) throw malformed('note: invalid UTF-16 surrogate');
      i++;
    }
  }
  const split = raw.lastIndexOf('\n\n');
  if (split < 0) throw malformed('note: no blank line before the signatures');
  const text = raw.slice(0, split + 1);
  const sigBlock = raw.slice(split + 2);
  if (sigBlock.length === 0 || !sigBlock.endsWith('\n')) throw malformed('note: signature block must end with a newline');
  const lines = sigBlock.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw malformed('note: too many signatures');
  const signatures: NoteSignature[] = [];
  for (const line of lines) {
    if (!line.startsWith(SIG_PREFIX)) throw malformed('note: signature line must start with "— "');
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.indexOf(' ');
    if (sp < 0) throw malformed('note: signature line has no key name');
    const name = rest.slice(0, sp);
    const b64 = rest.slice(sp + 1);
    if (!isValidKeyName(name)) throw malformed('note: invalid key name in signature');
    if (b64 === '') throw malformed('note: empty signature');
    const bytes = decodeBase64(b64, 'note signature');
    if (bytes.length < 5) throw malformed('note: signature too short');
    const keyId = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
    signatures.push({ name, keyId, signature: bytes.slice(4) });
  }
  return { text, signatures };
}

/**
 * Opens a signed note: parses it strictly and requires a valid signature by `verifier`.
 * Signatures by other keys are ignored (they may be cosignatures). Returns the text.
 */
export function openNote(note: string | Uint8Array, verifier: NoteVerifier): ParsedNote {
  const parsed = parseNote(note);
  const mine = parsed.signatures.filter((s) => s.name === verifier.name && s.keyId === verifier.keyId);
  if (mine.length === 0) {
    throw new BkvError('VERIFICATION_FAILED', `note is not signed by ${verifier.name}`, { check: 'note-signature' });
  }
  const msg = utf8(parsed.text);
  for (const s of mine) {
    if (s.signature.length !== 64 || !safeVerify(s.signature, msg, verifier.publicKey)) {
      throw new BkvError('VERIFICATION_FAILED', `note signature by ${verifier.name} is invalid`, {
        check: 'note-signature',
      });
    }
  }
  return parsed;
}

/** Ed25519 verification (RFC 8032 strict encodings) that never throws. */
export function safeVerify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  try {
    return ed25519.verify(sig, msg, pub, { zip215: false });
  } catch {
    return false;
  }
}

export function sameVerifier(a: NoteVerifier, b: NoteVerifier): boolean {
  return a.name === b.name && a.keyId === b.keyId && equalBytes(a.publicKey, b.publicKey);
}

export { keyIdHex as formatKeyId };
