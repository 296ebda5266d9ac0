import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFleetArtifact } from '../../shared/fleet-formats/artifact.js';
import { BkvError } from '../../shared/errors.js';
import { fleetGroups, readFleetConfig } from '../../host/fleet/config.js';
import { startFleetGateway } from '../../host/fleet/fleet-gateway.js';
import { createFleet, fleetPaths, groupDir } from '../../host/fleet/provision.js';
import { lockHolder } from '../../node/dir-lock.js';
import { FleetSupervisor, memberStoreUrl } from '../../host/fleet/supervisor.js';
import { prepareFleetMigration, waitForFleetImport } from '../../host/migration/fleet.js';
import { displayStoreUrl } from '../../host/record-store/index.js';
import { checkStoreUrl } from './store-option.js';
import type { CommandModule } from '../context.js';
import { makeOutput } from '../output.js';

interface UpOpts {
  dir: string;
  members: string;
  groups: string;
  spareGroups?: string;
  basePort: string;
  sites?: string;
  rateAccount: string;
  rateAddress: string;
  witness?: string;
  store?: string;
  snapshotEvery?: string;
  json?: boolean;
}

/** `bkv up`: a whole fleet on this machine: member processes, supervision and the gateway. */
export const upCommand: CommandModule = (program: Command) => {
  program
    .command('up')
    .description('run a vault fleet on this machine: create it in --dir if empty, start the members and the gateway (runs until interrupted)')
    .requiredOption('--dir <dir>', 'fleet directory (created if missing or empty, else reused)')
    .option('--members <n>', 'number of members for a new fleet (odd, 3 to 9)', '5')
    .option('--groups <n>', 'replication groups of a new fleet, splitting the record-id space evenly, leaders on different members (docs/groups.md)', '1')
    .option('--spare-groups <n>', 'empty replication groups of a new fleet, targets of `bkv fleet split` (default: 1 with --groups above 1, else 0)')
    .option('--base-port <port>', 'port plan of a new fleet: gateway base+10, raft base+100+i, API base+200+i (0: free ports)', '7400')
    .option('--sites <list>', 'comma-separated site names for a new fleet, assigned round-robin')
    .option('--rate-account <n>', 'vault requests per account per minute', '120')
    .option('--rate-address <n>', 'HTTP requests per client address per minute', '600')
    .option('--witness <url>', 'serve validation bundles from this witness (a fleet deployed by `bkv fleet deploy`)')
    .option('--store <url>', 'record stores: sqlite:<dir> (member-<id>.sqlite there; default: records.sqlite in each member directory) or postgres://… (one schema per member: <schema>_<id>, default bkv_member_<id>)')
    .option('--snapshot-every <n>', "members compact their log after this many applied entries (default: the member's)")
    .option('--json', 'print the address and key file as JSON')
    .action(async (o: UpOpts) => {
      if (o.store !== undefined) checkStoreUrl(o.store);
      const out = makeOutput(!!o.json);
      const paths = fleetPaths(o.dir);
      let created = false;
      if (existsSync(paths.fleet)) await refuseRunningFleet(o.dir, paths.fleet);
      if (!existsSync(paths.fleet)) {
        if (existsSync(o.dir) && (await readdir(o.dir)).length > 0) throw new BkvError('USAGE', `${o.dir} is neither empty nor a fleet directory`);
        const members = Number(o.members);
        const basePort = Number(o.basePort);
        const groups = Number(o.groups);
        const spareGroups = o.spareGroups !== undefined ? Number(o.spareGroups) : groups > 1 ? 1 : 0;
        if (!Number.isInteger(groups) || groups < 1 || !Number.isInteger(spareGroups) || spareGroups < 0 || groups + spareGroups > 64) {
          throw new BkvError('USAGE', '--groups is 1 to 64 and --spare-groups 0 or more, at most 64 groups in all');
        }
        await createFleet(o.dir, {
          members,
          basePort,
          groups,
          spareGroups,
          ...(o.sites ? { sites: o.sites.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
        });
        created = true;
      }
      // A fleet directory of release 0.1: its old states move aside and its records wait in each
      // member directory for the elected leader to import them (docs/vault.md).
      const say = (line: string) => process.stderr.write(`${line}\n`);
      const pending = created ? null : await prepareFleetMigration(o.dir, say);
      const config = await readFleetConfig(paths.fleet);
      // Over the air: the namespace is the one the ceremony's artifact was logged under.
      let overTheAir: { witnessUrl: string; namespace: string } | undefined;
      if (o.witness) {
        const artifactPath = join(o.dir, 'fleet-artifact.json');
        if (!existsSync(artifactPath)) {
          throw new BkvError('USAGE', '--witness needs a fleet deployed by `bkv fleet deploy` (no fleet-artifact.json in --dir)');
        }
        const namespace = parseFleetArtifact(new Uint8Array(await readFile(artifactPath))).namespace;
        overTheAir = { witnessUrl: o.witness, namespace };
      }
      const groups = fleetGroups(config);
      const groupLine = groups.multi ? `, ${groups.genesis} replication groups${groups.total > groups.genesis ? ` and ${groups.total - groups.genesis} spare` : ''}` : '';
      out.info(`${created ? 'created' : 'reusing'} fleet ${config.fleetId} in ${o.dir}: ${config.members.length} members, quorum ${config.quorum}${groupLine}`);
      out.info(`record stores: ${o.store ? `${displayStoreUrl(memberStoreUrl(o.store, 1))} for member 1, and so on (one per member)` : 'records.sqlite in each member directory'}`);
      const supervisor = new FleetSupervisor(o.dir, config, { restart: true, onEvent: (line) => out.info(line), ...(o.store ? { store: o.store } : {}),
        ...(o.snapshotEvery ? { memberArgs: ['--snapshot-every', o.snapshotEvery] } : {}),
      });
      supervisor.startAll();
      let gateway;
      try {
        const leaders = await supervisor.waitForLeaders(30_000);
        out.info(`members up (logs in ${o.dir}/logs); ${groups.multi ? `leaders: ${leaders.map((l, g) => `group ${g} member ${l}`).join(', ')}` : `leader: member ${leaders[0]}`}`);
        if (pending !== null) {
          await waitForFleetImport(config, pending, say);
          say(`release 0.1 migration complete: ${pending} records`);
        }
        gateway = await startFleetGateway({
          fleetPath: paths.fleet,
          rateLimit: { perAccountPerMinute: Number(o.rateAccount), perAddressPerMinute: Number(o.rateAddress) },
          ...(overTheAir ? { overTheAir } : {}),
        });
      } catch (e) {
        await supervisor.stop();
        throw e;
      }
      out.info(`gateway listening on ${gateway.url}`);
      out.info(`pinned fleet keys: ${gateway.fleetKeysPath}`);
      if (overTheAir) out.info(`serving validation bundles for namespace ${overTheAir.namespace} from ${overTheAir.witnessUrl}`);
      out.info(`status: bkv fleet status --fleet ${paths.fleet}`);
      out.info('development tokens enabled: POST /v1/dev/token (never use in production)');
      out.result('', { url: gateway.url, fleetKeys: gateway.fleetKeysPath, fleet: paths.fleet, fleetId: config.fleetId, groups: groups.total });
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      out.info('stopping the gateway and the members');
      await gateway.close();
      await supervisor.stop();
    });
};

/**
 * A fleet directory whose members are running (an earlier `bkv up` still up, or members started
 * by hand): stop before anything is started, migrated or rewritten. Each member would refuse its
 * state directory anyway (src/node/dir-lock.ts); this says so once, at once, instead of a
 * supervisor restarting members that cannot start.
 */
async function refuseRunningFleet(dir: string, fleetPath: string): Promise<void> {
  // A configuration this release cannot read yet is the migration's business; the members' own
  // locks still hold.
  const config = await readFleetConfig(fleetPath).catch(() => null);
  if (config === null) return;
  const groups = fleetGroups(config);
  const paths = fleetPaths(dir);
  for (const m of config.members) {
    for (let g = 0; g < groups.total; g++) {
      const pid = lockHolder(join(paths.member(m.id), groupDir(groups.multi, g), 'state'));
      if (pid !== null) {
        throw new BkvError('CONFLICT', `the fleet in ${dir} is running: member ${m.id} is process ${pid}; stop it (or the bkv up that started it) first`, { member: m.id, pid });
      }
    }
  }
}
