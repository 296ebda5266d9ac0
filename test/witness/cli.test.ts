import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFile } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDemoFleet } from '../../src/witness/index.js';
import { cleanup, tempDir } from './fixtures.js';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bkv = join(root, 'bin', 'bkv.js');
afterAll(cleanup);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('node', [bkv, ...args], { cwd: root });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('bkv witness / bkv audit (built CLI)', () => {
  it('operator flow and audit, with a failing audit exiting 8', async () => {
    const dir = await tempDir();
    const op = join(dir, 'operator.key');
    const fk = join(dir, 'fleet.key');
    const k = await cli(['witness', 'keygen', '--out', op, '--json']);
    expect(k.code).toBe(0);
    const opPub = JSON.parse(k.stdout).publicKey as string;
    const child = spawn('node', [bkv, 'witness', 'start', '--dir', join(dir, 'w'), '--port', '0', '--operator-key', opPub, '--json'], {
      cwd: root,
    });
    try {
      const started = await new Promise<{ url: string; verifierKey: string }>((res, rej) => {
        let buf = '';
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('\n')) res(JSON.parse(buf.split('\n')[0]!));
        });
        child.on('exit', (c) => rej(new Error(`witness exited ${c}`)));
      });
      // fleet signing key from a key file (development flow)
      const fkr = await cli(['witness', 'keygen', '--out', fk, '--json']);
      const fleet = makeDemoFleet('cli.ns', 'fleet-a');
      // replace the signing key with the one in the key file: rebuild the artifact
      const { makeFleetArtifact, encodeFleetArtifact, decodeBase64, fleetPublicKeys } = await import('../../src/client/fleet/index.js');
      const keys = { ...fleetPublicKeys(fleet.artifact), signingPublicKey: decodeBase64(JSON.parse(fkr.stdout).publicKey, 'k', 32) };
      const art = makeFleetArtifact({
        namespace: 'cli.ns',
        fleetId: 'fleet-a',
        keys,
        members: fleet.artifact.members.map((m) => ({ ...m, identityKey: decodeBase64(m.identityKey, 'k', 32) })),
        measurement: fleet.artifact.measurement,
        notBefore: fleet.artifact.notBefore,
        notAfter: fleet.artifact.notAfter,
      });
      const artFile = join(dir, 'artifact.json');
      await writeFile(artFile, encodeFleetArtifact(art));
      const p = await cli(['witness', 'publish', '--witness', started.url, '--namespace', 'cli.ns', '--artifact', artFile, '--operator-key', op, '--fleet-signing-key', fk]);
      expect(p.stderr).toBe('');
      expect(p.stdout).toMatch(/logged cli.ns epoch 1/);
      const a = await cli(['audit', 'namespace', 'cli.ns', '--witness', started.url, '--witness-key', started.verifierKey]);
      expect(a.code).toBe(0);
      expect(a.stdout).toMatch(/all 1 epochs verified/);
      // second epoch without counter-signature: the audit fails with EXIT.VERIFICATION
      const f2 = makeDemoFleet('cli.ns', 'fleet-b');
      await writeFile(join(dir, 'a2.json'), f2.bytes);
      const p2 = await cli(['witness', 'publish', '--witness', started.url, '--namespace', 'cli.ns', '--artifact', join(dir, 'a2.json'), '--operator-key', op, '--json']);
      expect(JSON.parse(p2.stdout).record.epoch).toBe(2);
      const a2 = await cli(['audit', 'namespace', 'cli.ns', '--witness', started.url, '--json']);
      expect(a2.code).toBe(8);
      const j = JSON.parse(a2.stdout);
      expect(j.ok).toBe(false);
      expect(j.epochs[1].checks['counter-signature'].ok).toBe(false);
      const a3 = await cli(['audit', 'namespace', 'cli.ns', '--witness', started.url, '--before-epoch', '2']);
      expect(a3.code).toBe(0);
      // unauthenticated publish is refused
      const stranger = join(dir, 'stranger.key');
      await cli(['witness', 'keygen', '--out', stranger]);
      const bad = await cli(['witness', 'publish', '--witness', started.url, '--namespace', 'cli.ns', '--artifact', join(dir, 'a2.json'), '--operator-key', stranger]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/not registered/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
