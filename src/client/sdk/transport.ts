import { BkvError } from '../../shared/errors.js';
import { httpError } from './http-error.js';

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

/** The gateway's HTTP API (docs/api.md): POST /v1/vault with the envelope as the body. */
export function httpTransport(opts: HttpTransportOptions): VaultTransport {
  const doFetch = opts.fetch ?? fetch;
  return async (envelope) => {
    // Outside the try: a token source's own typed error (e.g. rate limited) is not a network error.
    const token = await opts.token();
    let res: Response;
    try {
      res = await doFetch(new URL('/v1/vault', opts.gatewayUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${token}` },
        body: envelope as BodyInit,
        signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new BkvError('NETWORK', `cannot reach the vault gateway at ${opts.gatewayUrl}: ${(err as Error).message}`);
    }
    if (res.ok) return new Uint8Array(await res.arrayBuffer());
    throw await httpError(res, opts.gatewayUrl);
  };
}
