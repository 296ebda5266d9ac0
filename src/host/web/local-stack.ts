/**
 * A witness and a one-member vault on loopback, the vault's fleet keys published at the witness
 * and counter-signed: what `bkv web` runs when it is given no gateway, and what the browser tests
 * run against.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { encodeBase64 } from '../../shared/fleet-formats/encoding.js';
import { WitnessClient } from '../../witness/client.js';
import { operatorKeyFromSeed } from '../../witness/keys.js';
import { startWitness } from '../../witness/server.js';
import { startVaultServer } from '../vault-server.js';
import { DEFAULT_POLICY, type VaultPolicy } from '../../trusted/core/vault-core.js';

export interface LocalStack {
  gatewayUrl: string;
  witnessUrl: string;
  witnessKey: string;
  namespace: string;
  close(): Promise<void>;
}

/**
 * `passkeyOrigins`: the web app origins (http://localhost:PORT) whose passkey assertions the
 * vault accepts, relying party id `localhost`.
 */
export async function startLocalStack(dir: string, opts: { namespace?: string; policy?: VaultPolicy; passkeyOrigins?: string[] } = {}): Promise<LocalStack> {
  const namespace = opts.namespace ?? 'web.local';
  const operator = operatorKeyFromSeed(new Uint8Array(randomBytes(32)));
  await mkdir(join(dir, 'witness'), { recursive: true });
  const witness = await startWitness(join(dir, 'witness'), { addOperatorKeys: [encodeBase64(operator.publicKey)] });
  try {
    const witnessKey = (await new WitnessClient(witness.url).keyInfo()).verifierKey;
    const vault = await startVaultServer({
      dir: join(dir, 'vault'),
      port: 0,
      logger: false,
      policy: {
        ...(opts.policy ?? DEFAULT_POLICY),
        ...(opts.passkeyOrigins ? { passkeys: { rpId: new URL(opts.passkeyOrigins[0]!).hostname, origins: opts.passkeyOrigins } } : {}),
      },
      publication: { witnessUrl: witness.url, namespace, operator, witnessKey },
    });
    return {
      gatewayUrl: vault.url,
      witnessUrl: witness.url,
      witnessKey,
      namespace,
      async close() {
        await vault.close();
        await witness.close();
      },
    };
  } catch (e) {
    await witness.close();
    throw e;
  }
}
