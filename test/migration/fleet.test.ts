import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { httpTransport } from '../../src/client/sdk/transport.js';
import { VaultClient } from '../../src/client/sdk/vault-client.js';
import { readFleetKeys } from '../../src/cli/vault-options.js';
import { readFleetConfig } from '../../src/host/fleet/config.js';
import { freePorts } from '../../src/host/fleet/provision.js';
import { fetchStatuses } from '../../src/host/fleet/supervisor.js';
import { checkAccount, copyFixture, manifest } from './helpers.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'bkv.js');
const accounts = Object.entries(manifest.fleet);
const total = accounts.length;
const running: ChildProcess[] = [];

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    }
  }
});

/** The fixture's fleet.json has fixed ports: give the copy free ones. */
async function replanPorts(dir: string): Promise<void> {
  const path = join(dir, 'fleet.json');
  const cfg = JSON.parse(await readFile(path, 'utf8'));
  const ports = await freePorts(cfg.members.length * 2 + 1);
  cfg.members.forEach((m: { raftPort: number; apiPort: number }, i: number) => {
    m.raftPort = ports[2 * i]!;
    m.apiPort = ports[2 * i + 1]!;
  });
  cfg.gateway.port = ports[ports.length - 1]!;
  await writeFile(path, JSON.stringify(cfg, null, 2));
}

async function up(dir: string): Promise<{ proc: ChildProcess; url: string; fleetKeys: string; stderr: string[]; stop(): Promise<void> }> {
  const proc = spawn(process.execPath, [BIN, 'up', '--dir', dir, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(proc);
  const stderr: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (l) => stderr.push(l));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (l) => l.startsWith('{') && resolve(l));
    proc.once('exit', (c) => reject(new Error(`bkv up exited ${c}: ${stderr.join('\n')}`)));
  });
  const info = JSON.parse(line) as { url: string; fleetKeys: string };
  return {
    proc,
    ...info,
    stderr,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

async function clientFor(url: string, fleetKeys: string, account: string, limit: number): Promise<VaultClient> {
  const keys = await readFleetKeys(fleetKeys);
  const token = async () =>
    ((await (await fetch(`${url}/v1/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account }) })).json()) as { token: string }).token;
  return new VaultClient({ account, fleet: keys, transport: httpTransport({ gatewayUrl: url, token }), ksf: manifest.ksf, attemptLimit: limit });
}

async function recordCounts(dir: string): Promise<number[]> {
  const config = await readFleetConfig(join(dir, 'fleet.json'));
  for (let i = 0; i < 50; i++) {
    const counts = [...(await fetchStatuses(config)).values()].map((s) => s?.records ?? -1);
    if (counts.every((c) => c === total)) return counts;
    await new Promise((r) => setTimeout(r, 100));
  }
  return [...(await fetchStatuses(config)).values()].map((s) => s?.records ?? -1);
}

const members = [1, 2, 3];

describe('a release-0.1 fleet directory opens with `bkv up` of this release', () => {
  it('imports the records once through the leader: keys recover, attempts carry over, old state kept, a restart imports nothing', async () => {
    const dir = await copyFixture('fleet');
    await replanPorts(dir);
    const first = await up(dir);
    expect(first.stderr).toContain(`release 0.1 migration: ${total} / ${total} records imported`);
    expect(first.stderr.some((l) => l.startsWith(`release 0.1 fleet: ${total} records to import, from member`))).toBe(true);
    for (const [name, a] of accounts) {
      const c = await clientFor(first.url, first.fleetKeys, name, a.limit);
      await checkAccount(() => c, a);
    }
    expect(await recordCounts(dir)).toEqual([total, total, total]);
    await first.stop();
    for (const id of members) {
      const m = join(dir, `member-${id}`);
      expect(existsSync(join(m, 'state.release-0.1', 'log'))).toBe(true);
      expect(existsSync(join(m, 'pending-import.bin'))).toBe(false);
      expect(existsSync(join(m, 'release-0.1-imported'))).toBe(true);
    }

    const second = await up(dir);
    expect(second.stderr.filter((l) => l.includes('release 0.1'))).toEqual([]);
    expect(await recordCounts(dir)).toEqual([total, total, total]);
    // What happened after the migration is kept: frank's right password reset his counter.
    const frank = manifest.fleet.frank!;
    const c = await clientFor(second.url, second.fleetKeys, 'frank', frank.limit);
    await checkAccount(() => c, { ...frank, attemptsRemaining: frank.limit });
    await second.stop();
  }, 180_000);

  it("an offline step that died part-way (one member's state moved aside, the others not) is finished by the next `bkv up`", async () => {
    const dir = await copyFixture('fleet');
    await replanPorts(dir);
    // The crash: member 1's state was moved aside; members 2 and 3 were not.
    await rename(join(dir, 'member-1', 'state'), join(dir, 'member-1', 'state.release-0.1'));
    await mkdir(join(dir, 'member-1', 'state'));
    const run = await up(dir);
    expect(run.stderr).toContain(`release 0.1 migration: ${total} / ${total} records imported`);
    expect(await recordCounts(dir)).toEqual([total, total, total]);
    for (const [name, a] of accounts) {
      const c = await clientFor(run.url, run.fleetKeys, name, a.limit);
      await checkAccount(() => c, a);
    }
    for (const id of members) expect(existsSync(join(dir, `member-${id}`, 'state.release-0.1', 'log'))).toBe(true);
    await run.stop();
  }, 180_000);

  it('a migration that died after the import but before any member confirmed it finishes without importing twice', async () => {
    const dir = await copyFixture('fleet');
    await replanPorts(dir);
    // The offline part alone, by the explicit command.
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'fleet', 'migrate', '--dir', dir, '--json']);
    expect(JSON.parse(stdout).pending).toBe(total);
    for (const id of members) await copyFile(join(dir, `member-${id}`, 'pending-import.bin'), join(dir, `pending-${id}.bin`));
    const first = await up(dir);
    // `bkv up` found the offline part done: no second move, no new pending files.
    expect(first.stderr.some((l) => l.startsWith('release 0.1 fleet:'))).toBe(false);
    expect(first.stderr).toContain(`release 0.1 migration: ${total} / ${total} records imported`);
    const frank = manifest.fleet.frank!;
    const c1 = await clientFor(first.url, first.fleetKeys, 'frank', frank.limit);
    await checkAccount(() => c1, frank); // frank: one wrong guess, then the right one resets him
    await first.stop();
    // The crash: the import was committed, no member had confirmed it yet.
    for (const id of members) {
      await copyFile(join(dir, `pending-${id}.bin`), join(dir, `member-${id}`, 'pending-import.bin'));
      await rm(join(dir, `member-${id}`, 'release-0.1-imported'));
    }
    const second = await up(dir);
    expect(second.stderr).toContain(`release 0.1 migration: ${total} / ${total} records imported`);
    expect(await recordCounts(dir)).toEqual([total, total, total]);
    // Not imported again: frank's counter is the one after the first run (reset to the limit).
    const c2 = await clientFor(second.url, second.fleetKeys, 'frank', frank.limit);
    await checkAccount(() => c2, { ...frank, attemptsRemaining: frank.limit });
    for (const id of members) expect(existsSync(join(dir, `member-${id}`, 'pending-import.bin'))).toBe(false);
    await second.stop();
  }, 180_000);
});
