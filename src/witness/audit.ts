/**
 * Namespace audit (the `bkv audit namespace` command): per epoch, check the digest, the witness
 * signature, the fleet counter-signature, inclusion in the witness log and log consistency, then
 * diff fleet keys and roles from epoch to epoch. Every value it reports for an epoch (timestamp,
 * digest, fleet, changes) comes from the signed statement and the artifact that matches it; an
 * epoch record whose unsigned fields contradict its statement stops the audit with
 * VERIFICATION_FAILED (details.check "record").
 */
import { equalBytes } from '../shared/bytes.js';
import { BkvError } from '../shared/errors.js';
import { artifactDigest, fleetPublicKeys, parseFleetArtifact, type FleetArtifact } from '../shared/fleet-formats/artifact.js';
import { verifyCheckpoint, type SignedCheckpoint } from '../client/fleet/checkpoint.js';
import { checkCheckpointConsistency } from '../client/fleet/consistency.js';
import { verifyCounterSignature } from '../shared/fleet-formats/countersign.js';
import { decodeBase64, encodeHex } from '../shared/fleet-formats/encoding.js';
import { parseVerifierKey, type NoteVerifier } from '../shared/fleet-formats/note.js';
import type { WitnessStatement } from '../shared/fleet-formats/statement.js';
import { checkpointKey, type CheckpointStore } from '../client/fleet/store.js';
import { leafHash, verifyInclusion } from '../shared/merkle/index.js';
import type { WitnessReader } from './reader.js';
import type { EpochRecord } from './protocol.js';
import { assertRecordMatchesStatement, isAlteredRecord, openEpochRecord, type SignedEpoch } from './epoch-record.js';
import { CosignatureQuorumError } from '../client/fleet/cosignature.js';
import { verifyCosignatureQuorum, type WitnessPolicy } from '../client/fleet/policy.js';

export const AUDIT_CHECKS = ['digest', 'witness-signature', 'counter-signature', 'inclusion'] as const;
export type AuditCheck = (typeof AUDIT_CHECKS)[number];

export interface EpochAudit {
  epoch: number;
  /** From the signed statement; absent when its signature did not verify. */
  timestamp?: number;
  /** From the signed statement (lower-case hex); absent when its signature did not verify. */
  digest?: string;
  /** From the artifact whose SHA-256 is the signed digest; absent otherwise. */
  fleetId?: string;
  checks: Record<AuditCheck, { ok: boolean; error?: string }>;
  changes: string[];
}

export interface AuditResult {
  ok: boolean;
  namespace: string;
  witness: string;
  checkpoint: { size: number; rootHash: string };
  consistency: { ok: boolean; from?: number; to: number; error?: string };
  /** With a witness policy: the checkpoint's cosignatures. */
  cosignatures?: { ok: boolean; quorum: number; of: number; valid: string[]; missing: string[]; invalid: { name: string; reason: string }[] };
  epochs: EpochAudit[];
}

export interface AuditOptions {
  limit?: number;
  beforeEpoch?: number;
  /** Pinned witness verifier key; default: trust on first use of the key the witness reports. */
  witnessKey?: string;
  /** Where the newest checkpoint seen is kept between runs. */
  store?: CheckpointStore;
  /** Witness policy: the checkpoint must carry k of n cosignatures (docs/formats/witness-policy.md). */
  policy?: WitnessPolicy;
  /** Told about each epoch that passed every check, with the material that was verified. */
  onVerifiedEpoch?: (e: VerifiedEpoch) => void;
}

