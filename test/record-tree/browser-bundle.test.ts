import { describe, expect, it } from 'vitest';
import { build } from 'esbuild';
import { builtinModules } from 'node:module';

describe('record tree entry point', () => {
  it('bundles for the browser (and the core) without any Node builtin', async () => {
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    const seen: string[] = [];
    const result = await build({
      entryPoints: ['src/shared/record-tree/index.ts'],
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
              if (args.path.startsWith('node:') || builtins.has(args.path)) seen.push(`${args.path} (from ${args.importer})`);
              return undefined;
            });
          },
        },
      ],
    });
    expect(seen).toEqual([]);
    expect(result.errors).toEqual([]);
    expect(result.outputFiles[0]!.text).toContain('RootBuilder');
  });
});
