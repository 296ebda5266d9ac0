import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BkvError } from '../../src/shared/errors.js';
import {
  MemoryCheckpointStore,
  resolveFleetKeys,
  verifyValidationBundle,
  parseVerifierKey,
  encodeBase64,
  decodeBase64,
  counterSignatureMessage,
  artifactDigest,
  encodeHex,
  checkpointKey,
  type ValidationBundle,
  type FetchBundle,
} from '../../src/client/fleet/index.js';
import { buildValidationBundle, localReader, makeDemoFleet } from '../../src/witness/index.js';
import { cleanup, forkIdentity, openLog, publish } from '../witness/fixtures.js';
import { ed25519 } from '@noble/curves/ed25519.js';

afterAll(cleanup);

const NS = 'acme.backups';

async function setup(epochs = 2) {
  const { log, operator, dir } = await openLog();
  for (let e = 1; e <= epochs; e++) await publish(log, operator, NS, e);
  const witnessKey = log.keyInfo().verifierKey;
  return { log, operator, dir, witnessKey, reader: localReader(log) };
}

function expectRefused(f: () => unknown, check: string): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    expect((e as BkvError).code).toBe('VERIFICATION_FAILED');
    expect((e as BkvError).details.check).toBe(check);
    return;
  }
  throw new Error(`expected the ${check} check to fail`);
}

