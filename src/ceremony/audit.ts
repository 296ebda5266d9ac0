/**
 * `bkv audit deployment <evidence>`: everything anyone can check about how a fleet was deployed.
 * Offline: vendor chains, attestations, measurement (optionally against a local reproducible
 * rebuild), the members' signatures over the fleet keys, the transcript. Online (with a witness):
 * the artifact is logged under its digest, the witness signed it, the statement is included in
 * the witness's checkpoint, the log is consistent with the checkpoint seen before, and the fleet
 * counter-signed the witness signature. The epoch is found by the digest in the signed statement;
 * a witness record whose unsigned fields contradict its statement stops the audit with
 * VERIFICATION_FAILED (details.check "record").
 */
import { verifyCheckpoint } from '../client/fleet/checkpoint.js';
import { checkCheckpointConsistency } from '../client/fleet/consistency.js';
import { verifyCounterSignature } from '../shared/fleet-formats/countersign.js';
import { fleetPublicKeys } from '../shared/fleet-formats/artifact.js';
import { decodeBase64, encodeBase64, encodeHex } from '../shared/fleet-formats/encoding.js';
import { parseVerifierKey } from '../shared/fleet-formats/note.js';
import { assertRecordMatchesStatement, isAlteredRecord, openEpochRecord } from '../witness/epoch-record.js';
import { checkpointKey, type CheckpointStore } from '../client/fleet/store.js';
import { leafHash, verifyInclusion } from '../shared/merkle/index.js';
import type { WitnessReader } from '../witness/reader.js';
import { EVIDENCE_CHECKS, parseEvidence, verifyDeploymentEvidence } from '../shared/evidence/evidence.js';
import { parseTranscript } from '../shared/evidence/transcript.js';

export interface AuditCheckResult {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface DeploymentAudit {
  ok: boolean;
  namespace?: string;
  fleetId?: string;
  digest?: string;
  measurement?: string;
  epoch?: number;
  members: { id: string; site: string }[];
  checks: AuditCheckResult[];
}

export interface DeploymentAuditOptions {
  witness?: WitnessReader;
  /** Pinned vendor roots; default: the roots the evidence names (reported as not pinned). */
  vendorRoots?: Uint8Array[];
  allowedMeasurements?: string[];
  /** Rebuild the vault core here and compare its SHA-256 with the attested measurement. */
  rebuild?: () => Promise<string>;
  witnessKey?: string;
  store?: CheckpointStore;
  now?: number;
}

const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));