/** An epoch that passed every check, and the exact bytes the checks covered. */
export interface VerifiedEpoch {
  epoch: number;
  artifact: FleetArtifact;
  artifactBytes: Uint8Array;
  statement: Uint8Array;
  witnessSignature: Uint8Array;
  counterSignature: Uint8Array;
  leafIndex: number;
  inclusionProof: Uint8Array[];
  /** The witness says deployment evidence was logged with the epoch (unsigned: check the evidence itself). */
  evidence: boolean;
}

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function diff(prev: FleetArtifact | undefined, cur: FleetArtifact): string[] {
  if (!prev) return ['first epoch seen'];
  const out: string[] = [];
  if (prev.fleetId !== cur.fleetId) out.push(`fleetId ${prev.fleetId} → ${cur.fleetId}`);
  for (const k of cur.keys) {
    const old = prev.keys.find((p) => p.role === k.role);
    if (!old) out.push(`${k.role} key added`);
    else if (old.publicKey !== k.publicKey || old.alg !== k.alg) out.push(`${k.role} key rotated`);
  }
  for (const m of cur.members) {
    const old = prev.members.find((p) => p.id === m.id);
    if (!old) out.push(`member ${m.id} (${m.site}) added`);
    else if (old.identityKey !== m.identityKey || old.site !== m.site) out.push(`member ${m.id} changed`);
  }
  for (const m of prev.members) if (!cur.members.some((c) => c.id === m.id)) out.push(`member ${m.id} removed`);
  if (prev.quorum !== cur.quorum) out.push(`quorum ${prev.quorum} → ${cur.quorum}`);
  if (prev.measurement !== cur.measurement) out.push(`measurement ${prev.measurement.slice(0, 12)}… → ${cur.measurement.slice(0, 12)}…`);
  if (prev.notAfter !== cur.notAfter || prev.notBefore !== cur.notBefore) out.push(`validity ${cur.notBefore} .. ${cur.notAfter}`);
  return out.length ? out : ['no change'];
}

/** The artifact bytes must hash to the signed digest and be about the namespace. */
function checkArtifact(bytes: Uint8Array, st: WitnessStatement, namespace: string): FleetArtifact {
  const d = artifactDigest(bytes);
  if (!equalBytes(d, st.digest)) throw new Error(`artifact SHA-256 ${encodeHex(d)} ≠ statement digest ${encodeHex(st.digest)}`);
  const artifact = parseFleetArtifact(bytes);
  if (artifact.namespace !== namespace) throw new Error(`artifact is for namespace ${artifact.namespace}`);
  return artifact;
}

/** An epoch's artifact, accepted only under a verified statement. */
async function verifiedArtifact(w: WitnessReader, verifier: NoteVerifier, namespace: string, epoch: number): Promise<FleetArtifact> {
  const rec = await w.epochRecord(namespace, epoch);
  const { statement } = openEpochRecord(rec, verifier, namespace, epoch);
  assertRecordMatchesStatement(rec, statement);
  return checkArtifact(await w.artifact(namespace, epoch), statement, namespace);
}

