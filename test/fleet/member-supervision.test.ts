/**
 * A member process belongs to the `bkv up` that started it: a second process for the same member
 * directory is refused before it touches anything, and the members stop when their supervisor is
 * gone, however it went (here: SIGKILL, which leaves it no chance to stop them itself).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { createFleet, fleetPaths } from '../../src/host/fleet/provision.js';
import { FleetSupervisor } from '../../src/host/fleet/supervisor.js';
import { LOCK_FILE } from '../../src/node/dir-lock.js';
import { BIN, startUp, waitFor, type UpFleet } from './fleet-store.js';

let fleet: UpFleet | null = null;
let supervisor: FleetSupervisor | null = null;
let squatter: ChildProcess | null = null;
const dirs: string[] = [];
afterEach(async () => {
  await fleet?.close();
  fleet = null;
  await supervisor?.stop();
  supervisor = null;
  squatter?.kill('SIGKILL');
  squatter = null;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('member supervision', () => {
  it('refuses a second process for a running member or fleet, and stops the members when bkv up is killed', { timeout: 150_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bkv-supervision-'));
    dirs.push(dir);
    fleet = await startUp(dir, []);
    const f = fleet;
    const stateDirs = f.config.members.map((m) => join(fleetPaths(dir).member(m.id), 'state'));
    // Each member's pid, from the lock it holds (no request that a loaded machine could time out).
    const holders = async () => Promise.all(stateDirs.map(async (s) => Number((await readFile(join(s, LOCK_FILE), 'utf8').catch(() => '')).trim()) || 0));
    const pids = await waitFor('every member holding its directory', async () => {
      const h = await holders();
      return h.every((p) => p > 0 && alive(p)) ? h : null;
    }, 60_000);

    // The attacker's move, or an operator's slip: a second member process on member 1's directory.
    const second = await promisify(execFile)(process.execPath, [BIN, 'member', 'start', '--dir', fleetPaths(dir).member(1), '--fleet', join(dir, 'fleet.json')], { timeout: 60_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code ?? -1, stderr: e.stderr ?? '' }),
    );
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`in use by process ${pids[0]}`);
    expect(await holders()).toEqual(pids);

    // A second `bkv up` on the running fleet's directory stops at once, before starting anything.
    const up2 = await promisify(execFile)(process.execPath, [BIN, 'up', '--dir', dir, '--base-port', '0'], { timeout: 60_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code ?? -1, stderr: e.stderr ?? '' }),
    );
    expect(up2.code).toBe(1);
    expect(up2.stderr).toMatch(/the fleet in .* is running: member \d+ is process \d+/);
    expect(await holders()).toEqual(pids);
    expect(pids.every(alive)).toBe(true);

    // The supervisor dies without a word: every member notices and stops, releasing its lock.
    const exited = new Promise((r) => f.up.once('exit', r));
    f.up.kill('SIGKILL');
    await exited;
    await waitFor('the members to stop', async () => pids.every((p) => !alive(p)), 60_000);
    for (const s of stateDirs) expect(existsSync(join(s, LOCK_FILE))).toBe(false);
  });

  it('a member that cannot start is restarted after waits that double, and comes back once it can', { timeout: 150_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bkv-supervision-'));
    dirs.push(dir);
    const created = await createFleet(dir, { members: 3, basePort: 0 });
    // Another process holds member 1's state directory: member 1 exits at once, every time.
    squatter = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120_000)'], { stdio: 'ignore' });
    const stateDir = join(fleetPaths(dir).member(1), 'state');
    await writeFile(join(stateDir, LOCK_FILE), `${squatter.pid}\n`);
    const events: string[] = [];
    supervisor = new FleetSupervisor(dir, created.config, { restart: true, onEvent: (l) => events.push(l) });
    supervisor.startAll();
    const delays = () => events.filter((e) => e.startsWith('member 1 ')).flatMap((e) => /restarting in ([\d.]+) s/.exec(e)?.[1] ?? []).map(Number);
    await waitFor('three failed starts of member 1', async () => delays().length >= 3, 60_000);
    expect(delays().slice(0, 3)).toEqual([0.5, 1, 2]);
    // The other two members ran all along (a quorum) and were never restarted.
    expect(events.some((e) => /^member [23] /.test(e))).toBe(false);

    const deadSquatter = squatter.pid;
    squatter.kill('SIGKILL');
    squatter = null;
    const s = supervisor;
    // Member 1 runs again, and its process holds its directory now.
    await waitFor('member 1 holding its directory', async () => {
      const pid = Number((await readFile(join(stateDir, LOCK_FILE), 'utf8').catch(() => '')).trim());
      return s.isRunning(1) && pid > 0 && pid !== deadSquatter && alive(pid);
    }, 60_000);
    const restartsBefore = s.restarts.get(1) ?? 0;
    await new Promise((r) => setTimeout(r, 2000));
    expect(s.restarts.get(1) ?? 0).toBe(restartsBefore);
  });
});