describe('validation bundles', () => {
  it('a genuine bundle verifies and yields the artifact keys', async () => {
    const { log, reader, witnessKey } = await setup();
    const b = await buildValidationBundle(reader, NS);
    const v = verifyValidationBundle(b, { witnesses: [parseVerifierKey(witnessKey)], namespace: NS, now: Date.now() });
    expect(v.epoch).toBe(2);
    expect(v.keys.signingPublicKey.length).toBe(32);
    await log.close();
  });

  it('attack: a forged witness signature is refused', async () => {
    const { log, reader, witnessKey } = await setup(1);
    const b = await buildValidationBundle(reader, NS);
    const sig = decodeBase64(b.witnessSignature, 's', 64);
    sig[5]! ^= 1;
    const forged = { ...b, witnessSignature: encodeBase64(sig) };
    expectRefused(() => verifyValidationBundle(forged, { witnesses: [parseVerifierKey(witnessKey)], namespace: NS }), 'witness-signature');
    // A statement signed by an impostor witness key with the same name is refused too.
    const impostorSeed = new Uint8Array(32).fill(3);
    const st = decodeBase64(b.statement, 'st');
    const impostor = { ...b, witnessSignature: encodeBase64(ed25519.sign(st, impostorSeed)) };
    expectRefused(() => verifyValidationBundle(impostor, { witnesses: [parseVerifierKey(witnessKey)], namespace: NS }), 'witness-signature');
    await log.close();
  });

  it('attack: a counter-signature by the wrong key (or over other bytes) is refused', async () => {
    const { log, reader, witnessKey } = await setup(1);
    const b = await buildValidationBundle(reader, NS);
    const other = makeDemoFleet(NS, 'other');
    const wrong = other.counterSign(counterSignatureMessage(decodeBase64(b.witnessSignature, 's', 64)));
    expectRefused(
      () => verifyValidationBundle({ ...b, counterSignature: encodeBase64(wrong) }, { witnesses: [parseVerifierKey(witnessKey)], namespace: NS }),
      'counter-signature',
    );
    // and the witness refuses to store it
    await expect(log.addCounterSignature(NS, 1, encodeBase64(wrong))).rejects.toMatchObject({ code: 'VERIFICATION_FAILED' });
    await log.close();
  });

  it('attack: an artifact that does not match its digest is refused', async () => {
    const { log, reader, witnessKey } = await setup(1);
    const b = await buildValidationBundle(reader, NS);
    const evil = makeDemoFleet(NS, 'evil');
    expectRefused(
      () => verifyValidationBundle({ ...b, artifact: encodeBase64(evil.bytes) }, { witnesses: [parseVerifierKey(witnessKey)], namespace: NS }),
      'digest',
    );
    // matching digest field but not the signed statement
    expectRefused(
      () =>
        verifyValidationBundle(
          { ...b, artifact: encodeBase64(evil.bytes), digest: encodeHex(artifactDigest(evil.bytes)) },
          { witnesses: [parseVerifierKey(witnessKey)], namespace: NS },
        ),
      'digest',
    );
    await log.close();
  });

  it('attack: an unsigned field altered beside the signed statement (digest, epoch, namespace, leaf index) is refused', async () => {
    const { log, reader, witnessKey } = await setup(2);
    const b = await buildValidationBundle(reader, NS, { epoch: 1 });
    const opts = { witnesses: [parseVerifierKey(witnessKey)], namespace: NS };
    expectRefused(() => verifyValidationBundle({ ...b, digest: encodeHex(artifactDigest(makeDemoFleet(NS, 'evil').bytes)) }, opts), 'digest');
    expectRefused(() => verifyValidationBundle({ ...b, epoch: 2 }, opts), 'statement');
    expectRefused(() => verifyValidationBundle({ ...b, namespace: 'evil.ns' }, { ...opts, namespace: 'evil.ns' }), 'statement');
    expectRefused(() => verifyValidationBundle({ ...b, leafIndex: 1 }, opts), 'inclusion');
    expect(verifyValidationBundle(b, opts).epoch).toBe(1);
    await log.close();
  });

  it('attack: a replayed older epoch is refused once a newer one was accepted', async () => {
    const { log, reader, witnessKey } = await setup(2);
    const store = new MemoryCheckpointStore();
    const cfg = { mode: 'over-the-air' as const, namespace: NS, witnesses: [witnessKey], store };
    const fetchLatest: FetchBundle = (req) => buildValidationBundle(reader, NS, { knownTreeSize: req.knownTreeSize });
    const fetchOld: FetchBundle = (req) => buildValidationBundle(reader, NS, { epoch: 1, knownTreeSize: req.knownTreeSize });
    expect((await resolveFleetKeys(cfg, fetchLatest)).epoch).toBe(2);
    await expect(resolveFleetKeys(cfg, fetchOld)).rejects.toMatchObject({ code: 'VERIFICATION_FAILED', details: { check: 'rollback' } });
    await log.close();
  });

  it('attack: a split view (two trees under one witness key) is detected by a client that sees both', async () => {
    const { log, operator, dir, witnessKey } = await setup(2);
    const forkDir = await forkIdentity(dir);
    const { log: fork } = await openLog(forkDir, operator);
    await publish(fork, operator, NS, 1, 'shadow-fleet');
    await publish(fork, operator, NS, 2, 'shadow-fleet-2');
    await publish(fork, operator, NS, 3, 'shadow-fleet-3');
    expect(fork.keyInfo().verifierKey).toBe(witnessKey);
    const store = new MemoryCheckpointStore();
    const cfg = { mode: 'over-the-air' as const, namespace: NS, witnesses: [witnessKey], store };
    await resolveFleetKeys(cfg, (req) => buildValidationBundle(localReader(log), NS, { knownTreeSize: req.knownTreeSize }));
    const err = await resolveFleetKeys(cfg, (req) =>
      buildValidationBundle(localReader(fork), NS, { knownTreeSize: req.knownTreeSize }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BkvError);
    expect((err as BkvError).details.check).toBe('consistency');
    expect((err as BkvError).message).toMatch(/split view/);
    // The store still holds the first view.
    expect(await store.get(checkpointKey(log.config.origin))).toBe(log.checkpoint().note);
    await log.close();
    await fork.close();
  });

  it('a client moving forward on an honest log accepts consistency proofs', async () => {
    const { log, operator, reader, witnessKey } = await setup(1);
    const store = new MemoryCheckpointStore();
    const cfg = { mode: 'over-the-air' as const, namespace: NS, witnesses: [witnessKey], store };
    const fetch: FetchBundle = (req) => buildValidationBundle(reader, NS, { knownTreeSize: req.knownTreeSize });
    expect((await resolveFleetKeys(cfg, fetch)).epoch).toBe(1);
    await publish(log, operator, NS, 2);
    await publish(log, operator, 'other.ns', 1);
    expect((await resolveFleetKeys(cfg, fetch)).epoch).toBe(2);
    // A bundle without the consistency proof the client needs is refused.
    await publish(log, operator, NS, 3);
    await expect(resolveFleetKeys(cfg, () => buildValidationBundle(reader, NS))).rejects.toMatchObject({
      details: { check: 'consistency' },
    });
    await log.close();
  });

  it('pinned mode returns the configured keys', async () => {
    const k = encodeBase64(new Uint8Array(32).fill(4));
    const r = await resolveFleetKeys({ mode: 'pinned', namespace: NS, keys: { opaqueServerPublicKey: k, encryptionPublicKey: k, signingPublicKey: k } });
    expect(r.mode).toBe('pinned');
    expect(r.encryptionPublicKey).toEqual(new Uint8Array(32).fill(4));
  });

  it('refuses an expired artifact and an unpinned witness', async () => {
    const { log, reader, witnessKey } = await setup(1);
    const b = await buildValidationBundle(reader, NS);
    expectRefused(() => verifyValidationBundle(b, { witnesses: [parseVerifierKey(witnessKey)], namespace: NS, now: Date.parse('2040-01-01T00:00:00Z') }), 'validity');
    const { log: other } = await openLog();
    expectRefused(() => verifyValidationBundle(b, { witnesses: [parseVerifierKey(other.keyInfo().verifierKey)], namespace: NS }), 'witness-signature');
    await log.close();
    await other.close();
  });

  it('fuzz: mutated bundles never crash and never verify', async () => {
    const { log, reader, witnessKey } = await setup(1);
    const b = await buildValidationBundle(reader, NS);
    const text = JSON.stringify(b);
    const w = [parseVerifierKey(witnessKey)];
    fc.assert(
      fc.property(fc.nat(text.length - 1), fc.string({ minLength: 1, maxLength: 3 }), (at, ins) => {
        const mutated = text.slice(0, at) + ins + text.slice(at + 1);
        if (mutated === text) return;
        try {
          const v = verifyValidationBundle(mutated, { witnesses: w, namespace: NS });
          // Only semantically identical JSON may pass (e.g. a changed insignificant character).
          expect(JSON.parse(mutated)).toEqual(JSON.parse(text));
          expect(v.epoch).toBe(1);
        } catch (e) {
          expect(e).toBeInstanceOf(BkvError);
        }
      }),
      { numRuns: 600 },
    );
    const proof = (b as ValidationBundle).inclusionProof;
    expect(Array.isArray(proof)).toBe(true);
    await log.close();
  });
});
