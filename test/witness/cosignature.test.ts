import { describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  CosignatureQuorumError,
  WitnessPolicyError,
  addSignatureLines,
  checkCosignatures,
  cosignatureLine,
  cosignatureMessage,
  cosignerKeyId,
  formatCosignerVerifierKey,
  formatVerifierKey,
  noteSignerFromSeed,
  parseCosignerVerifierKey,
  parseWitnessPolicy,
  signCheckpoint,
  verifyCheckpoint,
  verifyCosignatureQuorum,
  type Cosigner,
} from '../../src/client/fleet/index.js';
import { BkvError } from '../../src/shared/errors.js';
import { readVectorJson } from '../helpers/vectors.js';

// The shared C2SP test vector, read in place (test/helpers/vectors.ts finds the shared directory).
const vector = readVectorJson<{
  witness_seed_hex: string;
  witness_name: string;
  witness_public_key_b64: string;
  key_id_hex: string;
  checkpoint_body: string;
  timestamp: number;
  signed_message: string;
  signature_line: string;
}>('cosignature', 'ed25519-cosignature-v1.json');

export function cosignerFromSeed(name: string, seed: Uint8Array): Cosigner {
  const publicKey = ed25519.getPublicKey(seed);
  return { name, publicKey, keyId: cosignerKeyId(name, publicKey), sign: (m) => ed25519.sign(m, seed) };
}

const seedOf = (i: number) => new Uint8Array(32).fill(i);

describe('cosignature/v1 (C2SP tlog-cosignature, Ed25519)', () => {
  const seed = Buffer.from(vector.witness_seed_hex, 'hex');
  const c = cosignerFromSeed(vector.witness_name, seed);

  it('matches the shared test vector: key, key ID, signed message and signature line', () => {
    expect(Buffer.from(c.publicKey).toString('base64')).toBe(vector.witness_public_key_b64);
    expect(c.keyId.toString(16).padStart(8, '0')).toBe(vector.key_id_hex);
    expect(Buffer.from(cosignatureMessage(vector.checkpoint_body, vector.timestamp)).toString('utf8')).toBe(vector.signed_message);
    expect(cosignatureLine(vector.checkpoint_body, vector.timestamp, c)).toBe(vector.signature_line + '\n');
  });

  it('verifies the vector line on a note and rejects it on another body or time', () => {
    const key = formatCosignerVerifierKey(vector.witness_name, c.publicKey);
    expect(key).toBe(`${vector.witness_name}+${vector.key_id_hex}+${Buffer.from([4, ...c.publicKey]).toString('base64')}`);
    const v = parseCosignerVerifierKey(key);
    const note = `${vector.checkpoint_body}\n${vector.signature_line}\n`;
    const r = checkCosignatures(note, [v]);
    expect(r.valid.map((x) => x.name)).toEqual([vector.witness_name]);
    expect(r.timestamps.get(vector.witness_name)).toBe(vector.timestamp);
    // attack: the same line moved onto a checkpoint with another size
    const moved = note.replace('\n10\n', '\n11\n');
    const r2 = checkCosignatures(moved, [v]);
    expect(r2.valid).toEqual([]);
    expect(r2.invalid[0]!.reason).toMatch(/does not verify/);
    // a 0x01 (plain note) key is not a cosignature key
    expect(() => parseCosignerVerifierKey(formatVerifierKey(vector.witness_name, c.publicKey))).toThrow(/type 0x04/);
    // a verifier key whose key ID does not match
    expect(() => parseCosignerVerifierKey(key.replace(vector.key_id_hex, '00000000'))).toThrow(/key ID/);
  });

  it('a cosigned checkpoint still opens with the log key; extra lines are one signed note', () => {
    const log = noteSignerFromSeed('example.org/log', seedOf(9));
    const note = signCheckpoint({ origin: 'example.org/log', size: 3, rootHash: new Uint8Array(32).fill(1), extensions: [] }, log);
    const w = cosignerFromSeed('w1.example', seedOf(1));
    const body = note.slice(0, note.indexOf('\n\n') + 1);
    const cosigned = addSignatureLines(note, [cosignatureLine(body, 1700000000, w)]);
    expect(cosigned.split('\n— ').length).toBe(3);
    expect(verifyCheckpoint(cosigned, log).size).toBe(3);
    expect(addSignatureLines(cosigned, [cosigned.split('\n').at(-2)!])).toBe(cosigned); // no duplicates
  });
});

