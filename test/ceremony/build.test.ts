import { cp, mkdir, readFile, symlink } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeHex } from '../../src/shared/fleet-formats/encoding.js';
import { buildVaultCore } from '../../src/attestation/reproducible-build.js';
import { codeMeasurement } from '../../src/host/measurement.js';
import { cleanup, tempDir } from './fixture.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);
afterAll(cleanup);

/** A fresh checkout elsewhere: the sources copied, the installed dependencies linked. */
async function checkout(): Promise<string> {
  const d = join(await tempDir('bkv-build-'), 'somewhere', 'else');
  await mkdir(d, { recursive: true });
  await cp(join(root, 'src'), join(d, 'src'), { recursive: true });
  await cp(join(root, 'package.json'), join(d, 'package.json'));
  await symlink(join(root, 'node_modules'), join(d, 'node_modules'), 'dir');
  return d;
}

describe('reproducible vault core build', () => {
  it('gives byte-identical output from two checkouts in different directories, run from different working directories', async () => {
    const [a, b] = [await checkout(), await checkout()];
    // One built by the script as a user would run it (cwd = the checkout), one in-process.
    await run(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'build-vault.ts'), '--root', a], { cwd: a });
    const fileA = new Uint8Array(await readFile(join(a, 'build', 'vault-core.js')));
    const built = await buildVaultCore(b);
    expect(Buffer.from(fileA).equals(Buffer.from(built.bytes))).toBe(true);
    expect(encodeHex(sha256(fileA))).toBe(built.measurement);
    // The same as this checkout's, and free of machine paths.
    const here = await buildVaultCore(root);
    expect(here.measurement).toBe(built.measurement);
    const text = new TextDecoder().decode(built.bytes);
    expect(text).not.toContain(a);
    expect(text).not.toContain(root);
    expect(text).not.toMatch(/\/tmp\/|\/home\/|\/Users\//);
    // Every input is named relative to the root; the npm libraries are bundled, not external.
    expect(built.inputs.every((i) => !i.path.startsWith('/'))).toBe(true);
    expect(built.inputs.map((i) => i.path)).toEqual(expect.arrayContaining(['src/trusted/core/vault-entry.ts', 'node_modules/@serenity-kit/opaque/esm/index.js']));
    expect(text).not.toMatch(/^import .* from ["']@/m);
    // The installation's measurement is the SHA-256 of its build file (when it is up to date).
    expect(await codeMeasurement()).toMatch(/^[0-9a-f]{64}$/);
  }, 120_000);
});
