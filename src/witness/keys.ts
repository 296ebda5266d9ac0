/**
 * Ed25519 keys for the witness and the operator, on disk. Node only.
 * Signing uses node:crypto (same Ed25519, several times faster than pure JS on the server).
 */
import { writeFileDurable } from '../node/fs-durable.js';
import { createPrivateKey, createPublicKey, randomBytes, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { decodeBase64, encodeBase64 } from '../shared/fleet-formats/encoding.js';
import { noteSignerFromSeed, isValidKeyName, parseVerifierKey, type NoteSigner } from '../shared/fleet-formats/note.js';
import { cosignerKeyId, type Cosigner } from '../client/fleet/cosignature.js';
import { parseCosignerEndpoints } from './cosigning.js';

const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

export function nodePrivateKey(seed: Uint8Array, publicKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(publicKey) }, format: 'jwk' });
}

export function nodePublicKey(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(publicKey) }, format: 'jwk' });
}

/** A note signer whose signing runs in node:crypto. */
export function fastSigner(name: string, seed: Uint8Array): NoteSigner {
  const probe = noteSignerFromSeed(name, seed);
  const key = nodePrivateKey(seed, probe.publicKey);
  return noteSignerFromSeed(name, seed, (m) => new Uint8Array(nodeSign(null, m, key)));
}

/** Ed25519 verification through node:crypto; false on any malformed input. */
export function fastVerify(sig: Uint8Array, msg: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    if (sig.length !== 64 || publicKey.length !== 32) return false;
    return nodeVerify(null, msg, nodePublicKey(publicKey), sig);
  } catch {
    return false;
  }
}

export interface WitnessConfig {
  /** Checkpoint origin and key name, e.g. "witness.example.org/bkv". */
  origin: string;
  /** base64 Ed25519 public keys of operators allowed to submit. */
  operatorKeys: string[];
  /**
   * Deployment-evidence policy (docs/witness.md). When either list is present, every submission
   * must carry evidence that chains to one of these vendor roots (base64 Ed25519) and attests one
   * of these code measurements (hex SHA-256); otherwise the witness refuses to sign (HTTP 422).
   */
  allowedVendors?: string[];
  allowedMeasurements?: string[];
  /**
   * C2SP tlog-witness: verifier keys (name = origin) of the logs this witness cosigns
   * (`POST /add-checkpoint`). docs/formats/cosignature.md.
   */
  cosignLogs?: string[];
  /** Cosigners this witness submits its own checkpoints to: submission URL and type-0x04 verifier key. */
  cosigners?: { url: string; verifierKey: string }[];
}

async function readJson(path: string): Promise<unknown | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BkvError('IO', `cannot read ${path}: ${(e as Error).message}`);
  }
}

/**
 * Loads (or on first start creates) the witness directory: `config.json` and `witness.key`.
 * `origin` and `operatorKeys` given here are merged into the configuration.
 */
