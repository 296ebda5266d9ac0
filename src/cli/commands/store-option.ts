import { BkvError } from '../../shared/errors.js';

/** `--store <url>`: where a member keeps its records. */
export const STORE_HELP = 'record store: sqlite:<path> or postgres://user@host:port/db[?schema=name]';

/** Refuses a `--store` value no engine takes (the URL itself is never echoed: it may hold a password). */
export function checkStoreUrl(url: string): string {
  if (/^sqlite:.+/.test(url) || /^postgres(ql)?:\/\/.+/.test(url)) return url;
  throw new BkvError('USAGE', '--store must be sqlite:<path> or postgres://…');
}
