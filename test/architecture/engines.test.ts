/**
 * `npm ci` on the oldest Node our package.json accepts must not warn that a locked package needs a
 * newer one (docs/dependencies.md): every `engines.node` in package-lock.json admits our minimum.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/attestation/reproducible-build.js';

const semver = createRequire(import.meta.url)('semver') as {
  minVersion(range: string): { version: string } | null;
  satisfies(version: string, range: string): boolean;
};

const root = projectRoot();
const read = (name: string) => JSON.parse(readFileSync(join(root, name), 'utf8')) as Record<string, unknown>;

describe('engines', () => {
  it('every locked package runs on the oldest Node that package.json allows', () => {
    const ours = (read('package.json').engines as { node: string }).node;
    const min = semver.minVersion(ours)!.version;
    expect(min).toBe('20.19.0');
    const packages = read('package-lock.json').packages as Record<string, { version?: string; engines?: { node?: string } | string[] }>;
    const tooNew: string[] = [];
    for (const [path, p] of Object.entries(packages)) {
      const range = p.engines && !Array.isArray(p.engines) ? p.engines.node : undefined;
      if (path !== '' && range && !semver.satisfies(min, range)) tooNew.push(`${path}@${p.version} wants node ${range}`);
    }
    expect(tooNew).toEqual([]);
  });
});
