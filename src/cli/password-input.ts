import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { BkvError } from '../shared/errors.js';

export interface PasswordOptions {
  password?: boolean;
  passwordFile?: string;
}

/** Reads a line from a terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  process.stderr.write(question);
  const muted = new Writable({ write: (_c, _e, cb) => cb() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

async function firstLineOfStdin(): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    parts.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) break;
  }
  return Buffer.concat(parts).toString('utf8').split(/\r?\n/)[0] ?? '';
}

function check(password: string): string {
  if (password.length === 0) throw new BkvError('USAGE', 'the password is empty');
  if (password.length > 1024) throw new BkvError('USAGE', 'the password is longer than 1024 characters');
  return password;
}

/**
 * The password for vault escrow: `--password-file F` (first line), or `--password`, which asks on
 * a terminal (twice when `confirm`) and otherwise reads the first line of standard input.
 */
export async function readPassword(o: PasswordOptions, confirm: boolean): Promise<string> {
  if (o.passwordFile) {
    let text: string;
    try {
      text = await readFile(o.passwordFile, 'utf8');
    } catch (e) {
      throw new BkvError('IO', `cannot read password file ${o.passwordFile}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    return check(text.split(/\r?\n/)[0] ?? '');
  }
  if (!process.stdin.isTTY) return check(await firstLineOfStdin());
  const first = check(await promptHidden('Vault password: '));
  if (confirm && (await promptHidden('Repeat the password: ')) !== first) {
    throw new BkvError('USAGE', 'the two passwords differ');
  }
  return first;
}

export const wantsPassword = (o: PasswordOptions): boolean => !!(o.password || o.passwordFile);
