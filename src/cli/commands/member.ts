import type { Command } from 'commander';
import pino from 'pino';
import { BkvError } from '../../shared/errors.js';
import { startMember } from '../../host/fleet/member-process.js';
import { STORE_ENV } from '../../host/fleet/supervisor.js';
import { checkStoreUrl } from './store-option.js';
import type { CommandModule } from '../context.js';

/** `bkv member start`: one vault member process of a fleet (normally started by `bkv up`). */
export const memberCommands: CommandModule = (program: Command) => {
  const member = program.command('member').description('run one member of a vault fleet');
  member
    .command('start')
    .description('start a fleet member: consensus on its raft port, the member API on its API port (runs until interrupted)')
    .requiredOption('--dir <dir>', 'the member directory (D/member-<id>)')
    .requiredOption('--fleet <file>', 'the fleet configuration (D/fleet.json)')
    .option('--log-level <level>', 'log level (info, warn, error)', 'info')
    .option('--snapshot-every <n>', 'compact the log after this many applied entries', '4096')
    .option('--store <url>', `record store: sqlite:<path> or postgres://… (default: $${STORE_ENV}, else records.sqlite in --dir)`)
    .action(async (o: { dir: string; fleet: string; logLevel: string; snapshotEvery: string; store?: string }) => {
      const logger = pino({ level: o.logLevel });
      const snapshotThreshold = Number(o.snapshotEvery);
      if (!Number.isInteger(snapshotThreshold) || snapshotThreshold < 1) throw new BkvError('USAGE', 'invalid --snapshot-every');
      const store = o.store ?? process.env[STORE_ENV];
      if (store !== undefined) checkStoreUrl(store);
      const m = await startMember({ dir: o.dir, fleetPath: o.fleet, logger, raftConfig: { snapshotThreshold }, ...(store ? { store } : {}) });
      let why = 'signal';
      await new Promise<void>((resolve) => {
        // A second signal (a process group and a supervisor both signalling) must not cut the close short.
        process.on('SIGINT', () => resolve());
        process.on('SIGTERM', () => resolve());
        // Started by a supervisor (`bkv up`): it is gone when the IPC channel closes, whether it
        // stopped, crashed or was killed; stop with it rather than run on unsupervised.
        if (process.channel) {
          process.channel.unref();
          const gone = () => ((why = 'supervisor gone'), resolve());
          process.once('disconnect', gone);
          if (!process.connected) gone();
        }
      });
      logger.info({ member: m.id, why }, 'stopping');
      await m.close();
    });
};
