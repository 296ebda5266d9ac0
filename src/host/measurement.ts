import { sha256 } from '@noble/hashes/sha2.js';
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeHex } from '../client/fleet/encoding.js';

/** The compiled directories that make up the vault core's trusted code. */
const CORE_DIRS = ['core', 'protocol', 'consensus'];

async function listJs(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.js'))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}

/**
 * The code measurement of this installation's vault core: SHA-256 over each compiled core file's
 * path and contents, in sorted order. An interim measurement until the reproducible single-file
 * build of the core; see docs/witness.md.
 */
export async function codeMeasurement(): Promise<string> {
  const distRoot = dirname(dirname(fileURLToPath(import.meta.url)));
  const files: string[] = [];
  for (const d of CORE_DIRS) files.push(...(await listJs(join(distRoot, d))));
  files.sort();
  const h = sha256.create();
  for (const f of files) {
    const rel = new TextEncoder().encode(relative(distRoot, f).split('\\').join('/') + '\n');
    const body = new Uint8Array(await readFile(f));
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(body.length));
    h.update(rel).update(len).update(body);
  }
  return encodeHex(h.digest());
}
