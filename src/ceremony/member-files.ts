/**
 * Reading a member's key store in the software backend (docs/formats/fleet-layout.md). Node only.
 * For the member process: call `verifyMeasurement(artifact.measurement)` (src/host/measurement.ts)
 * first, then `loadMemberFleetSecrets(memberDir)`.
 */
import { x25519, ed25519 } from '@noble/curves/ed25519.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { decodeFleetSecrets, type FleetSecrets } from '../trusted/core/fleet-secrets.js';
import { MEMBER_BIN_VERSION } from '../trusted/attestation/member-core.js';

export interface MemberIdentity {
  id: number;
  x25519Seed: Uint8Array;
  x25519PublicKey: Uint8Array;
  ed25519Seed: Uint8Array;
  ed25519PublicKey: Uint8Array;
}

async function read(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    throw new BkvError('IO', `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Parses `member.bin`: u8 version ‖ u8 id ‖ X25519 seed ‖ Ed25519 seed (66 bytes). */
export async function loadMemberIdentity(memberDir: string): Promise<MemberIdentity> {
  const b = await read(join(memberDir, 'member.bin'));
  if (b.length !== 66 || b[0] !== MEMBER_BIN_VERSION || b[1] === 0) throw new BkvError('MALFORMED', `${memberDir}/member.bin is not a version 1 member key store`);
  const x = b.slice(2, 34);
  const e = b.slice(34, 66);
  return { id: b[1]!, x25519Seed: x, x25519PublicKey: x25519.getPublicKey(x), ed25519Seed: e, ed25519PublicKey: ed25519.getPublicKey(e) };
}

/** The fleet secrets as this member holds them (`fleet-secrets.bin`, written by its own core). */
export async function loadMemberFleetSecrets(memberDir: string): Promise<FleetSecrets> {
  const b = await read(join(memberDir, 'fleet-secrets.bin'));
  try {
    return decodeFleetSecrets(b);
  } catch (e) {
    throw new BkvError('MALFORMED', `${memberDir}/fleet-secrets.bin: ${(e as Error).message}`);
  }
}
