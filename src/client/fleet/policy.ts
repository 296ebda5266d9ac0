/**
 * Witness policies: which cosigners a client trusts and how many of them (k of n) must have
 * cosigned a checkpoint before the client believes it. Browser-safe. Format: docs/formats/witness-policy.md
 * (line-based, close to Sigsum's policy files):
 *
 *   # comment
 *   log <log verifier key>                         (optional, repeatable)
 *   witness <label> <cosigner verifier key> [<url>] (one per cosigner)
 *   quorum <k>                                      (exactly once, 1 ≤ k ≤ number of witnesses)
 */
import { equalBytes } from '../../shared/bytes.js';
import { BkvError } from '../../shared/errors.js';
import { parseVerifierKey, type NoteVerifier } from '../../shared/fleet-formats/note.js';
import {
  CosignatureQuorumError,
  checkCosignatures,
  parseCosignerVerifierKey,
  type CheckCosignaturesOptions,
  type CosignatureCheck,
  type CosignerVerifier,
} from './cosignature.js';


export interface PolicyWitness {
  readonly label: string;
  readonly verifier: CosignerVerifier;
  /** The verifier key string as written in the policy. */
  readonly verifierKey: string;
  readonly url?: string;
}

export interface WitnessPolicy {
  /** Log keys listed in the policy (optional: clients may pin log keys elsewhere). */
  readonly logs: readonly NoteVerifier[];
  readonly witnesses: readonly PolicyWitness[];
  /** k: how many distinct listed witnesses must have cosigned. */
  readonly quorum: number;
}

/** A policy file that cannot be used; `line` is the 1-based line at fault. */
export class WitnessPolicyError extends BkvError {
  constructor(
    readonly line: number,
    reason: string,
  ) {
    super('MALFORMED', `witness policy line ${line}: ${reason}`, { check: 'policy', line });
    this.name = 'WitnessPolicyError';
  }
}

const MAX_POLICY_BYTES = 64 * 1024;
const MAX_WITNESSES = 64;

export function parseWitnessPolicy(text: string): WitnessPolicy {
  if (typeof text !== 'string') throw new WitnessPolicyError(0, 'policy must be text');
  if (text.length > MAX_POLICY_BYTES) throw new WitnessPolicyError(0, `policy is larger than ${MAX_POLICY_BYTES} bytes`);
  const logs: NoteVerifier[] = [];
  const witnesses: PolicyWitness[] = [];
  let quorum: { k: number; line: number } | undefined;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, idx) => {
    const n = idx + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const content = line.replace(/#.*$/, '').trim();
    if (content === '') return;
    const f = content.split(/[ \t]+/);
    const kw = f[0]!;
    if (kw === 'log') {
      if (f.length !== 2) throw new WitnessPolicyError(n, 'expected "log <verifier key>"');
      let v: NoteVerifier;
      try {
        v = parseVerifierKey(f[1]!);
      } catch (e) {
        throw new WitnessPolicyError(n, (e as Error).message);
      }
      if (logs.some((l) => l.name === v.name && l.keyId === v.keyId)) throw new WitnessPolicyError(n, `log key ${v.name} is listed twice`);
      logs.push(v);
    } else if (kw === 'witness') {
      if (f.length !== 3 && f.length !== 4) throw new WitnessPolicyError(n, 'expected "witness <label> <cosigner verifier key> [<url>]"');
      const label = f[1]!;
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(label)) throw new WitnessPolicyError(n, `invalid witness label "${label}"`);
      let v: CosignerVerifier;
      try {
        v = parseCosignerVerifierKey(f[2]!);
      } catch (e) {
        throw new WitnessPolicyError(n, (e as Error).message);
      }
      if (witnesses.some((w) => w.label === label)) throw new WitnessPolicyError(n, `witness label "${label}" is used twice`);
      const dup = witnesses.find((w) => equalBytes(w.verifier.publicKey, v.publicKey) || (w.verifier.name === v.name && w.verifier.keyId === v.keyId));
      if (dup) throw new WitnessPolicyError(n, `duplicate witness key: "${label}" has the same key as "${dup.label}"`);
      let url: string | undefined;
      if (f[3] !== undefined) {
        if (!/^https?:\/\/\S+$/.test(f[3])) throw new WitnessPolicyError(n, `witness URL must start with http:// or https://`);
        url = f[3];
      }
      if (witnesses.length >= MAX_WITNESSES) throw new WitnessPolicyError(n, `at most ${MAX_WITNESSES} witnesses`);
      witnesses.push({ label, verifier: v, verifierKey: f[2]!, ...(url ? { url } : {}) });
    } else if (kw === 'quorum') {
      if (quorum) throw new WitnessPolicyError(n, `a second quorum line (the first is line ${quorum.line})`);
      if (f.length !== 2 || !/^(0|[1-9][0-9]{0,3})$/.test(f[1]!)) throw new WitnessPolicyError(n, 'expected "quorum <k>" with k a decimal number');
      quorum = { k: Number(f[1]), line: n };
    } else {
      throw new WitnessPolicyError(n, `unknown keyword "${kw}" (expected log, witness or quorum)`);
    }
  });
  if (!quorum) throw new WitnessPolicyError(lines.length, 'no "quorum <k>" line');
  if (witnesses.length === 0) throw new WitnessPolicyError(quorum.line, 'no witnesses listed');
  if (quorum.k < 1) throw new WitnessPolicyError(quorum.line, `quorum ${quorum.k} is below 1`);
  if (quorum.k > witnesses.length) {
    throw new WitnessPolicyError(quorum.line, `quorum ${quorum.k} is larger than the ${witnesses.length} witnesses listed`);
  }
  return { logs, witnesses, quorum: quorum.k };
}

