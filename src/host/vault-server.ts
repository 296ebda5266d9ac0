import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { toB64 } from '../shared/protocol/messages.js';
import { DEFAULT_POLICY, type VaultPolicy } from '../trusted/core/vault-core.js';
import { buildValidationBundle } from '../witness/bundle.js';
import { WitnessClient } from '../witness/client.js';
import type { EpochRecord } from '../witness/protocol.js';
import { publishFleet, type PublicationOptions } from './fleet-publication.js';
import { DevTokenIssuer, type AccountVerifier } from './gateway/auth.js';
import { buildGateway } from './gateway/server.js';
import { openVaultMember, type VaultMember } from './vault-member.js';
import { writeFileDurable } from '../node/fs-durable.js';
import type { FastifyInstance } from 'fastify';

export interface VaultServerOptions {
  dir: string;
  host?: string;
  port?: number;
  policy?: VaultPolicy;
  /** Account verification; by default a development issuer (tokens from POST /v1/dev/token). */
  verifier?: AccountVerifier;
  logger?: Logger | false;
  rateLimit?: { perAddressPerMinute?: number; perAccountPerMinute?: number };
  /** Publish the fleet keys at a witness and serve validation bundles (over-the-air mode). */
  publication?: PublicationOptions & { witnessKey: string };
  /** Record store URL (default `records.sqlite` in the directory) and log compaction interval: see `openVaultMember`. */
  store?: string;
  snapshotEvery?: number;
}

export interface RunningVault {
  url: string;
  /** The witness epoch record of this fleet's keys, when published. */
  published?: EpochRecord;
  member: VaultMember;
  gateway: FastifyInstance;
  fleetKeysPath: string;
  /** Where the records live (no credentials). */
  storeUrl: string;
  close(): Promise<void>;
}

/** The fleet's public keys as clients pin them (docs/formats/fleet-keys.md). */
export function fleetKeysJson(member: VaultMember): Record<string, string> {
  const k = member.core.publicKeys();
  return {
    format: 'bkv-fleet-keys/v1',
    opaqueServerPublicKey: toB64(k.opaqueServerPublicKey),
    encryptionPublicKey: toB64(k.encryptionPublicKey),
    signingPublicKey: toB64(k.signingPublicKey),
  };
}

/** Starts a one-member vault and its gateway on loopback (`bkv vault start`). */
export async function startVaultServer(opts: VaultServerOptions): Promise<RunningVault> {
  const pub = opts.publication;
  const policy = { ...(opts.policy ?? DEFAULT_POLICY), ...(pub ? { trustedWitnesses: [pub.witnessKey] } : {}) };
  const member = await openVaultMember(opts.dir, { policy, ...(opts.store ? { store: opts.store } : {}), ...(opts.snapshotEvery ? { snapshotEvery: opts.snapshotEvery } : {}) });
  let published: EpochRecord | undefined;
  try {
    if (pub) published = await publishFleet(opts.dir, member.core, pub);
  } catch (e) {
    await member.close();
    throw e;
  }
  const witness = pub ? new WitnessClient(pub.witnessUrl) : null;
  const fleetKeys = fleetKeysJson(member);
  const fleetKeysPath = join(opts.dir, 'fleet-keys.json');
  await writeFileDurable(fleetKeysPath, new TextEncoder().encode(JSON.stringify(fleetKeys, null, 2) + '\n'), 0o644);
  const devIssuer = opts.verifier ? undefined : await DevTokenIssuer.create();
  const logger = opts.logger === undefined ? pino({ level: 'info', redact: ['req.headers.authorization'] }) : opts.logger;
  const gateway = await buildGateway({
    relay: (account, envelope) => member.core.handle(account, envelope),
    verifier: opts.verifier ?? (await devIssuer!.verifier()),
    devIssuer,
    fleetInfo: async ({ knownTreeSize }) =>
      witness && pub
        ? {
            mode: 'over-the-air',
            namespace: pub.namespace,
            keys: fleetKeys,
            bundle: await buildValidationBundle(witness, pub.namespace, { knownTreeSize }),
          }
        : { mode: 'pinned', keys: fleetKeys },
    health: () => member.health(),
    coreStats: () => ({ ...member.core.stats }),
    logger,
    rateLimit: opts.rateLimit,
  });
  const url = await gateway.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
  return {
    url,
    ...(published ? { published } : {}),
    member,
    gateway,
    fleetKeysPath,
    storeUrl: member.storeUrl,
    async close() {
      await gateway.close();
      await member.close();
    },
  };
}
