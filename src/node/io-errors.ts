import { BkvError } from '../shared/errors.js';

/** Turns a Node file-system error into a one-line BkvError('IO', ...) naming what failed. */
export function ioError(err: unknown, action: string, path: string): BkvError {
  if (err instanceof BkvError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const reason =
    code === 'ENOENT' ? 'no such file or directory'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
    : code === 'EISDIR' ? 'is a directory'
    : code === 'ENOTDIR' ? 'not a directory'
    : code === 'EEXIST' ? 'already exists'
    : code === 'ENOSPC' ? 'no space left on device'
    : code === 'EFBIG' ? 'file too large'
    : code === 'EROFS' ? 'read-only file system'
    : String((err as Error)?.message ?? err);
  return new BkvError('IO', `cannot ${action} ${path}: ${reason}`, { path, errno: code });
}
