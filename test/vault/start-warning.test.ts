import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SINGLE_MEMBER_ROLLBACK_WARNING } from '../../src/cli/commands/vault.js';

// `bkv vault start` (bin/bkv.js: `npm run build` first) says at start that a single member in the
// software backend cannot defend against a rollback of its whole directory (spent guesses come back).
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'bkv.js');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bkv-vault-warning-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Starts the vault, waits until it listens, stops it; returns what it printed. */
async function start(json: boolean): Promise<{ stdout: string[]; stderr: string }> {
  const args = [BIN, 'vault', 'start', '--dir', join(dir, json ? 'j' : 't'), '--port', '0', ...(json ? ['--json'] : [])];
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const stdout: string[] = [];
  createInterface({ input: p.stdout! }).on('line', (l) => stdout.push(l));
  const exited = new Promise((r) => p.once('exit', r));
  const deadline = performance.now() + 30_000;
  while (!(json ? stdout.length > 0 : /vault listening on/.test(stderr))) {
    if (p.exitCode !== null || performance.now() > deadline) throw new Error(`vault start did not come up: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  p.kill('SIGTERM');
  await exited;
  return { stdout, stderr };
}

describe('bkv vault start', () => {
  it('warns at start that a single member cannot defend against a rollback of its whole directory', async () => {
    const t = await start(false);
    expect(t.stderr.split('\n')[0]).toBe(`bkv: warning: ${SINGLE_MEMBER_ROLLBACK_WARNING}`);
    expect(SINGLE_MEMBER_ROLLBACK_WARNING).toMatch(/software backend cannot defend against a rollback of its whole directory/);
    expect(SINGLE_MEMBER_ROLLBACK_WARNING).toMatch(/gives back every guess spent since that copy/);
  }, 60_000);

  it('with --json too, on stderr: stdout stays one JSON document', async () => {
    const j = await start(true);
    expect(j.stderr).toContain(`bkv: warning: ${SINGLE_MEMBER_ROLLBACK_WARNING}`);
    expect(j.stdout).toHaveLength(1);
    expect(JSON.parse(j.stdout[0]!)).toMatchObject({ ok: true });
  }, 60_000);
});
