import { BkvError } from '../../shared/errors.js';
import { formatKeyId } from '../keys/backup-key.js';

/** The password was wrong; `attemptsRemaining` more tries are allowed before the key is destroyed. */
export class WrongPasswordError extends BkvError {
  readonly attemptsRemaining: number;
  constructor(attemptsRemaining: number) {
    super(
      'WRONG_PASSWORD',
      `wrong password: ${attemptsRemaining} attempt${attemptsRemaining === 1 ? '' : 's'} remaining before the key is destroyed`,
      { attemptsRemaining },
    );
    this.name = 'WrongPasswordError';
    this.attemptsRemaining = attemptsRemaining;
  }
}

/** No attempts remain: the escrowed key was destroyed for good (or is locked until attempts expire). */
export class LockedError extends BkvError {
  constructor() {
    super('LOCKED', 'no attempts remain: the escrowed key has been destroyed and cannot be recovered');
    this.name = 'LockedError';
  }
}

export class NotRegisteredError extends BkvError {
  constructor() {
    super('NOT_REGISTERED', 'no key is escrowed in the vault for this account');
    this.name = 'NotRegisteredError';
  }
}

/** The server key met in OPAQUE is not the validated fleet key: someone else is answering. */
export class FleetKeyMismatchError extends BkvError {
  constructor(what: string) {
    super('FLEET_KEY_MISMATCH', `${what} does not match the validated fleet key: refusing to continue`);
    this.name = 'FleetKeyMismatchError';
  }
}

/**
 * The vault holds another key than the one asked for (a backup's key id, from its header): the
 * escrowed key was replaced after that backup was made. Thrown before any guess is spent (the
 * vault compares key ids before it counts an attempt), or after a successful recovery of a record
 * registered without a key id, which spends no guess either. Code WRONG_KEY.
 */
export class KeyMismatchError extends BkvError {
  /** The key id asked for (the backup's). */
  readonly keyId: Uint8Array;
  /** The key id of the key the vault holds for this account. */
  readonly vaultKeyId: Uint8Array;
  constructor(keyId: Uint8Array, vaultKeyId: Uint8Array) {
    super(
      'WRONG_KEY',
      `this backup was made with another key (key id ${formatKeyId(keyId)}) than the one the vault now holds for this account (key id ${formatKeyId(vaultKeyId)}): the escrowed key was replaced after this backup was made; no attempt was spent`,
      { keyId: formatKeyId(keyId), vaultKeyId: formatKeyId(vaultKeyId), attemptSpent: false },
    );
    this.name = 'KeyMismatchError';
    this.keyId = keyId;
    this.vaultKeyId = vaultKeyId;
  }
}