export async function auditDeployment(evidence: Uint8Array, o: DeploymentAuditOptions = {}): Promise<DeploymentAudit> {
  const rep = verifyDeploymentEvidence(evidence, {
    ...(o.vendorRoots ? { vendorRoots: o.vendorRoots } : {}),
    ...(o.allowedMeasurements ? { allowedMeasurements: o.allowedMeasurements } : {}),
    ...(o.now !== undefined ? { now: o.now } : {}),
  });
  const checks: AuditCheckResult[] = EVIDENCE_CHECKS.map((c) => ({
    name: c,
    ok: rep.checks[c].ok,
    ...(rep.checks[c].error ? { detail: rep.checks[c].error } : {}),
  }));
  const a = rep.artifact;
  if (a) {
    const n = a.members.length;
    const steps = (() => {
      try {
        return parseTranscript(decodeBase64(parseEvidence(evidence).transcript, 'transcript')).steps.length;
      } catch {
        return 0;
      }
    })();
    const ok: Record<string, string> = {
      'vendor-chain': rep.vendorRootsFromEvidence
        ? `${n} device certificates chain to the roots the evidence names (not pinned: use --vendor-root)`
        : `${n} device certificates chain to a pinned vendor root`,
      attestation: `${n} members attested by their devices: ${a.members.map((m) => `${m.id}@${m.site}`).join(', ')}`,
      measurement: `every member attests ${a.measurement.slice(0, 16)}…${o.allowedMeasurements ? ' (allowed)' : ''}`,
      'key-endorsements': `all ${n} members signed the fleet keys they hold`,
      transcript: `${steps} steps, every member present`,
      'transcript-signatures': `signed by all ${n} members`,
    };
    for (const c of checks) if (c.ok && ok[c.name]) c.detail = ok[c.name];
  }
  const out: DeploymentAudit = {
    ok: false,
    ...(a ? { namespace: a.namespace, fleetId: a.fleetId, measurement: a.measurement } : {}),
    ...(rep.digest ? { digest: rep.digest } : {}),
    members: a ? a.members.map((m) => ({ id: m.id, site: m.site })) : [],
    checks,
  };
  const run = async (name: string, f: () => Promise<string | void>) => {
    try {
      const d = await f();
      checks.push({ name, ok: true, ...(d ? { detail: d } : {}) });
      return true;
    } catch (e) {
      if (isAlteredRecord(e)) throw e;
      checks.push({ name, ok: false, detail: msg(e) });
      return false;
    }
  };
  if (o.rebuild) {
    await run('rebuild', async () => {
      const local = await o.rebuild!();
      if (!a) throw new Error('no artifact to compare with');
      if (local !== a.measurement) throw new Error(`the local rebuild measures ${local}, the fleet attests ${a.measurement}`);
      return `local reproducible build measures ${local}`;
    });
  }
  if (o.witness && a && rep.artifactBytes) {
    const w = o.witness;
    let statement: Uint8Array = new Uint8Array(0);
    let witnessSig: Uint8Array = new Uint8Array(0);
    let leafIndex = -1;
    let counterSignature: string | undefined;
    const info = await w.keyInfo().catch(() => undefined);
    const verifier = parseVerifierKey(o.witnessKey ?? info?.verifierKey ?? '');
    const logged = await run('logged', async () => {
      if (o.witnessKey && info && info.verifierKey !== o.witnessKey) throw new Error(`the witness reports key ${info.verifierKey}, not the pinned one`);
      const latest = await w.latestEpoch(a.namespace);
      for (let e = latest; e >= 1; e--) {
        // The epoch is found by the signed digest, never by the record's unsigned copy of it.
        const r = await w.epochRecord(a.namespace, e);
        const signed = openEpochRecord(r, verifier, a.namespace, e);
        assertRecordMatchesStatement(r, signed.statement);
        if (encodeHex(signed.statement.digest) !== rep.digest) continue;
        const served = await w.artifact(a.namespace, e);
        if (encodeBase64(served) !== encodeBase64(rep.artifactBytes!)) throw new Error('the witness serves other artifact bytes');
        statement = signed.statementBytes;
        witnessSig = signed.witnessSignature;
        leafIndex = r.leafIndex;
        counterSignature = r.counterSignature;
        out.epoch = e;
        return `epoch ${e} of ${a.namespace}, signed by witness ${verifier.name}`;
      }
      throw new Error(`the artifact (digest ${rep.digest}) is not logged in namespace ${a.namespace}`);
    });
    let cpSize = 0;
    let cpNote = '';
    await run('inclusion', async () => {
      if (!logged) throw new Error('not logged');
      const cp = verifyCheckpoint(await w.checkpoint(), verifier);
      cpSize = cp.size;
      cpNote = cp.note;
      verifyInclusion(leafIndex, cp.size, leafHash(statement), await w.inclusionProof(leafIndex, cp.size), cp.rootHash);
      return `leaf ${leafIndex} in checkpoint of size ${cp.size}`;
    });
    await run('consistency', async () => {
      if (!cpNote) throw new Error('no verified checkpoint');
      const cp = verifyCheckpoint(cpNote, verifier);
      const prevNote = o.store ? await o.store.get(checkpointKey(verifier.name)) : undefined;
      if (prevNote === undefined) {
        if (o.store) await o.store.set(checkpointKey(verifier.name), cpNote);
        return 'no earlier checkpoint recorded (use --state to keep one)';
      }
      const prev = verifyCheckpoint(prevNote, verifier);
      if (prev.size > cp.size) throw new Error(`the witness log shrank from ${prev.size} to ${cp.size}`);
      const proof = prev.size === 0 || prev.size === cp.size ? [] : await w.consistencyProof(prev.size, cp.size);
      checkCheckpointConsistency(prev, cp, proof);
      await o.store!.set(checkpointKey(verifier.name), cpNote);
      return `tree ${prev.size} → ${cpSize}`;
    });
    await run('counter-signature', async () => {
      if (!logged) throw new Error('not logged');
      if (!counterSignature) throw new Error('the fleet has not counter-signed the witness statement');
      verifyCounterSignature(witnessSig, decodeBase64(counterSignature, 'counter-signature', 64), fleetPublicKeys(a).signingPublicKey);
      return 'by the fleet signing key of the artifact';
    });
  }
  out.ok = checks.every((c) => c.ok);
  return out;
}

export function formatDeploymentAudit(r: DeploymentAudit): string[] {
  const lines: string[] = [];
  // The values below are what the evidence claims; they are verified only when every check passed.
  if (!r.ok) lines.push('NOT VERIFIED: what the evidence claims (see the failed checks below)');
  lines.push(`fleet ${r.fleetId ?? '?'} in namespace ${r.namespace ?? '?'}${r.epoch ? ` (epoch ${r.epoch})` : ''}`);
  lines.push(`artifact digest ${r.digest ?? '?'}`);
  lines.push(`measurement     ${r.measurement ?? '?'}`);
  lines.push(`members         ${r.members.map((m) => `${m.id}@${m.site}`).join(', ') || '?'}`);
  lines.push('');
  const w = Math.max(...r.checks.map((c) => c.name.length));
  for (const c of r.checks) lines.push(`${c.ok ? '✓' : '✗'} ${c.name.padEnd(w)}  ${c.detail ?? ''}`.trimEnd());
  lines.push('', r.ok ? 'deployment verified' : 'DEPLOYMENT AUDIT FAILED');
  return lines;
}
