import type { Command } from 'commander';
import { BkvError } from '../../shared/errors.js';
import { generateBackupKey } from '../../client/keys/backup-key.js';
import { encodeRecoveryKey } from '../../client/keys/recovery-key.js';
import { HEADER_BYTES, decodeHeader, isValidChunkSize } from '../../client/backup/header.js';
import { peekBytes } from '../../node/byte-streams.js';
import { createBackupFile, inputKind, restoreBackupFile } from '../../node/backup-files.js';
import { directorySize } from '../../node/dir-size.js';
import { regularFileSize } from '../../node/file-source.js';
import { keyFileExists, readKeyFile, writeKeyFile } from '../../node/key-file.js';
import { commandGroup, type CommandModule } from '../context.js';
import { readExistingKey } from '../key-input.js';
import { makeOutput, type Output } from '../output.js';
import { wantsPassword, type PasswordOptions } from '../password-input.js';
import { keyForPasswordBackup, recoverKeyForBackup, reportEscrow, type EscrowInfo } from '../backup-vault-key.js';
import { inspectBackupFile } from '../../node/backup-inspect.js';
import { addVaultOptions, type VaultOptions } from '../vault-flags.js';
import { makeProgress } from '../progress.js';
import { checkStdio, describeEnd, stdioFor, stdioStreams } from '../stdio.js';

interface CreateOpts extends PasswordOptions, VaultOptions {
  output: string;
  recoveryKey?: boolean;
  keyFile?: string;
  recoveryKeyStdin?: boolean;
  chunkSize?: string;
  force?: boolean;
  json?: boolean;
  replaceEscrowedKey?: boolean;
}

interface RestoreOpts extends PasswordOptions, VaultOptions {
  output: string;
  keyFile?: string;
  recoveryKeyStdin?: boolean;
  force?: boolean;
  json?: boolean;
}

/** Parses "4096", "64K", "1M" into a byte count; USAGE unless a valid chunk size. */
export function parseChunkSize(text: string): number {
  const m = /^(\d+)\s*([kKmM]?)(i?B)?$/.exec(text.trim());
  const unit = m?.[2]?.toUpperCase();
  const n = m ? Number(m[1]) * (unit === 'K' ? 1024 : unit === 'M' ? 1024 * 1024 : 1) : NaN;
  if (!isValidChunkSize(n)) {
    throw new BkvError('USAGE', `invalid --chunk-size ${text}: use a power of two from 4K to 16M`);
  }
  return n;
}

/** Picks the key for a new backup and says whether it is new (and so must be shown or saved). */
async function keyForCreate(o: CreateOpts, out: Output): Promise<{ key: Uint8Array; fresh: boolean; escrow?: EscrowInfo }> {
  if (o.replaceEscrowedKey && !wantsPassword(o)) throw new BkvError('USAGE', '--replace-escrowed-key goes with --password or --password-file');
  const ways = [o.recoveryKey, o.recoveryKeyStdin, o.keyFile, wantsPassword(o)].filter(Boolean).length;
  if (ways === 0) {
    throw new BkvError('USAGE', 'choose a key: --recovery-key (new key, printed), --key-file F, --recovery-key-stdin, or --password (escrowed in the vault)');
  }
  if (wantsPassword(o)) {
    if (ways > 1) throw new BkvError('USAGE', '--password keeps the key in the vault; it cannot be combined with another key option');
    return { ...(await keyForPasswordBackup(o, out)), fresh: false };
  }
  if (o.recoveryKey && o.recoveryKeyStdin) throw new BkvError('USAGE', '--recovery-key makes a new key; it cannot be combined with --recovery-key-stdin');
  if (o.recoveryKey) return { key: generateBackupKey(), fresh: true };
  if (o.keyFile && !o.recoveryKeyStdin && !(await keyFileExists(o.keyFile))) return { key: generateBackupKey(), fresh: true };
  if (o.keyFile && !o.recoveryKeyStdin) return { key: await readKeyFile(o.keyFile), fresh: false };
  return { key: await readExistingKey({ recoveryKeyStdin: true }), fresh: false };
}

async function create(input: string, o: CreateOpts): Promise<void> {
  const out = makeOutput(!!o.json);
  const chunkSize = o.chunkSize ? parseChunkSize(o.chunkSize) : undefined;
  const stdio = stdioFor(input, o.output);
  checkStdio('create', stdio, o);
  const kind = stdio.stdin ? 'file' : await inputKind(input);
  const { key, fresh, escrow } = await keyForCreate(o, out);
  // Save a new key before any backup exists, so a backup never outlives its only key.
  if (fresh && o.keyFile) await writeKeyFile(o.keyFile, key, !!o.force);
  const showProgress = !out.json && process.stderr.isTTY;
  const total = !showProgress || stdio.stdin ? 0 : kind === 'tar' ? await directorySize(input) : await regularFileSize(input);
  const progress = await makeProgress('Encrypting', total, out.json);
  try {
    // The CLI does nothing else meanwhile: its own thread computes too (bin/bkv.js prestarts the rest).
    const ends = { input: describeEnd(input, 'input'), output: describeEnd(o.output, 'output'), ...stdioStreams(stdio) };
    await createBackupFile({ ...ends, key, force: !!o.force, mainThreadWorks: true, onProgress: (n) => progress.add(n), ...(chunkSize ? { chunkSize } : {}) });
  } finally {
    progress.stop();
  }
  const what = kind === 'tar' ? 'directory' : 'file';
  out.info(`Backed up ${what} ${describeEnd(input, 'input')} to ${describeEnd(o.output, 'output')}.`);
  const data: Record<string, unknown> = { output: o.output, kind };
  if (fresh && o.keyFile) {
    out.info(`New recovery key saved in ${o.keyFile}. Keep it safe: it is the only way to restore this backup.`);
    data.keyFile = o.keyFile;
  }
  if (escrow) {
    reportEscrow(escrow, out);
    data.escrow = escrow;
  }
  if (fresh && o.recoveryKey) {
    const text = encodeRecoveryKey(key);
    data.recoveryKey = text;
    out.info('Recovery key (write it down; it is the only way to restore this backup):');
    out.result(text, data);
  } else {
    out.result('', data);
  }
}

