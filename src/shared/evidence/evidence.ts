/**
 * Deployment evidence (`bkv-deployment-evidence/v1`, docs/formats/evidence.md) and its
 * verification. Browser-safe, no I/O: the witness, the audit CLI and anyone else run the same code.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../errors.js';
import { artifactDigest, fleetPublicKeys, parseFleetArtifact, type FleetArtifact } from '../fleet-formats/artifact.js';
import { decodeBase64, encodeBase64, encodeHex, fromUtf8, malformed } from '../fleet-formats/encoding.js';
import { verifyAttestationRecord, type AttestationRecord, type VerifiedAttestation } from '../attestation/format.js';
import { fleetKeysHash, keysEndorsementMessage } from '../attestation/endorsement.js';
import { parseTranscript, type Transcript } from './transcript.js';

export const EVIDENCE_FORMAT = 'bkv-deployment-evidence/v1';

export interface DeploymentEvidence {
  format: typeof EVIDENCE_FORMAT;
  /** base64 of the exact fleet artifact bytes */
  artifact: string;
  /** the vendor roots the devices chain to (informational: verifiers pin their own) */
  vendorRoots: { name: string; publicKey: string }[];
  attestations: AttestationRecord[];
  /** each member's Ed25519 signature over keysEndorsementMessage(fleetId, member, keys) */
  keyEndorsements: { member: number; signature: string }[];
  /** base64 of the exact transcript bytes */
  transcript: string;
  /** each member's Ed25519 signature over the transcript bytes */
  transcriptSignatures: { member: number; signature: string }[];
}

export const EVIDENCE_CHECKS = [
  'format',
  'artifact',
  'vendor-chain',
  'attestation',
  'measurement',
  'key-endorsements',
  'transcript',
  'transcript-signatures',
] as const;
export type EvidenceCheck = (typeof EVIDENCE_CHECKS)[number];

export interface EvidenceReport {
  ok: boolean;
  checks: Record<EvidenceCheck, { ok: boolean; error?: string }>;
  artifact?: FleetArtifact;
  artifactBytes?: Uint8Array;
  /** lower-case hex SHA-256 of the artifact */
  digest?: string;
  /** true when the vendor roots were taken from the evidence itself (nothing pinned) */
  vendorRootsFromEvidence: boolean;
}

export interface VerifyEvidenceOptions {
  /** Vendor root public keys the verifier trusts; omitted: the roots listed in the evidence (weak). */
  vendorRoots?: readonly Uint8Array[];
  /** Measurements the verifier accepts; omitted: any, as long as all members agree with the artifact. */
  allowedMeasurements?: readonly string[];
  /** The artifact bytes the evidence must be about (e.g. the ones submitted alongside). */
  artifact?: Uint8Array;
  /** Time for certificate validity (ms); omit to skip. */
  now?: number;
}

const MAX_EVIDENCE_BYTES = 192 * 1024;

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function exactKeys(o: Record<string, unknown>, keys: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw malformed(`${what}: unknown field "${k}"`);
  for (const k of keys) if (!(k in o)) throw malformed(`${what}: missing field "${k}"`);
}

function memberSigList(x: unknown, what: string): { member: number; signature: string }[] {
  if (!Array.isArray(x)) throw malformed(`${what} must be a list`);
  return x.map((e) => {
    if (!isObj(e)) throw malformed(`${what}: entry is not an object`);
    exactKeys(e, ['member', 'signature'], what);
    if (typeof e.member !== 'number' || !Number.isInteger(e.member) || typeof e.signature !== 'string') throw malformed(`${what}: bad entry`);
    return { member: e.member, signature: e.signature };
  });
}

function signedDoc(x: unknown, what: string): { body: string; signature: string } {
  if (!isObj(x)) throw malformed(`${what} is not an object`);
  exactKeys(x, ['body', 'signature'], what);
  if (typeof x.body !== 'string' || typeof x.signature !== 'string') throw malformed(`${what}: body and signature are base64 strings`);
  return { body: x.body, signature: x.signature };
}

