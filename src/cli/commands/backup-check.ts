import type { Command } from 'commander';
import { BkvError } from '../../shared/errors.js';
import { formatKeyId } from '../../client/keys/backup-key.js';
import { inspectBackupFile, verifyBackupFile } from '../../node/backup-inspect.js';
import { commandGroup, type CommandModule } from '../context.js';
import { readExistingKey } from '../key-input.js';
import { makeOutput } from '../output.js';
import { wantsPassword, type PasswordOptions } from '../password-input.js';
import { makeProgress } from '../progress.js';
import { recoverKeyForBackup } from '../backup-vault-key.js';
import { addVaultOptions, type VaultOptions } from '../vault-flags.js';

interface InspectOpts {
  json?: boolean;
}

interface VerifyOpts extends PasswordOptions, VaultOptions {
  keyFile?: string;
  recoveryKeyStdin?: boolean;
  json?: boolean;
}

/** "1 MiB", "64 KiB", "4096 bytes". */
function sizeText(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** `bkv backup inspect FILE`: what the header says and the size implies; no key, nothing verified. */
async function inspect(file: string, o: InspectOpts): Promise<void> {
  const out = makeOutput(!!o.json);
  const { header, size, layout } = await inspectBackupFile(file);
  const keyId = formatKeyId(header.fingerprint);
  const kind = header.kind === 'tar' ? 'directory (tar archive)' : 'file';
  const lines = [
    `File        ${file}`,
    `Format      bkv backup version ${header.version}`,
    `Payload     ${kind}`,
    `Chunk size  ${sizeText(header.chunkSize)} (${header.chunkSize} bytes)`,
    `Key id      ${keyId}`,
    layout
      ? `Size        ${size} bytes: 64-byte header, ${plural(layout.chunks, 'chunk')}, ${plural(layout.payloadBytes, 'byte')} of payload`
      : `Size        ${size} bytes: no valid backup has this size (cut short or extended; verify says which)`,
    'Not verified: this is what the header says. `bkv backup verify` authenticates every chunk (it needs the key).',
  ];
  out.result(lines.join('\n'), {
    file,
    version: header.version,
    kind: header.kind,
    chunkSize: header.chunkSize,
    keyId,
    size,
    chunks: layout?.chunks ?? null,
    payloadBytes: layout?.payloadBytes ?? null,
    verified: false,
  });
}

/** `bkv backup verify FILE`: authenticates every chunk with the key, as restore does; writes nothing. */
async function verify(file: string, o: VerifyOpts): Promise<void> {
  const out = makeOutput(!!o.json);
  if (wantsPassword(o) && (o.keyFile || o.recoveryKeyStdin)) {
    throw new BkvError('USAGE', 'give either a key (--key-file, --recovery-key-stdin) or --password, not both');
  }
  // The header is checked first (and, with a password, names the key the vault must hold).
  const info = await inspectBackupFile(file);
  const key = wantsPassword(o) ? await recoverKeyForBackup(o, out, info.header.fingerprint) : await readExistingKey(o);
  const progress = await makeProgress('Verifying', info.size, out.json);
  let r;
  try {
    r = await verifyBackupFile({ input: file, key, onProgress: (n) => progress.add(n) });
  } finally {
    progress.stop();
  }
  const keyId = formatKeyId(r.header.fingerprint);
  out.info(`Verified ${file}: every chunk authenticated (${plural(r.chunks, 'chunk')}, ${plural(r.payloadBytes, 'byte')} of payload, key id ${keyId}); nothing was written.`);
  out.result('', { file, verified: true, version: r.header.version, kind: r.header.kind, chunkSize: r.header.chunkSize, keyId, size: r.size, chunks: r.chunks, payloadBytes: r.payloadBytes });
}

/** `bkv backup inspect|verify`: look at a backup file, and check it end to end without restoring. */
export const backupCheckCommands: CommandModule = (program: Command) => {
  const backup = commandGroup(program, 'backup', 'create, restore, inspect and verify encrypted backups');
  backup
    .command('inspect')
    .description("show a backup file's format version, payload kind, chunk size, key id and size (reads the header only; needs no key)")
    .argument('<backup>', 'backup file to read')
    .option('--json', 'print the result as JSON')
    .action(inspect);
  const verify_ = backup
    .command('verify')
    .description('authenticate every chunk of a backup file with its key, as restore does, without writing anything')
    .argument('<backup>', 'backup file to read')
    .option('--key-file <file>', 'read the recovery key from this file')
    .option('--recovery-key-stdin', 'read the recovery key from standard input')
    .option('--password', 'recover the key from the vault with a password (asked on a terminal, else read from stdin)')
    .option('--password-file <file>', 'like --password, reading the password from the first line of a file')
    .option('--json', 'print the result as JSON')
    .action(verify);
  addVaultOptions(verify_);
};
