/**
 * docs/formats/vault-channel.md ("OPAQUE", "Key derivations") must be enough to implement a client.
 * These tests recompute, from those statements alone and with other libraries (@noble for RFC 9807,
 * node:crypto for HKDF and AES-GCM), what @serenity-kit/opaque and our code produce: the
 * registration record, export key and session key (ristretto255, SHA-512, Argon2id with a 16-byte
 * zero salt and 64 bytes out, memory in KiB, no identities, empty context), the wrapped key, the
 * release (no AAD) and the continuation keys.
 */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import * as opaque from '@serenity-kit/opaque';
import { ristretto255, ristretto255_oprf } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, concatBytes } from '@noble/curves/utils.js';
import { argon2id } from '@noble/hashes/argon2.js';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { ksfConfig, DEFAULT_CLIENT_KSF } from '../../src/client/sdk/vault-client.js';
import { pad, sealContinuation } from '../../src/shared/protocol/channel.js';
import { sealForSession, wrapBackupKey } from '../../src/shared/protocol/key-wrap.js';
import { fromB64, type KsfParams } from '../../src/shared/protocol/messages.js';
import { DEFAULT_KSF } from '../../src/trusted/core/vault-core.js';

const te = new TextEncoder();
const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
const d = (s: string) => fromB64(s, 'test');
const none = new Uint8Array(0);

/** RFC 9807 §4.1.2 Store/Recover: randomized_password from the OPRF output and the KSF. */
function randomizedPassword(password: string, blind: Uint8Array, evaluated: Uint8Array, k: KsfParams): Uint8Array {
  const oprfOutput = ristretto255_oprf.oprf.finalize(te.encode(password), blind, evaluated); // 64 bytes (SHA-512)
  const stretched = argon2id(oprfOutput, new Uint8Array(16), { t: k.iterations, m: k.memory, p: k.parallelism, dkLen: 64 });
  return extract(sha512, concatBytes(oprfOutput, stretched), none);
}

/** RFC 9807 §6.4.2 Expand-Label with SHA-512 (Nx = 64). */
function expandLabel(secret: Uint8Array, label: string, context: Uint8Array, length: number): Uint8Array {
  const l = te.encode(`OPAQUE-${label}`);
  return expand(sha512, secret, concatBytes(u16(length), Uint8Array.of(l.length), l, Uint8Array.of(context.length), context), length);
}

const dh = (secretLE: Uint8Array, publicKey: Uint8Array) => ristretto255.Point.fromBytes(publicKey).multiply(bytesToNumberLE(secretLE)).toBytes();

/** HKDF-SHA256(key, "label") as the docs define it: salt empty, info = the ASCII label, 32 bytes. */
const hkdf256 = (key: Uint8Array, label: string) => new Uint8Array(hkdfSync('sha256', key, none, te.encode(label), 32));

function gcmSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  return concatBytes(nonce, c.update(pt), c.final(), c.getAuthTag());
}

const KSF: KsfParams = { memory: 1024, iterations: 2, parallelism: 4 };
const password = 'correct horse battery staple';
let serverSetup: string;

beforeAll(async () => {
  await opaque.ready;
  serverSetup = opaque.server.createSetup();
});