export async function auditNamespace(w: WitnessReader, namespace: string, opts: AuditOptions = {}): Promise<AuditResult> {
  const info = await w.keyInfo();
  const verifier: NoteVerifier = parseVerifierKey(opts.witnessKey ?? info.verifierKey);
  if (opts.witnessKey && info.verifierKey !== opts.witnessKey) {
    throw new BkvError('VERIFICATION_FAILED', `the witness reports key ${info.verifierKey}, not the pinned ${opts.witnessKey}`);
  }
  const cp: SignedCheckpoint = verifyCheckpoint(await w.checkpoint(), verifier);

  // Consistency with the checkpoint seen earlier (persisted), then remember the newest.
  const consistency: AuditResult['consistency'] = { ok: true, to: cp.size };
  if (opts.store) {
    const prevNote = await opts.store.get(checkpointKey(verifier.name));
    if (prevNote !== undefined) {
      try {
        const prev = verifyCheckpoint(prevNote, verifier);
        consistency.from = prev.size;
        const [a, b] = prev.size <= cp.size ? [prev.size, cp.size] : [cp.size, prev.size];
        if (b > cp.size) throw new BkvError('VERIFICATION_FAILED', `the witness log shrank from ${prev.size} to ${cp.size} entries`);
        const proof = a === 0 || a === b ? [] : await w.consistencyProof(a, b);
        checkCheckpointConsistency(prev, cp, proof);
      } catch (e) {
        consistency.ok = false;
        consistency.error = errMsg(e);
      }
    }
    if (consistency.ok) await opts.store.set(checkpointKey(verifier.name), cp.note);
  }

  let cosignatures: AuditResult['cosignatures'];
  if (opts.policy) {
    const p = opts.policy;
    const label = (v: { name: string }) => p.witnesses.find((x) => x.verifier === v)?.label ?? v.name;
    try {
      const q = verifyCosignatureQuorum(cp.note, p);
      cosignatures = { ok: true, quorum: p.quorum, of: p.witnesses.length, valid: q.valid.map(label), missing: q.missing.map(label), invalid: q.invalid.map((i) => ({ name: label(i.cosigner), reason: i.reason })) };
    } catch (e) {
      if (!(e instanceof CosignatureQuorumError)) throw e;
      cosignatures = { ok: false, quorum: p.quorum, of: p.witnesses.length, valid: [...e.validCosigners], missing: [...e.missingCosigners], invalid: [...e.invalidCosigners] };
    }
  }

  const latest = await w.latestEpoch(namespace);
  const last = Math.min(latest, opts.beforeEpoch !== undefined ? opts.beforeEpoch - 1 : latest);
  const limit = opts.limit ?? 50;
  const first = Math.max(1, last - limit + 1);
  const epochs: EpochAudit[] = [];
  // The epoch before the window, which the first row's changes are measured against, must verify too.
  let prevArtifact: FleetArtifact | undefined;
  let prevUnverified = false;
  if (first > 1) {
    try {
      prevArtifact = await verifiedArtifact(w, verifier, namespace, first - 1);
    } catch (e) {
      if (isAlteredRecord(e) || (e instanceof BkvError && e.code !== 'VERIFICATION_FAILED' && e.code !== 'MALFORMED')) throw e;
      throw new BkvError(
        'VERIFICATION_FAILED',
        `epoch ${first - 1}, which the changes of epoch ${first} are measured against, does not verify: ${errMsg(e)}`,
        { check: 'previous-epoch', namespace, epoch: first - 1 },
      );
    }
  }
  for (let epoch = first; epoch <= last; epoch++) {
    const checks = Object.fromEntries(AUDIT_CHECKS.map((c) => [c, { ok: false, error: 'not checked' }])) as EpochAudit['checks'];
    const row: EpochAudit = { epoch, checks, changes: [] };
    epochs.push(row);
    const run = async (c: AuditCheck, f: () => void | Promise<void>): Promise<boolean> => {
      try {
        await f();
        checks[c] = { ok: true };
        return true;
      } catch (e) {
        checks[c] = { ok: false, error: errMsg(e) };
        return false;
      }
    };
    let rec: EpochRecord;
    try {
      rec = await w.epochRecord(namespace, epoch);
    } catch (e) {
      for (const c of AUDIT_CHECKS) checks[c] = { ok: false, error: `statement unavailable: ${errMsg(e)}` };
      continue;
    }
    // Values shown for an epoch come from the signed statement only; a record whose unsigned
    // copies disagree with it stops the audit (isAlteredRecord).
    let signed: SignedEpoch | undefined;
    await run('witness-signature', () => {
      signed = openEpochRecord(rec, verifier, namespace, epoch);
    });
    if (signed) {
      assertRecordMatchesStatement(rec, signed.statement);
      row.timestamp = signed.statement.timestamp;
      row.digest = encodeHex(signed.statement.digest);
    }
    let artifact: FleetArtifact | undefined;
    let artifactBytes: Uint8Array | undefined;
    await run('digest', async () => {
      if (!signed) throw new Error('not checked: the statement did not verify');
      artifactBytes = await w.artifact(namespace, epoch);
      artifact = checkArtifact(artifactBytes, signed.statement, namespace);
    });
    await run('counter-signature', () => {
      if (!rec.counterSignature) throw new Error('no fleet counter-signature uploaded');
      if (!signed) throw new Error('not checked: the statement did not verify');
      if (!artifact) throw new Error('artifact not verified');
      verifyCounterSignature(signed.witnessSignature, decodeBase64(rec.counterSignature, 'counter-signature', 64), fleetPublicKeys(artifact).signingPublicKey);
    });
    let inclusionProof: Uint8Array[] = [];
    await run('inclusion', async () => {
      if (!Number.isSafeInteger(rec.leafIndex) || rec.leafIndex < 0) throw new Error('the record has no valid leaf index');
      if (rec.leafIndex >= cp.size) throw new Error(`leaf ${rec.leafIndex} is beyond the checkpoint (size ${cp.size})`);
      const statementBytes = signed?.statementBytes ?? decodeBase64(rec.statement, 'statement');
      inclusionProof = await w.inclusionProof(rec.leafIndex, cp.size);
      verifyInclusion(rec.leafIndex, cp.size, leafHash(statementBytes), inclusionProof, cp.rootHash);
    });
    if (signed && artifact && artifactBytes) {
      row.fleetId = artifact.fleetId;
      row.changes = prevUnverified ? [`epoch ${epoch - 1} did not verify: changes unknown`] : diff(prevArtifact, artifact);
      if (AUDIT_CHECKS.every((c) => checks[c].ok)) {
        opts.onVerifiedEpoch?.({
          epoch,
          artifact,
          artifactBytes,
          statement: signed.statementBytes,
          witnessSignature: signed.witnessSignature,
          counterSignature: decodeBase64(rec.counterSignature!, 'counter-signature', 64),
          leafIndex: rec.leafIndex,
          inclusionProof,
          evidence: rec.evidence === true,
        });
      }
    }
    prevArtifact = artifact;
    prevUnverified = artifact === undefined;
  }
  const ok = consistency.ok && (cosignatures?.ok ?? true) && epochs.every((e) => AUDIT_CHECKS.every((c) => e.checks[c].ok));
  return {
    ok,
    namespace,
    witness: verifier.name,
    checkpoint: { size: cp.size, rootHash: encodeHex(cp.rootHash) },
    consistency,
    ...(cosignatures ? { cosignatures } : {}),
    epochs,
  };
}