describe('witness policy files', () => {
  const ws = [1, 2, 3].map((i) => cosignerFromSeed(`w${i}.example`, seedOf(i)));
  const keys = ws.map((w) => formatCosignerVerifierKey(w.name, w.publicKey));
  const policyText = (k: number) => `# demo\nwitness a ${keys[0]} http://127.0.0.1:1\nwitness b ${keys[1]}\nwitness c ${keys[2]}\nquorum ${k}\n`;

  it('parses k of n', () => {
    const p = parseWitnessPolicy(policyText(2));
    expect(p.quorum).toBe(2);
    expect(p.witnesses.map((w) => w.label)).toEqual(['a', 'b', 'c']);
    expect(p.witnesses[0]!.url).toBe('http://127.0.0.1:1');
  });

  it.each([
    [policyText(4), 5, /quorum 4 is larger than the 3/],
    [policyText(0), 5, /below 1/],
    [`witness a ${keys[0]}\nwitness b ${keys[0]}\nquorum 1\n`, 2, /duplicate witness key/],
    [`witness a ${keys[0]}\nwitness a ${keys[1]}\nquorum 1\n`, 2, /used twice/],
    [`witness a ${keys[0]}\n`, 1, /no "quorum/],
    [`witness a ${keys[0]}\nquorum 1\nquorum 1\n`, 3, /second quorum/],
    [`witness a ${keys[0]}\nwitnes b ${keys[1]}\nquorum 1\n`, 2, /unknown keyword/],
    [`witness a ${keys[0]!.slice(0, -4)}\nquorum 1\n`, 1, /./],
    [`witness a ${keys[0]}\nquorum 01\n`, 2, /decimal/],
  ])('refuses a bad policy with a typed error naming the line (%#)', (text, line, re) => {
    let err: unknown;
    try {
      parseWitnessPolicy(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WitnessPolicyError);
    expect(err).toBeInstanceOf(BkvError);
    expect((err as WitnessPolicyError).line).toBe(line);
    expect((err as Error).message).toMatch(new RegExp(`line ${line}:`));
    expect((err as Error).message).toMatch(re);
  });

  it('quorum: met with two valid cosignatures; not met with one, naming the missing and invalid', () => {
    const policy = parseWitnessPolicy(policyText(2));
    const log = noteSignerFromSeed('example.org/log', seedOf(9));
    const note = signCheckpoint({ origin: 'example.org/log', size: 5, rootHash: new Uint8Array(32).fill(7), extensions: [] }, log);
    const body = note.slice(0, note.indexOf('\n\n') + 1);
    const two = addSignatureLines(note, [cosignatureLine(body, 100, ws[0]!), cosignatureLine(body, 100, ws[2]!)]);
    expect(verifyCosignatureQuorum(two, policy).valid.length).toBe(2);
    // attack: the second cosignature is one witness's line duplicated: distinct witnesses count
    const dup = addSignatureLines(note, [cosignatureLine(body, 100, ws[0]!), cosignatureLine(body, 101, ws[0]!)]);
    expect(() => verifyCosignatureQuorum(dup, policy)).toThrow(CosignatureQuorumError);
    // attack: a forged line for witness b (signed by another key under b's name and key ID)
    const forged = cosignatureLine(body, 100, { ...ws[1]!, sign: ws[2]!.sign });
    const one = addSignatureLines(note, [cosignatureLine(body, 100, ws[0]!), forged]);
    let err: CosignatureQuorumError | undefined;
    try {
      verifyCosignatureQuorum(one, policy);
    } catch (e) {
      err = e as CosignatureQuorumError;
    }
    expect(err).toBeInstanceOf(CosignatureQuorumError);
    expect(err!.code).toBe('VERIFICATION_FAILED');
    expect(err!.details.check).toBe('cosignatures');
    expect(err!.validCosigners).toEqual(['a']);
    expect(err!.missingCosigners).toEqual(['c']);
    expect(err!.invalidCosigners.map((i) => i.name)).toEqual(['b']);
    expect(err!.message).toMatch(/needs 2 of 3.*missing: c.*invalid: b/);
  });
});
