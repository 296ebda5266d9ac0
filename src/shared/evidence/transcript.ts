/**
 * The ceremony transcript (`bkv-ceremony-transcript/v1`, docs/formats/transcript.md). Browser-safe.
 * Exact UTF-8 bytes: a header naming the ceremony, then one line per step with its inputs and
 * outputs as SHA-256 hashes. Every member signs these bytes with its Ed25519 identity key.
 */
import { decodeHex, fromUtf8, malformed, utf8 } from '../fleet-formats/encoding.js';

export const TRANSCRIPT_HEADER = 'bkv-ceremony-transcript/v1';

export type StepName = 'attest' | 'generate' | 'deliver' | 'endorse' | 'artifact';

/** Fields each step carries, in this order. Hash values are 64 lower-case hex digits, or "-". */
const STEP_FIELDS: Record<StepName, readonly string[]> = {
  attest: ['member', 'out'],
  generate: ['member', 'keys'],
  deliver: ['from', 'to', 'in', 'out'],
  endorse: ['member', 'in', 'keys', 'out'],
  artifact: ['out'],
};
const NUMERIC = new Set(['member', 'from', 'to']);

export interface TranscriptStep {
  name: StepName;
  fields: Record<string, string>;
}

export interface Transcript {
  namespace: string;
  fleet: string;
  nonce: string;
  measurement: string;
  members: number;
  steps: TranscriptStep[];
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function checkValue(name: StepName, k: string, v: string): void {
  if (NUMERIC.has(k)) {
    if (!/^[1-9][0-9]{0,2}$/.test(v)) throw malformed(`transcript ${name}: ${k} must be a member number`);
  } else if (v !== '-') {
    decodeHex(v, `transcript ${name} ${k}`, 32);
  }
}

export function encodeTranscript(t: Transcript): Uint8Array {
  if (!ID.test(t.namespace) || !ID.test(t.fleet)) throw malformed('transcript: bad namespace or fleet');
  decodeHex(t.nonce, 'transcript nonce', 32);
  decodeHex(t.measurement, 'transcript measurement', 32);
  if (!Number.isInteger(t.members) || t.members < 1 || t.members > 255) throw malformed('transcript: members must be 1..255');
  let out = `${TRANSCRIPT_HEADER}\nnamespace ${t.namespace}\nfleet ${t.fleet}\nnonce ${t.nonce}\nmeasurement ${t.measurement}\nmembers ${t.members}\n`;
  t.steps.forEach((s, i) => {
    const spec = STEP_FIELDS[s.name];
    if (!spec) throw malformed(`transcript: unknown step "${s.name}"`);
    const keys = Object.keys(s.fields);
    if (keys.length !== spec.length || spec.some((k) => !(k in s.fields))) throw malformed(`transcript: step ${s.name} needs ${spec.join(', ')}`);
    for (const k of spec) checkValue(s.name, k, s.fields[k]!);
    out += `step ${i + 1} ${s.name} ${spec.map((k) => `${k}=${s.fields[k]}`).join(' ')}\n`;
  });
  return utf8(out);
}

export function parseTranscript(bytes: Uint8Array): Transcript {
  if (bytes.length > 64 * 1024) throw malformed('transcript: too large');
  const text = fromUtf8(bytes, 'transcript');
  if (!text.endsWith('\n')) throw malformed('transcript: must end with a newline');
  const ls = text.slice(0, -1).split('\n');
  const head = ['namespace', 'fleet', 'nonce', 'measurement', 'members'];
  if (ls[0] !== TRANSCRIPT_HEADER || ls.length < head.length + 1) throw malformed(`transcript: not a ${TRANSCRIPT_HEADER}`);
  const hv = head.map((k, i) => {
    const l = ls[i + 1]!;
    if (!l.startsWith(k + ' ')) throw malformed(`transcript: expected "${k}" on line ${i + 2}`);
    return l.slice(k.length + 1);
  });
  if (!/^[1-9][0-9]{0,2}$/.test(hv[4]!)) throw malformed('transcript: members must be a canonical decimal');
  const steps: TranscriptStep[] = ls.slice(head.length + 1).map((l, i) => {
    const parts = l.split(' ');
    if (parts[0] !== 'step' || parts[1] !== String(i + 1)) throw malformed(`transcript: expected "step ${i + 1}" on line ${i + head.length + 2}`);
    const name = parts[2] as StepName;
    const spec = STEP_FIELDS[name];
    if (!spec) throw malformed(`transcript: unknown step "${parts[2]}"`);
    const fields: Record<string, string> = {};
    const kv = parts.slice(3);
    if (kv.length !== spec.length) throw malformed(`transcript: step ${i + 1} (${name}) has the wrong fields`);
    spec.forEach((k, j) => {
      const p = kv[j]!;
      if (!p.startsWith(k + '=')) throw malformed(`transcript: step ${i + 1} expected ${k}=`);
      fields[k] = p.slice(k.length + 1);
    });
    return { name, fields };
  });
  const t: Transcript = { namespace: hv[0]!, fleet: hv[1]!, nonce: hv[2]!, measurement: hv[3]!, members: Number(hv[4]), steps };
  const again = encodeTranscript(t);
  if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) throw malformed('transcript: not canonical');
  return t;
}
