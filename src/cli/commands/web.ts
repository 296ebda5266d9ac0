import type { Command } from 'commander';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BkvError } from '../../shared/errors.js';
import { startLocalStack, type LocalStack } from '../../host/web/local-stack.js';
import { startWebServer } from '../../host/web/server.js';
import { WitnessClient } from '../../witness/client.js';
import type { CommandModule } from '../context.js';
import { makeOutput } from '../output.js';

interface WebOpts {
  port: string;
  gateway?: string;
  witness?: string;
  witnessKey?: string;
  namespace?: string;
  fleetKeys?: string;
  dir?: string;
  json?: boolean;
}

/** `bkv web`: the browser app on http://localhost:PORT, against a gateway and witness or a local pair. */
export const webCommand: CommandModule = (program: Command) => {
  program
    .command('web')
    .description('serve the web app (backup, restore, passkeys, audit explorer) on localhost')
    .option('--port <port>', 'port on localhost (0 picks a free one)', '7480')
    .option('--gateway <url>', 'vault gateway the app talks to (default: start a local vault and witness)')
    .option('--witness <url>', 'witness for fleet keys and the audit explorer')
    .option('--witness-key <vkey>', "the witness's verifier key the app pins (default: the key the witness reports)")
    .option('--namespace <ns>', "the fleet's witness namespace (with --gateway and --witness)")
    .option('--fleet-keys <file>', 'pin these fleet keys instead of learning them from the witness')
    .option('--dir <dir>', 'data directory of the local vault and witness (default: a temporary one, removed on exit)')
    .option('--json', 'print {"url": …} as JSON')
    .action(async (o: WebOpts) => {
      const out = makeOutput(!!o.json);
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new BkvError('USAGE', `invalid --port ${o.port}`);
      if (!o.gateway && (o.witness || o.fleetKeys)) throw new BkvError('USAGE', '--witness and --fleet-keys need --gateway');
      if (o.gateway && !o.fleetKeys && !(o.witness && o.namespace)) {
        throw new BkvError('USAGE', 'with --gateway, give --fleet-keys, or --witness and --namespace');
      }
      // Listen first: a local vault's passkey policy names this server's origin.
      const web = await startWebServer({ port });
      let stack: LocalStack | undefined;
      let tempDir: string | undefined;
      const stop = async () => {
        await web.close();
        await stack?.close();
        if (tempDir) await rm(tempDir, { recursive: true, force: true });
      };
      try {
        if (!o.gateway) {
          const dir = o.dir ?? (tempDir = await mkdtemp(join(tmpdir(), 'bkv-web-')));
          stack = await startLocalStack(dir, { passkeyOrigins: [web.origin] });
          web.setUpstream({ gatewayUrl: stack.gatewayUrl, witnessUrl: stack.witnessUrl, config: { witnessKey: stack.witnessKey, namespace: stack.namespace } });
          out.info(`started a local vault (${stack.gatewayUrl}) and witness (${stack.witnessUrl}), namespace ${stack.namespace}`);
          out.info(`passkeys: relying party localhost, origin ${web.origin}`);
        } else if (o.fleetKeys) {
          const k = JSON.parse(await readFile(o.fleetKeys, 'utf8')) as Record<string, string>;
          const config = { fleetKeys: { opaqueServerPublicKey: k.opaqueServerPublicKey, encryptionPublicKey: k.encryptionPublicKey } };
          web.setUpstream({ gatewayUrl: o.gateway, ...(o.witness ? { witnessUrl: o.witness } : {}), config });
        } else {
          const witnessKey = o.witnessKey ?? (await new WitnessClient(o.witness!).keyInfo()).verifierKey;
          web.setUpstream({ gatewayUrl: o.gateway, witnessUrl: o.witness!, config: { witnessKey, namespace: o.namespace } });
        }
      } catch (e) {
        await stop();
        throw e;
      }
      if (o.json) out.result('', { url: web.url });
      else process.stdout.write(`${web.url}\n`);
      out.info('open it in a browser; Ctrl-C stops');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await stop();
    });
};
