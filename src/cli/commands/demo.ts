import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandModule } from '../context.js';
import { backupSteps } from '../demo/backup-steps.js';
import { ceremonySteps } from '../demo/ceremony-steps.js';
import { fleetFaultSteps, fleetStartSteps } from '../demo/fleet-steps.js';
import { groupSteps } from '../demo/group-steps.js';
import { restoreSteps, vaultSteps } from '../demo/vault-steps.js';
import { webSteps } from '../demo/web-steps.js';
import type { DemoContext, DemoStep } from '../demo/steps.js';
import { makeOutput } from '../output.js';

/** Demo steps in order. Add a feature's steps here (after the ones they depend on). */
export const demoSteps: DemoStep[] = [
  ...backupSteps, // client-side encryption with a recovery key
  ...ceremonySteps, // deploy a fleet with verifiable evidence, publish it, audit it
  ...fleetStartSteps, // run the deployed fleet
  ...vaultSteps, // over-the-air fleet keys, password escrow, a wrong password
  ...fleetFaultSteps, // recovery survives two members dying
  ...restoreSteps, // restore and compare
  ...groupSteps, // scale out over replication groups, split one
  ...webSteps, // the web app against this fleet and witness
];

/** `bkv demo`: a narrated tour of the system on sample data, in a temporary directory. */
export const demoCommand: CommandModule = (program: Command) => {
  program
    .command('demo')
    .description('run a narrated demo of the whole system on this machine, in a temporary directory')
    .option('--json', 'print a JSON summary of the steps')
    .action(async (opts: { json?: boolean }) => {
      const out = makeOutput(!!opts.json);
      const workDir = await mkdtemp(join(tmpdir(), 'bkv-demo-'));
      const ctx: DemoContext = { workDir, say: (line) => out.info(`   ${line}`), state: new Map() };
      const done: string[] = [];
      try {
        for (const [i, step] of demoSteps.entries()) {
          out.info(`${i + 1}. ${step.name}`);
          const t0 = performance.now();
          await step.run(ctx);
          out.info(`   ok (${(performance.now() - t0).toFixed(0)} ms)`);
          done.push(step.name);
        }
        const webUrl = ctx.state.get('webUrl') as string | undefined;
        if (webUrl && process.stdout.isTTY && process.stdin.isTTY && !opts.json) {
          out.info(`\nThe fleet, the witness and the web app keep running: open ${webUrl}`);
          out.info('Press Ctrl-C to stop them and remove the temporary files.');
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
        }
      } finally {
        // Stop servers and member processes the steps started (last started, first stopped).
        const cleanups = (ctx.state.get('cleanup') as (() => Promise<void>)[] | undefined) ?? [];
        for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
        await rm(workDir, { recursive: true, force: true });
      }
      out.result(`Demo complete: ${done.length} steps passed; temporary files removed.`, { steps: done });
    });
};
