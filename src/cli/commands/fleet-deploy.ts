import type { Command } from 'commander';
import { commandGroup, type CommandModule } from '../context.js';
import { makeOutput } from '../output.js';
import { BkvError } from '../../shared/errors.js';
import { encodeEvidence } from '../../shared/evidence/evidence.js';
import { runCeremony } from '../../ceremony/ceremony.js';
import { publishDeployment } from '../../ceremony/publish.js';
import { codeMeasurement, freshCodeMeasurement } from '../../host/measurement.js';
import { readOperatorKeyFile } from '../../witness/keys.js';

/** `bkv fleet deploy`: the deployment ceremony, and optionally its publication at a witness. */
export const fleetDeployCommands: CommandModule = (program: Command) => {
  commandGroup(program, 'fleet', 'vault fleets: deployment and operation')
    .command('deploy')
    .description('deploy a new fleet: attested member identities, fleet keys made inside the members, evidence')
    .requiredOption('--dir <dir>', 'new fleet directory (docs/formats/fleet-layout.md)')
    .option('--members <n>', 'number of members (odd, 1-9)', '3')
    .option('--sites <list>', 'comma-separated sites, assigned to members in turn', 'site-a,site-b,site-c')
    .option('--namespace <ns>', 'fleet namespace at the witness', 'bkv.fleet')
    .option('--fleet-id <id>', 'fleet id (default: random)')
    .option('--vendor <dir>', 'vendor directory (bkv hsm vendor-init); default: a new vendor in <dir>/vendor')
    .option('--validity-days <n>', 'how long the fleet keys are valid', '365')
    .option('--witness <url>', 'publish the artifact with its evidence at this witness')
    .option('--operator-key <file>', 'operator key file for --witness (bkv witness keygen)')
    .option('--witness-key <vkey>', 'witness verifier key the fleet trusts (default: the key the witness reports)')
    .option('--json', 'print the result as JSON')
    .action(
      async (opts: {
        dir: string; members: string; sites: string; namespace: string; fleetId?: string; vendor?: string;
        validityDays: string; witness?: string; operatorKey?: string; witnessKey?: string; json?: boolean;
      }) => {
        const out = makeOutput(!!opts.json);
        if (!/^[3579]$/.test(opts.members)) throw new BkvError('USAGE', '--members must be 3, 5, 7 or 9 (odd, for a majority)');
        if (!/^[1-9][0-9]{0,4}$/.test(opts.validityDays)) throw new BkvError('USAGE', '--validity-days must be a positive integer');
        if (opts.witness && !opts.operatorKey) throw new BkvError('USAGE', '--witness needs --operator-key');
        const operator = opts.operatorKey ? await readOperatorKeyFile(opts.operatorKey) : undefined;
        // Rebuild when the toolchain is here, so the attested build is the one made from this source.
        const measurement = await freshCodeMeasurement().catch(() => codeMeasurement());
        out.info(`vault core measurement ${measurement}`);
        const r = await runCeremony({
          dir: opts.dir,
          members: Number(opts.members),
          sites: opts.sites.split(',').map((s) => s.trim()).filter(Boolean),
          namespace: opts.namespace,
          ...(opts.fleetId ? { fleetId: opts.fleetId } : {}),
          ...(opts.vendor ? { vendorDir: opts.vendor } : {}),
          validityDays: Number(opts.validityDays),
          measurement,
        });
        if (r.vendor.created) out.info(`a new vendor root was created in ${r.vendor.dir} (${r.vendor.publicKey})`);
        const lines = [
          `fleet ${r.fleetId} deployed in ${r.dir}: ${opts.members} members, each attested by its device`,
          `artifact:  ${r.artifactPath}`,
          `evidence:  ${r.evidencePath}`,
        ];
        let record;
        if (opts.witness && operator) {
          record = await publishDeployment({
            witnessUrl: opts.witness,
            namespace: opts.namespace,
            artifact: r.artifact,
            evidence: encodeEvidence(r.evidence),
            operator,
            counterSign: r.counterSign,
            ...(opts.witnessKey ? { witnessKey: opts.witnessKey } : {}),
          });
          lines.push(`published: ${opts.namespace} epoch ${record.epoch} (digest ${record.digest}), counter-signed by the fleet`);
        }
        out.result(lines.join('\n'), {
          fleetId: r.fleetId,
          dir: r.dir,
          measurement,
          artifact: r.artifactPath,
          evidence: r.evidencePath,
          vendor: r.vendor,
          ...(record ? { record } : {}),
        });
      },
    );
};
