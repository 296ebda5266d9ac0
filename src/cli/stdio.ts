import { BkvError } from '../shared/errors.js';
import { readableBytes } from '../node/byte-streams.js';
import type { StreamEnds } from '../node/backup-files.js';

/**
 * `-` as the input or `-o -` of `bkv backup create|restore`: standard input or output instead of
 * a file. What may not be combined with it is refused here, before anything is read or written:
 * standard input that carries data cannot also carry a key or password (nor be a terminal to ask
 * on, for a backup), and standard output that carries data cannot also carry --json or a printed
 * recovery key.
 */
export const STDIO = '-';

export interface Stdio {
  stdin: boolean;
  stdout: boolean;
}

interface StdioOptions {
  json?: boolean;
  keyFile?: string;
  recoveryKey?: boolean;
  recoveryKeyStdin?: boolean;
  password?: boolean;
  passwordFile?: string;
}

export function stdioFor(input: string, output: string): Stdio {
  return { stdin: input === STDIO, stdout: output === STDIO };
}

/** The name of an input or output in messages. */
export function describeEnd(path: string, which: 'input' | 'output'): string {
  return path === STDIO ? (which === 'input' ? 'standard input' : 'standard output') : path;
}

/** Refuses, with USAGE and what to do instead, options that need the standard stream in use. */
export function checkStdio(command: 'create' | 'restore', s: Stdio, o: StdioOptions): void {
  const usage = (message: string) => new BkvError('USAGE', message);
  const data = command === 'create' ? 'the data to back up' : 'the backup';
  if (s.stdin) {
    const carries = `standard input carries ${data} (input -)`;
    if (o.recoveryKeyStdin) throw usage(`${carries}, so it cannot also carry the recovery key: use --key-file F`);
    if (o.password && !o.passwordFile) throw usage(`${carries}, so the password cannot be asked or read there: use --password-file F`);
    if (command === 'restore' && !o.keyFile && !o.passwordFile) throw usage(`${carries}: give the key with --key-file F, or the vault password with --password-file F`);
    if (command === 'restore' && process.stdin.isTTY) throw usage('standard input is a terminal: pipe or redirect the backup into it (bkv backup restore - < FILE)');
  }
  if (s.stdout) {
    const carries = `standard output carries ${command === 'create' ? 'the backup' : 'the restored data'} (-o -)`;
    if (o.json) throw usage(`${carries}, so --json cannot print there: leave it out (messages go to standard error)`);
    if (o.recoveryKey) throw usage(`${carries}, so --recovery-key cannot print the new key there: use --key-file F (a new key is saved in F)`);
    if (command === 'create' && process.stdout.isTTY) throw usage('refusing to write a backup to a terminal: redirect or pipe standard output (-o -)');
  }
}

/** The streams a backup reads or writes instead of files. */
export function stdioStreams(s: Stdio): StreamEnds {
  return {
    ...(s.stdin ? { inputStream: readableBytes(process.stdin, 'standard input') } : {}),
    ...(s.stdout ? { outputStream: process.stdout } : {}),
  };
}
