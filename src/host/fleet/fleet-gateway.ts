/**
 * The gateway of a fleet: the same front end as the single-member vault (src/host/gateway), with a
 * relay that spreads requests over the member processes and fails over between them.
 */
import type { FastifyInstance } from 'fastify';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { DevTokenIssuer, type AccountVerifier } from '../gateway/auth.js';
import { buildGateway } from '../gateway/server.js';
import { buildValidationBundle } from '../../witness/bundle.js';
import { WitnessClient } from '../../witness/client.js';
import { fleetGroups, memberApiUrl, readFleetConfig, type FleetConfig } from './config.js';
import { createFleetRelay, type FleetRelay, type FleetRelayOptions } from './gateway-relay.js';

export interface FleetGatewayOptions {
  fleetPath: string;
  /** Default: fleet-keys.json beside fleet.json. */
  fleetKeysPath?: string;
  host?: string;
  /** Default: the gateway port in fleet.json; 0 picks a free one. */
  port?: number;
  verifier?: AccountVerifier;
  logger?: Logger | false;
  rateLimit?: { perAddressPerMinute?: number; perAccountPerMinute?: number };
  relay?: FleetRelayOptions;
  /** Serve validation bundles for this fleet's keys from a witness (over-the-air clients). */
  overTheAir?: { witnessUrl: string; namespace: string };
}

export interface RunningFleetGateway {
  url: string;
  config: FleetConfig;
  fleetKeysPath: string;
  relay: FleetRelay;
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function startFleetGateway(opts: FleetGatewayOptions): Promise<RunningFleetGateway> {
  const config = await readFleetConfig(opts.fleetPath);
  const fleetKeysPath = opts.fleetKeysPath ?? join(dirname(opts.fleetPath), 'fleet-keys.json');
  const fleetKeys = JSON.parse(await readFile(fleetKeysPath, 'utf8')) as Record<string, string>;
  const groups = fleetGroups(config);
  const relay = createFleetRelay(config.members.map((m) => ({ id: m.id, url: memberApiUrl(m) })), { groups: groups.total, ...opts.relay });
  const devIssuer = opts.verifier ? undefined : await DevTokenIssuer.create();
  const ota = opts.overTheAir;
  const app = await buildGateway({
    relay: relay.relay,
    verifier: opts.verifier ?? (await devIssuer!.verifier()),
    ...(devIssuer ? { devIssuer } : {}),
    fleetInfo: async ({ knownTreeSize }) =>
      ota
        ? {
            mode: 'over-the-air',
            fleetId: config.fleetId,
            namespace: ota.namespace,
            keys: fleetKeys,
            bundle: await buildValidationBundle(new WitnessClient(ota.witnessUrl), ota.namespace, { knownTreeSize }),
          }
        : { mode: 'pinned', fleetId: config.fleetId, keys: fleetKeys },
    health: () => {
      const members = relay.members().map((h) => ({
        id: h.id,
        healthy: h.healthy,
        role: h.status?.role ?? null,
        term: h.status?.term ?? null,
        commitIndex: h.status?.commitIndex ?? null,
        ...(h.error ? { error: h.error } : {}),
      }));
      const up = members.filter((m) => m.healthy).length;
      return { fleetId: config.fleetId, quorum: config.quorum, membersUp: up, serving: up >= config.quorum, members, relay: { ...relay.stats, leader: relay.leader(), ...(groups.multi ? { groupLeaders: Array.from({ length: groups.total }, (_, g) => relay.leader(g)) } : {}) } };
    },
    logger: opts.logger ?? false,
    ...(opts.rateLimit ? { rateLimit: opts.rateLimit } : {}),
  });
  let url: string;
  try {
    url = await app.listen({ host: opts.host ?? config.gateway.host, port: opts.port ?? config.gateway.port });
  } catch (e) {
    relay.close();
    throw e;
  }
  return {
    url,
    config,
    fleetKeysPath,
    relay,
    app,
    async close() {
      relay.close();
      await app.close();
    },
  };
}