export async function loadWitnessIdentity(
  dir: string,
  opts: {
    origin?: string;
    addOperatorKeys?: string[];
    addAllowedVendors?: string[];
    addAllowedMeasurements?: string[];
    addCosignLogs?: string[];
    addCosigners?: { url: string; verifierKey: string }[];
  } = {},
): Promise<{ config: WitnessConfig; signer: NoteSigner; seed: Uint8Array; cosigner: Cosigner }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const cfgPath = join(dir, 'config.json');
  const keyPath = join(dir, 'witness.key');
  const cfgRaw = (await readJson(cfgPath)) as Partial<WitnessConfig> | undefined;
  let keyRaw = (await readJson(keyPath)) as { seed?: string } | undefined;
  let seed: Uint8Array;
  if (!keyRaw) {
    seed = new Uint8Array(randomBytes(32));
    keyRaw = { seed: encodeBase64(seed) };
    await writeFileDurable(keyPath, JSON.stringify(keyRaw) + '\n');
  } else {
    seed = decodeBase64(keyRaw.seed, 'witness.key seed', 32);
  }
  const probe = noteSignerFromSeed('probe', seed);
  const defaultOrigin = `bkv-witness.localhost/${Buffer.from(probe.publicKey.subarray(0, 6)).toString('hex')}`;
  const config: WitnessConfig = {
    origin: opts.origin ?? cfgRaw?.origin ?? defaultOrigin,
    operatorKeys: [...(cfgRaw?.operatorKeys ?? [])],
    ...(cfgRaw?.allowedVendors ? { allowedVendors: [...cfgRaw.allowedVendors] } : {}),
    ...(cfgRaw?.allowedMeasurements ? { allowedMeasurements: [...cfgRaw.allowedMeasurements] } : {}),
    ...(cfgRaw?.cosignLogs ? { cosignLogs: [...cfgRaw.cosignLogs] } : {}),
    ...(cfgRaw?.cosigners ? { cosigners: cfgRaw.cosigners.map((c) => ({ ...c })) } : {}),
  };
  if (cfgRaw?.origin && opts.origin && cfgRaw.origin !== opts.origin) {
    throw new BkvError('USAGE', `this witness already has origin "${cfgRaw.origin}"; the origin cannot change`);
  }
  if (!isValidKeyName(config.origin) || config.origin.startsWith('bkv-witness-statement')) {
    throw new BkvError('USAGE', 'witness origin must be a name without spaces or "+"');
  }
  for (const k of opts.addOperatorKeys ?? []) {
    decodeBase64(k, 'operator public key', 32);
    if (!config.operatorKeys.includes(k)) config.operatorKeys.push(k);
  }
  for (const k of opts.addAllowedVendors ?? []) {
    decodeBase64(k, 'allowed vendor root public key', 32);
    config.allowedVendors ??= [];
    if (!config.allowedVendors.includes(k)) config.allowedVendors.push(k);
  }
  for (const m of opts.addAllowedMeasurements ?? []) {
    if (!/^[0-9a-f]{64}$/.test(m)) throw new BkvError('USAGE', 'an allowed measurement is 64 lower-case hex digits (SHA-256)');
    config.allowedMeasurements ??= [];
    if (!config.allowedMeasurements.includes(m)) config.allowedMeasurements.push(m);
  }
  for (const k of opts.addCosignLogs ?? []) {
    try {
      parseVerifierKey(k);
    } catch (e) {
      throw new BkvError('USAGE', `--cosign-log: ${(e as Error).message}`);
    }
    config.cosignLogs ??= [];
    if (!config.cosignLogs.includes(k)) config.cosignLogs.push(k);
  }
  for (const c of opts.addCosigners ?? []) {
    try {
      parseCosignerEndpoints([c]);
    } catch (e) {
      throw new BkvError('USAGE', `--cosigner: ${(e as Error).message}`);
    }
    config.cosigners ??= [];
    if (!config.cosigners.some((x) => x.verifierKey === c.verifierKey)) config.cosigners.push({ url: c.url, verifierKey: c.verifierKey });
  }
  // The cosigner key (tlog-cosignature type 0x04) is a separate key, created on first use.
  const cosignerPath = join(dir, 'cosigner.key');
  let cosRaw = (await readJson(cosignerPath)) as { seed?: string } | undefined;
  let cosSeed: Uint8Array;
  if (!cosRaw) {
    cosSeed = new Uint8Array(randomBytes(32));
    cosRaw = { seed: encodeBase64(cosSeed) };
    await writeFileDurable(cosignerPath, JSON.stringify(cosRaw) + '\n');
  } else {
    cosSeed = decodeBase64(cosRaw.seed, 'cosigner.key seed', 32);
  }
  if (JSON.stringify(cfgRaw) !== JSON.stringify(config)) {
    await writeFileDurable(cfgPath, JSON.stringify(config, null, 2) + '\n', 0o644);
  }
  const cos = fastSigner(config.origin, cosSeed);
  const cosigner: Cosigner = { name: cos.name, publicKey: cos.publicKey, keyId: cosignerKeyId(cos.name, cos.publicKey), sign: cos.sign };
  return { config, signer: fastSigner(config.origin, seed), seed, cosigner };
}

export interface OperatorKey {
  publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export function operatorKeyFromSeed(seed: Uint8Array): OperatorKey {
  const s = noteSignerFromSeed('operator', seed);
  return { publicKey: s.publicKey, sign: s.sign };
}

/** Operator key file: JSON {"alg":"Ed25519","privateKey":base64 seed,"publicKey":base64}. */
export async function writeOperatorKeyFile(path: string): Promise<OperatorKey> {
  const seed = new Uint8Array(randomBytes(32));
  const key = operatorKeyFromSeed(seed);
  await writeFileDurable(
    path,
    JSON.stringify({ alg: 'Ed25519', privateKey: encodeBase64(seed), publicKey: encodeBase64(key.publicKey) }) + '\n',
  );
  return key;
}

export async function readOperatorKeyFile(path: string): Promise<OperatorKey> {
  const raw = (await readJson(path)) as { alg?: string; privateKey?: string } | undefined;
  if (!raw || raw.alg !== 'Ed25519') throw new BkvError('USAGE', `${path} is not an Ed25519 key file`);
  return operatorKeyFromSeed(decodeBase64(raw.privateKey, 'key file privateKey', 32));
}
