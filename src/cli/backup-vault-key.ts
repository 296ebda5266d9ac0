/**
 * The backup key K of password backups: which K a new backup uses (the one already escrowed for
 * the account, unless `--replace-escrowed-key`), and recovering K for a backup by its key id, so a
 * backup made with a key the vault no longer holds is recognised before any guess is spent.
 */
import { BkvError, isBkvError } from '../shared/errors.js';
import { formatKeyId, keyFingerprint } from '../client/keys/backup-key.js';
import type { Output } from './output.js';
import { readPassword, type PasswordOptions } from './password-input.js';
import type { VaultOptions } from './vault-flags.js';

export interface EscrowOptions extends PasswordOptions, VaultOptions {
  replaceEscrowedKey?: boolean;
}

/** What the vault did for a new password backup (printed, and in `--json` as `escrow`). */
export interface EscrowInfo {
  account: string;
  /** `reused`: the key already escrowed; `registered`: a new key escrowed (none was, or replaced). */
  key: 'reused' | 'registered';
  keyId: string;
  replaced: boolean;
  attemptsRemaining: number;
}

/**
 * The key for a new password backup. By default the key escrowed for the account, recovered with
 * the password given (a wrong password fails with the attempts left and registers nothing), or a
 * new one escrowed when the account has none. `--replace-escrowed-key` escrows a new key over it.
 */
export async function keyForPasswordBackup(o: EscrowOptions, out: Output): Promise<{ key: Uint8Array; escrow: EscrowInfo }> {
  const password = await readPassword(o, true);
  const { vaultClientFromOptions, ksfFromOptions } = await import('./vault-options.js');
  const client = await vaultClientFromOptions(o, ksfFromOptions(o));
  const account = client.account;
  const replace = !!o.replaceEscrowedKey;
  out.info(replace
    ? `Escrowing a new backup key in the vault as ${account}, replacing any key escrowed before (OPAQUE; Argon2id runs here)...`
    : `Asking the vault for the backup key escrowed for ${account}, or escrowing a new one (OPAQUE; Argon2id runs here)...`);
  try {
    const r = await client.keyForNewBackup(password, { replace });
    const keyId = formatKeyId(keyFingerprint(r.key));
    return { key: r.key, escrow: { account, key: r.escrow, keyId, replaced: replace, attemptsRemaining: r.attemptsRemaining } };
  } catch (e) {
    const hint = `a key is already escrowed for ${account} and new backups reuse it, so that earlier backups stay restorable; add --replace-escrowed-key to escrow a new key instead (backups made with the old one then restore only with their recovery key, if any)`;
    if (isBkvError(e, 'WRONG_PASSWORD')) {
      throw new BkvError('WRONG_PASSWORD', `${e.message}. Nothing was registered: ${hint}`, { ...e.details });
    }
    if (isBkvError(e, 'LOCKED')) {
      throw new BkvError('LOCKED', `${e.message}. Nothing was registered; to escrow a new key for ${account}, add --replace-escrowed-key`, { ...e.details });
    }
    throw e;
  }
}

/** Prints what `keyForPasswordBackup` did. */
export function reportEscrow(e: EscrowInfo, out: Output): void {
  if (e.key === 'reused') {
    out.info(`Reused the backup key escrowed in the vault for ${e.account} (key id ${e.keyId}): this backup and the earlier ones restore with the same password.`);
  } else if (e.replaced) {
    out.info(`Escrowed a new backup key in the vault for ${e.account} (key id ${e.keyId}), replacing the earlier key: backups made with it can no longer be restored with --password.`);
  } else {
    out.info(`Escrowed a new backup key in the vault for ${e.account} (key id ${e.keyId}).`);
  }
  out.info(`Restore with --password; ${e.attemptsRemaining} wrong guesses allowed.`);
}

/**
 * Recovers from the vault the key of a backup whose header names `keyId`. When the vault holds
 * another key for the account, fails with WRONG_KEY naming both key ids, and no guess is spent.
 */
export async function recoverKeyForBackup(o: PasswordOptions & VaultOptions, out: Output, keyId: Uint8Array): Promise<Uint8Array> {
  const password = await readPassword(o, false);
  const { vaultClientFromOptions } = await import('./vault-options.js');
  const client = await vaultClientFromOptions(o);
  out.info(`Recovering the backup key (key id ${formatKeyId(keyId)}) from the vault as ${client.account}...`);
  return client.recoverKey(password, { keyId });
}
