import { afterAll, describe, expect, it } from 'vitest';
import { readFile, writeFile, truncate, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../../src/shared/errors.js';
import { encodeBase64, parseVerifierKey, verifyCheckpoint } from '../../src/client/fleet/index.js';
import { leafHash, verifyInclusion, decodeEntryBundle } from '../../src/shared/merkle/index.js';
import {
  WitnessClient,
  WitnessLog,
  auditNamespace,
  makeDemoFleet,
  publishEpoch,
  startWitness,
  FileCheckpointStore,
  parseTileRequest,
} from '../../src/witness/index.js';
import { cleanup, newOperator, openLog, publish, submission, tempDir } from './fixtures.js';

afterAll(cleanup);
const NS = 'acme.backups';

describe('witness log', () => {
  it('attack: unauthenticated or badly signed submissions are rejected', async () => {
    const { log, operator } = await openLog();
    const fleet = makeDemoFleet(NS, 'f1');
    const stranger = newOperator();
    await expect(log.submit(NS, submission(NS, 1, fleet.bytes, stranger))).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    const forged = { ...submission(NS, 1, fleet.bytes, operator), epoch: 2 };
    await expect(log.submit(NS, forged)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    expect(log.namespaces()).toEqual([]);
    await log.close();
  });

  it('attack: skipped epoch, repeated epoch and repeated digest are rejected', async () => {
    const { log, operator } = await openLog();
    const f1 = makeDemoFleet(NS, 'f1');
    await expect(log.submit(NS, submission(NS, 2, f1.bytes, operator))).rejects.toMatchObject({ code: 'CONFLICT' });
    await log.submit(NS, submission(NS, 1, f1.bytes, operator));
    const f2 = makeDemoFleet(NS, 'f2');
    await expect(log.submit(NS, submission(NS, 1, f2.bytes, operator))).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(log.submit(NS, submission(NS, 3, f2.bytes, operator))).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(log.submit(NS, submission(NS, 2, f1.bytes, operator))).rejects.toMatchObject({ code: 'CONFLICT' });
    await log.submit(NS, submission(NS, 2, f2.bytes, operator));
    // another namespace starts at 1 independently
    await log.submit('other', submission('other', 1, makeDemoFleet('other', 'o').bytes, operator));
    expect(log.latestEpoch(NS)).toBe(2);
    await log.close();
  });

  it('an artifact that does not match the digest is rejected', async () => {
    const { log, operator } = await openLog();
    const f1 = makeDemoFleet(NS, 'f1');
    const s = submission(NS, 1, f1.bytes, operator);
    await expect(log.submit(NS, { ...s, artifact: encodeBase64(makeDemoFleet(NS, 'x').bytes) })).rejects.toMatchObject({
      code: 'VERIFICATION_FAILED',
    });
    await log.close();
  });

  it('concurrent submissions are batched, durable, and survive a restart', async () => {
    const { log, operator, dir } = await openLog();
    const fleets = Array.from({ length: 40 }, (_, i) => makeDemoFleet(`ns-${i}`, 'f'));
    await Promise.all(fleets.map((f, i) => log.submit(`ns-${i}`, submission(`ns-${i}`, 1, f.bytes, operator))));
    await publish(log, operator, NS, 1);
    const before = log.checkpoint();
    const rec = log.epochRecord(NS, 1);
    await log.close();
    const again = await WitnessLog.open(dir);
    expect(again.checkpoint().size).toBe(41);
    expect(again.checkpoint().rootHash).toEqual(before.rootHash);
    expect(again.epochRecord(NS, 1)).toEqual(rec);
    expect(again.namespaces().length).toBe(41);
    await again.close();
  });

  it('attack: a truncated log is refused at start; a torn final line is dropped', async () => {
    const { log, operator, dir } = await openLog();
    await publish(log, operator, NS, 1);
    await publish(log, operator, NS, 2);
    await log.close();
    const path = join(dir, 'witness.log');
    const data = await readFile(path, 'utf8');
    // torn tail (crash mid-write, never acknowledged): tolerated
    await writeFile(path, data + '{"t":"s","st":"YWJj');
    const reopened = await WitnessLog.open(dir);
    expect(reopened.checkpoint().size).toBe(2);
    await reopened.close();
    expect((await stat(path)).size).toBe(Buffer.byteLength(data));
    // remove the last statement and its counter-signature: the signed checkpoint no longer matches
    const lines = data.trimEnd().split('\n');
    await writeFile(path, lines.slice(0, 2).join('\n') + '\n');
    await expect(WitnessLog.open(dir)).rejects.toMatchObject({ code: 'VERIFICATION_FAILED' });
    await truncate(path, 0);
    await expect(WitnessLog.open(dir)).rejects.toThrow(/truncated or rewritten/);
  });

  it('attack: a rewritten log line is refused at start', async () => {
    const { log, operator, dir } = await openLog();
    await publish(log, operator, NS, 1);
    await log.close();
    const path = join(dir, 'witness.log');
    const data = await readFile(path, 'utf8');
    const j = JSON.parse(data.split('\n')[0]!);
    j.art = encodeBase64(makeDemoFleet(NS, 'evil').bytes);
    await writeFile(path, JSON.stringify(j) + '\n' + data.split('\n').slice(1).join('\n'));
    await expect(WitnessLog.open(dir)).rejects.toBeInstanceOf(BkvError);
  });
});

describe('witness HTTP API', () => {
  it('serves keys, statements, artifacts, checkpoints, tiles and proofs; operator flow; audit', async () => {
    const dir = await tempDir();
    const operator = newOperator();
    const w = await startWitness(dir, { addOperatorKeys: [encodeBase64(operator.publicKey)] });
    try {
      const c = new WitnessClient(w.url);
      const info = await c.keyInfo();
      const fleets = [makeDemoFleet(NS, 'f1'), makeDemoFleet(NS, 'f2')];
      for (const f of fleets) await publishEpoch(c, { namespace: NS, artifact: f.bytes, operator, counterSign: f.counterSign });
      // unauthenticated over HTTP
      await expect(c.submit(NS, 3, makeDemoFleet(NS, 'f3').bytes, newOperator())).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
      const note = await c.checkpoint();
      const cp = verifyCheckpoint(note, parseVerifierKey(info.verifierKey));
      expect(cp.size).toBe(2);
      const rec = await c.epochRecord(NS, 2);
      expect(rec.counterSignature).toBeDefined();
      expect(await c.artifact(NS, 1)).toEqual(fleets[0]!.bytes);
      const proof = await c.inclusionProof(rec.leafIndex, cp.size);
      verifyInclusion(rec.leafIndex, cp.size, leafHash(Buffer.from(rec.statement, 'base64')), proof, cp.rootHash);
      // tlog-tiles: partial level-0 tile and entry bundle
      const tile = new Uint8Array(await (await fetch(`${w.url}/tile/0/000.p/2`)).arrayBuffer());
      expect(tile.length).toBe(64);
      const entries = decodeEntryBundle(new Uint8Array(await (await fetch(`${w.url}/tile/entries/000.p/2`)).arrayBuffer()));
      expect(entries.map((e) => Buffer.from(e).toString('base64'))[1]).toBe(rec.statement);
      expect((await fetch(`${w.url}/tile/0/000`)).status).toBe(404);
      expect((await fetch(`${w.url}/v1/proof/inclusion?index=0&size=99`)).status).toBe(404);
      expect((await fetch(`${w.url}/v1/namespaces/${NS}/epochs/01`)).status).toBe(400);
      // audit with a persisted checkpoint store
      const store = new FileCheckpointStore(join(dir, 'auditor.json'));
      const r1 = await auditNamespace(c, NS, { store, witnessKey: info.verifierKey });
      expect(r1.ok).toBe(true);
      expect(r1.epochs.map((e) => e.epoch)).toEqual([1, 2]);
      const f3 = makeDemoFleet(NS, 'f3');
      await publishEpoch(c, { namespace: NS, artifact: f3.bytes, operator }); // not counter-signed
      const r2 = await auditNamespace(c, NS, { store });
      expect(r2.consistency).toMatchObject({ ok: true, from: 2, to: 3 });
      expect(r2.ok).toBe(false);
      expect(r2.epochs[2]!.checks['counter-signature'].ok).toBe(false);
    } finally {
      await w.close();
    }
  });

  it('parses tile paths strictly', () => {
    expect(parseTileRequest('0/x001/234')).toEqual({ level: 0, index: 1234, width: 256 });
    expect(parseTileRequest('entries/000.p/7')).toEqual({ level: 'entries', index: 0, width: 7 });
    expect(parseTileRequest('0/000.p/0')).toBeUndefined();
    expect(parseTileRequest('0/000.p/256')).toBeUndefined();
    expect(parseTileRequest('00/000')).toBeUndefined();
    expect(parseTileRequest('0/1')).toBeUndefined();
  });
});
