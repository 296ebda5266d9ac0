import { readFile, stat } from 'node:fs/promises';
import { BkvError } from '../shared/errors.js';
import { decodeRecoveryKey, encodeRecoveryKey } from '../client/keys/recovery-key.js';
import { writeFileAtomic } from './atomic-output.js';
import { ioError } from './io-errors.js';

/** Key files hold the recovery key text (16 groups of 4 symbols) and a newline; mode 0600. */
export async function writeKeyFile(path: string, key: Uint8Array, force: boolean): Promise<void> {
  const text = new TextEncoder().encode(encodeRecoveryKey(key) + '\n');
  async function* once() {
    yield text;
  }
  await writeFileAtomic(path, once(), force);
}

/** Reads a key file (recovery key text); BAD_RECOVERY_KEY if it holds no valid key. */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw ioError(err, 'read key file', path);
  }
  if (!st.isFile() || st.size > 4096) {
    throw new BkvError('BAD_RECOVERY_KEY', `key file ${path} does not hold a recovery key`, { path });
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw ioError(err, 'read key file', path);
  }
  try {
    return decodeRecoveryKey(text);
  } catch (err) {
    if (err instanceof BkvError) throw new BkvError(err.code, `key file ${path}: ${err.message}`, { ...err.details, path });
    throw err;
  }
}

/** True when `path` exists (a key file to reuse rather than create). */
export async function keyFileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
