import { afterAll, describe, expect, it } from 'vitest';
import { parseJournal } from '../../src/witness/cosigner-journal.js';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  addSignatureLines,
  checkCosignatures,
  formatVerifierKey,
  noteSignerFromSeed,
  parseCosignerVerifierKey,
  parseNote,
  signCheckpoint,
  verifyCheckpoint,
} from '../../src/client/fleet/index.js';
import { MerkleTree } from '../../src/shared/merkle/index.js';
import { parseAddCheckpointBody, startWitness, AddCheckpointError } from '../../src/witness/index.js';
import { cleanup, tempDir } from './fixtures.js';

afterAll(cleanup);

const ORIGIN = 'example.org/log';
const logKey = noteSignerFromSeed(ORIGIN, new Uint8Array(32).fill(9));
const impostor = noteSignerFromSeed(ORIGIN, new Uint8Array(32).fill(10)); // same name, other key
const tree = new MerkleTree();
for (let i = 0; i < 64; i++) tree.appendEntry(new Uint8Array([i]));
const fork = new MerkleTree(); // the same log key signing another history
for (let i = 0; i < 64; i++) fork.appendEntry(new Uint8Array([i === 7 ? 200 : i]));

const cpNote = (size: number, t = tree, signer = logKey) =>
  signCheckpoint({ origin: signer.name, size, rootHash: t.root(size), extensions: [] }, signer);
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const body = (old: number, note: string, proof: Uint8Array[] = []) => `old ${old}\n${proof.map((p) => b64(p) + '\n').join('')}\n${note}`;

async function post(url: string, b: string, contentType = 'text/plain') {
  const r = await fetch(`${url}/add-checkpoint`, { method: 'POST', body: b, headers: { 'content-type': contentType } });
  return { status: r.status, type: r.headers.get('content-type') ?? '', text: await r.text() };
}

