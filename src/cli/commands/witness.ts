import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { CommandModule } from '../context.js';
import { makeOutput } from '../output.js';
import { BkvError } from '../../shared/errors.js';
import { counterSignatureMessage } from '../../shared/fleet-formats/countersign.js';
import { decodeBase64, encodeBase64, encodeHex } from '../../shared/fleet-formats/encoding.js';
import { WitnessClient, publishEpoch } from '../../witness/client.js';
import { readOperatorKeyFile, writeOperatorKeyFile } from '../../witness/keys.js';
import { startWitness } from '../../witness/server.js';
import { formatWitnessPolicy } from '../../client/fleet/policy.js';

function intOpt(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^(0|[1-9][0-9]{0,14})$/.test(v)) throw new BkvError('USAGE', `${what} must be a non-negative integer`);
  return Number(v);
}

async function readFileOr(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    throw new BkvError('IO', `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** `--cosigner <url> <key> --cosigner <url> <key>` arrives as one list: pair it up. */
function pairCosigners(list: string[] | undefined): { url: string; verifierKey: string }[] {
  if (!list) return [];
  if (list.length % 2 !== 0) throw new BkvError('USAGE', '--cosigner takes two values: <url> <verifier key>');
  const out: { url: string; verifierKey: string }[] = [];
  for (let i = 0; i < list.length; i += 2) {
    const [url, verifierKey] = [list[i]!, list[i + 1]!];
    if (!/^https?:\/\//.test(url)) throw new BkvError('USAGE', `--cosigner ${url}: the first value is the cosigner's URL`);
    out.push({ url, verifierKey });
  }
  return out;
}

