/**
 * Bundles the `bkv backup` and `bkv key` commands (dist/cli/backup-entry.js) and the parallel
 * path's worker thread (dist/node/chunk-worker.js) with their dependencies into dist/bundle/, for
 * bin/bkv.js: one file to load instead of about a hundred modules to resolve, which saves
 * 30–40 ms of every such command's start-up. Run by `npm run build` after tsc. Both entries sit
 * side by side (the pool starts `./chunk-worker.js` next to itself) at the same depth as
 * dist/node/, so the addons' relative paths hold (src/node/native-aes-gcm.ts, preallocate.ts).
 */
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'dist/cli/backup-entry.js'), join(root, 'dist/node/chunk-worker.js')],
  outdir,
  entryNames: '[name]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // CommonJS dependencies call require(): give the ES module bundle one.
  banner: { js: "import { createRequire as __bkvCreateRequire } from 'node:module'; const require = __bkvCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
