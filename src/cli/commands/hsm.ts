import type { Command } from 'commander';
import type { CommandModule } from '../context.js';
import { makeOutput } from '../output.js';
import { provisionDevice, vendorInit, writeSoftHsmFile } from '../../attestation/software-hsm.js';

/** `bkv hsm …`: the software attestation backend (a local vendor root and its devices). */
export const hsmCommands: CommandModule = (program: Command) => {
  const hsm = program.command('hsm').description('software HSM backend: vendor root and device attestation keys');
  hsm
    .command('vendor-init')
    .description('create a local vendor root (Ed25519) that certifies device attestation keys')
    .requiredOption('--dir <dir>', 'vendor directory (vendor.json public, vendor-root.key private)')
    .option('--name <name>', 'vendor name', 'bkv-software-vendor')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { dir: string; name: string; json?: boolean }) => {
      const out = makeOutput(!!opts.json);
      const v = await vendorInit(opts.dir, opts.name);
      out.info(`vendor root created in ${opts.dir}; allow it at a witness with --allow-vendor ${v.publicKey}`);
      out.result(v.publicKey, { vendor: v.name, publicKey: v.publicKey, dir: opts.dir });
    });
  hsm
    .command('provision')
    .description('issue a device attestation key and its certificate signed by the vendor root')
    .requiredOption('--vendor <dir>', 'vendor directory (bkv hsm vendor-init)')
    .requiredOption('--out <file>', 'device file to write (mode 0600)')
    .option('--device <serial>', 'device serial (default: random)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { vendor: string; out: string; device?: string; json?: boolean }) => {
      const out = makeOutput(!!opts.json);
      const f = await provisionDevice(opts.vendor, opts.device ? { device: opts.device } : {});
      await writeSoftHsmFile(opts.out, f);
      out.result(`device ${f.device} provisioned: ${opts.out}`, { device: f.device, file: opts.out, certificate: f.certificate });
    });
};
