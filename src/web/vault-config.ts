/** The web app's configuration (served by `bkv web` as /config.json) and the vault plumbing it implies. */
import { MemoryCheckpointStore } from '../client/fleet/store.js';
import { gatewayBundleFetcher, overTheAirFleet } from '../client/sdk/fleet-source.js';
import { httpError } from '../client/sdk/http-error.js';
import { httpTransport, type VaultTransport } from '../client/sdk/transport.js';
import type { TrustedFleetKeys } from '../client/sdk/vault-client.js';
import { fromB64, type KsfParams } from '../shared/protocol/messages.js';

export interface WebConfig {
  /** Over the air: the witness key the app pins and the fleet's namespace. */
  witnessKey?: string;
  namespace?: string;
  /** Or pinned fleet keys (docs/formats/fleet-keys.md). */
  fleetKeys?: { opaqueServerPublicKey: string; encryptionPublicKey: string };
  /** Path (same origin) or URL of the witness, for the audit explorer. */
  witness?: string;
  /** Argon2id parameters for new password registrations (default: the SDK's). */
  ksf?: KsfParams;
}

export function fleetFromConfig(c: WebConfig, origin: string): TrustedFleetKeys | (() => Promise<TrustedFleetKeys>) {
  if (c.witnessKey && c.namespace) {
    return overTheAirFleet(
      { mode: 'over-the-air', namespace: c.namespace, witnesses: [c.witnessKey], store: new MemoryCheckpointStore() },
      gatewayBundleFetcher(origin),
    );
  }
  if (c.fleetKeys) {
    return {
      opaqueServerPublicKey: fromB64(c.fleetKeys.opaqueServerPublicKey, 'pinned OPAQUE key'),
      encryptionPublicKey: fromB64(c.fleetKeys.encryptionPublicKey, 'pinned encryption key'),
    };
  }
  throw new Error('this app is configured with neither a witness key nor fleet keys');
}

/** Development tokens from the gateway (POST /v1/dev/token), as `bkv vault start` offers them. */
export function transportFor(_c: WebConfig, origin: string, account: string): VaultTransport {
  let token: { value: string; at: number } | null = null;
  return httpTransport({
    gatewayUrl: origin,
    token: async () => {
      if (token && Date.now() - token.at < 30 * 60_000) return token.value;
      const res = await fetch(new URL('/v1/dev/token', origin), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ account }),
      });
      if (!res.ok) throw await httpError(res, origin);
      token = { value: ((await res.json()) as { token: string }).token, at: Date.now() };
      return token.value;
    },
  });
}
