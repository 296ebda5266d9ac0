import { BkvError } from '../../shared/errors.js';
import { resolveFleetKeys, type FetchBundle, type OverTheAirFleetConfig } from '../fleet/resolve.js';
import type { TrustedFleetKeys } from './vault-client.js';

/** Fetches the validation bundle the gateway serves at `GET /v1/fleet?knownTreeSize=N`. */
export function gatewayBundleFetcher(gatewayUrl: string, doFetch: typeof fetch = fetch): FetchBundle {
  return async ({ namespace, knownTreeSize }) => {
    let res: Response;
    try {
      res = await doFetch(new URL(`/v1/fleet?knownTreeSize=${knownTreeSize}`, gatewayUrl), { signal: AbortSignal.timeout(15_000) });
    } catch (e) {
      throw new BkvError('NETWORK', `cannot reach the vault gateway at ${gatewayUrl}: ${(e as Error).message}`);
    }
    if (!res.ok) throw new BkvError('UNAVAILABLE', `gateway answered HTTP ${res.status} for the fleet bundle`);
    const body = (await res.json()) as { mode?: string; namespace?: string; bundle?: unknown };
    if (body.mode !== 'over-the-air' || !body.bundle) {
      throw new BkvError('VERIFICATION_FAILED', 'the gateway serves no validation bundle (pinned-only fleet)', { check: 'format' });
    }
    if (body.namespace !== namespace) {
      throw new BkvError('VERIFICATION_FAILED', `the gateway serves namespace "${body.namespace}", not "${namespace}"`, { check: 'format' });
    }
    return body.bundle as never;
  };
}

/**
 * Fleet keys learnt over the air: only the witness keys are pinned. The bundle is verified once
 * per client (digest, witness signature, fleet counter-signature, inclusion, consistency with the
 * newest checkpoint seen before) and the result reused.
 */
export function overTheAirFleet(config: OverTheAirFleetConfig, fetchBundle: FetchBundle): () => Promise<TrustedFleetKeys> {
  let resolved: Promise<TrustedFleetKeys> | null = null;
  return () => {
    resolved ??= resolveFleetKeys(config, fetchBundle).catch((e: unknown) => {
      resolved = null;
      throw e;
    });
    return resolved;
  };
}
