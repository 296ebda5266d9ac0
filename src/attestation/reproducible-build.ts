/**
 * The reproducible build of the vault core (`npm run build:vault`). Node only.
 *
 * One entry (`src/trusted/core/vault-entry.ts`), bundled by esbuild with fixed options into one ES module.
 * Every npm library the core imports (@noble/*, @scure/base, @hpke/core, @serenity-kit/opaque
 * with its WebAssembly inlined as base64) is bundled, not external: the measurement covers all
 * code inside the trust boundary, and the exact versions come from package-lock.json. Paths in
 * the output are relative to the source root, there are no timestamps, legal comments or source
 * maps, so the same source tree and lock file give the same bytes on any machine and in any
 * directory. Its SHA-256 is the code measurement.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions } from 'esbuild';
import { BkvError } from '../shared/errors.js';
import { encodeHex } from '../shared/fleet-formats/encoding.js';
import { writeFileDurable } from '../node/fs-durable.js';

export const VAULT_ENTRY = 'src/trusted/core/vault-entry.ts';
export const VAULT_BUILD_FILE = 'build/vault-core.js';

/** The repository root: this file lives two levels below it (src/attestation, dist/attestation). */
export function projectRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export interface VaultBuild {
  bytes: Uint8Array;
  /** lower-case hex SHA-256 of `bytes`: the code measurement */
  measurement: string;
  /** every input file, relative to the root, sorted, with its SHA-256 (for auditors) */
  inputs: { path: string; bytes: number }[];
}

/** The fixed esbuild options. Changing any of them changes the measurement. */
export function vaultBuildOptions(root: string): BuildOptions & { write: false; metafile: true } {
  return {
    absWorkingDir: root,
    entryPoints: [VAULT_ENTRY],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    conditions: ['import', 'default'],
    target: 'es2022',
    charset: 'utf8',
    legalComments: 'none',
    sourcemap: false,
    minify: false,
    treeShaking: true,
    keepNames: false,
    preserveSymlinks: true,
    metafile: true,
    write: false,
    logLevel: 'silent',
    banner: { js: '// bkv vault core: reproducible build (docs/attestation.md)' },
    // The TypeScript settings that change emitted code, fixed here so that no tsconfig.json of the
    // checkout (or its absence) changes the measurement.
    tsconfigRaw: { compilerOptions: { useDefineForClassFields: true, verbatimModuleSyntax: true, experimentalDecorators: false } },
  };
}

/** Builds the vault core from the source tree at `root` (default: this checkout) in memory. */
export async function buildVaultCore(root: string = projectRoot()): Promise<VaultBuild> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new BkvError('UNAVAILABLE', 'esbuild is not installed: the vault core cannot be rebuilt here (npm ci)');
  }
  const result = await esbuild.build({ ...vaultBuildOptions(root), outfile: join(root, VAULT_BUILD_FILE) });
  const outputFiles = result.outputFiles ?? [];
  if (result.errors.length > 0 || outputFiles.length !== 1) {
    throw new BkvError('INTERNAL', `vault core build failed: ${result.errors.map((e) => e.text).join('; ')}`);
  }
  const bytes = outputFiles[0]!.contents;
  const inputs = Object.entries(result.metafile?.inputs ?? {})
    .map(([path, v]) => ({ path, bytes: v.bytes }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { bytes, measurement: encodeHex(sha256(bytes)), inputs };
}

/** Builds and writes `build/vault-core.js` (atomically) and `build/vault-core.inputs.json`. */
export async function writeVaultBuild(root: string = projectRoot(), outFile?: string): Promise<VaultBuild & { path: string }> {
  const b = await buildVaultCore(root);
  const path = outFile ?? join(root, VAULT_BUILD_FILE);
  await mkdir(dirname(path), { recursive: true });
  await writeFileDurable(path, b.bytes, 0o644);
  const manifest = JSON.stringify({ format: 'bkv-vault-build/v1', measurement: b.measurement, inputs: b.inputs }, null, 2) + '\n';
  await writeFileDurable(path.replace(/\.js$/, '') + '.inputs.json', manifest, 0o644);
  return { ...b, path };
}
