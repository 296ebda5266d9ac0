import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { isBkvError, type BkvError } from '../../src/shared/errors.js';
import { decodeBase64, encodeBase64, encodeHex } from '../../src/shared/fleet-formats/encoding.js';
import { encodeAttestation, parseAttestation } from '../../src/shared/attestation/format.js';
import { encodeEvidence, type DeploymentEvidence } from '../../src/shared/evidence/evidence.js';
import { publishDeployment } from '../../src/ceremony/publish.js';
import { encodeTranscript, parseTranscript } from '../../src/shared/evidence/transcript.js';
import { runCli } from '../helpers/cli.js';
import { WitnessClient } from '../../src/witness/client.js';
import { operatorKeyFromSeed, writeOperatorKeyFile } from '../../src/witness/keys.js';
import { startWitness, type RunningWitness } from '../../src/witness/server.js';
import { bytes, cleanup, clone, deploy, resignTranscript, secretNeedles, tempDir, type Deployed } from './fixture.js';

let d: Deployed;
let w: RunningWitness;
let client: WitnessClient;
const operator = operatorKeyFromSeed(new Uint8Array(32).fill(3));
const NS = 'test.fleet';

beforeAll(async () => {
  d = await deploy({ members: 3, namespace: NS });
  w = await startWitness(await tempDir(), {
    addOperatorKeys: [encodeBase64(operator.publicKey)],
    addAllowedVendors: [d.vendorKey],
    addAllowedMeasurements: [d.measurement],
  });
  client = new WitnessClient(w.url);
});
afterAll(async () => {
  await w.close();
  await cleanup();
});

async function refused(artifact: Uint8Array, evidence: DeploymentEvidence | undefined): Promise<BkvError> {
  try {
    await client.submit(NS, 1, artifact, operator, evidence ? encodeEvidence(evidence) : undefined);
  } catch (e) {
    if (isBkvError(e)) return e;
    throw e;
  }
  throw new Error('the witness accepted bad evidence');
}

const cli = runCli;

