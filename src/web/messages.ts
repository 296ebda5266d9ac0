/** What the web app tells the user when something fails, and what the vault did for a password backup. */

/** The label of the backup form's option to escrow a new key (quoted in messages). */
export const REPLACE_LABEL = 'Replace the key escrowed for this account with a new one';

interface ErrorLike {
  code?: string;
  message?: string;
  details?: Record<string, unknown>;
}

const attemptsLeft = (n: unknown) => `${typeof n === 'number' ? n : 'few'} attempt${n === 1 ? '' : 's'} left`;

/** A message that says what happened and what to do next. */
export function explain(e: unknown): string {
  const { code, details = {} } = (e ?? {}) as ErrorLike;
  const msg = (e as Error)?.message ?? String(e);
  switch (code) {
    case 'WRONG_KEY':
      if (typeof details.vaultKeyId === 'string') {
        // The vault compared the backup's key id with the key it holds, before counting a guess.
        return (
          'This backup was made with another key than the one the vault now holds for this account: ' +
          'the key escrowed for the account was replaced by a new one after this backup was made, so the password no longer opens it. ' +
          `No attempt was spent. Open it with its recovery key if you kept one. (Key id of the backup ${String(details.keyId)}; of the vault's key ${details.vaultKeyId}.)`
        );
      }
      return 'This key does not open this backup. Check that you chose the right backup file, and the key or account you made it with.';
    case 'BAD_RECOVERY_KEY':
      return `${msg.charAt(0).toUpperCase()}${msg.slice(1)}. Check the recovery key as you wrote it down and type it again.`;
    case 'NOT_A_BACKUP':
      return 'This file is not a bkv backup. Choose the .bkv file you downloaded when you made the backup.';
    case 'UNSUPPORTED_VERSION':
      return `${msg}. Use a newer version of bkv to restore it.`;
    case 'TAMPERED':
    case 'TRUNCATED':
    case 'TRAILING_DATA':
      return `This backup file is damaged or was altered (${msg}). Nothing was restored. Use another copy of the backup.`;
    case 'BAD_ARCHIVE':
      return `This backup opened with your key, but the folder inside it cannot be restored safely (${msg}). Nothing was restored.`;
    case 'WRONG_PASSWORD':
      return `Wrong password: ${attemptsLeft(details.attemptsRemaining)} before the key is destroyed. Check the account name and the password, then try again.`;
    case 'LOCKED':
      return 'No attempts remain: the vault destroyed the escrowed key. The backup can only be opened with its recovery key, if one was written down.';
    case 'NOT_REGISTERED':
      return 'The vault holds no key for this account. Check the account name, or use the recovery key.';
    case 'NETWORK':
    case 'UNAVAILABLE':
      return `The vault could not be reached (${msg}). Check your connection and try again in a minute.`;
    case 'RATE_LIMITED':
      return `Too many requests: the vault is limiting them (${msg}). Nothing was changed; wait, then try again.`;
    case 'VERIFICATION_FAILED':
    case 'FLEET_KEY_MISMATCH':
      return `The vault's keys did not verify (${msg}). Do not continue; tell the service's operator.`;
    case 'IO':
      return `A file could not be read (${msg}). Choose it again and retry.`;
    default:
      return msg;
  }
}

/**
 * A failure to get the key for a new password backup: a wrong password or a destroyed key is the
 * account's existing key speaking, so say that nothing was registered and how to replace it.
 */
export function explainBackupKey(e: unknown, account: string): string {
  const { code, details = {} } = (e ?? {}) as ErrorLike;
  if (code === 'WRONG_PASSWORD') {
    return (
      `Wrong password: ${attemptsLeft(details.attemptsRemaining)} before the key is destroyed. Nothing was registered and no backup was made. ` +
      `A key is already escrowed for account ${account}, and new backups reuse it so that the earlier ones stay restorable: type the password you made them with. ` +
      `To escrow a new key instead, tick "${REPLACE_LABEL}" (backups made before then no longer open with a password).`
    );
  }
  if (code === 'LOCKED') {
    return (
      `No attempts remain: the vault destroyed the key escrowed for account ${account}. Nothing was registered and no backup was made. ` +
      `To make password backups for this account again, tick "${REPLACE_LABEL}".`
    );
  }
  return explain(e);
}

/** What the vault did with the key of a password backup that succeeded. */
export function escrowSummary(account: string, escrow: 'reused' | 'registered', replaced: boolean, attemptsRemaining: number | undefined, keyId: string): string {
  const guesses = attemptsRemaining === undefined ? '' : ` Restore it with the password; ${attemptsRemaining} wrong guesses are allowed.`;
  if (escrow === 'reused') {
    return `The key already escrowed in the vault for account ${account} was reused (key id ${keyId}): this backup and the earlier ones open with the same password.${guesses}`;
  }
  if (replaced) {
    return `A new key was escrowed in the vault for account ${account} (key id ${keyId}), replacing the earlier one: backups made before this one no longer open with a password.${guesses}`;
  }
  return `A new key was escrowed in the vault for account ${account} (key id ${keyId}).${guesses}`;
}
