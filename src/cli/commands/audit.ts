import type { Command } from 'commander';
import type { CommandModule } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { makeOutput } from '../output.js';
import { BkvError } from '../../shared/errors.js';
import { auditNamespace, formatAudit } from '../../witness/audit.js';
import { compareCheckpoints, formatComparison } from '../../witness/fork.js';
import { parseVerifierKey } from '../../shared/fleet-formats/note.js';
import { parseWitnessPolicy, type WitnessPolicy } from '../../client/fleet/policy.js';
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

export async function readWitnessPolicy(path: string): Promise<WitnessPolicy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new BkvError('IO', `cannot read the witness policy ${path}: ${(e as Error).message}`);
  }
  return parseWitnessPolicy(text);
}

/** On stderr, in text and --json mode alike: an audit against an unpinned key proves little. */
function warnUnpinnedWitness(): void {
  process.stderr.write(
    'bkv: warning: the witness key is not pinned (--witness-key): this audit trusts whatever key the witness reports, ' +
      'so a witness impersonated or replaced with another key passes it\n',
  );
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
    .option('--policy <file>', 'witness policy: the checkpoint must carry k of n cosignatures (docs/formats/witness-policy.md)')
    .option('--json', 'print the result as JSON')
    .action(
      async (
        namespace: string,
        opts: { witness: string; limit: string; beforeEpoch?: string; witnessKey?: string; state?: string; policy?: string; json?: boolean },
      ) => {
        const out = makeOutput(!!opts.json);
        const limit = intOpt(opts.limit, '--limit', 1);
        if (!opts.witnessKey) warnUnpinnedWitness();
        const beforeEpoch = intOpt(opts.beforeEpoch, '--before-epoch', 1);
        const result = await auditNamespace(new WitnessClient(opts.witness), namespace, {
          ...(limit !== undefined ? { limit } : {}),
          ...(beforeEpoch !== undefined ? { beforeEpoch } : {}),
          ...(opts.witnessKey ? { witnessKey: opts.witnessKey } : {}),
          ...(opts.state ? { store: new FileCheckpointStore(opts.state) } : {}),
          ...(opts.policy ? { policy: await readWitnessPolicy(opts.policy) } : {}),
        });
        if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
        else out.result(formatAudit(result).join('\n'), {});
        if (!result.ok) ctx.setExitCode(EXIT.VERIFICATION);
      },
    );
  audit
    .command('checkpoints <checkpoint-1> <checkpoint-2>')
    .description('prove two checkpoints of one log consistent, or report the fork with both as evidence')
    .requiredOption('--log-key <vkey>', "the log's verifier key (name+keyid+base64)")
    .option('--witness <url>', 'the log (a bkv witness) to fetch the consistency proof from')
    .option('--policy <file>', 'witness policy: report which listed witnesses cosigned each checkpoint')
    .option('--json', 'print the result as JSON')
    .action(async (file1: string, file2: string, opts: { logKey: string; witness?: string; policy?: string; json?: boolean }) => {
      const out = makeOutput(!!opts.json);
      const read = async (f: string) => {
        try {
          return await readFile(f, 'utf8');
        } catch (e) {
          throw new BkvError('IO', `cannot read ${f}: ${(e as Error).message}`);
        }
      };
      const client = opts.witness ? new WitnessClient(opts.witness) : undefined;
      const r = await compareCheckpoints(await read(file1), await read(file2), {
        logKey: parseVerifierKey(opts.logKey),
        ...(opts.policy ? { policy: await readWitnessPolicy(opts.policy) } : {}),
        ...(client ? { consistencyProof: (a: number, b: number) => client.consistencyProof(a, b) } : {}),
      });
      if (opts.json) process.stdout.write(JSON.stringify(r) + '\n');
      else out.result(formatComparison(r).join('\n'), {});
      if (r.verdict !== 'consistent') ctx.setExitCode(EXIT.VERIFICATION);
    });
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
        if (opts.witness && !opts.witnessKey) warnUnpinnedWitness();
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
