/**
 * The deployment ceremony (`bkv fleet deploy`, docs/attestation.md). Node only: it provisions the
 * software devices, lays the fleet out on disk (docs/formats/fleet-layout.md) and writes the
 * artifact and the evidence. Every secret is made inside a MemberCore and leaves it only to that
 * member's own key store (`member-<id>/`), or sealed to another member's attested X25519 key.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../shared/errors.js';
import { encodeFleetArtifact, makeFleetArtifact } from '../shared/fleet-formats/artifact.js';
import { decodeBase64, encodeBase64, encodeHex } from '../shared/fleet-formats/encoding.js';
import { systemEnv, type CoreEnv } from '../trusted/core/env.js';
import type { CounterSignRequest } from '../trusted/core/counter-sign.js';
import { toB64 } from '../shared/protocol/messages.js';
import { writeFileDurable } from '../node/fs-durable.js';
import type { MemberKeyStore } from '../trusted/attestation/backend.js';
import { parseDeviceCertificate, type AttestationRecord } from '../shared/attestation/format.js';
import {
  MemberCore,
  deliveryMessage,
  fleetKeysHash,
  type CeremonyContext,
  type FleetPublicKeySet,
} from '../trusted/attestation/member-core.js';
import { provisionDevice, readVendorPublic, softwareBackend, vendorInit, writeSoftHsmFile } from '../attestation/software-hsm.js';
import { EVIDENCE_FORMAT, encodeEvidence, type DeploymentEvidence } from '../shared/evidence/evidence.js';
import { encodeTranscript, type TranscriptStep } from '../shared/evidence/transcript.js';

export interface CeremonyOptions {
  dir: string;
  members: number;
  sites: string[];
  namespace: string;
  fleetId?: string;
  /** Vendor directory (`bkv hsm vendor-init`); default: a new vendor in `<dir>/vendor`. */
  vendorDir?: string;
  /** The code measurement the members attest (default: this checkout's build, codeMeasurement()). */
  measurement: string;
  validityDays?: number;
  /** Ports for fleet.json. */
  basePorts?: { raft?: number; api?: number; gateway?: number };
  /** Explicit ports per member (index i is member i+1), e.g. from `freePorts`; overrides basePorts. */
  ports?: { raft: number[]; api: number[]; gateway: number };
  host?: string;
  env?: CoreEnv;
  now?: number;
}

export interface CeremonyResult {
  dir: string;
  fleetId: string;
  artifact: Uint8Array;
  artifactPath: string;
  evidence: DeploymentEvidence;
  evidencePath: string;
  measurement: string;
  vendor: { name: string; publicKey: string; dir: string; created: boolean };
  /** Counter-signs a witness statement about this fleet with the fleet key, inside member 1's core. */
  counterSign(req: CounterSignRequest, trustedWitnesses: readonly string[]): Promise<Uint8Array>;
}

const SITE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const hex = (b: Uint8Array) => encodeHex(sha256(b));
const iso = (t: number) => new Date(Math.floor(t / 1000) * 1000).toISOString().replace('.000Z', 'Z');

/** The member's key store in the software backend: files in member-<id>/, mode 0600. */
function fileKeyStore(memberDir: string): MemberKeyStore {
  return { put: (name, bytes) => writeFileDurable(join(memberDir, name), bytes, 0o600) };
}

function sameKeys(a: FleetPublicKeySet, b: FleetPublicKeySet): boolean {
  return fleetKeysHash(a) === fleetKeysHash(b);
}

