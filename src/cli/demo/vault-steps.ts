import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeBase64 } from '../../client/fleet/encoding.js';
import { MemoryCheckpointStore } from '../../client/fleet/store.js';
import { generateBackupKey } from '../../client/keys/backup-key.js';
import { WrongPasswordError } from '../../client/sdk/errors.js';
import { gatewayBundleFetcher, overTheAirFleet } from '../../client/sdk/fleet-source.js';
import { httpTransport } from '../../client/sdk/transport.js';
import { VaultClient, type TrustedFleetKeys } from '../../client/sdk/vault-client.js';
import { createBackupFile, restoreBackupFile } from '../../node/backup-files.js';
import { startVaultServer, type RunningVault } from '../../host/vault-server.js';
import { auditNamespace, formatAudit } from '../../witness/audit.js';
import { WitnessClient } from '../../witness/client.js';
import { operatorKeyFromSeed } from '../../witness/keys.js';
import { startWitness } from '../../witness/server.js';
import { need, type DemoContext, type DemoStep } from './steps.js';

const NAMESPACE = 'demo.chat-backups';
const PASSWORD = 'correct horse battery staple';

/** Registers a clean-up for the demo runner to call at the end, whatever happens. */
function onCleanup(ctx: DemoContext, fn: () => Promise<void>): void {
  const list = (ctx.state.get('cleanup') as (() => Promise<void>)[] | undefined) ?? [];
  list.push(fn);
  ctx.state.set('cleanup', list);
}

async function devToken(url: string, account: string): Promise<string> {
  const res = await fetch(`${url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
  return ((await res.json()) as { token: string }).token;
}

/** A phone with no local state: it pins only the witness key and learns the fleet over the air. */
function newDevice(ctx: DemoContext): { client: VaultClient; fleet: () => Promise<TrustedFleetKeys> } {
  const vault = need<RunningVault>(ctx, 'vault');
  const fleet = overTheAirFleet(
    { mode: 'over-the-air', namespace: NAMESPACE, witnesses: [need<string>(ctx, 'witnessKey')], store: new MemoryCheckpointStore() },
    gatewayBundleFetcher(vault.url),
  );
  const account = 'alice';
  const client = new VaultClient({
    account,
    fleet,
    transport: httpTransport({ gatewayUrl: vault.url, token: () => devToken(vault.url, account) }),
  });
  return { client, fleet };
}

async function sameTree(a: string, b: string): Promise<number> {
  const list = async (d: string) => (await readdir(d, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(d.length)).sort();
  const fa = await list(a);
  const fb = await list(b);
  if (fa.join('\n') !== fb.join('\n')) throw new Error('restored file list differs');
  for (const f of fa) if (!(await readFile(join(a, f))).equals(await readFile(join(b, f)))) throw new Error(`restored ${f} differs`);
  return fa.length;
}

/** Password escrow in the vault, with fleet keys delivered over the air and audited. */
export const vaultSteps: DemoStep[] = [
  {
    name: 'Start an independent witness, and a vault that publishes its fleet keys there',
    async run(ctx) {
      const operator = operatorKeyFromSeed(crypto.getRandomValues(new Uint8Array(32)));
      const witness = await startWitness(join(ctx.workDir, 'witness'), { addOperatorKeys: [encodeBase64(operator.publicKey)] });
      onCleanup(ctx, () => witness.close());
      const witnessKey = (await new WitnessClient(witness.url).keyInfo()).verifierKey;
      ctx.say(`witness on ${witness.url}; its public key, pinned in the app: ${witnessKey}`);
      const vault = await startVaultServer({
        dir: join(ctx.workDir, 'vault'),
        logger: false,
        publication: { witnessUrl: witness.url, namespace: NAMESPACE, operator, witnessKey },
      });
      onCleanup(ctx, () => vault.close());
      ctx.say(`vault member and gateway on ${vault.url}; fleet secrets generated inside the core`);
      ctx.say(`operator submitted the fleet artifact: the witness logged and signed epoch ${vault.published?.epoch}, the fleet counter-signed it`);
      ctx.state.set('witness', witness);
      ctx.state.set('witnessKey', witnessKey);
      ctx.state.set('vault', vault);
    },
  },
  {
    name: 'Audit the namespace as an outsider would ($ bkv audit namespace)',
    async run(ctx) {
      const witness = need<{ url: string }>(ctx, 'witness');
      const report = await auditNamespace(new WitnessClient(witness.url), NAMESPACE);
      for (const line of formatAudit(report)) ctx.say(line);
    },
  },
  {
    name: 'Back up with a password: K is escrowed in the vault, never the password',
    async run(ctx) {
      const { client, fleet } = newDevice(ctx);
      const keys = await fleet();
      ctx.say(`fleet keys verified over the air: digest, witness signature, counter-signature, log inclusion (encryption key ${encodeBase64(keys.encryptionPublicKey).slice(0, 12)}…)`);
      const k = generateBackupKey();
      const t0 = performance.now();
      const { attemptsRemaining } = await client.registerKey(PASSWORD, k);
      ctx.say(`registered with OPAQUE (Argon2id 64 MiB on the device, ${(performance.now() - t0).toFixed(0)} ms); ${attemptsRemaining} wrong guesses allowed`);
      const backup = join(ctx.workDir, 'chats-password.bkv');
      await createBackupFile({ input: need(ctx, 'sampleDir'), output: backup, key: k });
      ctx.say(`encrypted the chat history under K: ${backup}`);
      ctx.state.set('passwordBackup', backup);
    },
  },
  {
    name: 'Lose the phone; on a new one, type a wrong password',
    async run(ctx) {
      const { client } = newDevice(ctx);
      ctx.say('the new phone has no key and no state: only the app (with the pinned witness key) and the backup file');
      try {
        await client.recoverKey('correct horse battery stapler');
        throw new Error('a wrong password was accepted');
      } catch (e) {
        if (!(e instanceof WrongPasswordError)) throw e;
        ctx.say(`vault: ${e.message}`);
      }
    },
  },
  {
    name: 'The right password recovers K; restore and compare',
    async run(ctx) {
      const { client } = newDevice(ctx);
      const k = await client.recoverKey(PASSWORD);
      ctx.say('KE3 proved the password; the vault reset the counter and released K, wrapped under the OPAQUE session');
      const out = join(ctx.workDir, 'restored-from-vault');
      await restoreBackupFile({ input: need(ctx, 'passwordBackup'), output: out, key: k });
      ctx.say(`restored and identical: ${await sameTree(need(ctx, 'sampleDir'), out)} files match byte for byte`);
    },
  },
];
