/**
 * Fleet provisioning for the software backend: writes the layout of docs/formats/fleet-layout.md.
 * This is the one place that produces a fleet directory; the deployment ceremony produces the same
 * layout (and files) from keys generated inside the members.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { BkvError } from '../../shared/errors.js';
import { systemEnv, type CoreEnv } from '../../trusted/core/env.js';
import { encodeFleetSecrets, generateFleetSecrets, opaqueServerPublicKey, signingPublicKey, type FleetSecrets } from '../../trusted/core/fleet-secrets.js';
import { DEFAULT_POLICY } from '../../trusted/core/vault-core.js';
import { deriveChannelKeyPair } from '../../shared/protocol/channel.js';
import { toB64 } from '../../shared/protocol/messages.js';
import { writeFileDurable } from '../../node/fs-durable.js';
import { FLEET_CONFIG_FORMAT, encodeMemberIdentity, fleetGroups, memberPublicKeys, type FleetConfig, type MemberIdentity } from './config.js';

export interface CreateFleetOptions {
  /** Number of members: odd, 3 to 9 (default 5). */
  members?: number;
  /** Site names, assigned to members round-robin (default site-a, site-b, site-c). */
  sites?: string[];
  /**
   * Port plan: gateway basePort+10, member i raft basePort+100+i, API basePort+200+i (default 7400).
   * 0 picks free loopback ports instead (tests, demos).
   */
  basePort?: number;
  host?: string;
  policy?: { defaultLimit: number; maxLimit: number };
  /** Replication groups splitting the record-id space at genesis (default 1), and empty spare groups for splits (default 0). */
  groups?: number;
  spareGroups?: number;
  env?: CoreEnv;
}

export interface CreatedFleet {
  dir: string;
  config: FleetConfig;
  fleetPath: string;
  fleetKeysPath: string;
  memberDirs: Map<number, string>;
}

export const fleetPaths = (dir: string) => ({
  fleet: join(dir, 'fleet.json'),
  fleetKeys: join(dir, 'fleet-keys.json'),
  member: (id: number) => join(dir, `member-${id}`),
});

/**
 * Where a member keeps one group's consensus state and default record store, relative to its
 * directory: the member directory itself in a fleet of one group (the layout of a fleet without
 * groups), `group-<g>` in a fleet of several.
 */
export const groupDir = (multi: boolean, g: number): string => (multi ? `group-${g}` : '.');

/** Free TCP ports on the loopback interface (bound and released; a race is possible but unlikely). */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<import('node:net').Server>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, host, () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** The fleet's public keys as clients pin them (docs/formats/fleet-keys.md). */
export async function fleetKeysFromSecrets(s: FleetSecrets): Promise<Record<string, string>> {
  return {
    format: 'bkv-fleet-keys/v1',
    opaqueServerPublicKey: toB64(opaqueServerPublicKey(s)),
    encryptionPublicKey: toB64((await deriveChannelKeyPair(s.channelSeed)).publicKey),
    signingPublicKey: toB64(signingPublicKey(s)),
  };
}

/** True when `dir` already holds a fleet (fleet.json present). */
export const isFleetDir = (dir: string): boolean => existsSync(fleetPaths(dir).fleet);

/** Creates a fleet in `dir` (which must be missing or empty). */
export async function createFleet(dir: string, opts: CreateFleetOptions = {}): Promise<CreatedFleet> {
  const n = opts.members ?? 5;
  if (!Number.isInteger(n) || n % 2 === 0 || n < 3 || n > 9) throw new BkvError('USAGE', 'a fleet has an odd number of members, 3 to 9');
  const sites = opts.sites && opts.sites.length > 0 ? opts.sites : ['site-a', 'site-b', 'site-c'];
  const env = opts.env ?? systemEnv;
  const host = opts.host ?? '127.0.0.1';
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if ((await readdir(dir)).length > 0) throw new BkvError('USAGE', `${dir} is not empty; a fleet is created in an empty directory`);

  let gatewayPort: number;
  let raftPort: (id: number) => number;
  let apiPort: (id: number) => number;
  const base = opts.basePort ?? 7400;
  if (base === 0) {
    const ports = await freePorts(1 + 2 * n, host);
    gatewayPort = ports[0]!;
    raftPort = (id) => ports[id]!;
    apiPort = (id) => ports[n + id]!;
  } else {
    if (!Number.isInteger(base) || base < 1024 || base + 200 + n > 65535) throw new BkvError('USAGE', `invalid base port ${base}`);
    gatewayPort = base + 10;
    raftPort = (id) => base + 100 + id;
    apiPort = (id) => base + 200 + id;
  }

  const secrets = await generateFleetSecrets(env);
  const identities: MemberIdentity[] = Array.from({ length: n }, (_, i) => ({ id: i + 1, identitySeed: env.random(32), signingSeed: env.random(32) }));
  const clusterId = env.random(16);
  const config: FleetConfig = {
    format: FLEET_CONFIG_FORMAT,
    fleetId: `fleet-${Buffer.from(env.random(3)).toString('hex')}`,
    clusterId: toB64(clusterId),
    quorum: Math.floor(n / 2) + 1,
    members: identities.map((m) => {
      const pk = memberPublicKeys(m);
      return {
        id: m.id,
        site: sites[(m.id - 1) % sites.length]!,
        host,
        raftPort: raftPort(m.id),
        apiPort: apiPort(m.id),
        identityKey: toB64(pk.identityKey),
        signingKey: toB64(pk.signingKey),
      };
    }),
    gateway: { host, port: gatewayPort },
    policy: opts.policy ?? { defaultLimit: DEFAULT_POLICY.defaultLimit, maxLimit: DEFAULT_POLICY.maxLimit },
    ...((opts.groups ?? 1) > 1 || (opts.spareGroups ?? 0) > 0 ? { groups: opts.groups ?? 1, spareGroups: opts.spareGroups ?? 0 } : {}),
  };
  const groups = fleetGroups(config);
  if (groups.total > 64 || groups.genesis < 1 || !Number.isInteger(groups.genesis) || !Number.isInteger(groups.total)) {
    throw new BkvError('USAGE', 'a fleet runs 1 to 64 replication groups (groups + spare groups)');
  }

  const paths = fleetPaths(dir);
  const memberDirs = new Map<number, string>();
  const encodedSecrets = encodeFleetSecrets(secrets);
  for (const m of identities) {
    const md = paths.member(m.id);
    await mkdir(md, { recursive: true, mode: 0o700 });
    for (let g = 0; g < groups.total; g++) await mkdir(join(md, groupDir(groups.multi, g), 'state'), { recursive: true, mode: 0o700 });
    await writeFileDurable(join(md, 'member.bin'), encodeMemberIdentity(m));
    await writeFileDurable(join(md, 'fleet-secrets.bin'), encodedSecrets);
    memberDirs.set(m.id, md);
  }
  const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n');
  await writeFileDurable(paths.fleetKeys, json(await fleetKeysFromSecrets(secrets)), 0o644);
  // fleet.json last: its presence marks a complete fleet directory.
  await writeFileDurable(paths.fleet, json(config), 0o644);
  return { dir, config, fleetPath: paths.fleet, fleetKeysPath: paths.fleetKeys, memberDirs };
}
