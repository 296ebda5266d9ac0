import { BkvError } from '../../shared/errors.js';

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
