import { ed25519 } from '@noble/curves/ed25519.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBase64, encodeBase64 } from '../../src/shared/fleet-formats/encoding.js';
import { runCeremony, type CeremonyResult } from '../../src/ceremony/ceremony.js';
import { encodeEvidence, type DeploymentEvidence } from '../../src/shared/evidence/evidence.js';
import { loadMemberIdentity } from '../../src/ceremony/member-files.js';
import { vendorInit } from '../../src/attestation/software-hsm.js';
import { codeMeasurement } from '../../src/host/measurement.js';

const dirs: string[] = [];

export async function tempDir(prefix = 'bkv-ceremony-test-'): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export async function cleanup(): Promise<void> {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
}

export interface Deployed {
  root: string;
  vendorDir: string;
  vendorKey: string;
  measurement: string;
  result: CeremonyResult;
  evidence: DeploymentEvidence;
  evidenceBytes: Uint8Array;
}

/** One ceremony of `members` members in a fresh directory, with its own vendor. */
export async function deploy(opts: { members?: number; namespace?: string; vendorDir?: string; measurement?: string } = {}): Promise<Deployed> {
  const root = await tempDir();
  const vendorDir = opts.vendorDir ?? join(root, 'vendor');
  const vendor = opts.vendorDir ? undefined : await vendorInit(vendorDir, 'test-vendor');
  const measurement = opts.measurement ?? (await codeMeasurement());
  const result = await runCeremony({
    dir: join(root, 'fleet'),
    members: opts.members ?? 3,
    sites: ['site-a', 'site-b', 'site-c'],
    namespace: opts.namespace ?? 'test.fleet',
    vendorDir,
    measurement,
  });
  return {
    root,
    vendorDir,
    vendorKey: vendor?.publicKey ?? result.vendor.publicKey,
    measurement,
    result,
    evidence: result.evidence,
    evidenceBytes: encodeEvidence(result.evidence),
  };
}

export const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

/** The members' Ed25519 identity seeds, read from their key stores: a colluding operator's power. */
export async function memberSigners(d: Deployed): Promise<Map<number, (m: Uint8Array) => string>> {
  const out = new Map<number, (m: Uint8Array) => string>();
  for (let i = 1; i <= d.result.evidence.attestations.length; i++) {
    const id = await loadMemberIdentity(join(d.result.dir, `member-${i}`));
    out.set(i, (m) => encodeBase64(ed25519.sign(m, id.ed25519Seed)));
  }
  return out;
}

/** Re-signs the transcript with every listed member (as if they all colluded). */
export async function resignTranscript(d: Deployed, ev: DeploymentEvidence, transcript: Uint8Array, members?: number[]): Promise<DeploymentEvidence> {
  const signers = await memberSigners(d);
  ev.transcript = encodeBase64(transcript);
  ev.transcriptSignatures = (members ?? [...signers.keys()]).map((m) => ({ member: m, signature: signers.get(m)!(transcript) }));
  return ev;
}

export const text = (b64: string) => new TextDecoder().decode(decodeBase64(b64, 'x'));
export const bytes = (s: string) => new TextEncoder().encode(s);

/** Every secret of a deployed fleet, from the members' own key stores, in raw, base64, base64url and hex form. */
export async function secretNeedles(d: Deployed): Promise<{ what: string; needle: Buffer }[]> {
  const { loadMemberFleetSecrets } = await import('../../src/ceremony/member-files.js');
  const out: { what: string; needle: Buffer }[] = [];
  const add = (what: string, b: Uint8Array) => {
    const raw = Buffer.from(b);
    for (const form of [raw, Buffer.from(raw.toString('base64')), Buffer.from(raw.toString('base64url')), Buffer.from(raw.toString('hex'))]) out.push({ what, needle: form });
  };
  for (let i = 1; i <= d.evidence.attestations.length; i++) {
    const dir = join(d.result.dir, `member-${i}`);
    const s = await loadMemberFleetSecrets(dir);
    add('channel seed', s.channelSeed);
    add('signing seed', s.signingSeed);
    add('login-state key', s.loginStateKey);
    add('storage key', s.storageKey);
    const setup = Buffer.from(s.opaqueServerSetup, 'base64');
    add('OPAQUE setup', setup);
    add('OPRF seed', setup.subarray(0, 32));
    const id = await loadMemberIdentity(dir);
    add('member X25519 seed', id.x25519Seed);
    add('member Ed25519 seed', id.ed25519Seed);
  }
  return out;
}
