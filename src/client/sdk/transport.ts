import { BkvError, type ErrorCode } from '../../shared/errors.js';

/** Carries one sealed request to the vault and returns the sealed reply. */
export type VaultTransport = (envelope: Uint8Array) => Promise<Uint8Array>;

export interface HttpTransportOptions {
  /** Base URL of the gateway, e.g. http://127.0.0.1:8080 */
  gatewayUrl: string;
  /** Returns the bearer token that authenticates the account at the gateway. */
  token: () => string | Promise<string>;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

const STATUS_CODES: Record<number, ErrorCode> = { 400: 'TAMPERED', 401: 'UNAUTHORIZED', 403: 'UNAUTHORIZED', 429: 'RATE_LIMITED', 503: 'UNAVAILABLE' };

/** The gateway's HTTP API (docs/api.md): POST /v1/vault with the envelope as the body. */
export function httpTransport(opts: HttpTransportOptions): VaultTransport {
  const doFetch = opts.fetch ?? fetch;
  return async (envelope) => {
    let res: Response;
    try {
      res = await doFetch(new URL('/v1/vault', opts.gatewayUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${await opts.token()}` },
        body: envelope as BodyInit,
        signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new BkvError('NETWORK', `cannot reach the vault gateway at ${opts.gatewayUrl}: ${(err as Error).message}`);
    }
    if (res.ok) return new Uint8Array(await res.arrayBuffer());
    let message = `gateway answered HTTP ${res.status}`;
    let code: ErrorCode = STATUS_CODES[res.status] ?? (res.status >= 500 ? 'UNAVAILABLE' : 'NETWORK');
    try {
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      if (body.error?.message) message = `gateway: ${body.error.message}`;
      if (body.error?.code === 'MALFORMED' || body.error?.code === 'TAMPERED') code = body.error.code;
    } catch {
      /* a body that is not JSON: keep the status-based message */
    }
    throw new BkvError(code, message, { status: res.status });
  };
}
