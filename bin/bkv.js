#!/usr/bin/env node
import { statSync } from 'node:fs';

const [group, command, ...rest] = process.argv.slice(2);
// `bkv backup …` and `bkv key …` load one bundled file (scripts/build-cli-bundle.ts); the rest, and
// these too when the bundle is missing, older than the compiled modules, or BKV_CLI_BUNDLE=0,
// load the compiled modules.
const bundle = new URL('../dist/bundle/backup-entry.js', import.meta.url);
const mtime = (url) => statSync(url, { throwIfNoEntry: false })?.mtimeMs ?? -1;
const bundled =
  (group === 'backup' || group === 'key') &&
  process.env.BKV_CLI_BUNDLE !== '0' &&
  mtime(bundle) >= Math.max(0, mtime(new URL('../dist/cli/backup-entry.js', import.meta.url)));
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
