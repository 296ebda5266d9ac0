import { createInterface } from 'node:readline';
import { BkvError } from '../shared/errors.js';
import { decodeRecoveryKey } from '../client/keys/recovery-key.js';
import { readKeyFile } from '../node/key-file.js';

export interface KeyInputOptions {
  keyFile?: string;
  recoveryKeyStdin?: boolean;
}

async function readAllStdin(): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    parts.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > 4096) throw new BkvError('BAD_RECOVERY_KEY', 'standard input does not hold a recovery key (too long)');
  }
  return Buffer.concat(parts).toString('utf8');
}

async function prompt(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
  }
}

/** Gets an existing key K from --key-file, --recovery-key-stdin, or a prompt on a terminal. */
export async function readExistingKey(o: KeyInputOptions): Promise<Uint8Array> {
  if (o.keyFile && o.recoveryKeyStdin) {
    throw new BkvError('USAGE', 'give either --key-file or --recovery-key-stdin, not both');
  }
  if (o.keyFile) return readKeyFile(o.keyFile);
  if (o.recoveryKeyStdin) return decodeRecoveryKey(await readAllStdin());
  if (process.stdin.isTTY && process.stderr.isTTY) {
    return decodeRecoveryKey(await prompt('Recovery key (64 characters, dashes optional): '));
  }
  throw new BkvError('USAGE', 'no key given: use --key-file F or --recovery-key-stdin (or run on a terminal to be asked)');
}
