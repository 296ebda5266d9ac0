#!/usr/bin/env node
import { existsSync } from 'node:fs';

const [group, command, ...rest] = process.argv.slice(2);
// `bkv backup …` and `bkv key …` load one bundled file (scripts/build-cli-bundle.ts); the rest, and
// these too when the bundle is missing or BKV_CLI_BUNDLE=0, load the compiled modules.
const bundle = new URL('../dist/bundle/backup-entry.js', import.meta.url);
const bundled = (group === 'backup' || group === 'key') && process.env.BKV_CLI_BUNDLE !== '0' && existsSync(bundle);
if (group === 'backup' && (command === 'create' || command === 'restore')) {
  // A large file runs on worker threads: start them while the CLI loads (as the command runs).
  const pool = bundled ? await import(bundle.href) : await import('../dist/node/worker-pool.js');
  pool.prestartFor(rest, { mainThreadWorks: true });
}
const { main } = bundled ? await import(bundle.href) : await import('../dist/cli/main.js');

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`bkv: internal error: ${err?.stack ?? err}\n`);
    process.exitCode = 70;
  },
);