/** Strict structural parse of evidence (JSON bytes or an object). */
export function parseEvidence(input: Uint8Array | string | unknown): DeploymentEvidence {
  let j: unknown = input;
  if (input instanceof Uint8Array || typeof input === 'string') {
    const text = typeof input === 'string' ? input : fromUtf8(input, 'evidence');
    if (text.length > MAX_EVIDENCE_BYTES) throw malformed('evidence: too large');
    try {
      j = JSON.parse(text);
    } catch {
      throw malformed('evidence: not valid JSON');
    }
  }
  if (!isObj(j)) throw malformed('evidence: not a JSON object');
  exactKeys(j, ['format', 'artifact', 'vendorRoots', 'attestations', 'keyEndorsements', 'transcript', 'transcriptSignatures'], 'evidence');
  if (j.format !== EVIDENCE_FORMAT) throw malformed(`evidence: format must be "${EVIDENCE_FORMAT}"`);
  if (typeof j.artifact !== 'string' || typeof j.transcript !== 'string') throw malformed('evidence: artifact and transcript are base64 strings');
  if (!Array.isArray(j.vendorRoots) || !Array.isArray(j.attestations)) throw malformed('evidence: vendorRoots and attestations are lists');
  const vendorRoots = j.vendorRoots.map((v) => {
    if (!isObj(v)) throw malformed('evidence vendor root is not an object');
    exactKeys(v, ['name', 'publicKey'], 'evidence vendor root');
    if (typeof v.name !== 'string') throw malformed('evidence vendor root name');
    decodeBase64(v.publicKey, 'evidence vendor root publicKey', 32);
    return { name: v.name, publicKey: v.publicKey as string };
  });
  const attestations = j.attestations.map((a) => {
    if (!isObj(a)) throw malformed('evidence attestation is not an object');
    exactKeys(a, ['member', 'attestation', 'deviceCertificate'], 'evidence attestation');
    if (typeof a.member !== 'number' || !Number.isInteger(a.member)) throw malformed('evidence attestation member');
    return { member: a.member, attestation: signedDoc(a.attestation, 'attestation'), deviceCertificate: signedDoc(a.deviceCertificate, 'device certificate') };
  });
  return {
    format: EVIDENCE_FORMAT,
    artifact: j.artifact,
    vendorRoots,
    attestations,
    keyEndorsements: memberSigList(j.keyEndorsements, 'evidence keyEndorsements'),
    transcript: j.transcript,
    transcriptSignatures: memberSigList(j.transcriptSignatures, 'evidence transcriptSignatures'),
  };
}

export function encodeEvidence(e: DeploymentEvidence): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(e, null, 2) + '\n');
}

/** Artifact member ids are "member-<n>"; attestations and signatures use n. */
export function memberNumber(id: string): number {
  const m = /^member-([1-9][0-9]{0,2})$/.exec(id);
  if (!m) throw malformed(`artifact member id "${id}" is not of the form member-<n>`);
  return Number(m[1]);
}

function verifySig(sigB64: string, msg: Uint8Array, key: Uint8Array): boolean {
  try {
    const sig = decodeBase64(sigB64, 'signature', 64);
    return ed25519.verify(sig, msg, key);
  } catch {
    return false;
  }
}

const hex = (b: Uint8Array) => encodeHex(sha256(b));

