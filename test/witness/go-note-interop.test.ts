import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { addSignatureLines, cosignatureLine, cosignerKeyId } from '../../src/client/fleet/cosignature.js';
import { WitnessClient, publishEpoch } from '../../src/witness/client.js';
import { makeDemoFleet } from '../../src/witness/demo-support.js';
import { operatorKeyFromSeed } from '../../src/witness/keys.js';
import { startWitness, type RunningWitness } from '../../src/witness/server.js';

/**
 * Cross-check with the reference implementation: Go's golang.org/x/mod/sumdb/note must verify our
 * checkpoints. Needs the Debian packages golang-go and golang-golang-x-mod-dev (CI installs them);
 * on a machine without Go the check is reported as skipped, and CI fails instead of skipping.
 */
const GOPATH = '/usr/share/gocode';
const haveGo = spawnSync('go', ['version']).status === 0;
const required = process.env.CI === 'true';

let dir: string;
let witness: RunningWitness;
let verifierBin: string;

describe.runIf(haveGo || required)('checkpoints verify with Go sumdb/note', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bkv-go-note-'));
    verifierBin = join(dir, 'note-verify');
    execFileSync('go', ['build', '-o', verifierBin, '.'], {
      cwd: join(import.meta.dirname, '..', '..', 'scripts', 'interop', 'note-verify'),
      env: { ...process.env, GO111MODULE: 'off', GOPATH, GOCACHE: join(dir, 'gocache') },
    });
    const operator = operatorKeyFromSeed(new Uint8Array(32).fill(5));
    witness = await startWitness(join(dir, 'witness'), { addOperatorKeys: [encodeBase64(operator.publicKey)] });
    const client = new WitnessClient(witness.url);
    for (const id of ['fleet-a', 'fleet-b']) {
      const f = makeDemoFleet('interop.ns', id);
      await publishEpoch(client, { namespace: 'interop.ns', artifact: f.bytes, operator, counterSign: f.counterSign });
    }
  }, 120_000);

  afterAll(async () => {
    await witness?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts the witness checkpoint and returns the same body', async () => {
    const client = new WitnessClient(witness.url);
    const note = await client.checkpoint();
    const key = (await client.keyInfo()).verifierKey;
    await writeFile(join(dir, 'cp'), note);
    const r = spawnSync(verifierBin, [key, join(dir, 'cp')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(note.startsWith(r.stdout)).toBe(true);
    expect(r.stdout.split('\n')[1]).toBe('2');
  });

  it('accepts the checkpoint with cosignature/v1 lines added (signatures by unknown keys are ignored)', async () => {
    const client = new WitnessClient(witness.url);
    const note = await client.checkpoint();
    const body = note.slice(0, note.indexOf('\n\n') + 1);
    const lines = [1, 2, 3].map((i) => {
      const seed = new Uint8Array(32).fill(40 + i);
      const publicKey = ed25519.getPublicKey(seed);
      const name = `witness${i}.example`;
      return cosignatureLine(body, 1_700_000_000 + i, { name, publicKey, keyId: cosignerKeyId(name, publicKey), sign: (m) => ed25519.sign(m, seed) });
    });
    const cosigned = addSignatureLines(note, lines);
    expect(cosigned.split('\n— ').length).toBe(5);
    await writeFile(join(dir, 'cosigned'), cosigned);
    const r = spawnSync(verifierBin, [(await client.keyInfo()).verifierKey, join(dir, 'cosigned')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(body);
  });

  it('rejects the checkpoint with a changed tree size', async () => {
    const client = new WitnessClient(witness.url);
    const note = (await client.checkpoint()).replace(/\n2\n/, '\n3\n');
    await writeFile(join(dir, 'bad'), note);
    const r = spawnSync(verifierBin, [(await client.keyInfo()).verifierKey, join(dir, 'bad')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/does not verify/);
  });
});
