import { sha256 } from '@noble/hashes/sha2.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { decodeHex, encodeHex } from '../shared/fleet-formats/encoding.js';
import { VAULT_BUILD_FILE, projectRoot, writeVaultBuild } from '../attestation/reproducible-build.js';

/** Where the vault core build lives: `build/vault-core.js` under the project root, or $BKV_VAULT_BUILD. */
export function vaultBuildPath(): string {
  return process.env.BKV_VAULT_BUILD ?? join(projectRoot(), VAULT_BUILD_FILE);
}

async function readBuild(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BkvError('IO', `cannot read the vault core build ${path}: ${(e as Error).message}`);
  }
}

/**
 * The code measurement of this installation's vault core: the lower-case hex SHA-256 of the
 * reproducible single-file build `build/vault-core.js` (`npm run build:vault`, docs/attestation.md).
 * When the file is missing it is built first (needs esbuild, a development dependency).
 */
export async function codeMeasurement(): Promise<string> {
  const path = vaultBuildPath();
  let bytes = await readBuild(path);
  if (!bytes) {
    const b = await writeVaultBuild(projectRoot(), path);
    bytes = b.bytes;
  }
  return encodeHex(sha256(bytes));
}

/**
 * Rebuilds `build/vault-core.js` from this source tree and returns its measurement: what a
 * deployment should attest, so that the build members load is the one made from the source.
 */
export async function freshCodeMeasurement(): Promise<string> {
  return (await writeVaultBuild(projectRoot(), vaultBuildPath())).measurement;
}

/**
 * The check a member runs at start, before it loads any secret: the vault core code it is about to
 * load (`build/vault-core.js`, or `path`) must hash to `expected`, the measurement in the fleet
 * artifact and in the member's attestation. Throws VERIFICATION_FAILED (details.check
 * "measurement") when it does not, or when the build is missing. Returns the measurement.
 */
export async function verifyMeasurement(expected: string, path: string = vaultBuildPath()): Promise<string> {
  decodeHex(expected, 'expected measurement', 32);
  const bytes = await readBuild(path);
  if (!bytes) {
    throw new BkvError('VERIFICATION_FAILED', `the vault core build ${path} is missing (npm run build:vault); refusing to start`, {
      check: 'measurement',
    });
  }
  const actual = encodeHex(sha256(bytes));
  if (actual !== expected) {
    throw new BkvError(
      'VERIFICATION_FAILED',
      `the vault core code measures ${actual}, but this fleet is attested for ${expected}; refusing to start`,
      { check: 'measurement', expected, actual },
    );
  }
  return actual;
}
