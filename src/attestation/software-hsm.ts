/**
 * The software attestation backend. Node only.
 *
 * `bkv hsm vendor-init --dir V` makes a local vendor root (Ed25519):
 *   V/vendor.json        {"format":"bkv-vendor/v1","name":…,"publicKey":base64}      (public)
 *   V/vendor-root.key    {"format":"bkv-vendor-root-key/v1","name":…,"privateKey":…}  (0600)
 * `bkv hsm provision --vendor V --out F` issues one device: a fresh attestation key and its
 * `bkv-device-cert/v1` signed by the root, stored in F (`bkv-soft-hsm/v1`, 0600). The file stands
 * in for the device: a real HSM keeps its attestation key inside and only exports the certificate.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { decodeBase64, encodeBase64 } from '../shared/fleet-formats/encoding.js';
import { writeFileDurable } from '../node/fs-durable.js';
import type { AttestationBackend } from '../trusted/attestation/backend.js';
import { encodeDeviceCertificate, parseDeviceCertificate, type SignedDocument } from '../shared/attestation/format.js';

export interface VendorPublic {
  format: 'bkv-vendor/v1';
  name: string;
  /** base64 Ed25519 root public key */
  publicKey: string;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new BkvError('IO', `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    const j = JSON.parse(text) as unknown;
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not an object');
    return j as Record<string, unknown>;
  } catch {
    throw new BkvError('MALFORMED', `${what} ${path} is not a JSON object`);
  }
}

function exact(o: Record<string, unknown>, keys: string[], what: string): void {
  const have = Object.keys(o).sort().join(',');
  if (have !== [...keys].sort().join(',')) throw new BkvError('MALFORMED', `${what}: expected exactly the fields ${keys.join(', ')}`);
}

const iso = (t: number) => new Date(Math.floor(t / 1000) * 1000).toISOString().replace('.000Z', 'Z');

/** Creates a vendor root in `dir` (refuses to overwrite one). */
export async function vendorInit(dir: string, name = 'bkv-software-vendor'): Promise<VendorPublic> {
  if (!ID.test(name)) throw new BkvError('USAGE', 'vendor name must be 1-64 characters of A-Z a-z 0-9 . _ : -');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await readFile(join(dir, 'vendor-root.key'));
    throw new BkvError('CONFLICT', `${dir} already holds a vendor root`);
  } catch (e) {
    if (e instanceof BkvError) throw e;
  }
  const seed = new Uint8Array(randomBytes(32));
  const pub: VendorPublic = { format: 'bkv-vendor/v1', name, publicKey: encodeBase64(ed25519.getPublicKey(seed)) };
  await writeFileDurable(join(dir, 'vendor-root.key'), JSON.stringify({ format: 'bkv-vendor-root-key/v1', name, privateKey: encodeBase64(seed) }) + '\n');
  await writeFileDurable(join(dir, 'vendor.json'), JSON.stringify(pub, null, 2) + '\n', 0o644);
  return pub;
}

/** Reads a vendor's public description (`vendor.json`), strictly. */
export async function readVendorPublic(dir: string): Promise<VendorPublic> {
  const j = await readJson(join(dir, 'vendor.json'), 'vendor');
  exact(j, ['format', 'name', 'publicKey'], 'vendor.json');
  if (j.format !== 'bkv-vendor/v1' || typeof j.name !== 'string' || !ID.test(j.name)) throw new BkvError('MALFORMED', 'vendor.json: not a bkv-vendor/v1');
  decodeBase64(j.publicKey, 'vendor.json publicKey', 32);
  return j as unknown as VendorPublic;
}

async function readVendorKey(dir: string): Promise<{ name: string; seed: Uint8Array }> {
  const j = await readJson(join(dir, 'vendor-root.key'), 'vendor root key');
  exact(j, ['format', 'name', 'privateKey'], 'vendor-root.key');
  if (j.format !== 'bkv-vendor-root-key/v1' || typeof j.name !== 'string') throw new BkvError('MALFORMED', 'vendor-root.key: not a bkv-vendor-root-key/v1');
  return { name: j.name, seed: decodeBase64(j.privateKey, 'vendor-root.key privateKey', 32) };
}

export interface SoftHsmFile {
  format: 'bkv-soft-hsm/v1';
  device: string;
  /** base64 seed of the device attestation key (inside a real device, never exported) */
  attestationKey: string;
  certificate: SignedDocument;
}

/** Issues a device attestation key certificate signed by the vendor root. */
export async function provisionDevice(vendorDir: string, opts: { device?: string; validityDays?: number; now?: number } = {}): Promise<SoftHsmFile> {
  const vendor = await readVendorKey(vendorDir);
  const device = opts.device ?? `soft-${Buffer.from(randomBytes(6)).toString('hex')}`;
  if (!ID.test(device)) throw new BkvError('USAGE', 'device serial must be 1-64 characters of A-Z a-z 0-9 . _ : -');
  const seed = new Uint8Array(randomBytes(32));
  const now = opts.now ?? Date.now();
  const body = encodeDeviceCertificate({
    vendor: vendor.name,
    root: ed25519.getPublicKey(vendor.seed),
    device,
    model: 'software-hsm',
    attestationKey: ed25519.getPublicKey(seed),
    notBefore: iso(now - 60_000),
    notAfter: iso(now + (opts.validityDays ?? 3650) * 86_400_000),
  });
  return {
    format: 'bkv-soft-hsm/v1',
    device,
    attestationKey: encodeBase64(seed),
    certificate: { body: encodeBase64(body), signature: encodeBase64(ed25519.sign(body, vendor.seed)) },
  };
}

export async function writeSoftHsmFile(path: string, f: SoftHsmFile): Promise<void> {
  await writeFileDurable(path, JSON.stringify(f, null, 2) + '\n');
}

export async function readSoftHsmFile(path: string): Promise<SoftHsmFile> {
  const j = await readJson(path, 'software HSM');
  exact(j, ['format', 'device', 'attestationKey', 'certificate'], 'software HSM file');
  if (j.format !== 'bkv-soft-hsm/v1') throw new BkvError('MALFORMED', `${path}: not a bkv-soft-hsm/v1 file`);
  const cert = j.certificate as SignedDocument;
  const parsed = parseDeviceCertificate(decodeBase64(cert?.body, 'certificate body'));
  decodeBase64(cert.signature, 'certificate signature', 64);
  const seed = decodeBase64(j.attestationKey, 'attestationKey', 32);
  if (parsed.device !== j.device || encodeBase64(ed25519.getPublicKey(seed)) !== encodeBase64(parsed.attestationKey)) {
    throw new BkvError('MALFORMED', `${path}: the certificate does not match the device key`);
  }
  return j as unknown as SoftHsmFile;
}

/** The software device as an AttestationBackend. */
export function softwareBackend(f: SoftHsmFile): AttestationBackend {
  const seed = decodeBase64(f.attestationKey, 'attestationKey', 32);
  return {
    kind: 'software',
    device: f.device,
    deviceCertificate: () => ({ ...f.certificate }),
    signAttestation: async (body) => ed25519.sign(body, seed),
  };
}
