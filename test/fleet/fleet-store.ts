/**
 * Helpers for the fleet record-store tests: a real `bkv up` fleet (member processes under its
 * supervisor, the gateway), clients pinned to its keys, and the members' status.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { httpTransport } from '../../src/client/sdk/transport.js';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { readFleetConfig, type FleetConfig } from '../../src/host/fleet/config.js';
import type { MemberStatus } from '../../src/host/fleet/member-status.js';
import { fetchStatuses } from '../../src/host/fleet/supervisor.js';
import { fromB64 } from '../../src/shared/protocol/messages.js';

export const BIN = join(import.meta.dirname, '..', '..', 'bin', 'bkv.js');

export interface UpFleet {
  dir: string;
  url: string;
  config: FleetConfig;
  up: ChildProcess;
  output: string[];
  client(account: string): VaultClient;
  statuses(): Promise<Map<number, MemberStatus | null>>;
  leader(): Promise<number>;
  /** Every member's core counters, summed. */
  coreTotals(): Promise<Record<string, number>>;
  pid(id: number): Promise<number>;
  /** SIGKILL member `id` (the supervisor restarts it) and wait until it answers again, as a new process. */
  restart(id: number, whileStopped?: () => Promise<void>): Promise<void>;
  /** `bkv fleet status --json`. */
  fleetStatus(): Promise<{ members: Array<{ id: number; store: { engine: string; state: string; storeBatch: number; coreBatch: number; records: number; repairs: number } | null }> }>;
  close(): Promise<void>;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `bkv up --members 3` in `dir`, with `extra` arguments; resolves once the gateway answers. */
export async function startUp(dir: string, extra: string[]): Promise<UpFleet> {
  const up = spawn(process.execPath, [BIN, 'up', '--dir', dir, '--members', '3', '--base-port', '0', '--json', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  createInterface({ input: up.stderr! }).on('line', (l) => output.push(l));
  const lines = createInterface({ input: up.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    up.once('exit', (c) => reject(new Error(`bkv up exited ${c}: ${output.join('\n')}`)));
  });
  lines.on('line', (l) => output.push(l));
  const url = (JSON.parse(first) as { url: string }).url;
  const config = await readFleetConfig(join(dir, 'fleet.json'));
  const keys = JSON.parse(await readFile(join(dir, 'fleet-keys.json'), 'utf8')) as Record<string, string>;
  const fleet = { opaqueServerPublicKey: fromB64(keys.opaqueServerPublicKey!, 'key'), encryptionPublicKey: fromB64(keys.encryptionPublicKey!, 'key') };
  const token = (account: string) => async () =>
    ((await (await fetch(`${url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) })).json()) as { token: string }).token;
  const statuses = () => fetchStatuses(config, 1000);
  const self: UpFleet = {
    dir,
    url,
    config,
    up,
    output,
    client: (account) =>
      new VaultClient({ account, fleet, ksf: { memory: 256, iterations: 1, parallelism: 1 }, transport: httpTransport({ gatewayUrl: url, token: token(account) }) }),
    statuses,
    leader: () =>
      waitFor('a leader', async () => {
        const st = await statuses();
        return [...st.values()].find((s) => s?.role === 'leader' && [...st.values()].filter((o) => o?.leader === s.id).length >= config.quorum)?.id;
      }),
    async coreTotals() {
      const out: Record<string, number> = {};
      for (const s of (await statuses()).values()) for (const [k, v] of Object.entries(s?.core ?? {})) out[k] = (out[k] ?? 0) + v;
      return out;
    },
    pid: async (id) => (await statuses()).get(id)?.pid ?? -1,
    async restart(id, whileStopped) {
      const old = await self.pid(id);
      if (old <= 0) throw new Error(`member ${id} is not answering`);
      if (whileStopped) {
        process.kill(old, 'SIGSTOP');
        await whileStopped();
      }
      process.kill(old, 'SIGKILL');
      await waitFor(`member ${id} back`, async () => {
        const p = await self.pid(id);
        return p > 0 && p !== old;
      }, 30_000);
    },
    async fleetStatus() {
      const r = await promisify(execFile)(process.execPath, [BIN, 'fleet', 'status', '--fleet', join(dir, 'fleet.json'), '--json']).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
      return JSON.parse(r.stdout);
    },
    async close() {
      if (up.exitCode === null && up.signalCode === null) {
        up.kill('SIGTERM');
        await new Promise((r) => up.once('exit', r));
      }
    },
  };
  return self;
}
