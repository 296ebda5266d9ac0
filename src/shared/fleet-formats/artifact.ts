/**
 * The fleet artifact: one fleet epoch's keys, roles, members and deployment facts. Browser-safe.
 *
 * The artifact is JSON bytes produced once by `encodeFleetArtifact` and afterwards stored, hashed
 * (SHA-256) and sent exactly as they are; `parseFleetArtifact` accepts only that canonical form.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { checkNamespace, decodeBase64, decodeHex, encodeBase64, fromUtf8, malformed, utf8 } from './encoding.js';

export const FLEET_ARTIFACT_FORMAT = 'bkv-fleet-artifact/v1';

export const KEY_ROLES = [
  { role: 'opaque-server', alg: 'OPAQUE-3DH-ristretto255' },
  { role: 'encryption', alg: 'HPKE-X25519-HKDF-SHA256' },
  { role: 'signing', alg: 'Ed25519' },
] as const;

export type KeyRole = (typeof KEY_ROLES)[number]['role'];

export interface FleetKey {
  role: KeyRole;
  alg: string;
  /** base64 of the 32-byte public key */
  publicKey: string;
}

export interface FleetMember {
  id: string;
  /** base64 of the member's 32-byte Ed25519 identity key */
  identityKey: string;
  site: string;
}

export interface FleetArtifact {
  format: typeof FLEET_ARTIFACT_FORMAT;
  namespace: string;
  fleetId: string;
  keys: FleetKey[];
  members: FleetMember[];
  quorum: number;
  /** lower-case hex SHA-256 of the reproducible vault-core build */
  measurement: string;
  notBefore: string;
  notAfter: string;
}

/** The fleet's public keys as raw bytes, read from a validated artifact. */
export interface FleetPublicKeys {
  opaqueServerPublicKey: Uint8Array;
  encryptionPublicKey: Uint8Array;
  signingPublicKey: Uint8Array;
}

const ISO = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const MAX_ARTIFACT_BYTES = 64 * 1024;

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function exactKeys(o: Record<string, unknown>, keys: readonly string[], what: string): void {
  const have = Object.keys(o);
  for (const k of have) if (!keys.includes(k)) throw malformed(`${what}: unknown field "${k}"`);
  for (const k of keys) if (!(k in o)) throw malformed(`${what}: missing field "${k}"`);
}

function str(o: Record<string, unknown>, k: string, what: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw malformed(`${what}: "${k}" must be a string`);
  return v;
}

function parseTime(s: string, what: string): number {
  if (!ISO.test(s)) throw malformed(`${what}: must be an ISO 8601 UTC time like 2026-05-01T00:00:00Z`);
  const t = Date.parse(s);
  if (!Number.isFinite(t) || new Date(t).toISOString().replace('.000Z', 'Z') !== s.replace('.000Z', 'Z')) {
    throw malformed(`${what}: not a real time`);
  }
  return t;
}

/** Validates the object form; throws MALFORMED with the offending field. Returns a normalised copy. */
export function validateFleetArtifact(x: unknown): FleetArtifact {
  if (!isPlainObject(x)) throw malformed('fleet artifact: not a JSON object');
  exactKeys(
    x,
    ['format', 'namespace', 'fleetId', 'keys', 'members', 'quorum', 'measurement', 'notBefore', 'notAfter'],
    'fleet artifact',
  );
  if (x.format !== FLEET_ARTIFACT_FORMAT) throw malformed(`fleet artifact: format must be "${FLEET_ARTIFACT_FORMAT}"`);
  const namespace = checkNamespace(x.namespace, 'fleet artifact namespace');
  const fleetId = str(x, 'fleetId', 'fleet artifact');
  if (!ID.test(fleetId)) throw malformed('fleet artifact: invalid fleetId');
  if (!Array.isArray(x.keys) || x.keys.length !== KEY_ROLES.length) {
    throw malformed(`fleet artifact: keys must list exactly ${KEY_ROLES.length} keys`);
  }
  const byRole = new Map<string, FleetKey>();
  for (const k of x.keys as unknown[]) {
    if (!isPlainObject(k)) throw malformed('fleet artifact: a key is not an object');
    exactKeys(k, ['role', 'alg', 'publicKey'], 'fleet artifact key');
    const role = str(k, 'role', 'fleet artifact key');
    const spec = KEY_ROLES.find((r) => r.role === role);
    if (!spec) throw malformed(`fleet artifact: unknown key role "${role}"`);
    if (byRole.has(role)) throw malformed(`fleet artifact: key role "${role}" appears twice`);
    if (k.alg !== spec.alg) throw malformed(`fleet artifact: key role "${role}" must use ${spec.alg}`);
    const publicKey = str(k, 'publicKey', 'fleet artifact key');
    decodeBase64(publicKey, `fleet artifact ${role} public key`, 32);
    byRole.set(role, { role: spec.role, alg: spec.alg, publicKey });
  }
  if (!Array.isArray(x.members) || x.members.length < 1 || x.members.length > 64) {
    throw malformed('fleet artifact: members must list 1 to 64 members');
  }
  const ids = new Set<string>();
  const members: FleetMember[] = (x.members as unknown[]).map((m) => {
    if (!isPlainObject(m)) throw malformed('fleet artifact: a member is not an object');
    exactKeys(m, ['id', 'identityKey', 'site'], 'fleet artifact member');
    const id = str(m, 'id', 'fleet artifact member');
    if (!ID.test(id)) throw malformed('fleet artifact: invalid member id');
    if (ids.has(id)) throw malformed(`fleet artifact: member "${id}" appears twice`);
    ids.add(id);
    const identityKey = str(m, 'identityKey', 'fleet artifact member');
    decodeBase64(identityKey, `fleet artifact member ${id} identity key`, 32);
    const site = str(m, 'site', 'fleet artifact member');
    if (!ID.test(site)) throw malformed('fleet artifact: invalid member site');
    return { id, identityKey, site };
  });
  const quorum = x.quorum;
  if (typeof quorum !== 'number' || !Number.isInteger(quorum) || quorum > members.length || quorum * 2 <= members.length) {
    throw malformed('fleet artifact: quorum must be a majority of the members');
  }
  const measurement = str(x, 'measurement', 'fleet artifact');
  decodeHex(measurement, 'fleet artifact measurement', 32);
  const notBefore = str(x, 'notBefore', 'fleet artifact');
  const notAfter = str(x, 'notAfter', 'fleet artifact');
  if (parseTime(notBefore, 'fleet artifact notBefore') >= parseTime(notAfter, 'fleet artifact notAfter')) {
    throw malformed('fleet artifact: notBefore must be before notAfter');
  }
  return {
    format: FLEET_ARTIFACT_FORMAT,
    namespace,
    fleetId,
    keys: KEY_ROLES.map((r) => byRole.get(r.role)!),
    members,
    quorum,
    measurement,
    notBefore,
    notAfter,
  };
}

