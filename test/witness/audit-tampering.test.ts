/**
 * `bkv audit namespace` against a real witness on loopback behind a proxy that rewrites its
 * answers: the unsigned fields of an epoch record (beside the signed statement) and the artifact
 * of the epoch the changes are measured against. The audit must fail with a typed error and never
 * print a forged value.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { artifactDigest, encodeBase64, encodeHex } from '../../src/client/fleet/index.js';
import { WitnessClient, auditNamespace, makeDemoFleet, publishEpoch, startWitness, type RunningWitness } from '../../src/witness/index.js';
import { cleanup, newOperator, tempDir } from './fixtures.js';
import { rewriteJson, startTamperProxy, type Rewrite } from './tamper-proxy.js';

const NS = 'acme.backups';
let w: RunningWitness;
let witnessKey: string;
const fleets = [makeDemoFleet(NS, 'fleet-1'), makeDemoFleet(NS, 'fleet-2')];
const forgedDigest = encodeHex(artifactDigest(makeDemoFleet(NS, 'evil').bytes));
const forgedTimestamp = Date.UTC(2001, 0, 1, 12, 0, 0);

beforeAll(async () => {
  const operator = newOperator();
  w = await startWitness(await tempDir(), { addOperatorKeys: [encodeBase64(operator.publicKey)] });
  const c = new WitnessClient(w.url);
  for (const f of fleets) await publishEpoch(c, { namespace: NS, artifact: f.bytes, operator, counterSign: f.counterSign });
  witnessKey = (await c.keyInfo()).verifierKey;
});
afterAll(async () => {
  await w?.close();
  await cleanup();
});

const cli = runCli;

async function throughProxy<T>(rewrite: Rewrite, f: (url: string) => Promise<T>): Promise<T> {
  const proxy = await startTamperProxy(w.url, rewrite);
  try {
    const r = await f(proxy.url);
    expect(proxy.rewritten.length).toBeGreaterThan(0);
    return r;
  } finally {
    await proxy.close();
  }
}

const epoch2 = `/v1/namespaces/${NS}/epochs/2`;

describe('bkv audit namespace behind a tampering proxy (witness key pinned)', () => {
  it('an honest answer passes, and the table shows the signed timestamp and digest', async () => {
    const r = await throughProxy((p, b) => (p === epoch2 ? b : undefined), (url) => cli(['audit', 'namespace', NS, '--witness', url, '--witness-key', witnessKey]));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/all 2 epochs verified/);
    expect(r.stdout).toContain(encodeHex(artifactDigest(fleets[1]!.bytes)).slice(0, 10));
    expect(r.stderr).not.toMatch(/not pinned/);
  });

  const cases: [string, (j: Record<string, unknown>) => void, string[]][] = [
    ['digest', (j) => void (j.digest = forgedDigest), [forgedDigest, forgedDigest.slice(0, 10)]],
    ['timestamp', (j) => void (j.timestamp = forgedTimestamp), ['2001-01-01', String(forgedTimestamp)]],
    ['namespace', (j) => void (j.namespace = 'evil.ns'), ['evil.ns']],
    ['epoch', (j) => void (j.epoch = 9), []],
  ];
  for (const [field, edit, forged] of cases) {
    it(`attack: an altered "${field}" field fails the audit (exit 8, typed error) and is never printed`, async () => {
      const rewrite = rewriteJson(epoch2, edit);
      for (const json of [false, true]) {
        const r = await throughProxy(rewrite, (url) => cli(['audit', 'namespace', NS, '--witness', url, '--witness-key', witnessKey, ...(json ? ['--json'] : [])]));
        expect(r.code).toBe(8);
        expect(r.stdout).not.toMatch(/verified/);
        for (const f of forged) expect(r.stdout + r.stderr).not.toContain(f);
        if (json) {
          const j = JSON.parse(r.stdout);
          expect(j).toMatchObject({ ok: false, error: { code: 'VERIFICATION_FAILED', check: 'record', field, epoch: 2 } });
        } else {
          expect(r.stderr).toMatch(new RegExp(`unsigned "${field}" field differs from the signed statement`));
        }
      }
      await throughProxy(rewrite, (url) =>
        expect(auditNamespace(new WitnessClient(url), NS, { witnessKey })).rejects.toMatchObject({ code: 'VERIFICATION_FAILED', details: { check: 'record', field } }),
      );
    });
  }

  it('attack: a forged artifact for the epoch before the audited ones (hiding a key rotation) fails the audit', async () => {
    // Served as epoch 1, fleet 2's artifact would make epoch 2 read "no change".
    const rewrite: Rewrite = (p) => (p === `/v1/namespaces/${NS}/epochs/1/artifact` ? Buffer.from(fleets[1]!.bytes) : undefined);
    const r = await throughProxy(rewrite, (url) => cli(['audit', 'namespace', NS, '--witness', url, '--witness-key', witnessKey, '--limit', '1', '--json']));
    expect(r.code).toBe(8);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: 'VERIFICATION_FAILED', check: 'previous-epoch', epoch: 1 } });
    expect(r.stdout).not.toMatch(/no change/);
    // Honest: epoch 2's row names the rotation.
    const honest = await cli(['audit', 'namespace', NS, '--witness', w.url, '--witness-key', witnessKey, '--limit', '1', '--json']);
    expect(honest.code).toBe(0);
    expect(JSON.parse(honest.stdout).epochs[0].changes).toEqual(expect.arrayContaining(['fleetId fleet-1 → fleet-2']));
  });

  it('warns on stderr when the witness key is not pinned', async () => {
    for (const json of [false, true]) {
      const r = await cli(['audit', 'namespace', NS, '--witness', w.url, ...(json ? ['--json'] : [])]);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/warning: the witness key is not pinned \(--witness-key\)/);
      if (json) expect(JSON.parse(r.stdout).ok).toBe(true);
    }
  });
});
