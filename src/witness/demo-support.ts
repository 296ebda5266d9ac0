/**
 * For `npm start`: a witness on loopback in a temporary directory, an operator publishing two
 * fleet epochs (the second rotates the encryption key), the fleet counter-signing, a client
 * resolving fleet keys over the air, and the audit. Returns printable lines.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from 'node:crypto';
import { makeFleetArtifact, encodeFleetArtifact, type FleetArtifact } from '../shared/fleet-formats/artifact.js';
import { encodeBase64, encodeHex } from '../shared/fleet-formats/encoding.js';
import { resolveFleetKeys } from '../client/fleet/resolve.js';
import { MemoryCheckpointStore } from '../client/fleet/store.js';
import { auditNamespace, formatAudit } from './audit.js';
import { WitnessClient, publishEpoch } from './client.js';
import { operatorKeyFromSeed } from './keys.js';
import { startWitness } from './server.js';

export interface DemoFleet {
  artifact: FleetArtifact;
  bytes: Uint8Array;
  /** the fleet signing key's seed — in production it never leaves the vault members */
  signingSeed: Uint8Array;
  counterSign(message: Uint8Array): Uint8Array;
}

/** A throwaway fleet identity (keys drawn here; the real ones are made inside the members). */
export function makeDemoFleet(namespace: string, fleetId: string, opts: { measurement?: string; members?: number } = {}): DemoFleet {
  const signingSeed = new Uint8Array(randomBytes(32));
  const n = opts.members ?? 3;
  const artifact = makeFleetArtifact({
    namespace,
    fleetId,
    keys: {
      opaqueServerPublicKey: new Uint8Array(randomBytes(32)),
      encryptionPublicKey: x25519.getPublicKey(new Uint8Array(randomBytes(32))),
      signingPublicKey: ed25519.getPublicKey(signingSeed),
    },
    members: Array.from({ length: n }, (_, i) => ({
      id: `member-${i + 1}`,
      identityKey: ed25519.getPublicKey(new Uint8Array(randomBytes(32))),
      site: `site-${String.fromCharCode(97 + i)}`,
    })),
    measurement: opts.measurement ?? encodeHex(new Uint8Array(randomBytes(32))),
    notBefore: '2026-01-01T00:00:00Z',
    notAfter: '2036-01-01T00:00:00Z',
  });
  return {
    artifact,
    bytes: encodeFleetArtifact(artifact),
    signingSeed,
    counterSign: (m) => ed25519.sign(m, signingSeed),
  };
}

export async function runWitnessDemo(): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bkv-witness-demo-'));
  const operatorSeed = new Uint8Array(randomBytes(32));
  const operator = operatorKeyFromSeed(operatorSeed);
  const w = await startWitness(dir, { addOperatorKeys: [encodeBase64(operator.publicKey)] });
  const lines: string[] = [];
  try {
    const client = new WitnessClient(w.url);
    const info = await client.keyInfo();
    lines.push(`witness listening on ${w.url}`, `  pinned witness key: ${info.verifierKey}`);
    const ns = 'demo.fleet';
    const fleet1 = makeDemoFleet(ns, 'fleet-2026a');
    const r1 = await publishEpoch(client, { namespace: ns, artifact: fleet1.bytes, operator, counterSign: fleet1.counterSign });
    lines.push(`operator published epoch ${r1.epoch} (digest ${r1.digest.slice(0, 16)}…), fleet counter-signed`);
    const fleet2 = makeDemoFleet(ns, 'fleet-2026b', { measurement: fleet1.artifact.measurement });
    const r2 = await publishEpoch(client, { namespace: ns, artifact: fleet2.bytes, operator, counterSign: fleet2.counterSign });
    lines.push(`operator published epoch ${r2.epoch} (new fleet), fleet counter-signed`);
    const store = new MemoryCheckpointStore();
    const keys = await resolveFleetKeys(
      { mode: 'over-the-air', namespace: ns, witnesses: [info.verifierKey], store },
      (req) => client.bundle(req.namespace, { knownTreeSize: req.knownTreeSize }) as never,
    );
    lines.push(
      `client resolved fleet keys over the air: epoch ${keys.epoch}, encryption key ${encodeBase64(keys.encryptionPublicKey).slice(0, 16)}…`,
    );
    lines.push('', `$ bkv audit namespace ${ns} --witness ${w.url} --witness-key ${info.verifierKey}`);
    lines.push(...formatAudit(await auditNamespace(client, ns, { witnessKey: info.verifierKey })));
  } finally {
    await w.close();
    await rm(dir, { recursive: true, force: true });
  }
  return lines;
}