describe('the witness verifies deployment evidence before it signs', () => {
  const art = () => d.result.artifact;

  it('refuses a fleet without evidence (422, evidence.missing)', async () => {
    const e = await refused(art(), undefined);
    expect(e.details).toMatchObject({ status: 422, check: 'evidence.missing' });
    expect(e.code).toBe('VERIFICATION_FAILED');
  });

  it('refuses a tampered attestation (evidence.attestation)', async () => {
    const ev = clone(d.evidence);
    const a = parseAttestation(decodeBase64(ev.attestations[2]!.attestation.body, 'a'));
    ev.attestations[2]!.attestation.body = encodeBase64(encodeAttestation({ ...a, measurement: encodeHex(sha256(bytes('x'))) }));
    expect((await refused(art(), ev)).details).toMatchObject({ status: 422, check: 'evidence.attestation' });
  });

  it('refuses devices of a vendor not on its allow list (evidence.vendor-chain)', async () => {
    const other = await deploy({ members: 3, namespace: NS, measurement: d.measurement });
    expect((await refused(other.result.artifact, other.evidence)).details).toMatchObject({ status: 422, check: 'evidence.vendor-chain' });
  });

  it('refuses a measurement not on its allow list (evidence.measurement)', async () => {
    const wrong = await deploy({ members: 3, namespace: NS, vendorDir: d.vendorDir, measurement: encodeHex(sha256(bytes('patched core'))) });
    const e = await refused(wrong.result.artifact, wrong.evidence);
    expect(e.details).toMatchObject({ status: 422, check: 'evidence.measurement' });
    expect(e.message).toMatch(/not on the allow list/);
  });

  it('refuses a transcript that leaves a member out (evidence.transcript) or lacks a signature (evidence.transcript-signatures)', async () => {
    const t = parseTranscript(decodeBase64(d.evidence.transcript, 't'));
    const ev = await resignTranscript(d, clone(d.evidence), encodeTranscript({ ...t, steps: t.steps.filter((s) => s.fields.member !== '2' && s.fields.to !== '2') }));
    expect((await refused(art(), ev)).details).toMatchObject({ status: 422, check: 'evidence.transcript' });
    const ev2 = clone(d.evidence);
    ev2.transcriptSignatures.pop();
    expect((await refused(art(), ev2)).details).toMatchObject({ status: 422, check: 'evidence.transcript-signatures' });
  });

  it('refuses fleet keys its members did not sign (evidence.key-endorsements)', async () => {
    const ev = clone(d.evidence);
    ev.keyEndorsements = ev.keyEndorsements.slice(1);
    expect((await refused(art(), ev)).details).toMatchObject({ status: 422, check: 'evidence.key-endorsements' });
  });

  it('refuses evidence about another artifact (evidence.artifact)', async () => {
    const other = await deploy({ members: 3, namespace: NS, vendorDir: d.vendorDir });
    expect((await refused(art(), other.evidence)).details).toMatchObject({ status: 422, check: 'evidence.artifact' });
  });

  it('logs good evidence, serves it over HTTP and as files; the deployment audit passes, and fails on tampering', async () => {
    const rec = await publishDeployment({
      witnessUrl: w.url,
      namespace: NS,
      artifact: d.result.artifact,
      evidence: d.evidenceBytes,
      operator,
      counterSign: d.result.counterSign,
    });
    expect(rec.epoch).toBe(1);
    expect(rec.evidence).toBe(true);
    expect(rec.counterSignature).toBeTruthy();
    expect(Buffer.from(await client.evidence(NS, 1))).toEqual(Buffer.from(d.evidenceBytes));
    expect(existsSync(join(w.log.dir, 'published', NS, '1', 'evidence.json'))).toBe(true);
    expect((await client.policy()).evidenceRequired).toBe(true);
    // No witness API response carries a fleet or member secret.
    const needles = await secretNeedles(d);
    for (const path of [`/v1/namespaces/${NS}/epochs/1`, `/v1/namespaces/${NS}/epochs/1/artifact`, `/v1/namespaces/${NS}/epochs/1/evidence`, `/v1/bundle/${NS}`, '/checkpoint', '/v1/policy', '/v1/key']) {
      const body = Buffer.from(await (await fetch(w.url + path)).arrayBuffer());
      for (const n of needles) expect(body.includes(n.needle), `${n.what} in ${path}`).toBe(false);
    }

    const state = join(d.root, 'audit-state.json');
    const ok = await cli(['audit', 'deployment', d.result.evidencePath, '--witness', w.url, '--vendor-root', d.vendorKey, '--state', state, '--json']);
    const report = JSON.parse(ok.stdout);
    expect(report.checks.filter((c: { ok: boolean }) => !c.ok)).toEqual([]);
    expect(report.checks.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining(['vendor-chain', 'attestation', 'measurement', 'key-endorsements', 'transcript', 'transcript-signatures', 'logged', 'inclusion', 'consistency', 'counter-signature']),
    );
    expect(ok.code).toBe(0);
    expect((await cli(['audit', 'deployment', d.result.evidencePath, '--witness', w.url, '--state', state])).stdout).toMatch(/✓ consistency +tree 1 → 1/);

    const ev = clone(d.evidence);
    ev.keyEndorsements = ev.keyEndorsements.slice(1);
    const bad = join(d.root, 'bad-evidence.json');
    await writeFile(bad, encodeEvidence(ev));
    const failed = await cli(['audit', 'deployment', bad, '--witness', w.url]);
    expect(failed.code).toBe(8);
    expect(failed.stdout).toMatch(/✗ key-endorsements/);
    expect(failed.stdout).toMatch(/DEPLOYMENT AUDIT FAILED/);
  });

  it('evidence survives a witness restart (replayed from the log), and the allow lists from config.json', async () => {
    const { WitnessLog } = await import('../../src/witness/log.js');
    const dir = await tempDir();
    const opts = { addOperatorKeys: [encodeBase64(operator.publicKey)], addAllowedVendors: [d.vendorKey], addAllowedMeasurements: [d.measurement] };
    const { submission } = await import('../witness/fixtures.js');
    let log = await WitnessLog.open(dir, opts);
    await log.submit(NS, { ...submission(NS, 1, d.result.artifact, operator), evidence: encodeBase64(d.evidenceBytes) });
    await log.close();
    log = await WitnessLog.open(dir); // no flags: the policy is in config.json
    try {
      expect(log.evidenceRequired).toBe(true);
      expect(Buffer.from(log.evidence(NS, 1))).toEqual(Buffer.from(d.evidenceBytes));
      expect(log.epochRecord(NS, 1).evidence).toBe(true);
    } finally {
      await log.close();
    }
  });

  it('bkv fleet deploy publishes through the CLI with evidence', async () => {
    const dir = await tempDir();
    const opFile = join(dir, 'op.key');
    const op = await writeOperatorKeyFile(opFile);
    const w2 = await startWitness(join(dir, 'w'), {
      addOperatorKeys: [encodeBase64(op.publicKey)],
      addAllowedVendors: [d.vendorKey],
      addAllowedMeasurements: [d.measurement],
    });
    try {
      const r = await cli(['fleet', 'deploy', '--dir', join(dir, 'fleet'), '--members', '3', '--sites', 'a,b,c', '--namespace', 'cli.fleet',
        '--vendor', d.vendorDir, '--witness', w2.url, '--operator-key', opFile, '--json']);
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.record.epoch).toBe(1);
      expect(out.record.counterSignature).toBeTruthy();
      const evidence = await readFile(join(dir, 'fleet', 'evidence.json'));
      expect(Buffer.from(await new WitnessClient(w2.url).evidence('cli.fleet', 1))).toEqual(evidence);
    } finally {
      await w2.close();
    }
  });
});