describe('POST /add-checkpoint (C2SP tlog-witness)', () => {
  it('answers the spec status codes, cosigns, persists across a restart, serves the monitoring checkpoint', async () => {
    const dir = await tempDir();
    const other = noteSignerFromSeed('example.org/other', new Uint8Array(32).fill(11));
    const opts = { addCosignLogs: [formatVerifierKey(ORIGIN, logKey.publicKey), formatVerifierKey(other.name, other.publicKey)] };
    let w = await startWitness(dir, opts);
    try {
      const info = (await (await fetch(`${w.url}/v1/key`)).json()) as { cosignerVerifierKey: string };
      const cosigner = parseCosignerVerifierKey(info.cosignerVerifierKey);

      // 404: a log this witness was not told to watch
      const stranger = noteSignerFromSeed('example.org/stranger', new Uint8Array(32).fill(12));
      expect((await post(w.url, body(0, cpNote(5, tree, stranger)))).status).toBe(404);
      // 403: attack — the checkpoint is signed by another key under the log's name (ignored: no trusted signature)
      expect((await post(w.url, body(0, cpNote(5, tree, impostor)))).status).toBe(403);
      // 403: attack — a signature line with the log's name and key ID that does not verify
      const good = cpNote(5);
      const sigLine = good.split('\n').at(-2)!;
      const tampered = good.replace(sigLine, sigLine.slice(0, -6) + (sigLine.slice(-6, -5) === 'A' ? 'B' : 'A') + sigLine.slice(-5));
      expect((await post(w.url, body(0, tampered))).status).toBe(403);
      // 400: old larger than the checkpoint
      expect((await post(w.url, body(6, good))).status).toBe(400);

      // 200: first checkpoint, old 0, no proof; one cosignature/v1 line by the witness's cosigner key
      const r1 = await post(w.url, body(0, good));
      expect(r1.status).toBe(200);
      expect(r1.text).toMatch(/^— \S+ \S+\n$/);
      const cosigned5 = addSignatureLines(good, [r1.text]);
      expect(checkCosignatures(cosigned5, [cosigner]).valid.length).toBe(1);
      const ts = Number(Buffer.from(r1.text.trim().split(' ')[2]!, 'base64').readBigUInt64BE(4));
      expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(60);

      // 409: a stale old size; body is the latest size, text/x.tlog.size
      const r409 = await post(w.url, body(0, cpNote(9)));
      expect(r409).toMatchObject({ status: 409, text: '5\n' });
      expect(r409.type).toMatch(/^text\/x\.tlog\.size/);
      // 422: attack — a bad consistency proof
      const proof = tree.consistencyProof(5, 9);
      const bad = proof.map((p, i) => (i === 0 ? new Uint8Array(32) : p));
      const r422 = await post(w.url, body(5, cpNote(9), bad));
      expect(r422.status).toBe(422);
      expect(r422.text).toMatch(/does not verify/);
      // 200: a good proof
      expect((await post(w.url, body(5, cpNote(9), proof))).status).toBe(200);
      // 422: attack — the split view: another tree of size 9 under the same log key
      const split = await post(w.url, body(9, cpNote(9, fork)));
      expect(split.status).toBe(422);
      expect(split.text).toMatch(/split view/);
      // 422: attack — a fork that grows from the old size: not consistent with what was cosigned
      const r422b = await post(w.url, body(9, cpNote(12, fork), fork.consistencyProof(9, 12)));
      expect(r422b.status).toBe(422);
      // the refused, log-signed checkpoints are kept as evidence
      const refused = await readdir(join(dir, 'cosigned', 'refused'));
      expect(refused.length).toBeGreaterThanOrEqual(2);
      // 200: the same checkpoint again (same root) is cosigned again
      expect((await post(w.url, body(9, cpNote(9)))).status).toBe(200);

      // size 0 must have the empty root (another log)
      const zeroBad = signCheckpoint({ origin: other.name, size: 0, rootHash: new Uint8Array(32), extensions: [] }, other);
      expect((await post(w.url, body(0, zeroBad))).status).toBe(422);
      // old 0 with a non-empty proof
      const o3 = signCheckpoint({ origin: other.name, size: 3, rootHash: tree.root(3), extensions: [] }, other);
      expect((await post(w.url, body(0, o3, tree.consistencyProof(2, 3)))).status).toBe(422);

      // monitoring: the latest cosigned checkpoint of the log, by the hash of its origin
      const h = createHash('sha256').update(ORIGIN).digest('hex');
      const mon = await fetch(`${w.url}/${h}/checkpoint`);
      expect(mon.status).toBe(200);
      const monNote = await mon.text();
      expect(verifyCheckpoint(monNote, logKey).size).toBe(9);
      expect(checkCosignatures(monNote, [cosigner]).valid.length).toBe(1);
      expect((await fetch(`${w.url}/${'0'.repeat(64)}/checkpoint`)).status).toBe(404);

      // the state survives a restart: the witness still knows size 9
      await w.close();
      w = await startWitness(dir, {});
      expect(await post(w.url, body(0, cpNote(12)))).toMatchObject({ status: 409, text: '9\n' });
      expect((await post(w.url, body(9, cpNote(12), tree.consistencyProof(9, 12)))).status).toBe(200);
      const { notes } = parseJournal(await readFile(join(dir, 'cosigned', 'journal')), 'journal');
      // Only the cosigned log has records (both of the other log's requests were refused); the last is size 12.
      expect(new Set(notes.map((n) => parseNote(n).text.split('\n')[0])).size).toBe(1);
      expect(parseNote(notes.at(-1)!).text.split('\n')[1]).toBe('12');
      expect(h).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await w.close();
    }
  });

  it('serialises concurrent requests for one log: one wins, the rest get 409', async () => {
    const dir = await tempDir();
    const w = await startWitness(dir, { addCosignLogs: [formatVerifierKey(ORIGIN, logKey.publicKey)] });
    try {
      expect((await post(w.url, body(0, cpNote(10)))).status).toBe(200);
      // attack: racing requests from one old size to different new sizes (a rollback race, per the spec)
      const sizes = Array.from({ length: 12 }, (_, i) => 11 + i);
      const rs = await Promise.all(sizes.map((s) => post(w.url, body(10, cpNote(s), tree.consistencyProof(10, s)))));
      const ok = rs.filter((r) => r.status === 200);
      expect(ok.length).toBe(1);
      const winner = sizes[rs.findIndex((r) => r.status === 200)]!;
      for (const r of rs.filter((x) => x.status !== 200)) expect(r).toMatchObject({ status: 409, text: `${winner}\n` });
    } finally {
      await w.close();
    }
  });

  it('malformed bodies get 400 with a clear message; oversized bodies are refused', async () => {
    const dir = await tempDir();
    const w = await startWitness(dir, { addCosignLogs: [formatVerifierKey(ORIGIN, logKey.publicKey)] });
    try {
      const note = cpNote(5);
      const cases: [string, RegExp][] = [
        ['', /empty|old size line/],
        [`old 01\n\n${note}`, /old <size>/],
        [`old 0\n${note}`, /proof line|base64/],
        [`old 0\nnot-base64!\n\n${note}`, /proof line 1/],
        [`old 0\n${'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n'.repeat(64)}\n${note}`, /more than 63/],
        ['old 0\n\n', /no checkpoint/],
        ['old 0\n\nexample.org/log\n5\n', /malformed checkpoint/],
      ];
      for (const [b, re] of cases) {
        const r = await post(w.url, b);
        expect(r.status, b.slice(0, 40)).toBe(400);
        expect(r.text).toMatch(re);
      }
      // any content type is read as text (JSON included)
      expect((await post(w.url, body(0, note), 'application/json')).status).toBe(200);
      const huge = await post(w.url, `old 0\n\n${'x'.repeat(70 * 1024)}`);
      expect(huge.status).toBe(413);
      // unit: the parser names the problem
      expect(() => parseAddCheckpointBody('old x\n')).toThrow(AddCheckpointError);
    } finally {
      await w.close();
    }
  });
});
