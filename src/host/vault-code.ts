import { sha256 } from '@noble/hashes/sha2.js';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { encodeHex } from '../shared/fleet-formats/encoding.js';
import { parseFleetArtifact } from '../shared/fleet-formats/artifact.js';
import type * as VaultEntry from '../trusted/core/vault-entry.js';
import { vaultBuildPath } from './measurement.js';

/** The vault core as a member loads it: the exports of `src/trusted/core/vault-entry.ts`. */
export type VaultCode = typeof VaultEntry;

export interface LoadedVaultCode {
  code: VaultCode;
  /** The measurement of the loaded bytes, or null for a development fleet without one. */
  measurement: string | null;
}

/**
 * Loads the vault core code a member runs. For a fleet deployed by the ceremony (its
 * `fleet-artifact.json` names a measurement) the code is the reproducible single-file build: its
 * bytes are read once, hashed, compared with the attested measurement, and exactly those bytes are
 * imported, so what runs is what was measured. A mismatch refuses to start (VERIFICATION_FAILED).
 * A development fleet (`bkv up` without a ceremony) runs the compiled modules and says so.
 */
export async function loadVaultCode(fleetPath: string): Promise<LoadedVaultCode> {
  const artifactPath = join(dirname(fleetPath), 'fleet-artifact.json');
  if (!existsSync(artifactPath)) return { code: await import('../trusted/core/vault-entry.js'), measurement: null };
  const expected = parseFleetArtifact(new Uint8Array(await readFile(artifactPath))).measurement;
  const path = vaultBuildPath();
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch {
    throw new BkvError('VERIFICATION_FAILED', `the vault core build ${path} is missing (npm run build:vault); refusing to start`, {
      check: 'measurement',
    });
  }
  const actual = encodeHex(sha256(bytes));
  if (actual !== expected) {
    throw new BkvError('VERIFICATION_FAILED', `the vault core code measures ${actual}, but this fleet is attested for ${expected}; refusing to start`, {
      check: 'measurement',
      expected,
      actual,
    });
  }
  const url = `data:text/javascript;base64,${Buffer.from(bytes).toString('base64')}`;
  return { code: (await import(url)) as VaultCode, measurement: actual };
}
