/**
 * Attestation formats (docs/formats/attestation.md). Browser-safe, no I/O.
 *
 *  - a vendor root: an Ed25519 key that the hardware vendor (or, in the software backend, the
 *    operator running `bkv hsm vendor-init`) keeps offline;
 *  - a device certificate (`bkv-device-cert/v1`): the vendor root vouches that an attestation key
 *    lives inside one device;
 *  - a member attestation (`bkv-attestation/v1`): the device's attestation key vouches for the
 *    identity keys a member generated inside its core, the code it runs (measurement) and the
 *    ceremony it belongs to.
 *
 * Both signed documents are exact UTF-8 bytes, one `key value` per line, parsed strictly (fixed
 * line order, canonical re-encoding must give the same bytes) and signed as they are.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { BkvError } from '../errors.js';
import { decodeBase64, decodeHex, encodeBase64, encodeHex, fromUtf8, malformed, utf8 } from '../fleet-formats/encoding.js';
import { equalBytes } from '../bytes.js';

export const DEVICE_CERT_HEADER = 'bkv-device-cert/v1';
export const ATTESTATION_HEADER = 'bkv-attestation/v1';

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const ISO = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$/;

/** A signed document as carried in JSON: base64 of the exact body bytes and of the signature. */
export interface SignedDocument {
  body: string;
  signature: string;
}

export interface DeviceCertificate {
  vendor: string;
  /** the vendor root public key (Ed25519, 32 bytes) that signed this certificate */
  root: Uint8Array;
  device: string;
  model: string;
  attestationKey: Uint8Array;
  notBefore: string;
  notAfter: string;
}

export interface MemberAttestation {
  namespace: string;
  fleet: string;
  /** 32-byte ceremony nonce (hex in the document) */
  nonce: Uint8Array;
  member: number;
  site: string;
  x25519: Uint8Array;
  ed25519: Uint8Array;
  measurement: string;
  device: string;
}

/** An attestation as published: the document, its signature, and the device certificate. */
export interface AttestationRecord {
  member: number;
  attestation: SignedDocument;
  deviceCertificate: SignedDocument;
}

function checkId(v: string, what: string): string {
  if (!ID.test(v)) throw malformed(`${what}: must be 1-64 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit`);
  return v;
}

function lines(header: string, fields: [string, string][]): Uint8Array {
  return utf8(header + '\n' + fields.map(([k, v]) => `${k} ${v}\n`).join(''));
}

function parseLines(bytes: Uint8Array, header: string, keys: readonly string[], what: string): string[] {
  if (bytes.length > 4096) throw malformed(`${what}: too large`);
  const text = fromUtf8(bytes, what);
  if (!text.endsWith('\n')) throw malformed(`${what}: must end with a newline`);
  const ls = text.slice(0, -1).split('\n');
  if (ls[0] !== header || ls.length !== keys.length + 1) throw malformed(`${what}: not a ${header}`);
  return keys.map((k, i) => {
    const line = ls[i + 1]!;
    if (!line.startsWith(k + ' ')) throw malformed(`${what}: expected "${k}" on line ${i + 2}`);
    return line.slice(k.length + 1);
  });
}

function isoTime(s: string, what: string): number {
  if (!ISO.test(s)) throw malformed(`${what}: must be an ISO 8601 UTC time like 2026-01-01T00:00:00Z`);
  const t = Date.parse(s);
  if (!Number.isFinite(t) || new Date(t).toISOString().replace('.000Z', 'Z') !== s) throw malformed(`${what}: not a real time`);
  return t;
}

const CERT_KEYS = ['vendor', 'root', 'device', 'model', 'attestation-key', 'not-before', 'not-after'] as const;

export function encodeDeviceCertificate(c: DeviceCertificate): Uint8Array {
  checkId(c.vendor, 'device certificate vendor');
  checkId(c.device, 'device certificate device');
  checkId(c.model, 'device certificate model');
  if (c.root.length !== 32 || c.attestationKey.length !== 32) throw malformed('device certificate: keys must be 32 bytes');
  if (isoTime(c.notBefore, 'not-before') >= isoTime(c.notAfter, 'not-after')) throw malformed('device certificate: not-before must precede not-after');
  return lines(DEVICE_CERT_HEADER, [
    ['vendor', c.vendor],
    ['root', encodeBase64(c.root)],
    ['device', c.device],
    ['model', c.model],
    ['attestation-key', encodeBase64(c.attestationKey)],
    ['not-before', c.notBefore],
    ['not-after', c.notAfter],
  ]);
}

export function parseDeviceCertificate(bytes: Uint8Array): DeviceCertificate {
  const v = parseLines(bytes, DEVICE_CERT_HEADER, CERT_KEYS, 'device certificate');
  const c: DeviceCertificate = {
    vendor: v[0]!,
    root: decodeBase64(v[1], 'device certificate root', 32),
    device: v[2]!,
    model: v[3]!,
    attestationKey: decodeBase64(v[4], 'device certificate attestation-key', 32),
    notBefore: v[5]!,
    notAfter: v[6]!,
  };
  if (!equalBytes(encodeDeviceCertificate(c), bytes)) throw malformed('device certificate: not canonical');
  return c;
}

const ATT_KEYS = ['namespace', 'fleet', 'nonce', 'member', 'site', 'x25519', 'ed25519', 'measurement', 'device'] as const;

