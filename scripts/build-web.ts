/**
 * Builds the web app (src/web) into dist/webapp with esbuild: one ES module for the page, one for
 * the vault worker, the HTML and the CSS. Refuses any Node builtin: the app runs in browsers only.
 */
import { build } from 'esbuild';
import { builtinModules } from 'node:module';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'webapp');
const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

export async function buildWebApp(outDir = out): Promise<void> {
  await mkdir(outDir, { recursive: true });
  const forbidden: string[] = [];
  const result = await build({
    entryPoints: { app: join(root, 'src/web/app.ts'), 'vault-worker': join(root, 'src/web/vault-worker.ts') },
    outdir: outDir,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['chrome120', 'firefox120', 'safari17'],
    minify: true,
    sourcemap: true,
    legalComments: 'linked',
    logLevel: 'warning',
    plugins: [
      {
        name: 'forbid-node-builtins',
        setup(b) {
          b.onResolve({ filter: /.*/ }, (args) => {
            if (!(args.path.startsWith('node:') || builtins.has(args.path))) return undefined;
            // @hpke falls back to `await import("crypto")` only where globalThis.crypto is missing
            // (old Node); every browser has WebCrypto, so that branch never runs there.
            if (args.kind === 'dynamic-import' && args.path === 'crypto' && args.importer.includes('/@hpke/')) {
              return { path: args.path, external: true };
            }
            forbidden.push(`${args.path} (from ${args.importer})`);
            return undefined;
          });
        },
      },
    ],
  });
  if (forbidden.length) throw new Error(`the web app imports Node builtins: ${forbidden.join(', ')}`);
  if (result.errors.length) throw new Error('web app build failed');
  await copyFile(join(root, 'src/web/index.html'), join(outDir, 'index.html'));
  await copyFile(join(root, 'src/web/style.css'), join(outDir, 'style.css'));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = performance.now();
  await buildWebApp();
  process.stdout.write(`web app: dist/webapp (${(performance.now() - t0).toFixed(0)} ms)\n`);
}
