import type { Command } from 'commander';
import type { CommandModule } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { makeOutput } from '../output.js';
import { BkvError } from '../../shared/errors.js';
import { auditNamespace, formatAudit } from '../../witness/audit.js';
import { WitnessClient } from '../../witness/client.js';
import { FileCheckpointStore } from '../../witness/file-store.js';
import { readFile } from 'node:fs/promises';
import { decodeBase64 } from '../../shared/fleet-formats/encoding.js';
import { auditDeployment, formatDeploymentAudit } from '../../ceremony/audit.js';
import { buildVaultCore } from '../../attestation/reproducible-build.js';

function intOpt(v: string | undefined, what: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[1-9][0-9]{0,14}$|^0$/.test(v) || Number(v) < min) throw new BkvError('USAGE', `${what} must be an integer ≥ ${min}`);
  return Number(v);
}

/** `bkv audit namespace <ns>`: check every logged epoch of a fleet namespace against the witness. */
export const auditCommands: CommandModule = (program: Command, ctx) => {
  const audit = program.command('audit').description('verify what the witness logged');
  audit
    .command('namespace <namespace>')
    .description('verify digests, witness signatures, fleet counter-signatures and the log, epoch by epoch')
    .requiredOption('--witness <url>', 'witness base URL')
    .option('--limit <n>', 'how many epochs to check, newest first', '50')
    .option('--before-epoch <e>', 'only epochs before this one')
    .option('--witness-key <vkey>', 'pinned witness verifier key (name+keyid+base64); default: the key the witness reports')
    .option('--state <file>', 'remember the newest checkpoint here and check consistency with it next time')
    .option('--json', 'print the result as JSON')
    .action(
      async (
        namespace: string,
        opts: { witness: string; limit: string; beforeEpoch?: string; witnessKey?: string; state?: string; json?: boolean },
      ) => {
        const out = makeOutput(!!opts.json);
        const limit = intOpt(opts.limit, '--limit', 1);
        const beforeEpoch = intOpt(opts.beforeEpoch, '--before-epoch', 1);
        const result = await auditNamespace(new WitnessClient(opts.witness), namespace, {
          ...(limit !== undefined ? { limit } : {}),
          ...(beforeEpoch !== undefined ? { beforeEpoch } : {}),
          ...(opts.witnessKey ? { witnessKey: opts.witnessKey } : {}),
          ...(opts.state ? { store: new FileCheckpointStore(opts.state) } : {}),
        });
        if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
        else out.result(formatAudit(result).join('\n'), {});
        if (!result.ok) ctx.setExitCode(EXIT.VERIFICATION);
      },
    );
  audit
    .command('deployment <evidence-file>')
    .description("verify a fleet's deployment evidence: attestations, measurement, key signatures, transcript, log, counter-signature")
    .option('--witness <url>', 'also check the log inclusion, consistency and counter-signature at this witness')
    .option('--rebuild', 'rebuild the vault core from this source tree and compare its measurement')
    .option('--vendor-root <base64...>', 'pinned vendor root public keys (default: the roots the evidence names)')
    .option('--witness-key <vkey>', 'pinned witness verifier key')
    .option('--state <file>', 'remember the newest checkpoint here and check consistency with it next time')
    .option('--json', 'print the result as JSON')
    .action(
      async (
        file: string,
        opts: { witness?: string; rebuild?: boolean; vendorRoot?: string[]; witnessKey?: string; state?: string; json?: boolean },
      ) => {
        const out = makeOutput(!!opts.json);
        let evidence: Uint8Array;
        try {
          evidence = new Uint8Array(await readFile(file));
        } catch (e) {
          throw new BkvError('IO', `cannot read ${file}: ${(e as Error).message}`);
        }
        const result = await auditDeployment(evidence, {
          ...(opts.witness ? { witness: new WitnessClient(opts.witness) } : {}),
          ...(opts.rebuild ? { rebuild: async () => (await buildVaultCore()).measurement } : {}),
          ...(opts.vendorRoot ? { vendorRoots: opts.vendorRoot.map((k) => decodeBase64(k, '--vendor-root', 32)) } : {}),
          ...(opts.witnessKey ? { witnessKey: opts.witnessKey } : {}),
          ...(opts.state ? { store: new FileCheckpointStore(opts.state) } : {}),
          now: Date.now(),
        });
        if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
        else out.result(formatDeploymentAudit(result).join('\n'), {});
        if (!result.ok) ctx.setExitCode(EXIT.VERIFICATION);
      },
    );
};
