/**
 * `bkv audit deployment` against a real witness on loopback behind a proxy that rewrites the
 * unsigned fields of its epoch records: the audit must find the epoch by the signed digest, fail
 * with a typed error when a record contradicts its statement, and never claim a forged epoch.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { publishDeployment } from '../../src/ceremony/publish.js';
import { encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { operatorKeyFromSeed } from '../../src/witness/keys.js';
import { startWitness, type RunningWitness } from '../../src/witness/server.js';
import { WitnessClient } from '../../src/witness/client.js';
import { rewriteJson, startTamperProxy, type Rewrite } from '../witness/tamper-proxy.js';
import { cleanup, deploy, type Deployed } from './fixture.js';

const NS = 'test.fleet';
const operator = operatorKeyFromSeed(new Uint8Array(32).fill(5));
let logged: Deployed;
let unlogged: Deployed;
let w: RunningWitness;
let witnessKey: string;

beforeAll(async () => {
  logged = await deploy({ members: 3, namespace: NS });
  unlogged = await deploy({ members: 3, namespace: NS, vendorDir: logged.vendorDir, measurement: logged.measurement });
  w = await startWitness(join(logged.root, 'witness'), {
    addOperatorKeys: [encodeBase64(operator.publicKey)],
    addAllowedVendors: [logged.vendorKey],
    addAllowedMeasurements: [logged.measurement],
  });
  await publishDeployment({ witnessUrl: w.url, namespace: NS, artifact: logged.result.artifact, evidence: logged.evidenceBytes, operator, counterSign: logged.result.counterSign });
  witnessKey = (await new WitnessClient(w.url).keyInfo()).verifierKey;
}, 120_000);
afterAll(async () => {
  await w?.close();
  await cleanup();
});

const cli = runCli;

async function auditThrough(rewrite: Rewrite, evidencePath: string, json = true) {
  const proxy = await startTamperProxy(w.url, rewrite);
  try {
    const r = await cli(['audit', 'deployment', evidencePath, '--witness', proxy.url, '--witness-key', witnessKey, '--vendor-root', logged.vendorKey, ...(json ? ['--json'] : [])]);
    expect(proxy.rewritten.length).toBeGreaterThan(0);
    return r;
  } finally {
    await proxy.close();
  }
}

const epoch1 = `/v1/namespaces/${NS}/epochs/1`;

describe('bkv audit deployment behind a tampering proxy (witness key and vendor root pinned)', () => {
  it('passes on honest answers', async () => {
    const r = await auditThrough((p, b) => (p === epoch1 ? b : undefined), logged.result.evidencePath, false);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/✓ logged +epoch 1 of test.fleet/);
    expect(r.stdout).toMatch(/deployment verified/);
    expect(r.stderr).toBe('');
  });

  it('attack: an altered timestamp on the logged epoch fails the audit with a typed error', async () => {
    const r = await auditThrough(rewriteJson(epoch1, (j) => void (j.timestamp = Date.UTC(2001, 0, 1))), logged.result.evidencePath);
    expect(r.code).toBe(8);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: 'VERIFICATION_FAILED', check: 'record', field: 'timestamp' } });
  });

  it('attack: an unlogged fleet passed off as epoch 1 (digest field and artifact rewritten) is never reported as logged', async () => {
    const evidencePath = join(unlogged.root, 'evidence.json');
    await writeFile(evidencePath, unlogged.evidenceBytes);
    const { encodeHex, artifactDigest } = await import('../../src/client/fleet/index.js');
    const digest = encodeHex(artifactDigest(unlogged.result.artifact));
    const forge = rewriteJson(epoch1, (j) => void (j.digest = digest));
    const rewrite: Rewrite = (p, b) => (p === `${epoch1}/artifact` ? Buffer.from(unlogged.result.artifact) : forge(p, b));
    for (const json of [true, false]) {
      const r = await auditThrough(rewrite, evidencePath, json);
      expect(r.code).toBe(8);
      expect(r.stdout).not.toMatch(/✓ logged/);
      expect(r.stdout).not.toMatch(/"name":"logged","ok":true/);
      if (json) expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: 'VERIFICATION_FAILED', check: 'record', field: 'digest' } });
    }
    // Honest witness: the unlogged fleet is reported as not logged.
    const honest = await cli(['audit', 'deployment', evidencePath, '--witness', w.url, '--witness-key', witnessKey, '--vendor-root', logged.vendorKey]);
    expect(honest.code).toBe(8);
    expect(honest.stdout).toMatch(/✗ logged +the artifact \(digest [0-9a-f]+\) is not logged/);
    expect(honest.stdout).toMatch(/^NOT VERIFIED/);
  });

  it('warns on stderr when --witness is given without --witness-key', async () => {
    const r = await cli(['audit', 'deployment', logged.result.evidencePath, '--witness', w.url, '--vendor-root', logged.vendorKey, '--json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: the witness key is not pinned/);
  });
});
