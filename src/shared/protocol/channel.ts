import type { CipherSuite } from '@hpke/core';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../errors.js';
import { hpkeSuite, noblePrimitives, webCryptoSuite, type ChannelPrimitives } from './hpke-suite.js';

/**
 * The end-to-end channel between a client and the vault core (docs/formats/vault-channel.md).
 * Requests are HPKE (RFC 9180, base mode, X25519 / HKDF-SHA256 / AES-256-GCM) to the fleet's
 * encryption key, bound to the account as associated data. The reply key is exported from the
 * same HPKE context, so only the client that made the request can read the reply. The gateway
 * relays opaque bytes.
 *
 * Who computes the primitives is the caller's choice (hpke-suite.ts): clients default to WebCrypto;
 * the core passes the primitives its host injected. The bytes are the same either way.
 */
const te = new TextEncoder();
const INFO = te.encode('bkv vault request v1');
const RESPONSE_LABEL = te.encode('bkv vault response v1');
const CONTINUATION_LABEL = te.encode('bkv vault continuation v1');
const REPLY_AAD = te.encode('bkv vault reply v1');
export const ENVELOPE_VERSION = 1;
/** A follow-up request inside an attempt, sealed with the key exported by its first request. */
export const CONTINUATION_VERSION = 2;
const ENC_BYTES = 32;
/** Plaintexts are padded to a multiple of this, so sizes say little about their content. */
export const PAD_BLOCK = 512;

function accountAad(account: string): Uint8Array {
  return te.encode(`bkv account\0${account}`);
}

const ab = (u: Uint8Array): ArrayBuffer => u.slice().buffer as ArrayBuffer;

export interface ChannelKeyPair {
  publicKey: Uint8Array;
  /** The key pair in the form `suite` uses (kept whole: decapsulation then needs no public-key derivation). */
  keyPair: CryptoKeyPair;
  suite: CipherSuite;
  primitives: ChannelPrimitives;
}

/**
 * Derives the fleet encryption key pair from its 32-byte seed (kept only inside the core), for use
 * with `primitives` (default: @noble, pure JavaScript).
 */
export async function deriveChannelKeyPair(seed: Uint8Array, primitives: ChannelPrimitives = noblePrimitives): Promise<ChannelKeyPair> {
  const suite = hpkeSuite(primitives);
  const keyPair = await suite.kem.deriveKeyPair(ab(seed));
  return { publicKey: new Uint8Array(await suite.kem.serializePublicKey(keyPair.publicKey)), keyPair, suite, primitives };
}

export function pad(plaintext: Uint8Array): Uint8Array {
  const total = Math.ceil((plaintext.length + 4) / PAD_BLOCK) * PAD_BLOCK;
  const out = new Uint8Array(total);
  new DataView(out.buffer).setUint32(0, plaintext.length);
  out.set(plaintext, 4);
  return out;
}

export function unpad(padded: Uint8Array): Uint8Array {
  if (padded.length < 4) throw new BkvError('MALFORMED', 'padded message too short');
  const n = new DataView(padded.buffer, padded.byteOffset, padded.byteLength).getUint32(0);
  if (n > padded.length - 4) throw new BkvError('MALFORMED', 'padded message has a bad length');
  for (let i = 4 + n; i < padded.length; i++) {
    if (padded[i] !== 0) throw new BkvError('MALFORMED', 'padding is not zero');
  }
  return padded.slice(4, 4 + n);
}

/**
 * Client side: encrypts a request to the fleet key. Returns the envelope and the reply key.
 * `primitives` picks who computes X25519, HKDF and AES-GCM (default: WebCrypto).
 */
export async function sealRequest(
  fleetPublicKey: Uint8Array,
  account: string,
  plaintext: Uint8Array,
  primitives?: ChannelPrimitives,
): Promise<{ envelope: Uint8Array; responseKey: Uint8Array; continuationKey: Uint8Array }> {
  const suite = primitives ? hpkeSuite(primitives) : webCryptoSuite;
  const recipientPublicKey = await suite.kem.deserializePublicKey(ab(fleetPublicKey));
  const ctx = await suite.createSenderContext({ recipientPublicKey, info: ab(INFO) });
  const ct = new Uint8Array(await ctx.seal(ab(pad(plaintext)), ab(accountAad(account))));
  const responseKey = new Uint8Array(await ctx.export(ab(RESPONSE_LABEL), 32));
  const continuationKey = new Uint8Array(await ctx.export(ab(CONTINUATION_LABEL), 32));
  const enc = new Uint8Array(ctx.enc);
  const envelope = new Uint8Array(1 + enc.length + ct.length);
  envelope[0] = ENVELOPE_VERSION;
  envelope.set(enc, 1);
  envelope.set(ct, 1 + enc.length);
  return { envelope, responseKey, continuationKey };
}