/** Runs every check and reports each (✓/✗); never throws for bad evidence. */
export function verifyDeploymentEvidence(input: Uint8Array | string | unknown, opts: VerifyEvidenceOptions = {}): EvidenceReport {
  const checks = Object.fromEntries(EVIDENCE_CHECKS.map((c) => [c, { ok: false, error: 'not checked' }])) as EvidenceReport['checks'];
  const report: EvidenceReport = { ok: false, checks, vendorRootsFromEvidence: !opts.vendorRoots };
  const run = (c: EvidenceCheck, f: () => void): boolean => {
    try {
      f();
      checks[c] = { ok: true };
      return true;
    } catch (e) {
      checks[c] = { ok: false, error: e instanceof Error ? e.message : String(e) };
      return false;
    }
  };
  let ev!: DeploymentEvidence;
  if (!run('format', () => (ev = parseEvidence(input)))) return report;
  let artifact!: FleetArtifact;
  let artifactBytes!: Uint8Array;
  const members = new Map<number, { id: string; site: string; identityKey: Uint8Array }>();
  const okArtifact = run('artifact', () => {
    artifactBytes = decodeBase64(ev.artifact, 'evidence artifact');
    artifact = parseFleetArtifact(artifactBytes);
    if (opts.artifact && (opts.artifact.length !== artifactBytes.length || opts.artifact.some((b, i) => b !== artifactBytes[i]))) {
      throw new Error('the evidence is about another artifact than the one submitted');
    }
    for (const m of artifact.members) members.set(memberNumber(m.id), { id: m.id, site: m.site, identityKey: decodeBase64(m.identityKey, 'identityKey', 32) });
    report.artifact = artifact;
    report.artifactBytes = artifactBytes;
    report.digest = encodeHex(artifactDigest(artifactBytes));
  });
  if (!okArtifact) return report;
  const roots = opts.vendorRoots ?? ev.vendorRoots.map((v) => decodeBase64(v.publicKey, 'vendor root', 32));
  const verified = new Map<number, VerifiedAttestation>();
  const chainOk = run('vendor-chain', () => {
    if (roots.length === 0) throw new Error('no vendor root is trusted');
    for (const a of ev.attestations) {
      try {
        verifyAttestationRecord(a, { vendorRoots: roots, ...(opts.now !== undefined ? { now: opts.now } : {}) });
      } catch (e) {
        if (e instanceof BkvError && e.details.check === 'attestation') continue; // reported below
        throw e;
      }
    }
  });
  const attOk = chainOk && run('attestation', () => {
    for (const a of ev.attestations) {
      if (verified.has(a.member)) throw new Error(`member ${a.member} has two attestations`);
      if (!members.has(a.member)) throw new Error(`attestation for member ${a.member}, who is not in the artifact`);
      verified.set(a.member, verifyAttestationRecord(a, { vendorRoots: roots, ...(opts.now !== undefined ? { now: opts.now } : {}) }));
    }
    const first = [...verified.values()][0];
    for (const [n, m] of members) {
      const v = verified.get(n);
      if (!v) throw new Error(`member ${n} (${m.id}) has no attestation`);
      const st = v.statement;
      if (encodeBase64(st.ed25519) !== encodeBase64(m.identityKey)) throw new Error(`member ${n}: the artifact's identity key is not the attested one`);
      if (st.site !== m.site) throw new Error(`member ${n}: attested at site ${st.site}, the artifact says ${m.site}`);
      if (st.namespace !== artifact.namespace || st.fleet !== artifact.fleetId) throw new Error(`member ${n}: attestation is for ${st.namespace}/${st.fleet}`);
      if (first && encodeHex(st.nonce) !== encodeHex(first.statement.nonce)) throw new Error(`member ${n}: attestation is from another ceremony (nonce)`);
    }
  });
  run('measurement', () => {
    if (opts.allowedMeasurements && !opts.allowedMeasurements.includes(artifact.measurement)) {
      throw new Error(`measurement ${artifact.measurement} is not on the allow list`);
    }
    if (!attOk) throw new Error('attestations not verified');
    for (const [n, v] of verified) {
      if (v.statement.measurement !== artifact.measurement) {
        throw new Error(`member ${n} attests measurement ${v.statement.measurement}, the artifact says ${artifact.measurement}`);
      }
    }
  });
  const keys = fleetPublicKeys(artifact);
  run('key-endorsements', () => {
    const seen = new Set<number>();
    for (const e of ev.keyEndorsements) {
      const m = members.get(e.member);
      if (!m) throw new Error(`key endorsement by member ${e.member}, who is not in the artifact`);
      if (seen.has(e.member)) throw new Error(`member ${e.member} endorsed twice`);
      seen.add(e.member);
      if (!verifySig(e.signature, keysEndorsementMessage(artifact.fleetId, e.member, keys), m.identityKey)) {
        throw new Error(`member ${e.member}'s signature does not cover the artifact's fleet keys`);
      }
    }
    for (const n of members.keys()) if (!seen.has(n)) throw new Error(`member ${n} did not sign the fleet keys`);
  });
  let transcriptBytes!: Uint8Array;
  run('transcript', () => {
    transcriptBytes = decodeBase64(ev.transcript, 'transcript');
    checkTranscript(parseTranscript(transcriptBytes), artifact, artifactBytes, members, verified, ev);
  });
  run('transcript-signatures', () => {
    transcriptBytes ??= decodeBase64(ev.transcript, 'transcript');
    const seen = new Set<number>();
    for (const s of ev.transcriptSignatures) {
      const m = members.get(s.member);
      if (!m) throw new Error(`transcript signed by member ${s.member}, who is not in the artifact`);
      if (!verifySig(s.signature, transcriptBytes, m.identityKey)) throw new Error(`member ${s.member}'s transcript signature is invalid`);
      seen.add(s.member);
    }
    for (const n of members.keys()) if (!seen.has(n)) throw new Error(`member ${n} did not sign the transcript`);
  });
  report.ok = EVIDENCE_CHECKS.every((c) => checks[c].ok);
  return report;
}

