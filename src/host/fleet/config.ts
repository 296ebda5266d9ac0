/**
 * The fleet's on-disk configuration (docs/formats/fleet-layout.md): `fleet.json`, read by every
 * member and the gateway, and `member.bin`, a member's identity seeds.
 */
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { readFile } from 'node:fs/promises';
import { BkvError } from '../../shared/errors.js';
import { fromB64 } from '../../shared/protocol/messages.js';

export const FLEET_CONFIG_FORMAT = 'bkv-fleet-config/v1';

export interface FleetMemberConfig {
  id: number;
  site: string;
  host: string;
  raftPort: number;
  apiPort: number;
  /** base64 X25519 public key (consensus MACs, secret delivery). */
  identityKey: string;
  /** base64 Ed25519 public key (transcripts and attestations). */
  signingKey: string;
}

export interface FleetConfig {
  format: typeof FLEET_CONFIG_FORMAT;
  fleetId: string;
  clusterId: string;
  quorum: number;
  members: FleetMemberConfig[];
  gateway: { host: string; port: number };
  /** `passkeys`: the WebAuthn relying party and origins whose assertions release passkey-wrapped keys (docs/passkeys.md). */
  policy: { defaultLimit: number; maxLimit: number; passkeys?: { rpId: string; origins: string[] } };
  /**
   * Replication groups (docs/groups.md): `groups` split the record-id space evenly at genesis
   * (default 1: one group, the layout of a fleet without groups); `spareGroups` more start empty,
   * the targets of `bkv fleet split` (default 0). At most 64 in all.
   */
  groups?: number;
  spareGroups?: number;
}

/** The fleet's replication groups: how many split the space at genesis, and how many run in all (ids 0 … total−1). */
export function fleetGroups(c: Pick<FleetConfig, 'groups' | 'spareGroups'>): { genesis: number; total: number; multi: boolean } {
  const genesis = c.groups ?? 1;
  const total = genesis + (c.spareGroups ?? 0);
  return { genesis, total, multi: total > 1 };
}

export interface MemberIdentity {
  id: number;
  /** X25519 seed: the consensus identity. */
  identitySeed: Uint8Array;
  /** Ed25519 seed: transcripts and attestations. */
  signingSeed: Uint8Array;
}

const MEMBER_BIN_VERSION = 1;
const te = new TextEncoder();

export function encodeMemberIdentity(m: MemberIdentity): Uint8Array {
  const out = new Uint8Array(2 + 32 + 32);
  out[0] = MEMBER_BIN_VERSION;
  out[1] = m.id;
  out.set(m.identitySeed, 2);
  out.set(m.signingSeed, 34);
  return out;
}

export function decodeMemberIdentity(b: Uint8Array): MemberIdentity {
  if (b.length !== 66 || b[0] !== MEMBER_BIN_VERSION) throw new BkvError('MALFORMED', 'member.bin: unknown version or wrong length');
  return { id: b[1]!, identitySeed: b.slice(2, 34), signingSeed: b.slice(34, 66) };
}

export function memberPublicKeys(m: MemberIdentity): { identityKey: Uint8Array; signingKey: Uint8Array } {
  return { identityKey: x25519.getPublicKey(m.identitySeed), signingKey: ed25519.getPublicKey(m.signingSeed) };
}

/**
 * The key that seals this member's consensus state: derived from its identity seed, so it never
 * leaves the member and differs between members.
 */
export function memberStorageKey(m: MemberIdentity, clusterId: Uint8Array): Uint8Array {
  return hkdf(sha256, m.identitySeed, clusterId, te.encode(`bkv-member-storage-v1 ${m.id}`), 32);
}

function fail(msg: string): never {
  throw new BkvError('USAGE', `fleet.json: ${msg}`);
}

const isPort = (p: unknown): p is number => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536;

/** Parses and checks a `fleet.json`. */
export function parseFleetConfig(text: string): FleetConfig {
  let c: FleetConfig;
  try {
    c = JSON.parse(text) as FleetConfig;
  } catch (e) {
    fail(`not JSON (${(e as Error).message})`);
  }
  if (c?.format !== FLEET_CONFIG_FORMAT) fail(`format must be ${FLEET_CONFIG_FORMAT}`);
  if (typeof c.fleetId !== 'string' || c.fleetId.length === 0) fail('missing fleetId');
  if (fromB64(c.clusterId, 'clusterId').length !== 16) fail('clusterId must be 16 bytes');
  if (!Array.isArray(c.members)) fail('members must be a list');
  const n = c.members.length;
  if (n % 2 === 0 || n < 3 || n > 9) fail('a fleet has an odd number of members, 3 to 9');
  if (c.quorum !== Math.floor(n / 2) + 1) fail(`quorum must be ${Math.floor(n / 2) + 1}`);
  const ids = new Set<number>();
  for (const m of c.members) {
    if (!Number.isInteger(m.id) || m.id < 1 || m.id > n || ids.has(m.id)) fail('member ids are 1…N, each once');
    ids.add(m.id);
    if (!isPort(m.raftPort) || !isPort(m.apiPort)) fail(`member ${m.id}: bad ports`);
    if (typeof m.host !== 'string' || typeof m.site !== 'string') fail(`member ${m.id}: bad host or site`);
    if (fromB64(m.identityKey, 'identityKey').length !== 32) fail(`member ${m.id}: identityKey must be 32 bytes`);
    if (fromB64(m.signingKey, 'signingKey').length !== 32) fail(`member ${m.id}: signingKey must be 32 bytes`);
  }
  if (!isPort(c.gateway?.port) || typeof c.gateway.host !== 'string') fail('bad gateway address');
  const p = c.policy;
  if (!Number.isInteger(p?.defaultLimit) || !Number.isInteger(p.maxLimit) || p.defaultLimit < 1 || p.maxLimit < p.defaultLimit) fail('bad policy');
  if (p.passkeys !== undefined) {
    const pk = p.passkeys;
    if (typeof pk?.rpId !== 'string' || !/^[a-z0-9.-]{1,253}$/.test(pk.rpId)) fail('bad policy.passkeys.rpId');
    if (!Array.isArray(pk.origins) || pk.origins.length === 0 || pk.origins.some((o) => typeof o !== 'string' || !/^https?:\/\/[^/]+$/.test(o))) {
      fail('policy.passkeys.origins must be a list of origins like https://backup.example');
    }
  }
  if (c.groups !== undefined && (!Number.isInteger(c.groups) || c.groups < 1 || c.groups > 64)) fail('groups must be 1 to 64');
  if (c.spareGroups !== undefined && (!Number.isInteger(c.spareGroups) || c.spareGroups < 0)) fail('spareGroups must be 0 or more');
  if (fleetGroups(c).total > 64) fail('at most 64 groups in all (groups + spareGroups)');
  return c;
}

export async function readFleetConfig(path: string): Promise<FleetConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new BkvError('USAGE', `cannot read ${path}: ${(e as Error).message}`);
  }
  return parseFleetConfig(text);
}

export const memberApiUrl = (m: FleetMemberConfig): string => `http://${m.host.includes(':') ? `[${m.host}]` : m.host}:${m.apiPort}`;
