import { readFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { gatewayBundleFetcher, overTheAirFleet } from '../client/sdk/fleet-source.js';
import { FileCheckpointStore } from '../witness/file-store.js';
import { BkvError } from '../shared/errors.js';
import { parseWitnessPolicy } from '../client/fleet/policy.js';
import { httpTransport } from '../client/sdk/transport.js';
import { httpError } from '../client/sdk/http-error.js';
import { DEFAULT_CLIENT_KSF, VaultClient, type TrustedFleetKeys } from '../client/sdk/vault-client.js';
import { fromB64 } from '../shared/protocol/messages.js';
import type { KsfParams } from '../shared/protocol/messages.js';
import { DEFAULT_VAULT_URL, type VaultOptions } from './vault-flags.js';

export { addVaultOptions, DEFAULT_VAULT_URL, type VaultOptions } from './vault-flags.js';


/** Reads pinned fleet keys (docs/formats/fleet-keys.md). */
export async function readFleetKeys(path: string): Promise<TrustedFleetKeys> {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new BkvError('IO', `cannot read fleet keys from ${path}: ${(e as Error).message}`);
  }
  if (doc.format !== 'bkv-fleet-keys/v1' || typeof doc.opaqueServerPublicKey !== 'string' || typeof doc.encryptionPublicKey !== 'string') {
    throw new BkvError('MALFORMED', `${path} is not a bkv-fleet-keys/v1 file`);
  }
  const keys = {
    opaqueServerPublicKey: fromB64(doc.opaqueServerPublicKey, 'opaqueServerPublicKey'),
    encryptionPublicKey: fromB64(doc.encryptionPublicKey, 'encryptionPublicKey'),
  };
  if (keys.opaqueServerPublicKey.length !== 32 || keys.encryptionPublicKey.length !== 32) {
    throw new BkvError('MALFORMED', `${path} holds keys of the wrong length`);
  }
  return keys;
}

async function devToken(url: string, account: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(new URL('/v1/dev/token', url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ account }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    throw new BkvError('NETWORK', `cannot reach the vault gateway at ${url}: ${(e as Error).message}`);
  }
  // Only a gateway without the development issuer has no such route (404); anything else is said as it is.
  if (res.status === 404) throw new BkvError('UNAUTHORIZED', `no --token given and the gateway at ${url} issues no development tokens`);
  if (!res.ok) throw await httpError(res, url);
  const body = (await res.json().catch(() => null)) as { token?: unknown } | null;
  if (typeof body?.token !== 'string') throw new BkvError('MALFORMED', `the gateway at ${url} answered the token request without a token`);
  return body.token;
}

/** Pinned keys (`--fleet-keys`), or keys validated over the air (`--witness-key` and `--namespace`). */
async function fleetFromOptions(o: VaultOptions, url: string): Promise<TrustedFleetKeys | (() => Promise<TrustedFleetKeys>)> {
  const witnessKey = o.witnessKey ?? process.env.BKV_WITNESS_KEY;
  if (witnessKey) {
    const namespace = o.namespace ?? process.env.BKV_NAMESPACE;
    if (!namespace) throw new BkvError('USAGE', 'over the air, also give --namespace (the fleet namespace at the witness)');
    const storePath = o.checkpointStore ?? process.env.BKV_CHECKPOINTS ?? join(homedir(), '.config', 'bkv', 'checkpoints.json');
    const store = new FileCheckpointStore(storePath);
    const policyPath = o.witnessPolicy ?? process.env.BKV_WITNESS_POLICY;
    let witnessPolicy: string | undefined;
    if (policyPath) {
      try {
        witnessPolicy = await readFile(policyPath, 'utf8');
      } catch (e) {
        throw new BkvError('IO', `cannot read the witness policy ${policyPath}: ${(e as Error).message}`);
      }
      parseWitnessPolicy(witnessPolicy); // a bad policy is refused before any network call
    }
    return overTheAirFleet(
      { mode: 'over-the-air', namespace, witnesses: [witnessKey], store, ...(witnessPolicy !== undefined ? { witnessPolicy } : {}) },
      gatewayBundleFetcher(url),
    );
  }
  const keysPath = o.fleetKeys ?? process.env.BKV_FLEET_KEYS;
  if (!keysPath) {
    throw new BkvError('USAGE', 'say which fleet to trust: --fleet-keys FILE (pinned), or --witness-key KEY --namespace NS (over the air)');
  }
  return readFleetKeys(keysPath);
}

/** Builds a vault client from command-line options and the environment. */
export async function vaultClientFromOptions(o: VaultOptions, ksf?: KsfParams): Promise<VaultClient> {
  const url = o.vault ?? process.env.BKV_VAULT_URL ?? DEFAULT_VAULT_URL;
  const fleet = await fleetFromOptions(o, url);
  const account = o.account ?? process.env.BKV_ACCOUNT ?? userInfo().username;
  let token = o.token ?? process.env.BKV_TOKEN;
  return new VaultClient({
    account,
    fleet,
    transport: httpTransport({ gatewayUrl: url, token: async () => (token ??= await devToken(url, account)) }),
    ...(ksf ? { ksf } : {}),
  });
}

/**
 * Optional Argon2id override, from `--ksf-memory KiB` or env BKV_KSF_MEMORY (fast demos, tests). It
 * sets the memory only: passes and lanes stay the SDK's defaults (3 and 4), as docs/vault.md says.
 */
export function ksfFromOptions(o: VaultOptions): KsfParams | undefined {
  const text = o.ksfMemory ?? process.env.BKV_KSF_MEMORY;
  if (!text) return undefined;
  const memory = Number(text);
  if (!Number.isInteger(memory) || memory < 64 || memory > 4 * 1024 * 1024) {
    throw new BkvError('USAGE', 'Argon2id memory must be a whole number of KiB from 64 to 4194304');
  }
  return { ...DEFAULT_CLIENT_KSF, memory };
}