/** `bkv witness …`: run the independent witness and the operator's publishing flow. */
export const witnessCommands: CommandModule = (program: Command) => {
  const w = program.command('witness').description('the independent witness log of fleet-key epochs');

  w.command('start')
    .description('run a witness (keys are created in --dir on first start)')
    .requiredOption('--dir <dir>', 'state directory: keys, config, append-only log')
    .option('--port <port>', 'TCP port (0 picks a free one)', '8730')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--origin <origin>', 'checkpoint origin and key name (first start only)')
    .option('--operator-key <base64...>', 'register operator Ed25519 public keys allowed to submit')
    .option('--allow-vendor <base64...>', 'vendor root public keys whose devices may attest fleets (requires evidence)')
    .option('--allow-measurement <hex...>', 'vault core measurements fleets may run (requires evidence)')
    .option('--cosign-log <verifier key...>', 'C2SP tlog-witness: cosign checkpoints of the log with this verifier key (repeatable)')
    .option('--cosigner <url and verifier key...>', 'submit each new checkpoint to this cosigner: --cosigner <url> <verifier key> (repeatable)')
    .option('--json', 'print the start-up information as JSON')
    .action(async (opts: { dir: string; port: string; host: string; origin?: string; operatorKey?: string[]; allowVendor?: string[]; allowMeasurement?: string[]; cosignLog?: string[]; cosigner?: string[]; json?: boolean }) => {
      const out = makeOutput(!!opts.json);
      const cosigners = pairCosigners(opts.cosigner);
      const running = await startWitness(opts.dir, {
        port: intOpt(opts.port, '--port') ?? 8730,
        host: opts.host,
        ...(opts.origin ? { origin: opts.origin } : {}),
        ...(opts.operatorKey ? { addOperatorKeys: opts.operatorKey } : {}),
        ...(opts.allowVendor ? { addAllowedVendors: opts.allowVendor } : {}),
        ...(opts.allowMeasurement ? { addAllowedMeasurements: opts.allowMeasurement } : {}),
        ...(opts.cosignLog ? { addCosignLogs: opts.cosignLog } : {}),
        ...(cosigners.length ? { addCosigners: cosigners } : {}),
        onCosignerError: (s) => process.stderr.write(`bkv witness: cosigner ${s.name} (${s.url}) did not cosign: ${s.lastError}\n`),
      });
      const info = running.log.keyInfo();
      out.result(
        [
          `witness listening on ${running.url}`,
          `origin:        ${info.origin}`,
          `verifier key:  ${info.verifierKey}   (pin this in clients)`,
          `cosigner key:  ${info.cosignerVerifierKey}   (list this in witness policies)`,
          `cosigns logs:  ${running.log.cosigner.watchedLogs().map((l) => l.origin).join(', ') || 'none'}`,
          `cosigners:     ${running.log.collector ? running.log.collector.status().map((c) => `${c.name} ${c.url}`).join(', ') : 'none'}`,
          `operators:     ${running.log.config.operatorKeys.length} registered`,
          `evidence:      ${running.log.evidenceRequired ? `required (${running.log.config.allowedVendors?.length ?? 0} vendor roots, ${running.log.config.allowedMeasurements?.length ?? 0} measurements allowed)` : 'optional (no allow lists)'}`,
          `log size:      ${running.log.checkpoint().size}`,
        ].join('\n'),
        { url: running.url, ...info, treeSize: running.log.checkpoint().size },
      );
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await running.close();
    });

  w.command('policy')
    .description('write a witness policy (k of n cosigners) from the witnesses\' /v1/key')
    .requiredOption('--cosigner <url...>', 'a cosigning witness (repeatable)')
    .requiredOption('--quorum <k>', 'how many of them must cosign')
    .option('--log <url>', 'also pin this log\'s verifier key in the policy')
    .action(async (opts: { cosigner: string[]; quorum: string; log?: string }) => {
      const k = intOpt(opts.quorum, '--quorum')!;
      const witnesses = await Promise.all(
        opts.cosigner.map(async (url, i) => ({ label: `w${i + 1}`, verifierKey: (await new WitnessClient(url).keyInfo()).cosignerVerifierKey, url })),
      );
      const logs = opts.log ? [(await new WitnessClient(opts.log).keyInfo()).verifierKey] : [];
      process.stdout.write(formatWitnessPolicy({ logs, witnesses, quorum: k }));
    });

  w.command('keygen')
    .description('create an Ed25519 key file (an operator key; or a fleet signing key for development)')
    .requiredOption('--out <file>', 'where to write the key file (mode 0600)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { out: string; json?: boolean }) => {
      const out = makeOutput(!!opts.json);
      const k = await writeOperatorKeyFile(opts.out);
      const pub = encodeBase64(k.publicKey);
      out.info(`key written to ${opts.out}; register the public key with: bkv witness start --operator-key ${pub}`);
      out.result(pub, { keyFile: opts.out, publicKey: pub });
    });

  w.command('publish')
    .description('submit a fleet artifact as the next epoch; optionally counter-sign and upload')
    .requiredOption('--witness <url>', 'witness base URL')
    .requiredOption('--namespace <ns>', 'fleet namespace')
    .requiredOption('--artifact <file>', 'fleet artifact (exact bytes, bkv-fleet-artifact/v1)')
    .requiredOption('--operator-key <file>', 'operator key file (bkv witness keygen)')
    .option('--epoch <n>', 'epoch to submit (default: the next one)')
    .option('--fleet-signing-key <file>', 'development only: counter-sign with this fleet signing key file')
    .option('--json', 'print the result as JSON')
    .action(
      async (opts: { witness: string; namespace: string; artifact: string; operatorKey: string; epoch?: string; fleetSigningKey?: string; json?: boolean }) => {
        const out = makeOutput(!!opts.json);
        const client = new WitnessClient(opts.witness);
        const artifact = await readFileOr(opts.artifact);
        const operator = await readOperatorKeyFile(opts.operatorKey);
        const fleetKey = opts.fleetSigningKey ? await readOperatorKeyFile(opts.fleetSigningKey) : undefined;
        const epoch = intOpt(opts.epoch, '--epoch');
        const rec = await publishEpoch(client, {
          namespace: opts.namespace,
          artifact,
          operator,
          ...(epoch !== undefined ? { epoch } : {}),
          ...(fleetKey ? { counterSign: (m: Uint8Array) => fleetKey.sign(m) } : {}),
        });
        const msg = counterSignatureMessage(decodeBase64(rec.witnessSignature, 'witnessSignature', 64));
        const lines = [
          `logged ${opts.namespace} epoch ${rec.epoch} at leaf ${rec.leafIndex} (digest ${rec.digest})`,
          `witness signature: ${rec.witnessSignature}`,
        ];
        if (rec.counterSignature) lines.push(`fleet counter-signature uploaded: ${rec.counterSignature}`);
        else
          lines.push(
            `next: have the fleet sign this message (hex) and upload the result with bkv witness countersign:`,
            `  ${encodeHex(msg)}`,
          );
        out.result(lines.join('\n'), { record: rec, counterSignatureMessage: encodeHex(msg) });
      },
    );

  w.command('countersign')
    .description("upload the fleet's counter-signature for an epoch")
    .requiredOption('--witness <url>', 'witness base URL')
    .requiredOption('--namespace <ns>', 'fleet namespace')
    .requiredOption('--epoch <n>', 'epoch')
    .requiredOption('--counter-signature <base64>', 'the 64-byte Ed25519 counter-signature, base64')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { witness: string; namespace: string; epoch: string; counterSignature: string; json?: boolean }) => {
      const out = makeOutput(!!opts.json);
      const rec = await new WitnessClient(opts.witness).uploadCounterSignature(
        opts.namespace,
        intOpt(opts.epoch, '--epoch')!,
        decodeBase64(opts.counterSignature, '--counter-signature', 64),
      );
      out.result(`counter-signature stored for ${rec.namespace} epoch ${rec.epoch}`, { record: rec });
    });

  w.command('bundle')
    .description('print the validation bundle of a namespace (what gateways serve to clients)')
    .requiredOption('--witness <url>', 'witness base URL')
    .requiredOption('--namespace <ns>', 'fleet namespace')
    .option('--epoch <n>', 'epoch (default: newest counter-signed)')
    .action(async (opts: { witness: string; namespace: string; epoch?: string }) => {
      const epoch = intOpt(opts.epoch, '--epoch');
      const b = await new WitnessClient(opts.witness).bundle(opts.namespace, epoch !== undefined ? { epoch } : {});
      process.stdout.write(JSON.stringify(b, null, 2) + '\n');
    });
};
