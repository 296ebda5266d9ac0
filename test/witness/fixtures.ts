import { mkdtemp, rm, copyFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { WitnessLog, operatorKeyFromSeed, makeDemoFleet, type OperatorKey } from '../../src/witness/index.js';
import { encodeBase64, encodeHex, artifactDigest } from '../../src/client/fleet/index.js';
import { submissionMessage } from '../../src/witness/protocol.js';

export const tempDirs: string[] = [];

export async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'bkv-witness-test-'));
  tempDirs.push(d);
  return d;
}

export async function cleanup(): Promise<void> {
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
}

export function newOperator(): OperatorKey {
  return operatorKeyFromSeed(new Uint8Array(randomBytes(32)));
}

export async function openLog(dir?: string, operator?: OperatorKey): Promise<{ log: WitnessLog; dir: string; operator: OperatorKey }> {
  const d = dir ?? (await tempDir());
  const op = operator ?? newOperator();
  const log = await WitnessLog.open(d, { addOperatorKeys: [encodeBase64(op.publicKey)] });
  return { log, dir: d, operator: op };
}

/** Copies a witness identity (key and config) into a new directory: a second, forked log. */
export async function forkIdentity(dir: string): Promise<string> {
  const d = await tempDir();
  await mkdir(d, { recursive: true });
  await copyFile(join(dir, 'witness.key'), join(d, 'witness.key'));
  await copyFile(join(dir, 'config.json'), join(d, 'config.json'));
  return d;
}

export function submission(namespace: string, epoch: number, artifact: Uint8Array, op: OperatorKey) {
  const digest = encodeHex(artifactDigest(artifact));
  return {
    artifact: encodeBase64(artifact),
    epoch,
    digest,
    operatorKey: encodeBase64(op.publicKey),
    signature: encodeBase64(op.sign(submissionMessage(namespace, epoch, digest))),
  };
}

/** Submits and counter-signs one epoch directly on the log. */
export async function publish(log: WitnessLog, op: OperatorKey, namespace: string, epoch: number, fleetId = `fleet-${epoch}`) {
  const fleet = makeDemoFleet(namespace, fleetId);
  const rec = await log.submit(namespace, submission(namespace, epoch, fleet.bytes, op));
  const { counterSignatureMessage, decodeBase64 } = await import('../../src/client/fleet/index.js');
  const cs = fleet.counterSign(counterSignatureMessage(decodeBase64(rec.witnessSignature, 'sig', 64)));
  await log.addCounterSignature(namespace, epoch, encodeBase64(cs));
  return { fleet, rec };
}