async function restore(input: string, o: RestoreOpts): Promise<void> {
  const out = makeOutput(!!o.json);
  const stdio = stdioFor(input, o.output);
  checkStdio('restore', stdio, o);
  const total = stdio.stdin ? 0 : await regularFileSize(input);
  if (wantsPassword(o) && (o.keyFile || o.recoveryKeyStdin)) {
    throw new BkvError('USAGE', 'give either a key (--key-file, --recovery-key-stdin) or --password, not both');
  }
  let ends = { input: describeEnd(input, 'input'), output: describeEnd(o.output, 'output'), ...stdioStreams(stdio) };
  let key: Uint8Array;
  if (wantsPassword(o)) {
    // With a password, the header is read first (from a pipe too): its key id tells the vault
    // which key is wanted, and a file that is no backup costs no guess.
    let fingerprint: Uint8Array;
    if (ends.inputStream) {
      const peeked = await peekBytes(ends.inputStream, HEADER_BYTES);
      ends = { ...ends, inputStream: peeked.all };
      fingerprint = decodeHeader(peeked.head).fingerprint;
    } else {
      fingerprint = (await inspectBackupFile(input)).header.fingerprint;
    }
    key = await recoverKeyForBackup(o, out, fingerprint);
  } else {
    key = await readExistingKey(o);
  }
  const progress = await makeProgress('Decrypting', total, out.json);
  let result;
  try {
    result = await restoreBackupFile({ ...ends, key, force: !!o.force, mainThreadWorks: true, onProgress: (n) => progress.add(n) });
  } finally {
    progress.stop();
  }
  const what = result.kind === 'tar' ? 'directory' : 'file';
  const from = describeEnd(input, 'input');
  out.info(stdio.stdout ? `Wrote the ${what === 'file' ? 'file' : 'directory, as a tar archive,'} from ${from} to standard output; every chunk authenticated.` : `Restored ${what} ${o.output} from ${from}; every chunk authenticated.`);
  out.result('', { output: o.output, kind: result.kind, bytes: result.bytes });
}

/** `bkv backup create|restore`: encrypted backups of a file or directory (inspect, verify: backup-check.ts). */
export const backupCommands: CommandModule = (program: Command) => {
  const backup = commandGroup(program, 'backup', 'create, restore, inspect and verify encrypted backups');
  const create_ = backup
    .command('create')
    .description('encrypt a file or a directory into a backup file')
    .argument('<input>', 'file or directory to back up, or - for standard input (then give the key with --key-file or --password-file)')
    .requiredOption('-o, --output <file>', 'backup file to write, or - for standard output')
    .option('--recovery-key', 'make a new backup key and print it as a recovery key')
    .option('--key-file <file>', 'use the recovery key in this file; if it does not exist, make a new key and save it there')
    .option('--recovery-key-stdin', 'read an existing recovery key from standard input')
    .option('--password', 'use the key escrowed in the vault under a password, or escrow a new one if the account has none (asked on a terminal, else read from stdin)')
    .option('--password-file <file>', 'like --password, reading the password from the first line of a file')
    .option('--replace-escrowed-key', 'with --password: escrow a new key over the one the account has (older backups then no longer restore with --password)')
    .option('--chunk-size <size>', 'plaintext bytes per chunk, a power of two from 4K to 16M (default 1M)')
    .option('--force', 'overwrite an existing output (and key file)')
    .option('--json', 'print the result as JSON')
    .action(create);
  addVaultOptions(create_);
  const restore_ = backup
    .command('restore')
    .description('decrypt a backup file into a file or directory, verifying every chunk')
    .argument('<backup>', 'backup file to read, or - for standard input (then give the key with --key-file or --password-file)')
    .requiredOption('-o, --output <path>', 'file or directory to create, or - for standard output (a directory as its tar archive)')
    .option('--key-file <file>', 'read the recovery key from this file')
    .option('--recovery-key-stdin', 'read the recovery key from standard input')
    .option('--password', 'recover the key from the vault with a password (asked on a terminal, else read from stdin)')
    .option('--password-file <file>', 'like --password, reading the password from the first line of a file')
    .option('--force', 'overwrite an existing output')
    .option('--json', 'print the result as JSON')
    .action(restore);
  addVaultOptions(restore_);
};
