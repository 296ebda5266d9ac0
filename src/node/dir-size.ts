import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Total size in bytes of the regular files under `dir` (for progress display only). */
export async function directorySize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) total += await directorySize(p);
    else if (entry.isFile()) total += (await lstat(p)).size;
  }
  return total;
}
