import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { x25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { isBkvError } from '../../src/shared/errors.js';
import { encodeFleetArtifact, fleetPublicKeys, makeFleetArtifact, parseFleetArtifact } from '../../src/shared/fleet-formats/artifact.js';
import { decodeBase64, encodeBase64, encodeHex } from '../../src/shared/fleet-formats/encoding.js';
import { verifyDeploymentEvidence, type DeploymentEvidence } from '../../src/shared/evidence/evidence.js';
import { loadMemberFleetSecrets, loadMemberIdentity } from '../../src/ceremony/member-files.js';
import { parseTranscript, encodeTranscript } from '../../src/shared/evidence/transcript.js';
import { MemberCore, type CeremonyContext } from '../../src/trusted/attestation/member-core.js';
import { encodeAttestation, parseAttestation } from '../../src/shared/attestation/format.js';
import { provisionDevice, softwareBackend, vendorInit } from '../../src/attestation/software-hsm.js';
import { systemEnv } from '../../src/trusted/core/env.js';
import { verifyMeasurement } from '../../src/host/measurement.js';
import { bytes, cleanup, clone, deploy, memberSigners, resignTranscript, secretNeedles, tempDir, type Deployed } from './fixture.js';

let d: Deployed;
let vendorRoot: Uint8Array;

beforeAll(async () => {
  d = await deploy({ members: 3 });
  vendorRoot = decodeBase64(d.vendorKey, 'vendor', 32);
});
afterAll(cleanup);

const verify = (ev: unknown, extra: { allowedMeasurements?: string[]; vendorRoots?: Uint8Array[] } = {}) =>
  verifyDeploymentEvidence(ev, { vendorRoots: [vendorRoot], allowedMeasurements: [d.measurement], now: Date.now(), ...extra });

function failed(r: ReturnType<typeof verify>): string[] {
  return Object.entries(r.checks).filter(([, v]) => !v.ok).map(([k]) => k);
}

describe('deployment ceremony', () => {
  it('lays the fleet out on disk and produces evidence that verifies', async () => {
    const fleet = JSON.parse(await readFile(join(d.result.dir, 'fleet.json'), 'utf8'));
    expect(fleet.format).toBe('bkv-fleet-config/v1');
    expect(fleet.quorum).toBe(2);
    expect(fleet.members.map((m: { id: number }) => m.id)).toEqual([1, 2, 3]);
    const artifact = parseFleetArtifact(new Uint8Array(await readFile(d.result.artifactPath)));
    const keys = fleetPublicKeys(artifact);
    for (let i = 1; i <= 3; i++) {
      const dir = join(d.result.dir, `member-${i}`);
      const id = await loadMemberIdentity(dir);
      expect(id.id).toBe(i);
      expect(Buffer.from(id.x25519PublicKey).toString('base64url')).toBe(fleet.members[i - 1].identityKey);
      expect(Buffer.from(id.ed25519PublicKey).toString('base64url')).toBe(fleet.members[i - 1].signingKey);
      expect(encodeBase64(id.ed25519PublicKey)).toBe(artifact.members[i - 1]!.identityKey);
      const secrets = await loadMemberFleetSecrets(dir);
      expect(encodeBase64(x25519.getPublicKey(secrets.channelSeed))).toHaveLength(44);
    }
    const fleetKeys = JSON.parse(await readFile(join(d.result.dir, 'fleet-keys.json'), 'utf8'));
    expect(Buffer.from(fleetKeys.signingPublicKey, 'base64')).toEqual(Buffer.from(keys.signingPublicKey));
    const r = verify(JSON.parse(await readFile(d.result.evidencePath, 'utf8')));
    expect(failed(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(artifact.measurement).toBe(d.measurement);
  });

  it('attack: a tampered attestation (site changed, re-encoded) fails the attestation check', () => {
    const ev = clone(d.evidence);
    const body = parseAttestation(decodeBase64(ev.attestations[1]!.attestation.body, 'a'));
    ev.attestations[1]!.attestation.body = encodeBase64(encodeAttestation({ ...body, site: 'site-z' }));
    expect(failed(verify(ev))).toContain('attestation');
    // A flipped signature bit too.
    const ev2 = clone(d.evidence);
    const sig = decodeBase64(ev2.attestations[0]!.attestation.signature, 's', 64);
    sig[5]! ^= 1;
    ev2.attestations[0]!.attestation.signature = encodeBase64(sig);
    expect(verify(ev2).checks.attestation.error).toMatch(/signature by device .* is invalid/);
  });

  it('attack: a device certified by an untrusted vendor (the operator made its own root) fails the vendor chain', async () => {
    const other = await deploy({ members: 1 });
    const ev = clone(d.evidence);
    ev.attestations[0]!.deviceCertificate = other.evidence.attestations[0]!.deviceCertificate;
    expect(failed(verify(ev))).toContain('vendor-chain');
    // And evidence whose whole chain is another vendor's is refused when the verifier pins ours.
    expect(verify(other.evidence, { allowedMeasurements: [other.measurement] }).checks['vendor-chain'].ok).toBe(false);
  });

  it('attack: a wrong measurement is refused by the verifier, by peers in the ceremony, and by the member at start', async () => {
    const wrong = encodeHex(sha256(bytes('some other vault core')));
    // Not on the allow list.
    expect(verify(d.evidence, { allowedMeasurements: [wrong] }).checks.measurement.ok).toBe(false);
    // A member whose device attests other code never gets the fleet secrets.
    const dir = await tempDir();
    await vendorInit(join(dir, 'v'));
    const ctx: CeremonyContext = { namespace: 'n', fleetId: 'f', nonce: new Uint8Array(32).fill(1), measurement: d.measurement, vendorRoots: [] };
    const vendor = JSON.parse(await readFile(join(dir, 'v', 'vendor.json'), 'utf8'));
    ctx.vendorRoots = [decodeBase64(vendor.publicKey, 'v', 32)];
    const store = { put: async () => {} };
    const m1 = await MemberCore.generate(1, systemEnv, softwareBackend(await provisionDevice(join(dir, 'v'))), store);
    const m2 = await MemberCore.generate(2, systemEnv, softwareBackend(await provisionDevice(join(dir, 'v'))), store);
    await m1.generateFleetSecrets();
    const bad = await m2.attest({ ...ctx, measurement: wrong }, 'site-b');
    await expect(m1.sealFleetSecretsFor(bad, ctx)).rejects.toSatisfy((e) => isBkvError(e, 'VERIFICATION_FAILED') && e.details.check === 'measurement');
    // The member refuses to start when the code it loads does not match.
    const build = join(dir, 'vault-core.js');
    await writeFile(build, 'export const tampered = true;\n');
    await expect(verifyMeasurement(d.measurement, build)).rejects.toSatisfy(
      (e) => isBkvError(e, 'VERIFICATION_FAILED') && e.details.check === 'measurement',
    );
    await expect(verifyMeasurement(d.measurement)).resolves.toBe(d.measurement);
  });

  it('attack: a member missing from the transcript fails even when every member signs it', async () => {
    const t = parseTranscript(decodeBase64(d.evidence.transcript, 't'));
    const without = { ...t, steps: t.steps.filter((s) => s.fields.member !== '3' && s.fields.to !== '3') };
    const ev = await resignTranscript(d, clone(d.evidence), encodeTranscript(without));
    const r = verify(ev);
    expect(failed(r)).toEqual(['transcript']);
    expect(r.checks.transcript.error).toMatch(/member 3 is missing from the transcript/);
    // A transcript one member did not sign.
    const ev2 = clone(d.evidence);
    ev2.transcriptSignatures = ev2.transcriptSignatures.filter((s) => s.member !== 2);
    expect(verify(ev2).checks['transcript-signatures'].error).toMatch(/member 2 did not sign/);
  });

  it('attack: a fleet key not signed by its members (operator swaps the encryption key) is refused', async () => {
    const a = parseFleetArtifact(decodeBase64(d.evidence.artifact, 'a'));
    const k = fleetPublicKeys(a);
    const swapped = encodeFleetArtifact(
      makeFleetArtifact({
        namespace: a.namespace,
        fleetId: a.fleetId,
        keys: { ...k, encryptionPublicKey: x25519.getPublicKey(new Uint8Array(32).fill(7)) },
        members: a.members.map((m) => ({ id: m.id, identityKey: decodeBase64(m.identityKey, 'k', 32), site: m.site })),
        quorum: a.quorum,
        measurement: a.measurement,
        notBefore: a.notBefore,
        notAfter: a.notAfter,
      }),
    );
    const ev: DeploymentEvidence = { ...clone(d.evidence), artifact: encodeBase64(swapped) };
    const r = verify(ev);
    expect(r.checks['key-endorsements'].ok).toBe(false);
    expect(r.checks['key-endorsements'].error).toMatch(/does not cover the artifact's fleet keys/);
    // One member's endorsement missing.
    const ev2 = clone(d.evidence);
    ev2.keyEndorsements = ev2.keyEndorsements.filter((e) => e.member !== 2);
    expect(verify(ev2).checks['key-endorsements'].error).toMatch(/member 2 did not sign the fleet keys/);
    // A signature by the member over other keys.
    const signers = await memberSigners(d);
    ev2.keyEndorsements.push({ member: 2, signature: signers.get(2)!(bytes('bkv-fleet-keys-endorsement/v1\nsomething else\n')) });
    expect(verify(ev2).checks['key-endorsements'].ok).toBe(false);
  });

  it('attack: no API returns a fleet secret; nothing the ceremony writes outside the member key stores holds one', async () => {
    // The secrets, from the members' own key stores.
    const secretForms = await secretNeedles(d);
    const scanned: string[] = [];
    const scan = (where: string, data: Buffer) => {
      scanned.push(where);
      for (const s of secretForms) expect(data.includes(s.needle), `${s.what} found in ${where}`).toBe(false);
    };
    const walk = async (dir: string): Promise<string[]> =>
      (await readdir(dir, { withFileTypes: true, recursive: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    for (const f of await walk(d.root)) {
      const rel = relative(d.result.dir, f);
      if (/^member-[0-9]+\//.test(rel)) continue; // the members' own key stores
      scan(relative(d.root, f), await readFile(f));
    }
    expect(scanned).toEqual(expect.arrayContaining(['fleet/fleet.json', 'fleet/fleet-keys.json', 'fleet/evidence.json', 'fleet/fleet-artifact.json']));
    // What the ceremony API returns.
    const { counterSign: _fn, ...rest } = d.result;
    scan('ceremony result', Buffer.from(JSON.stringify(rest, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v))));
    // The member core has no getter or field that reveals a secret.
    const core = await MemberCore.generate(1, systemEnv, softwareBackend(await provisionDevice(d.vendorDir)), { put: async () => {} });
    await core.generateFleetSecrets();
    expect(Object.keys(core).sort()).toEqual(['ed25519PublicKey', 'id', 'x25519PublicKey']);
    expect(Object.getOwnPropertyNames(MemberCore.prototype).sort()).toEqual(
      ['attest', 'constructor', 'counterSign', 'endorseKeys', 'fleetPublicKeys', 'generateFleetSecrets', 'receiveFleetSecrets', 'sealFleetSecretsFor', 'signTranscript'].sort(),
    );
    for (const k of ['secrets', 'x25519Seed', 'ed25519Seed', '#secrets']) expect((core as unknown as Record<string, unknown>)[k]).toBeUndefined();
    // VaultCore (the serving core) has no getter and no method that hands out its secrets either.
    const { VaultCore } = await import('../../src/trusted/core/vault-core.js');
    const descriptors = Object.getOwnPropertyDescriptors(VaultCore.prototype);
    expect(Object.values(descriptors).filter((p) => p.get !== undefined)).toEqual([]);
    expect(Object.keys(descriptors).filter((k) => /secret|seed|key$/i.test(k) && k !== 'publicKeys')).toEqual([]);
    // The core signs only transcripts about itself, so it is no signing oracle for secrets either.
    await expect(core.signTranscript(bytes('bkv-ceremony-transcript/v1\nanything\n'), new Uint8Array(10))).rejects.toThrow(/does not record member 1/);
  });
});
