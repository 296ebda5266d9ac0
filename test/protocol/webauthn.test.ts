import { describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { parseAuthenticatorData, parseCoseKey, verifyAssertion, type AssertionPolicy } from '../../src/shared/protocol/webauthn.js';
import { assertWith, coseKey, newCredential } from '../vault/soft-authenticator.js';

const policy: AssertionPolicy = { rpId: 'localhost', origins: ['http://localhost:7480'], requireUserVerification: true };
const challenge = new Uint8Array(52).fill(3);

function check(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (e) {
    return ((e as { details?: { check?: string } }).details?.check ?? (e as { code?: string }).code) as string;
  }
}

describe('WebAuthn assertion verification', () => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    it(`${alg}: a genuine assertion verifies and returns its challenge`, () => {
      const cred = newCredential(alg);
      const v = verifyAssertion(parseCoseKey(cred.cosePublicKey), assertWith(cred, challenge), policy);
      expect(v.challenge).toEqual(challenge);
      expect(v.signCount).toBe(1);
    });

    it(`${alg}: forged, altered or misdirected assertions are refused`, () => {
      const cred = newCredential(alg);
      const key = parseCoseKey(cred.cosePublicKey);
      const good = assertWith(cred, challenge);
      // The attacker flips a signature bit.
      const sig = good.signature.slice();
      sig[sig.length - 5]! ^= 1;
      expect(check(() => verifyAssertion(key, { ...good, signature: sig }, policy))).toBe('signature');
      // The attacker signs with a key of their own (another credential).
      expect(check(() => verifyAssertion(key, assertWith(newCredential(alg), challenge), policy))).toBe('signature');
      // The attacker swaps the challenge in clientDataJSON (signature no longer covers it).
      const cd = JSON.parse(new TextDecoder().decode(good.clientDataJSON)) as Record<string, unknown>;
      cd.challenge = 'AAAA';
      expect(check(() => verifyAssertion(key, { ...good, clientDataJSON: new TextEncoder().encode(JSON.stringify(cd)) }, policy))).toBe('signature');
      // A phishing site's origin, a credential for another relying party, a registration instead of a get.
      expect(check(() => verifyAssertion(key, assertWith(cred, challenge, { origin: 'https://evil.example' }), policy))).toBe('origin');
      expect(check(() => verifyAssertion(key, assertWith(cred, challenge, { rpId: 'evil.example' }), policy))).toBe('rp-id');
      expect(check(() => verifyAssertion(key, assertWith(cred, challenge, { type: 'webauthn.create' }), policy))).toBe('type');
      // No user presence, no user verification.
      expect(check(() => verifyAssertion(key, assertWith(cred, challenge, { flags: 0x04 }), policy))).toBe('user-presence');
      expect(check(() => verifyAssertion(key, assertWith(cred, challenge, { flags: 0x01 }), policy))).toBe('user-verification');
      // Authenticator data altered after signing (sign count raised).
      const ad = good.authenticatorData.slice();
      ad[36]! ^= 0x10;
      expect(check(() => verifyAssertion(key, { ...good, authenticatorData: ad }, policy))).toBe('signature');
    });
  }

  it('parses COSE keys strictly and refuses other algorithms and off-curve points', () => {
    const es = newCredential('ES256');
    expect(parseCoseKey(es.cosePublicKey).publicKey.length).toBe(65);
    expect(check(() => parseCoseKey(coseKey([[1, 3], [3, -257], [-1, 0]])))).toBe('MALFORMED'); // RSA
    expect(check(() => parseCoseKey(coseKey([[1, 2], [3, -7], [-1, 1], [-2, new Uint8Array(32).fill(1)], [-3, new Uint8Array(32).fill(2)]])))).toBe('MALFORMED');
    expect(check(() => parseCoseKey(new Uint8Array([...es.cosePublicKey, 0])))).toBe('MALFORMED');
  });

  it('parses authenticator data with attested credential data', () => {
    const cred = newCredential('EdDSA');
    const ad = new Uint8Array(37 + 18 + cred.credentialId.length + cred.cosePublicKey.length);
    ad.set(sha256(new TextEncoder().encode('localhost')));
    ad[32] = 0x45;
    new DataView(ad.buffer).setUint16(37 + 16, cred.credentialId.length);
    ad.set(cred.credentialId, 37 + 18);
    ad.set(cred.cosePublicKey, 37 + 18 + cred.credentialId.length);
    const parsed = parseAuthenticatorData(ad);
    expect(parsed.attested!.credentialId).toEqual(cred.credentialId);
    expect(parsed.attested!.cosePublicKey).toEqual(cred.cosePublicKey);
    expect(check(() => parseAuthenticatorData(ad.subarray(0, ad.length - 1)))).toBe('MALFORMED');
  });
});
