import type { Command } from 'commander';
import type { CommandModule } from '../context.js';
import { makeOutput } from '../output.js';
import { generateBackupKey } from '../../client/keys/backup-key.js';
import { encodeRecoveryKey } from '../../client/keys/recovery-key.js';
import { writeKeyFile } from '../../node/key-file.js';

/** `bkv key new`: draws a backup key and prints it as a recovery key or writes it to a key file. */
export const keyCommands: CommandModule = (program: Command) => {
  const key = program.command('key').description('backup keys and recovery keys');
  key
    .command('new')
    .description('generate a new backup key and show it as a 64-character recovery key')
    .option('--key-file <file>', 'write the recovery key to this file (mode 0600) instead of printing it')
    .option('--force', 'overwrite an existing key file')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { keyFile?: string; force?: boolean; json?: boolean }) => {
      const out = makeOutput(!!opts.json);
      const k = generateBackupKey();
      if (opts.keyFile) {
        await writeKeyFile(opts.keyFile, k, !!opts.force);
        out.info(`New recovery key written to ${opts.keyFile}. Keep it safe: it is the only way to restore your backups.`);
        out.result('', { keyFile: opts.keyFile });
      } else {
        out.info('New recovery key (write it down; it is the only way to restore your backups):');
        const text = encodeRecoveryKey(k);
        out.result(text, { recoveryKey: text });
      }
    });
};
