import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  artifactDigest,
  encodeFleetArtifact,
  fleetPublicKeys,
  makeFleetArtifact,
  parseFleetArtifact,
} from '../shared/fleet-formats/artifact.js';
import { decodeBase64, encodeHex } from '../shared/fleet-formats/encoding.js';
import type { VaultCore } from '../trusted/core/vault-core.js';
import { WitnessClient } from '../witness/client.js';
import type { OperatorKey } from '../witness/keys.js';
import type { EpochRecord } from '../witness/protocol.js';
import { writeFileDurable } from '../node/fs-durable.js';
import { codeMeasurement } from './measurement.js';
import { equalBytes } from '../shared/bytes.js';

export interface PublicationOptions {
  witnessUrl: string;
  namespace: string;
  operator: OperatorKey;
  fleetId?: string;
  /** How long the published keys are valid (default one year). */
  validityDays?: number;
}

/** The artifact this vault publishes: made once, kept in `fleet-artifact.json`, never re-serialised. */
async function loadOrMakeArtifact(dir: string, core: VaultCore, opts: PublicationOptions): Promise<Uint8Array> {
  const path = join(dir, 'fleet-artifact.json');
  const own = core.publicKeys();
  if (existsSync(path)) {
    const bytes = new Uint8Array(await readFile(path));
    const a = parseFleetArtifact(bytes);
    const k = fleetPublicKeys(a);
    if (a.namespace === opts.namespace && equalBytes(k.encryptionPublicKey, own.encryptionPublicKey)) return bytes;
  }
  const now = Date.now();
  const iso = (t: number) => new Date(Math.floor(t / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  const bytes = encodeFleetArtifact(
    makeFleetArtifact({
      namespace: opts.namespace,
      fleetId: opts.fleetId ?? `vault-${encodeHex(own.signingPublicKey).slice(0, 12)}`,
      keys: own,
      // A single-member vault: its identity is the fleet signing key (a fleet lists each member).
      members: [{ id: 'member-1', identityKey: own.signingPublicKey, site: 'local' }],
      quorum: 1,
      measurement: await codeMeasurement(),
      notBefore: iso(now - 60_000),
      notAfter: iso(now + (opts.validityDays ?? 365) * 86_400_000),
    }),
  );
  await writeFileDurable(path, bytes, 0o644);
  return bytes;
}

/**
 * Publishes this vault's fleet keys as the next epoch of a namespace at the witness, has the core
 * counter-sign the witness statement, and uploads the counter-signature. Idempotent: a restart
 * finds its artifact already logged and only completes what is missing.
 */
export async function publishFleet(dir: string, core: VaultCore, opts: PublicationOptions): Promise<EpochRecord> {
  const artifact = await loadOrMakeArtifact(dir, core, opts);
  const digest = encodeHex(artifactDigest(artifact));
  const witness = new WitnessClient(opts.witnessUrl);
  const latest = await witness.latestEpochOrZero(opts.namespace);
  let record: EpochRecord | null = latest > 0 ? await witness.epochRecord(opts.namespace, latest) : null;
  if (!record || record.digest !== digest) record = await witness.submit(opts.namespace, latest + 1, artifact, opts.operator);
  if (record.counterSignature) return record;
  const counterSignature = core.counterSign({
    artifact,
    statement: decodeBase64(record.statement, 'statement'),
    witnessSignature: decodeBase64(record.witnessSignature, 'witnessSignature', 64),
  });
  return witness.uploadCounterSignature(opts.namespace, record.epoch, counterSignature);
}
