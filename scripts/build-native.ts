/**
 * npm run build:native — builds the two small addons of native/ with node-gyp: in-place AES-GCM
 * (src/node/native-aes-gcm.ts) and file preallocation (src/node/preallocate.ts), against the
 * headers of the Node running this script when they are installed beside it (no download), else
 * node-gyp's usual source.
 *
 * Skipped when the built addons are newer than their sources. A failed build (no C compiler, say)
 * is reported and is not an error: the backup code then uses node:crypto and plain writes, which
 * give the same bytes more slowly. `--strict` makes it an error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'native');
const targets = ['bkv_aes_gcm', 'bkv_fallocate'].map((t) => join(dir, 'build', 'Release', `${t}.node`));
const sources = ['aes_gcm.c', 'fallocate.c', 'binding.gyp'].map((f) => join(dir, f));
const strict = process.argv.includes('--strict');

const mtime = (p: string) => statSync(p).mtimeMs;
const built = () => targets.every((t) => existsSync(t));
if (built() && sources.every((s) => targets.every((t) => mtime(s) <= mtime(t)))) process.exit(0);

function nodeGyp(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return process.env.npm_config_node_gyp; // the copy bundled with npm, when run by npm
  }
}

function fail(why: string): never {
  const msg = `note: the native addons were not built (${why}); large backups use node:crypto and plain writes, which are slower`;
  process.stderr.write(`${msg}\n`);
  process.exit(strict ? 1 : 0);
}

const gyp = nodeGyp();
if (!gyp) fail('node-gyp not found');
// Headers installed with this Node (include/node/node_api.h under its prefix): build offline.
const prefix = dirname(dirname(process.execPath));
const nodedir = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--directory=${dir}`, ...nodedir], {
  encoding: 'utf8',
  env: { ...process.env, npm_config_loglevel: 'warn' },
});
if (r.status !== 0 || !built()) {
  process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  fail(r.error ? r.error.message : `node-gyp exited with ${r.status}`);
}
for (const t of targets) process.stdout.write(`${relative(process.cwd(), t)}: built\n`);
