/**
 * The trust boundary in the tree (docs/ARCHITECTURE.md, "Rules that keep the boundaries"):
 * the measured vault build reads only src/trusted/ and src/shared/ (plus npm packages), and no
 * file there imports a Node API or anything outside those two folders.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, posix, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildVaultCore, projectRoot } from '../../src/attestation/reproducible-build.js';

const root = projectRoot();
const INSIDE = ['src/trusted/', 'src/shared/'];
const inside = (p: string) => INSIDE.some((d) => p.startsWith(d));

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const p = `${dir}/${name}`;
    if (statSync(join(root, p)).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

/** Every module specifier in `text`: static imports and re-exports, `import type`, dynamic import(). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  const re = /(?:^|[\s;}])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of text.matchAll(re)) out.push((m[1] ?? m[2] ?? m[3])!);
  return out;
}

describe('trust boundary', () => {
  it('the measured vault build reads no source file outside src/trusted and src/shared', async () => {
    const { inputs } = await buildVaultCore(root);
    const paths = inputs.map((i) => i.path.split(sep).join('/'));
    expect(paths).toContain('src/trusted/core/vault-entry.ts');
    const outside = paths.filter((p) => !p.startsWith('node_modules/') && !inside(p));
    expect(outside).toEqual([]);
  });

  it('src/trusted and src/shared import no Node API and nothing outside those two folders', () => {
    const builtins = new Set(builtinModules);
    const problems: string[] = [];
    const files = [...sourceFiles('src/trusted'), ...sourceFiles('src/shared')];
    expect(files.length).toBeGreaterThan(40);
    for (const file of files) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const spec of specifiers(text)) {
        if (spec.startsWith('.')) {
          const target = posix.normalize(posix.join(posix.dirname(file), spec));
          if (!inside(target)) problems.push(`${file} imports ${spec} (${target})`);
          if (file.startsWith('src/shared/') && target.startsWith('src/trusted/')) problems.push(`${file} (shared) imports the trusted ${target}`);
        } else if (spec.startsWith('node:') || builtins.has(spec) || builtins.has(spec.split('/')[0]!)) {
          problems.push(`${file} imports the Node API ${spec}`);
        } else if (spec.startsWith('/') || /^[A-Za-z]:/.test(spec)) {
          problems.push(`${file} imports the absolute path ${spec}`);
        }
      }
      if (/\brequire\s*\(/.test(text)) problems.push(`${file} calls require()`);
    }
    expect(problems).toEqual([]);
  });

  it('the specifier scan sees the imports it must refuse', () => {
    expect(specifiers("import { a } from '../../host/x.js';\nexport * from 'node:fs';\nimport type { T } from './t.js';\nawait import('node:os');\nimport 'side-effect';")).toEqual([
      '../../host/x.js',
      'node:fs',
      './t.js',
      'node:os',
      'side-effect',
    ]);
  });
});