/** Core side: opens a request envelope. Any failure is `TAMPERED` or `MALFORMED`, never a crash. */
export async function openRequest(
  keyPair: ChannelKeyPair,
  account: string,
  envelope: Uint8Array,
): Promise<{ plaintext: Uint8Array; responseKey: Uint8Array; continuationKey: Uint8Array }> {
  if (envelope.length < 1 + ENC_BYTES + 16) throw new BkvError('MALFORMED', 'request envelope too short');
  if (envelope[0] !== ENVELOPE_VERSION) throw new BkvError('MALFORMED', `unknown request envelope version ${envelope[0]}`);
  const enc = envelope.slice(1, 1 + ENC_BYTES);
  const ct = envelope.slice(1 + ENC_BYTES);
  let ctx;
  let padded: Uint8Array;
  try {
    ctx = await keyPair.suite.createRecipientContext({ recipientKey: keyPair.keyPair, enc: ab(enc), info: ab(INFO) });
    padded = new Uint8Array(await ctx.open(ab(ct), ab(accountAad(account))));
  } catch {
    throw new BkvError('TAMPERED', 'request did not decrypt: altered in transit, sent to another fleet, or for another account');
  }
  const responseKey = new Uint8Array(await ctx.export(ab(RESPONSE_LABEL), 32));
  const continuationKey = new Uint8Array(await ctx.export(ab(CONTINUATION_LABEL), 32));
  return { plaintext: unpad(padded), responseKey, continuationKey };
}

/**
 * A continuation envelope: `0x02 ‖ u16 ticket length ‖ ticket ‖ nonce(12) ‖ AES-256-GCM(request)`.
 * The ticket is opaque to the client (the core sealed it, and it carries the continuation key);
 * the request is sealed under HKDF(continuation key) with the account and the ticket as associated
 * data. It saves a second public-key operation on both sides of a recovery.
 */
function continuationKeys(continuationKey: Uint8Array) {
  return {
    request: hkdf(sha256, continuationKey, undefined, te.encode('bkv continuation request v1'), 32),
    response: hkdf(sha256, continuationKey, undefined, te.encode('bkv continuation reply v1'), 32),
  };
}

function continuationAad(account: string, ticket: Uint8Array): Uint8Array {
  const a = accountAad(account);
  const out = new Uint8Array(a.length + ticket.length);
  out.set(a);
  out.set(ticket, a.length);
  return out;
}

export function sealContinuation(
  continuationKey: Uint8Array,
  account: string,
  ticket: Uint8Array,
  plaintext: Uint8Array,
  nonce: Uint8Array,
  primitives: ChannelPrimitives = noblePrimitives,
): { envelope: Uint8Array; responseKey: Uint8Array } {
  if (ticket.length > 0xffff) throw new BkvError('USAGE', 'continuation ticket too large');
  const keys = continuationKeys(continuationKey);
  const ct = primitives.gcmSeal(keys.request, nonce, continuationAad(account, ticket), pad(plaintext));
  const envelope = new Uint8Array(3 + ticket.length + 12 + ct.length);
  envelope[0] = CONTINUATION_VERSION;
  new DataView(envelope.buffer).setUint16(1, ticket.length);
  envelope.set(ticket, 3);
  envelope.set(nonce, 3 + ticket.length);
  envelope.set(ct, 3 + ticket.length + 12);
  return { envelope, responseKey: keys.response };
}

/** Splits a continuation envelope; the core then unseals the ticket to learn the key. */
export function parseContinuation(envelope: Uint8Array): { ticket: Uint8Array; sealed: Uint8Array } {
  if (envelope.length < 3 || envelope[0] !== CONTINUATION_VERSION) throw new BkvError('MALFORMED', 'not a continuation envelope');
  const n = new DataView(envelope.buffer, envelope.byteOffset, envelope.byteLength).getUint16(1);
  if (envelope.length < 3 + n + 12 + 16) throw new BkvError('MALFORMED', 'continuation envelope too short');
  return { ticket: envelope.slice(3, 3 + n), sealed: envelope.slice(3 + n) };
}

export function openContinuation(
  continuationKey: Uint8Array,
  account: string,
  ticket: Uint8Array,
  sealed: Uint8Array,
  primitives: ChannelPrimitives = noblePrimitives,
): { plaintext: Uint8Array; responseKey: Uint8Array } {
  const keys = continuationKeys(continuationKey);
  let padded: Uint8Array;
  try {
    padded = primitives.gcmOpen(keys.request, sealed.subarray(0, 12), continuationAad(account, ticket), sealed.subarray(12));
  } catch {
    throw new BkvError('TAMPERED', 'request did not decrypt: altered in transit or sent for another account');
  }
  return { plaintext: unpad(padded), responseKey: keys.response };
}

/** Seals a reply under the exported reply key. `nonce` comes from the caller's RNG (12 bytes). */
export function sealResponse(
  responseKey: Uint8Array,
  plaintext: Uint8Array,
  nonce: Uint8Array,
  primitives: ChannelPrimitives = noblePrimitives,
): Uint8Array {
  const ct = primitives.gcmSeal(responseKey, nonce, REPLY_AAD, pad(plaintext));
  const out = new Uint8Array(nonce.length + ct.length);
  out.set(nonce);
  out.set(ct, nonce.length);
  return out;
}

export function openResponse(responseKey: Uint8Array, sealed: Uint8Array, primitives: ChannelPrimitives = noblePrimitives): Uint8Array {
  if (sealed.length < 12 + 16) throw new BkvError('TAMPERED', 'vault reply too short: altered in transit');
  try {
    const pt = primitives.gcmOpen(responseKey, sealed.subarray(0, 12), REPLY_AAD, sealed.subarray(12));
    return unpad(pt);
  } catch (e) {
    if (e instanceof BkvError) throw e;
    throw new BkvError('TAMPERED', 'vault reply failed authentication: altered in transit');
  }
}
