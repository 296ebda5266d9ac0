import type { Command } from 'commander';
import { JwtAccountVerifier } from '../../host/gateway/auth.js';
import { readFile } from 'node:fs/promises';
import { BkvError } from '../../shared/errors.js';
import { DEFAULT_POLICY } from '../../trusted/core/vault-core.js';
import { startVaultServer } from '../../host/vault-server.js';
import { readOperatorKeyFile } from '../../witness/keys.js';
import type { CommandModule } from '../context.js';
import { makeOutput } from '../output.js';
import { checkStoreUrl } from './store-option.js';

interface StartOpts {
  dir: string;
  host: string;
  port: string;
  maxAttempts?: string;
  jwtPublicKey?: string;
  witness?: string;
  namespace?: string;
  operatorKey?: string;
  witnessKey?: string;
  rateAccount: string;
  rateAddress: string;
  passkeyOrigin?: string[];
  passkeyRpId?: string;
  store?: string;
  json?: boolean;
}

/**
 * Printed (stderr) whenever `bkv vault start` starts: the limit of a single member in the software
 * backend, whose monotonic counter is a file in the directory the host can restore with the rest.
 */
export const SINGLE_MEMBER_ROLLBACK_WARNING =
  'a single-member vault in the software backend cannot defend against a rollback of its whole directory: ' +
  'a host that restores an older copy of it (state, counter file and records together) gives back every guess spent since that copy. ' +
  'Keep the directory where no one can roll it back, or run a fleet on separate hosts or a hardware backend (docs/vault.md, "Rollback of a whole directory").';

/** `bkv vault start`: one vault member and its gateway on loopback. */
export const vaultCommands: CommandModule = (program: Command) => {
  const vault = program.command('vault').description('run a single-member key vault');
  vault
    .command('start')
    .description('start a vault member and its HTTP gateway (runs until interrupted)')
    .requiredOption('--dir <dir>', 'data directory (created if missing)')
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 picks a free one)', '7410')
    .option('--max-attempts <n>', 'largest guess limit a client may ask for', String(DEFAULT_POLICY.maxLimit))
    .option('--jwt-public-key <file>', 'verify account tokens with this Ed25519 JWK (disables development tokens)')
    .option('--witness <url>', 'publish the fleet keys at this witness and serve validation bundles')
    .option('--namespace <ns>', 'witness namespace of this fleet (with --witness)')
    .option('--operator-key <file>', 'operator key file for submissions to the witness (with --witness)')
    .option('--witness-key <key>', "the witness's verifier key: the only witness the core counter-signs for")
    .option('--rate-account <n>', 'vault requests per account per minute', '120')
    .option('--rate-address <n>', 'HTTP requests per client address per minute', '600')
    .option('--passkey-origin <origin...>', 'web app origins whose passkey assertions may release keys (e.g. http://localhost:7480)')
    .option('--passkey-rp-id <host>', 'WebAuthn relying party id (default: the host of the first --passkey-origin)')
    .option('--store <url>', 'record store: sqlite:<path> (default: records.sqlite in --dir) or postgres://…')
    .option('--json', 'print the address and key file as JSON')
    .action(async (o: StartOpts) => {
      if (o.store !== undefined) checkStoreUrl(o.store);
      const out = makeOutput(!!o.json);
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new BkvError('USAGE', `invalid --port ${o.port}`);
      const maxLimit = Number(o.maxAttempts);
      if (!Number.isInteger(maxLimit) || maxLimit < 1 || maxLimit > 1000) throw new BkvError('USAGE', 'invalid --max-attempts');
      const perAccountPerMinute = Number(o.rateAccount);
      const perAddressPerMinute = Number(o.rateAddress);
      if (![perAccountPerMinute, perAddressPerMinute].every((n) => Number.isInteger(n) && n > 0)) {
        throw new BkvError('USAGE', 'rate limits must be positive whole numbers');
      }
      let verifier;
      if (o.jwtPublicKey) {
        try {
          verifier = await JwtAccountVerifier.fromJwk(JSON.parse(await readFile(o.jwtPublicKey, 'utf8')));
        } catch (e) {
          throw new BkvError('USAGE', `cannot load --jwt-public-key ${o.jwtPublicKey}: ${(e as Error).message}`);
        }
      }
      let publication;
      if (o.witness) {
        if (!o.namespace || !o.operatorKey || !o.witnessKey) {
          throw new BkvError('USAGE', '--witness needs --namespace, --operator-key and --witness-key');
        }
        publication = { witnessUrl: o.witness, namespace: o.namespace, operator: await readOperatorKeyFile(o.operatorKey), witnessKey: o.witnessKey };
      }
      let passkeys;
      if (o.passkeyOrigin) {
        const origins = o.passkeyOrigin.map((x) => {
          try {
            return new URL(x).origin;
          } catch {
            throw new BkvError('USAGE', `invalid --passkey-origin ${x}`);
          }
        });
        passkeys = { rpId: o.passkeyRpId ?? new URL(origins[0]!).hostname, origins };
      }
      process.stderr.write(`bkv: warning: ${SINGLE_MEMBER_ROLLBACK_WARNING}\n`); // also with --json: stdout stays one document
      const running = await startVaultServer({
        ...(publication ? { publication } : {}),
        dir: o.dir,
        ...(o.store ? { store: o.store } : {}),
        host: o.host,
        port,
        policy: { ...DEFAULT_POLICY, maxLimit, ...(passkeys ? { passkeys } : {}) },
        ...(verifier ? { verifier } : {}),
        logger: o.json ? false : undefined,
        rateLimit: { perAccountPerMinute, perAddressPerMinute },
      });
      out.info(`vault listening on ${running.url}`);
      out.info(`pinned fleet keys: ${running.fleetKeysPath}`);
      out.info(`records: ${running.storeUrl}`);
      if (running.published) {
        out.info(`fleet keys published at the witness: namespace ${o.namespace}, epoch ${running.published.epoch}, counter-signed`);
      }
      if (!verifier) out.info('development tokens enabled: POST /v1/dev/token (never use in production)');
      out.result('', { url: running.url, fleetKeys: running.fleetKeysPath, store: running.storeUrl, ...(running.published ? { epoch: running.published.epoch } : {}) });
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await running.close();
    });
  vault
    .command('migrate')
    .description('migrate a vault directory written by release 0.1 now (`vault start` also does it), then exit')
    .requiredOption('--dir <dir>', 'the vault directory')
    .option('--json', 'print the result as JSON')
    .action(async (o: { dir: string; json?: boolean }) => {
      const out = makeOutput(!!o.json);
      const { openVaultMember } = await import('../../host/vault-member.js');
      const member = await openVaultMember(o.dir, { onMigration: (line) => process.stderr.write(`${line}\n`) });
      const records = member.state.count;
      await member.close();
      out.result(`${o.dir}: ${records} records`, { dir: o.dir, records });
    });
};
