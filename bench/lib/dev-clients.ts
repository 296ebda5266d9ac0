/** SDK clients of a development fleet's gateway for the benchmarks: development tokens fetched once per account, light Argon2id, native channel crypto. */
import { httpTransport } from '../../src/client/sdk/transport.js';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { readFleetKeys } from '../../src/cli/vault-options.js';
import { nativeChannelPrimitives } from '../../src/host/fleet/native-crypto.js';
import { LIGHT_KSF } from './load.js';

export async function devClients(url: string, fleetKeysPath: string): Promise<{ tokenFor: (account: string) => Promise<string>; client: (account: string) => VaultClient }> {
  const keys = await readFleetKeys(fleetKeysPath);
  const tokens = new Map<string, string>();
  const tokenFor = async (account: string) => {
    let t = tokens.get(account);
    if (!t) {
      const res = await fetch(`${url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
      t = ((await res.json()) as { token: string }).token;
      tokens.set(account, t);
    }
    return t;
  };
  const client = (account: string) => new VaultClient({ account, fleet: keys, ksf: LIGHT_KSF, channelPrimitives: nativeChannelPrimitives, transport: httpTransport({ gatewayUrl: url, token: () => tokenFor(account) }) });
  return { tokenFor, client };
}
