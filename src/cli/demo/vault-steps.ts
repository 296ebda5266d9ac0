import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { encodeBase64 } from '../../shared/fleet-formats/encoding.js';
import { MemoryCheckpointStore } from '../../client/fleet/store.js';
import { parseWitnessPolicy } from '../../client/fleet/policy.js';
import { generateBackupKey } from '../../client/keys/backup-key.js';
import { WrongPasswordError } from '../../client/sdk/errors.js';
import { gatewayBundleFetcher, overTheAirFleet } from '../../client/sdk/fleet-source.js';
import { httpTransport, type VaultTransport } from '../../client/sdk/transport.js';
import { VaultClient, type TrustedFleetKeys } from '../../client/sdk/vault-client.js';
import { createBackupFile, restoreBackupFile } from '../../node/backup-files.js';
import { auditNamespace, formatAudit } from '../../witness/audit.js';
import { WitnessClient } from '../../witness/client.js';
import { need, type DemoContext, type DemoStep } from './steps.js';
import type { RunningFleetGateway } from '../../host/fleet/fleet-gateway.js';
import { fetchStatuses } from '../../host/fleet/supervisor.js';

/** Bytes of an SQLite database with its -wal and -shm files. */
async function fileSizes(path: string): Promise<number> {
  let n = 0;
  for (const f of [path, `${path}-wal`, `${path}-shm`]) n += (await stat(f).catch(() => null))?.size ?? 0;
  return n;
}

export const DEMO_PASSWORD = 'correct horse battery staple';
const ACCOUNT = 'alice';

export async function devToken(url: string, account: string): Promise<string> {
  const res = await fetch(`${url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) });
  return ((await res.json()) as { token: string }).token;
}

/**
 * A phone with no local state: the app pins only the witness key and learns the fleet keys over
 * the air from the gateway (`gatewayUrl`, `witnessKey` and `namespace` set by earlier steps).
 */
export function newDevice(ctx: DemoContext, wrap: (t: VaultTransport) => VaultTransport = (t) => t): { client: VaultClient; fleet: () => Promise<TrustedFleetKeys> } {
  const url = need<string>(ctx, 'gatewayUrl');
  const fleet = overTheAirFleet(
    {
      mode: 'over-the-air',
      namespace: need<string>(ctx, 'namespace'),
      witnesses: [need<string>(ctx, 'witnessKey')],
      store: new MemoryCheckpointStore(),
      ...(ctx.state.has('witnessPolicy') ? { witnessPolicy: need<string>(ctx, 'witnessPolicy') } : {}),
    },
    gatewayBundleFetcher(url),
  );
  const client = new VaultClient({ account: ACCOUNT, fleet, transport: wrap(httpTransport({ gatewayUrl: url, token: () => devToken(url, ACCOUNT) })) });
  return { client, fleet };
}

export async function sameTree(a: string, b: string): Promise<number> {
  const list = async (d: string) =>
    (await readdir(d, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(d.length))
      .sort();
  const fa = await list(a);
  const fb = await list(b);
  if (fa.join('\n') !== fb.join('\n')) throw new Error('restored file list differs');
  for (const f of fa) if (!(await readFile(join(a, f))).equals(await readFile(join(b, f)))) throw new Error(`restored ${f} differs`);
  return fa.length;
}

/** Password escrow in the fleet, with fleet keys delivered over the air and audited. */
export const vaultSteps: DemoStep[] = [
  {
    name: 'Audit the namespace as an outsider would ($ bkv audit namespace … --witness-key …)',
    async run(ctx) {
      const report = await auditNamespace(new WitnessClient(need<string>(ctx, 'witnessUrl')), need<string>(ctx, 'namespace'), {
        witnessKey: need<string>(ctx, 'witnessKey'),
        ...(ctx.state.has('witnessPolicy') ? { policy: parseWitnessPolicy(need<string>(ctx, 'witnessPolicy')) } : {}),
      });
      for (const line of formatAudit(report)) ctx.say(line);
    },
  },
  {
    name: 'Back up with a password: K is escrowed in the fleet, never the password',
    async run(ctx) {
      const { client, fleet } = newDevice(ctx);
      const keys = await fleet();
      ctx.say(
        `the phone pins only the witness key and a 2-of-3 witness policy; it verified the gateway's bundle: digest, witness signature, fleet counter-signature, cosignatures, log inclusion (encryption key ${encodeBase64(keys.encryptionPublicKey).slice(0, 12)}…)`,
      );
      const k = generateBackupKey();
      const t0 = performance.now();
      const { attemptsRemaining } = await client.registerKey(DEMO_PASSWORD, k);
      ctx.say(`registered with OPAQUE (Argon2id 64 MiB on the phone, ${(performance.now() - t0).toFixed(0)} ms); committed on a majority; ${attemptsRemaining} wrong guesses allowed`);
      const backup = join(ctx.workDir, 'chats-password.bkv');
      await createBackupFile({ input: need(ctx, 'sampleDir'), output: backup, key: k });
      ctx.say(`encrypted the chat history under K: ${backup.slice(ctx.workDir.length + 1)}`);
      ctx.state.set('passwordBackup', backup);
      ctx.state.set('escrowedKey', k);
    },
  },
  {
    name: 'Where the records live: each member\'s record store; the core holds only the root',
    async run(ctx) {
      const gw = need<RunningFleetGateway>(ctx, 'fleetGateway');
      const st = await fetchStatuses(gw.config, 1000);
      for (const m of gw.config.members) {
        const s = st.get(m.id);
        if (!s) continue;
        const where = s.store.location.startsWith('sqlite:') ? `sqlite:${relative(ctx.workDir, s.store.location.slice('sqlite:'.length))}` : s.store.location;
        const size = s.store.engine === 'sqlite' ? await fileSizes(s.store.location.slice('sqlite:'.length)) : null;
        ctx.say(
          `member ${m.id}: ${where}: ${s.store.records} record(s) at batch ${s.store.storeBatch}${size === null ? '' : `, ${(size / 1024).toFixed(0)} KiB on disk`}; its core holds root ${s.trusted.root.slice(0, 16)}… in a ${s.trusted.snapshotBytes}-byte state`,
        );
      }
      ctx.say('the store is the host\'s: the core checks every record it reads against that root, and the state it keeps is the same size for one user or a billion');
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
];

/** After the recovery (see fleet-steps.ts): restore and compare. */
export const restoreSteps: DemoStep[] = [
  {
    name: 'Restore the backup with the recovered K and compare',
    async run(ctx) {
      const out = join(ctx.workDir, 'restored-from-vault');
      await restoreBackupFile({ input: need(ctx, 'passwordBackup'), output: out, key: need<Uint8Array>(ctx, 'recoveredKey') });
      ctx.say(`restored and identical: ${await sameTree(need(ctx, 'sampleDir'), out)} files match byte for byte`);
    },
  },
];
