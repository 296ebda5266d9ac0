import { BkvError, type ErrorCode } from '../../shared/errors.js';

/**
 * Turns a gateway's refusal (any non-2xx answer, docs/api.md "Errors") into a typed error that says
 * what happened: the server's own message when it sent the JSON error shape, and for a 429 that the
 * client was rate limited and when to try again (`Retry-After`). Browser-safe.
 */
const STATUS_CODES: Record<number, ErrorCode> = { 400: 'TAMPERED', 401: 'UNAUTHORIZED', 403: 'UNAUTHORIZED', 429: 'RATE_LIMITED', 503: 'UNAVAILABLE' };

/** `Retry-After` as whole seconds from now (RFC 9110 §10.2.3: seconds, or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^[0-9]{1,9}$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

export async function httpError(res: Response, gatewayUrl: string): Promise<BkvError> {
  let code: ErrorCode = STATUS_CODES[res.status] ?? (res.status >= 500 ? 'UNAVAILABLE' : 'NETWORK');
  let serverMessage: string | undefined;
  try {
    const body = (await res.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.message === 'string') serverMessage = body.error.message.slice(0, 300);
    if (body.error?.code === 'MALFORMED' || body.error?.code === 'TAMPERED') code = body.error.code;
  } catch {
    /* a body that is not JSON: keep the status-based message */
  }
  if (res.status === 429) {
    const wait = parseRetryAfter(res.headers.get('retry-after'));
    const when = wait === undefined ? 'try again later' : `try again in ${wait} s`;
    return new BkvError('RATE_LIMITED', `rate limited by the vault gateway at ${gatewayUrl}: ${serverMessage ?? 'too many requests'}; ${when}`, {
      status: 429,
      ...(wait !== undefined ? { retryAfterSeconds: wait } : {}),
    });
  }
  return new BkvError(code, serverMessage ? `gateway: ${serverMessage}` : `gateway answered HTTP ${res.status}`, { status: res.status });
}
