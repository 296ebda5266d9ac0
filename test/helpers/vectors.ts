import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The directory a local clone was made from (its `origin`), if it is one. */
function originDir(): string | null {
  try {
    const url = execFileSync('git', ['-C', repoRoot, 'config', '--get', 'remote.origin.url'], { encoding: 'utf8' }).trim();
    const path = url.startsWith('file://') ? fileURLToPath(url) : url;
    return path && !/^[a-z][a-z0-9+.-]*:/i.test(path) && existsSync(path) ? resolve(path) : null;
  } catch {
    return null;
  }
}

/**
 * The shared test-vector directory (public-spec vectors kept beside the repository, never copied
 * into it). Looked up as `BKV_VECTORS`, else `shared/vectors` beside the checkout or an ancestor,
 * else beside the repository a local clone was made from.
 */
export function vectorsDir(): string {
  const fromEnv = process.env.BKV_VECTORS;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const origin = originDir();
  for (const start of origin ? [repoRoot, origin] : [repoRoot]) {
    let dir = start;
    for (let i = 0; i < 4; i++) {
      const candidate = join(dir, '..', 'shared', 'vectors');
      if (existsSync(candidate)) return resolve(candidate);
      dir = resolve(dir, '..');
    }
  }
  throw new Error('test vectors not found: set BKV_VECTORS or place shared/vectors beside the checkout');
}

export function readVectorJson<T = unknown>(...parts: string[]): T {
  return JSON.parse(readFileSync(join(vectorsDir(), ...parts), 'utf8')) as T;
}

export function listVectorFiles(...parts: string[]): string[] {
  return readdirSync(join(vectorsDir(), ...parts));
}
