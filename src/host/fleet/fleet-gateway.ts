/**
 * The gateway of a fleet: the same front end as the single-member vault (src/host/gateway), with a
 * relay that spreads requests over the member processes and fails over between them.
 */
import type { FastifyInstance } from 'fastify';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
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
    extraMetrics: (registry) => registerRelayMetrics(registry, relay, groups.total),
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

/** The relay's counters on the gateway's /metrics (docs/fleet.md, "Metrics"). */
function registerRelayMetrics(registry: Registry, relay: FleetRelay, groups: number): void {
  new Gauge({
    name: 'bkv_gateway_relay',
    help: 'The fleet relay since the gateway started: relayed, attempts, failovers, exhausted, notLeader, hinted, streamed, wrongGroup, moving, cachedRoutes, and cached_accounts (the account-to-group cache)',
    labelNames: ['field'] as const,
    registers: [registry],
    collect() {
      for (const [field, v] of Object.entries(relay.stats)) this.set({ field }, v);
      this.set({ field: 'cached_accounts' }, relay.cachedAccounts());
    },
  });
  new Gauge({
    name: 'bkv_gateway_group',
    help: 'Per replication group: requests it served through this gateway (served), and the member the gateway believes leads it (leader; 0: none)',
    labelNames: ['field', 'group'] as const,
    registers: [registry],
    collect() {
      for (let g = 0; g < groups; g++) {
        this.set({ field: 'served', group: String(g) }, relay.servedByGroup[g] ?? 0);
        this.set({ field: 'leader', group: String(g) }, relay.leader(g) ?? 0);
      }
    },
  });
}
