import { describe, expect, it } from 'vitest';
import { build } from 'esbuild';
import { builtinModules } from 'node:module';

describe('client entry point', () => {
  it('bundles for the browser without any Node builtin', async () => {
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    const seen: string[] = [];
    const result = await build({
      entryPoints: ['src/client/index.ts'],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
      plugins: [
        {
          name: 'forbid-node-builtins',
          setup(b) {
            b.onResolve({ filter: /.*/ }, (args) => {
              if (!(args.path.startsWith('node:') || builtins.has(args.path))) return undefined;
              // @hpke's fallback for runtimes without globalThis.crypto (never taken in a browser).
              if (args.kind === 'dynamic-import' && args.path === 'crypto' && args.importer.includes('/@hpke/')) return { path: args.path, external: true };
              seen.push(`${args.path} (from ${args.importer})`);
              return undefined;
            });
          },
        },
      ],
    });
    expect(seen).toEqual([]);
    expect(result.errors).toEqual([]);
    expect(result.outputFiles[0]!.text).toContain('AES-GCM');
  });

  it('is importable as an ES module under its package name, with type declarations', async () => {
    const m = await import('backup-key-vault/client' as string);
    for (const name of ['encryptBackup', 'openBackup', 'VaultClient', 'PasskeyVaultClient', 'httpTransport', 'overTheAirFleet', 'decodeRecoveryKey']) {
      expect(typeof m[name], name).toBe('function');
    }
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { exports: Record<string, { types: string; import: string }> };
    const d = await readFile(pkg.exports['./client']!.types, 'utf8');
    expect(d).toContain('VaultClient');
  });
});