/** A readable table: one row per epoch, ✓/✗ per check, then failures and key changes. */
export function formatAudit(r: AuditResult): string[] {
  const mark = (ok: boolean) => (ok ? '✓' : '✗');
  const lines: string[] = [];
  lines.push(`namespace ${r.namespace} — witness ${r.witness} — checkpoint size ${r.checkpoint.size} root ${r.checkpoint.rootHash.slice(0, 16)}…`);
  lines.push(
    `log consistency ${mark(r.consistency.ok)} ` +
      (r.consistency.from !== undefined ? `(tree ${r.consistency.from} → ${r.consistency.to})` : '(no earlier checkpoint recorded)') +
      (r.consistency.error ? `: ${r.consistency.error}` : ''),
  );
  if (r.cosignatures) {
    const c = r.cosignatures;
    lines.push(
      `cosignatures ${mark(c.ok)} ${c.valid.length} of the policy's ${c.of} witnesses (quorum ${c.quorum})` +
        (c.valid.length ? `: ${c.valid.join(', ')}` : '') +
        (c.missing.length ? `; missing ${c.missing.join(', ')}` : '') +
        (c.invalid.length ? `; invalid ${c.invalid.map((i) => `${i.name} (${i.reason})`).join(', ')}` : ''),
    );
  }
  lines.push('');
  lines.push('epoch  logged (UTC)           digest      dgst  sig  csig  incl  fleet: changes');
  for (const e of r.epochs) {
    const ts = e.timestamp !== undefined ? new Date(e.timestamp).toISOString().slice(0, 19).replace('T', ' ') : '?'.padEnd(19);
    lines.push(
      `${String(e.epoch).padStart(5)}  ${ts.padEnd(20)}  ${(e.digest ?? '?').slice(0, 10).padEnd(10)}  ${mark(e.checks.digest.ok)}     ${mark(e.checks['witness-signature'].ok)}    ${mark(e.checks['counter-signature'].ok)}     ${mark(e.checks.inclusion.ok)}    ${e.fleetId ?? '?'}: ${e.changes.join('; ')}`,
    );
  }
  const failures = r.epochs.flatMap((e) =>
    AUDIT_CHECKS.filter((c) => !e.checks[c].ok).map((c) => `  epoch ${e.epoch} ${c}: ${e.checks[c].error}`),
  );
  if (failures.length) lines.push('', 'failures:', ...failures);
  lines.push('', r.ok ? `all ${r.epochs.length} epochs verified` : 'AUDIT FAILED');
  return lines;
}
