/**
 * Runs every bench/*.bench.ts in sequence, each in its own process.
 *   npm run bench                       all benchmarks
 *   npm run bench -- --only backup      only files whose name contains "backup" (repeatable, or a,b)
 * Other arguments are passed on to each benchmark.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const only: string[] = [];
const rest: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--only' && args[i + 1]) only.push(...args[++i]!.split(','));
  else if (args[i]!.startsWith('--only=')) only.push(...args[i]!.slice(7).split(','));
  else rest.push(args[i]!);
}
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
if (files.length === 0) {
  console.error(`no benchmark matches ${only.join(', ') || '(none found)'}`);
  process.exit(2);
}
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f} ===`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, f), ...rest], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`${f} failed (exit ${r.status ?? r.signal})`);
  }
}
process.exit(failed ? 1 : 0);