function checkTranscript(
  t: Transcript,
  artifact: FleetArtifact,
  artifactBytes: Uint8Array,
  members: Map<number, { id: string }>,
  verified: Map<number, VerifiedAttestation>,
  ev: DeploymentEvidence,
): void {
  if (t.namespace !== artifact.namespace || t.fleet !== artifact.fleetId) throw new Error('the transcript is about another fleet');
  if (t.measurement !== artifact.measurement) throw new Error('the transcript names another measurement');
  if (t.members !== members.size) throw new Error(`the transcript has ${t.members} members, the artifact ${members.size}`);
  const first = [...verified.values()][0];
  if (first && encodeHex(first.statement.nonce) !== t.nonce) throw new Error('the transcript nonce is not the attested one');
  const keysH = fleetKeysHash(fleetPublicKeys(artifact));
  const attests = t.steps.filter((s) => s.name === 'attest');
  const gens = t.steps.filter((s) => s.name === 'generate');
  if (gens.length !== 1) throw new Error('the transcript must record exactly one key generation');
  const gen = gens[0]!;
  const genAt = t.steps.indexOf(gen);
  const g = Number(gen.fields.member);
  if (gen.fields.keys !== keysH) throw new Error('the generated keys in the transcript are not the artifact keys');
  for (const n of members.keys()) {
    const a = attests.filter((s) => s.fields.member === String(n));
    if (a.length !== 1) throw new Error(`member ${n} is missing from the transcript (attest)`);
    if (t.steps.indexOf(a[0]!) > genAt) throw new Error(`member ${n} attested after key generation`);
    const att = ev.attestations.find((x) => x.member === n);
    if (att && a[0]!.fields.out !== hex(decodeBase64(att.attestation.body, 'attestation'))) throw new Error(`member ${n}'s attestation is not the one in the transcript`);
    const end = t.steps.filter((s) => s.name === 'endorse' && s.fields.member === String(n));
    if (end.length !== 1) throw new Error(`member ${n} is missing from the transcript (endorse)`);
    const e = end[0]!;
    if (e.fields.keys !== keysH) throw new Error(`member ${n} endorsed other keys in the transcript`);
    const sig = ev.keyEndorsements.find((k) => k.member === n);
    if (sig && e.fields.out !== hex(decodeBase64(sig.signature, 'endorsement'))) throw new Error(`member ${n}'s key endorsement is not the one in the transcript`);
    if (n === g) {
      if (e.fields.in !== '-') throw new Error('the generating member received secrets?');
    } else {
      const d = t.steps.filter((s) => s.name === 'deliver' && s.fields.to === String(n));
      if (d.length !== 1) throw new Error(`member ${n} is missing from the transcript (deliver)`);
      const dv = d[0]!;
      if (dv.fields.from !== String(g)) throw new Error(`member ${n}'s secrets came from member ${dv.fields.from}, not the generator`);
      if (t.steps.indexOf(dv) < genAt) throw new Error(`secrets delivered to member ${n} before generation`);
      if (dv.fields.in !== a[0]!.fields.out) throw new Error(`the delivery to member ${n} was not sealed to its attested key`);
      if (e.fields.in !== dv.fields.out) throw new Error(`member ${n} endorsed after another delivery than recorded`);
    }
  }
  for (const s of t.steps) {
    const who = s.fields.member ?? s.fields.to;
    if (who !== undefined && !members.has(Number(who))) throw new Error(`the transcript names member ${who}, who is not in the artifact`);
  }
  const last = t.steps[t.steps.length - 1];
  if (!last || last.name !== 'artifact' || t.steps.filter((s) => s.name === 'artifact').length !== 1) throw new Error('the transcript must end with the artifact');
  if (last.fields.out !== encodeHex(artifactDigest(artifactBytes))) throw new Error('the transcript is about another artifact');
}

/** Throws the first failing check as VERIFICATION_FAILED with details.check (the witness's 422). */
export function assertDeploymentEvidence(input: Uint8Array | string | unknown, opts: VerifyEvidenceOptions = {}): EvidenceReport {
  const r = verifyDeploymentEvidence(input, opts);
  if (!r.ok) {
    const c = EVIDENCE_CHECKS.find((k) => !r.checks[k].ok)!;
    throw new BkvError('VERIFICATION_FAILED', `deployment evidence refused (${c}): ${r.checks[c].error}`, { check: `evidence.${c}` });
  }
  return r;
}
