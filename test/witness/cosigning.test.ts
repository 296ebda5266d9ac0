import { afterAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  checkCosignatures,
  cosignatureLine,
  cosignerKeyId,
  formatCosignerVerifierKey,
  parseCosignerVerifierKey,
  parseNote,
} from '../../src/client/fleet/index.js';
import { BkvError } from '../../src/shared/errors.js';
import { WitnessClient, WitnessLog, makeDemoFleet, publishEpoch, startWitness, originHash, type CosignerStatus } from '../../src/witness/index.js';
import { encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { cleanup, newOperator, tempDir } from './fixtures.js';

afterAll(cleanup);
const NS = 'acme.backups';

/** A fake cosigner on 127.0.0.1 that answers every add-checkpoint with `answer(body)`. */
async function fakeCosigner(answer: (body: string) => { status: number; type?: string; body: string }): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const a = answer(body);
      res.writeHead(a.status, { 'content-type': a.type ?? 'text/plain' });
      res.end(a.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}`, server };
}

describe('the log gathers cosignatures', () => {
  it('serves its checkpoint with both cosigners\' lines; keeps them across a restart and re-gathers from the cosigners\' sizes', async () => {
    const operator = newOperator();
    const logDir = await tempDir();
    const probe = await WitnessLog.open(logDir, { addOperatorKeys: [encodeBase64(operator.publicKey)] });
    const logKey = probe.keyInfo().verifierKey;
    await probe.close();
    const cos = await Promise.all([1, 2].map(async () => startWitness(await tempDir(), { addCosignLogs: [logKey] })));
    const verifiers = cos.map((c) => parseCosignerVerifierKey(c.log.keyInfo().cosignerVerifierKey));
    let log = await startWitness(logDir, { addCosigners: cos.map((c) => ({ url: c.url, verifierKey: c.log.keyInfo().cosignerVerifierKey })) });
    try {
      const f = makeDemoFleet(NS, 'f1');
      await publishEpoch(new WitnessClient(log.url), { namespace: NS, artifact: f.bytes, operator, counterSign: f.counterSign });
      const note = await new WitnessClient(log.url).checkpoint();
      expect(checkCosignatures(note, verifiers).valid.length).toBe(2);
      // the namespace audit checks the quorum: met with 2 of 2, failed with one listed witness missing
      const { auditNamespace } = await import('../../src/witness/index.js');
      const { formatWitnessPolicy, parseWitnessPolicy } = await import('../../src/client/fleet/index.js');
      const witnesses = cos.map((c, i) => ({ label: `c${i + 1}`, verifierKey: c.log.keyInfo().cosignerVerifierKey }));
      const extra = formatCosignerVerifierKey('absent.example/w', ed25519.getPublicKey(new Uint8Array(32).fill(8)));
      const met = await auditNamespace(new WitnessClient(log.url), NS, { policy: parseWitnessPolicy(formatWitnessPolicy({ witnesses, quorum: 2 })) });
      expect(met.ok).toBe(true);
      expect(met.cosignatures).toMatchObject({ ok: true, valid: ['c1', 'c2'], missing: [] });
      const notMet = await auditNamespace(new WitnessClient(log.url), NS, {
        policy: parseWitnessPolicy(formatWitnessPolicy({ witnesses: [...witnesses, { label: 'absent', verifierKey: extra }], quorum: 3 })),
      });
      expect(notMet.ok).toBe(false);
      expect(notMet.cosignatures).toMatchObject({ ok: false, valid: ['c1', 'c2'], missing: ['absent'] });
      // the bundle carries the cosigned note
      const b = (await new WitnessClient(log.url).bundle(NS)) as { checkpoint: string };
      expect(b.checkpoint).toBe(note);
      // each cosigner serves what it cosigned (monitoring)
      const mon = await (await fetch(`${cos[0]!.url}/${originHash(parseNote(note).text.split('\n')[0]!)}/checkpoint`)).text();
      expect(parseNote(mon).text).toBe(parseNote(note).text);
      await log.close();
      log = await startWitness(logDir, {});
      // restored from the checkpoint file before any cosigner answered
      expect(checkCosignatures(log.log.checkpoint().note, verifiers).valid.length).toBe(2);
      await log.log.refreshCosignatures(); // a new start knows no sizes: 409 tells it, then it re-cosigns
      const st = log.log.collector!.status();
      expect(st.map((s) => [s.lastStatus, s.cosignedSize])).toEqual([[200, 1], [200, 1]]);
    } finally {
      await log.close();
      for (const c of cos) await c.close();
    }
  });

  it('attack: a cosigner answering with another key\'s cosignature, or claiming a larger tree, adds nothing and is reported', async () => {
    const operator = newOperator();
    const seed = new Uint8Array(32).fill(3);
    const pub = ed25519.getPublicKey(seed);
    const name = 'evil.example/w';
    const real = { name, publicKey: pub, keyId: cosignerKeyId(name, pub), sign: (m: Uint8Array) => ed25519.sign(m, seed) };
    const other = new Uint8Array(32).fill(4);
    const wrongKey = await fakeCosigner((b) => ({
      status: 200,
      body: cosignatureLine(b.slice(b.indexOf('\n\n') + 2).split('\n\n')[0]! + '\n', 1_700_000_000, { ...real, sign: (m) => ed25519.sign(m, other) }),
    }));
    const rollback = await fakeCosigner(() => ({ status: 409, type: 'text/x.tlog.size', body: '1000\n' }));
    const errors: CosignerStatus[] = [];
    const dir = await tempDir();
    const log = await startWitness(dir, {
      addOperatorKeys: [encodeBase64(operator.publicKey)],
      addCosigners: [
        { url: wrongKey.url, verifierKey: formatCosignerVerifierKey(name, pub) },
        { url: rollback.url, verifierKey: formatCosignerVerifierKey('other.example/w', ed25519.getPublicKey(other)) },
      ],
      onCosignerError: (s) => errors.push(s),
    });
    try {
      const f = makeDemoFleet(NS, 'f1');
      await publishEpoch(new WitnessClient(log.url), { namespace: NS, artifact: f.bytes, operator });
      const note = log.log.checkpoint().note;
      expect(parseNote(note).signatures.length).toBe(1); // only the log's own line
      const st = log.log.collector!.status();
      expect(st[0]!.lastError).toMatch(/not a valid cosignature/);
      expect(st[1]!.lastError).toMatch(/larger than this log's 1: the log was rolled back or forked/);
      expect(errors.length).toBeGreaterThanOrEqual(2);
    } finally {
      await log.close();
      wrongKey.server.close();
      rollback.server.close();
    }
  });

  it('attack: a corrupted cosigner journal stops the start (no silent reset to an empty view); a torn last record is cut off', async () => {
    const dir = await tempDir();
    const w = await startWitness(dir, {});
    await w.close();
    const path = join(dir, 'cosigned', 'journal');
    const empty = await readFile(path);
    // A torn append (a crash mid-write, never answered): cut off at the next start, nothing else lost.
    await writeFile(path, Buffer.concat([empty, Buffer.from([0, 0, 0, 50, 1, 2, 3])]));
    const again = await startWitness(dir, {});
    await again.close();
    expect((await readFile(path)).equals(empty)).toBe(true);
    // A complete record whose check fails, followed by more data: damage, not a torn append.
    const bad = Buffer.alloc(36 + 5);
    bad.writeUInt32BE(5, 0);
    await writeFile(path, Buffer.concat([empty, bad, bad]));
    const err = await startWitness(dir, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BkvError);
    expect((err as BkvError).message).toMatch(/cosigner state .* is corrupt/);
    // Not a journal at all.
    await writeFile(path, 'garbage\n');
    await expect(startWitness(dir, {})).rejects.toThrow(/cosigner state .* is corrupt/);
  });

  it('an offline cosigner is asked again once it is back, without a new checkpoint', async () => {
    const operator = newOperator();
    const logDir = await tempDir();
    const probe = await WitnessLog.open(logDir, { addOperatorKeys: [encodeBase64(operator.publicKey)] });
    const logKey = probe.keyInfo().verifierKey;
    await probe.close();
    const cDir = await tempDir();
    let c = await startWitness(cDir, { addCosignLogs: [logKey] });
    const port = Number(new URL(c.url).port);
    const verifierKey = c.log.keyInfo().cosignerVerifierKey;
    await c.close(); // offline
    const log = await startWitness(logDir, { addCosigners: [{ url: c.url, verifierKey }], cosignRetryMs: 100 });
    try {
      const f = makeDemoFleet(NS, 'f1');
      await publishEpoch(new WitnessClient(log.url), { namespace: NS, artifact: f.bytes, operator, counterSign: f.counterSign });
      expect(checkCosignatures(log.log.checkpoint().note, [parseCosignerVerifierKey(verifierKey)]).valid.length).toBe(0);
      c = await startWitness(cDir, { port });
      let valid = 0;
      for (let i = 0; i < 100 && valid === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        valid = checkCosignatures(log.log.checkpoint().note, [parseCosignerVerifierKey(verifierKey)]).valid.length;
      }
      expect(valid).toBe(1);
    } finally {
      await log.close();
      await c.close();
    }
  });

  it('refuses bad cosigner configuration with a usage error', async () => {
    const dir = await tempDir();
    await expect(startWitness(dir, { addCosigners: [{ url: 'ftp://x', verifierKey: 'k' }] })).rejects.toMatchObject({ code: 'USAGE' });
    await expect(startWitness(dir, { addCosignLogs: ['not-a-key'] })).rejects.toMatchObject({ code: 'USAGE' });
  });
});
