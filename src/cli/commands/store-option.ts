import { BkvError } from '../../shared/errors.js';

/** Refuses a `--store` value no engine takes (the URL itself is never echoed: it may hold a password). */
export function checkStoreUrl(url: string): string {
  if (/^sqlite:.+/.test(url) || /^postgres(ql)?:\/\/.+/.test(url)) return url;
  throw new BkvError('USAGE', '--store must be sqlite:<path> or postgres://…');
}