/** Produces the canonical artifact bytes (fixed field order, keys in role order, no spaces). */
export function encodeFleetArtifact(obj: FleetArtifact): Uint8Array {
  const a = validateFleetArtifact(obj);
  return utf8(
    JSON.stringify({
      format: a.format,
      namespace: a.namespace,
      fleetId: a.fleetId,
      keys: a.keys.map((k) => ({ role: k.role, alg: k.alg, publicKey: k.publicKey })),
      members: a.members.map((m) => ({ id: m.id, identityKey: m.identityKey, site: m.site })),
      quorum: a.quorum,
      measurement: a.measurement,
      notBefore: a.notBefore,
      notAfter: a.notAfter,
    }),
  );
}

/** Strictly parses artifact bytes: valid UTF-8 JSON, every field valid, and in canonical form. */
export function parseFleetArtifact(bytes: Uint8Array): FleetArtifact {
  if (bytes.length > MAX_ARTIFACT_BYTES) throw malformed('fleet artifact: too large');
  const text = fromUtf8(bytes, 'fleet artifact');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw malformed('fleet artifact: not valid JSON');
  }
  const a = validateFleetArtifact(json);
  const canonical = encodeFleetArtifact(a);
  if (canonical.length !== bytes.length || canonical.some((b, i) => b !== bytes[i])) {
    throw malformed('fleet artifact: not in canonical form (field order, spacing or duplicate fields)');
  }
  return a;
}

export function artifactDigest(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

export function fleetPublicKeys(a: FleetArtifact): FleetPublicKeys {
  const get = (role: KeyRole) => decodeBase64(a.keys.find((k) => k.role === role)!.publicKey, role, 32);
  return {
    opaqueServerPublicKey: get('opaque-server'),
    encryptionPublicKey: get('encryption'),
    signingPublicKey: get('signing'),
  };
}

/** Convenience for tools and tests: an artifact object from raw keys. */
export function makeFleetArtifact(p: {
  namespace: string;
  fleetId: string;
  keys: FleetPublicKeys;
  members: { id: string; identityKey: Uint8Array; site: string }[];
  quorum?: number;
  measurement: string;
  notBefore: string;
  notAfter: string;
}): FleetArtifact {
  return validateFleetArtifact({
    format: FLEET_ARTIFACT_FORMAT,
    namespace: p.namespace,
    fleetId: p.fleetId,
    keys: [
      { role: 'opaque-server', alg: 'OPAQUE-3DH-ristretto255', publicKey: encodeBase64(p.keys.opaqueServerPublicKey) },
      { role: 'encryption', alg: 'HPKE-X25519-HKDF-SHA256', publicKey: encodeBase64(p.keys.encryptionPublicKey) },
      { role: 'signing', alg: 'Ed25519', publicKey: encodeBase64(p.keys.signingPublicKey) },
    ],
    members: p.members.map((m) => ({ id: m.id, identityKey: encodeBase64(m.identityKey), site: m.site })),
    quorum: p.quorum ?? Math.floor(p.members.length / 2) + 1,
    measurement: p.measurement,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
  });
}
