/**
 * Typed errors shared by every part of the system. Browser-safe: no Node imports.
 *
 * Every failure the user can cause or meet (a wrong key, a tampered file, an unreachable vault)
 * is a `BkvError` with a stable `code`, a one-line message, and optional details for machines.
 */
export type ErrorCode =
  | 'USAGE' // the caller asked for something malformed
  | 'WRONG_KEY' // a backup key or recovery key that does not open this backup
  | 'BAD_RECOVERY_KEY' // a recovery key with a typo or the wrong length
  | 'NOT_A_BACKUP' // input is not a bkv backup at all
  | 'UNSUPPORTED_VERSION' // a bkv backup of a version this code does not read
  | 'TRUNCATED' // input ends before its final authenticated piece
  | 'TAMPERED' // authentication failed: altered, reordered, duplicated or spliced data
  | 'TRAILING_DATA' // bytes after the authenticated end
  | 'MALFORMED' // a message or file that does not parse
  | 'BAD_ARCHIVE' // an authenticated backup whose directory archive is invalid or unsafe to extract
  | 'WRONG_PASSWORD' // vault: the password was wrong; attempts may remain
  | 'LOCKED' // vault: no attempts remain, the record is destroyed
  | 'NOT_REGISTERED' // vault: no key is escrowed for this account
  | 'FLEET_KEY_MISMATCH' // vault: the server key met in the protocol is not the validated fleet key
  | 'VERIFICATION_FAILED' // a signature, digest, proof or attestation check failed
  | 'CONFLICT' // a request conflicts with recorded state (stale epoch, reused digest, ...)
  | 'RATE_LIMITED'
  | 'UNAUTHORIZED'
  | 'UNAVAILABLE' // a service could not be reached or has no quorum
  | 'WRONG_GROUP' // vault: the request reached a replication group that does not serve its record (details.owner: the group to ask)
  | 'NETWORK'
  | 'IO' // a local file could not be read or written
  | 'INTERNAL';

export class BkvError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'BkvError';
    this.code = code;
    this.details = details;
  }
}

/**
 * True when `e` is a BkvError, optionally of one of the given codes. Also recognises a BkvError
 * thrown by a separately loaded copy of this module (a member runs the measured single-file build
 * of the vault core, whose classes are not this module's).
 */
export function isBkvError(e: unknown, ...codes: ErrorCode[]): e is BkvError {
  const like =
    e instanceof BkvError ||
    (e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && typeof (e as { details?: unknown }).details === 'object');
  return like && (codes.length === 0 || codes.includes((e as BkvError).code));
}