describe('the OPAQUE configuration in docs/formats/vault-channel.md', () => {
  it('reproduces registration, export key and session key from the documented parameters', () => {
    // Registration, with the key-stretching setting the SDK hands the library.
    const start = opaque.client.startRegistration({ password });
    const { registrationResponse } = opaque.server.createRegistrationResponse({ serverSetup, userIdentifier: 'alice', registrationRequest: start.registrationRequest });
    const reg = opaque.client.finishRegistration({ clientRegistrationState: start.clientRegistrationState, registrationResponse, password, keyStretching: ksfConfig(KSF) });
    expect(d(start.registrationRequest)).toHaveLength(32);
    const response = d(registrationResponse);
    expect(response).toHaveLength(64);
    const serverPk = response.slice(32);
    expect(serverPk).toEqual(d(reg.serverStaticPublicKey));
    const record = d(reg.registrationRecord);
    expect(record).toHaveLength(192);

    const blind = d(start.clientRegistrationState).slice(0, 32); // the library's state: blind ‖ blinded element
    const rp = randomizedPassword(password, blind, response.slice(0, 32), KSF);
    const [clientPk, maskingKey, nonce, authTag] = [record.slice(0, 32), record.slice(32, 96), record.slice(96, 128), record.slice(128)];
    expect(expand(sha512, rp, te.encode('MaskingKey'), 64)).toEqual(maskingKey);
    expect(expand(sha512, rp, concatBytes(nonce, te.encode('ExportKey')), 64)).toEqual(d(reg.exportKey));
    const client = ristretto255_oprf.oprf.deriveKeyPair(expand(sha512, rp, concatBytes(nonce, te.encode('PrivateKey')), 32), te.encode('OPAQUE-DeriveDiffieHellmanKeyPair'));
    expect(client.publicKey).toEqual(clientPk);
    // No identities: both default to the public keys.
    const cleartext = concatBytes(serverPk, u16(32), serverPk, u16(32), clientPk);
    expect(hmac(sha512, expand(sha512, rp, concatBytes(nonce, te.encode('AuthKey')), 64), concatBytes(nonce, cleartext))).toEqual(authTag);

    // Login: 3DH with SHA-512, empty context, no identities.
    const ls = opaque.client.startLogin({ password });
    const { loginResponse } = opaque.server.startLogin({ serverSetup, registrationRecord: reg.registrationRecord, startLoginRequest: ls.startLoginRequest, userIdentifier: 'alice' });
    const fin = opaque.client.finishLogin({ clientLoginState: ls.clientLoginState, loginResponse, password, keyStretching: ksfConfig(KSF) })!;
    const ke1 = d(ls.startLoginRequest);
    const ke2 = d(loginResponse);
    expect([ke1.length, ke2.length, d(fin.finishLoginRequest).length]).toEqual([96, 320, 64]);
    const state = d(ls.clientLoginState); // blind ‖ KE1 ‖ client ephemeral secret ‖ client nonce
    expect(state.slice(32, 128)).toEqual(ke1);
    const eSk = state.slice(128, 160);
    const [credentialResponse, serverNonce, serverEpk] = [ke2.slice(0, 192), ke2.slice(192, 224), ke2.slice(224, 256)];
    const context = none;
    const preamble = concatBytes(te.encode('OPAQUEv1-'), u16(context.length), context, u16(32), clientPk, ke1, u16(32), serverPk, credentialResponse, serverNonce, serverEpk);
    const prk = extract(sha512, concatBytes(dh(eSk, serverEpk), dh(eSk, serverPk), dh(client.secretKey, serverEpk)), none);
    expect(expandLabel(prk, 'SessionKey', sha512(preamble), 64)).toEqual(d(fin.sessionKey));
    expect(d(fin.exportKey)).toEqual(d(reg.exportKey));
  });

  it('Argon2id memory is in KiB: the same password under another memory gives another export key', () => {
    const run = (k: KsfParams) => {
      const start = opaque.client.startRegistration({ password });
      const { registrationResponse } = opaque.server.createRegistrationResponse({ serverSetup, userIdentifier: 'bob', registrationRequest: start.registrationRequest });
      const reg = opaque.client.finishRegistration({ clientRegistrationState: start.clientRegistrationState, registrationResponse, password, keyStretching: ksfConfig(k) });
      const record = d(reg.registrationRecord);
      const rp = randomizedPassword(password, d(start.clientRegistrationState).slice(0, 32), d(registrationResponse).slice(0, 32), k);
      return { ok: equal(expand(sha512, rp, concatBytes(record.slice(96, 128), te.encode('ExportKey')), 64), d(reg.exportKey)) };
    };
    const equal = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
    expect(run({ memory: 64, iterations: 1, parallelism: 1 }).ok).toBe(true);
    expect(run({ memory: 2048, iterations: 1, parallelism: 2 }).ok).toBe(true);
  });

  it('the default Argon2id parameters are the documented ones, the same for the SDK and the fake-record path', () => {
    expect(DEFAULT_CLIENT_KSF).toEqual({ memory: 65536, iterations: 3, parallelism: 4 });
    expect(DEFAULT_KSF).toEqual(DEFAULT_CLIENT_KSF);
  });
});

describe('HKDF-SHA256(key, "label") and the AES-GCM layouts', () => {
  const exportKey = Uint8Array.from({ length: 64 }, (_, i) => i);
  const sessionKey = Uint8Array.from({ length: 64 }, (_, i) => 200 - i);
  const k = Uint8Array.from({ length: 32 }, (_, i) => 100 + i);
  const nonce = Uint8Array.from({ length: 12 }, (_, i) => 7 * i);

  it('wrappedKey: AES-256-GCM under HKDF-SHA256(export key, "bkv wrap backup key v1"), AAD the UTF-8 account', () => {
    const wrapped = wrapBackupKey(exportKey, 'zoë', k, nonce);
    expect(wrapped).toHaveLength(60);
    expect(wrapped).toEqual(gcmSeal(hkdf256(exportKey, 'bkv wrap backup key v1'), nonce, te.encode('zoë'), k));
  });

  it('release: AES-256-GCM under HKDF-SHA256(session key, "bkv session release v1"), no AAD', () => {
    const wrapped = wrapBackupKey(exportKey, 'zoë', k, nonce);
    const release = sealForSession(sessionKey, wrapped, nonce);
    expect(release).toHaveLength(12 + 60 + 16);
    expect(release).toEqual(gcmSeal(hkdf256(sessionKey, 'bkv session release v1'), nonce, none, wrapped));
    const key = hkdf256(sessionKey, 'bkv session release v1');
    const dec = createDecipheriv('aes-256-gcm', key, release.subarray(0, 12));
    dec.setAuthTag(release.subarray(release.length - 16));
    expect(new Uint8Array(Buffer.concat([dec.update(release.subarray(12, release.length - 16)), dec.final()]))).toEqual(wrapped);
  });

  it('continuation: request and reply keys from HKDF-SHA256(continuation key, label), AAD account and ticket', () => {
    const ck = Uint8Array.from({ length: 32 }, (_, i) => 3 * i);
    const ticket = Uint8Array.from({ length: 40 }, (_, i) => i ^ 0x5a);
    const msg = te.encode('{"v":1}');
    const { envelope, responseKey } = sealContinuation(ck, 'zoë', ticket, msg, nonce);
    expect(responseKey).toEqual(hkdf256(ck, 'bkv continuation reply v1'));
    const aad = concatBytes(te.encode('bkv account\0zoë'), ticket);
    const expected = concatBytes(Uint8Array.of(2), u16(ticket.length), ticket, gcmSeal(hkdf256(ck, 'bkv continuation request v1'), nonce, aad, pad(msg)));
    expect(envelope).toEqual(expected);
  });
});
