#!/usr/bin/env node
// `bkv backup create|restore` of a large file runs on worker threads: start them while the CLI loads.
const [group, command, ...rest] = process.argv.slice(2);
if (group === 'backup' && (command === 'create' || command === 'restore')) {
  (await import('../dist/node/worker-pool.js')).prestartFor(rest, { mainThreadWorks: true }); // as the command runs
}
const { main } = await import('../dist/cli/main.js');

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`bkv: internal error: ${err?.stack ?? err}\n`);
    process.exitCode = 70;
  },
);