export async function runCeremony(opts: CeremonyOptions): Promise<CeremonyResult> {
  const n = opts.members;
  if (!Number.isInteger(n) || n < 1 || n > 9 || (n > 1 && n % 2 === 0) || n === 2) {
    throw new BkvError('USAGE', '--members must be odd: 1, 3, 5, 7 or 9');
  }
  if (opts.sites.length === 0 || opts.sites.some((s) => !SITE.test(s))) throw new BkvError('USAGE', '--sites must name sites of A-Z a-z 0-9 . _ : -');
  const env = opts.env ?? systemEnv;
  const now = opts.now ?? Date.now();
  const fleetId = opts.fleetId ?? `fleet-${encodeHex(env.random(4))}`;
  await mkdir(opts.dir, { recursive: true, mode: 0o700 });
  const existing = await readdir(opts.dir);
  if (existing.some((f) => f === 'fleet.json' || f.startsWith('member-'))) {
    throw new BkvError('CONFLICT', `${opts.dir} already holds a fleet; deploy a new fleet into a new directory`);
  }

  // The vendor root the devices chain to.
  let vendorDir = opts.vendorDir;
  let created = false;
  if (!vendorDir) {
    vendorDir = join(opts.dir, 'vendor');
    await vendorInit(vendorDir);
    created = true;
  }
  const vendor = await readVendorPublic(vendorDir);
  const ctx: CeremonyContext = {
    namespace: opts.namespace,
    fleetId,
    nonce: env.random(32),
    measurement: opts.measurement,
    vendorRoots: [decodeBase64(vendor.publicKey, 'vendor public key', 32)],
    now,
  };

  const steps: TranscriptStep[] = [];
  const cores: MemberCore[] = [];
  const atts: AttestationRecord[] = [];
  const sites: string[] = [];
  // 1. Each member: a device, an identity generated inside the core, an attestation.
  for (let i = 1; i <= n; i++) {
    const memberDir = join(opts.dir, `member-${i}`);
    await mkdir(memberDir, { recursive: true, mode: 0o700 });
    const device = await provisionDevice(vendorDir, { device: `${fleetId}-m${i}-${encodeHex(env.random(3))}`, now });
    await writeSoftHsmFile(join(memberDir, 'device.json'), device);
    const core = await MemberCore.generate(i, env, softwareBackend(device), fileKeyStore(memberDir));
    const site = opts.sites[(i - 1) % opts.sites.length]!;
    const att = await core.attest(ctx, site);
    cores.push(core);
    atts.push(att);
    sites.push(site);
    steps.push({ name: 'attest', fields: { member: String(i), out: hex(decodeBase64(att.attestation.body, 'attestation')) } });
  }
  // Every member checks every other member's attestation before trusting its keys.
  for (const a of atts) MemberCore.verifyPeer(a, ctx);

  // 2. Member 1 generates the fleet secrets inside its core.
  const generator = cores[0]!;
  const keys = await generator.generateFleetSecrets();
  const keysH = fleetKeysHash(keys);
  steps.push({ name: 'generate', fields: { member: '1', keys: keysH } });

  // 3. Deliveries, sealed to each attested X25519 key; each receiver opens inside its core.
  const received = new Map<number, string>();
  for (let i = 2; i <= n; i++) {
    const d = await generator.sealFleetSecretsFor(atts[i - 1]!, ctx);
    const out = hex(deliveryMessage(ctx, d));
    steps.push({ name: 'deliver', fields: { from: '1', to: String(i), in: hex(decodeBase64(atts[i - 1]!.attestation.body, 'attestation')), out } });
    const got = await cores[i - 1]!.receiveFleetSecrets(d, atts[0]!, ctx);
    if (!sameKeys(got, keys)) throw new BkvError('INTERNAL', `member ${i} derived other fleet keys than member 1`);
    received.set(i, out);
  }

  // 4. Every member endorses the fleet keys it derives itself.
  const endorsements: DeploymentEvidence['keyEndorsements'] = [];
  for (const core of cores) {
    const e = await core.endorseKeys(fleetId);
    if (!sameKeys(e.keys, keys)) throw new BkvError('INTERNAL', `member ${core.id} holds other fleet keys`);
    endorsements.push({ member: core.id, signature: encodeBase64(e.signature) });
    steps.push({ name: 'endorse', fields: { member: String(core.id), in: received.get(core.id) ?? '-', keys: keysH, out: hex(e.signature) } });
  }

  // 5. The artifact.
  const artifact = encodeFleetArtifact(
    makeFleetArtifact({
      namespace: opts.namespace,
      fleetId,
      keys,
      members: cores.map((c, i) => ({ id: `member-${c.id}`, identityKey: c.ed25519PublicKey, site: sites[i]! })),
      quorum: Math.floor(n / 2) + 1,
      measurement: opts.measurement,
      notBefore: iso(now - 60_000),
      notAfter: iso(now + (opts.validityDays ?? 365) * 86_400_000),
    }),
  );
  steps.push({ name: 'artifact', fields: { out: hex(artifact) } });

  // 6. The transcript, signed by every member.
  const transcript = encodeTranscript({ namespace: opts.namespace, fleet: fleetId, nonce: encodeHex(ctx.nonce), measurement: opts.measurement, members: n, steps });
  const transcriptSignatures: DeploymentEvidence['transcriptSignatures'] = [];
  for (let i = 0; i < n; i++) {
    const sig = await cores[i]!.signTranscript(transcript, decodeBase64(atts[i]!.attestation.body, 'attestation'));
    transcriptSignatures.push({ member: i + 1, signature: encodeBase64(sig) });
  }
  const evidence: DeploymentEvidence = {
    format: EVIDENCE_FORMAT,
    artifact: encodeBase64(artifact),
    vendorRoots: [{ name: vendor.name, publicKey: vendor.publicKey }],
    attestations: atts,
    keyEndorsements: endorsements,
    transcript: encodeBase64(transcript),
    transcriptSignatures,
  };

  // 7. The layout and the published files.
  const host = opts.host ?? '127.0.0.1';
  const fleetConfig = {
    format: 'bkv-fleet-config/v1',
    fleetId,
    clusterId: toB64(env.random(16)),
    quorum: Math.floor(n / 2) + 1,
    members: cores.map((c, i) => ({
      id: c.id,
      site: sites[i]!,
      host,
      raftPort: opts.ports?.raft[i] ?? (opts.basePorts?.raft ?? 7501) + i,
      apiPort: opts.ports?.api[i] ?? (opts.basePorts?.api ?? 7601) + i,
      identityKey: toB64(c.x25519PublicKey),
      signingKey: toB64(c.ed25519PublicKey),
    })),
    gateway: { host, port: opts.ports?.gateway ?? opts.basePorts?.gateway ?? 7410 },
    policy: { defaultLimit: 10, maxLimit: 100 },
  };
  await writeFileDurable(join(opts.dir, 'fleet.json'), JSON.stringify(fleetConfig, null, 2) + '\n', 0o644);
  await writeFileDurable(
    join(opts.dir, 'fleet-keys.json'),
    JSON.stringify(
      {
        format: 'bkv-fleet-keys/v1',
        opaqueServerPublicKey: toB64(keys.opaqueServerPublicKey),
        encryptionPublicKey: toB64(keys.encryptionPublicKey),
        signingPublicKey: toB64(keys.signingPublicKey),
      },
      null,
      2,
    ) + '\n',
    0o644,
  );
  const artifactPath = join(opts.dir, 'fleet-artifact.json');
  const evidencePath = join(opts.dir, 'evidence.json');
  await writeFileDurable(artifactPath, artifact, 0o644);
  await writeFileDurable(evidencePath, encodeEvidence(evidence), 0o644);
  // Sanity: the device certificates parse (they are already verified by every core).
  for (const a of atts) parseDeviceCertificate(decodeBase64(a.deviceCertificate.body, 'certificate'));
  return {
    dir: opts.dir,
    fleetId,
    artifact,
    artifactPath,
    evidence,
    evidencePath,
    measurement: opts.measurement,
    vendor: { name: vendor.name, publicKey: vendor.publicKey, dir: vendorDir, created },
    counterSign: (req, trusted) => generator.counterSign(req, trusted),
  };
}

/** Random bytes for callers outside the core (ids); not used for secrets. */
export function randomId(bytes = 4): string {
  return encodeHex(new Uint8Array(randomBytes(bytes)));
}
