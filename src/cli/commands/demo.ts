import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandModule } from '../context.js';
import { backupSteps } from '../demo/backup-steps.js';
import type { DemoContext, DemoStep } from '../demo/steps.js';
import { makeOutput } from '../output.js';

/** Demo steps in order. Add a feature's steps here (after the ones they depend on). */
export const demoSteps: DemoStep[] = [...backupSteps];

/** `bkv demo`: a narrated tour of the system on sample data, in a temporary directory. */
export const demoCommand: CommandModule = (program: Command) => {
  program
    .command('demo')
    .description('run a narrated demo: back up a sample chat history, restore it, verify it')
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
      } finally {
        await rm(workDir, { recursive: true, force: true });
      }
      out.result(`Demo complete: ${done.length} steps passed; temporary files removed.`, { steps: done });
    });
};