export function encodeAttestation(a: MemberAttestation): Uint8Array {
  checkId(a.namespace, 'attestation namespace');
  checkId(a.fleet, 'attestation fleet');
  checkId(a.site, 'attestation site');
  checkId(a.device, 'attestation device');
  if (!Number.isInteger(a.member) || a.member < 1 || a.member > 255) throw malformed('attestation: member must be 1..255');
  if (a.nonce.length !== 32 || a.x25519.length !== 32 || a.ed25519.length !== 32) throw malformed('attestation: keys and nonce must be 32 bytes');
  decodeHex(a.measurement, 'attestation measurement', 32);
  return lines(ATTESTATION_HEADER, [
    ['namespace', a.namespace],
    ['fleet', a.fleet],
    ['nonce', encodeHex(a.nonce)],
    ['member', String(a.member)],
    ['site', a.site],
    ['x25519', encodeBase64(a.x25519)],
    ['ed25519', encodeBase64(a.ed25519)],
    ['measurement', a.measurement],
    ['device', a.device],
  ]);
}

export function parseAttestation(bytes: Uint8Array): MemberAttestation {
  const v = parseLines(bytes, ATTESTATION_HEADER, ATT_KEYS, 'attestation');
  if (!/^[1-9][0-9]{0,2}$/.test(v[3]!)) throw malformed('attestation: member must be a canonical decimal');
  const a: MemberAttestation = {
    namespace: v[0]!,
    fleet: v[1]!,
    nonce: decodeHex(v[2], 'attestation nonce', 32),
    member: Number(v[3]),
    site: v[4]!,
    x25519: decodeBase64(v[5], 'attestation x25519', 32),
    ed25519: decodeBase64(v[6], 'attestation ed25519', 32),
    measurement: v[7]!,
    device: v[8]!,
  };
  if (!equalBytes(encodeAttestation(a), bytes)) throw malformed('attestation: not canonical');
  return a;
}

function fail(check: string, message: string, details: Record<string, unknown> = {}): BkvError {
  return new BkvError('VERIFICATION_FAILED', message, { check, ...details });
}

function verifySig(sig: Uint8Array, msg: Uint8Array, key: Uint8Array): boolean {
  try {
    return sig.length === 64 && ed25519.verify(sig, msg, key);
  } catch {
    return false;
  }
}

export interface VerifyAttestationOptions {
  /** Vendor root public keys trusted for device certificates. */
  vendorRoots: readonly Uint8Array[];
  /** Time for the certificate validity window (ms); omit to skip the window check. */
  now?: number;
}

export interface VerifiedAttestation {
  statement: MemberAttestation;
  certificate: DeviceCertificate;
  /** the exact attestation body bytes */
  body: Uint8Array;
}

/**
 * Verifies one attestation record: the device certificate chains to a trusted vendor root and is
 * valid now, the attestation is signed by that certificate's attestation key, and it names the
 * same device. Throws VERIFICATION_FAILED with `details.check` = `vendor-chain` or `attestation`.
 */
export function verifyAttestationRecord(rec: AttestationRecord, opts: VerifyAttestationOptions): VerifiedAttestation {
  let certBody: Uint8Array;
  let cert: DeviceCertificate;
  try {
    certBody = decodeBase64(rec.deviceCertificate.body, 'device certificate');
    cert = parseDeviceCertificate(certBody);
  } catch (e) {
    throw fail('vendor-chain', `member ${rec.member}: device certificate does not parse: ${(e as Error).message}`, { member: rec.member });
  }
  if (!opts.vendorRoots.some((r) => equalBytes(r, cert.root))) {
    throw fail('vendor-chain', `member ${rec.member}: device ${cert.device} is certified by vendor root ${encodeBase64(cert.root)}, which is not trusted`, { member: rec.member });
  }
  let certSig: Uint8Array;
  try {
    certSig = decodeBase64(rec.deviceCertificate.signature, 'device certificate signature', 64);
  } catch {
    throw fail('vendor-chain', `member ${rec.member}: device certificate signature is malformed`, { member: rec.member });
  }
  if (!verifySig(certSig, certBody, cert.root)) {
    throw fail('vendor-chain', `member ${rec.member}: the vendor root's signature on device certificate ${cert.device} is invalid`, { member: rec.member });
  }
  if (opts.now !== undefined && (opts.now < Date.parse(cert.notBefore) || opts.now > Date.parse(cert.notAfter))) {
    throw fail('vendor-chain', `member ${rec.member}: device certificate ${cert.device} is outside its validity period`, { member: rec.member });
  }
  let body: Uint8Array;
  let st: MemberAttestation;
  let sig: Uint8Array;
  try {
    body = decodeBase64(rec.attestation.body, 'attestation');
    st = parseAttestation(body);
    sig = decodeBase64(rec.attestation.signature, 'attestation signature', 64);
  } catch (e) {
    throw fail('attestation', `member ${rec.member}: attestation does not parse: ${(e as Error).message}`, { member: rec.member });
  }
  if (!verifySig(sig, body, cert.attestationKey)) {
    throw fail('attestation', `member ${rec.member}: attestation signature by device ${cert.device} is invalid`, { member: rec.member });
  }
  if (st.device !== cert.device) throw fail('attestation', `member ${rec.member}: attestation names device ${st.device}, certificate ${cert.device}`, { member: rec.member });
  if (st.member !== rec.member) throw fail('attestation', `attestation for member ${st.member} filed under member ${rec.member}`, { member: rec.member });
  return { statement: st, certificate: cert, body };
}

export function signDocument(body: Uint8Array, sign: (m: Uint8Array) => Uint8Array | Promise<Uint8Array>): Promise<SignedDocument> {
  return Promise.resolve(sign(body)).then((s) => ({ body: encodeBase64(body), signature: encodeBase64(s) }));
}
