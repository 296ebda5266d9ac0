/**
 * The witness checks at start what its signed checkpoint does not cover: the deployment evidence
 * logged with each epoch, the signatures beside the statements, and the static copies in
 * `published/`. Altered or corrupt, the witness refuses to start with a typed error.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { encodeEvidence } from '../../src/shared/evidence/evidence.js';
import { operatorKeyFromSeed } from '../../src/witness/keys.js';
import { WitnessLog } from '../../src/witness/log.js';
import { decodeBase64 } from '../../src/client/fleet/index.js';
import { submission } from '../witness/fixtures.js';
import { cleanup, clone, deploy, tempDir, type Deployed } from './fixture.js';

const NS = 'test.fleet';
const operator = operatorKeyFromSeed(new Uint8Array(32).fill(7));
let d: Deployed;
let other: Deployed;

beforeAll(async () => {
  d = await deploy({ members: 3, namespace: NS });
  other = await deploy({ members: 3, namespace: NS, vendorDir: d.vendorDir, measurement: d.measurement });
}, 120_000);
afterAll(cleanup);

/** A witness directory holding epoch 1 of NS with its evidence, counter-signed; closed. */
async function witnessDir(): Promise<string> {
  const dir = await tempDir();
  const log = await WitnessLog.open(dir, { addOperatorKeys: [encodeBase64(operator.publicKey)] });
  const rec = await log.submit(NS, { ...submission(NS, 1, d.result.artifact, operator), evidence: encodeBase64(d.evidenceBytes) });
  const cs = await d.result.counterSign(
    { artifact: d.result.artifact, statement: decodeBase64(rec.statement, 'st'), witnessSignature: decodeBase64(rec.witnessSignature, 'sig', 64) },
    [log.keyInfo().verifierKey],
  );
  await log.addCounterSignature(NS, 1, encodeBase64(cs));
  await log.close();
  return dir;
}

/** Rewrites line `n` (1-based) of witness.log. */
async function editLine(dir: string, n: number, edit: (j: Record<string, string | number>) => void): Promise<void> {
  const path = join(dir, 'witness.log');
  const lines = (await readFile(path, 'utf8')).split('\n');
  const j = JSON.parse(lines[n - 1]!) as Record<string, string | number>;
  edit(j);
  lines[n - 1] = JSON.stringify(j);
  await writeFile(path, lines.join('\n'));
}

function flipBase64(s: string): string {
  const b = decodeBase64(s, 'x');
  b[b.length - 1]! ^= 1;
  return encodeBase64(b);
}

describe('the witness checks its stored evidence at start', () => {
  it('starts on intact evidence, and writes a missing published copy again from its log', async () => {
    const dir = await witnessDir();
    const copy = join(dir, 'published', NS, '1', 'evidence.json');
    await rm(copy);
    const log = await WitnessLog.open(dir);
    try {
      expect(Buffer.from(log.evidence(NS, 1))).toEqual(Buffer.from(d.evidenceBytes));
      expect(await readFile(copy)).toEqual(Buffer.from(d.evidenceBytes));
    } finally {
      await log.close();
    }
  });

  it('attack: logged evidence with a broken member signature is refused at start (evidence.transcript-signatures)', async () => {
    const dir = await witnessDir();
    const ev = clone(d.evidence);
    ev.transcriptSignatures[0]!.signature = flipBase64(ev.transcriptSignatures[0]!.signature);
    await editLine(dir, 1, (j) => void (j.ev = encodeBase64(encodeEvidence(ev))));
    const err = await WitnessLog.open(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'VERIFICATION_FAILED', details: { check: 'evidence.transcript-signatures', line: 1, namespace: NS, epoch: 1 } });
    expect((err as Error).message).toMatch(/witness.log line 1 is corrupt: the deployment evidence logged with test.fleet epoch 1 no longer verifies/);
  });

  it('attack: logged evidence swapped for another fleet\'s is refused at start (evidence.artifact)', async () => {
    const dir = await witnessDir();
    await editLine(dir, 1, (j) => void (j.ev = encodeBase64(other.evidenceBytes)));
    await expect(WitnessLog.open(dir)).rejects.toMatchObject({ code: 'VERIFICATION_FAILED', details: { check: 'evidence.artifact' } });
  });

  it('attack: an altered published copy of the evidence is refused at start', async () => {
    const dir = await witnessDir();
    const copy = join(dir, 'published', NS, '1', 'evidence.json');
    await writeFile(copy, other.evidenceBytes);
    await expect(WitnessLog.open(dir)).rejects.toMatchObject({ code: 'VERIFICATION_FAILED', details: { check: 'published-copy', path: copy } });
  });

  it('attack: a corrupt witness signature or counter-signature beside a statement is refused at start', async () => {
    const dir = await witnessDir();
    await editLine(dir, 1, (j) => void (j.sig = flipBase64(String(j.sig))));
    await expect(WitnessLog.open(dir)).rejects.toMatchObject({ code: 'VERIFICATION_FAILED', details: { check: 'witness-signature', line: 1 } });
    const dir2 = await witnessDir();
    await editLine(dir2, 2, (j) => void (j.cs = flipBase64(String(j.cs))));
    await expect(WitnessLog.open(dir2)).rejects.toMatchObject({ code: 'VERIFICATION_FAILED', details: { line: 2 } });
  });

  it('bkv witness start refuses such a directory with exit code 8 and says why', async () => {
    const dir = await witnessDir();
    const ev = clone(d.evidence);
    ev.keyEndorsements = ev.keyEndorsements.slice(1);
    await editLine(dir, 1, (j) => void (j.ev = encodeBase64(encodeEvidence(ev))));
    const err: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((c: string | Uint8Array) => (err.push(String(c)), true)) as typeof process.stderr.write;
    let code: number;
    try {
      code = await main(['node', 'bkv', 'witness', 'start', '--dir', dir, '--port', '0']);
    } finally {
      process.stderr.write = orig;
    }
    expect(code).toBe(8);
    expect(err.join('')).toMatch(/bkv: error: witness.log line 1 is corrupt: the deployment evidence logged with test.fleet epoch 1 no longer verifies \(key-endorsements\)/);
  });
});