/** Writes a policy in the file format (what `parseWitnessPolicy` reads back). */
export function formatWitnessPolicy(p: { logs?: readonly string[]; witnesses: readonly { label: string; verifierKey: string; url?: string }[]; quorum: number }): string {
  let s = '# bkv witness policy: a checkpoint needs cosignatures from `quorum` of these witnesses\n';
  for (const l of p.logs ?? []) s += `log ${l}\n`;
  for (const w of p.witnesses) s += `witness ${w.label} ${w.verifierKey}${w.url ? ' ' + w.url : ''}\n`;
  s += `quorum ${p.quorum}\n`;
  parseWitnessPolicy(s);
  return s;
}

export interface QuorumResult extends CosignatureCheck {
  readonly quorum: number;
}

/**
 * Requires at least `policy.quorum` valid cosignatures from distinct witnesses of the policy on a
 * signed checkpoint note (whose log signature the caller checks). Throws CosignatureQuorumError
 * (VERIFICATION_FAILED, check "cosignatures") naming the missing and invalid witnesses.
 */
export function verifyCosignatureQuorum(note: string, policy: WitnessPolicy, opts: CheckCosignaturesOptions = {}): QuorumResult {
  const r = checkCosignatures(
    note,
    policy.witnesses.map((w) => w.verifier),
    opts,
  );
  const label = (v: CosignerVerifier) => policy.witnesses.find((w) => w.verifier === v)?.label ?? v.name;
  if (r.valid.length < policy.quorum) {
    const missing = r.missing.map(label);
    const invalid = r.invalid.map((i) => ({ name: label(i.cosigner), reason: i.reason }));
    const parts = [
      `checkpoint has ${r.valid.length} valid cosignature(s), the witness policy needs ${policy.quorum} of ${policy.witnesses.length}`,
    ];
    if (r.valid.length) parts.push(`valid: ${r.valid.map(label).join(', ')}`);
    if (missing.length) parts.push(`missing: ${missing.join(', ')}`);
    if (invalid.length) parts.push(`invalid: ${invalid.map((i) => `${i.name} (${i.reason})`).join(', ')}`);
    throw new CosignatureQuorumError(parts.join('; '), policy.quorum, r.valid.map(label), missing, invalid);
  }
  return { ...r, quorum: policy.quorum };
}
