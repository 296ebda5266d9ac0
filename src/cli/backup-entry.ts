import { backupCommands } from './commands/backup.js';
import { backupCheckCommands } from './commands/backup-check.js';
import { keyCommands } from './commands/key.js';
import { runProgram } from './program.js';

export { prestartFor } from '../node/worker-pool.js';

/**
 * `bkv backup …` and `bkv key …` alone: the entry the build bundles into one file with its
 * dependencies (dist/bundle/backup-entry.js, scripts/build-cli-bundle.ts), so that these commands
 * start without resolving and reading a hundred modules. bin/bkv.js uses it for those two groups
 * when it exists; the program is the one src/cli/main.ts builds for them.
 */
export async function main(argv: string[]): Promise<number> {
  const group = argv.slice(2).find((a) => !a.startsWith('-'));
  return runProgram(argv, group === 'key' ? [keyCommands] : [backupCommands, backupCheckCommands]);
}
