/**
 * npm run build:vault — the reproducible single-file build of the vault core.
 * Prints the code measurement (SHA-256 of build/vault-core.js). Options: --out FILE, --root DIR.
 */
import { relative } from 'node:path';
import { projectRoot, writeVaultBuild } from '../src/attestation/reproducible-build.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const root = opt('--root') ?? projectRoot();
const b = await writeVaultBuild(root, opt('--out'));
process.stdout.write(`${relative(process.cwd(), b.path) || b.path}: ${b.bytes.length} bytes from ${b.inputs.length} inputs\n`);
process.stdout.write(`measurement (SHA-256): ${b.measurement}\n`);
